/*
 * evaluator_test.cc: conditions, operators, precedence, first-terminal-wins,
 * monitor, templates and the needs analysis, on policies parsed from text;
 * what a greylist rule makes of each answer of the stateful checks (a
 * fake here): defer with the rule's reply and ${greylist.wait}, pass and go
 * on, 451 4.3.0 when the store is unavailable or missing, and monitor;
 * and the waits: a condition its known side decides does not wait, a rule
 * whose fact is pending stops the walk there and it goes on from that
 * rule (the rules before it tested once), the store is asked once however
 * often the walk stops and whenever it answers, and texts wait for the
 * fields they read.
 */
#include "policy/evaluator.h"

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "policy/needs.h"
#include "policy/template.h"
#include "support/later_answers.h"
#include "support/parsed_policy.h"
#include "support/stage_runs.h"

namespace portcullis::policy {
namespace {

using test_support::FakeStatefulChecks;
using test_support::parse;
using test_support::run_stage;

Facts external_client() {
    Facts facts;
    facts.client_ip = parse_ip("203.0.113.5");
    facts.client_host = "mail.example.net";
    facts.helo = "mail.example.net";
    facts.sender = "alice@example.net";
    facts.rcpt = "bob@example.com";
    return facts;
}

Verdict run(const Policy& policy, Stage stage, const Facts& facts) {
    return run_stage(policy, stage, facts).result.verdict;
}

TEST(Evaluator, FirstTerminalRuleWins) {
    const auto policy = parse(
        "on rcpt {\n"
        "  log \"seen ${rcpt}\"\n"
        "  reject 550 5.7.1 \"first\" if rcpt.domain == example.com\n"
        "  reject 551 5.7.1 \"second\"\n"
        "}\n");
    const auto result = run_stage(*policy, Stage::rcpt, external_client()).result;
    EXPECT_EQ(result.verdict.outcome, Outcome::reject);
    EXPECT_EQ(result.verdict.code, "550");
    EXPECT_EQ(result.verdict.text, std::vector<std::string>{"first"});
    EXPECT_EQ(result.verdict.rule->where.line, 3u);
    ASSERT_EQ(result.effects.size(), 1u);
    EXPECT_EQ(result.effects[0].kind, Effect::Kind::log);
    EXPECT_EQ(result.effects[0].value, "seen bob@example.com");
}

TEST(Evaluator, NoRuleAppliesGivesNone) {
    const auto policy = parse("on rcpt { reject if rcpt.domain == example.org }\n");
    EXPECT_EQ(run(*policy, Stage::rcpt, external_client()).outcome, Outcome::none);
    EXPECT_EQ(run(*policy, Stage::mail, external_client()).outcome, Outcome::none);
}

TEST(Evaluator, DefaultRepliesPerAction) {
    const auto policy = parse(
        "on connect { reject }\n"
        "on mail { tempfail }\n"
        "on rcpt { reject }\n");
    const auto connect = run(*policy, Stage::connect, external_client());
    EXPECT_EQ(connect.code + " " + connect.xcode + " " + connect.text.at(0), "554 5.7.1 Rejected by policy");
    const auto mail = run(*policy, Stage::mail, external_client());
    EXPECT_EQ(mail.code + " " + mail.xcode + " " + mail.text.at(0), "451 4.7.1 Try again later");
    const auto rcpt = run(*policy, Stage::rcpt, external_client());
    EXPECT_EQ(rcpt.code + " " + rcpt.xcode + " " + rcpt.text.at(0), "550 5.7.1 Rejected by policy");
}

TEST(Evaluator, PrecedenceNotAndOr) {
    // a or (b and (not c)): with a false, b true, c false it holds.
    const auto policy = parse(
        "on rcpt { reject if sender == nobody@x or rcpt.domain == example.com and not authenticated }\n");
    Facts facts = external_client();
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::reject);
    facts.authenticated = true;
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
    facts.sender = "nobody@x";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::reject);
}

TEST(Evaluator, ParenthesesOverridePrecedence) {
    const auto policy = parse(
        "on rcpt { reject if (sender == nobody@x or rcpt.domain == example.com) and not authenticated }\n");
    Facts facts = external_client();
    facts.authenticated = true;
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
}

TEST(Evaluator, ComparisonsOnNumbersSizesAndText) {
    const auto policy = parse(
        "on mail {\n"
        "  reject 552 5.3.4 \"big\" if size > 10M\n"
        "  reject 550 5.7.1 \"port\" if client.port <= 1024\n"
        "  reject 550 5.7.1 \"host\" if client.host == MAIL.EXAMPLE.NET and sender != alice@example.net\n"
        "}\n");
    Facts facts = external_client();
    facts.client_port = 40000;
    facts.size = 10 * 1024 * 1024;
    EXPECT_EQ(run(*policy, Stage::mail, facts).outcome, Outcome::none);
    facts.size += 1;
    EXPECT_EQ(run(*policy, Stage::mail, facts).text.at(0), "big");
    facts.size = 0;
    facts.client_port = 1024;
    EXPECT_EQ(run(*policy, Stage::mail, facts).text.at(0), "port");
    facts.client_port = 2000;
    facts.sender = "mallory@example.net";
    EXPECT_EQ(run(*policy, Stage::mail, facts).text.at(0), "host");
}

TEST(Evaluator, IpComparisonAndMissingClientAddress) {
    const auto policy = parse(
        "on connect {\n"
        "  reject 554 5.7.1 \"eq\" if client.ip == 203.0.113.5\n"
        "  reject 554 5.7.1 \"ne\" if client.ip != 192.0.2.1\n"
        "}\n");
    Facts facts = external_client();
    EXPECT_EQ(run(*policy, Stage::connect, facts).text.at(0), "eq");
    facts.client_ip.reset();   // local submission: == is false, != is true
    EXPECT_EQ(run(*policy, Stage::connect, facts).text.at(0), "ne");
}

TEST(Evaluator, RegexMatchAndNegation) {
    const auto policy = parse(
        "on helo {\n"
        "  reject 550 5.7.1 \"dynamic\" if helo =~ /^dsl-[0-9]+\\./i\n"
        "  reject 550 5.7.1 \"no dot\" if helo !~ /\\./\n"
        "}\n");
    Facts facts = external_client();
    EXPECT_EQ(run(*policy, Stage::helo, facts).outcome, Outcome::none);
    facts.helo = "DSL-1234.isp.example";
    EXPECT_EQ(run(*policy, Stage::helo, facts).text.at(0), "dynamic");
    facts.helo = "localhost";
    EXPECT_EQ(run(*policy, Stage::helo, facts).text.at(0), "no dot");
}

TEST(Evaluator, ListsOfEveryKind) {
    const auto policy = parse(
        "list nets ip { 192.0.2.0/24 2001:db8::/32 }\n"
        "list doms domain { example.org =exact.example }\n"
        "list addrs address { alice@example.net @spam.example postmaster@ }\n"
        "list words string { Alice bob }\n"
        "on rcpt {\n"
        "  reject 550 5.7.1 \"net\" if client.ip in nets\n"
        "  reject 550 5.7.1 \"dom\" if rcpt.domain in doms\n"
        "  reject 550 5.7.1 \"addr\" if sender in addrs\n"
        "  reject 550 5.7.1 \"word\" if auth.user in words\n"
        "}\n");
    Facts facts = external_client();
    facts.sender = "carol@example.net";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
    facts.client_ip = parse_ip("2001:db8:ffff::1");
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).text.at(0), "net");
    facts.client_ip = parse_ip("203.0.113.5");
    facts.rcpt = "x@Deep.Sub.Example.ORG";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).text.at(0), "dom");
    facts.rcpt = "x@sub.exact.example";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
    facts.sender = "POSTMASTER@anywhere.example";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).text.at(0), "addr");
    facts.sender = "carol@example.net";
    facts.auth_user = "alice";   // string lists keep case for string fields
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
    facts.auth_user = "Alice";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).text.at(0), "word");
}

TEST(Evaluator, InlineListAndMapLookup) {
    const auto policy = parse(
        "on rcpt { reject 550 5.7.1 \"inline\" if client.ip in { 203.0.113.0/24 } and rcpt.local in { abuse postmaster } }\n");
    Facts facts = external_client();
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).outcome, Outcome::none);
    facts.rcpt = "Abuse@example.com";
    EXPECT_EQ(run(*policy, Stage::rcpt, facts).text.at(0), "inline");
}

TEST(Evaluator, MonitorRulesAreNeverTerminal) {
    const auto policy = parse(
        "on rcpt {\n"
        "  monitor reject 550 5.7.1 \"would\"\n"
        "  add-header X-Seen \"yes\"\n"
        "}\n");
    const auto result = run_stage(*policy, Stage::rcpt, external_client()).result;
    EXPECT_EQ(result.verdict.outcome, Outcome::none);
    ASSERT_EQ(result.effects.size(), 2u);
    EXPECT_EQ(result.effects[0].kind, Effect::Kind::monitored);
    EXPECT_EQ(result.effects[0].would_be.outcome, Outcome::reject);
    EXPECT_EQ(result.effects[0].would_be.text.at(0), "would");
    EXPECT_EQ(result.effects[1].kind, Effect::Kind::add_header);
}

TEST(Evaluator, MonitorModeEnforcesNothing) {
    const auto policy = parse("on rcpt { reject\n add-header X-A \"b\" }\n");
    const auto result = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().monitor_all()).result;
    EXPECT_EQ(result.verdict.outcome, Outcome::none);
    ASSERT_EQ(result.effects.size(), 2u);
    EXPECT_EQ(result.effects[0].kind, Effect::Kind::monitored);
    EXPECT_EQ(result.effects[1].kind, Effect::Kind::monitored);   // the header is not added either
}

TEST(Evaluator, QuarantineCarriesItsReason) {
    const auto policy = parse("on eom { quarantine \"held: ${from}\" if header(\"Subject\") =~ /free money/i }\n");
    Facts facts = external_client();
    facts.headers = {{"From", " Eve <eve@example.net>"}, {"Subject", " FREE MONEY now"}};
    facts.from.add_field(" Eve <eve@example.net>");
    const auto verdict = run(*policy, Stage::eom, facts);
    EXPECT_EQ(verdict.outcome, Outcome::quarantine);
    EXPECT_EQ(verdict.text.at(0), "held: eve@example.net");
}

// from and from.domain are the one author of the From header, or have no
// value: a display name or comment holding an address is not the author,
// and adding an address to From cannot meet a rule on them.
TEST(Evaluator, FromFieldsAreTheOneAuthor) {
    const auto policy = parse(
        "on eom {\n"
        "    reject 550 5.7.1 \"evil\" if from.domain == evil.example\n"
        "    accept if from.domain == good.example and from == b@good.example\n"
        "    quarantine \"no single author\" if from.domain != good.example\n"
        "}\n");
    const auto verdict_for = [&](const std::vector<std::string>& from_values) {
        Facts facts = external_client();
        for (const auto& value : from_values) facts.from.add_field(value);
        return run(*policy, Stage::eom, facts).outcome;
    };
    EXPECT_EQ(verdict_for({" \"x <a@evil.example>\" <b@good.example>"}), Outcome::accept);
    EXPECT_EQ(verdict_for({" \"Evil, <a@evil.example>\" <b@good.example>"}), Outcome::accept);
    EXPECT_EQ(verdict_for({" (a@evil.example) b@good.example"}), Outcome::accept);
    EXPECT_EQ(verdict_for({" \"b@good.example\" <a@evil.example>"}), Outcome::reject);
    EXPECT_EQ(verdict_for({" b@good.example, a@evil.example"}), Outcome::quarantine);
    EXPECT_EQ(verdict_for({" b@good.example", " a@evil.example"}), Outcome::quarantine);
    EXPECT_EQ(verdict_for({" b@good.example, garbage"}), Outcome::quarantine);
    EXPECT_EQ(verdict_for({}), Outcome::quarantine);
}

TEST(Template, ValuesCannotBreakTheReply) {
    const auto policy = parse("on mail { reject 550 5.7.1 \"bad sender ${sender}\\nsee https://example.com/\" }\n");
    Facts facts = external_client();
    facts.sender = "evil\r\n250 ok@example.net";
    const auto verdict = run(*policy, Stage::mail, facts);
    ASSERT_EQ(verdict.text.size(), 2u);   // the author's \n makes two lines; the value's CRLF is removed
    EXPECT_EQ(verdict.text[0], "bad sender evil250 ok@example.net");
    EXPECT_EQ(verdict.text[1], "see https://example.com/");
}

TEST(Template, DollarEscapeAndLongTextCut) {
    const auto policy = parse("on mail { reject 550 5.7.1 \"costs $$5 for ${sender}\" }\n");
    Facts facts = external_client();
    EXPECT_EQ(run(*policy, Stage::mail, facts).text.at(0), "costs $5 for alice@example.net");
    facts.sender = std::string(5000, 'a') + "@example.net";
    EXPECT_EQ(run(*policy, Stage::mail, facts).text.at(0).size(), kMaxReplyLine);
}

TEST(Template, CutNeverSplitsUtf8) {
    std::string text(kMaxTextLine - 1, 'a');
    text += "\xc3\xa9";   // a two-byte character straddling the limit
    const std::string cut = clean_line(text);
    EXPECT_EQ(cut.size(), kMaxTextLine - 1);
}

TEST(Needs, StagesRepliesHeadersAndBody) {
    const auto policy = parse(
        "on connect { accept if client.ip in { 127.0.0.0/8 } }\n"
        "on rcpt { monitor reject }\n"
        "on eom { add-header X-Size \"${size}\" if header(\"Subject\") == x }\n");
    const auto needs = analyse_needs(*policy, false);
    EXPECT_TRUE(needs.runs_at(Stage::connect));
    EXPECT_TRUE(needs.answers_at(Stage::connect));
    EXPECT_FALSE(needs.runs_at(Stage::helo));
    EXPECT_TRUE(needs.runs_at(Stage::rcpt));
    EXPECT_FALSE(needs.answers_at(Stage::rcpt));   // monitor rules never answer
    EXPECT_FALSE(needs.answers_at(Stage::eom));
    EXPECT_TRUE(needs.headers);
    EXPECT_TRUE(needs.body);
    EXPECT_EQ(needs.header_names, std::vector<std::string>{"Subject"});
    EXPECT_TRUE(needs.reads_header("SUBJECT"));
    EXPECT_FALSE(needs.reads_header("From"));
    const auto monitored = analyse_needs(*policy, true);
    EXPECT_FALSE(monitored.answers_at(Stage::connect));
}

TEST(Needs, AcceptIsAnAnswerButNotARefusal) {
    const auto accepting = analyse_needs(*parse("on connect { accept if client.ip in { 127.0.0.0/8 } }\n"
                                                "on rcpt { accept if rcpt == a@b.example }\n"),
                                         false);
    EXPECT_TRUE(accepting.answers_at(Stage::connect));
    EXPECT_FALSE(accepting.refuses_at(Stage::connect));   // no reason to wait for HELO or MAIL replies
    EXPECT_FALSE(accepting.answers_at(Stage::rcpt));      // accept at rcpt covers that recipient only
    const auto refusing = analyse_needs(*parse("on connect { reject if client.host == unknown }\n"), false);
    EXPECT_TRUE(refusing.refuses_at(Stage::connect));
}

TEST(Needs, StoreOnlyForRulesThatKeepState) {
    EXPECT_FALSE(analyse_needs(*parse("on rcpt { reject if rcpt.count > 5 }\n"), false).store);
    EXPECT_TRUE(analyse_needs(*parse("on rcpt { greylist if not authenticated }\n"), false).store);
    // A monitored greylist rule still records its triplets.
    EXPECT_TRUE(analyse_needs(*parse("on rcpt { monitor greylist }\n"), true).store);
}

const std::string kPolicy =
    "on rcpt {\n"
    "  greylist delay 2m window 1d expire 10d awl 3 by host if not authenticated\n"
    "  reject 550 5.7.1 \"after greylist\"\n"
    "}\n";

const std::string kRatelimitPolicy =
    "on rcpt {\n"
    "  ratelimit (auth.user, client.ip) 5/1m 100/1h\n"
    "  reject 550 5.7.1 \"after ratelimit\"\n"
    "}\n";

/* The unit passed the stateful rule, noted NOTE, and met the reject
 * saying TEXT after it. */
void expect_passed_on(const StageResult& result, const std::string& text, const std::string& note) {
    EXPECT_EQ(result.verdict.text, std::vector<std::string>{text});
    ASSERT_EQ(result.effects.size(), 1u);
    EXPECT_EQ(result.effects[0].kind, Effect::Kind::passed);
    EXPECT_EQ(result.effects[0].value, note);
}

TEST(GreylistRule, DeferUsesTheDefaultReplyWithTheWait) {
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 120, "reason=new wait=120s"});
    const auto result = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result;
    EXPECT_EQ(result.verdict.outcome, Outcome::tempfail);
    EXPECT_EQ(result.verdict.code, "451");
    EXPECT_EQ(result.verdict.xcode, "4.7.1");
    EXPECT_EQ(result.verdict.text, std::vector<std::string>{"Greylisted, please try again in 120 seconds"});
    EXPECT_EQ(result.verdict.note, "reason=new wait=120s");
    EXPECT_EQ(verdict_label(result.verdict), "greylist defer");
    EXPECT_EQ(checks.seen_params.delay, std::chrono::minutes(2));
    EXPECT_EQ(checks.seen_params.window, std::chrono::hours(24));
    EXPECT_EQ(checks.seen_params.expire, std::chrono::hours(240));
    EXPECT_EQ(checks.seen_params.awl, 3u);
    EXPECT_TRUE(checks.seen_params.by_host);
    EXPECT_EQ(checks.seen_rcpt, "bob@example.com");
}

TEST(GreylistRule, OwnCodeAndTextAndPermanentRefusal) {
    const auto policy = parse("on rcpt { greylist 550 5.7.1 \"come back in ${greylist.wait}s\" }\n");
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 7, ""});
    const auto verdict = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result.verdict;
    EXPECT_EQ(verdict.outcome, Outcome::reject);
    EXPECT_EQ(verdict.code, "550");
    EXPECT_EQ(verdict.text, std::vector<std::string>{"come back in 7s"});
}

TEST(GreylistRule, PassGoesOnToTheNextRule) {
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::pass, 0, "reason=pass"});
    const auto result = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result;
    expect_passed_on(result, "after greylist", "reason=pass");
}

TEST(GreylistRule, NotAskedWhenTheConditionFails) {
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 1, ""});
    Facts facts = external_client();
    facts.authenticated = true;
    run_stage(*policy, Stage::rcpt, facts, test_support::RunOptions().stateful(&checks)).result;
    EXPECT_EQ(checks.calls, 0);
}

TEST(GreylistRule, UnavailableStoreTempfails430) {
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::unavailable, 0, "reason=store-error"});
    const auto verdict = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result.verdict;
    EXPECT_EQ(verdict.outcome, Outcome::tempfail);
    EXPECT_EQ(verdict.code, "451");
    EXPECT_EQ(verdict.xcode, "4.3.0");
}

TEST(StatefulRules, NoStoreAtAllTempfails430) {
    for (const std::string* text : {&kPolicy, &kRatelimitPolicy}) {
        const auto policy = parse(*text);
        const auto verdict = run_stage(*policy, Stage::rcpt, external_client()).result.verdict;
        EXPECT_EQ(verdict.code, "451") << *text;
        EXPECT_EQ(verdict.xcode, "4.3.0") << *text;
    }
}

TEST(StatefulRules, MonitorLogsTheRefusalAndGoesOn) {
    for (const std::string action : {"greylist", "ratelimit client.ip 1/1m"}) {
        const auto policy = parse("on rcpt { monitor " + action + "\n reject 550 5.7.1 \"next\" }\n");
        FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 300, ""});
        const auto result = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result;
        EXPECT_EQ(result.verdict.text, std::vector<std::string>{"next"}) << action;
        ASSERT_EQ(result.effects.size(), 1u) << action;
        EXPECT_EQ(result.effects[0].kind, Effect::Kind::monitored);
        EXPECT_EQ(verdict_label(result.effects[0].would_be), action.substr(0, action.find(' ')) + " defer");
    }
}

TEST(GreylistRule, WaitIsOnlyKnownInTheReplyText) {
    const auto result = parse_policy("on rcpt { log \"${greylist.wait}\" }\n", "test.rules", ".");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.errors[0].str(),
              "test.rules:1:18: error: field 'greylist.wait' is only known in the reply text of a greylist rule");
}

TEST(RatelimitRule, AsksWithTheKeyValuesAndBucket) {
    const auto policy = parse(kRatelimitPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::pass, 0, "levels=1/5,1/100"});
    Facts facts = external_client();
    facts.authenticated = true;
    facts.auth_user = "Alice";
    const auto result = run_stage(*policy, Stage::rcpt, facts, test_support::RunOptions().stateful(&checks)).result;
    EXPECT_EQ(checks.seen_bucket, "(auth.user,client.ip):5/1m,100/1h");
    EXPECT_EQ(checks.seen_key, (std::vector<std::string>{"Alice", facts.client_ip->str()}));
    expect_passed_on(result, "after ratelimit", "levels=1/5,1/100");
}

TEST(RatelimitRule, OverTheLimitDefersWith450) {
    const auto policy = parse(kRatelimitPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 30, "over=5/1m"});
    const auto verdict = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result.verdict;
    EXPECT_EQ(verdict.outcome, Outcome::tempfail);
    EXPECT_EQ(verdict.code, "450");
    EXPECT_EQ(verdict.xcode, "4.7.1");
    EXPECT_EQ(verdict.text, std::vector<std::string>{"Rate limit exceeded, try again later"});
    EXPECT_EQ(verdict_label(verdict), "ratelimit defer");
    EXPECT_EQ(verdict.note, "over=5/1m");
}

TEST(RatelimitRule, PermanentReplyIsAReject) {
    const auto policy = parse("on mail { ratelimit sender 5/1m 550 5.7.1 \"Slow down\" }\n");
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 30, ""});
    const auto verdict = run_stage(*policy, Stage::mail, external_client(), test_support::RunOptions().stateful(&checks)).result.verdict;
    EXPECT_EQ(verdict.outcome, Outcome::reject);
    EXPECT_EQ(verdict_label(verdict), "ratelimit reject");
}

TEST(RatelimitRule, AnEmptyKeyCountsNothing) {
    // No auth.user before AUTH: nothing to count.
    const auto policy = parse("on rcpt { ratelimit auth.user 1/1h\n reject 550 5.7.1 \"next\" }\n");
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 30, ""});
    const auto result = run_stage(*policy, Stage::rcpt, external_client(), test_support::RunOptions().stateful(&checks)).result;
    EXPECT_EQ(checks.calls, 0);
    expect_passed_on(result, "next", "reason=no-key");
}

/* The rules tested, as "LINE applies" or "LINE does not apply". */
class CountingObserver final : public RuleObserver {
public:
    void rule_checked(const Rule& rule, bool applies) override {
        seen.push_back(std::to_string(rule.where.line) + (applies ? " applies" : " does not apply"));
    }
    std::vector<std::string> seen;
};

using Lines = std::vector<std::string>;

/* Facts that take a lookup (SPF, DNS lists, DKIM, DMARC), all answered
 * later unless a test says otherwise. */
class Waiting : public ::testing::Test {
protected:
    Waiting() : facts_(external_client()) {
        facts_.spf = &spf_;
        facts_.lookups = &lookups_;
        facts_.auth = &auth_;
        spf_.checks.later = true;
        lookups_.answers.later = true;
        auth_.set_later(true);
        lookups_.list("5.113.0.203.bl.example", {"127.0.0.2"});
    }

    /* Every answer out comes. */
    void arrive() {
        spf_.checks.arrive();
        lookups_.answers.arrive();
        auth_.arrive();
    }

    /* Whether STAGE of TEXT is decided in one walk, without waiting. */
    bool decided_at_once(const std::string& text, Stage stage, Outcome* outcome = nullptr) {
        const auto policy = parse(text);
        StageRun run(stage);
        const bool decided = evaluate_stage(*policy, run, facts_, false);
        if (outcome) *outcome = run.result.verdict.outcome;
        return decided;
    }

    test_support::FakeSpfResults spf_;
    test_support::FakeAddressLookups lookups_;
    test_support::FakeAuthentication auth_;
    Facts facts_;
};

TEST_F(Waiting, AConditionTheKnownSideDecidesDoesNotWait) {
    struct Case {
        std::string condition;
        Outcome outcome;
    };
    const std::vector<Case> cases = {
        {"sender == nobody@x and spf == fail", Outcome::none},
        {"spf == fail and sender == nobody@x", Outcome::none},
        {"sender == alice@example.net or spf == fail", Outcome::reject},
        {"spf == fail or sender == alice@example.net", Outcome::reject},
        {"not (dkim == pass or rcpt.domain == example.com)", Outcome::none},
        {"client.ip in dnsbl \"bl.example\" and authenticated", Outcome::none},
        {"dmarc == fail and (tls and dkim == none)", Outcome::none},
    };
    for (const Case& c : cases) {
        Outcome outcome = Outcome::accept;
        EXPECT_TRUE(decided_at_once("on eom { reject \"x\" if " + c.condition + " }\n", Stage::eom, &outcome))
            << c.condition;
        EXPECT_EQ(outcome, c.outcome) << c.condition;
    }
    // Where the known side does not decide, the rule waits.
    for (const std::string condition : {"sender == alice@example.net and spf == fail", "sender == x@y or spf == fail",
                                        "not dkim == pass", "dkim == pass and dmarc == pass"}) {
        EXPECT_FALSE(decided_at_once("on eom { reject \"x\" if " + condition + " }\n", Stage::eom)) << condition;
    }
}

TEST_F(Waiting, APendingFactIsNeitherEqualNorDifferent) {
    // A missing fact makes != true; one still being worked out decides nothing.
    const auto policy = parse(
        "list results string { fail softfail }\n"
        "on eom {\n"
        "  reject if spf != pass\n"
        "  reject if spf =~ /fail/\n"
        "  reject if spf in results\n"
        "  reject if spf.domain in dnsbl \"dbl.example\"\n"
        "  reject if dnsbl(\"bl.example\") != 127.0.0.3\n"
        "  reject if dmarc.policy == reject\n"
        "}\n");
    for (const Rule& rule : policy->stage_rules(Stage::eom)) {
        EXPECT_EQ(condition_holds(*rule.condition, facts_), std::nullopt) << "line " << rule.where.line;
    }
    arrive();
    // The RHSBL name is known only now, with SPF's domain: its lookup starts.
    EXPECT_EQ(condition_holds(*policy->stage_rules(Stage::eom)[3].condition, facts_), std::nullopt);
    arrive();
    for (const Rule& rule : policy->stage_rules(Stage::eom)) {
        EXPECT_EQ(condition_holds(*rule.condition, facts_), rule.where.line != 6) << "line " << rule.where.line;
    }
}

TEST_F(Waiting, TheWalkStopsAtTheRuleAndGoesOnFromIt) {
    const auto policy = parse(
        "on rcpt {\n"
        "  log \"one\"\n"
        "  log \"two\" if rcpt.domain == example.com\n"
        "  reject \"spf ${spf}\" if spf == fail\n"
        "  reject \"last\"\n"
        "}\n");
    CountingObserver observer;
    StageRun run(Stage::rcpt);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, &observer));
    EXPECT_EQ(run.next_rule, 2u);
    EXPECT_EQ(observer.seen, (Lines{"2 applies", "3 applies"}));
    // Woken before the answer came: the walk stays where it is.
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, &observer));
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, &observer));
    EXPECT_EQ(observer.seen, (Lines{"2 applies", "3 applies"}));
    arrive();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false, &observer));
    EXPECT_EQ(observer.seen, (Lines{"2 applies", "3 applies", "4 applies"}));
    EXPECT_EQ(run.result.verdict.text, Lines{"spf fail"});
    ASSERT_EQ(run.result.effects.size(), 2u);   // each log once
    EXPECT_EQ(run.result.effects[0].value, "one");
    EXPECT_EQ(run.result.effects[1].value, "two");
}

TEST_F(Waiting, ARuleThatDoesNotApplyOnceKnownLetsTheWalkGoOn) {
    spf_.answer = {"pass", "example.net"};
    const auto policy = parse("on rcpt {\n  reject \"spf\" if spf == fail\n  reject \"last\"\n}\n");
    CountingObserver observer;
    const auto walk = run_stage(*policy, Stage::rcpt, facts_, test_support::RunOptions().observer(&observer).arrive([this] { arrive(); }));
    EXPECT_EQ(walk.stops, 1);
    EXPECT_EQ(observer.seen, (Lines{"2 does not apply", "3 applies"}));
    EXPECT_EQ(walk.result.verdict.text, Lines{"last"});
}

TEST_F(Waiting, TemplatesWaitForTheFieldsTheyRead) {
    // Each text reads a fact the condition does not: the rules apply
    // at once, their texts wait.
    const auto policy = parse(
        "on eom {\n"
        "  log \"spf=${spf} for ${spf.domain}\"\n"
        "  add-header X-Dkim \"${dkim} ${dkim.domain}\"\n"
        "  monitor reject 550 5.7.1 \"listed ${dnsbl(\\\"bl.example\\\")}\"\n"
        "  quarantine \"dmarc ${dmarc} ${dmarc.policy}\"\n"
        "}\n");
    const auto walk = run_stage(*policy, Stage::eom, facts_, test_support::RunOptions().arrive([this] { arrive(); }));
    EXPECT_GE(walk.stops, 1);
    const StageResult& result = walk.result;
    ASSERT_EQ(result.effects.size(), 3u);
    EXPECT_EQ(result.effects[0].value, "spf=fail for example.com");
    EXPECT_EQ(result.effects[1].value, "pass example.org");
    EXPECT_EQ(result.effects[2].would_be.text, Lines{"listed 127.0.0.2"});
    EXPECT_EQ(result.verdict.outcome, Outcome::quarantine);
    EXPECT_EQ(result.verdict.text, Lines{"dmarc fail reject"});
}

TEST_F(Waiting, AReachedRuleStartsTheWorkOfAllItsTexts) {
    // One stop, not one per field: every fact the rule reads is asked for at once.
    const auto policy = parse("on eom { reject \"${spf} ${dkim} ${dmarc} ${dnsbl(bl.example)}\" }\n");
    const auto walk = run_stage(*policy, Stage::eom, facts_, test_support::RunOptions().arrive([this] { arrive(); }));
    EXPECT_EQ(walk.stops, 1);
    EXPECT_EQ(walk.result.verdict.text, Lines{"fail pass fail 127.0.0.2"});
}

TEST_F(Waiting, AStoreAnswerThatComesLaterIsAskedForOnce) {
    for (const std::string* text : {&kPolicy, &kRatelimitPolicy}) {
        const auto policy = parse(*text);
        FakeStatefulChecks checks({StatefulAnswer::Kind::pass, 0, "reason=pass"});
        checks.later = true;
        facts_.auth_user = "alice";   // a key for the rate limit
        int wakes = 0;
        CountingObserver observer;
        StageRun run(Stage::rcpt, [&wakes] { ++wakes; });
        EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, &observer, &checks)) << *text;
        for (int resumed = 0; resumed < 3; ++resumed) {
            EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, &observer, &checks)) << *text;
        }
        EXPECT_EQ(checks.calls, 1) << *text;
        EXPECT_EQ(wakes, 0) << *text;
        EXPECT_EQ(observer.seen, Lines{}) << *text;   // tested once its answer is in
        checks.answer_all();
        EXPECT_EQ(wakes, 1) << *text;
        EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false, &observer, &checks)) << *text;
        EXPECT_EQ(checks.calls, 1) << *text;
        EXPECT_EQ(observer.seen, (Lines{"2 applies", "3 applies"})) << *text;
        expect_passed_on(run.result, text == &kPolicy ? "after greylist" : "after ratelimit", "reason=pass");
    }
}

TEST_F(Waiting, AStoreAnswerDuringTheCallWakesNobody) {
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 120, ""});
    int wakes = 0;
    StageRun run(Stage::rcpt, [&wakes] { ++wakes; });
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false, nullptr, &checks));
    EXPECT_EQ(run.result.verdict.code, "451");
    EXPECT_EQ(wakes, 0);
}

TEST_F(Waiting, TheStoreIsAskedOnceAcrossTheStopsAroundIt) {
    // A fact pending in the rule's condition, in its reply text, and in a
    // rule after it: the walk stops three times, the store is asked once.
    const auto policy = parse(
        "on rcpt {\n"
        "  greylist 450 4.7.1 \"spf ${spf.domain}: wait ${greylist.wait}s\" if client.ip in dnsbl \"bl.example\"\n"
        "  reject \"after ${dnsbl(\\\"other.example\\\")}\"\n"
        "}\n");
    lookups_.list("5.113.0.203.other.example", {"127.0.0.4"});
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 300, ""});
    checks.later = true;
    int wakes = 0;
    StageRun run(Stage::rcpt, [&wakes] { ++wakes; });
    int stops = 0;
    while (!evaluate_stage(*policy, run, facts_, false, nullptr, &checks)) {
        ASSERT_LT(++stops, test_support::kMaxStops);
        EXPECT_LE(checks.calls, 1);
        // Spurious wake-ups cost nothing.
        EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, nullptr, &checks));
        if (!checks.unanswered.empty()) checks.answer_all();
        else arrive();
    }
    EXPECT_EQ(checks.calls, 1);
    EXPECT_EQ(wakes, 1);
    EXPECT_EQ(run.result.verdict.text, Lines{"spf example.com: wait 300s"});

    // Passed, the walk goes on to a rule that waits; the store is not asked again.
    checks.answer = {StatefulAnswer::Kind::pass, 0, "reason=pass"};
    checks.calls = 0;
    spf_.checks.forget();
    lookups_.answers.forget();
    StageRun second(Stage::rcpt);
    stops = 0;
    while (!evaluate_stage(*policy, second, facts_, false, nullptr, &checks)) {
        ASSERT_LT(++stops, test_support::kMaxStops);
        if (!checks.unanswered.empty()) checks.answer_all();
        else arrive();
    }
    EXPECT_EQ(checks.calls, 1);
    EXPECT_EQ(second.result.verdict.text, Lines{"after 127.0.0.4"});
}

TEST_F(Waiting, AMonitoredStatefulRuleWaitsForItsAnswerToo) {
    const auto policy = parse("on rcpt {\n  monitor greylist\n  reject 550 5.7.1 \"next\"\n}\n");
    FakeStatefulChecks checks({StatefulAnswer::Kind::refuse, 60, ""});
    checks.later = true;
    StageRun run(Stage::rcpt);
    EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, nullptr, &checks));
    checks.answer_all();
    EXPECT_TRUE(evaluate_stage(*policy, run, facts_, false, nullptr, &checks));
    EXPECT_EQ(checks.calls, 1);
    EXPECT_EQ(run.result.verdict.text, Lines{"next"});
    ASSERT_EQ(run.result.effects.size(), 1u);
    EXPECT_EQ(verdict_label(run.result.effects[0].would_be), "greylist defer");
}

TEST_F(Waiting, AnAnswerForAFinishedRunIsDropped) {
    // The session gave up on the stage (its run is gone): the store's late
    // answer must neither wake it nor touch the run.
    const auto policy = parse(kPolicy);
    FakeStatefulChecks checks({StatefulAnswer::Kind::pass, 0, ""});
    checks.later = true;
    int wakes = 0;
    {
        StageRun run(Stage::rcpt, [&wakes] { ++wakes; });
        EXPECT_FALSE(evaluate_stage(*policy, run, facts_, false, nullptr, &checks));
    }
    checks.answer_all();
    EXPECT_EQ(wakes, 0);
}

}  // namespace
}  // namespace portcullis::policy
