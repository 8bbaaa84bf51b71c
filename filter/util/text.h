/*
 * text.h: small string helpers used across the daemon.
 *
 * ASCII case folding (mail names are compared without regard to ASCII
 * case; we never fold non-ASCII bytes), trimming, comma-separated lists,
 * splitting an address
 * into local part and domain, the test of a DNS host name, the
 * whole-text decimal numbers that config,
 * policy, URLs, milter macros and store replies all read, the "did
 * you mean" suggestion used by every error message that names an unknown
 * word, and the text of a failed system call ("WHAT: strerror").
 */
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

std::string to_lower(std::string_view text);
bool equals_nocase(std::string_view a, std::string_view b);
bool ends_with_nocase(std::string_view text, std::string_view suffix);
std::string_view trim(std::string_view text);
/* "a, b" -> {"a", "b"}: the comma-separated lists of the configuration
 * (dns.resolver, store.url), white space around each entry dropped; ""
 * is one empty entry. */
std::vector<std::string> split_list(std::string_view text);
/* ".bl.example." -> "bl.example": a DNS name without leading or final dots. */
std::string_view without_outer_dots(std::string_view name);

/* NAME is a host name as DNS lookups take it (RFC 7208 4.3's test of a
 * domain to check, and what a DNS list's or a DKIM key's query name must
 * be): two labels or more of letters, digits, '-' and '_', each of 1 to
 * 63 bytes, 253 in all; one final dot allowed. */
bool is_host_name(std::string_view name);

/* "<User@Example.COM>" -> "User@Example.COM": strip one pair of angle
 * brackets and surrounding white space, as MTAs hand envelope addresses. */
std::string_view strip_angle_brackets(std::string_view address);

/* Local part and domain of an address; the domain is empty without '@'.
 * The split is at the last '@', so quoted local parts with '@' survive. */
struct AddressParts {
    std::string_view local;
    std::string_view domain;
};
AddressParts split_address(std::string_view address);

/* TEXT as a decimal T, all of it: no sign for unsigned T, no '+', no
 * spaces; nullopt for anything else, for "" and on overflow. */
template <typename T>
std::optional<T> parse_decimal(std::string_view text) {
    T value{};
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
    return value;
}

/* TEXT is a non-empty token of RFC 2045 (printable ASCII without spaces
 * and without ()<>@,;:\\"/[]?=): a MIME parameter or an
 * Authentication-Results value that needs no quoting. */
bool is_mime_token(std::string_view text);
inline constexpr std::string_view kMimeSpecials = "()<>@,;:\\\"/[]?=";

/* 'TEXT': how error messages quote what an administrator wrote. */
std::string in_quotes(std::string_view text);

/* TEXT is MIN to MAX ASCII digits, nothing else. */
bool is_digits(std::string_view text, size_t min = 1, size_t max = std::string_view::npos);

/* An RFC 3463 enhanced status code, CLASS.SUBJECT.DETAIL: class 2, 4 or
 * 5, then 1 to 3 digits twice (what libmilter accepts too). */
bool is_enhanced_code(std::string_view code);

/* "bind /run/x.sock: Permission denied": WHAT, then the system's text
 * for the error number ERROR; without ERROR, errno's (read before
 * anything else happens). */
std::string errno_message(std::string_view what, int error);
std::string errno_message(std::string_view what);

/* The candidate closest to WORD by edit distance, or "" if none is close
 * enough to be a plausible typo (distance at most a third of its length,
 * and at most 3). */
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace portcullis
