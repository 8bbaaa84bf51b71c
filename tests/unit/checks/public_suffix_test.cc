/*
 * public_suffix_test.cc: organizational domains (PublicSuffixList, which
 * Checker::organizational_domain() hands the work to) against every
 * checkPublicSuffix case of the Public Suffix List's own test file (read
 * at test time, as the publicsuffix package ships it, with the list
 * itself), a small list for the rule kinds, loading errors, and the
 * Punycode encoder against RFC 3492's samples.
 *
 * The test file's null for a domain that is itself a public suffix is,
 * for DMARC, that domain (public_suffix.h says why); for a name with a
 * leading dot it is "": no organizational domain.
 */
#include "checks/public_suffix.h"

#include <gtest/gtest.h>

#include <fstream>

#include "checks/dmarc.h"
#include "support/temp_dir.h"
#include "util/text.h"

namespace portcullis::dmarc {

namespace {

constexpr const char* kList = "/usr/share/publicsuffix/public_suffix_list.dat";
constexpr const char* kListTests = "/usr/share/doc/publicsuffix/examples/test_psl.txt";

struct PslCase {
    std::string domain;
    std::string expected;   // the organizational domain, as decided above
};

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

/* 'TEXT' or null, one argument of a checkPublicSuffix line. */
std::optional<std::string> argument(std::string_view text) {
    text = trim(text);
    if (text.size() >= 2 && text.front() == '\'' && text.back() == '\'') return std::string(text.substr(1, text.size() - 2));
    return std::nullopt;
}

/* The cases of test_psl.txt with a domain to look at; commented-out lines
 * are not cases. */
std::vector<PslCase> psl_cases() {
    std::ifstream in(kListTests);
    std::vector<PslCase> cases;
    const std::string_view call = "checkPublicSuffix(";
    for (std::string line; std::getline(in, line);) {
        const std::string_view text = line;
        const size_t comma = text.find(',');
        const size_t end = text.rfind(')');
        if (!text.starts_with(call) || comma == std::string_view::npos || end == std::string_view::npos) continue;
        const auto domain = argument(text.substr(call.size(), comma - call.size()));
        const auto registrable = argument(text.substr(comma + 1, end - comma - 1));
        if (!domain) continue;
        const std::string own = domain->starts_with('.') ? "" : to_lower(*domain);
        cases.push_back({*domain, registrable.value_or(own)});
    }
    return cases;
}

class PublicSuffixTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { list_ = std::make_unique<PublicSuffixList>(kList); }
    static void TearDownTestSuite() { list_.reset(); }

    static std::unique_ptr<PublicSuffixList> list_;
};

std::unique_ptr<PublicSuffixList> PublicSuffixTest::list_;

TEST_F(PublicSuffixTest, EveryAsciiCaseOfTheListsTestFile) {
    size_t checked = 0;
    for (const PslCase& test : psl_cases()) {
        if (!is_ascii(test.domain)) continue;
        EXPECT_EQ(list_->organizational_domain(test.domain), test.expected) << test.domain;
        ++checked;
    }
    EXPECT_EQ(checked, 68u);   // test_psl.txt of publicsuffix 20230209
}

TEST_F(PublicSuffixTest, EveryUnicodeCaseOfTheListsTestFileAsTheListWritesIt) {
    size_t checked = 0;
    for (const PslCase& test : psl_cases()) {
        if (is_ascii(test.domain)) continue;
        EXPECT_EQ(list_->organizational_domain(test.domain), test.expected) << test.domain;
        ++checked;
    }
    EXPECT_EQ(checked, 9u);
}

TEST_F(PublicSuffixTest, FinalDotIsIgnoredAndCaseFolded) {
    EXPECT_EQ(list_->organizational_domain("Mail.Example.CO.UK."), "example.co.uk");
    EXPECT_EQ(list_->organizational_domain("example.com.."), "");
    EXPECT_EQ(list_->organizational_domain(""), "");
    EXPECT_EQ(list_->organizational_domain("."), "");
    EXPECT_EQ(list_->organizational_domain("a..example.com"), "");
}

TEST_F(PublicSuffixTest, NamesTooLongForTheDnsHaveNone) {
    EXPECT_EQ(list_->organizational_domain(std::string(63, 'a') + ".example.com"), "example.com");
    EXPECT_EQ(list_->organizational_domain(std::string(64, 'a') + ".example.com"), "");
    std::string long_name;
    while (long_name.size() < 260) long_name += "abcdefghi.";
    EXPECT_EQ(list_->organizational_domain(long_name + "com"), "");
}

TEST(PublicSuffixList, RuleKinds) {
    const test_support::TempDir dir;
    const PublicSuffixList list(dir.write("list.dat",
                                          "// a comment\n"
                                          "com\n"
                                          "*.ck\n"
                                          "!www.ck\n"
                                          "cn\r\n"
                                          "\xe5\x85\xac\xe5\x8f\xb8.cn the rest of the line is no rule\n"
                                          "\n"
                                          "a..b\n"
                                          "foo.*.bar\n"));
    EXPECT_EQ(list.organizational_domain("a.b.example.com"), "example.com");
    EXPECT_EQ(list.organizational_domain("a.b.test.ck"), "b.test.ck");
    EXPECT_EQ(list.organizational_domain("test.ck"), "test.ck");
    EXPECT_EQ(list.organizational_domain("www.www.ck"), "www.ck");
    EXPECT_EQ(list.organizational_domain("shishi.xn--55qx5d.cn"), "shishi.xn--55qx5d.cn");
    EXPECT_EQ(list.organizational_domain("www.shishi.xn--55qx5d.cn"), "shishi.xn--55qx5d.cn");
    EXPECT_EQ(list.organizational_domain("www.shishi.\xe5\x85\xac\xe5\x8f\xb8.cn"), "shishi.\xe5\x85\xac\xe5\x8f\xb8.cn");
    // Not rules: the default "*" applies.
    EXPECT_EQ(list.organizational_domain("x.a..b"), "");
    EXPECT_EQ(list.organizational_domain("x.foo.y.bar"), "y.bar");
    EXPECT_EQ(list.organizational_domain("example.org"), "example.org");
}

TEST(PublicSuffixList, LoadingErrorsNameTheFile) {
    const test_support::TempDir dir;
    const auto message = [](const std::string& path) {
        try {
            PublicSuffixList list(path);
        } catch (const CheckerError& error) {
            return std::string(error.what());
        }
        return std::string("no error");
    };
    const std::string missing = dir.path("missing.dat");
    EXPECT_NE(message(missing).find("cannot open '" + missing + "'"), std::string::npos) << message(missing);
    EXPECT_NE(message(dir.path("")).find("is not a regular file"), std::string::npos);
    const std::string empty = dir.write("empty.dat", "// only comments\n\n");
    EXPECT_EQ(message(empty), "Public Suffix List: '" + empty + "' holds no rule");
}

TEST(ALabel, Rfc3492Samples) {
    // RFC 3492 7.1 (A), (B), (L), (R); the list's own IDN rules.
    EXPECT_EQ(a_label("\u0644\u064a\u0647\u0645\u0627\u0628\u062a\u0643\u0644\u0645\u0648\u0634\u0639\u0631\u0628\u064a"
                      "\u061f"),
              "xn--egbpdaj6bu4bxfgehfvwxn");
    EXPECT_EQ(a_label("\u4ed6\u4eec\u4e3a\u4ec0\u4e48\u4e0d\u8bf4\u4e2d\u6587"), "xn--ihqwcrb4cv8a8dqg056pqjye");
    EXPECT_EQ(a_label("3\u5e74B\u7d44\u91d1\u516b\u5148\u751f"), "xn--3B-ww4c5e180e575a65lsy2b");
    EXPECT_EQ(a_label("\u305d\u306e\u30b9\u30d4\u30fc\u30c9\u3067"), "xn--d9juau41awczczp");
    EXPECT_EQ(a_label("\u516c\u53f8"), "xn--55qx5d");
    EXPECT_EQ(a_label("\u4e2d\u56fd"), "xn--fiqs8s");
    EXPECT_EQ(a_label("b\u00fccher"), "xn--bcher-kva");
}

TEST(ALabel, AsciiAsItIsAndBadInputRefused) {
    EXPECT_EQ(a_label("example"), "example");
    EXPECT_EQ(a_label("\xc3"), std::nullopt);             // cut short
    EXPECT_EQ(a_label("\xc0\xaf"), std::nullopt);         // overlong
    EXPECT_EQ(a_label("\xed\xa0\x80"), std::nullopt);     // surrogate
    EXPECT_EQ(a_label("\xf4\x90\x80\x80"), std::nullopt); // above U+10FFFF
    std::string long_label;
    for (int i = 0; i < 60; ++i) long_label += "\u00fc";
    EXPECT_EQ(a_label(long_label), std::nullopt);         // A-label over 63 bytes
}

}  // namespace

}  // namespace portcullis::dmarc
