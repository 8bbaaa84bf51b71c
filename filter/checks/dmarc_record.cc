/*
 * dmarc_record.cc: DMARC record selection and the screen before
 * libopendmarc (see dmarc_record.h).
 */
#include "checks/dmarc_record.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>

#include "util/text.h"

namespace portcullis::dmarc {

namespace {

/* The policy tags; bit I of a set of them stands for kPolicyTags[I]. */
constexpr std::array<std::string_view, 6> kPolicyTags = {"v", "p", "sp", "adkim", "aspf", "pct"};
constexpr unsigned kEveryPolicyTag = (1u << kPolicyTags.size()) - 1;

struct Tag {
    std::string_view name;    // trimmed; a policy tag's in lower case
    std::string_view value;   // trimmed
};

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The first name=value piece of RECORD (pieces are separated by ';';
 * those without '=' are skipped), taken off RECORD; nullopt at its end. */
std::optional<Tag> next_tag(std::string_view& record) {
    while (!record.empty()) {
        const size_t end = std::min(record.find(';'), record.size());
        const std::string_view piece = record.substr(0, end);
        record.remove_prefix(std::min(end + 1, record.size()));
        if (const size_t equals = piece.find('='); equals != std::string_view::npos) {
            return Tag{trim(piece.substr(0, equals)), trim(piece.substr(equals + 1))};
        }
    }
    return std::nullopt;
}

/* The place of NAME in kPolicyTags, without regard to case;
 * kPolicyTags.size() when it is not a policy tag. */
size_t policy_tag_index(std::string_view name) {
    const auto found = std::find_if(kPolicyTags.begin(), kPolicyTags.end(),
                                    [&](std::string_view tag) { return equals_nocase(name, tag); });
    return static_cast<size_t>(found - kPolicyTags.begin());
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
    const std::string name(tag.name);
    if (printable && tag.value.size() <= kMaxShownValue) return name + "=" + std::string(tag.value);
    return name + "= of " + std::to_string(tag.value.size()) + " bytes";
}

void append_tag(std::string& record, const Tag& tag) {
    if (!record.empty()) record += "; ";
    record += tag.name;
    record += '=';
    record += to_lower(tag.value);
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
    // Read up to where nothing later can change the outcome: every policy
    // tag met (later ones repeat them) and a valid rua= found.
    unsigned kept = 0;
    for (std::string_view rest = record; kept != kEveryPolicyTag || !screened.reporting_uri;) {
        const std::optional<Tag> tag = next_tag(rest);
        if (!tag) break;
        if (equals_nocase(tag->name, "rua") && !screened.reporting_uri) {
            screened.reporting_uri = names_reporting_uri(tag->value);
        }
        const size_t index = policy_tag_index(tag->name);
        if (index == kPolicyTags.size() || (kept & (1u << index)) != 0) continue;
        kept |= 1u << index;
        const Tag policy{kPolicyTags[index], tag->value};
        if (is_valid_value(policy)) {
            append_tag(screened.policy_tags, policy);
        } else if (policy.name == "p" || policy.name == "sp") {
            if (screened.problem.empty()) screened.problem = shown(policy) + " is not none, quarantine or reject";
            screened.policy_invalid = true;
        } else {
            screened.ignored += (screened.ignored.empty() ? "" : ", ") + shown(policy);
        }
    }
    if ((kept & (1u << policy_tag_index("p"))) == 0) {
        screened.problem = "it has no p=";
        screened.policy_invalid = true;
    }
    return screened;
}

}  // namespace portcullis::dmarc
