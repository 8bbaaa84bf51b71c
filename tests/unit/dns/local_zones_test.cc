/*
 * local_zones_test.cc: dns::local_zone_of() against its table, and the
 * table against libunbound itself.
 *
 * The second test asks a Resolver whose only forwarder never answers
 * (BlackHole) for a name under each zone unbound.conf(5) lists as a
 * default local zone, at and just past the edges of each range, and for
 * names beside them: libunbound answers a name it serves itself at once,
 * and every other one times out.  local_zone_of() must agree on each.
 */
#include "dns/local_zones.h"

#include <gtest/gtest.h>

#include <optional>

#include "dns/resolver.h"
#include "support/black_hole.h"

namespace portcullis::dns {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;
using test_support::BlackHole;

std::string zone_of(std::string_view name) {
    const LocalZone* zone = local_zone_of(name);
    return zone ? zone->name : "";
}

TEST(LocalZones, ANameUnderAZoneOrTheZoneItself) {
    EXPECT_EQ(zone_of("bl.test"), "test");
    EXPECT_EQ(zone_of("test"), "test");
    EXPECT_EQ(zone_of("2.0.0.127.Zen.Invalid."), "invalid");
    EXPECT_EQ(zone_of(".dbl.onion"), "onion");
    EXPECT_EQ(zone_of("bl.home.arpa"), "home.arpa");
    EXPECT_EQ(zone_of("x.17.172.in-addr.arpa"), "17.172.in-addr.arpa");
    EXPECT_EQ(zone_of("x.100.100.in-addr.arpa"), "100.100.in-addr.arpa");
}

TEST(LocalZones, OnlyWholeLabelsMatch) {
    EXPECT_EQ(zone_of("contest"), "");
    EXPECT_EQ(zone_of("bl.contest"), "");
    EXPECT_EQ(zone_of("test.example"), "");
    EXPECT_EQ(zone_of("bl.example"), "");
    EXPECT_EQ(zone_of("home.arpa.example"), "");
    EXPECT_EQ(zone_of("arpa"), "");
    EXPECT_EQ(zone_of(""), "");
    EXPECT_EQ(zone_of("."), "");
}

TEST(LocalZones, WhatLookupsUnderItGetAndWhy) {
    const LocalZone* localhost = local_zone_of("bl.localhost");
    ASSERT_NE(localhost, nullptr);
    EXPECT_EQ(localhost->answer, "127.0.0.1");
    EXPECT_EQ(localhost->reason, "RFC 6761 special-use name");
    const LocalZone* test = local_zone_of("bl.test");
    ASSERT_NE(test, nullptr);
    EXPECT_EQ(test->answer, "no address");
    EXPECT_EQ(local_zone_of("bl.onion")->reason, "RFC 7686 special-use name");
    EXPECT_EQ(local_zone_of("bl.home.arpa")->reason, "RFC 8375 special-use name");
}

/* "X.in-addr.arpa" for each X from FIRST to LAST, before SUFFIX. */
Strings reverse_range(int first, int last, const std::string& suffix) {
    Strings names;
    for (int octet = first; octet <= last; ++octet) names.push_back("2." + std::to_string(octet) + "." + suffix);
    return names;
}

/* The reverse name of the IPv6 address of 31 zero nibbles then LAST. */
std::string ip6_reverse_ending_in(char last) {
    std::string name(1, last);
    for (int nibble = 1; nibble < 32; ++nibble) name += ".0";
    return name + ".ip6.arpa";
}

TEST(LocalZones, TheTableIsWhatLibunboundAnswersItself) {
    Strings local = {
        "2.0.0.127.bl.localhost", "2.0.0.127.bl.test", "2.0.0.127.bl.invalid", "2.0.0.127.bl.onion",
        "2.0.0.127.bl.home.arpa", "1.0.0.127.in-addr.arpa", "x." + ip6_reverse_ending_in('1'),
        "x." + ip6_reverse_ending_in('0'), "4.3.2.10.in-addr.arpa", "4.3.168.192.in-addr.arpa",
        "3.2.1.0.in-addr.arpa", "4.3.254.169.in-addr.arpa", "4.2.0.192.in-addr.arpa", "4.100.51.198.in-addr.arpa",
        "4.113.0.203.in-addr.arpa", "x.255.255.255.255.in-addr.arpa", "x.d.f.ip6.arpa", "x.8.e.f.ip6.arpa",
        "x.9.e.f.ip6.arpa", "x.a.e.f.ip6.arpa", "x.b.e.f.ip6.arpa", "x.8.b.d.0.1.0.0.2.ip6.arpa",
    };
    for (const auto& names : {reverse_range(16, 31, "172.in-addr.arpa"), reverse_range(64, 127, "100.in-addr.arpa")}) {
        local.insert(local.end(), names.begin(), names.end());
    }
    const Strings asked = {
        "2.0.0.127.bl.example", "2.0.0.127.zen.spamhaus.org", "x.local", "x.test.example", "x.resolver.arpa",
        "x.service.arpa", "2.15.172.in-addr.arpa", "2.32.172.in-addr.arpa", "2.63.100.in-addr.arpa",
        "2.128.100.in-addr.arpa", "4.3.2.11.in-addr.arpa", "4.3.169.192.in-addr.arpa", "x.c.e.f.ip6.arpa",
        "x.7.e.f.ip6.arpa", "x.c.f.ip6.arpa", "x.9.b.d.0.1.0.0.2.ip6.arpa", "x." + ip6_reverse_ending_in('2'),
    };

    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 1s);
    Strings names = local;
    names.insert(names.end(), asked.begin(), asked.end());
    std::vector<std::optional<Answer>> answers(names.size());
    size_t answered = 0;
    EventLoop loop;
    loop.defer([&] {
        for (size_t i = 0; i < names.size(); ++i) {
            resolver.lookup(names[i], RecordType::a, [&answers, &answered, i](Answer answer) {
                answers[i] = std::move(answer);
                ++answered;
            });
        }
    });
    loop.run_until([&] { return answered == names.size(); });
    for (size_t i = 0; i < names.size(); ++i) {
        const bool answered_itself = answers[i]->status != Answer::Status::temperror;
        const bool expected = i < local.size();
        EXPECT_EQ(answered_itself, expected) << names[i];
        EXPECT_EQ(local_zone_of(names[i]) != nullptr, expected) << names[i];
    }
}

}  // namespace
}  // namespace portcullis::dns
