/*
 * from_header.h: the From header of one message (RFC 5322 3.6.2), parsed
 * once: the only source of what is derived from it, the policy's from and
 * from.domain, DMARC's author domains, and the log lines that name them.
 *
 * parse_addresses() reads one field value as an RFC 5322 address list
 * (3.4): mailboxes, with or without a display name (atoms, quoted
 * strings with backslash escapes, the obsolete "." in phrases); angle
 * addresses, with an obsolete route ("<@relay:user@example.com>") skipped;
 * groups, empty ones too ("Undisclosed recipients:;"); comments, nested,
 * wherever white space may be; folding by CRLF or a bare LF followed by
 * white space; obsolete empty list members (", ,") and white space around
 * the dots of addresses.  Each address comes back as local@domain: the
 * local part as written less comments and folding (a quoted one keeps its
 * quotes), the domain in lower case (a domain literal keeps its brackets).
 * Bytes above 127 are taken as text (RFC 6532).  An RFC 2047 encoded word
 * is an atom like any other: what it encodes is never read, so it is
 * never an address.  Values longer than kMaxFromBytes, NUL bytes,
 * unbalanced quotes, comments or brackets do not parse.
 *
 * A FromHeader collects the From fields of one message as they arrive
 * (add_field, each VALUE as it came after the colon), and parses each
 * once.  Several fields count as one list of all their addresses: RFC
 * 5322 allows one From field, and readers differ in which of several
 * they show, so every address of every field is an author.
 *   domains()   every distinct author domain, lower case, in order of
 *               first appearance; only domains that are host names
 *               (is_mail_domain) count;
 *   problem()   why part of the header gives no author domain: no From
 *               field, more than kMaxFromFields of them, a field that
 *               does not parse, no address at all, an address whose
 *               domain is not a host name; "" when none of these;
 *   lenient_domains()
 *               the domains read leniently from the fields that do not
 *               parse, those past kMaxFromFields and the addresses whose
 *               domain is not a host name: every host name
 *               (is_mail_domain, lower case, a final dot dropped) right
 *               after an '@', wherever it stands, not already among
 *               domains(), distinct, in order, and no more than make
 *               kMaxAuthorDomains with domains() at the time.  They are
 *               never authors for from and from.domain; DMARC evaluates
 *               them beside domains(), so that a broken From cannot hide
 *               a domain that publishes p=reject ("ceo@victim.example
 *               <x@evil.example>", "ceo@victim.example;",
 *               "ceo@victim.example?=").  One pass over each value,
 *               whatever it holds;
 *   domain()    the author domain: the one domain when problem() is ""
 *               and domains() holds exactly one, else nullopt;
 *   address()   the author address: the one address when domain() has a
 *               value and every address is the same one, else nullopt.
 * So a From with several authors has no domain() (nor address()) unless
 * they share one domain, and no field can be added to a message to give
 * it an author domain it did not have.
 *
 * is_mail_domain() is RFC 5321's Domain as a host name: two labels or
 * more of letters, digits and inner hyphens (1 to 63 bytes each, 253 in
 * all), the last not all digits; no final dot.
 */
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

inline constexpr size_t kMaxFromBytes = 16 * 1024;
inline constexpr size_t kMaxFromFields = 8;
/* The most author domains DMARC evaluates (dmarc.h). */
inline constexpr size_t kMaxAuthorDomains = 16;

/* VALUE's addresses; nullopt when it is not an address list. */
std::optional<std::vector<std::string>> parse_addresses(std::string_view value);

bool is_mail_domain(std::string_view domain);

class FromHeader {
public:
    void add_field(std::string_view value);
    /* Forget every field (a new message). */
    void clear();

    size_t fields() const { return fields_; }
    /* Every address of every field, in order, repeats kept. */
    const std::vector<std::string>& addresses() const { return addresses_; }
    const std::vector<std::string>& domains() const { return domains_; }
    const std::vector<std::string>& lenient_domains() const { return lenient_domains_; }
    std::string problem() const;
    std::optional<std::string> domain() const;
    std::optional<std::string> address() const;

private:
    void note(std::string problem);
    void read_leniently(std::string_view value);

    size_t fields_ = 0;
    std::vector<std::string> addresses_;
    std::vector<std::string> domains_;
    std::set<std::string, std::less<>> seen_domains_;
    std::vector<std::string> lenient_domains_;
    std::string problem_;   // the first one met
};

}  // namespace portcullis
