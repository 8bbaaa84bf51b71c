/*
 * local_zones.cc: libunbound's default local zones (see local_zones.h),
 * as unbound.conf(5) of 1.17 lists them, and which one a name lies in.
 */
#include "dns/local_zones.h"

#include <unordered_map>
#include <vector>

#include "util/text.h"

namespace portcullis::dns {

namespace {

constexpr std::string_view kNoAddress = "no address";
constexpr std::string_view kSpecialUse6761 = "RFC 6761 special-use name";
constexpr std::string_view kReservedReverse = "reverse zone of loopback, private or reserved addresses (RFC 6303)";

/* "X.in-addr.arpa" for FIRST.SUFFIX to LAST.SUFFIX. */
void add_range(std::vector<LocalZone>& zones, int first, int last, const std::string& suffix,
               std::string_view reason) {
    for (int octet = first; octet <= last; ++octet) {
        zones.push_back({std::to_string(octet) + "." + suffix, kNoAddress, reason});
    }
}

/* The reverse zone of the IPv6 address of 32 zero nibbles but the last,
 * which is LAST: "LAST.0.0....0.ip6.arpa". */
std::string ip6_reverse_of_last_nibble(char last) {
    std::string name(1, last);
    for (int nibble = 1; nibble < 32; ++nibble) name += ".0";
    return name + ".ip6.arpa";
}

std::vector<LocalZone> default_zones() {
    std::vector<LocalZone> zones = {
        {"localhost", "127.0.0.1", kSpecialUse6761},
        {"test", kNoAddress, kSpecialUse6761},
        {"invalid", kNoAddress, kSpecialUse6761},
        {"onion", kNoAddress, "RFC 7686 special-use name"},
        {"home.arpa", kNoAddress, "RFC 8375 special-use name"},
        {"127.in-addr.arpa", kNoAddress, kReservedReverse},
        {ip6_reverse_of_last_nibble('1'), kNoAddress, kReservedReverse},
        {ip6_reverse_of_last_nibble('0'), kNoAddress, kReservedReverse},
        {"10.in-addr.arpa", kNoAddress, kReservedReverse},
        {"168.192.in-addr.arpa", kNoAddress, kReservedReverse},
        {"0.in-addr.arpa", kNoAddress, kReservedReverse},
        {"254.169.in-addr.arpa", kNoAddress, kReservedReverse},
        {"2.0.192.in-addr.arpa", kNoAddress, kReservedReverse},
        {"100.51.198.in-addr.arpa", kNoAddress, kReservedReverse},
        {"113.0.203.in-addr.arpa", kNoAddress, kReservedReverse},
        {"255.255.255.255.in-addr.arpa", kNoAddress, kReservedReverse},
        {"d.f.ip6.arpa", kNoAddress, kReservedReverse},
        {"8.e.f.ip6.arpa", kNoAddress, kReservedReverse},
        {"9.e.f.ip6.arpa", kNoAddress, kReservedReverse},
        {"a.e.f.ip6.arpa", kNoAddress, kReservedReverse},
        {"b.e.f.ip6.arpa", kNoAddress, kReservedReverse},
        {"8.b.d.0.1.0.0.2.ip6.arpa", kNoAddress, "reverse zone of the IPv6 documentation prefix (RFC 3849)"},
    };
    add_range(zones, 16, 31, "172.in-addr.arpa", kReservedReverse);
    add_range(zones, 64, 127, "100.in-addr.arpa", "reverse zone of the shared address space (RFC 6598)");
    return zones;
}

const std::unordered_map<std::string, LocalZone>& zones_by_name() {
    static const auto zones = [] {
        std::unordered_map<std::string, LocalZone> by_name;
        for (LocalZone& zone : default_zones()) by_name.emplace(zone.name, std::move(zone));
        return by_name;
    }();
    return zones;
}

}  // namespace

const LocalZone* local_zone_of(std::string_view name) {
    const std::string lower = to_lower(without_outer_dots(name));
    const auto& zones = zones_by_name();
    for (size_t start = 0; start < lower.size();) {
        if (const auto zone = zones.find(lower.substr(start)); zone != zones.end()) return &zone->second;
        const size_t dot = lower.find('.', start);
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return nullptr;
}

}  // namespace portcullis::dns
