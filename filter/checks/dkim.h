/*
 * dkim.h: DKIM verification (RFC 6376, RFC 8463, RFC 8301) of every
 * signature of one message, on libopendkim (the only code that includes
 * its headers).
 *
 * A Verifier follows one message as the MTA hands it over:
 *   header(NAME, VALUE)  each header field, VALUE exactly as it came after
 *                        the colon (leading white space and folding kept;
 *                        folds ending in a bare LF are taken as CRLF); past
 *                        1 MiB of header no signature is verified (each
 *                        is a permerror);
 *   end_of_headers()     the signatures are known: key_names() lists the
 *                        keys to look up (SELECTOR._domainkey.DOMAIN TXT),
 *                        which the caller asks for, all in parallel, while
 *                        the body arrives;
 *   body(CHUNK)          the body as it comes (CRLF or bare LF line ends),
 *                        held until finish() up to 16 KiB, past that
 *                        streamed to the hashes (dkim.cc says why), never
 *                        kept whole;
 *   finish(KEYS)         the verdict, once, with the answers to the key
 *                        lookups by name (dns::lookup_key()); a key
 *                        missing from KEYS is a temperror.  It checks
 *                        every signature (the RSA and Ed25519 work), and
 *                        may run on another thread than the calls before
 *                        it, as long as no two calls overlap.
 * body() and finish() end the headers if end_of_headers() was not
 * called; calls after finish() are ignored, and finish() again gives the
 * same verdict.  header(), end_of_headers() and body() never throw: what
 * goes wrong shows in the verdict.  A field whose name is not RFC 5322's
 * or whose value holds a NUL byte is left out (a signature covering it
 * fails).  Every key comes from KEYS, never from the system resolver
 * (libopendkim's dkim_dns_set_* hooks answer from them).
 *
 * Results are RFC 8601's: pass; fail (the signature or the body hash does
 * not verify); neutral (not used); temperror (the key lookup failed);
 * permerror (bad signature syntax, a tag given twice included; no key,
 * a revoked one or more than one record; a key record that does not
 * parse or is longer than the 1024 bytes libopendkim reads; an rsa-sha1
 * signature or an RSA key under Limits::min_key_bits: RFC 8301 says
 * neither may count as valid).  Only the first Limits::max_signatures
 * signatures are verified; the next is permerror ("too many
 * signatures") and stands for the rest, which are not reported.  None
 * of them reaches libopendkim (each would cost its own hashes), so a
 * signature that covers one of them fails.  A signature of more than 64
 * tags (RFC 6376 defines 14), or whose h= names more than 256 fields, is
 * permerror too and never reaches libopendkim, whose cost grows with the
 * square of either.  Thread-safe: verifiers share one libopendkim
 * library, each has its own handle.
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"

namespace portcullis::dkim {

enum class Result { pass, fail, neutral, temperror, permerror };

/* "pass", "fail", ... as RFC 8601 spells them. */
std::string_view result_name(Result result);

/* "libopendkim 2.11.0": the library linked, for `version`. */
std::string library_version();

/* How many key records were parsed since start; a key whose record was
 * parsed before is used again (dkim.cc says how), not counted here. */
uint64_t keys_parsed();

struct Signature {
    Result result = Result::permerror;
    std::string domain;      // d=, lower case
    std::string identity;    // i= as given, "" when absent
    std::string selector;    // s=
    std::string algorithm;   // a=: "rsa-sha256", "ed25519-sha256", "rsa-sha1"
    std::string b;           // b= with white space removed
    unsigned key_bits = 0;   // RSA key size; 0 for Ed25519 or without a key
    std::string reason;      // why not pass, for the log; "" on pass
};

struct Verdict {
    std::vector<Signature> signatures;   // in header order; empty: unsigned

    /* The policy's dkim field: "pass" if a signature passed, else the
     * first of fail, temperror, permerror that some signature has,
     * else "none". */
    std::string_view summary() const;
    /* d= of the first passing signature, "" if none passed. */
    std::string passing_domain() const;
};

struct Limits {
    unsigned min_key_bits = 1024;
    size_t max_signatures = 16;
};

/* The key lookups' answers, by key name as dns::lookup_key() writes it. */
using KeyAnswers = std::map<std::string, dns::Answer>;

class Verifier {
public:
    explicit Verifier(const Limits& limits = {});
    ~Verifier();
    Verifier(const Verifier&) = delete;
    Verifier& operator=(const Verifier&) = delete;

    void header(std::string_view name, std::string_view value);
    void end_of_headers();
    void body(std::string_view chunk);
    const std::vector<std::string>& key_names() const;
    Verdict finish(const KeyAnswers& keys);

private:
    struct State;   // dkim.cc: the libopendkim handle and what it needs
    std::unique_ptr<State> state_;
};

}  // namespace portcullis::dkim
