/*
 * from_header.h: the author domain of a message from its From header
 * fields (RFC 5322 3.6.2, RFC 7489 6.6.1); used by dmarc.cc, and behind
 * dmarc::parse_address_list().
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
 * Bytes above 127 are taken as text (RFC 6532).  Values longer than 16 kB,
 * NUL bytes, unbalanced quotes, comments or brackets do not parse.
 *
 * author_domain() takes the values of every From field of a message:
 * exactly one field with exactly one address gives its domain, which must
 * be a host name (is_mail_domain); anything else gives why not.
 */
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::dmarc {

inline constexpr size_t kMaxFromBytes = 16 * 1024;

/* VALUE's addresses; nullopt when it is not an address list. */
std::optional<std::vector<std::string>> parse_addresses(std::string_view value);

struct AuthorDomain {
    std::string domain;    // lower case, when problem is ""
    std::string problem;   // why there is none, for the log
};

AuthorDomain author_domain(const std::vector<std::string>& from_values);

/* RFC 5321's Domain as a host name: two labels or more of letters,
 * digits and inner hyphens (1 to 63 bytes each, 253 in all), the last not
 * all digits; no final dot. */
bool is_mail_domain(std::string_view domain);

}  // namespace portcullis::dmarc
