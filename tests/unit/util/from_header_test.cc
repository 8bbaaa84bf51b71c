/*
 * from_header_test.cc: the RFC 5322 address-list parser (display names,
 * quoted local parts, comments, encoded words, groups, folding, obsolete
 * forms, garbage), what a FromHeader makes of a message's From fields
 * (one author or several, several fields, problems), and is_mail_domain().
 */
#include "util/from_header.h"

#include <gtest/gtest.h>

#include "support/from_fields.h"

namespace portcullis {

namespace {

using Addresses = std::vector<std::string>;
using test_support::from_fields;

TEST(ParseAddressList, BareAddressDomainLowerCased) {
    EXPECT_EQ(parse_addresses("user@example.com"), Addresses{"user@example.com"});
    EXPECT_EQ(parse_addresses("  User@Example.COM  "), Addresses{"User@example.com"});
}

TEST(ParseAddressList, DisplayNames) {
    EXPECT_EQ(parse_addresses("John Doe <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_addresses("<john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_addresses("\"Doe, John\" <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_addresses("\"Joe \\\"Q\\\" Public\" <joe@example.com>"), Addresses{"joe@example.com"});
    EXPECT_EQ(parse_addresses("=?utf-8?q?J=C3=B6rg?= <j@example.com>"), Addresses{"j@example.com"});
    EXPECT_EQ(parse_addresses("J\xc3\xb6rg <j@example.com>"), Addresses{"j@example.com"});
}

TEST(ParseAddressList, QuotedLocalPartsKeepTheirQuotes) {
    EXPECT_EQ(parse_addresses("\"a@b\"@example.com"), Addresses{"\"a@b\"@example.com"});
    EXPECT_EQ(parse_addresses("Name <\"x y@z\"@Example.com>"), Addresses{"\"x y@z\"@example.com"});
    EXPECT_EQ(parse_addresses("\"a\\\"b\"@example.com"), Addresses{"\"a\\\"b\"@example.com"});
}

TEST(ParseAddressList, CommentsNestedAnywhere) {
    EXPECT_EQ(parse_addresses("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
              Addresses{"pete@silly.test"});
    EXPECT_EQ(parse_addresses("(a (nested (deeper)) comment) user@example.com (trailing)"),
              Addresses{"user@example.com"});
    EXPECT_EQ(parse_addresses("user@(between)example.com"), Addresses{"user@example.com"});
    const std::string deep = std::string(8000, '(') + std::string(8000, ')');
    EXPECT_EQ(parse_addresses(deep + "user@example.com"), Addresses{"user@example.com"});
}

TEST(ParseAddressList, Groups) {
    EXPECT_EQ(parse_addresses("Undisclosed recipients:;"), Addresses{});   // parses, with no address
    EXPECT_EQ(parse_addresses("Team: a@x.example, b@y.example;"), (Addresses{"a@x.example", "b@y.example"}));
    EXPECT_EQ(parse_addresses("Team: Ann <a@x.example>;, c@z.example"), (Addresses{"a@x.example", "c@z.example"}));
    // RFC 5322 A.1.3.
    EXPECT_EQ(parse_addresses("A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
                                 "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of "
                                 "the group)"),
              (Addresses{"c@public.example", "joe@example.org", "jdoe@one.test"}));
}

// The headers the naive parser of the policy fields took apart wrongly.
TEST(ParseAddressList, AddressesInDisplayNamesAndCommentsAreNotAddresses) {
    const Addresses good{"b@good.example"};
    EXPECT_EQ(parse_addresses("\"x <a@evil.example>\" <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("\"Evil, <a@evil.example>\" <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("(a@evil.example) b@good.example"), good);
    EXPECT_EQ(parse_addresses("\"a@evil.example\" <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("Evil (<a@evil.example>) <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("b@good.example (\"<a@evil.example>\", a@evil.example)"), good);
    EXPECT_EQ(parse_addresses("<b@good.example> (a@evil.example)"), good);
    EXPECT_EQ(parse_addresses("\"\\\"<a@evil.example>\" <b@good.example>"), good);
}

TEST(ParseAddressList, EncodedWordsAreNeverAddresses) {
    const Addresses good{"b@good.example"};
    EXPECT_EQ(parse_addresses("=?utf-8?q?a=40evil.example?= <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("=?utf-8?b?YUBldmlsLmV4YW1wbGU=?= <b@good.example>"), good);   // "a@evil.example"
    EXPECT_EQ(parse_addresses("=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M=C3=BCller?= <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("\"=?utf-8?q?a@evil.example?=\" <b@good.example>"), good);
    EXPECT_EQ(parse_addresses("Team =?utf-8?q?=3C=3E?=: b@good.example;"), good);
    // RFC 2047 does not allow "@" or "<" in an encoded word of a phrase:
    // such a field does not parse, rather than give evil.example.
    EXPECT_FALSE(parse_addresses("=?us-ascii?q?a@evil.example?= <b@good.example>"));
    EXPECT_FALSE(parse_addresses("=?us-ascii?q?<a@evil.example>?= <b@good.example>"));
    // Alone it reads as an address, whose domain "evil.example?=" is no
    // host name (FromHeader gives it no author domain).
    EXPECT_EQ(parse_addresses("=?us-ascii?q?a@evil.example?="), Addresses{"=?us-ascii?q?a@evil.example?="});
}

TEST(ParseAddressList, SeveralAddresses) {
    EXPECT_EQ(parse_addresses("a@x.example, B <b@y.example>"), (Addresses{"a@x.example", "b@y.example"}));
}

TEST(ParseAddressList, FoldingByCrlfOrBareLf) {
    EXPECT_EQ(parse_addresses("John\r\n Doe <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_addresses("John\n\tDoe\n <john@example.com>"), Addresses{"john@example.com"});
    EXPECT_EQ(parse_addresses("\"John\r\n Doe\" <john@example.com>\r\n"), Addresses{"john@example.com"});
    // A line break without white space after it is no fold.
    EXPECT_FALSE(parse_addresses("John\r\nDoe <john@example.com>"));
    EXPECT_FALSE(parse_addresses("\"John\nDoe\" <john@example.com>"));
}

TEST(ParseAddressList, ObsoleteForms) {
    EXPECT_EQ(parse_addresses("John Q. Public <jqp@example.com>"), Addresses{"jqp@example.com"});
    EXPECT_EQ(parse_addresses("<@relay.example,@other.example:user@example.com>"), Addresses{"user@example.com"});
    EXPECT_EQ(parse_addresses("a@x.example, , b@y.example,"), (Addresses{"a@x.example", "b@y.example"}));
    EXPECT_EQ(parse_addresses("user . name @ example . com"), Addresses{"user.name@example.com"});
    EXPECT_EQ(parse_addresses("Team: , a@x.example, ;"), Addresses{"a@x.example"});
}

TEST(ParseAddressList, DomainLiteralKept) {
    EXPECT_EQ(parse_addresses("user@[192.0.2.1]"), Addresses{"user@[192.0.2.1]"});
}

TEST(ParseAddressList, GarbageDoesNotParse) {
    for (const std::string& value : std::vector<std::string>{
             "not an address", "@example.com", "user@", "<user@example.com", "user@example.com>",
          "\"unterminated@example.com", "(unclosed comment user@example.com", "a@b@c.example", "Smith, John <j@x.com>",
          "user@example.com.", "user@.example.com", "a@x.example b@y.example", "Team: a@x.example",
          "Team: Inner: a@x.example;;", "<user@[192.0.2.1>", "user@example.com\\", std::string("a\0b@example.com", 15)}) {
        EXPECT_FALSE(parse_addresses(value)) << value;
    }
    EXPECT_FALSE(parse_addresses("Team: a@x.example; c@z.example"));   // no comma after the group
    EXPECT_FALSE(parse_addresses(std::string(kMaxFromBytes, ' ') + "a@example.com"));
    EXPECT_EQ(parse_addresses(std::string(kMaxFromBytes - 13, ' ') + "a@example.com"), Addresses{"a@example.com"});
}

TEST(FromHeader, OneAuthor) {
    const FromHeader from = from_fields({" User <USER@Sub.Example.COM>"});
    EXPECT_EQ(from.fields(), 1u);
    EXPECT_EQ(from.address(), "USER@sub.example.com");
    EXPECT_EQ(from.domain(), "sub.example.com");
    EXPECT_EQ(from.domains(), Addresses{"sub.example.com"});
    EXPECT_EQ(from.problem(), "");
}

TEST(FromHeader, TheRealAuthorBehindDisplayNamesCommentsAndEncodedWords) {
    for (const char* value : {" \"x <a@evil.example>\" <b@good.example>",
                              " \"Evil, <a@evil.example>\" <b@good.example>", " (a@evil.example) b@good.example",
                              " =?utf-8?q?a=40evil.example?= <b@good.example>"}) {
        const FromHeader from = from_fields({value});
        EXPECT_EQ(from.address(), "b@good.example") << value;
        EXPECT_EQ(from.domain(), "good.example") << value;
        EXPECT_EQ(from.domains(), Addresses{"good.example"}) << value;
    }
}

TEST(FromHeader, GroupsFoldingAndObsoleteSyntax) {
    EXPECT_EQ(from_fields({" Friends: Ann <ann@good.example>;"}).address(), "ann@good.example");
    EXPECT_EQ(from_fields({" John Q. Public\r\n <@relay.example:jqp@Good.Example>"}).address(), "jqp@good.example");
    EXPECT_EQ(from_fields({" jqp . public @ good . example (old style)"}).address(), "jqp.public@good.example");
    EXPECT_EQ(from_fields({" , b@good.example ,"}).address(), "b@good.example");
}

TEST(FromHeader, SeveralAuthorsGiveNoAddressAndNoDomain) {
    for (const auto& values : std::vector<std::vector<std::string>>{
             {" b@good.example, a@evil.example"}, {" b@good.example", " a@evil.example"},
             {" Team: b@good.example;, a@evil.example"}, {" Team: b@good.example, a@evil.example;"}}) {
        const FromHeader from = from_fields(values);
        EXPECT_EQ(from.address(), std::nullopt) << values.front();
        EXPECT_EQ(from.domain(), std::nullopt) << values.front();
        EXPECT_EQ(from.domains(), (Addresses{"good.example", "evil.example"})) << values.front();
        EXPECT_EQ(from.problem(), "") << values.front();
    }
}

TEST(FromHeader, SeveralFieldsAreOneListOfAddresses) {
    const FromHeader two = from_fields({" a@x.example", " B <b@y.example>"});
    EXPECT_EQ(two.fields(), 2u);
    EXPECT_EQ(two.addresses(), (Addresses{"a@x.example", "b@y.example"}));
    // The same author twice is still one author.
    const FromHeader same = from_fields({" a@x.example", " A <a@X.example>"});
    EXPECT_EQ(same.address(), "a@x.example");
    EXPECT_EQ(same.domain(), "x.example");
    // A field without an address adds no author.
    EXPECT_EQ(from_fields({" Undisclosed:;", " ceo@evil.example"}).address(), "ceo@evil.example");
}

TEST(FromHeader, OneDomainRepeatedIsOneDomain) {
    const FromHeader from = from_fields({" alice@drej.example, Bob <bob@Drej.Example>"});
    EXPECT_EQ(from.domains(), Addresses{"drej.example"});
    EXPECT_EQ(from.domain(), "drej.example");
    EXPECT_EQ(from.address(), std::nullopt);
}

TEST(FromHeader, ProblemsSayWhy) {
    const auto problem = [](const std::vector<std::string>& values) { return from_fields(values).problem(); };
    EXPECT_EQ(problem({}), "no From field");
    EXPECT_EQ(problem({" Undisclosed recipients:;"}), "no address in From");
    EXPECT_EQ(problem({""}), "no address in From");
    EXPECT_EQ(problem({" garbage"}), "From is not an address list");
    EXPECT_EQ(problem({" user@[192.0.2.1]"}), "From domain '[192.0.2.1]' is not a host name");
    EXPECT_EQ(problem({" user@localhost"}), "From domain 'localhost' is not a host name");
    EXPECT_EQ(problem({" user@exa_mple.com"}), "From domain 'exa_mple.com' is not a host name");
    EXPECT_EQ(problem({" =?us-ascii?q?a@evil.example?="}), "From domain 'evil.example?=' is not a host name");
    EXPECT_EQ(problem({std::string(kMaxFromBytes, ' ') + "a@example.com"}), "From is not an address list");
    // The first problem met is the one given.
    EXPECT_EQ(problem({" garbage", " user@localhost"}), "From is not an address list");
    for (const auto& values : std::vector<std::vector<std::string>>{{}, {" garbage"}, {" user@localhost"}}) {
        EXPECT_EQ(from_fields(values).domain(), std::nullopt);
        EXPECT_EQ(from_fields(values).address(), std::nullopt);
    }
}

TEST(FromHeader, AProblemLeavesNoAuthorButKeepsTheDomainsFound) {
    for (const auto& values : std::vector<std::vector<std::string>>{
             {" ceo@evil.example", " garbage <"}, {" garbage <", " ceo@evil.example"},
             {" ceo@evil.example, user@[192.0.2.1]"}}) {
        const FromHeader from = from_fields(values);
        EXPECT_EQ(from.domains(), Addresses{"evil.example"}) << values.front();
        EXPECT_NE(from.problem(), "") << values.front();
        EXPECT_EQ(from.domain(), std::nullopt) << values.front();
        EXPECT_EQ(from.address(), std::nullopt) << values.front();
    }
}

TEST(FromHeader, FieldsPastTheLimitAreNotParsed) {
    FromHeader from;
    for (size_t i = 0; i < kMaxFromFields; ++i) from.add_field(" a@x.example");
    EXPECT_EQ(from.domain(), "x.example");
    from.add_field(" b@y.example");
    EXPECT_EQ(from.fields(), kMaxFromFields + 1);
    EXPECT_EQ(from.domains(), Addresses{"x.example"});
    EXPECT_EQ(from.problem(), "more than 8 From fields");
    EXPECT_EQ(from.domain(), std::nullopt);
}

TEST(FromHeader, DomainsAreReadLenientlyFromWhatDoesNotParse) {
    const auto lenient = [](const std::vector<std::string>& values) { return from_fields(values).lenient_domains(); };
    EXPECT_EQ(lenient({" ceo@victim.example <x@evil.example>"}), (Addresses{"victim.example", "evil.example"}));
    EXPECT_EQ(lenient({" ceo@victim.example;"}), Addresses{"victim.example"});
    EXPECT_EQ(lenient({" CEO@Victim.Example. <"}), Addresses{"victim.example"});
    EXPECT_EQ(lenient({" \"Bob (b@partner.example)\" <unbalanced"}), Addresses{"partner.example"});
    EXPECT_EQ(lenient({" a@b@victim.example, <"}), Addresses{"victim.example"});
    EXPECT_EQ(lenient({" ceo@victim.example?="}), Addresses{"victim.example"}) << "parsed, domain not a host name";
    // Only host names count, each once, and none already parsed.
    EXPECT_TRUE(lenient({" x@[192.0.2.1] <", " a@localhost <", " a@-bad.example <", " @ <", " garbage"}).empty());
    EXPECT_EQ(lenient({" a@x.example", " b@X.example, c@y.example, d@y.example <"}), Addresses{"y.example"});
    // Never from a field that parses, and never authors.
    const FromHeader parsed = from_fields({" \"ceo@victim.example\" <x@evil.example>"});
    EXPECT_TRUE(parsed.lenient_domains().empty());
    const FromHeader broken = from_fields({" ceo@victim.example;"});
    EXPECT_TRUE(broken.domains().empty());
    EXPECT_EQ(broken.domain(), std::nullopt);
    EXPECT_EQ(broken.address(), std::nullopt);
    EXPECT_EQ(broken.problem(), "From is not an address list");
}

TEST(FromHeader, FieldsPastTheLimitAreReadLeniently) {
    FromHeader from;
    for (size_t i = 0; i < kMaxFromFields; ++i) from.add_field(" x@evil.example");
    from.add_field(" ceo@victim.example");
    from.add_field(" x@evil.example");
    EXPECT_EQ(from.domains(), Addresses{"evil.example"});
    EXPECT_EQ(from.lenient_domains(), Addresses{"victim.example"});
}

TEST(FromHeader, DomainsReadLenientlyAreBoundedWithThoseParsed) {
    std::string many;
    for (int i = 0; i < 40; ++i) many += "a@d" + std::to_string(i) + ".example ";
    EXPECT_EQ(from_fields({many + "<"}).lenient_domains().size(), kMaxAuthorDomains);
    const FromHeader mixed = from_fields({" a@p1.example, a@p2.example, a@p3.example", many + "<"});
    EXPECT_EQ(mixed.domains().size(), 3u);
    EXPECT_EQ(mixed.lenient_domains().size(), kMaxAuthorDomains - 3);
    EXPECT_EQ(mixed.lenient_domains().front(), "d0.example");
}

/* The lenient reading looks at each byte a bounded number of times: 16 kB
 * and more of the worst shapes stay quick (no time is asserted here; the
 * suite's timeout is the bound). */
TEST(FromHeader, GarbageOfAnyShapeIsReadLenientlyInOnePass) {
    const auto repeated = [](const std::string& piece, size_t size) {
        std::string text;
        while (text.size() + piece.size() <= size) text += piece;
        return text;
    };
    for (const std::string& piece :
         std::vector<std::string>{"@", "@a", "@a.", "@a.b", "@a-", "a@b.c<", "@" + std::string(70, 'a') + "."}) {
        for (const size_t size : {kMaxFromBytes, 4 * kMaxFromBytes}) {
            const FromHeader from = from_fields({repeated(piece, size) + "<"});
            EXPECT_LE(from.lenient_domains().size(), kMaxAuthorDomains) << piece;
        }
    }
}

TEST(FromHeader, ClearForgetsTheMessage) {
    FromHeader from = from_fields({" a@x.example, garbage@y.example <"});
    from.clear();
    EXPECT_EQ(from.fields(), 0u);
    EXPECT_TRUE(from.addresses().empty());
    EXPECT_TRUE(from.domains().empty());
    EXPECT_TRUE(from.lenient_domains().empty());
    EXPECT_EQ(from.problem(), "no From field");
    from.add_field(" a@x.example");
    EXPECT_EQ(from.domain(), "x.example");
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

}  // namespace portcullis
