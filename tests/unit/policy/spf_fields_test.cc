/*
 * spf_fields_test.cc: the spf and spf.domain fields over a fake
 * SpfChecker that records what it is asked: the result and domain as
 * the rules see them, one check per message (a new sender checks again),
 * none for a rule that is not reached or a policy that does not read
 * spf, no value without a checker, and needs.spf (with the HELO name).
 */
#include <gtest/gtest.h>

#include "policy/evaluator.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "policy/values.h"
#include "support/parsed_policy.h"

namespace portcullis::policy {
namespace {

class FakeChecker final : public SpfChecker {
public:
    SpfAnswer answer{"fail", "example.com"};
    std::vector<SpfIdentity> asked;

    SpfAnswer check(const SpfIdentity& identity) override {
        asked.push_back(identity);
        return answer;
    }
};

using test_support::parse;

class SpfFields : public ::testing::Test {
protected:
    SpfFields() : checker_(std::make_shared<FakeChecker>()), cache_(checker_) {
        facts_.client_ip = parse_ip("192.0.2.7");
        facts_.helo = "mx.example.com";
        facts_.sender = "alice@example.com";
        facts_.spf = &cache_;
    }

    std::string decide(const std::string& policy_text) {
        const auto policy = parse(policy_text);
        const Verdict verdict = evaluate_stage(*policy, Stage::mail, facts_, false).verdict;
        if (verdict.outcome == Outcome::none) return "none";
        return verdict.text.empty() ? "no text" : verdict.text.front();
    }

    std::shared_ptr<FakeChecker> checker_;
    SpfCache cache_;
    Facts facts_;
};

TEST_F(SpfFields, FailIsRefusedWithTheDomainInTheReply) {
    EXPECT_EQ(decide("on mail { reject \"SPF ${spf} for ${spf.domain}\" if spf == fail }\n"),
              "SPF fail for example.com");
    ASSERT_EQ(checker_->asked.size(), 1u);
    EXPECT_EQ(checker_->asked[0], (SpfIdentity{parse_ip("192.0.2.7"), "mx.example.com", "alice@example.com"}));
}

TEST_F(SpfFields, PassIsNotRefused) {
    checker_->answer = {"pass", "example.com"};
    EXPECT_EQ(decide("on mail { reject \"spf\" if spf == fail }\n"), "none");
    EXPECT_EQ(decide("on mail { reject \"in list\" if spf in { pass, neutral } }\n"), "in list");
}

TEST_F(SpfFields, OneCheckPerMessage) {
    const std::string rules = "on mail {\n  log \"a\" if spf == pass\n  reject \"b\" if spf.domain == example.com\n}\n";
    decide(rules);
    decide(rules);
    EXPECT_EQ(checker_->asked.size(), 1u);
    facts_.sender = "bob@example.org";   // the next message
    decide(rules);
    EXPECT_EQ(checker_->asked.size(), 2u);
}

TEST_F(SpfFields, NotCheckedForARuleNotReached) {
    EXPECT_EQ(decide("on mail {\n  accept\n  reject \"spf\" if spf == fail\n}\n"), "no text");
    EXPECT_TRUE(checker_->asked.empty());
}

TEST_F(SpfFields, NoValueWithoutAChecker) {
    facts_.spf = nullptr;
    EXPECT_EQ(decide("on mail { reject \"spf\" if spf == fail }\n"), "none");
    EXPECT_EQ(resolve_field(FieldId::spf, "", facts_).kind, FieldValue::Kind::absent);
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
