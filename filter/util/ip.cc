/*
 * ip.cc: parsing, formatting and prefix matching of IP addresses.
 */
#include "util/ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "util/text.h"

namespace portcullis {

namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    }
    return true;
}

}  // namespace

std::optional<IpAddress> parse_ip(std::string_view text) {
    // "[192.0.2.1]" and "[IPv6:2001:db8::1]" (a HELO address literal, RFC
    // 5321 4.1.3), "IPv6:2001:db8::1" (Sendmail's client address).
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (starts_with_nocase(text, "ipv6:")) text.remove_prefix(5);
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;

    char buffer[INET6_ADDRSTRLEN + 1];
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';

    IpAddress ip;
    if (inet_pton(AF_INET, buffer, ip.bytes.data()) == 1) {
        ip.family = IpAddress::Family::v4;
        return ip;
    }
    if (inet_pton(AF_INET6, buffer, ip.bytes.data()) == 1) {
        ip.family = IpAddress::Family::v6;
        if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), ip.bytes.begin())) {
            std::array<uint8_t, 16> v4{};
            std::copy(ip.bytes.begin() + 12, ip.bytes.end(), v4.begin());
            ip.bytes = v4;
            ip.family = IpAddress::Family::v4;
        }
        return ip;
    }
    return std::nullopt;
}

std::string IpAddress::str() const {
    char buffer[INET6_ADDRSTRLEN];
    const int af = is_v4() ? AF_INET : AF_INET6;
    if (inet_ntop(af, bytes.data(), buffer, sizeof buffer) == nullptr) return "?";
    return buffer;
}

bool IpPrefix::contains(const IpAddress& ip) const {
    if (ip.family != address.family) return false;
    const unsigned full_bytes = length / 8;
    if (!std::equal(address.bytes.begin(), address.bytes.begin() + full_bytes, ip.bytes.begin())) return false;
    const unsigned rest = length % 8;
    if (rest == 0) return true;
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (address.bytes[full_bytes] & mask) == (ip.bytes[full_bytes] & mask);
}

std::string IpPrefix::str() const { return address.str() + "/" + std::to_string(length); }

IpPrefix network_of(const IpAddress& ip, unsigned length) {
    IpPrefix prefix{ip, std::min(length, ip.bit_length())};
    for (unsigned bit = prefix.length; bit < 128; ++bit) {
        prefix.address.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    }
    return prefix;
}

std::optional<IpPrefix> parse_prefix(std::string_view text) {
    const size_t slash = text.find('/');
    const auto ip = parse_ip(text.substr(0, slash));
    if (!ip) return std::nullopt;
    if (slash == std::string_view::npos) return IpPrefix{*ip, ip->bit_length()};

    const std::string_view digits = text.substr(slash + 1);
    const auto parsed = parse_decimal<unsigned>(digits);
    if (!parsed) return std::nullopt;
    unsigned length = *parsed;
    // A mapped IPv6 prefix (::ffff:10.0.0.0/104) was turned into IPv4 above.
    if (ip->is_v4() && text.substr(0, slash).find(':') != std::string_view::npos) {
        if (length < 96) return std::nullopt;
        length -= 96;
    }
    if (length > ip->bit_length()) return std::nullopt;
    return network_of(*ip, length);
}

}  // namespace portcullis
