/*
 * message_stream_test.cc: how the session feeds a message's
 * authentication (DKIM, DMARC, Authentication-Results) and what it makes
 * of the answers, with a fake authenticator.
 */
#include <gtest/gtest.h>

#include "milter/session.h"
#include "policy/loader.h"

namespace portcullis::milter {
namespace {

/* What a fake stream saw and what it answers. */
struct Script {
    std::vector<std::string> events;   // "header Name: value", "eoh", "body N", "dkim", "dmarc"
    policy::DkimAnswer dkim{"pass", "example.org"};
    policy::DmarcAnswer dmarc{"fail", "reject", "example.org"};
    std::vector<int> forged{1, 3};
    std::string last_disposition;
    int streams = 0;
};

class FakeStream final : public MessageStream {
public:
    explicit FakeStream(Script& script) : script_(script) { ++script_.streams; }
    void header(std::string_view name, std::string_view value) override {
        script_.events.push_back("header " + std::string(name) + ":" + std::string(value));
    }
    void end_of_headers() override { script_.events.emplace_back("eoh"); }
    void body(std::string_view chunk) override { script_.events.push_back("body " + std::to_string(chunk.size())); }
    const policy::DkimAnswer& dkim() override {
        script_.events.emplace_back("dkim");
        return script_.dkim;
    }
    const policy::DmarcAnswer& dmarc() override {
        script_.events.emplace_back("dmarc");
        return script_.dmarc;
    }
    std::vector<int> forged_results() const override { return script_.forged; }
    std::string results_header(std::string_view disposition) override {
        script_.last_disposition = disposition;
        return "mx; dmarc=" + script_.dmarc.result;
    }

private:
    Script& script_;
};

class FakeAuthenticator final : public MessageAuthenticator {
public:
    explicit FakeAuthenticator(Script& script) : script_(script) {}
    std::unique_ptr<MessageStream> begin(const policy::Facts&) override { return std::make_unique<FakeStream>(script_); }

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
    std::unique_ptr<Session> start(const std::string& rules) {
        auto result = policy::parse_policy(rules, "test.rules", ".");
        EXPECT_TRUE(result.ok());
        auto snapshot = std::make_shared<Snapshot>(*make_snapshot(result.policy, false));
        snapshot->auth = std::make_shared<FakeAuthenticator>(script);
        return std::make_unique<Session>(snapshot, sink);
    }
    /* connect, MAIL, RCPT, two header fields, the body in two chunks */
    EndOfMessage run_message(Session& session) {
        session.connect(parse_ip("203.0.113.5"), "unknown", 1);
        session.mail("<a@example.org>", "", 0);
        session.rcpt("<b@example.com>");
        session.header("From", " a@example.org");
        session.header("Subject", "\thi");
        session.body("line\r\n");
        session.body("more\r\n");
        return session.end_of_message();
    }
    Script script;
    Quiet sink;
};

constexpr const char* kDmarcPolicy =
    "on eom {\n"
    "    reject 550 5.7.1 \"DMARC ${dmarc.domain}\" if dmarc == fail and dmarc.policy == reject\n"
    "    quarantine \"DMARC quarantine\" if dmarc == fail and dmarc.policy == quarantine\n"
    "}\n";

TEST_F(MessageStreamTest, HeaderAndBodyFlowAndTheRulesReadTheAnswers) {
    auto session = start(kDmarcPolicy);
    const EndOfMessage end = run_message(*session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::reject);
    EXPECT_EQ(end.answer.text, std::vector<std::string>{"DMARC example.org"});
    // dmarc read three times: the condition's two fields and the reply text.
    EXPECT_EQ(script.events, (std::vector<std::string>{"header From: a@example.org", "header Subject:\thi", "eoh",
                                                       "body 6", "body 6", "dmarc", "dmarc", "dmarc"}));
    // A refused message gets neither our header nor removals.
    EXPECT_FALSE(end.results_header);
    EXPECT_TRUE(end.remove_results.empty());
}

TEST_F(MessageStreamTest, DeliveredMessageGetsOurHeaderAndRemovals) {
    script.dmarc = {"pass", "reject", "example.org"};
    auto session = start(kDmarcPolicy);
    const EndOfMessage end = run_message(*session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(end.results_header, std::optional<std::string>("mx; dmarc=pass"));
    EXPECT_EQ(end.remove_results, (std::vector<int>{1, 3}));
    EXPECT_EQ(script.last_disposition, "none");
}

TEST_F(MessageStreamTest, QuarantineIsTheDisposition) {
    script.dmarc = {"fail", "quarantine", "example.org"};
    auto session = start(kDmarcPolicy);
    const EndOfMessage end = run_message(*session);
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
    EXPECT_EQ(script.events, (std::vector<std::string>{"header From: a@example.org", "eoh", "dkim"}));
}

TEST_F(MessageStreamTest, EachMessageHasItsOwnStream) {
    auto session = start(kDmarcPolicy);
    run_message(*session);
    run_message(*session);
    EXPECT_EQ(script.streams, 2);
}

TEST_F(MessageStreamTest, MessageAcceptedAtMailIsNotFollowed) {
    auto session = start("on mail { accept if sender.domain == example.org }\n" + std::string(kDmarcPolicy));
    const EndOfMessage end = run_message(*session);
    EXPECT_EQ(script.streams, 0);
    EXPECT_FALSE(end.results_header);
}

TEST_F(MessageStreamTest, WithoutAuthenticatorTheFieldsHaveNoValue) {
    auto result = policy::parse_policy(kDmarcPolicy, "test.rules", ".");
    ASSERT_TRUE(result.ok());
    Session session(make_snapshot(result.policy, false), sink);
    const EndOfMessage end = run_message(session);
    EXPECT_EQ(end.answer.kind, Answer::Kind::proceed);
    EXPECT_FALSE(end.results_header);
}

}  // namespace
}  // namespace portcullis::milter
