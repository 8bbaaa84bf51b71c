/*
 * spf_test.cc: spf::check() over a fake DNS: every result, the HELO
 * identity for <>, temperror on a failed or late lookup, the void-lookup
 * and MX limits, include and redirect, and hostile answers the screen
 * stops before libspf2 (the test process would abort otherwise).
 *
 * The fake answers at once, so check() gives its verdict on the first
 * call, except in the replay tests: there the fake answers one question
 * per round, and check() is called again after each answer, as a session
 * does; the verdict must be the one answering at once gives, for records
 * with includes, redirects, mx, ptr, a, exists and macros, and at the
 * void-lookup, MX and 10-term limits.
 */
#include "checks/spf.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "checks/spf_screen.h"
#include "dns/lookups.h"
#include "support/fake_spf_dns.h"

namespace portcullis::spf {

void PrintTo(Result result, std::ostream* out) { *out << result_name(result); }

namespace {

using Type = dns::RecordType;

IpAddress ip(const std::string& text) { return *parse_ip(text); }

/* REQUEST's verdict, which a DNS that answers at once gives at the first call. */
Verdict at_once(const Request& request, test_support::FakeSpfDns& dns, const Limits& limits = {}) {
    const auto verdict = check(request, dns, limits);
    if (!verdict) throw std::logic_error("check() waits although every answer is in");
    return *verdict;
}

class SpfTest : public ::testing::Test {
protected:
    Verdict from(const std::string& client, const std::string& sender, const std::string& helo = "mx.client.example") {
        return at_once({ip(client), helo, sender}, dns_);
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
    dns_.hold_answers();
    // The deadline is past when the first question finds no answer: the
    // verdict comes at once, and no more questions are asked.
    const auto verdict = check({ip("192.0.2.7"), "", "a@example.com"}, dns_, Limits{std::chrono::milliseconds(0), 2});
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->result, Result::temperror);
    EXPECT_EQ(verdict->reason, "lookups took longer than 0ms");
    EXPECT_EQ(dns_.queries.size(), 1u);
}

TEST_F(SpfTest, AnswersThatCameBeforeTheDeadlineAreUsedAfterIt) {
    record("example.com", "v=spf1 include:_spf.example.com -all");
    record("_spf.example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    dns_.hold_answers();
    const Request request{ip("192.0.2.7"), "", "a@example.com"};
    ASSERT_EQ(test_support::checked(request, dns_).result, Result::pass);
    // Asked again once the deadline is past, the check has all it needs.
    const auto again = check(request, dns_, Limits{std::chrono::milliseconds(0), 2});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result, Result::pass);
}

TEST_F(SpfTest, WaitsWhileAnAnswerIsMissingAndAsksEachQuestionOnce) {
    record("example.com", "v=spf1 ip4:192.0.2.7 -all");
    dns_.hold_answers();
    const Request request{ip("192.0.2.7"), "", "a@example.com"};
    EXPECT_FALSE(check(request, dns_));
    EXPECT_FALSE(check(request, dns_));
    EXPECT_EQ(dns_.out(), 1u);
    ASSERT_TRUE(dns_.release_next());
    const auto verdict = check(request, dns_);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->result, Result::pass);
}

TEST_F(SpfTest, NothingToCheckNeverWaits) {
    dns_.hold_answers();
    EXPECT_TRUE(check({ip("192.0.2.7"), "", ""}, dns_));
    EXPECT_TRUE(check({ip("192.0.2.7"), "", "a@bad..example"}, dns_));
    EXPECT_EQ(dns_.out(), 0u);
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

/* Each answer starts the check over with the ones before it: the records
 * a check goes through are bounded, whatever a hostile domain answers. */
TEST_F(SpfTest, AnswersOfThousandsOfRecordsArePermerror) {
    std::vector<std::string> addresses;
    for (int i = 0; i < 1000; ++i) addresses.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    record("example.com", "v=spf1 a:one.example.com a:two.example.com a:three.example.com -all");
    dns_.add("one.example.com", Type::a, addresses);
    dns_.add("two.example.com", Type::a, addresses);
    dns_.add("three.example.com", Type::a, {"192.0.2.7"});
    const Verdict verdict = from("192.0.2.7", "a@example.com");
    EXPECT_EQ(verdict.result, Result::permerror);
    EXPECT_EQ(verdict.reason, "the answers hold more than 2000 records");
    // Just under the bound (1 + 1000 + 998 + 1 records) the check runs to its end.
    addresses.resize(998);
    record("other.example", "v=spf1 a:one.example.com a:four.example.com a:three.example.com -all");
    dns_.add("four.example.com", Type::a, addresses);
    EXPECT_EQ(from("192.0.2.7", "a@other.example").result, Result::pass);
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

/* One DNS and one identity, for the replay tests. */
struct Scenario {
    std::string name;
    std::vector<std::tuple<std::string, Type, std::string>> records;
    std::vector<std::string> timeouts;
    std::string client = "192.0.2.7";
    std::string sender = "a@example.com";
    std::string helo = "mx.client.example";
    Result expected = Result::pass;
};

void PrintTo(const Scenario& scenario, std::ostream* out) { *out << scenario.name; }

std::vector<std::tuple<std::string, Type, std::string>> numbered(const std::string& first, const std::string& domain,
                                                                  Type type, const std::string& data, int count) {
    std::vector<std::tuple<std::string, Type, std::string>> records;
    for (int i = 0; i < count; ++i) records.emplace_back(first + std::to_string(i) + "." + domain, type, data);
    return records;
}

/* "v=spf1 a:h0.example.com ... a:hN-1.example.com -all" and the A records of the hosts. */
Scenario many_a_terms(const std::string& name, int terms, Result expected) {
    Scenario scenario{name, numbered("h", "example.com", Type::a, "198.51.100.1", terms), {}};
    std::string text = "v=spf1";
    for (int i = 0; i < terms; ++i) text += " a:h" + std::to_string(i) + ".example.com";
    scenario.records.emplace_back("example.com", Type::txt, text + " ip4:192.0.2.7 -all");
    scenario.expected = expected;
    return scenario;
}

Scenario many_mx_names(const std::string& name, int names, Result expected) {
    Scenario scenario{name, {{"example.com", Type::txt, "v=spf1 mx -all"}}, {}};
    for (int i = 0; i < names; ++i) {
        const std::string host = "mx" + std::to_string(i) + ".example.com";
        scenario.records.emplace_back("example.com", Type::mx, host);
        scenario.records.emplace_back(host, Type::a, i == names - 1 ? "192.0.2.7" : "198.51.100.1");
    }
    scenario.expected = expected;
    return scenario;
}

const Scenario kScenarios[] = {
    {"IncludeChain",
     {{"example.com", Type::txt, "v=spf1 include:a.example include:b.example -all"},
      {"a.example", Type::txt, "v=spf1 ip4:198.51.100.0/24 -all"},
      {"b.example", Type::txt, "v=spf1 include:c.example ~all"},
      {"c.example", Type::txt, "v=spf1 ip4:192.0.2.0/24 -all"}},
     {}},
    {"IncludeThatDoesNotMatchFails",
     {{"example.com", Type::txt, "v=spf1 include:a.example -all"},
      {"a.example", Type::txt, "v=spf1 ip4:198.51.100.0/24 -all"}},
     {}, "192.0.2.7", "a@example.com", "mx.client.example", Result::fail},
    {"MxNamesAndTheirAddresses",
     {{"example.com", Type::txt, "v=spf1 mx:mail.example.com -all"},
      {"mail.example.com", Type::mx, "mx1.example.com"},
      {"mail.example.com", Type::mx, "mx2.example.com"},
      {"mx1.example.com", Type::a, "198.51.100.1"},
      {"mx2.example.com", Type::a, "192.0.2.7"}},
     {}},
    {"MxOverIpv6",
     {{"example.com", Type::txt, "v=spf1 mx -all"},
      {"example.com", Type::mx, "mx.example.com"},
      {"mx.example.com", Type::aaaa, "2001:db8::25"}},
     {}, "2001:db8::25"},
    {"PtrValidatedName",
     {{"example.com", Type::txt, "v=spf1 ptr -all"},
      {"7.2.0.192.in-addr.arpa", Type::ptr, "other.example.net"},
      {"7.2.0.192.in-addr.arpa", Type::ptr, "host.example.com"},
      {"other.example.net", Type::a, "198.51.100.1"},
      {"host.example.com", Type::a, "192.0.2.7"}},
     {}},
    {"PtrWithoutAValidatedNameFails",
     {{"example.com", Type::txt, "v=spf1 ptr -all"},
      {"7.2.0.192.in-addr.arpa", Type::ptr, "host.example.com"},
      {"host.example.com", Type::a, "198.51.100.1"}},
     {}, "192.0.2.7", "a@example.com", "mx.client.example", Result::fail},
    {"AAndExistsWithAMacro",
     {{"example.com", Type::txt, "v=spf1 a:www.example.com exists:%{ir}._spf.%{d} -all"},
      {"www.example.com", Type::a, "198.51.100.9"},
      {"7.2.0.192._spf.example.com", Type::a, "127.0.0.2"}},
     {}},
    {"AnyAddressOfTheName",
     {{"example.com", Type::txt, "v=spf1 a:host.example.com/0 -all"}, {"host.example.com", Type::a, "203.0.113.1"}},
     {}},
    {"Redirect",
     {{"example.com", Type::txt, "v=spf1 redirect=_spf.example.com"},
      {"_spf.example.com", Type::txt, "v=spf1 a ~all"},
      {"_spf.example.com", Type::a, "198.51.100.3"}},
     {}, "192.0.2.7", "a@example.com", "mx.client.example", Result::softfail},
    {"HeloIdentityForTheNullSender",
     {{"mx.client.example", Type::txt, "v=spf1 a -all"}, {"mx.client.example", Type::a, "192.0.2.7"}},
     {}, "192.0.2.7", "", "mx.client.example"},
    {"TwoVoidLookupsAreAllowed",
     {{"example.com", Type::txt, "v=spf1 a:v1.example.com a:v2.example.com ip4:192.0.2.7 -all"}}, {}},
    {"TheThirdVoidLookupIsPermerror",
     {{"example.com", Type::txt, "v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com ip4:192.0.2.7 -all"}},
     {}, "192.0.2.7", "a@example.com", "mx.client.example", Result::permerror},
    many_a_terms("TenTermsAreAllowed", 10, Result::pass),
    many_a_terms("ElevenTermsArePermerror", 11, Result::permerror),
    many_mx_names("TenMxNamesAreAllowed", 10, Result::pass),
    many_mx_names("ElevenMxNamesArePermerror", 11, Result::permerror),
    {"ATimeoutIsTemperror",
     {{"example.com", Type::txt, "v=spf1 include:slow.example -all"}}, {"slow.example"}, "192.0.2.7",
     "a@example.com", "mx.client.example", Result::temperror},
    {"NoRecordIsNone", {}, {}, "192.0.2.7", "a@example.com", "mx.client.example", Result::none},
};

class SpfReplayTest : public ::testing::TestWithParam<Scenario> {
protected:
    static void serve(const Scenario& scenario, test_support::FakeSpfDns& dns) {
        for (const auto& [name, type, data] : scenario.records) dns.add(name, type, {data});
        for (const auto& name : scenario.timeouts) dns.time_out(name);
    }
};

TEST_P(SpfReplayTest, OneAnswerPerRoundReachesTheVerdictOfAllAtOnce) {
    const Scenario& scenario = GetParam();
    const Request request{ip(scenario.client), scenario.helo, scenario.sender};
    test_support::FakeSpfDns eager;
    serve(scenario, eager);
    const Verdict expected = at_once(request, eager);
    EXPECT_EQ(expected.result, scenario.expected) << expected.reason;

    test_support::FakeSpfDns slow;
    serve(scenario, slow);
    slow.hold_answers();
    int rounds = 0;
    const Verdict replayed = test_support::checked(request, slow, {}, &rounds);
    EXPECT_EQ(replayed.result, expected.result);
    EXPECT_EQ(replayed.domain, expected.domain);
    EXPECT_EQ(replayed.reason, expected.reason);
    // One round per question the check needs, each asked once.
    std::set<std::pair<std::string, Type>> questions;
    for (const auto& [name, type] : eager.queries) questions.emplace(dns::lookup_key(name), type);
    EXPECT_EQ(static_cast<size_t>(rounds), questions.size());
    EXPECT_EQ(slow.out(), 0u);
}

std::string scenario_name(const ::testing::TestParamInfo<Scenario>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Scenarios, SpfReplayTest, ::testing::ValuesIn(kScenarios), scenario_name);

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
