/*
 * dkim.cc: libopendkim wrapped once (one library for the process, one
 * handle per Verifier), its DNS hooks answered from the key records the
 * caller looked up, and its outcome for each signature turned into an
 * RFC 8601 result (see dkim.h).
 *
 * A message goes through libopendkim so:
 *   header()          each field held as "Name:value" with CRLF line
 *                     ends; each DKIM-Signature field is also parsed
 *                     here, for the ones libopendkim refuses or never
 *                     sees (those past Limits::max_signatures: each would
 *                     cost its own hashes);
 *   end_of_headers()  the fields our policy refuses (rsa-sha1, a tag
 *                     given twice, a key name that is no domain name) are
 *                     decided; the key names of the others that have
 *                     every tag RFC 6376 3.5 requires are listed for the
 *                     caller to look up;
 *   body()            line ends made CRLF piece by piece, and the body
 *                     held, up to kMaxHeldBody;
 *   finish()          libopendkim's handle is made and given the held
 *                     fields (a signature field it refuses is decided
 *                     then), dkim_eoh (its signatures are paired with the
 *                     fields, and those decided are ignored), the held
 *                     body to dkim_body, then dkim_eom, which asks for
 *                     the keys and verifies.
 * libopendkim is started late because it costs memory the message waits
 * with: its handle and copies of the fields some 3.5 kB a message, and
 * from dkim_eoh on some 21 kB (a 4 kB hash buffer and a 1 kB line buffer
 * per canonicalization, and more), 10 MB with 500 messages in flight,
 * where the fields and a typical body held cost a few kB.  The hashing
 * then runs with the verification, off the caller's loop, and a message
 * without a signature never starts libopendkim.  A body past
 * kMaxHeldBody starts libopendkim where it is and streams through it, so
 * a message never costs more than the bound plus libopendkim's own.  The
 * library is set to DKIM_LIBFLAGS_DELAYSIGPROC: by default dkim_eoh asks
 * for the keys.
 * libopendkim's DNS hooks are set for the whole library and are not told
 * which message asks.  It asks for keys on the thread that calls dkim_eoh
 * or dkim_eom, so a thread-local pointer set around those calls names the
 * message's KeyReplies.  The hooks hand libopendkim a DNS reply packet,
 * made from the caller's answer, which is what it parses (dkim-keys.c).
 *
 * Parsed keys are kept.  libopendkim turns a key record's p= into a key
 * with d2i_PUBKEY_bio() for every RSA signature it checks; on OpenSSL 3
 * that walks every provider's decoders under read-write locks, about
 * 90 us, 60 % of an RSA-2048 verification (tests/bench/README.md,
 * bench_auth), and libopendkim has no hook to be given a parsed key.  So
 * this file defines d2i_PUBKEY_bio() for the process: the executable's
 * definition comes before libcrypto's for every library that calls it.
 * A memory BIO (libopendkim's) whose bytes were parsed before gets the
 * same key again, one more reference to it; anything else, and any bytes
 * not seen yet, go to libcrypto's own function (dlsym RTLD_NEXT).  An
 * EVP_PKEY is not changed by verifying with it, and what OpenSSL caches
 * inside one (the RSA form libopendkim asks for) is made under its lock,
 * so threads may share it.  The key is the record's bytes themselves, so
 * a key that changes in the DNS is a new entry: nothing here outlives a
 * record.  At most kMaxParsedKeys are kept; past that the cache starts
 * over.
 */
#include "checks/dkim.h"

// dkim.h declares C's _Bool, which GCC's stdbool.h makes C++'s bool (of
// the same size and ABI).
#include <stdbool.h>
#include <opendkim/dkim.h>
#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>

#include "dns/lookups.h"
#include "util/text.h"

namespace portcullis::dkim {

namespace {

using Status = dns::Answer::Status;

constexpr std::string_view kSignatureField = "DKIM-Signature";
constexpr std::string_view kKeyLabel = "._domainkey.";
// dkim_get_key() reads a key record into a buffer of 1024 bytes (BUFRSZ)
// and cuts off the rest without a word.
constexpr size_t kKeyRecordRead = 1024;

// DNS (RFC 1035 4.1).
constexpr unsigned kTypeTxt = 16;
constexpr unsigned kClassIn = 1;
constexpr unsigned kReplyFlags = 0x8180;   // a response, recursion desired and available
constexpr unsigned kNxdomain = 3;
constexpr unsigned kNameOfQuestion = 0xc00c;   // a pointer to offset 12, where the question's name is
constexpr size_t kMaxTxtString = 255;
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxWireName = 255;

/* What a signature came to when libopendkim's verification does not
 * decide it, or not alone. */
struct Outcome {
    Result result;
    std::string reason;
};

struct LibraryClose {
    void operator()(DKIM_LIB* library) const { dkim_close(library); }
};
struct HandleFree {
    void operator()(DKIM* handle) const { dkim_free(handle); }
};
using Handle = std::unique_ptr<DKIM, HandleFree>;

/* Bytes appended to a buffer of fixed size; what does not fit is dropped
 * and marks the packet overflowed. */
class PacketWriter {
public:
    explicit PacketWriter(std::span<unsigned char> buffer) : buffer_(buffer) {}

    void byte(unsigned value) {
        if (used_ == buffer_.size()) {
            overflowed_ = true;
            return;
        }
        buffer_[used_++] = static_cast<unsigned char>(value & 0xff);
    }
    void u16(unsigned value) {
        byte(value >> 8);
        byte(value);
    }
    void u32(uint32_t value) {
        u16(value >> 16);
        u16(value & 0xffff);
    }
    void bytes(std::string_view data) {
        for (const char c : data) byte(static_cast<unsigned char>(c));
    }
    void overflow() { overflowed_ = true; }

    size_t size() const { return used_; }
    bool overflowed() const { return overflowed_; }

private:
    std::span<unsigned char> buffer_;
    size_t used_ = 0;
    bool overflowed_ = false;
};

/* NAME in labels (RFC 1035 3.1); false for a name DNS cannot carry. */
bool write_name(PacketWriter& packet, std::string_view name) {
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty() || name.size() + 2 > kMaxWireName) return false;
    size_t start = 0;
    while (start <= name.size()) {
        const size_t end = std::min(name.find('.', start), name.size());
        const std::string_view label = name.substr(start, end - start);
        if (label.empty() || label.size() > kMaxLabel) return false;
        packet.byte(label.size());
        packet.bytes(label);
        start = end + 1;
    }
    packet.byte(0);
    return true;
}

/* One TXT record: its text in strings of at most 255 bytes (RFC 1035
 * 3.3.14), the name a pointer to the question's. */
void write_txt_record(PacketWriter& packet, std::string_view text) {
    const size_t strings = std::max<size_t>(1, (text.size() + kMaxTxtString - 1) / kMaxTxtString);
    const size_t length = text.size() + strings;
    if (length > 0xffff) {
        packet.overflow();
        return;
    }
    packet.u16(kNameOfQuestion);
    packet.u16(kTypeTxt);
    packet.u16(kClassIn);
    packet.u32(0);   // TTL: libopendkim's cache is off
    packet.u16(length);
    for (size_t at = 0; at == 0 || at < text.size(); at += kMaxTxtString) {
        const std::string_view piece = text.substr(at, kMaxTxtString);
        packet.byte(piece.size());
        packet.bytes(piece);
    }
}

/* The reply to NAME's TXT question as DNS would give it, in BUFFER:
 * NOERROR with one TXT record per record found, or NXDOMAIN.  Its size,
 * or nullopt if it does not fit. */
std::optional<size_t> write_reply(std::span<unsigned char> buffer, std::string_view name, const dns::Answer& answer) {
    const bool found = answer.status == Status::found;
    if (found && answer.records.size() > 0xffff) return std::nullopt;
    PacketWriter packet(buffer);
    packet.u16(0);   // ID: libopendkim matches nothing on it
    packet.u16(kReplyFlags | (found ? 0 : kNxdomain));
    packet.u16(1);   // one question
    packet.u16(found ? answer.records.size() : 0);
    packet.u16(0);   // no authority records
    packet.u16(0);   // no additional records
    if (!write_name(packet, name)) return std::nullopt;
    packet.u16(kTypeTxt);
    packet.u16(kClassIn);
    if (found) {
        for (const auto& record : answer.records) write_txt_record(packet, record);
    }
    if (packet.overflowed()) return std::nullopt;
    return packet.size();
}

/* One message's key records as libopendkim asks for them, and why a key
 * could not be had, by key name, for the reasons. */
class KeyReplies {
public:
    /* The answers finish() was given; until then none. */
    void use(const KeyAnswers& answers) { answers_ = &answers; }

    /* NAME's answer as a reply packet in BUFFER; nullopt when there is no
     * reply to give (a failed lookup, a record libopendkim cannot take
     * whole), the problem noted. */
    std::optional<size_t> reply(const std::string& name, std::span<unsigned char> buffer) {
        const auto found = answers_ ? answers_->find(dns::lookup_key(name)) : KeyAnswers::const_iterator{};
        if (!answers_ || found == answers_->end()) {
            return note(name, Result::temperror, "key " + name + " was not looked up");
        }
        const dns::Answer& answer = found->second;
        if (answer.status == Status::temperror) {
            return note(name, Result::temperror, "key lookup of " + name + ": " +
                                                     (answer.error.empty() ? "failed" : answer.error));
        }
        // Of several records libopendkim takes none (a permerror of its own).
        if (answer.status == Status::found && answer.records.size() == 1 &&
            answer.records.front().size() > kKeyRecordRead) {
            return note(name, Result::permerror,
                        "key record at " + name + " is longer than the 1024 bytes libopendkim reads");
        }
        const auto size = write_reply(buffer, name, answer);
        if (!size) return note(name, Result::permerror, "key records at " + name + " do not fit libopendkim's buffer");
        return size;
    }

    /* Why NAME's key could not be had, if a reply() said. */
    const Outcome* problem(const std::string& name) const {
        const auto found = problems_.find(to_lower(name));
        return found == problems_.end() ? nullptr : &found->second;
    }

private:
    std::nullopt_t note(const std::string& name, Result result, std::string reason) {
        problems_.insert_or_assign(to_lower(name), Outcome{result, std::move(reason)});
        return std::nullopt;
    }

    const KeyAnswers* answers_ = nullptr;
    std::map<std::string, Outcome> problems_;
};

// The KeyReplies of the message whose dkim_eoh or dkim_eom this thread is
// in, null outside them.
thread_local KeyReplies* t_serving = nullptr;

/* While alive, this thread's key queries are answered from KEYS. */
class ServingKeys {
public:
    explicit ServingKeys(KeyReplies& keys) : previous_(std::exchange(t_serving, &keys)) {}
    ~ServingKeys() { t_serving = previous_; }
    ServingKeys(const ServingKeys&) = delete;
    ServingKeys& operator=(const ServingKeys&) = delete;

private:
    KeyReplies* previous_;
};

/* One key query, from libopendkim's start hook to its cancel hook. */
struct Query {
    KeyReplies* keys;
    std::string name;
    std::span<unsigned char> buffer;
};

// libopendkim's DNS hooks.  Nothing may be thrown through C; a hook that
// fails makes the key lookup fail (DKIM_SIGERROR_KEYFAIL).

int start_query(void* /*service*/, int type, unsigned char* name, unsigned char* buffer, size_t size,
                void** query) noexcept {
    if (t_serving == nullptr || type != static_cast<int>(kTypeTxt) || name == nullptr || buffer == nullptr ||
        query == nullptr) {
        return -1;
    }
    try {
        *query = new Query{t_serving, reinterpret_cast<const char*>(name), {buffer, size}};
        return 0;
    } catch (...) {
        return -1;
    }
}

/* The answer, at once: the caller looked the keys up before finish(), so
 * libopendkim's timeout is not used.  libopendkim parses the buffer after
 * anything but DKIM_DNS_ERROR and DKIM_DNS_EXPIRED. */
int wait_for_reply(void* /*service*/, void* query, struct timeval* /*timeout*/, size_t* bytes, int* error,
                   int* dnssec) noexcept {
    auto* pending = static_cast<Query*>(query);
    if (pending == nullptr || bytes == nullptr) return DKIM_DNS_ERROR;
    try {
        const auto size = pending->keys->reply(pending->name, pending->buffer);
        if (!size) return DKIM_DNS_ERROR;
        *bytes = *size;
        if (error != nullptr) *error = 0;
        if (dnssec != nullptr) *dnssec = DKIM_DNSSEC_UNKNOWN;
        return DKIM_DNS_SUCCESS;
    } catch (...) {
        return DKIM_DNS_ERROR;
    }
}

/* libopendkim calls it after every query that started, answered or not. */
int end_query(void* /*service*/, void* query) noexcept {
    delete static_cast<Query*>(query);
    return 0;
}

/* The process's library: verification only, every key through the hooks
 * above; null if libopendkim cannot be set up.  Made once, before any
 * query: libopendkim's lazy resolver set-up is not locked. */
DKIM_LIB* library() {
    static const std::unique_ptr<DKIM_LIB, LibraryClose> instance = []() -> std::unique_ptr<DKIM_LIB, LibraryClose> {
        std::unique_ptr<DKIM_LIB, LibraryClose> made(dkim_init(nullptr, nullptr));
        if (!made) return nullptr;
        uint32_t flags = DKIM_LIBFLAGS_DELAYSIGPROC;
        // Limits::min_key_bits is each Verifier's, so the size is checked
        // here, not by libopendkim.
        unsigned int min_key_bits = 0;
        if (dkim_options(made.get(), DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags) != DKIM_STAT_OK ||
            dkim_options(made.get(), DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &min_key_bits, sizeof min_key_bits) !=
                DKIM_STAT_OK) {
            return nullptr;
        }
        // Any non-null service keeps libopendkim from starting its own
        // resolver; without close and init hooks, dkim_close() would
        // res_nclose() and free it.
        dkim_dns_set_query_service(made.get(), made.get());
        dkim_dns_set_init(made.get(), nullptr);
        dkim_dns_set_close(made.get(), nullptr);
        dkim_dns_set_nslist(made.get(), nullptr);
        dkim_dns_set_query_start(made.get(), start_query);
        dkim_dns_set_query_waitreply(made.get(), wait_for_reply);
        dkim_dns_set_query_cancel(made.get(), end_query);
        return made;
    }();
    return instance.get();
}

bool is_white_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string without_white_space(std::string_view text) {
    std::string kept;
    for (const char c : text) {
        if (!is_white_space(c)) kept += c;
    }
    return kept;
}

/* A DKIM-Signature field's tags as RFC 6376 3.2 reads them: "name=value"
 * separated by ';', names as written, white space left out of values (as
 * libopendkim does); a name given twice counts the first time, and
 * repeated() names one such name.  The field is kept as written and read
 * again for each tag asked for: a map of the tags costs four times the
 * field, for every signature of every message in flight, and a handful
 * of tags is asked for. */
class Tags {
public:
    explicit Tags(std::string_view list) : list_(list) {
        // Sorted, not searched name by name: a field of many short tags
        // (a header of "a=;b=;c=;...") must not cost the square of its
        // length on the event loop.
        std::vector<std::string_view> names;
        for_each([&](std::string_view name, std::string_view) { names.push_back(name); });
        count_ = names.size();
        std::sort(names.begin(), names.end());
        const auto twice = std::adjacent_find(names.begin(), names.end());
        if (twice != names.end()) repeated_ = *twice;
    }

    /* NAME's value, "" if it has none. */
    std::string get(std::string_view name) const { return without_white_space(written(name)); }

    /* Whether NAME has a value, without copying it. */
    bool has(std::string_view name) const {
        const std::string_view value = written(name);
        return std::any_of(value.begin(), value.end(), [](char c) { return !is_white_space(c); });
    }

    /* A name given twice, "" if none. */
    const std::string& repeated() const { return repeated_; }

    /* How many tags the list has. */
    size_t count() const { return count_; }

private:
    /* NAME's value as written, the first time it is given; "" if never. */
    std::string_view written(std::string_view name) const {
        std::optional<std::string_view> value;
        for_each([&](std::string_view tag, std::string_view text) {
            if (!value && tag == name) value = text;
        });
        return value.value_or(std::string_view());
    }

    /* VISIT(name, value as written) for each tag, in order. */
    template <typename Visit>
    void for_each(Visit visit) const {
        std::string_view list = list_;
        while (!list.empty()) {
            const size_t end = std::min(list.find(';'), list.size());
            const std::string_view item = list.substr(0, end);
            list.remove_prefix(std::min(end + 1, list.size()));
            if (trim(item).empty()) continue;
            const size_t equals = item.find('=');
            visit(trim(item.substr(0, equals)),
                  equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1));
        }
    }

    std::string list_;
    std::string repeated_;
    size_t count_ = 0;
};

/* SIGNATURE's fields that come from its tags, as TAG gives them. */
template <typename TagValue>
void describe(Signature& signature, TagValue tag) {
    signature.domain = to_lower(tag("d"));
    signature.identity = tag("i");
    signature.selector = tag("s");
    signature.algorithm = to_lower(tag("a"));
    signature.b = without_white_space(tag("b"));
}

/* A tag of a signature libopendkim parsed, as it has it. */
std::string_view tag_of(DKIM_SIGINFO* info, const char* name) {
    // dkim_sig_gettagvalue() only reads the name.
    auto* tag = reinterpret_cast<unsigned char*>(const_cast<char*>(name));
    const unsigned char* value = dkim_sig_gettagvalue(info, false, tag);
    return value == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(value));
}

/* How many header fields h= names. */
size_t signed_field_count(const Tags& tags) {
    const std::string names = tags.get("h");
    return names.empty() ? 0 : static_cast<size_t>(std::count(names.begin(), names.end(), ':')) + 1;
}

/* RFC 6376 3.5: a signature without one of these tags is libopendkim's
 * permerror at dkim_eoh, and its key is not looked up. */
bool has_required_tags(const Tags& tags) {
    for (const std::string_view name : {"v", "a", "b", "bh", "d", "h", "s"}) {
        if (!tags.has(name)) return false;
    }
    return true;
}

/* "SELECTOR._domainkey.DOMAIN", the name libopendkim asks for; "" without
 * either part. */
std::string key_name(std::string_view selector, std::string_view domain) {
    if (selector.empty() || domain.empty()) return "";
    std::string name(selector);
    name += kKeyLabel;
    name += domain;
    return name;
}

/* The key name from a signature's s= and d=. */
std::string key_name(const Tags& tags) { return key_name(tags.get("s"), tags.get("d")); }

/* The key name from the signature libopendkim parsed. */
std::string key_name(DKIM_SIGINFO* info) {
    const auto text = [](const unsigned char* value) {
        return value == nullptr ? std::string_view() : std::string_view(reinterpret_cast<const char*>(value));
    };
    return key_name(text(dkim_sig_getselector(info)), text(dkim_sig_getdomain(info)));
}

/* RFC 5322 2.2's field name: printable ASCII but ':', at least one. */
bool is_field_name(std::string_view name) {
    const auto printable = [](char c) { return c > ' ' && c < 127 && c != ':'; };
    return !name.empty() && std::all_of(name.begin(), name.end(), printable);
}

/* Text whose line ends are CR, LF or CRLF, handed over in pieces, given
 * back with CRLF only.  A CR that ends a piece waits for the next. */
class LineEnds {
public:
    std::string add(std::string_view piece) {
        std::string out;
        out.reserve(piece.size() + piece.size() / 8 + 2);
        size_t at = 0;
        if (!piece.empty() && std::exchange(pending_cr_, false)) {
            end_line(out);
            if (piece.front() == '\n') at = 1;
        }
        // The text between line ends goes in one piece: the body of every
        // signed message passes here, a byte at a time cost 3 % of the CPU.
        while (at < piece.size()) {
            size_t end = at;
            while (end < piece.size() && piece[end] != '\r' && piece[end] != '\n') ++end;
            if (end > at) {
                out.append(piece.substr(at, end - at));
                line_open_ = true;
            }
            if (end == piece.size()) break;
            if (piece[end] == '\r' && end + 1 == piece.size()) {
                pending_cr_ = true;
                break;
            }
            end_line(out);
            at = end + (piece.substr(end, 2) == "\r\n" ? 2 : 1);
        }
        return out;
    }
    /* What is left once the text is all in: the waiting CR's CRLF; and
     * for a body, a CRLF for a last line without one (RFC 6376 3.4.3 and
     * 3.4.4 add it). */
    std::string rest(bool close_line) {
        if (std::exchange(pending_cr_, false) || (close_line && line_open_)) {
            line_open_ = false;
            return "\r\n";
        }
        return "";
    }

private:
    void end_line(std::string& out) {
        out += "\r\n";
        line_open_ = false;
    }

    bool pending_cr_ = false;
    bool line_open_ = false;
};

std::string with_crlf(std::string_view text) {
    LineEnds lines;
    std::string converted = lines.add(text);
    return converted + lines.rest(false);
}

/* libopendkim's failures that may pass (memory, a failed lookup) are
 * temporary; the rest are not. */
Result error_result(DKIM_STAT status) {
    switch (status) {
        case DKIM_STAT_NORESOURCE:
        case DKIM_STAT_INTERNAL:
        case DKIM_STAT_KEYFAIL:
        case DKIM_STAT_CBTRYAGAIN: return Result::temperror;
        default: return Result::permerror;
    }
}

std::string libopendkim_error(DKIM* handle) {
    const char* text = handle == nullptr ? nullptr : dkim_geterror(handle);
    return text == nullptr || *text == '\0' ? "libopendkim gives no reason" : text;
}

/* What libopendkim's verification of a processed signature says. */
Outcome verified(DKIM_SIGINFO* info, const KeyReplies& keys) {
    const std::string key = key_name(info);
    const int error = dkim_sig_geterror(info);
    switch (error) {
        case DKIM_SIGERROR_OK:
            if (DKIM_SIG_CHECK(info)) return {Result::pass, ""};
            return {Result::fail, "signature does not verify"};
        case DKIM_SIGERROR_BADSIG:
            if (dkim_sig_getbh(info) == DKIM_SIGBH_MISMATCH) return {Result::fail, "body hash does not match"};
            return {Result::fail, "signature does not verify"};
        case DKIM_SIGERROR_KEYFAIL:
            if (const Outcome* problem = keys.problem(key)) return *problem;
            return {Result::temperror, "key lookup of " + key + " failed"};
        case DKIM_SIGERROR_NOKEY: return {Result::permerror, "no key at " + key};
        case DKIM_SIGERROR_KEYREVOKED: return {Result::permerror, "key at " + key + " is revoked (empty p=)"};
        case DKIM_SIGERROR_MULTIREPLY: return {Result::permerror, "more than one key record at " + key};
        default: {
            const char* text = dkim_sig_geterrorstr(error);
            return {Result::permerror, text != nullptr ? text : "libopendkim signature error " + std::to_string(error)};
        }
    }
}

/* The RSA key's size; 0 for Ed25519 and without a key. */
unsigned key_bits(DKIM_SIGINFO* info) {
    unsigned int bits = 0;
    return dkim_sig_getkeysize(info, &bits) == DKIM_STAT_OK ? bits : 0;
}

/* RFC 8301 3.2: an RSA key under MIN_BITS makes no signature valid. */
std::optional<Outcome> key_too_small(DKIM_SIGINFO* info, unsigned min_bits) {
    const unsigned bits = key_bits(info);
    if (bits == 0 || bits >= min_bits) return std::nullopt;
    return Outcome{Result::permerror, "RSA key of " + std::to_string(bits) + " bits, under the " +
                                          std::to_string(min_bits) + " required (RFC 8301)"};
}

/* One DKIM-Signature field and what became of it. */
struct Field {
    Tags tags;
    std::optional<Outcome> decided;   // known without libopendkim's verification
    bool held = false;                // among the fields held for libopendkim
    bool given = false;               // libopendkim took it as a signature
    DKIM_SIGINFO* info = nullptr;     // libopendkim's signature, once paired
};

bool is_held(const Field& field) { return field.held; }

/* Where a field held for libopendkim ends in the held text. */
struct HeldField {
    size_t end;
    bool signature;
};

enum class Stage { headers, body, done };

// A body up to this size waits for finish() (see the top of this file).
constexpr size_t kMaxHeldBody = 16 * 1024;
/* A header is held whole (libopendkim wants it before the body), and an
 * MTA passes one as large as its message size limit (Postfix's 10 MB by
 * default), so past this no signature of the message is verified.  Real
 * headers stay far below: a few kB, 100 kB with a long trace. */
constexpr size_t kMaxHeldHeader = 1024 * 1024;
/* RFC 6376 defines 14 tags.  libopendkim looks each tag of a signature up
 * among the ones before it, so a field of thousands of tags (100 kB of
 * header holds 12,000) would cost it seconds; such a field never reaches
 * it, as one past max_signatures does not. */
constexpr size_t kMaxSignatureTags = 64;
/* libopendkim looks each name of h= up among all the header fields, so
 * 20,000 names over 5,000 fields would cost it a second; signers name
 * a few dozen, each field twice at most when they oversign. */
constexpr size_t kMaxSignedFields = 256;

}  // namespace

struct Verifier::State {
    explicit State(const Limits& given_limits);

    void add_header(std::string_view name, std::string_view value);
    void end_headers();
    void add_body(std::string_view chunk);
    const std::vector<std::string>& key_names() const { return key_names_; }
    Verdict finish(const KeyAnswers& keys);
    /* Stops where it is: every signature not yet decided gets RESULT
     * for REASON. */
    void abandon(std::string reason, Result result = Result::temperror);

private:
    void hold_header(std::string_view name, std::string_view value);
    /* The held field of LENGTH bytes at START to libopendkim; what went
     * wrong, if anything. */
    std::optional<std::string> feed_header(size_t start, size_t length);
    void decide(Field& field, Result result, std::string reason);
    void screen(Field& field);
    /* Once: libopendkim's handle made and given the held fields, dkim_eoh
     * (the signatures paired), the held body hashed. */
    void start_hashing();
    bool start_handle();
    /* The held fields go: libopendkim has them, or will never need them. */
    void drop_held_fields();
    bool pair_signatures();
    void feed_body(std::string text);
    Signature reported(const Field& field) const;
    Outcome outcome(const Field& field) const;

    Limits limits_;
    KeyReplies keys_;
    std::vector<std::string> key_names_;   // to look up, lower case, each once
    Handle handle_;               // from start_hashing() to the verdict
    std::string held_header_;     // the fields for libopendkim, "Name:value" CRLF
    std::vector<HeldField> held_fields_;
    std::vector<Field> fields_;   // in header order
    size_t given_ = 0;
    Stage stage_ = Stage::headers;
    bool eoh_started_ = false;     // dkim_eoh was called, or never will be
    bool hashing_ = false;         // the body goes to libopendkim
    std::string held_body_;        // CRLF line ends, until dkim_eoh
    LineEnds body_lines_;
    // Why a signature libopendkim did not get to verify was not verified.
    std::optional<Outcome> unverified_;
    std::optional<Verdict> verdict_;
};

Verifier::State::State(const Limits& given_limits) : limits_(given_limits) {
    if (library() == nullptr) unverified_ = Outcome{Result::temperror, "libopendkim could not start a verification"};
}

/* Keeps NAME's field as libopendkim will be given it. */
void Verifier::State::hold_header(std::string_view name, std::string_view value) {
    held_header_ += name;
    held_header_ += ':';
    held_header_ += with_crlf(value);
    held_fields_.push_back({held_header_.size(), equals_nocase(name, kSignatureField)});
    if (held_header_.size() > kMaxHeldHeader) {
        abandon("header over 1 MiB, not verified", Result::permerror);
    }
}

std::optional<std::string> Verifier::State::feed_header(size_t start, size_t length) {
    // libopendkim's parameter is not const, but a verifier only reads the
    // LENGTH bytes given (and copies them), so the held text itself goes,
    // not a copy of each field.
    auto* field = reinterpret_cast<unsigned char*>(held_header_.data() + start);
    if (dkim_header(handle_.get(), field, length) == DKIM_STAT_OK) return std::nullopt;
    return libopendkim_error(handle_.get());
}

void Verifier::State::add_header(std::string_view name, std::string_view value) {
    // libopendkim would refuse a field without a proper name, or with a
    // NUL byte (it keeps fields as C strings), and no signature can
    // cover it: it stays out of every signature, which then fails.
    if (stage_ != Stage::headers || !is_field_name(name)) return;
    const bool has_nul = value.find('\0') != std::string_view::npos;
    if (!equals_nocase(name, kSignatureField)) {
        if (!has_nul) hold_header(name, value);
        return;
    }
    // One field past the limit stands for all of them; the others are
    // neither kept nor reported, or thousands of fields would cost a
    // result each in the log and in Authentication-Results.
    if (fields_.size() > limits_.max_signatures) return;
    Field field{Tags(value), std::nullopt, false, false, nullptr};
    const size_t signed_fields = signed_field_count(field.tags);
    if (fields_.size() == limits_.max_signatures) {
        field.decided = Outcome{Result::permerror, "too many signatures"};
    } else if (field.tags.count() > kMaxSignatureTags) {
        field.decided = Outcome{Result::permerror, std::to_string(field.tags.count()) + " tags, over the " +
                                                       std::to_string(kMaxSignatureTags) + " a signature may have"};
    } else if (signed_fields > kMaxSignedFields) {
        field.decided = Outcome{Result::permerror, "h= names " + std::to_string(signed_fields) + " fields, over the " +
                                                       std::to_string(kMaxSignedFields) + " a signature may sign"};
    } else if (unverified_) {
        field.decided = unverified_;
    } else if (has_nul) {
        field.decided = Outcome{Result::permerror, "signature field refused: the field holds a NUL byte"};
    } else {
        hold_header(name, value);
        field.held = true;
    }
    fields_.push_back(std::move(field));
}

void Verifier::State::decide(Field& field, Result result, std::string reason) {
    field.decided = Outcome{result, std::move(reason)};
}

/* Our policy on a signature, from its tags; libopendkim says what else
 * is wrong with it. */
void Verifier::State::screen(Field& field) {
    const std::string key = key_name(field.tags);
    if (!field.tags.repeated().empty()) {
        decide(field, Result::permerror, "tag " + field.tags.repeated() + "= given twice (RFC 6376 3.2)");
    } else if (equals_nocase(field.tags.get("a"), "rsa-sha1")) {
        decide(field, Result::permerror, "rsa-sha1 is not accepted (RFC 8301)");
    } else if (!key.empty() && !is_host_name(key)) {
        decide(field, Result::permerror, "key name " + in_quotes(key) + " is not a domain name");
    }
}

/* Each field libopendkim took gets its signature, both in header order;
 * false if the two lists differ. */
bool Verifier::State::pair_signatures() {
    DKIM_SIGINFO** signatures = nullptr;
    int count = 0;
    if (dkim_getsiglist(handle_.get(), &signatures, &count) != DKIM_STAT_OK || count < 0 ||
        static_cast<size_t>(count) != given_ || (count > 0 && signatures == nullptr)) {
        return false;
    }
    size_t next = 0;
    for (Field& field : fields_) {
        if (field.given) field.info = signatures[next++];
    }
    return true;
}

void Verifier::State::abandon(std::string reason, Result result) {
    unverified_ = Outcome{result, std::move(reason)};
    stage_ = Stage::done;
    eoh_started_ = true;
    hashing_ = false;
    std::string().swap(held_body_);
    drop_held_fields();
    for (Field& field : fields_) field.info = nullptr;
}

void Verifier::State::end_headers() {
    if (stage_ != Stage::headers) return;
    stage_ = Stage::body;
    for (Field& field : fields_) {
        if (!field.held || field.decided) continue;
        screen(field);
        if (field.decided || !has_required_tags(field.tags)) continue;
        std::string key = dns::lookup_key(key_name(field.tags));
        if (std::find(key_names_.begin(), key_names_.end(), key) == key_names_.end()) {
            key_names_.push_back(std::move(key));
        }
    }
    // Without a signature for libopendkim, it never needs the fields.
    if (std::ranges::none_of(fields_, is_held)) drop_held_fields();
}

void Verifier::State::drop_held_fields() {
    std::string().swap(held_header_);
    std::vector<HeldField>().swap(held_fields_);
}

/* libopendkim's handle, given every held field in order: false when
 * there is none or it takes no signature.  A signature field it refuses
 * is decided here, whatever was decided before. */
bool Verifier::State::start_handle() {
    static const unsigned char kJobId[] = "portcullis";
    DKIM_STAT status = DKIM_STAT_INTERNAL;
    handle_.reset(dkim_verify(library(), kJobId, nullptr, &status));
    if (!handle_) {
        unverified_ = Outcome{Result::temperror, "libopendkim could not start a verification"};
        return false;
    }
    auto next_signature = fields_.begin();
    size_t start = 0;
    for (const HeldField& held : held_fields_) {
        const auto problem = feed_header(start, held.end - start);
        start = held.end;
        if (!held.signature) continue;
        next_signature = std::find_if(next_signature, fields_.end(), is_held);
        Field& field = *next_signature++;
        if (problem) {
            field.decided = Outcome{Result::permerror, "signature field refused: " + *problem};
        } else {
            field.given = true;
            ++given_;
        }
    }
    drop_held_fields();
    return given_ > 0;
}

void Verifier::State::start_hashing() {
    if (std::exchange(eoh_started_, true)) return;
    if (std::ranges::none_of(fields_, is_held) || !start_handle()) return;
    DKIM_STAT status = DKIM_STAT_OK;
    {
        // DELAYSIGPROC keeps key lookups out of dkim_eoh; should they come
        // back, they are answered all the same.
        const ServingKeys serving(keys_);
        status = dkim_eoh(handle_.get());
    }
    if (status != DKIM_STAT_OK) {
        unverified_ = Outcome{error_result(status), "header cannot be verified: " + libopendkim_error(handle_.get())};
        return;
    }
    if (!pair_signatures()) {
        unverified_ = Outcome{Result::permerror, "libopendkim lists other signatures than the header has"};
        return;
    }
    for (Field& field : fields_) {
        if (field.info == nullptr) continue;
        if (field.decided) {
            dkim_sig_ignore(field.info);
        } else if (dkim_sig_geterror(field.info) == DKIM_SIGERROR_UNKNOWN) {
            hashing_ = true;
        }
    }
    std::string held;
    held.swap(held_body_);
    feed_body(std::move(held));
}

void Verifier::State::feed_body(std::string text) {
    if (!hashing_ || text.empty()) return;
    const DKIM_STAT status = dkim_body(handle_.get(), reinterpret_cast<unsigned char*>(text.data()), text.size());
    if (status != DKIM_STAT_OK) {
        unverified_ = Outcome{error_result(status), "body cannot be hashed: " + libopendkim_error(handle_.get())};
        hashing_ = false;
    }
}

void Verifier::State::add_body(std::string_view chunk) {
    end_headers();
    // Without a key to look up, no signature is verified: no body needed.
    if (stage_ != Stage::body || key_names_.empty()) return;
    std::string text = body_lines_.add(chunk);
    if (eoh_started_) return feed_body(std::move(text));
    held_body_ += text;
    if (held_body_.size() > kMaxHeldBody) start_hashing();
}

Signature Verifier::State::reported(const Field& field) const {
    Signature signature;
    if (field.info != nullptr) {
        describe(signature, [&field](const char* name) { return tag_of(field.info, name); });
        signature.key_bits = key_bits(field.info);
    } else {
        describe(signature, [&field](const char* name) { return field.tags.get(name); });
    }
    const Outcome result = outcome(field);
    signature.result = result.result;
    signature.reason = result.reason;
    return signature;
}

Outcome Verifier::State::outcome(const Field& field) const {
    if (field.decided) return *field.decided;
    const Outcome not_verified = unverified_.value_or(Outcome{Result::permerror, "libopendkim did not verify it"});
    if (field.info == nullptr) return not_verified;
    const bool processed = (dkim_sig_getflags(field.info) & DKIM_SIGFLAG_PROCESSED) != 0;
    if (!processed && dkim_sig_geterror(field.info) == DKIM_SIGERROR_UNKNOWN) return not_verified;
    Outcome result = verified(field.info, keys_);
    if (result.result == Result::pass || result.result == Result::fail) {
        if (auto small = key_too_small(field.info, limits_.min_key_bits)) result = std::move(*small);
    }
    return result;
}

Verdict Verifier::State::finish(const KeyAnswers& keys) {
    if (verdict_) return *verdict_;
    end_headers();
    stage_ = Stage::done;
    keys_.use(keys);
    start_hashing();
    feed_body(body_lines_.rest(true));
    if (hashing_) {
        const ServingKeys serving(keys_);
        const DKIM_STAT status = dkim_eom(handle_.get(), nullptr);
        // Its status is the final signature's; the error is kept for the
        // signatures it did not get to.
        if (status != DKIM_STAT_OK && !unverified_) {
            unverified_ = Outcome{error_result(status), "not verified: " + libopendkim_error(handle_.get())};
        }
    }
    Verdict verdict;
    for (Field& field : fields_) {
        verdict.signatures.push_back(reported(field));
        field.info = nullptr;
    }
    verdict_ = verdict;
    // The verdict is all that is asked for from here on: libopendkim's
    // state goes now, not when the caller lets the verifier go.
    handle_.reset();
    return verdict;
}

std::string_view result_name(Result result) {
    switch (result) {
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::neutral: return "neutral";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "?";
}

std::string_view Verdict::summary() const {
    const auto has = [this](Result wanted) {
        return std::any_of(signatures.begin(), signatures.end(),
                           [wanted](const Signature& signature) { return signature.result == wanted; });
    };
    for (const Result result : {Result::pass, Result::fail, Result::temperror, Result::permerror}) {
        if (has(result)) return result_name(result);
    }
    return "none";
}

std::string Verdict::passing_domain() const {
    for (const auto& signature : signatures) {
        if (signature.result == Result::pass) return signature.domain;
    }
    return "";
}

Verifier::Verifier(const Limits& limits) : state_(std::make_unique<State>(limits)) {}

Verifier::~Verifier() = default;

// Without memory for a field or a piece of the body, verifying the rest
// would give a wrong fail.

void Verifier::header(std::string_view name, std::string_view value) {
    try {
        state_->add_header(name, value);
    } catch (const std::exception& error) {
        state_->abandon(std::string("header field left out: ") + error.what());
    }
}

void Verifier::end_of_headers() {
    try {
        state_->end_headers();
    } catch (const std::exception& error) {
        state_->abandon(std::string("header not taken: ") + error.what());
    }
}

void Verifier::body(std::string_view chunk) {
    try {
        state_->add_body(chunk);
    } catch (const std::exception& error) {
        state_->abandon(std::string("body left out: ") + error.what());
    }
}

const std::vector<std::string>& Verifier::key_names() const { return state_->key_names(); }

Verdict Verifier::finish(const KeyAnswers& keys) {
    try {
        return state_->finish(keys);
    } catch (const std::exception& error) {
        // On a worker thread an exception would end the process.
        state_->abandon(std::string("not verified: ") + error.what());
        return state_->finish(keys);
    }
}

/* ---- parsed keys, kept (see the top of this file) ---- */

namespace {

constexpr size_t kMaxParsedKeys = 128;

using ParseKey = EVP_PKEY* (*)(BIO*, EVP_PKEY**);

class ParsedKeys {
public:
    ~ParsedKeys() { clear(); }

    /* The key parsed from BIO: kept, or parsed now by LIBCRYPTO and kept. */
    EVP_PKEY* parse(BIO* bio, ParseKey libcrypto) {
        char* data = nullptr;
        const long length = BIO_get_mem_data(bio, &data);
        if (length <= 0 || data == nullptr) return libcrypto(bio, nullptr);
        std::string bytes(data, static_cast<size_t>(length));
        {
            const std::lock_guard lock(mutex_);
            const auto found = keys_.find(bytes);
            if (found != keys_.end() && EVP_PKEY_up_ref(found->second) == 1) return found->second;
        }
        EVP_PKEY* key = libcrypto(bio, nullptr);
        if (key == nullptr || EVP_PKEY_up_ref(key) != 1) return key;
        const std::lock_guard lock(mutex_);
        ++parsed_;
        if (keys_.size() >= kMaxParsedKeys) clear();
        const auto [at, added] = keys_.emplace(std::move(bytes), key);
        if (!added) EVP_PKEY_free(key);   // another thread kept the same bytes first
        return key;
    }

    uint64_t parsed() {
        const std::lock_guard lock(mutex_);
        return parsed_;
    }

private:
    void clear() {
        for (auto& [bytes, key] : keys_) EVP_PKEY_free(key);
        keys_.clear();
    }

    std::mutex mutex_;
    std::unordered_map<std::string, EVP_PKEY*> keys_;   // each holds one reference
    uint64_t parsed_ = 0;
};

ParsedKeys& parsed_keys() {
    static ParsedKeys keys;
    return keys;
}

ParseKey libcrypto_parse_key() {
    static const auto parse = reinterpret_cast<ParseKey>(dlsym(RTLD_NEXT, "d2i_PUBKEY_bio"));
    return parse;
}

}  // namespace

uint64_t keys_parsed() { return parsed_keys().parsed(); }

std::string library_version() {
    const uint32_t version = dkim_libversion();
    return "libopendkim " + std::to_string(version >> 24) + "." + std::to_string((version >> 16) & 0xff) + "." +
           std::to_string((version >> 8) & 0xff);
}

}  // namespace portcullis::dkim

/* libcrypto's d2i_PUBKEY_bio() for the process, with parsed keys kept. */
extern "C" EVP_PKEY* d2i_PUBKEY_bio(BIO* bio, EVP_PKEY** out) {
    const auto parse = portcullis::dkim::libcrypto_parse_key();
    if (parse == nullptr) return nullptr;   // no libcrypto: nothing to verify with either
    if (out != nullptr || bio == nullptr || BIO_method_type(bio) != BIO_TYPE_MEM) return parse(bio, out);
    return portcullis::dkim::parsed_keys().parse(bio, parse);
}
