/*
 * spf_test.cc: spf::check() over a fake DNS: every result, the HELO
 * identity for <>, temperror on a failed or late lookup, the void-lookup
 * and MX limits, include and redirect, and hostile answers the screen
 * stops before libspf2 (the test process would abort otherwise).
 */
#include "checks/spf.h"

#include <gtest/gtest.h>

#include "checks/spf_screen.h"
#include "support/fake_spf_dns.h"

namespace portcullis::spf {

void PrintTo(Result result, std::ostream* out) { *out << result_name(result); }

namespace {

using Type = dns::RecordType;

IpAddress ip(const std::string& text) { return *parse_ip(text); }

class SpfTest : public ::testing::Test {
protected:
    Verdict from(const std::string& client, const std::string& sender, const std::string& helo = "mx.client.example") {
        return check({ip(client), helo, sender}, dns_);
    }
    void record(const std::string& domain, const std::string& text) { dns_.add(domain, Type::txt, {text}); }

    test_support::FakeSpfDns dns_;
};

TEST_F(SpfTest, ListedAddressPasses) {
    record("example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    const Verdict verdict = from("192.0.2.7", "user@Example.COM");
    EXPECT_EQ(verdict.result, Result::pass);
    EXPECT_EQ(verdict.domain, "example.com");
}

TEST_F(SpfTest, EachQualifierGivesItsResult) {
    record("fail.example", "v=spf1 ip4:192.0.2.1 -all");
    record("soft.example", "v=spf1 ~all");
    record("neutral.example", "v=spf1 ?all");
    EXPECT_EQ(from("198.51.100.1", "a@fail.example").result, Result::fail);
    EXPECT_EQ(from("198.51.100.1", "a@soft.example").result, Result::softfail);
    EXPECT_EQ(from("198.51.100.1", "a@neutral.example").result, Result::neutral);
}

TEST_F(SpfTest, Ipv6Client) {
    record("example.com", "v=spf1 ip6:2001:db8::/32 -all");
    EXPECT_EQ(from("2001:db8::25", "a@example.com").result, Result::pass);
    EXPECT_EQ(from("2001:db9::25", "a@example.com").result, Result::fail);
}

TEST_F(SpfTest, NoRecordIsNone) {
    dns_.add("example.com", Type::txt, {"google-site-verification=abc"});
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::none);
    EXPECT_EQ(from("192.0.2.7", "a@nowhere.example").result, Result::none);
}

TEST_F(SpfTest, TwoRecordsArePermerror) {
    dns_.add("example.com", Type::txt, {"v=spf1 -all", "v=spf1 +all"});
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::permerror);
}

TEST_F(SpfTest, UnknownMechanismIsPermerror) {
    record("example.com", "v=spf1 bogus:x -all");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::permerror);
}

TEST_F(SpfTest, NullSenderChecksTheHeloName) {
    record("mx.client.example", "v=spf1 ip4:192.0.2.7 -all");
    const Verdict verdict = from("192.0.2.7", "");
    EXPECT_EQ(verdict.result, Result::pass);
    EXPECT_EQ(verdict.domain, "mx.client.example");
    EXPECT_EQ(from("192.0.2.8", "").result, Result::fail);
    ASSERT_FALSE(dns_.queries.empty());
    EXPECT_EQ(dns_.queries.front(), std::make_pair(std::string("mx.client.example"), Type::txt));
}

TEST_F(SpfTest, NothingToCheckIsNoneWithoutALookup) {
    EXPECT_EQ(from("192.0.2.7", "", "").result, Result::none);
    EXPECT_EQ(from("192.0.2.7", "", "[192.0.2.7]").result, Result::none);
    EXPECT_EQ(from("192.0.2.7", "a@localhost").result, Result::none);
    EXPECT_EQ(from("192.0.2.7", "a@bad..example").result, Result::none);
    EXPECT_TRUE(dns_.queries.empty());
}

TEST_F(SpfTest, FailedRecordLookupIsTemperror) {
    dns_.time_out("example.com");
    const Verdict verdict = from("192.0.2.7", "a@example.com");
    EXPECT_EQ(verdict.result, Result::temperror);
    EXPECT_NE(verdict.reason.find("timeout"), std::string::npos) << verdict.reason;
}

TEST_F(SpfTest, FailedMechanismLookupIsTemperror) {
    record("example.com", "v=spf1 a:mail.example.com -all");
    dns_.time_out("mail.example.com");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::temperror);
}

TEST_F(SpfTest, LookupsAfterTheDeadlineAreTemperror) {
    record("example.com", "v=spf1 ip4:192.0.2.7 -all");
    const Verdict verdict = check({ip("192.0.2.7"), "", "a@example.com"}, dns_, Limits{std::chrono::milliseconds(0), 2});
    EXPECT_EQ(verdict.result, Result::temperror);
    EXPECT_TRUE(dns_.queries.empty());
}

TEST_F(SpfTest, TwoVoidLookupsAreAllowed) {
    record("example.com", "v=spf1 a:void1.example.com a:void2.example.com ~all");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::softfail);
}

TEST_F(SpfTest, ThirdVoidLookupIsPermerror) {
    record("example.com", "v=spf1 a:void1.example.com a:void2.example.com a:void3.example.com ~all");
    const Verdict verdict = from("192.0.2.7", "a@example.com");
    EXPECT_EQ(verdict.result, Result::permerror);
    EXPECT_NE(verdict.reason.find("found nothing"), std::string::npos) << verdict.reason;
}

TEST_F(SpfTest, IncludeThatPassesMatches) {
    record("example.com", "v=spf1 include:_spf.provider.example -all");
    record("_spf.provider.example", "v=spf1 ip4:203.0.113.0/24 -all");
    EXPECT_EQ(from("203.0.113.9", "a@example.com").result, Result::pass);
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::fail);
}

TEST_F(SpfTest, IncludeOfADomainWithoutRecordIsPermerror) {
    record("example.com", "v=spf1 include:none.example -all");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::permerror);
}

TEST_F(SpfTest, RedirectUsesTheOtherRecord) {
    record("example.com", "v=spf1 redirect=_spf.example.com");
    record("_spf.example.com", "v=spf1 mx ~all");
    dns_.add("_spf.example.com", Type::mx, {"mx.example.com"});
    dns_.add("mx.example.com", Type::a, {"192.0.2.25"});
    EXPECT_EQ(from("192.0.2.25", "a@example.com").result, Result::pass);
    EXPECT_EQ(from("192.0.2.26", "a@example.com").result, Result::softfail);
}

TEST_F(SpfTest, MoreThanTenMxNamesIsPermerror) {
    record("example.com", "v=spf1 mx -all");
    std::vector<std::string> names;
    for (int i = 0; i < 11; ++i) names.push_back("mx" + std::to_string(i) + ".example.com");
    dns_.add("example.com", Type::mx, names);
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::permerror);
}

TEST_F(SpfTest, MoreThanTenDnsMechanismsIsPermerror) {
    std::string text = "v=spf1";
    for (int i = 0; i < 11; ++i) {
        std::string host = "h";   // piece by piece: GCC 12 -O3 warns falsely (-Wrestrict) on "h" + string
        host += std::to_string(i);
        host += ".example.com";
        text += " a:" + host;
        dns_.add(host, Type::a, {"198.51.100.1"});
    }
    record("example.com", text + " -all");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::permerror);
}

/* Answers that, unscreened, reach libspf2's aborts or overflows. */
class HostileAnswerTest : public SpfTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(HostileAnswerTest, IsPermerrorAndNeverReachesLibspf2) {
    record("example.com", GetParam());
    const Verdict verdict = from("192.0.2.7", "a@example.com");
    EXPECT_EQ(verdict.result, Result::permerror) << verdict.reason;
    EXPECT_NE(verdict.reason.find("SPF record of example.com"), std::string::npos) << verdict.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Screen, HostileAnswerTest,
    ::testing::Values(std::string("v=spf1 a:x\0y.example -all", 25), "v=spf1 a:caf\xc3\xa9.example -all",
                      "v=spf1 a:\x01.example -all", "v=spf1 " + std::string(2100, 'a'),
                      "v=spf1 exists:" + std::string(300, 'x') + ".example -all",
                      "v=spf1 exists:%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}%{l}.example -all",
                      "v=spf1 exists:%{z}.example -all", "v=spf1 exists:%{d0}.example -all",
                      "v=spf1 exists:%{d999}.example -all", "v=spf1 exists:%{d -all", "v=spf1 a:%x.example -all",
                      [] {
                          std::string many = "v=spf1";
                          for (int i = 0; i < 120; ++i) many += " ip4:192.0.2." + std::to_string(i % 250);
                          return many;
                      }()));

TEST_F(SpfTest, ExplanationIsNotLookedUp) {
    record("example.com", "v=spf1 -all exp=why.example.com");
    dns_.time_out("why.example.com");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::fail);
    EXPECT_EQ(dns_.queries.size(), 1u);
}

TEST_F(SpfTest, LongButValidRecordIsEvaluated) {
    std::string text = "v=spf1";
    for (int i = 0; i < 60; ++i) text += " ip4:198.51.100." + std::to_string(i);
    record("example.com", text + " ip4:192.0.2.7 -all");
    EXPECT_EQ(from("192.0.2.7", "a@example.com").result, Result::pass);
}

TEST_F(SpfTest, RecordLongerThanLibspf2CompilesIsPermerror) {
    std::string text = "v=spf1";
    for (int i = 0; i < 30; ++i) text += " ip6:2001:db8::" + std::to_string(i);
    record("example.com", text + " ip4:192.0.2.7 -all");
    const Verdict verdict = from("192.0.2.7", "a@example.com");
    EXPECT_EQ(verdict.result, Result::permerror);
    EXPECT_NE(verdict.reason.find("more than libspf2 can hold"), std::string::npos) << verdict.reason;
}

TEST(SpfScreen, RecognisesSpfRecords) {
    EXPECT_TRUE(is_spf_record("v=spf1"));
    EXPECT_TRUE(is_spf_record("V=SPF1 -all"));
    EXPECT_FALSE(is_spf_record("v=spf10 -all"));
    EXPECT_FALSE(is_spf_record("v=spf"));
}

TEST(SpfScreen, AcceptsWellFormedMacros) {
    const ScreenedRecord screened = screen_record(
        "v=spf1  exists:%{ir}.%{v}._spf.%{d2} exists:%{l1r-}.x.example -all", true);
    EXPECT_EQ(screened.problem, "");
    EXPECT_EQ(screened.text, "v=spf1 exists:%{ir}.%{v}._spf.%{d2} exists:%{l1r-}.x.example -all");
}

TEST(SpfScreen, LeavesExplanationsOut) {
    EXPECT_EQ(screen_record("v=spf1 exp=%%%_%-.%{d} -all", true).text, "v=spf1 -all");
    EXPECT_NE(screen_record("v=spf1 exp=a.example exp=b.example -all", true).problem, "");
}

TEST(SpfScreen, HostNames) {
    EXPECT_TRUE(is_host_name("mail.example.com."));
    EXPECT_TRUE(is_host_name("_spf.example"));
    EXPECT_FALSE(is_host_name("localhost"));
    EXPECT_FALSE(is_host_name("a..example"));
    EXPECT_FALSE(is_host_name(std::string(64, 'a') + ".example"));
}

TEST(SpfResultNames, AreThePolicyWords) {
    EXPECT_EQ(result_name(Result::softfail), "softfail");
    EXPECT_EQ(result_name(Result::temperror), "temperror");
}

}  // namespace
}  // namespace portcullis::spf
