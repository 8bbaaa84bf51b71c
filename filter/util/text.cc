/*
 * text.cc: string helpers.
 */
#include "util/text.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>

namespace portcullis {

namespace {

char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            const size_t substitution = diagonal + (lower_ascii(a[i - 1]) == lower_ascii(b[j - 1]) ? 0 : 1);
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
            diagonal = above;
        }
    }
    return row[b.size()];
}

}  // namespace

std::string to_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), lower_ascii);
    return out;
}

bool equals_nocase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return lower_ascii(x) == lower_ascii(y);
           });
}

bool ends_with_nocase(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && equals_nocase(text.substr(text.size() - suffix.size()), suffix);
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> entries;
    for (;;) {
        const auto comma = text.find(',');
        entries.emplace_back(trim(text.substr(0, comma)));
        if (comma == std::string_view::npos) return entries;
        text.remove_prefix(comma + 1);
    }
}

std::string_view without_outer_dots(std::string_view name) {
    while (name.starts_with('.')) name.remove_prefix(1);
    while (name.ends_with('.')) name.remove_suffix(1);
    return name;
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
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        });
        if (!valid) return false;
        ++labels;
        start = end + 1;
    }
    return labels >= 2;
}

std::string_view strip_angle_brackets(std::string_view address) {
    address = trim(address);
    if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
        address = trim(address.substr(1, address.size() - 2));
    }
    return address;
}

AddressParts split_address(std::string_view address) {
    const auto at = address.rfind('@');
    if (at == std::string_view::npos) return {address, {}};
    return {address.substr(0, at), address.substr(at + 1)};
}

bool is_mime_token(std::string_view text) {
    if (text.empty()) return false;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= ' ' || byte >= 0x7f || kMimeSpecials.find(c) != std::string_view::npos) return false;
    }
    return true;
}

std::string in_quotes(std::string_view text) {
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict)
    // about "'" + std::string(text) + "'".
    std::string out;
    out.reserve(text.size() + 2);
    out += '\'';
    out += text;
    out += '\'';
    return out;
}

bool is_digits(std::string_view text, size_t min, size_t max) {
    return text.size() >= min && text.size() <= max && text.find_first_not_of("0123456789") == std::string_view::npos;
}

bool is_enhanced_code(std::string_view code) {
    const size_t second = code.find('.', 2);
    return code.size() >= 5 && (code[0] == '2' || code[0] == '4' || code[0] == '5') && code[1] == '.' &&
           second != std::string_view::npos && is_digits(code.substr(2, second - 2), 1, 3) &&
           is_digits(code.substr(second + 1), 1, 3);
}

std::string errno_message(std::string_view what, int error) {
    std::string out(what);
    out += ": ";
    out += std::strerror(error);
    return out;
}

std::string errno_message(std::string_view what) { return errno_message(what, errno); }

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = std::min<size_t>(3, std::max<size_t>(1, word.size() / 3)) + 1;
    for (const auto& candidate : candidates) {
        const size_t distance = edit_distance(word, candidate);
        if (distance < best_distance) {
            best_distance = distance;
            best = candidate;
        }
    }
    return best;
}

}  // namespace portcullis
