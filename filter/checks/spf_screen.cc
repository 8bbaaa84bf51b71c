/*
 * spf_screen.cc: the syntax checks of SPF records, explanations and
 * domain names (see spf_screen.h).
 */
#include "checks/spf_screen.h"

#include <algorithm>

#include "util/text.h"

namespace portcullis::spf {

namespace {

constexpr std::string_view kMacroLetters = "slodiphcrtvSLODIPHCRTV";
constexpr std::string_view kDelimiters = ".-+,/_=";
constexpr int kMaxRightHandParts = 255;   // libspf2 keeps the count in a byte

bool is_printable_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* From the '{' at TEXT[AT]: "%{" letter *DIGIT ["r"] *delimiter "}"
 * (RFC 7208 7.1).  Where the macro ends (its '}'), or npos. */
size_t macro_end(std::string_view text, size_t at) {
    size_t i = at + 1;
    if (i >= text.size() || kMacroLetters.find(text[i]) == std::string_view::npos) return std::string_view::npos;
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
 * there are at most kMaxMacrosPerTerm macros. */
std::string macro_problem(std::string_view text) {
    int macros = 0;
    for (size_t i = text.find('%'); i != std::string_view::npos; i = text.find('%', i + 1)) {
        if (i + 1 < text.size() && (text[i + 1] == '%' || text[i + 1] == '_' || text[i + 1] == '-')) {
            ++i;
            continue;
        }
        const size_t end = i + 1 < text.size() && text[i + 1] == '{' ? macro_end(text, i + 1) : std::string_view::npos;
        if (end == std::string_view::npos) return "malformed macro at " + in_quotes(text.substr(i, 12));
        if (++macros > kMaxMacrosPerTerm) return "more than " + std::to_string(kMaxMacrosPerTerm) + " macros in a term";
        i = end;
    }
    return "";
}

std::string term_problem(std::string_view term) {
    if (term.size() > kMaxTermBytes) return "a term longer than " + std::to_string(kMaxTermBytes) + " bytes";
    return macro_problem(term);
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

std::string spf_record_problem(std::string_view record) {
    if (record.size() > kMaxRecordBytes) return "longer than " + std::to_string(kMaxRecordBytes) + " bytes";
    if (!is_printable_ascii(record)) return "a byte that is not printable ASCII";
    const auto terms = record_terms(record);
    if (terms.size() > kMaxTerms) return "more than " + std::to_string(kMaxTerms) + " terms";
    for (const auto term : terms) {
        std::string problem = term_problem(term);
        if (!problem.empty()) return problem;
    }
    return "";
}

std::string explanation_problem(std::string_view text) {
    if (!is_printable_ascii(text)) return "a byte that is not printable ASCII";
    return term_problem(text);
}

bool is_host_name(std::string_view name) {
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return false;
    size_t labels = 0;
    size_t start = 0;
    while (start <= name.size()) {
        const size_t end = std::min(name.find('.', start), name.size());
        const std::string_view label = name.substr(start, end - start);
        const bool valid = !label.empty() && label.size() <= 63 && std::all_of(label.begin(), label.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_';
        });
        if (!valid) return false;
        ++labels;
        start = end + 1;
    }
    return labels >= 2;
}

}  // namespace portcullis::spf
