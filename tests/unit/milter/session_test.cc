/*
 * session_test.cc: the session flow without an MTA: connect-stage refusals
 * given at the next command, accept scopes, per-recipient refusal,
 * recipient counting, effects applied at end of message.
 */
#include "milter/session.h"

#include <gtest/gtest.h>

#include "policy/loader.h"

namespace portcullis::milter {
namespace {

class Recorder final : public DecisionSink {
public:
    bool wants_rule_checks() const override { return false; }
    void rule_checked(const Session&, policy::Stage, const policy::Rule&, bool) override {}
    void decision(const Session&, policy::Stage stage, std::string_view action, const policy::Rule*,
                  std::string_view) override {
        lines.push_back(std::string(policy::stage_name(stage)) + ":" + std::string(action));
    }
    std::vector<std::string> lines;
};

class SessionTest : public ::testing::Test {
protected:
    std::unique_ptr<Session> start(const std::string& rules, bool monitor = false) {
        auto result = policy::parse_policy(rules, "test.rules", ".");
        std::string errors;
        for (const auto& error : result.errors) errors += error.str() + "\n";
        EXPECT_TRUE(result.ok()) << errors;
        return std::make_unique<Session>(make_snapshot(result.policy, monitor), recorder);
    }
    Recorder recorder;
};

const auto kExternal = parse_ip("203.0.113.5");
const auto kTrusted = parse_ip("127.0.0.1");

constexpr const char* kRelayPolicy =
    "list trusted ip { 127.0.0.0/8 }\n"
    "list local_domains domain { example.com }\n"
    "on connect { accept if client.ip in trusted }\n"
    "on rcpt { reject 554 5.7.1 \"Relay access denied\" if not rcpt.domain in local_domains and not authenticated }\n";

TEST_F(SessionTest, RelayRefusedPerRecipient) {
    auto session = start(kRelayPolicy);
    EXPECT_EQ(session->connect(kExternal, "unknown", 1234).kind, Answer::Kind::proceed);
    EXPECT_EQ(session->mail("<alice@example.net>", "", 0).kind, Answer::Kind::proceed);
    const Answer foreign = session->rcpt("<bob@foreign.example>");
    EXPECT_EQ(foreign.kind, Answer::Kind::reject);
    EXPECT_EQ(foreign.code, "554");
    EXPECT_EQ(foreign.xcode, "5.7.1");
    EXPECT_EQ(foreign.text, std::vector<std::string>{"Relay access denied"});
    EXPECT_EQ(session->rcpt("<carol@example.com>").kind, Answer::Kind::proceed);
    EXPECT_EQ(session->facts().rcpt_count, 1u);   // only the accepted one counts
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AuthenticatedMayRelay) {
    auto session = start(kRelayPolicy);
    session->connect(kExternal, "unknown", 1234);
    session->mail("<alice@example.net>", "alice", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AcceptAtConnectEndsFilteringForTheConnection) {
    auto session = start(kRelayPolicy);
    EXPECT_EQ(session->connect(kTrusted, "localhost", 1234).kind, Answer::Kind::accept);
    // If the MTA still calls (it should not), nothing is refused.
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").kind, Answer::Kind::proceed);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{"connect:accept"});
}

TEST_F(SessionTest, ConnectRefusalIsGivenAtTheNextCommands) {
    auto session = start("on connect { reject 550 5.7.0 \"No mail from ${client.ip} today\" }\n");
    EXPECT_EQ(session->connect(kExternal, "unknown", 1).kind, Answer::Kind::proceed);
    const Answer helo = session->helo("x.example", false);
    EXPECT_EQ(helo.kind, Answer::Kind::reject);
    EXPECT_EQ(helo.text, std::vector<std::string>{"No mail from 203.0.113.5 today"});
    const Answer mail = session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(mail.kind, Answer::Kind::reject);
    EXPECT_EQ(mail.code, "550");
}

TEST_F(SessionTest, HeloRefusalLastsUntilTheNextHelo) {
    auto session = start("on helo { tempfail 450 4.7.1 \"bad helo\" if helo == localhost }\n");
    session->connect(kExternal, "unknown", 1);
    EXPECT_EQ(session->helo("localhost", false).kind, Answer::Kind::tempfail);
    EXPECT_EQ(session->mail("<a@b.example>", "", 0).kind, Answer::Kind::tempfail);
    EXPECT_EQ(session->helo("mx.example.net", false).kind, Answer::Kind::proceed);
    EXPECT_EQ(session->mail("<a@b.example>", "", 0).kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AcceptAtRcptCoversThatRecipientOnly) {
    auto session = start(
        "on rcpt {\n  accept if rcpt == postmaster@example.com\n  reject\n}\n"
        "on eom { add-header X-Checked \"yes\" }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<postmaster@example.com>").kind, Answer::Kind::proceed);
    EXPECT_EQ(session->rcpt("<other@example.com>").kind, Answer::Kind::reject);
    const auto end = session->end_of_message();   // eom rules still ran
    ASSERT_EQ(end.add_headers.size(), 1u);
    EXPECT_EQ(end.add_headers[0].first, "X-Checked");
}

TEST_F(SessionTest, AcceptAtMailSkipsTheRestOfTheMessageOnly) {
    auto session = start("on mail { accept if sender == vip@example.net }\non rcpt { reject }\n");
    session->connect(kExternal, "unknown", 1);
    EXPECT_EQ(session->mail("<vip@example.net>", "", 0).kind, Answer::Kind::accept);
    EXPECT_EQ(session->rcpt("<x@example.com>").kind, Answer::Kind::proceed);
    session->end_of_message();
    EXPECT_EQ(session->mail("<other@example.net>", "", 0).kind, Answer::Kind::proceed);
    EXPECT_EQ(session->rcpt("<x@example.com>").kind, Answer::Kind::reject);
}

TEST_F(SessionTest, ConnectionHeadersApplyToEveryMessageMessageHeadersToOne) {
    auto session = start(
        "on connect { add-header X-Client \"${client.ip}\" }\n"
        "on mail { add-header X-Sender \"${sender}\" if sender == a@b.example }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    EXPECT_EQ(session->end_of_message().add_headers.size(), 2u);
    session->mail("<c@d.example>", "", 0);
    session->rcpt("<x@example.com>");
    const auto second = session->end_of_message();
    ASSERT_EQ(second.add_headers.size(), 1u);
    EXPECT_EQ(second.add_headers[0].second, "203.0.113.5");
}

TEST_F(SessionTest, DiscardAndQuarantine) {
    auto session = start(
        "on rcpt { discard if rcpt == trap@example.com }\n"
        "on eom { quarantine \"review\" if header(\"X-Spam\") == yes }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<trap@example.com>").kind, Answer::Kind::discard);
    session->abort_message();
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    session->header("X-Spam", " yes");
    const auto end = session->end_of_message();
    EXPECT_EQ(end.answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(end.quarantine.value_or(""), "review");
}

TEST_F(SessionTest, RealSizeAtEndOfMessage) {
    auto session = start("on eom { reject 552 5.3.4 \"too big\" if size > 1k }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    session->header("Subject", " hi");
    session->body(std::string(500, 'x'));
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::proceed);
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    session->body(std::string(2000, 'x'));
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::reject);
}

TEST_F(SessionTest, MonitorModeLogsButDelivers) {
    auto session = start(kRelayPolicy, true);
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").kind, Answer::Kind::proceed);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{"rcpt:monitor reject"});
}

TEST_F(SessionTest, LocalSubmissionWithoutClientAddress) {
    auto session = start(kRelayPolicy);
    EXPECT_EQ(session->connect(std::nullopt, "localhost", 0).kind, Answer::Kind::proceed);
    session->mail("<root@localhost>", "", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").kind, Answer::Kind::reject);
    EXPECT_EQ(session->rcpt("<bob@example.com>").kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, TenThousandRecipients) {
    auto session = start(kRelayPolicy);
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    for (int i = 0; i < 10000; ++i) {
        ASSERT_EQ(session->rcpt("<user" + std::to_string(i) + "@example.com>").kind, Answer::Kind::proceed);
    }
    EXPECT_EQ(session->facts().rcpt_count, 10000u);
}

TEST_F(SessionTest, FromFieldsAreParsedOnceAndForgottenWithTheMessage) {
    // No rule reads a header: From is parsed all the same, for DMARC.
    auto session = start("on rcpt { reject 550 5.7.1 \"no\" if rcpt.local == \"nobody\" }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@example.net>", "", 0);
    session->rcpt("<b@example.com>");
    session->header("from", " \"x <a@evil.example>\" <b@good.example>");
    session->header("Subject", " <c@other.example>");
    session->header("FROM", "\r\n (a@evil.example) b@Good.Example");
    EXPECT_EQ(session->facts().from.fields(), 2u);
    EXPECT_EQ(session->facts().from.address(), "b@good.example");
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::proceed);
    session->mail("<a@example.net>", "", 0);
    EXPECT_EQ(session->facts().from.fields(), 0u);
    EXPECT_EQ(session->facts().from.domain(), std::nullopt);
}

TEST_F(SessionTest, HugeHeaderIsBoundedNotStoredWhole) {
    auto session = start("on eom { reject if header(\"X-Big\") == x }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    session->header("X-Big", std::string(1024 * 1024, 'a'));
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::proceed);
    EXPECT_LE(session->facts().headers.at(0).value.size(), 16u * 1024);
}

}  // namespace
}  // namespace portcullis::milter
