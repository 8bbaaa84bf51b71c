/*
 * lists_test.cc: what each list kind matches, item validation, maps with
 * the @domain fallback, and large IP lists.
 */
#include "policy/lists.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

namespace portcullis::policy {
namespace {

List make_list(ListKind kind, std::initializer_list<std::string_view> items) {
    List list(kind);
    for (const auto item : items) EXPECT_EQ(list.add(item), "") << item;
    return list;
}

/* LIST holds each of MATCHING and none of OTHERS (text values). */
void expect_members(const List& list, std::initializer_list<std::string_view> matching,
                    std::initializer_list<std::string_view> others) {
    for (const auto value : matching) EXPECT_TRUE(list.contains_text(value)) << value;
    for (const auto value : others) EXPECT_FALSE(list.contains_text(value)) << value;
}

bool has_ip(const List& list, std::string_view text) {
    const auto ip = parse_ip(text);
    EXPECT_TRUE(ip) << text;
    return ip && list.contains_ip(*ip);
}

TEST(ListKinds, NamesRoundTrip) {
    for (const auto& name : list_kind_names()) {
        const auto kind = parse_list_kind(name);
        ASSERT_TRUE(kind) << name;
        EXPECT_EQ(list_kind_name(*kind), name);
    }
    EXPECT_EQ(parse_list_kind("DOMAIN"), ListKind::domain);
    EXPECT_FALSE(parse_list_kind("ipv4"));
}

TEST(IpList, CidrV4) {
    const List list = make_list(ListKind::ip, {"127.0.0.0/8", "192.0.2.0/24", "198.51.100.7"});
    EXPECT_TRUE(has_ip(list, "127.1.2.3"));
    EXPECT_TRUE(has_ip(list, "192.0.2.255"));
    EXPECT_FALSE(has_ip(list, "192.0.3.0"));
    EXPECT_TRUE(has_ip(list, "198.51.100.7"));    // a plain address is a /32
    EXPECT_FALSE(has_ip(list, "198.51.100.8"));
    EXPECT_TRUE(has_ip(list, "::ffff:192.0.2.9"));  // mapped IPv6 is IPv4
    EXPECT_EQ(list.size(), 3u);
}

TEST(IpList, CidrV6) {
    const List list = make_list(ListKind::ip, {"2001:db8::/32", "::1", "2001:db8:ffff::/48", "fe80::/10"});
    EXPECT_TRUE(has_ip(list, "2001:db8:1::5"));
    EXPECT_FALSE(has_ip(list, "2001:db9::1"));
    EXPECT_TRUE(has_ip(list, "::1"));
    EXPECT_FALSE(has_ip(list, "::2"));
    EXPECT_TRUE(has_ip(list, "febf::1"));
    EXPECT_FALSE(has_ip(list, "fec0::1"));
    EXPECT_FALSE(has_ip(list, "127.0.0.1"));   // the families never mix
}

TEST(IpList, EdgeLengths) {
    const List everything_v4 = make_list(ListKind::ip, {"0.0.0.0/0"});
    EXPECT_TRUE(has_ip(everything_v4, "203.0.113.1"));
    EXPECT_FALSE(has_ip(everything_v4, "2001:db8::1"));
    const List odd = make_list(ListKind::ip, {"10.0.0.0/9", "2001:db8::1:0/127"});
    EXPECT_TRUE(has_ip(odd, "10.127.255.255"));
    EXPECT_FALSE(has_ip(odd, "10.128.0.0"));
    EXPECT_TRUE(has_ip(odd, "2001:db8::1:1"));
    EXPECT_FALSE(has_ip(odd, "2001:db8::1:2"));
}

TEST(IpList, TextValuesAreParsed) {
    const List list = make_list(ListKind::ip, {"192.0.2.0/24"});
    EXPECT_TRUE(list.contains_text("192.0.2.1"));
    EXPECT_FALSE(list.contains_text("example.com"));
}

TEST(IpList, LargeListMatchesEveryEntryAndNothingElse) {
    List list(ListKind::ip);
    for (int i = 0; i < 20000; ++i) {
        const std::string item = "10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24";
        ASSERT_EQ(list.add(item), "");
    }
    ASSERT_EQ(list.add("172.16.0.0/12"), "");
    EXPECT_TRUE(has_ip(list, "10.0.0.1"));
    EXPECT_TRUE(has_ip(list, "10.78.31.200"));   // entry 19999 is 10.78.31.0/24
    EXPECT_FALSE(has_ip(list, "10.78.32.1"));
    EXPECT_TRUE(has_ip(list, "172.31.255.255"));
    EXPECT_FALSE(has_ip(list, "172.32.0.0"));
}

TEST(IpList, RejectsWhatIsNotAPrefix) {
    List list(ListKind::ip);
    EXPECT_EQ(list.add("example.com"), "'example.com' is not an IP address or CIDR prefix");
    EXPECT_EQ(list.add("10.0.0.0/33"), "'10.0.0.0/33' is not an IP address or CIDR prefix");
    EXPECT_EQ(list.size(), 0u);
}

TEST(DomainList, SubdomainsAndExactItems) {
    const List list = make_list(ListKind::domain, {"example.com", "=mail.example.org", "Example.NET."});
    expect_members(list, {"example.com", "a.b.EXAMPLE.com", "example.com.", "mail.example.org", "www.example.net"},
                   {"badexample.com", "com", "x.mail.example.org", "example.org", ""});
}

TEST(DomainList, NamesOfThousandsOfLabelsAreLookedUpByTheirLastParents) {
    // Only parents as long as the longest item are looked up, so the
    // parent exactly that long must still be.
    const List list = make_list(ListKind::domain, {"example.com", "mail.example.org"});
    std::string labels;
    while (labels.size() < 16000) labels += "a.";
    expect_members(list, {labels + "example.com", labels + "mail.example.org", "x.mail.example.org"},
                   {labels + "example.org", labels + "ail.example.org", labels});
}

TEST(DomainList, RejectsWhatIsNotADomain) {
    List list(ListKind::domain);
    EXPECT_EQ(list.add("a..b"), "'a..b' is not a domain name");
    EXPECT_EQ(list.add(".example.com"), "'.example.com' is not a domain name");
    EXPECT_EQ(list.add("="), "'=' is not a domain name");
    EXPECT_EQ(list.add("with space.com"), "'with space.com' is not a domain name");
    EXPECT_EQ(list.add("bücher.example"), "");   // UTF-8 names are fine
}

TEST(AddressList, ThreeForms) {
    const List list = make_list(ListKind::address, {"Alice@Example.com", "@lists.example.org", "postmaster@"});
    expect_members(list, {"alice@example.COM", "anyone@LISTS.example.org", "PostMaster@anywhere.net", "postmaster"},
                   {"bob@example.com", "anyone@sub.lists.example.org" /* @domain is that domain only */, ""});
}

TEST(AddressList, RejectsWhatIsNotAnAddress) {
    List list(ListKind::address);
    const std::string hint = " is not an address: write user@domain, @domain or user@";
    EXPECT_EQ(list.add("example.com"), "'example.com'" + hint);
    EXPECT_EQ(list.add("@"), "'@'" + hint);
    EXPECT_EQ(list.add("user@bad..domain"), "'user@bad..domain'" + hint);
}

TEST(RegexList, PartialMatchAndCaseFlag) {
    List list(ListKind::regex);
    ASSERT_EQ(list.add("^mail[0-9]+\\."), "");
    ASSERT_EQ(list.add("\\.example\\.com$", true), "");
    expect_members(list, {"mail12.foo.net", "host.EXAMPLE.com"}, {"MAIL12.foo.net", "host.example.com.evil"});
    EXPECT_EQ(list.add("("), "bad regex /(/: missing ): (");
}

TEST(CompileRegex, UsesPolicyOptions) {
    std::string error;
    const auto regex = compile_regex("é+", false, error);
    ASSERT_TRUE(regex);
    EXPECT_TRUE(re2::RE2::FullMatch("éé", *regex));   // UTF-8: + repeats the whole character
    EXPECT_FALSE(compile_regex("a**", false, error));
    EXPECT_EQ(error, "bad regex /a**/: bad repetition operator: **");
}

TEST(StringList, ExactOrCaseless) {
    const List list = make_list(ListKind::string, {"Pass", "none", "with space"});
    expect_members(list, {"Pass", "with space"}, {"pass", "neutral"});
    EXPECT_TRUE(list.contains_text_nocase("PASS"));
    EXPECT_FALSE(list.contains_text_nocase("neutral"));
}

TEST(List, CaselessLookupIsTheSameForOtherKinds) {
    const List list = make_list(ListKind::domain, {"example.com"});
    EXPECT_TRUE(list.contains_text_nocase("WWW.example.com"));
    EXPECT_FALSE(list.contains_text_nocase("example.org"));
}

TEST(List, IpLookupOnATextListIsFalse) {
    const List list = make_list(ListKind::domain, {"example.com"});
    EXPECT_FALSE(list.contains_ip(*parse_ip("192.0.2.1")));
}

TEST(Map, ExactKeyThenDomain) {
    Map map;
    map.add("Alice@Example.com", {"alice"});
    map.add("@example.net", {"carol", "dave"});
    map.add("plain", {"x"});
    EXPECT_EQ(map.lookup("alice@example.com"), std::vector<std::string>{"alice"});
    EXPECT_EQ(map.lookup("ALICE@EXAMPLE.COM"), std::vector<std::string>{"alice"});
    EXPECT_EQ(map.lookup("bob@example.net"), (std::vector<std::string>{"carol", "dave"}));
    EXPECT_TRUE(map.lookup("bob@example.com").empty());
    EXPECT_EQ(map.lookup("PLAIN"), std::vector<std::string>{"x"});
    EXPECT_TRUE(map.lookup("").empty());
    EXPECT_EQ(map.size(), 3u);
}

TEST(Map, ARepeatedKeyReplacesTheEarlierLine) {
    Map map;
    map.add("k", {"one"});
    map.add("K", {"two"});
    EXPECT_EQ(map.lookup("k"), std::vector<std::string>{"two"});
    EXPECT_EQ(map.size(), 1u);
}

}  // namespace
}  // namespace portcullis::policy
