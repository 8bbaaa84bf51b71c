/*
 * public_suffix.cc: the Public Suffix List and its matching algorithm
 * (see public_suffix.h), and the Punycode encoder its Unicode rules need.
 *
 * libopendmarc has a reader of the list too (opendmarc_get_tld), but it
 * gets 40 of the 77 checkPublicSuffix cases of the list's own test file
 * (test_psl.txt) wrong in 1.4.2: mixed case ("example.COM" gives ""),
 * unlisted TLDs ("example.example" gives ""), leading dots (".example.com"
 * gives "example.com"), wildcards ("b.c.mm" gives "c.mm", "b.test.ck"
 * "test.ck", "b.c.kobe.jp" "c.kobe.jp") and the A-label forms of Unicode
 * rules ("shishi.xn--55qx5d.cn" gives "xn--55qx5d.cn"); the rest are
 * public suffixes themselves, for which it gives "" or the domain.
 */
#include "checks/public_suffix.h"

#include <algorithm>
#include <cstdint>
#include <ranges>

#include "checks/dmarc.h"
#include "util/files.h"
#include "util/text.h"

namespace portcullis::dmarc {

namespace {

constexpr size_t kMaxListBytes = 16 * 1024 * 1024;   // the list is some 250 kB
constexpr size_t kMaxLabelBytes = 63;
constexpr size_t kMaxNameBytes = 253;

// RFC 3492 5: Punycode's parameters.
constexpr uint32_t kBase = 36;
constexpr uint32_t kTmin = 1;
constexpr uint32_t kTmax = 26;
constexpr uint32_t kSkew = 38;
constexpr uint32_t kDamp = 700;
constexpr uint32_t kInitialBias = 72;
constexpr uint32_t kInitialN = 0x80;

/* TEXT's Unicode code points; nullopt unless it is UTF-8 (shortest
 * forms, no surrogates). */
std::optional<std::u32string> code_points(std::string_view text) {
    static constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};   // by sequence length
    std::u32string points;
    for (size_t i = 0; i < text.size();) {
        const auto lead = static_cast<unsigned char>(text[i]);
        const size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 0;
        if (length == 0 || length > text.size() - i) return std::nullopt;
        char32_t point = length == 1 ? lead : lead & (0x7fu >> length);
        for (size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xc0) != 0x80) return std::nullopt;
            point = (point << 6) | (next & 0x3f);
        }
        if (point < kSmallest[length] || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) return std::nullopt;
        points.push_back(point);
        i += length;
    }
    return points;
}

char punycode_digit(uint32_t value) {
    return static_cast<char>(value < 26 ? 'a' + value : '0' + (value - 26));
}

/* RFC 3492 6.1: the bias after a code point is encoded. */
uint32_t adapt(uint32_t delta, uint32_t points, bool first) {
    delta = first ? delta / kDamp : delta / 2;
    delta += delta / points;
    uint32_t k = 0;
    while (delta > ((kBase - kTmin) * kTmax) / 2) {
        delta /= kBase - kTmin;
        k += kBase;
    }
    return k + (kBase - kTmin + 1) * delta / (delta + kSkew);
}

/* RFC 3492 6.3: DELTA as a generalized variable-length integer. */
void append_delta(std::string& out, uint32_t delta, uint32_t bias) {
    uint32_t rest = delta;
    for (uint32_t k = kBase;; k += kBase) {
        const uint32_t threshold = k <= bias ? kTmin : k >= bias + kTmax ? kTmax : k - bias;
        if (rest < threshold) break;
        out += punycode_digit(threshold + (rest - threshold) % (kBase - threshold));
        rest = (rest - threshold) / (kBase - threshold);
    }
    out += punycode_digit(rest);
}

/* RFC 3492 6.3: the encoding of POINTS (at most a label's worth, so the
 * deltas stay far below overflow). */
std::string punycode(const std::u32string& points) {
    std::string out;
    for (const char32_t point : points) {
        if (point < 0x80) out += static_cast<char>(point);
    }
    const auto basic = static_cast<uint32_t>(out.size());
    if (basic > 0) out += '-';
    uint32_t n = kInitialN;
    uint32_t bias = kInitialBias;
    uint32_t delta = 0;
    for (uint32_t handled = basic; handled < points.size();) {
        char32_t next = 0x10ffff;
        for (const char32_t point : points) {
            if (point >= n && point < next) next = point;
        }
        delta += (next - n) * (handled + 1);
        n = next;
        for (const char32_t point : points) {
            if (point < n) ++delta;
            if (point != n) continue;
            append_delta(out, delta, bias);
            bias = adapt(delta, handled + 1, handled == basic);
            delta = 0;
            ++handled;
        }
        ++delta;
        ++n;
    }
    return out;
}

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

/* The starts of NAME's labels, or nothing when NAME is not a domain name
 * (an empty label, one over 63 bytes, over 253 bytes in all). */
std::vector<size_t> label_starts(std::string_view name) {
    if (name.empty() || name.size() > kMaxNameBytes) return {};
    std::vector<size_t> starts;
    for (size_t start = 0;;) {
        const size_t dot = name.find('.', start);
        const size_t end = dot == std::string_view::npos ? name.size() : dot;
        if (end == start || end - start > kMaxLabelBytes) return {};
        starts.push_back(start);
        if (dot == std::string_view::npos) return starts;
        start = dot + 1;
    }
}

/* NAME with each label an A-label; nullopt when one cannot be. */
std::optional<std::string> ascii_form(std::string_view name) {
    std::string ascii;
    for (size_t start = 0; start <= name.size();) {
        const size_t end = std::min(name.find('.', start), name.size());
        const auto label = a_label(name.substr(start, end - start));
        if (!label) return std::nullopt;
        ascii += (start == 0 ? "" : ".") + *label;
        start = end + 1;
    }
    return ascii;
}

}  // namespace

void PackedNames::add(std::string_view name) {
    starts_.push_back(static_cast<uint32_t>(bytes_.size()));
    bytes_ += name;
}

std::string_view PackedNames::at(size_t index) const {
    const uint32_t end = index + 1 < starts_.size() ? starts_[index + 1] : static_cast<uint32_t>(bytes_.size());
    return std::string_view(bytes_).substr(starts_[index], end - starts_[index]);
}

void PackedNames::pack() {
    std::vector<std::string_view> names;
    names.reserve(starts_.size());
    for (size_t i = 0; i < starts_.size(); ++i) names.push_back(at(i));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string bytes;
    std::vector<uint32_t> starts;
    starts.reserve(names.size());
    for (const auto name : names) {
        starts.push_back(static_cast<uint32_t>(bytes.size()));
        bytes += name;
    }
    bytes.shrink_to_fit();
    bytes_ = std::move(bytes);
    starts_ = std::move(starts);
}

bool PackedNames::contains(std::string_view name) const {
    const auto indexes = std::views::iota(size_t{0}, starts_.size());
    return std::ranges::binary_search(indexes, name, {}, [this](size_t index) { return at(index); });
}

std::optional<std::string> a_label(std::string_view label) {
    if (is_ascii(label)) return std::string(label);
    const auto points = code_points(label);
    if (!points || points->size() > kMaxLabelBytes) return std::nullopt;
    std::string encoded = "xn--" + punycode(*points);
    if (encoded.size() > kMaxLabelBytes) return std::nullopt;
    return encoded;
}

PublicSuffixList::PublicSuffixList(const std::string& path) {
    const FileText file = read_text_file(path, kMaxListBytes);
    if (!file.ok) throw CheckerError("Public Suffix List: " + file.error);
    std::string_view text = file.text;
    size_t rules = 0;
    while (!text.empty()) {
        const size_t line_end = std::min(text.find('\n'), text.size());
        const std::string_view line = text.substr(0, line_end);
        text.remove_prefix(std::min(line_end + 1, text.size()));
        // A rule is the line's first word; the rest may be a comment.
        const std::string_view word = line.substr(0, line.find_first_of(" \t\r"));
        if (word.empty() || word.starts_with("//")) continue;
        if (add_rule(to_lower(word))) ++rules;
    }
    if (rules == 0) throw CheckerError("Public Suffix List: '" + path + "' holds no rule");
    for (auto* kind : {&names_, &wildcards_, &exceptions_}) kind->pack();
}

bool PublicSuffixList::add_rule(std::string_view rule) {
    auto* kind = &names_;
    if (rule.starts_with('!')) {
        kind = &exceptions_;
        rule.remove_prefix(1);
    } else if (rule.starts_with("*.")) {
        kind = &wildcards_;
        rule.remove_prefix(2);
    }
    // The list puts wildcards first only; a rule that does otherwise,
    // or is not a name, is not one this reader understands.
    if (rule.find('*') != std::string_view::npos || label_starts(rule).empty()) return false;
    add_in_both_forms(*kind, rule);
    return true;
}

void PublicSuffixList::add_in_both_forms(PackedNames& rules, std::string_view name) {
    rules.add(name);
    if (const auto ascii = ascii_form(name); ascii && *ascii != name) rules.add(*ascii);
}

/* How many of DOMAIN's last labels are its public suffix. */
size_t PublicSuffixList::suffix_labels(std::string_view domain, const std::vector<size_t>& label_starts) const {
    const size_t count = label_starts.size();
    size_t longest = 1;   // the implicit rule "*"
    size_t exception = 0;
    for (size_t labels = 1; labels <= count; ++labels) {
        const std::string_view suffix = domain.substr(label_starts[count - labels]);
        if (exceptions_.contains(suffix)) exception = labels;
        if (names_.contains(suffix)) longest = labels;
        if (labels >= 2 && wildcards_.contains(domain.substr(label_starts[count - labels + 1]))) longest = labels;
    }
    return exception != 0 ? exception - 1 : longest;
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
    if (domain.ends_with('.')) domain.remove_suffix(1);
    const std::string name = to_lower(domain);
    const std::vector<size_t> starts = label_starts(name);
    if (starts.empty()) return "";
    const size_t labels = std::min(suffix_labels(name, starts) + 1, starts.size());
    return name.substr(starts[starts.size() - labels]);
}

}  // namespace portcullis::dmarc
