/*
 * from_header_test.cc: the RFC 5322 address-list parser behind
 * dmarc::parse_address_list() (display names, quoted local parts,
 * comments, groups, folding, obsolete forms, garbage), the From verdict
 * of author_domain(), and is_mail_domain().
 */
#include "checks/from_header.h"

#include <gtest/gtest.h>

#include "checks/dmarc.h"

namespace portcullis::dmarc {

namespace {

using Addresses = std::vector<std::string>;

TEST(ParseAddressList, BareAddressDomainLowerCased) {
    EXPECT_EQ(parse_address_list("user@example.com"), Addresses{"user@example.com"});
    EXPECT_EQ(parse_address_list("  User@Example.COM  "), Addresses{"User@example.com"});
}

TEST(ParseAddressList, DisplayNames) {
    EXPECT_EQ(parse_address_list("John Doe <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_address_list("<john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_address_list("\"Doe, John\" <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_address_list("\"Joe \\\"Q\\\" Public\" <joe@example.com>"), Addresses{"joe@example.com"});
    EXPECT_EQ(parse_address_list("=?utf-8?q?J=C3=B6rg?= <j@example.com>"), Addresses{"j@example.com"});
    EXPECT_EQ(parse_address_list("J\xc3\xb6rg <j@example.com>"), Addresses{"j@example.com"});
}

TEST(ParseAddressList, QuotedLocalPartsKeepTheirQuotes) {
    EXPECT_EQ(parse_address_list("\"a@b\"@example.com"), Addresses{"\"a@b\"@example.com"});
    EXPECT_EQ(parse_address_list("Name <\"x y@z\"@Example.com>"), Addresses{"\"x y@z\"@example.com"});
    EXPECT_EQ(parse_address_list("\"a\\\"b\"@example.com"), Addresses{"\"a\\\"b\"@example.com"});
}

TEST(ParseAddressList, CommentsNestedAnywhere) {
    EXPECT_EQ(parse_address_list("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
              Addresses{"pete@silly.test"});
    EXPECT_EQ(parse_address_list("(a (nested (deeper)) comment) user@example.com (trailing)"),
              Addresses{"user@example.com"});
    EXPECT_EQ(parse_address_list("user@(between)example.com"), Addresses{"user@example.com"});
    const std::string deep = std::string(8000, '(') + std::string(8000, ')');
    EXPECT_EQ(parse_address_list(deep + "user@example.com"), Addresses{"user@example.com"});
}

TEST(ParseAddressList, Groups) {
    EXPECT_EQ(parse_address_list("Undisclosed recipients:;"), Addresses{});
    EXPECT_EQ(parse_addresses("Undisclosed recipients:;"), Addresses{});   // parses, with no address
    EXPECT_EQ(parse_address_list("Team: a@x.example, b@y.example;"), (Addresses{"a@x.example", "b@y.example"}));
    EXPECT_EQ(parse_address_list("Team: Ann <a@x.example>;, c@z.example"), (Addresses{"a@x.example", "c@z.example"}));
    // RFC 5322 A.1.3.
    EXPECT_EQ(parse_address_list("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
                                 "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of "
                                 "the group)"),
              (Addresses{"c@public.example", "joe@example.org", "jdoe@one.test"}));
}

TEST(ParseAddressList, SeveralAddresses) {
    EXPECT_EQ(parse_address_list("a@x.example, B <b@y.example>"), (Addresses{"a@x.example", "b@y.example"}));
}

TEST(ParseAddressList, FoldingByCrlfOrBareLf) {
    EXPECT_EQ(parse_address_list("John\r\n Doe <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_address_list("John\n\tDoe\n <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_address_list("\"John\r\n Doe\" <john@example.com>\r\n"), Addresses{"john@example.com"});
    // A line break without white space after it is no fold.
    EXPECT_EQ(parse_address_list("John\r\nDoe <john@example.com>"), Addresses{});
    EXPECT_EQ(parse_address_list("\"John\nDoe\" <john@example.com>"), Addresses{});
}

TEST(ParseAddressList, ObsoleteForms) {
    EXPECT_EQ(parse_address_list("John Q. Public <jqp@example.com>"), Addresses{"jqp@example.com"});
    EXPECT_EQ(parse_address_list("<@relay.example,@other.example:user@example.com>"), Addresses{"user@example.com"});
    EXPECT_EQ(parse_address_list("a@x.example, , b@y.example,"), (Addresses{"a@x.example", "b@y.example"}));
    EXPECT_EQ(parse_address_list("user . name @ example . com"), Addresses{"user.name@example.com"});
    EXPECT_EQ(parse_address_list("Team: , a@x.example, ;"), Addresses{"a@x.example"});
}

TEST(ParseAddressList, DomainLiteralKept) {
    EXPECT_EQ(parse_address_list("user@[192.0.2.1]"), Addresses{"user@[192.0.2.1]"});
}

TEST(ParseAddressList, GarbageGivesNothing) {
    for (const std::string& value : std::vector<std::string>{
             "", "not an address", "@example.com", "user@", "<user@example.com", "user@example.com>",
          "\"unterminated@example.com", "(unclosed comment user@example.com", "a@b@c.example", "Smith, John <j@x.com>",
          "user@example.com.", "user@.example.com", "a@x.example b@y.example", "Team: a@x.example",
          "Team: Inner: a@x.example;;", "<user@[192.0.2.1>", "user@example.com\\", std::string("a\0b@example.com", 15)}) {
        EXPECT_EQ(parse_address_list(value), Addresses{}) << value;
    }
    EXPECT_EQ(parse_address_list("Team: a@x.example; c@z.example"), Addresses{});   // no comma after the group
    EXPECT_EQ(parse_address_list(std::string(kMaxFromBytes, ' ') + "a@example.com"), Addresses{});
}

TEST(AuthorDomain, ExactlyOneAddressInOneField) {
    const AuthorDomain author = author_domain({"User <USER@Sub.Example.COM>"});
    EXPECT_EQ(author.domain, "sub.example.com");
    EXPECT_EQ(author.problem, "");
}

TEST(AuthorDomain, AnythingElseSaysWhy) {
    EXPECT_EQ(author_domain({}).problem, "no From field");
    EXPECT_EQ(author_domain({"a@example.com", "a@example.com"}).problem, "several From fields");
    EXPECT_EQ(author_domain({"a@x.example, b@x.example"}).problem, "several From addresses");
    EXPECT_EQ(author_domain({"Undisclosed:;"}).problem, "no address in From");
    EXPECT_EQ(author_domain({"garbage"}).problem, "From is not an address list");
    EXPECT_EQ(author_domain({"user@[192.0.2.1]"}).problem, "From domain '[192.0.2.1]' is not a host name");
    EXPECT_EQ(author_domain({"user@localhost"}).problem, "From domain 'localhost' is not a host name");
    EXPECT_EQ(author_domain({"user@exa_mple.com"}).domain, "");
}

TEST(IsMailDomain, HostNamesOnly) {
    EXPECT_TRUE(is_mail_domain("example.com"));
    EXPECT_TRUE(is_mail_domain("a-b.123.example"));
    EXPECT_TRUE(is_mail_domain("xn--85x722f.xn--55qx5d.cn"));
    EXPECT_TRUE(is_mail_domain(std::string(63, 'a') + ".example"));
    EXPECT_FALSE(is_mail_domain(std::string(64, 'a') + ".example"));
    std::string longest;
    while (longest.size() + 10 <= 253) longest += "abcdefghi.";
    longest += std::string(253 - longest.size(), 'x');
    EXPECT_TRUE(is_mail_domain(longest));
    EXPECT_FALSE(is_mail_domain(longest + "x"));
    for (const char* bad : {"", "example", "-a.example", "a-.example", "1.2.3.4", "example.com.", ".example.com",
                            "ex..com", "ex_ample.com", "ex ample.com", "b\xc3\xbc" "cher.example"}) {
        EXPECT_FALSE(is_mail_domain(bad)) << bad;
    }
}

}  // namespace

}  // namespace portcullis::dmarc
