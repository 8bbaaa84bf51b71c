/*
 * auth_results.h: the Authentication-Results header field (RFC 8601) that
 * records what SPF, DKIM and DMARC found, and recognising the fields a
 * message already carries in our name.
 *
 * header_value() writes the field's value (without the name) for one
 * message:
 *   AUTHSERV-ID;
 *   	spf=RESULT smtp.mailfrom=DOMAIN          (smtp.helo=NAME for <>)
 *   	dkim=RESULT (2048-bit key) header.d=... header.i=... header.s=... header.b=...
 *   	dmarc=RESULT (p=REJECT dis=NONE) header.from=DOMAIN
 * one dkim entry per signature (dkim=none for an unsigned message), and
 * "AUTHSERV-ID; none" when no method ran.  header.b is the shortest
 * prefix of the signature, at least 8 characters, that tells it apart
 * from the message's other signatures (RFC 6008).  Values that are not
 * RFC 2045 tokens (nor local@domain) are quoted; control characters from
 * the message are dropped.  Lines are folded with "\n\t", as libmilter
 * wants them.
 *
 * authserv_id_of() reads the authserv-id a field value starts with (token
 * or quoted-string, after comments and white space), "" if it has none.
 * is_ours() says whether a field claims to be ours, to any reader: when
 * that authserv-id is ours, or when the name that lenient readers
 * downstream (OpenDMARC, OpenDKIM, OpenARC) take for it is: the text
 * before the first ';' outside quoted strings and comments, less comments,
 * quote marks, the backslash of quoted pairs and white space (folding
 * too), after dropping a final version (digits after white space or a
 * comment).  So "mx . example . com;", "mx.(x)example.com;",
 * "mx.exa\"mple\".com;" and "mx.example.co\m;" are all mx.example.com's,
 * "mx.example.com 1;" too, but not "mx.example.com1;" nor
 * "mx.example.community;".  Both compare without regard to case.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "checks/dkim.h"
#include "checks/dmarc.h"

namespace portcullis::auth_results {

struct Spf {
    std::string result;   // pass fail softfail neutral none temperror permerror
    std::string domain;   // the identity checked
    bool helo = false;    // the identity is the HELO name (the sender was <>)
};

struct Dmarc {
    dmarc::Verdict verdict;
    std::string disposition;   // what was done: "none", "quarantine" (a rejected message gets no header)
};

struct Results {
    std::optional<Spf> spf;             // absent: SPF did not run
    const dkim::Verdict* dkim = nullptr;   // null: DKIM did not run
    std::optional<Dmarc> dmarc;         // absent: DMARC did not run
};

std::string header_value(std::string_view authserv_id, const Results& results);

std::string authserv_id_of(std::string_view value);
bool is_ours(std::string_view value, std::string_view authserv_id);

}  // namespace portcullis::auth_results
