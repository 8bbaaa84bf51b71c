/*
 * dmarc_record.cc: DMARC record selection and the screen before
 * libopendmarc (see dmarc_record.h).
 */
#include "checks/dmarc_record.h"

#include <algorithm>
#include <initializer_list>
#include <set>
#include <vector>

#include "util/text.h"

namespace portcullis::dmarc {

namespace {

struct Tag {
    std::string name;   // lower case
    std::string_view value;
};

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* RECORD's name=value pieces, names and values trimmed. */
std::vector<Tag> split_tags(std::string_view record) {
    std::vector<Tag> tags;
    for (;;) {
        const size_t end = std::min(record.find(';'), record.size());
        const std::string_view piece = record.substr(0, end);
        if (const size_t equals = piece.find('='); equals != std::string_view::npos) {
            tags.push_back({to_lower(trim(piece.substr(0, equals))), trim(piece.substr(equals + 1))});
        }
        if (end == record.size()) return tags;
        record.remove_prefix(end + 1);
    }
}

/* RFC 7489 6.4 dmarc-uri: an RFC 3986 URI, taken here as a scheme
 * (a letter, then letters, digits, '+', '-', '.'), ':' and visible ASCII,
 * which also covers the size limit ("!10m"). */
bool is_reporting_uri(std::string_view uri) {
    const size_t colon = uri.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == uri.size() || !is_letter(uri.front())) {
        return false;
    }
    const std::string_view scheme = uri.substr(0, colon);
    const std::string_view rest = uri.substr(colon + 1);
    return std::all_of(scheme.begin(), scheme.end(),
                       [](char c) { return is_letter(c) || is_digit(c) || c == '+' || c == '-' || c == '.'; }) &&
           std::all_of(rest.begin(), rest.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

/* Whether the comma-separated URIs of a rua= VALUE hold a valid one. */
bool names_reporting_uri(std::string_view value) {
    for (;;) {
        const size_t end = std::min(value.find(','), value.size());
        if (is_reporting_uri(trim(value.substr(0, end)))) return true;
        if (end == value.size()) return false;
        value.remove_prefix(end + 1);
    }
}

bool is_policy_tag(std::string_view name) {
    return name == "v" || name == "p" || name == "sp" || name == "adkim" || name == "aspf" || name == "pct";
}

bool is_one_of(std::string_view value, std::initializer_list<std::string_view> words) {
    return std::any_of(words.begin(), words.end(), [&](std::string_view word) { return equals_nocase(value, word); });
}

/* RFC 7489 6.4: pct = 1*3DIGIT, and 6.3: an integer from 0 to 100. */
bool is_percent(std::string_view value) {
    const auto number = value.size() <= 3 ? parse_decimal<unsigned>(value) : std::nullopt;
    return number && *number <= 100;
}

/* Whether TAG, a policy tag, has a value RFC 7489 6.4 allows (its
 * literals without regard to case). */
bool is_valid_value(const Tag& tag) {
    if (tag.name == "p" || tag.name == "sp") return is_one_of(tag.value, {"none", "quarantine", "reject"});
    if (tag.name == "adkim" || tag.name == "aspf") return is_one_of(tag.value, {"r", "s"});
    if (tag.name == "pct") return is_percent(tag.value);
    return true;   // v: is_dmarc_record() chose the record for it
}

/* TAG as a log line may show it: the value only when it is short and
 * printable. */
std::string shown(const Tag& tag) {
    const bool printable = std::all_of(tag.value.begin(), tag.value.end(), [](char c) { return c > ' ' && c < 0x7f; });
    if (printable && tag.value.size() <= kMaxShownValue) return tag.name + "=" + std::string(tag.value);
    return tag.name + "= of " + std::to_string(tag.value.size()) + " bytes";
}

void append_tag(std::string& record, const Tag& tag) {
    if (!record.empty()) record += "; ";
    record += tag.name + "=" + to_lower(tag.value);
}

}  // namespace

bool is_dmarc_record(std::string_view txt) {
    if (txt.empty() || (txt.front() != 'v' && txt.front() != 'V')) return false;
    txt.remove_prefix(1);
    txt = trim(txt);
    if (!txt.starts_with('=')) return false;
    txt = trim(txt.substr(1));
    if (!txt.starts_with("DMARC1")) return false;
    txt = trim(txt.substr(6));
    return txt.empty() || txt.front() == ';';
}

ScreenedRecord screen_record(std::string_view record) {
    ScreenedRecord screened;
    if (record.find('\0') != std::string_view::npos) {
        screened.problem = "it holds a NUL byte";
        return screened;
    }
    std::set<std::string, std::less<>> kept;
    for (const Tag& tag : split_tags(record)) {
        if (tag.name == "rua") screened.reporting_uri = screened.reporting_uri || names_reporting_uri(tag.value);
        if (!is_policy_tag(tag.name) || !kept.insert(tag.name).second) continue;
        if (is_valid_value(tag)) {
            append_tag(screened.policy_tags, tag);
        } else if (tag.name == "p" || tag.name == "sp") {
            if (screened.problem.empty()) screened.problem = shown(tag) + " is not none, quarantine or reject";
            screened.policy_invalid = true;
        } else {
            screened.ignored += (screened.ignored.empty() ? "" : ", ") + shown(tag);
        }
    }
    if (kept.count("p") == 0) {
        screened.problem = "it has no p=";
        screened.policy_invalid = true;
    }
    return screened;
}

}  // namespace portcullis::dmarc
