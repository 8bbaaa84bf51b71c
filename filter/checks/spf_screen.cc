/*
 * spf_screen.cc: the syntax checks of SPF records, explanations and
 * domain names (see spf_screen.h).
 */
#include "checks/spf_screen.h"

#include <arpa/inet.h>

#include <algorithm>

#include "util/text.h"

namespace portcullis::spf {

namespace {

constexpr std::string_view kMacroLetters = "slodiphvSLODIPHV";
constexpr std::string_view kExplanationLetters = "crtCRT";   // only in exp= text (RFC 7208 7.3)
constexpr std::string_view kDelimiters = ".-+,/_=";
constexpr int kMaxRightHandParts = 255;   // libspf2 keeps the count in a byte

bool is_printable_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* From the '{' at TEXT[AT]: "%{" letter *DIGIT ["r"] *delimiter "}"
 * (RFC 7208 7.1).  Where the macro ends (its '}'), or npos. */
size_t macro_end(std::string_view text, size_t at, bool in_domain) {
    size_t i = at + 1;
    if (i >= text.size()) return std::string_view::npos;
    const bool known = kMacroLetters.find(text[i]) != std::string_view::npos ||
                       (!in_domain && kExplanationLetters.find(text[i]) != std::string_view::npos);
    if (!known) return std::string_view::npos;
    ++i;
    const size_t digits = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i > digits) {
        const auto parts = parse_decimal<int>(text.substr(digits, i - digits));
        if (!parts || *parts == 0 || *parts > kMaxRightHandParts) return std::string_view::npos;
    }
    if (i < text.size() && (text[i] == 'r' || text[i] == 'R')) ++i;
    while (i < text.size() && kDelimiters.find(text[i]) != std::string_view::npos) ++i;
    return i < text.size() && text[i] == '}' ? i : std::string_view::npos;
}

/* "" when every '%' in TEXT starts a well-formed macro or escape and
 * there are at most kMaxMacrosPerTerm macros; IN_DOMAIN: TEXT is a
 * domain-spec, where c, r and t are not allowed. */
std::string macro_problem(std::string_view text, bool in_domain) {
    int macros = 0;
    for (size_t i = text.find('%'); i != std::string_view::npos; i = text.find('%', i + 1)) {
        if (i + 1 < text.size() && (text[i + 1] == '%' || text[i + 1] == '_' || text[i + 1] == '-')) {
            ++i;
            continue;
        }
        const size_t end = i + 1 < text.size() && text[i + 1] == '{' ? macro_end(text, i + 1, in_domain) : std::string_view::npos;
        if (end == std::string_view::npos) return "malformed macro at " + in_quotes(text.substr(i, 12));
        if (++macros > kMaxMacrosPerTerm) return "more than " + std::to_string(kMaxMacrosPerTerm) + " macros in a term";
        i = end;
    }
    return "";
}

bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alpha(char c) { return is_alnum(c) && !is_digit(c); }

/* RFC 7208 toplabel: letters, digits and inner '-', not all digits
 * unless it has a '-'. */
bool is_toplabel(std::string_view label) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; })) return false;
    return label.find('-') != std::string_view::npos || std::any_of(label.begin(), label.end(), is_alpha);
}

/* domain-spec = macro-string domain-end, domain-end = "." toplabel ["."]
 * or a macro. */
std::string domain_spec_problem(std::string_view spec) {
    if (spec.empty()) return "an empty domain";
    std::string problem = macro_problem(spec, true);
    if (!problem.empty() || spec.ends_with('}')) return problem;
    std::string_view name = spec;
    if (name.ends_with('.')) name.remove_suffix(1);
    const size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || !is_toplabel(name.substr(dot + 1))) {
        return in_quotes(spec) + " does not end in a top-level label";
    }
    return "";
}

/* A CIDR length without leading zeros, at most MAX. */
bool is_cidr_length(std::string_view digits, int max) {
    const auto value = parse_decimal<int>(digits);
    return value && *value <= max && !(digits.size() > 1 && digits.front() == '0');
}

/* Takes a trailing PREFIX N (PREFIX "/" or "//") off TEXT if there is
 * one, N into DIGITS; false if N is no CIDR length up to MAX. */
bool take_cidr(std::string_view& text, std::string_view prefix, int max, std::string_view& digits) {
    const size_t slash = text.rfind(prefix);
    if (slash == std::string_view::npos) return true;
    const std::string_view after = text.substr(slash + prefix.size());
    if (after.empty() || !std::all_of(after.begin(), after.end(), is_digit)) return true;
    text = text.substr(0, slash);
    digits = after;
    return is_cidr_length(digits, max);
}

/* A host mechanism's parts: ":domain-spec" or "", and its CIDR lengths. */
struct HostParts {
    std::string_view domain;
    std::string_view v4_cidr;
    std::string_view v6_cidr;
    bool valid = true;
};

HostParts host_parts(std::string_view rest) {
    HostParts parts;
    parts.valid = take_cidr(rest, "//", 128, parts.v6_cidr) && take_cidr(rest, "/", 32, parts.v4_cidr);
    parts.domain = rest;
    return parts;
}

/* What follows "a", "mx": [":" domain-spec] [dual-cidr-length]. */
std::string host_mechanism_problem(std::string_view rest) {
    const HostParts parts = host_parts(rest);
    if (!parts.valid) return "a bad CIDR length";
    if (parts.domain.empty()) return "";
    if (parts.domain.front() != ':') return "a bad mechanism";
    return domain_spec_problem(parts.domain.substr(1));
}

std::string network_problem(std::string_view rest, bool v4) {
    if (!rest.starts_with(':')) return "an address mechanism without an address";
    rest.remove_prefix(1);
    std::string_view digits;
    if (!take_cidr(rest, "/", v4 ? 32 : 128, digits)) return "a bad CIDR length";
    const std::string address(rest);
    unsigned char bytes[16];
    if (inet_pton(v4 ? AF_INET : AF_INET6, address.c_str(), bytes) != 1) return "a bad address " + in_quotes(rest);
    return "";
}

/* A directive's qualifier ("" if none), mechanism name (lower case) and
 * what follows the name. */
struct DirectiveParts {
    std::string_view qualifier;
    std::string name;
    std::string_view rest;
};

DirectiveParts directive_parts(std::string_view term) {
    DirectiveParts parts;
    if (term.front() == '+' || term.front() == '-' || term.front() == '?' || term.front() == '~') {
        parts.qualifier = term.substr(0, 1);
        term.remove_prefix(1);
    }
    const size_t name_end = std::min(term.find_first_of(":/"), term.size());
    parts.name = to_lower(term.substr(0, name_end));
    parts.rest = term.substr(name_end);
    return parts;
}

/* directive = [qualifier] mechanism (RFC 7208 12). */
std::string directive_problem(std::string_view term) {
    const auto [qualifier, name, rest] = directive_parts(term);
    if (name == "all") return rest.empty() ? "" : "a bad 'all'";
    if (name == "include" || name == "exists") {
        return rest.starts_with(':') ? domain_spec_problem(rest.substr(1)) : "'" + name + "' without a domain";
    }
    if (name == "a" || name == "mx") return host_mechanism_problem(rest);
    if (name == "ptr") return rest.empty() ? "" : rest.front() == ':' ? domain_spec_problem(rest.substr(1)) : "a bad 'ptr'";
    if (name == "ip4" || name == "ip6") return network_problem(rest, name == "ip4");
    return "an unknown mechanism " + in_quotes(term);
}

/* modifier = name "=" macro-string; redirect= and exp= take a domain-spec. */
std::string modifier_problem(std::string_view name, std::string_view value) {
    const bool valid_name = !name.empty() && is_alpha(name.front()) &&
                            std::all_of(name.begin(), name.end(), [](char c) {
                                return is_alnum(c) || c == '-' || c == '_' || c == '.';
                            });
    if (!valid_name) return "a bad modifier name " + in_quotes(name);
    if (equals_nocase(name, "redirect") || equals_nocase(name, "exp")) return domain_spec_problem(value);
    return macro_problem(value, false);
}

/* A modifier's name, or "" for a directive: '=' comes before any ':' or '/'. */
std::string_view modifier_name(std::string_view term) {
    const size_t equals = term.find('=');
    if (equals == std::string_view::npos || equals > term.find_first_of(":/")) return "";
    return term.substr(0, equals);
}

/* A well-formed TERM as libspf2 is to get it for a client of that family,
 * or "" to leave it out.  Modifiers other than redirect= (and redirect=
 * when the record has "all") do not change the result.  A CIDR length
 * of the other family does not matter.  ip4 and ip6 "/0", which libspf2
 * refuses, become the two halves of the address space; a and mx "/0"
 * are marked (see spf_screen.h). */
std::string for_libspf2(std::string_view term, bool client_v4, bool has_all) {
    const std::string_view name = modifier_name(term);
    if (!name.empty() || term.front() == '=') return equals_nocase(name, "redirect") && !has_all ? std::string(term) : "";
    const DirectiveParts parts = directive_parts(term);
    const std::string qualifier(parts.qualifier);
    if ((parts.name == "ip4" || parts.name == "ip6") && parts.rest.ends_with("/0")) {
        return parts.name == "ip4" ? qualifier + "ip4:0.0.0.0/1 " + qualifier + "ip4:128.0.0.0/1"
                                   : qualifier + "ip6:::/1 " + qualifier + "ip6:8000::/1";
    }
    if (parts.name != "a" && parts.name != "mx") return std::string(term);
    const HostParts host = host_parts(parts.rest);
    if ((client_v4 ? host.v4_cidr : host.v6_cidr) == "0") {
        const std::string_view target = host.domain.empty() ? "%{d}" : host.domain.substr(1);
        return qualifier + parts.name + ":" + std::string(target) + "." + std::string(kAnyAddress);
    }
    std::string kept = qualifier + parts.name + std::string(host.domain);
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict)
    // about "literal" + std::string.
    if (client_v4 && !host.v4_cidr.empty()) {
        kept += '/';
        kept += host.v4_cidr;
    }
    if (!client_v4 && !host.v6_cidr.empty()) {
        kept += "//";
        kept += host.v6_cidr;
    }
    return kept;
}

std::string term_problem(std::string_view term) {
    if (term.size() > kMaxTermBytes) return "a term longer than " + std::to_string(kMaxTermBytes) + " bytes";
    const std::string_view name = modifier_name(term);
    if (name.empty() && term.front() != '=') return directive_problem(term);
    return modifier_problem(name, term.substr(name.size() + 1));
}

}  // namespace

bool is_spf_record(std::string_view txt) {
    return txt.size() >= 6 && equals_nocase(txt.substr(0, 6), "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

std::vector<std::string_view> record_terms(std::string_view record) {
    std::vector<std::string_view> terms;
    size_t start = 0;
    while (start < record.size()) {
        const size_t end = std::min(record.find(' ', start), record.size());
        if (end > start) terms.push_back(record.substr(start, end - start));
        start = end + 1;
    }
    if (!terms.empty() && is_spf_record(terms.front())) terms.erase(terms.begin());
    return terms;
}

ScreenedRecord screen_record(std::string_view record, bool client_v4) {
    if (record.size() > kMaxRecordBytes) return {"", "longer than " + std::to_string(kMaxRecordBytes) + " bytes"};
    if (!is_printable_ascii(record)) return {"", "a byte that is not printable ASCII"};
    const auto terms = record_terms(record);
    if (terms.size() > kMaxTerms) return {"", "more than " + std::to_string(kMaxTerms) + " terms"};
    int redirects = 0;
    int explanations = 0;
    bool has_all = false;
    for (const auto term : terms) {
        std::string problem = term_problem(term);
        if (!problem.empty()) return {"", std::move(problem)};
        const std::string_view name = modifier_name(term);
        redirects += equals_nocase(name, "redirect");
        explanations += equals_nocase(name, "exp");
        if (redirects > 1 || explanations > 1) return {"", "a modifier given twice"};
        has_all = has_all || (name.empty() && equals_nocase(directive_parts(term).name, "all"));
    }
    ScreenedRecord screened{"v=spf1", ""};
    for (const auto term : terms) {
        const std::string kept = for_libspf2(term, client_v4, has_all);
        if (!kept.empty()) screened.text += ' ' + kept;
    }
    return screened;
}

}  // namespace portcullis::spf
