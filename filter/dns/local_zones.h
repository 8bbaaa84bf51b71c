/*
 * local_zones.h: the names libunbound answers itself.
 *
 * libunbound serves a set of default local zones from memory and never
 * sends a question under them to any server, whatever dns.resolver names
 * (unbound.conf(5), local-zone; our Resolver turns none of them off).  A
 * DNS list under one of them is never consulted.  The zones are those of
 * libunbound 1.17 (Debian 12):
 *   localhost                 every name: 127.0.0.1 and ::1 (RFC 6761)
 *   test, invalid             RFC 6761
 *   onion                     RFC 7686
 *   home.arpa                 RFC 8375
 *   the reverse zones of loopback, private and reserved addresses
 *     (RFC 6303, RFC 6598, RFC 3849): 127, 10, 172.16-31, 192.168, 0,
 *     169.254, the three TEST-NETs, 255.255.255.255, 100.64-127; ::1, ::,
 *     fd00::/8, fe80::/10, 2001:db8::/32
 * Every name under the others has no address (NXDOMAIN or no data).
 *
 * local_zone_of() returns the default local zone NAME lies in (NAME
 * itself or a parent), or null when a server would be asked.  ASCII case
 * and leading or final dots are ignored.
 */
#pragma once

#include <string>
#include <string_view>

namespace portcullis::dns {

struct LocalZone {
    std::string name;          // "test", "10.in-addr.arpa"
    std::string_view answer;   // what a lookup of an address under it gets: "no address", "127.0.0.1"
    std::string_view reason;   // "RFC 6761 special-use name", ...
};

const LocalZone* local_zone_of(std::string_view name);

}  // namespace portcullis::dns
