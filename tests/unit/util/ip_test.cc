/*
 * ip_test.cc: address parsing and CIDR matching, IPv4 and IPv6.
 */
#include "util/ip.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

IpAddress ip(const char* text) {
    auto parsed = parse_ip(text);
    EXPECT_TRUE(parsed) << text;
    return parsed.value_or(IpAddress{});
}

TEST(ParseIp, BothFamiliesAndMtaSpellings) {
    EXPECT_EQ(ip("192.0.2.1").str(), "192.0.2.1");
    EXPECT_EQ(ip("2001:DB8::1").str(), "2001:db8::1");
    EXPECT_EQ(ip("IPv6:2001:db8::1").str(), "2001:db8::1");
    EXPECT_EQ(ip("[IPv6:2001:db8::1]").str(), "2001:db8::1");
    EXPECT_EQ(ip("[ipv6:2001:DB8::2]").str(), "2001:db8::2");
    EXPECT_EQ(ip("[192.0.2.1]").str(), "192.0.2.1");
    EXPECT_TRUE(ip("::ffff:192.0.2.1").is_v4());
    EXPECT_FALSE(parse_ip("192.0.2"));
    EXPECT_FALSE(parse_ip("192.0.2.256"));
    EXPECT_FALSE(parse_ip("example.com"));
    EXPECT_FALSE(parse_ip(""));
    EXPECT_FALSE(parse_ip(std::string(100, '1')));
}

TEST(IpPrefix, ContainsV4) {
    const auto net = parse_prefix("192.0.2.0/24").value();
    EXPECT_TRUE(net.contains(ip("192.0.2.200")));
    EXPECT_FALSE(net.contains(ip("192.0.3.1")));
    EXPECT_FALSE(net.contains(ip("::1")));
    const auto odd = parse_prefix("10.0.0.0/9").value();
    EXPECT_TRUE(odd.contains(ip("10.127.255.255")));
    EXPECT_FALSE(odd.contains(ip("10.128.0.0")));
    EXPECT_TRUE(parse_prefix("0.0.0.0/0")->contains(ip("203.0.113.9")));
}

TEST(IpPrefix, ContainsV6AndMapped) {
    const auto net = parse_prefix("2001:db8:1::/48").value();
    EXPECT_TRUE(net.contains(ip("2001:db8:1:ffff::5")));
    EXPECT_FALSE(net.contains(ip("2001:db8:2::5")));
    EXPECT_TRUE(parse_prefix("::ffff:10.0.0.0/104")->contains(ip("10.9.9.9")));
}

TEST(IpPrefix, HostBitsClearedAndBadLengthsRefused) {
    EXPECT_EQ(parse_prefix("192.0.2.77/24")->str(), "192.0.2.0/24");
    EXPECT_EQ(parse_prefix("192.0.2.77")->str(), "192.0.2.77/32");
    EXPECT_FALSE(parse_prefix("192.0.2.0/33"));
    EXPECT_FALSE(parse_prefix("2001:db8::/129"));
    EXPECT_FALSE(parse_prefix("192.0.2.0/"));
    EXPECT_FALSE(parse_prefix("192.0.2.0/x"));
}

TEST(NetworkOf, SubnetGrouping) {
    EXPECT_EQ(network_of(ip("203.0.113.5"), 24).str(), "203.0.113.0/24");
    EXPECT_EQ(network_of(ip("2001:db8:1:2:3:4:5:6"), 64).str(), "2001:db8:1:2::/64");
}

}  // namespace
}  // namespace portcullis
