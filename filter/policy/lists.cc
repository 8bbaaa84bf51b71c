/*
 * lists.cc: validating list items and matching values against lists and
 * maps.  See lists.h for what each kind matches.
 */
#include "policy/lists.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>

#include "util/text.h"

namespace portcullis::policy {

namespace {

constexpr std::array<std::string_view, 5> kKindNames{"ip", "domain", "address", "regex", "string"};

bool is_label_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c >= 0x80;   // UTF-8 of internationalized names
}

/* A host or domain name: dot-separated labels of letters, digits, '-'
 * and '_', none empty, within the DNS length limits. */
bool is_domain_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    size_t label_length = 0;
    for (const char c : name) {
        if (c == '.') {
            if (label_length == 0) return false;
            label_length = 0;
        } else if (!is_label_char(static_cast<unsigned char>(c)) || ++label_length > 63) {
            return false;
        }
    }
    return label_length > 0;
}

/* A local part as a list may hold it: anything printable without spaces. */
bool is_local_part(std::string_view local) {
    return !local.empty() && std::all_of(local.begin(), local.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte > ' ' && byte != 0x7f;
    });
}

/* Lower case without one trailing dot: the form domains are stored and
 * looked up in. */
std::string fold_domain(std::string_view domain) {
    if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
    return to_lower(domain);
}

}  // namespace

std::string_view list_kind_name(ListKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::optional<ListKind> parse_list_kind(std::string_view name) {
    for (size_t i = 0; i < kKindNames.size(); ++i) {
        if (equals_nocase(name, kKindNames[i])) return static_cast<ListKind>(i);
    }
    return std::nullopt;
}

std::vector<std::string> list_kind_names() { return {kKindNames.begin(), kKindNames.end()}; }

std::unique_ptr<re2::RE2> compile_regex(std::string_view pattern, bool caseless, std::string& error) {
    re2::RE2::Options options;
    options.set_encoding(re2::RE2::Options::EncodingUTF8);
    options.set_log_errors(false);
    options.set_case_sensitive(!caseless);
    auto regex = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
    if (!regex->ok()) {
        error = "bad regex /" + std::string(pattern) + "/: " + regex->error();
        return nullptr;
    }
    return regex;
}

/* --- IpPrefixSet --- */

size_t IpPrefixSet::BitsHash::operator()(const Bits& bits) const {
    // Multiply-xorshift mixing: networks differ mostly in a few bits.
    uint64_t mixed = bits.high * 0x9e3779b97f4a7c15ULL ^ bits.low * 0xc2b2ae3d27d4eb4fULL;
    mixed ^= mixed >> 29;
    return static_cast<size_t>(mixed);
}

IpPrefixSet::Bits IpPrefixSet::bits_of(const IpAddress& ip) {
    Bits bits;
    for (size_t i = 0; i < 8; ++i) {
        bits.high = bits.high << 8 | ip.bytes[i];
        bits.low = bits.low << 8 | ip.bytes[i + 8];
    }
    return bits;
}

IpPrefixSet::Bits IpPrefixSet::mask_of(unsigned length) {
    const auto ones = [](unsigned count) { return count == 0 ? 0 : ~uint64_t{0} << (64 - count); };
    return {ones(std::min(length, 64u)), ones(length > 64 ? length - 64 : 0)};
}

std::vector<IpPrefixSet::Level>& IpPrefixSet::levels(IpAddress::Family family) {
    return family == IpAddress::Family::v4 ? v4_ : v6_;
}

void IpPrefixSet::add(const IpPrefix& prefix) {
    auto& family_levels = levels(prefix.address.family);
    auto level = std::find_if(family_levels.begin(), family_levels.end(),
                              [&](const Level& candidate) { return candidate.length <= prefix.length; });
    if (level == family_levels.end() || level->length != prefix.length) {
        level = family_levels.insert(level, Level{prefix.length, mask_of(prefix.length), {}});
    }
    const Bits bits = bits_of(prefix.address);
    level->networks.insert({bits.high & level->mask.high, bits.low & level->mask.low});
}

bool IpPrefixSet::contains(const IpAddress& ip) const {
    const Bits bits = bits_of(ip);
    for (const Level& level : ip.is_v4() ? v4_ : v6_) {
        if (level.networks.contains({bits.high & level.mask.high, bits.low & level.mask.low})) return true;
    }
    return false;
}

/* --- List --- */

List::List(ListKind kind) : kind_(kind) {}
List::~List() = default;
List::List(List&&) noexcept = default;
List& List::operator=(List&&) noexcept = default;

std::string List::add(std::string_view item, bool caseless) {
    std::string error;
    switch (kind_) {
        case ListKind::ip:
            if (const auto prefix = parse_prefix(item)) {
                prefixes_.add(*prefix);
            } else {
                error = in_quotes(item) + " is not an IP address or CIDR prefix";
            }
            break;
        case ListKind::domain: error = add_domain(item); break;
        case ListKind::address: error = add_address(item); break;
        case ListKind::regex: error = add_regex(item, caseless); break;
        case ListKind::string:
            names_.emplace(item);
            folded_names_.insert(to_lower(item));
            break;
    }
    if (error.empty()) ++count_;
    return error;
}

std::string List::add_domain(std::string_view item) {
    const bool exact = !item.empty() && item.front() == '=';
    std::string domain = fold_domain(exact ? item.substr(1) : item);
    if (!is_domain_name(domain)) return in_quotes(item) + " is not a domain name";
    if (!exact) longest_name_ = std::max(longest_name_, domain.size());
    (exact ? exact_names_ : names_).insert(std::move(domain));
    return "";
}

std::string List::add_address(std::string_view item) {
    const auto [local, domain] = split_address(item);
    const bool has_at = local.size() != item.size();
    const bool local_ok = local.empty() || is_local_part(local);
    const bool domain_ok = domain.empty() || is_domain_name(fold_domain(domain));
    if (!has_at || (local.empty() && domain.empty()) || !local_ok || !domain_ok) {
        return in_quotes(item) + " is not an address: write user@domain, @domain or user@";
    }
    if (local.empty()) {
        address_domains_.insert(fold_domain(domain));
    } else if (domain.empty()) {
        address_locals_.insert(to_lower(local));
    } else {
        addresses_.insert(to_lower(local) + "@" + fold_domain(domain));
    }
    return "";
}

std::string List::add_regex(std::string_view pattern, bool caseless) {
    std::string error;
    auto regex = compile_regex(pattern, caseless, error);
    if (!regex) return error;
    regexes_.push_back(std::move(regex));
    return "";
}

bool List::contains_ip(const IpAddress& ip) const { return kind_ == ListKind::ip && prefixes_.contains(ip); }

bool List::contains_text(std::string_view value) const {
    switch (kind_) {
        case ListKind::ip: {
            const auto ip = parse_ip(value);
            return ip && prefixes_.contains(*ip);
        }
        case ListKind::domain: return contains_domain(value);
        case ListKind::address: return contains_address(value);
        case ListKind::regex: return contains_regex(value);
        case ListKind::string: return names_.contains(value);
    }
    return false;
}

bool List::contains_text_nocase(std::string_view value) const {
    if (kind_ == ListKind::string) return folded_names_.contains(to_lower(value));
    return contains_text(value);
}

bool List::contains_domain(std::string_view value) const {
    const std::string domain = fold_domain(value);
    if (domain.empty()) return false;
    if (exact_names_.contains(domain) || names_.contains(domain)) return true;
    // Each parent domain in turn: a.b.example.com -> b.example.com ->
    // example.com -> com; none longer than the longest item, so that a
    // name of thousands of labels costs what one of 253 bytes does.
    const size_t first = domain.size() > longest_name_ ? domain.size() - longest_name_ - 1 : 0;
    for (size_t dot = domain.find('.', first); dot != std::string::npos; dot = domain.find('.', dot + 1)) {
        if (names_.contains(std::string_view(domain).substr(dot + 1))) return true;
    }
    return false;
}

bool List::contains_address(std::string_view value) const {
    const auto [local, domain] = split_address(value);
    if (!local.empty() && address_locals_.contains(to_lower(local))) return true;
    if (domain.empty()) return false;
    const std::string folded = fold_domain(domain);
    return address_domains_.contains(folded) || addresses_.contains(to_lower(local) + "@" + folded);
}

bool List::contains_regex(std::string_view value) const {
    const re2::StringPiece text(value.data(), value.size());
    return std::any_of(regexes_.begin(), regexes_.end(),
                       [&](const auto& regex) { return re2::RE2::PartialMatch(text, *regex); });
}

/* --- Map --- */

void Map::add(std::string_view key, std::vector<std::string> values) {
    entries_.insert_or_assign(to_lower(key), std::move(values));
}

const std::vector<std::string>& Map::lookup(std::string_view key) const {
    static const std::vector<std::string> kNone;
    const std::string folded = to_lower(key);
    if (const auto entry = entries_.find(folded); entry != entries_.end()) return entry->second;
    const auto at = folded.rfind('@');
    if (at == std::string::npos || at == 0) return kNone;
    const auto domain_entry = entries_.find(std::string_view(folded).substr(at));
    return domain_entry != entries_.end() ? domain_entry->second : kNone;
}

}  // namespace portcullis::policy
