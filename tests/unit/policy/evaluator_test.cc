/*
 * evaluator_test.cc: conditions, operators, precedence, first-terminal-wins,
 * monitor, templates and the needs analysis, on policies parsed from text;
 * and what a greylist rule makes of each answer of the stateful checks (a
 * fake here): defer with the rule's reply and ${greylist.wait}, pass and go
 * on, 451 4.3.0 when the store is unavailable or missing, and monitor.
 */
#include "policy/evaluator.h"

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "policy/needs.h"
#include "support/parsed_policy.h"
#include "policy/template.h"

namespace portcullis::policy {
namespace {

using test_support::parse;

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
    return evaluate_stage(policy, stage, facts, false).verdict;
}

TEST(Evaluator, FirstTerminalRuleWins) {
    const auto policy = parse(
        "on rcpt {\n"
        "  log \"seen ${rcpt}\"\n"
        "  reject 550 5.7.1 \"first\" if rcpt.domain == example.com\n"
        "  reject 551 5.7.1 \"second\"\n"
        "}\n");
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false);
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
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false);
    EXPECT_EQ(result.verdict.outcome, Outcome::none);
    ASSERT_EQ(result.effects.size(), 2u);
    EXPECT_EQ(result.effects[0].kind, Effect::Kind::monitored);
    EXPECT_EQ(result.effects[0].would_be.outcome, Outcome::reject);
    EXPECT_EQ(result.effects[0].would_be.text.at(0), "would");
    EXPECT_EQ(result.effects[1].kind, Effect::Kind::add_header);
}

TEST(Evaluator, MonitorModeEnforcesNothing) {
    const auto policy = parse("on rcpt { reject\n add-header X-A \"b\" }\n");
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), true);
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
    std::string text(kMaxReplyLine - 1, 'a');
    text += "\xc3\xa9";   // a two-byte character straddling the limit
    const std::string cut = clean_line(text);
    EXPECT_EQ(cut.size(), kMaxReplyLine - 1);
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

/* Answers every question with ANSWER and remembers the question. */
class FakeChecks final : public StatefulChecks {
public:
    explicit FakeChecks(StatefulAnswer answer) : answer_(std::move(answer)) {}
    StatefulAnswer greylist(const GreylistParams& params, const Facts& facts) override {
        seen_params = params;
        seen_rcpt = facts.rcpt;
        ++calls;
        return answer_;
    }
    StatefulAnswer ratelimit(const RatelimitParams& params, std::span<const std::string> key) override {
        seen_bucket = params.bucket;
        seen_key.assign(key.begin(), key.end());
        ++calls;
        return answer_;
    }
    GreylistParams seen_params;
    std::string seen_rcpt;
    std::string seen_bucket;
    std::vector<std::string> seen_key;
    int calls = 0;

private:
    StatefulAnswer answer_;
};

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
    FakeChecks checks({StatefulAnswer::Kind::refuse, 120, "reason=new wait=120s"});
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks);
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
    FakeChecks checks({StatefulAnswer::Kind::refuse, 7, ""});
    const auto verdict = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks).verdict;
    EXPECT_EQ(verdict.outcome, Outcome::reject);
    EXPECT_EQ(verdict.code, "550");
    EXPECT_EQ(verdict.text, std::vector<std::string>{"come back in 7s"});
}

TEST(GreylistRule, PassGoesOnToTheNextRule) {
    const auto policy = parse(kPolicy);
    FakeChecks checks({StatefulAnswer::Kind::pass, 0, "reason=pass"});
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks);
    expect_passed_on(result, "after greylist", "reason=pass");
}

TEST(GreylistRule, NotAskedWhenTheConditionFails) {
    const auto policy = parse(kPolicy);
    FakeChecks checks({StatefulAnswer::Kind::refuse, 1, ""});
    Facts facts = external_client();
    facts.authenticated = true;
    evaluate_stage(*policy, Stage::rcpt, facts, false, nullptr, &checks);
    EXPECT_EQ(checks.calls, 0);
}

TEST(GreylistRule, UnavailableStoreTempfails430) {
    const auto policy = parse(kPolicy);
    FakeChecks checks({StatefulAnswer::Kind::unavailable, 0, "reason=store-error"});
    const auto verdict = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks).verdict;
    EXPECT_EQ(verdict.outcome, Outcome::tempfail);
    EXPECT_EQ(verdict.code, "451");
    EXPECT_EQ(verdict.xcode, "4.3.0");
}

TEST(StatefulRules, NoStoreAtAllTempfails430) {
    for (const std::string* text : {&kPolicy, &kRatelimitPolicy}) {
        const auto policy = parse(*text);
        const auto verdict = evaluate_stage(*policy, Stage::rcpt, external_client(), false).verdict;
        EXPECT_EQ(verdict.code, "451") << *text;
        EXPECT_EQ(verdict.xcode, "4.3.0") << *text;
    }
}

TEST(StatefulRules, MonitorLogsTheRefusalAndGoesOn) {
    for (const std::string action : {"greylist", "ratelimit client.ip 1/1m"}) {
        const auto policy = parse("on rcpt { monitor " + action + "\n reject 550 5.7.1 \"next\" }\n");
        FakeChecks checks({StatefulAnswer::Kind::refuse, 300, ""});
        const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks);
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
    FakeChecks checks({StatefulAnswer::Kind::pass, 0, "levels=1/5,1/100"});
    Facts facts = external_client();
    facts.authenticated = true;
    facts.auth_user = "Alice";
    const auto result = evaluate_stage(*policy, Stage::rcpt, facts, false, nullptr, &checks);
    EXPECT_EQ(checks.seen_bucket, "(auth.user,client.ip):5/1m,100/1h");
    EXPECT_EQ(checks.seen_key, (std::vector<std::string>{"Alice", facts.client_ip->str()}));
    expect_passed_on(result, "after ratelimit", "levels=1/5,1/100");
}

TEST(RatelimitRule, OverTheLimitDefersWith450) {
    const auto policy = parse(kRatelimitPolicy);
    FakeChecks checks({StatefulAnswer::Kind::refuse, 30, "over=5/1m"});
    const auto verdict = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks).verdict;
    EXPECT_EQ(verdict.outcome, Outcome::tempfail);
    EXPECT_EQ(verdict.code, "450");
    EXPECT_EQ(verdict.xcode, "4.7.1");
    EXPECT_EQ(verdict.text, std::vector<std::string>{"Rate limit exceeded, try again later"});
    EXPECT_EQ(verdict_label(verdict), "ratelimit defer");
    EXPECT_EQ(verdict.note, "over=5/1m");
}

TEST(RatelimitRule, PermanentReplyIsAReject) {
    const auto policy = parse("on mail { ratelimit sender 5/1m 550 5.7.1 \"Slow down\" }\n");
    FakeChecks checks({StatefulAnswer::Kind::refuse, 30, ""});
    const auto verdict = evaluate_stage(*policy, Stage::mail, external_client(), false, nullptr, &checks).verdict;
    EXPECT_EQ(verdict.outcome, Outcome::reject);
    EXPECT_EQ(verdict_label(verdict), "ratelimit reject");
}

TEST(RatelimitRule, AnEmptyKeyCountsNothing) {
    // No auth.user before AUTH: nothing to count.
    const auto policy = parse("on rcpt { ratelimit auth.user 1/1h\n reject 550 5.7.1 \"next\" }\n");
    FakeChecks checks({StatefulAnswer::Kind::refuse, 30, ""});
    const auto result = evaluate_stage(*policy, Stage::rcpt, external_client(), false, nullptr, &checks);
    EXPECT_EQ(checks.calls, 0);
    expect_passed_on(result, "next", "reason=no-key");
}

}  // namespace
}  // namespace portcullis::policy
