/*
 * ip.h: IPv4 and IPv6 addresses and CIDR prefixes.
 *
 * IpAddress holds either family in 16 bytes (IPv4 in the first 4).
 * parse_ip() takes the textual forms inet_pton(3) accepts, plus the
 * "IPv6:" prefix Sendmail and Postfix put in front of IPv6 literals and
 * the brackets of an address literal ("[192.0.2.1]", "[IPv6:::1]"), and
 * maps IPv4-mapped IPv6 (::ffff:a.b.c.d) to plain IPv4 so that one list
 * entry matches either spelling.  IpPrefix is an address and a length;
 * parse_prefix() accepts "ADDR" (a host prefix) or "ADDR/LEN" and rejects
 * host bits set beyond LEN only when asked to be strict.
 */
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

struct IpAddress {
    enum class Family : uint8_t { v4, v6 };
    Family family = Family::v4;
    std::array<uint8_t, 16> bytes{};

    unsigned bit_length() const { return family == Family::v4 ? 32 : 128; }
    bool is_v4() const { return family == Family::v4; }
    std::string str() const;
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

std::optional<IpAddress> parse_ip(std::string_view text);

struct IpPrefix {
    IpAddress address;
    unsigned length = 0;

    bool contains(const IpAddress& ip) const;
    std::string str() const;
};

/* Parse "ADDR" or "ADDR/LEN".  Host bits beyond LEN are cleared. */
std::optional<IpPrefix> parse_prefix(std::string_view text);

/* The network of an address at a prefix length (host bits cleared). */
IpPrefix network_of(const IpAddress& ip, unsigned length);

}  // namespace portcullis
