/*
 * spf_fields_test.cc: the spf and spf.domain fields over fake SPF results
 * that record the identities checked and answer at once or later: the
 * result and domain as the rules see them, one check per message (a new
 * sender checks again), none for a rule that is not reached or a policy
 * that does not read spf, no value without a source, a result that comes
 * later in a condition and in a reply text, and needs.spf (with the HELO
 * name).
 */
#include <gtest/gtest.h>

#include "policy/evaluator.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "policy/values.h"
#include "support/later_answers.h"
#include "support/parsed_policy.h"
#include "support/stage_runs.h"

namespace portcullis::policy {
namespace {

using test_support::parse;

class SpfFields : public ::testing::Test {
protected:
    SpfFields() {
        facts_.client_ip = parse_ip("192.0.2.7");
        facts_.helo = "mx.example.com";
        facts_.sender = "alice@example.com";
        facts_.spf = &results_;
    }

    /* The reply text of the rule that decided at mail, "no text", or
     * "none"; a result that comes later is brought when the walk stops. */
    std::string decide(const std::string& policy_text) {
        const auto policy = parse(policy_text);
        const auto walk = test_support::run_stage(*policy, Stage::mail, facts_, test_support::RunOptions().arrive([this] {
            EXPECT_TRUE(results_.checks.waiting()) << "the walk stopped with no check under way";
            results_.checks.arrive();
        }));
        stops_ += walk.stops;
        const Verdict& verdict = walk.result.verdict;
        if (verdict.outcome == Outcome::none) return "none";
        return verdict.text.empty() ? "no text" : verdict.text.front();
    }

    test_support::FakeSpfResults results_;
    Facts facts_;
    int stops_ = 0;
};

TEST_F(SpfFields, FailIsRefusedWithTheDomainInTheReply) {
    EXPECT_EQ(decide("on mail { reject \"SPF ${spf} for ${spf.domain}\" if spf == fail }\n"),
              "SPF fail for example.com");
    ASSERT_EQ(results_.checks.started.size(), 1u);
    EXPECT_EQ(results_.checks.started[0], (SpfIdentity{parse_ip("192.0.2.7"), "mx.example.com", "alice@example.com"}));
}

TEST_F(SpfFields, PassIsNotRefused) {
    results_.answer = {"pass", "example.com"};
    EXPECT_EQ(decide("on mail { reject \"spf\" if spf == fail }\n"), "none");
    EXPECT_EQ(decide("on mail { reject \"in list\" if spf in { pass, neutral } }\n"), "in list");
}

TEST_F(SpfFields, OneCheckPerMessage) {
    const std::string rules = "on mail {\n  log \"a\" if spf == pass\n  reject \"b\" if spf.domain == example.com\n}\n";
    decide(rules);
    decide(rules);
    EXPECT_EQ(results_.checks.started.size(), 1u);
    facts_.sender = "bob@example.org";   // the next message
    decide(rules);
    EXPECT_EQ(results_.checks.started.size(), 2u);
}

TEST_F(SpfFields, NotCheckedForARuleNotReached) {
    EXPECT_EQ(decide("on mail {\n  accept\n  reject \"spf\" if spf == fail\n}\n"), "no text");
    EXPECT_TRUE(results_.checks.started.empty());
}

TEST_F(SpfFields, NoValueWithoutASource) {
    facts_.spf = nullptr;
    EXPECT_EQ(decide("on mail { reject \"spf\" if spf == fail }\n"), "none");
    EXPECT_EQ(resolve_field(FieldId::spf, "", facts_).kind, FieldValue::Kind::absent);
}

TEST_F(SpfFields, AResultThatComesLaterIsOneWait) {
    results_.checks.later = true;
    const std::string rules = "on mail {\n  log \"a\" if spf == pass\n  reject \"b ${spf}\" if spf.domain == example.com\n}\n";
    EXPECT_EQ(decide(rules), "b fail");
    EXPECT_EQ(stops_, 1);   // both rules read the one result: one wait
    EXPECT_EQ(results_.checks.started.size(), 1u);
}

TEST_F(SpfFields, AReplyTextWaitsForTheResult) {
    // The rule applies whatever SPF says; its text must still wait.
    results_.checks.later = true;
    const auto policy = parse("on mail { reject \"SPF ${spf} for ${spf.domain}\" if sender.domain == example.com }\n");
    StageRun run(Stage::mail);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(results_.checks.started.size(), 1u);   // asked for by the text
    results_.checks.arrive();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false));
    EXPECT_EQ(run.result.verdict.text, std::vector<std::string>{"SPF fail for example.com"});
}

TEST_F(SpfFields, APendingResultHasNoTextYet) {
    results_.checks.later = true;
    const FieldValue value = resolve_field(FieldId::spf, "", facts_);
    EXPECT_EQ(value.kind, FieldValue::Kind::pending);
    EXPECT_EQ(value.str(), "");
    results_.checks.arrive();
    EXPECT_EQ(resolve_field(FieldId::spf_domain, "", facts_).str(), "example.com");
}

TEST(SpfNeeds, OnlyAPolicyThatReadsSpfNeedsIt) {
    const PolicyNeeds needs = analyse_needs(*parse("on mail { reject if spf == fail }\n"), false);
    EXPECT_TRUE(needs.spf);
    EXPECT_TRUE(needs.reads_fields_of(Stage::helo));   // the HELO name is the identity for <>
    EXPECT_TRUE(analyse_needs(*parse("on rcpt { log \"${spf.domain}\" }\n"), false).spf);
    EXPECT_FALSE(analyse_needs(*parse("on mail { reject if sender == \"\" }\n"), false).spf);
}

}  // namespace
}  // namespace portcullis::policy
