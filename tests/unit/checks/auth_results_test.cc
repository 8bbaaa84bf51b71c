/*
 * auth_results_test.cc: our Authentication-Results value (RFC 8601) and
 * reading the authserv-id of others.
 */
#include "checks/auth_results.h"

#include <gtest/gtest.h>

namespace portcullis::auth_results {
namespace {

dkim::Signature signature(dkim::Result result, std::string domain, std::string b, unsigned bits = 2048) {
    dkim::Signature sig;
    sig.result = result;
    sig.domain = std::move(domain);
    sig.selector = "sel";
    sig.algorithm = "rsa-sha256";
    sig.b = std::move(b);
    sig.key_bits = bits;
    return sig;
}

dmarc::Verdict dmarc_verdict(dmarc::Result result, std::string domain, std::string published) {
    dmarc::Verdict verdict;
    verdict.result = result;
    verdict.from_domain = std::move(domain);
    verdict.published = std::move(published);
    verdict.policy = verdict.published;
    return verdict;
}

TEST(HeaderValue, EveryMethodOnItsOwnFoldedLine) {
    dkim::Verdict dkim;
    dkim.signatures.push_back(signature(dkim::Result::pass, "example.org", "AbCdEfGhIjKl"));
    dkim.signatures.back().identity = "@mail.example.org";
    Results results;
    results.spf = Spf{"pass", "example.org", false};
    results.dkim = &dkim;
    results.dmarc = Dmarc{dmarc_verdict(dmarc::Result::pass, "example.org", "reject"), "none"};
    EXPECT_EQ(header_value("mx.example.com", results),
              "mx.example.com;\n"
              "\tspf=pass smtp.mailfrom=example.org;\n"
              "\tdkim=pass (2048-bit key) header.d=example.org header.i=@mail.example.org header.s=sel "
              "header.a=rsa-sha256 header.b=AbCdEfGh;\n"
              "\tdmarc=pass (p=reject dis=none) header.from=example.org");
}

TEST(HeaderValue, NoLineIsLongerThan998Bytes) {
    // Five values of 256 bytes that must be quoted, each '"' escaped: one
    // line would be some 2.6 kB.
    const std::string awkward(256, '"');
    dkim::Verdict dkim;
    dkim.signatures.push_back(signature(dkim::Result::fail, awkward, awkward));
    dkim.signatures.back().identity = awkward;
    dkim.signatures.back().selector = awkward;
    dkim.signatures.back().algorithm = awkward;
    Results results;
    results.dkim = &dkim;
    const std::string value = header_value("mx.example.com", results);
    size_t longest = 0;
    for (size_t start = 0; start < value.size();) {
        const size_t end = std::min(value.find('\n', start), value.size());
        longest = std::max(longest, end - start);
        start = end + 1;
    }
    EXPECT_LE(longest, 998u) << value;
    for (const char* name : {" header.d=", "header.i=", "header.s=", "header.a=", "header.b="}) {
        EXPECT_NE(value.find(name), std::string::npos) << name;
    }
    EXPECT_NE(value.find("\n\theader.i="), std::string::npos) << "folded before a property";
}

TEST(HeaderValue, NoMethodIsNone) { EXPECT_EQ(header_value("mx", Results{}), "mx; none"); }

TEST(HeaderValue, HeloIdentityForTheNullSender) {
    Results results;
    results.spf = Spf{"fail", "client.example.net", true};
    EXPECT_EQ(header_value("mx", results), "mx;\n\tspf=fail smtp.helo=client.example.net");
}

TEST(HeaderValue, UnsignedMessageIsDkimNone) {
    dkim::Verdict unsigned_message;
    Results results;
    results.dkim = &unsigned_message;
    EXPECT_EQ(header_value("mx", results), "mx;\n\tdkim=none");
}

TEST(HeaderValue, SignaturePrefixesTellSignaturesApart) {
    dkim::Verdict dkim;
    dkim.signatures.push_back(signature(dkim::Result::pass, "a.example", "SAMEPREFIX1xyz"));
    dkim.signatures.push_back(signature(dkim::Result::fail, "a.example", "SAMEPREFIX2xyz"));
    dkim.signatures.push_back(signature(dkim::Result::permerror, "b.example", "short", 0));
    dkim.signatures.back().reason = "key (revoked)\\";
    Results results;
    results.dkim = &dkim;
    const std::string value = header_value("mx", results);
    EXPECT_NE(value.find("header.b=SAMEPREFIX1;"), std::string::npos) << value;
    EXPECT_NE(value.find("header.b=SAMEPREFIX2;"), std::string::npos) << value;
    // Shorter than 8: whole; the reason is a comment without parentheses.
    EXPECT_NE(value.find("dkim=permerror (key revoked) header.d=b.example"), std::string::npos) << value;
    EXPECT_NE(value.find("header.b=short"), std::string::npos) << value;
}

TEST(HeaderValue, BadValuesFromTheMessageAreQuotedAndCleaned) {
    dkim::Verdict dkim;
    dkim.signatures.push_back(signature(dkim::Result::fail, "evil.example;\r\nX-Injected: 1", "b/c+d=", 1024));
    dkim.signatures.back().identity = "\"odd local\"@evil.example";
    Results results;
    results.dkim = &dkim;
    const std::string value = header_value("mx", results);
    EXPECT_EQ(value.find('\r'), std::string::npos);
    EXPECT_EQ(value.find("\nX-Injected"), std::string::npos);
    EXPECT_NE(value.find("header.d=\"evil.example;X-Injected: 1\""), std::string::npos) << value;
    EXPECT_NE(value.find("header.i=\"\\\"odd local\\\"@evil.example\""), std::string::npos) << value;
    EXPECT_NE(value.find("header.b=\"b/c+d=\""), std::string::npos) << value;
}

TEST(HeaderValue, DmarcWithoutRecordOrDomain) {
    Results results;
    results.dmarc = Dmarc{dmarc_verdict(dmarc::Result::none, "example.org", ""), "none"};
    EXPECT_EQ(header_value("mx", results), "mx;\n\tdmarc=none header.from=example.org");
    results.dmarc = Dmarc{dmarc_verdict(dmarc::Result::permerror, "", ""), "none"};
    EXPECT_EQ(header_value("mx", results), "mx;\n\tdmarc=permerror");
}

TEST(AuthservId, TokenQuotedAfterCommentsAndSpace) {
    EXPECT_EQ(authserv_id_of(" mx.example.com; spf=pass"), "mx.example.com");
    EXPECT_EQ(authserv_id_of("mx.example.com 1; none"), "mx.example.com");
    EXPECT_EQ(authserv_id_of(" (a (nested) comment)\r\n\tmx.example.com;"), "mx.example.com");
    EXPECT_EQ(authserv_id_of("\"mx.example.com\"; dkim=pass"), "mx.example.com");
    EXPECT_EQ(authserv_id_of("mx(comment);"), "mx");
    EXPECT_EQ(authserv_id_of("   "), "");
    EXPECT_EQ(authserv_id_of("(unclosed"), "");
}

TEST(AuthservId, OursWithoutRegardToCase) {
    EXPECT_TRUE(is_ours(" MX.Example.COM; spf=pass", "mx.example.com"));
    EXPECT_FALSE(is_ours(" mx.example.com.evil; spf=pass", "mx.example.com"));
    EXPECT_FALSE(is_ours(" mx.example.com; spf=pass", ""));
}

/* Fields that OpenDMARC's, OpenDKIM's and OpenARC's readers take as
 * mx.example.com's, however the name is broken up (RFC 8601 section 5:
 * they are to be removed). */
TEST(AuthservId, OursAsLenientReadersAssembleIt) {
    for (const std::string_view forged :
         {"mx . example . com; dkim=pass header.d=bank.example", "mx.(x)example.com; dkim=pass header.d=bank.example",
          "mx.exa\"mple\".com; dkim=pass header.d=bank.example",
          "mx.\r\n\texample.com; dkim=pass header.d=bank.example", "mx.example.co\\m; dkim=pass",
          "MX . Example . COM (comment; with a semicolon) 1; spf=pass", "\"mx.example.com\" 2 ; spf=pass",
          "mx.example(a (nested) comment).com", "mx.example.com(x)1; none"}) {
        EXPECT_TRUE(is_ours(forged, "mx.example.com")) << forged;
    }
}

TEST(AuthservId, OtherNamesAreNotOurs) {
    for (const std::string_view other :
         {"other.example; spf=pass", "mx.example.com.evil; spf=pass", "mx . example . com . evil; spf=pass",
          "mx.example.community; spf=pass", "mx.example.com1; spf=pass", "mx.example.com\"1\"; spf=pass",
          "mx.example.(x)community; spf=pass", "(mx.example.com) other.example; spf=pass",
          "other.example; spf=pass (mx.example.com)", "\"mx.example.com;\" x; spf=pass", "   ", "(unclosed"}) {
        EXPECT_FALSE(is_ours(other, "mx.example.com")) << other;
    }
}

}  // namespace
}  // namespace portcullis::auth_results
