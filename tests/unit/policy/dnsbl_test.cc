/*
 * dnsbl_test.cc: DNSBL and RHSBL in the policy, over fake lookups that
 * record what they are asked and answer at once or later: the names
 * (IPv4 octets and IPv6 nibbles reversed, domains), the return codes
 * (dnsbl("zone") == 127.0.0.x among several, 127.255.255.x and non-127
 * answers not listings), a temperror as "not listed", one lookup per
 * name, none for a rule that is not reached, and a reached rule's
 * lookups all started before the walk stops to wait for the first; a
 * rule whose answer comes later stops the walk until it has come.
 */
#include <gtest/gtest.h>

#include "policy/evaluator.h"
#include "policy/loader.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "policy/values.h"
#include "support/later_answers.h"
#include "support/parsed_policy.h"
#include "support/stage_runs.h"

namespace portcullis::policy {
namespace {

using Strings = std::vector<std::string>;
using Kind = AddressAnswer::Kind;
using test_support::parse;

class Dnsbl : public ::testing::Test {
protected:
    Dnsbl() {
        facts_.client_ip = parse_ip("203.0.113.5");
        facts_.sender = "alice@Spam.Example";
        facts_.lookups = &lookups_;
    }

    /* The reply text of the rule that decided at STAGE, or "none"; the
     * answers that come later are brought each time the walk stops. */
    std::string decide(const std::string& policy_text, Stage stage = Stage::connect) {
        const auto policy = parse(policy_text);
        const auto walk = test_support::run_stage(*policy, stage, facts_, test_support::RunOptions().arrive([this] { arrive(); }));
        stops_ += walk.stops;
        const Verdict& verdict = walk.result.verdict;
        return verdict.outcome == Outcome::none ? "none" : verdict.text.front();
    }

    /* The answers come; the walk must have stopped for one of them. */
    void arrive() {
        EXPECT_TRUE(lookups_.answers.waiting()) << "the walk stopped with no answer out";
        lookups_.answers.arrive();
    }

    test_support::FakeAddressLookups lookups_;
    Facts facts_;
    int stops_ = 0;
};

TEST(DnsblName, ReversedAddressesAndDomains) {
    FieldValue v4;
    v4.kind = FieldValue::Kind::ip;
    v4.ip = *parse_ip("203.0.113.5");
    EXPECT_EQ(dnsbl_name(v4, "zen.spamhaus.org"), "5.113.0.203.zen.spamhaus.org");
    EXPECT_EQ(dnsbl_name(v4, ".zen.spamhaus.org."), "5.113.0.203.zen.spamhaus.org");

    FieldValue v6 = v4;
    v6.ip = *parse_ip("2001:db8:1:2::ab");
    EXPECT_EQ(dnsbl_name(v6, "bl.example"),
              "b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example");

    FieldValue domain;
    domain.kind = FieldValue::Kind::text;
    domain.text = "Spam.Example.";
    EXPECT_EQ(dnsbl_name(domain, "dbl.example"), "spam.example.dbl.example");
    domain.text = "";
    EXPECT_EQ(dnsbl_name(domain, "dbl.example"), std::nullopt);
    // Names no query can carry are not looked up: an escape, an empty
    // label, a label over 63 bytes, over 253 bytes in all.
    const std::vector<std::string> unusable{"evil.example\\", "a..example", std::string(64, 'a') + ".example",
                                            "a b.example",
                                            std::string(120, 'a') + "." + std::string(120, 'b') + ".example"};
    for (const std::string& bad : unusable) {
        domain.text = bad;
        EXPECT_EQ(dnsbl_name(domain, "dbl.example"), std::nullopt) << bad;
    }
    domain.text = "_dmarc.host-1.Example";
    EXPECT_EQ(dnsbl_name(domain, "dbl.example"), "_dmarc.host-1.example.dbl.example");
    EXPECT_EQ(dnsbl_name(FieldValue{}, "dbl.example"), std::nullopt);
}

TEST_F(Dnsbl, ListedClientIsRefusedUnlistedIsNot) {
    const std::string rules = "on connect { reject \"listed\" if client.ip in dnsbl \"bl.example\" }\n";
    lookups_.list("5.113.0.203.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide(rules), "listed");
    facts_.client_ip = parse_ip("203.0.113.6");
    EXPECT_EQ(decide(rules), "none");
}

TEST_F(Dnsbl, Ipv6ClientIsLookedUpByNibbles) {
    facts_.client_ip = parse_ip("2001:db8::1");
    lookups_.list("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide("on connect { reject \"listed\" if client.ip in dnsbl \"bl.example\" }\n"), "listed");
}

TEST_F(Dnsbl, RhsblOnTheSenderDomain) {
    lookups_.list("spam.example.dbl.example", {"127.0.1.2"});
    EXPECT_EQ(decide("on mail { reject \"rhsbl\" if sender.domain in dnsbl \"dbl.example\" }\n", Stage::mail),
              "rhsbl");
}

TEST_F(Dnsbl, ValueIsAnyOfTheReturnCodes) {
    lookups_.list("5.113.0.203.zen.example", {"127.0.0.10", "127.0.0.4"});
    const std::string rules =
        "on connect {\n"
        "  reject \"sbl\" if dnsbl(\"zen.example\") == 127.0.0.2\n"
        "  reject \"xbl\" if dnsbl(\"zen.example\") == 127.0.0.4\n"
        "}\n";
    EXPECT_EQ(decide(rules), "xbl");
    EXPECT_EQ(decide("on connect { reject \"pbl\" if dnsbl(\"zen.example\") == 127.0.0.10 }\n"), "pbl");
    EXPECT_EQ(decide("on connect { reject \"not 2\" if dnsbl(\"zen.example\") != 127.0.0.2 }\n"), "not 2");
    EXPECT_EQ(decide("on connect { reject \"not 4\" if dnsbl(\"zen.example\") != 127.0.0.4 }\n"), "none");
    // As a text, the smallest code.
    EXPECT_EQ(resolve_field(FieldId::dnsbl, "zen.example", facts_).str(), "127.0.0.4");
}

TEST_F(Dnsbl, ErrorCodesAndForeignAnswersAreNoListing) {
    lookups_.list("5.113.0.203.refused.example", {"127.255.255.254"});
    lookups_.list("5.113.0.203.wildcard.example", {"192.0.2.1"});
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"refused.example\" }\n"), "none");
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"wildcard.example\" }\n"), "none");
}

TEST_F(Dnsbl, TemperrorIsNotListed) {
    lookups_.table["5.113.0.203.bl.example"] = AddressAnswer{Kind::temperror, {}};
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"bl.example\" }\n"), "none");
    EXPECT_EQ(decide("on connect { reject \"x\" if not client.ip in dnsbl \"bl.example\" }\n"), "x");
}

TEST_F(Dnsbl, WithoutLookupsNothingIsListed) {
    facts_.lookups = nullptr;
    lookups_.list("5.113.0.203.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"bl.example\" }\n"), "none");
    EXPECT_EQ(lookups_.answers.started, Strings{});
}

TEST_F(Dnsbl, OneLookupPerNameAndNoneForARuleNotReached) {
    lookups_.answers.later = true;
    lookups_.list("5.113.0.203.bl.example", {"127.0.0.2"});
    const std::string rules =
        "on connect {\n"
        "  log \"a\" if client.ip in dnsbl \"bl.example\"\n"
        "  reject \"listed\" if client.ip in dnsbl \"BL.example\"\n"
        "  reject \"never\" if client.ip in dnsbl \"other.example\"\n"
        "}\n";
    EXPECT_EQ(decide(rules), "listed");
    EXPECT_EQ(decide(rules), "listed");
    EXPECT_EQ(lookups_.answers.started, Strings{"5.113.0.203.bl.example"});
    EXPECT_EQ(stops_, 1);   // the second walk had the answer
}

TEST_F(Dnsbl, AReachedRuleStartsAllItsLookupsFirst) {
    lookups_.answers.later = true;
    const auto policy =
        parse("on connect { reject \"x\" if client.ip in dnsbl \"a.example\" or dnsbl(\"b.example\") == 127.0.0.2 }\n");
    StageRun run(Stage::connect);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(lookups_.answers.started, (Strings{"5.113.0.203.a.example", "5.113.0.203.b.example"}));
    lookups_.answers.arrive();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(run.result.verdict.outcome, Outcome::none);
    EXPECT_EQ(lookups_.answers.started.size(), 2u);
}

TEST_F(Dnsbl, AnAnswerThatComesLaterStopsTheWalkUntilItHasCome) {
    lookups_.answers.later = true;
    lookups_.list("5.113.0.203.bl.example", {"127.0.0.2"});
    const auto policy = parse(
        "on connect {\n"
        "  log \"before\"\n"
        "  reject \"listed ${dnsbl(\\\"bl.example\\\")}\" if client.ip in dnsbl \"bl.example\"\n"
        "}\n");
    StageRun run(Stage::connect);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(run.next_rule, 1u);   // stopped at the list's rule, the log before it done
    ASSERT_EQ(run.result.effects.size(), 1u);
    EXPECT_EQ(run.result.effects[0].value, "before");
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false));   // woken too soon: still waiting
    lookups_.answers.arrive();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(run.result.verdict.text, Strings{"listed 127.0.0.2"});
    EXPECT_EQ(run.result.effects.size(), 1u);   // the log is not done twice
}

TEST_F(Dnsbl, ATemperrorThatComesLaterIsNotListed) {
    lookups_.answers.later = true;
    lookups_.table["5.113.0.203.bl.example"] = AddressAnswer{Kind::temperror, {}};
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"bl.example\" }\n"), "none");
    EXPECT_EQ(stops_, 1);
}

TEST_F(Dnsbl, ARhsblSubjectThatIsPendingWaitsForIt) {
    // spf.domain is not known at first: the list name is not either.
    test_support::FakeSpfResults spf;
    spf.checks.later = true;
    spf.answer = {"fail", "spam.example"};
    facts_.spf = &spf;
    lookups_.list("spam.example.dbl.example", {"127.0.1.2"});
    const auto policy = parse("on mail { reject \"rhsbl\" if spf.domain in dnsbl \"dbl.example\" }\n");
    StageRun run(Stage::mail);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(lookups_.answers.started, Strings{});
    spf.checks.arrive();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false));   // the list answers at once
    EXPECT_EQ(run.result.verdict.text, Strings{"rhsbl"});
    EXPECT_EQ(lookups_.answers.started, Strings{"spam.example.dbl.example"});
}

TEST(DnsblNeeds, OnlyPoliciesThatConsultAList) {
    EXPECT_FALSE(analyse_needs(*parse("on connect { reject if client.ip == 192.0.2.1 }\n"), false).consults_dns_lists());
    EXPECT_TRUE(analyse_needs(*parse("on mail { reject if helo in dnsbl \"x.example\" }\n"), false).consults_dns_lists());
    EXPECT_TRUE(analyse_needs(*parse("on connect { reject if dnsbl(\"x.example\") == 127.0.0.2 }\n"), false)
                    .consults_dns_lists());
}

/* Each list as "ZONE FILE:LINE:COL", where the rules name it. */
Strings dns_lists_of(const std::string& text) {
    Strings uses;
    for (const auto& use : analyse_needs(*parse(text), false).dns_lists) uses.push_back(use.zone + " " + use.where.str());
    return uses;
}

TEST(DnsblNeeds, EveryListAndWhereItIsWritten) {
    EXPECT_EQ(dns_lists_of("on connect {\n"
                           "    reject \"listed: ${dnsbl(c.example)}\" if client.ip in dnsbl \"a.example\"\n"
                           "    reject if dnsbl(\"b.example\") == 127.0.0.2\n"
                           "}\n"
                           "on mail { reject if sender.domain in dnsbl \"d.example\" }\n"
                           "on rcpt { reject \"${dnsbl(\\\"e.example\\\")}\" if helo in dnsbl \"a.example\" }\n"),
              (Strings{"a.example test.rules:2:64", "c.example test.rules:2:23", "b.example test.rules:3:15",
                       "d.example test.rules:5:44", "a.example test.rules:6:61", "e.example test.rules:6:21"}));
}

}  // namespace
}  // namespace portcullis::policy
