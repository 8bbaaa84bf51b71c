/*
 * message_stream_test.cc: how the session feeds a message's
 * authentication (DKIM, DMARC, Authentication-Results) and what it makes
 * of the answers, with a fake stream whose answers come at once or later:
 * a rule that reads DMARC waits for it, and so does the end of message
 * for our Authentication-Results value.
 */
#include <gtest/gtest.h>

#include "milter/session.h"
#include "support/fake_checks.h"

namespace portcullis::milter {
namespace {

using Lines = std::vector<std::string>;

/* What the fake streams saw and what they answer. */
struct Script {
    Lines events;   // "header Name: value", "eoh", "body N", "dkim", "dmarc"
    test_support::FakeAuthentication auth;   // dkim and dmarc
    std::vector<int> forged{1, 3};
    std::string last_disposition;
    int streams = 0;
    // Our header's value for a disposition, from the DMARC answer.
    test_support::LaterAnswers<std::string, std::string> results{
        [this](const std::string&) { return "mx; dmarc=" + auth.dmarc_answer.result; }};

    void arrive() {
        auth.arrive();
        results.arrive();
    }
};

class FakeStream final : public MessageStream {
public:
    FakeStream(Script& script, const std::function<void()>& wake) : script_(script) {
        ++script_.streams;
        for (auto* answers : {&script_.auth.dkim_checks.on_arrival, &script_.auth.dmarc_checks.on_arrival,
                              &script_.results.on_arrival}) {
            *answers = wake;
        }
        script_.auth.dkim_checks.forget();
        script_.auth.dmarc_checks.forget();
        script_.results.forget();
    }
    ~FakeStream() override {
        script_.auth.dkim_checks.on_arrival = script_.auth.dmarc_checks.on_arrival = script_.results.on_arrival =
            nullptr;
    }
    FakeStream(const FakeStream&) = delete;
    FakeStream& operator=(const FakeStream&) = delete;

    void header(std::string_view name, std::string_view value) override {
        script_.events.push_back("header " + std::string(name) + ":" + std::string(value));
    }
    void end_of_headers() override { script_.events.emplace_back("eoh"); }
    void body(std::string_view chunk) override { script_.events.push_back("body " + std::to_string(chunk.size())); }
    const policy::DkimAnswer* dkim() override {
        script_.events.emplace_back("dkim");
        return script_.auth.dkim();
    }
    const policy::DmarcAnswer* dmarc() override {
        script_.events.emplace_back("dmarc");
        return script_.auth.dmarc();
    }
    std::vector<int> forged_results() const override { return script_.forged; }
    std::optional<std::string> results_header(std::string_view disposition) override {
        script_.last_disposition = disposition;
        const std::string* value = script_.results.ask(std::string(disposition));
        return value ? std::optional(*value) : std::nullopt;
    }

private:
    Script& script_;
};

class Quiet final : public DecisionSink {
public:
    bool wants_rule_checks() const override { return false; }
    void rule_checked(const Session&, policy::Stage, const policy::Rule&, bool) override {}
    void decision(const Session&, policy::Stage, std::string_view, const policy::Rule*, std::string_view) override {}
};

class MessageStreamTest : public ::testing::Test {
protected:
    MessageStreamTest() {
        checks.stream = [this](const policy::Facts&, std::function<void()> wake) {
            return std::make_unique<FakeStream>(script, wake);
        };
    }

    std::shared_ptr<Snapshot> snapshot(const std::string& rules) { return test_support::snapshot_with(rules, &checks); }
    std::unique_ptr<test_support::DrivenSession> start(const std::string& rules) {
        return std::make_unique<test_support::DrivenSession>(snapshot(rules), sink);
    }

    /* connect, MAIL, RCPT, two header fields, the body in two chunks */
    template <typename Filter>
    Reply run_message(Filter& session) {
        session.connect(parse_ip("203.0.113.5"), "unknown", 1);
        session.mail("<a@example.org>", "", 0);
        session.rcpt("<b@example.com>");
        session.header("From", " a@example.org");
        session.header("Subject", "\thi");
        session.body("line\r\n");
        session.body("more\r\n");
        return session.end_of_message();
    }

    /* Answers that are to come later come at the next turn of the loop. */
    void answer_on_loop() {
        script.auth.set_later(true);
        script.results.later = true;
        const auto post_arrival = [this] { EventLoop::current()->post([this] { script.arrive(); }); };
        script.auth.dkim_checks.on_start = script.auth.dmarc_checks.on_start = script.results.on_start = post_arrival;
    }

    Script script;
    test_support::CheckScript checks;
    Quiet sink;
};

constexpr const char* kDmarcPolicy =
    "on eom {\n"
    "    reject 550 5.7.1 \"DMARC ${dmarc.domain}\" if dmarc == fail and dmarc.policy == reject\n"
    "    quarantine \"DMARC quarantine\" if dmarc == fail and dmarc.policy == quarantine\n"
    "}\n";

TEST_F(MessageStreamTest, HeaderAndBodyFlowAndTheRulesReadTheAnswers) {
    auto session = start(kDmarcPolicy);
    const Reply end = run_message(*session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::reject);
    EXPECT_EQ(end.answer.text, std::vector<std::string>{"DMARC example.org"});
    // dmarc read four times: the condition's two fields, and the reply
    // text's when it is checked known and when it is expanded.
    EXPECT_EQ(script.events, (Lines{"header From: a@example.org", "header Subject:\thi", "eoh", "body 6", "body 6",
                                    "dmarc", "dmarc", "dmarc", "dmarc"}));
    EXPECT_EQ(script.auth.dmarc_checks.started, Lines{"dmarc"});
    // A refused message gets neither our header nor removals.
    EXPECT_FALSE(end.results_header);
    EXPECT_TRUE(end.remove_results.empty());
}

TEST_F(MessageStreamTest, DeliveredMessageGetsOurHeaderAndRemovals) {
    script.auth.dmarc_answer = {"pass", "reject", "example.org"};
    auto session = start(kDmarcPolicy);
    const Reply end = run_message(*session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(end.results_header, std::optional<std::string>("mx; dmarc=pass"));
    EXPECT_EQ(end.remove_results, (std::vector<int>{1, 3}));
    EXPECT_EQ(script.last_disposition, "none");
}

TEST_F(MessageStreamTest, QuarantineIsTheDisposition) {
    script.auth.dmarc_answer = {"fail", "quarantine", "example.org"};
    auto session = start(kDmarcPolicy);
    const Reply end = run_message(*session);
    EXPECT_TRUE(end.quarantine);
    EXPECT_EQ(script.last_disposition, "quarantine");
}

TEST_F(MessageStreamTest, MessageWithoutBodyEndsItsHeaderAtEom) {
    auto session = start("on eom { log \"dkim ${dkim}\" }\n");
    session->connect(parse_ip("203.0.113.5"), "unknown", 1);
    session->mail("<a@example.org>", "", 0);
    session->rcpt("<b@example.com>");
    session->header("From", " a@example.org");
    session->end_of_message();
    // dkim read twice: the log text checked known, then expanded.
    EXPECT_EQ(script.events, (Lines{"header From: a@example.org", "eoh", "dkim", "dkim"}));
}

TEST_F(MessageStreamTest, EachMessageHasItsOwnStream) {
    auto session = start(kDmarcPolicy);
    run_message(*session);
    run_message(*session);
    EXPECT_EQ(script.streams, 2);
}

TEST_F(MessageStreamTest, MessageAcceptedAtMailIsNotFollowed) {
    auto session = start("on mail { accept if sender.domain == example.org }\n" + std::string(kDmarcPolicy));
    const Reply end = run_message(*session);
    EXPECT_EQ(script.streams, 0);
    EXPECT_FALSE(end.results_header);
}

TEST_F(MessageStreamTest, WithoutChecksTheFieldsHaveNoValue) {
    test_support::DrivenSession session(test_support::snapshot_with(kDmarcPolicy), sink);
    const Reply end = run_message(session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::proceed);
    EXPECT_FALSE(end.results_header);
}

TEST_F(MessageStreamTest, RulesWaitForDmarcAndTheEndForOurHeader) {
    answer_on_loop();
    script.auth.dmarc_answer = {"fail", "quarantine", "example.org"};
    auto session = start(kDmarcPolicy);
    const Reply end = run_message(*session);
    EXPECT_EQ(end.quarantine, std::optional<std::string>("DMARC quarantine"));
    EXPECT_EQ(end.results_header, std::optional<std::string>("mx; dmarc=fail"));
    EXPECT_EQ(end.remove_results, (std::vector<int>{1, 3}));
    EXPECT_EQ(script.last_disposition, "quarantine");
}

TEST_F(MessageStreamTest, EomWaitsForTheAuthenticationResultsValue) {
    // No rule reads a result: only our header waits.
    script.results.later = true;
    test_support::LoopSession filter(snapshot("on rcpt { log \"rcpt\" }\n"), sink);
    for (const auto& step : std::vector<std::function<std::optional<Reply>(Session&)>>{
             [](Session& s) { return s.connect(parse_ip("203.0.113.5"), "unknown", 1); },
             [](Session& s) { return s.mail("<a@example.org>", "", 0); },
             [](Session& s) { return s.rcpt("<b@example.com>"); }}) {
        ASSERT_TRUE(filter.stage(step));
    }
    filter.on_loop([&] { filter.session().header("From", " a@example.org"); });
    EXPECT_FALSE(filter.stage([](Session& s) { return s.end_of_message(); }));
    EXPECT_TRUE(filter.session().waiting());
    EXPECT_FALSE(filter.stage([](Session& s) { return s.resume(); }));   // not yet
    filter.on_loop([&] { script.arrive(); });
    EXPECT_EQ(filter.resumes, 1);
    const auto end = filter.stage([](Session& s) { return s.resume(); });
    ASSERT_TRUE(end);
    EXPECT_EQ(end->answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(end->results_header, std::optional<std::string>("mx; dmarc=fail"));
    EXPECT_EQ(end->remove_results, (std::vector<int>{1, 3}));
    EXPECT_EQ(script.results.started, Lines{"none"});
}

TEST_F(MessageStreamTest, ASessionGoneWhileItsHeaderIsWorkedOutIsNotCalledBack) {
    script.results.later = true;
    test_support::LoopSession filter(snapshot("on rcpt { log \"rcpt\" }\n"), sink);
    filter.stage([](Session& s) { return s.connect(parse_ip("203.0.113.5"), "unknown", 1); });
    filter.stage([](Session& s) { return s.mail("<a@example.org>", "", 0); });
    filter.stage([](Session& s) { return s.rcpt("<b@example.com>"); });
    EXPECT_FALSE(filter.stage([](Session& s) { return s.end_of_message(); }));
    filter.end();
    filter.on_loop([&] { script.arrive(); });
    EXPECT_EQ(filter.resumes, 0);
}

}  // namespace
}  // namespace portcullis::milter
