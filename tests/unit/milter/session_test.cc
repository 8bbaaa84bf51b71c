/*
 * session_test.cc: the session flow without an MTA: connect-stage refusals
 * given at the next command, accept scopes, per-recipient refusal,
 * recipient counting, effects applied at end of message (those of the
 * last HELO only, none of a refused recipient's run) (each stage
 * driven to its reply by a SessionDriver); and the waits, on a loop of
 * the test's own: a stage that needs a lookup or a store answer returns
 * nothing, the session asks to be resumed once it has come (once for
 * answers that come together, never from inside its own call), and
 * resume() gives the reply, the rules before the waiting one decided
 * once; a session destroyed while its lookup or store question is out
 * is never called back.
 */
#include "milter/session.h"

#include <gtest/gtest.h>

#include "support/fake_checks.h"
#include "util/event_loop.h"

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

using test_support::DrivenSession;
using test_support::snapshot_with;

class SessionTest : public ::testing::Test {
protected:
    std::unique_ptr<DrivenSession> start(const std::string& rules, bool monitor = false) {
        return std::make_unique<DrivenSession>(snapshot_with(rules, nullptr, nullptr, monitor), recorder);
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
    EXPECT_EQ(session->connect(kExternal, "unknown", 1234).answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(session->mail("<alice@example.net>", "", 0).answer.kind, Answer::Kind::proceed);
    const Answer foreign = session->rcpt("<bob@foreign.example>").answer;
    EXPECT_EQ(foreign.kind, Answer::Kind::reject);
    EXPECT_EQ(foreign.code, "554");
    EXPECT_EQ(foreign.xcode, "5.7.1");
    EXPECT_EQ(foreign.text, std::vector<std::string>{"Relay access denied"});
    EXPECT_EQ(session->rcpt("<carol@example.com>").answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(session->facts().rcpt_count, 1u);   // only the accepted one counts
    EXPECT_EQ(session->end_of_message().answer.kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AuthenticatedMayRelay) {
    auto session = start(kRelayPolicy);
    session->connect(kExternal, "unknown", 1234);
    session->mail("<alice@example.net>", "alice", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").answer.kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AcceptAtConnectEndsFilteringForTheConnection) {
    auto session = start(kRelayPolicy);
    EXPECT_EQ(session->connect(kTrusted, "localhost", 1234).answer.kind, Answer::Kind::accept);
    // If the MTA still calls (it should not), nothing is refused.
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{"connect:accept"});
}

TEST_F(SessionTest, ConnectRefusalIsGivenAtTheNextCommands) {
    auto session = start("on connect { reject 550 5.7.0 \"No mail from ${client.ip} today\" }\n");
    EXPECT_EQ(session->connect(kExternal, "unknown", 1).answer.kind, Answer::Kind::proceed);
    const Answer helo = session->helo("x.example", false).answer;
    EXPECT_EQ(helo.kind, Answer::Kind::reject);
    EXPECT_EQ(helo.text, std::vector<std::string>{"No mail from 203.0.113.5 today"});
    const Answer mail = session->mail("<a@b.example>", "", 0).answer;
    EXPECT_EQ(mail.kind, Answer::Kind::reject);
    EXPECT_EQ(mail.code, "550");
}

TEST_F(SessionTest, HeloRefusalLastsUntilTheNextHelo) {
    auto session = start("on helo { tempfail 450 4.7.1 \"bad helo\" if helo == localhost }\n");
    session->connect(kExternal, "unknown", 1);
    EXPECT_EQ(session->helo("localhost", false).answer.kind, Answer::Kind::tempfail);
    EXPECT_EQ(session->mail("<a@b.example>", "", 0).answer.kind, Answer::Kind::tempfail);
    EXPECT_EQ(session->helo("mx.example.net", false).answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(session->mail("<a@b.example>", "", 0).answer.kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, AcceptAtRcptCoversThatRecipientOnly) {
    auto session = start(
        "on rcpt {\n  accept if rcpt == postmaster@example.com\n  reject\n}\n"
        "on eom { add-header X-Checked \"yes\" }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<postmaster@example.com>").answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(session->rcpt("<other@example.com>").answer.kind, Answer::Kind::reject);
    const auto end = session->end_of_message();   // eom rules still ran
    ASSERT_EQ(end.add_headers.size(), 1u);
    EXPECT_EQ(end.add_headers[0].first, "X-Checked");
}

TEST_F(SessionTest, AcceptAtMailSkipsTheRestOfTheMessageOnly) {
    auto session = start("on mail { accept if sender == vip@example.net }\non rcpt { reject }\n");
    session->connect(kExternal, "unknown", 1);
    EXPECT_EQ(session->mail("<vip@example.net>", "", 0).answer.kind, Answer::Kind::accept);
    EXPECT_EQ(session->rcpt("<x@example.com>").answer.kind, Answer::Kind::proceed);
    session->end_of_message();
    EXPECT_EQ(session->mail("<other@example.net>", "", 0).answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(session->rcpt("<x@example.com>").answer.kind, Answer::Kind::reject);
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

TEST_F(SessionTest, HeloEffectsAreTheLastHelosOnly) {
    // A client may say EHLO again (after STARTTLS, or a hundred times to
    // make the fields pile up): only the last one's count, once.
    auto session = start(
        "on helo { add-header X-Helo \"${helo}\"\n quarantine \"odd name\" if helo == odd.example }\n");
    session->connect(kExternal, "unknown", 1);
    session->helo("odd.example", false);
    for (int i = 0; i < 100; ++i) session->helo("mx" + std::to_string(i) + ".example", false);
    for (int message = 0; message < 3; ++message) {
        session->mail("<a@b.example>", "", 0);
        session->rcpt("<x@example.com>");
        const auto end = session->end_of_message();
        ASSERT_EQ(end.add_headers.size(), 1u) << "message " << message;
        EXPECT_EQ(end.add_headers[0].second, "mx99.example");
        EXPECT_FALSE(end.quarantine) << "the quarantine of an earlier HELO";
    }
}

TEST_F(SessionTest, ARefusedRecipientAddsNoHeader) {
    auto session = start(
        "on rcpt {\n add-header X-Rcpt \"${rcpt}\"\n reject if rcpt.domain != example.com\n}\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<ok@example.com>").answer.kind, Answer::Kind::proceed);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(session->rcpt("<x" + std::to_string(i) + "@evil.example>").answer.kind, Answer::Kind::reject);
    }
    const auto end = session->end_of_message();
    ASSERT_EQ(end.add_headers.size(), 1u);
    EXPECT_EQ(end.add_headers[0].second, "ok@example.com");
}

TEST_F(SessionTest, DiscardAndQuarantine) {
    auto session = start(
        "on rcpt { discard if rcpt == trap@example.com }\n"
        "on eom { quarantine \"review\" if header(\"X-Spam\") == yes }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    EXPECT_EQ(session->rcpt("<trap@example.com>").answer.kind, Answer::Kind::discard);
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
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{"rcpt:monitor reject"});
}

TEST_F(SessionTest, LocalSubmissionWithoutClientAddress) {
    auto session = start(kRelayPolicy);
    EXPECT_EQ(session->connect(std::nullopt, "localhost", 0).answer.kind, Answer::Kind::proceed);
    session->mail("<root@localhost>", "", 0);
    EXPECT_EQ(session->rcpt("<bob@foreign.example>").answer.kind, Answer::Kind::reject);
    EXPECT_EQ(session->rcpt("<bob@example.com>").answer.kind, Answer::Kind::proceed);
}

TEST_F(SessionTest, TenThousandRecipients) {
    auto session = start(kRelayPolicy);
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    for (int i = 0; i < 10000; ++i) {
        ASSERT_EQ(session->rcpt("<user" + std::to_string(i) + "@example.com>").answer.kind, Answer::Kind::proceed);
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

TEST_F(SessionTest, OnlyTheFieldsHeaderReadsAreKept) {
    auto session = start("on eom { reject if header(\"X-Spam\") == yes or header(\"x-spam\") == YES }\n"
                         "on eom { log \"${header(\\\"Subject\\\")}\" }\n");
    session->connect(kExternal, "unknown", 1);
    session->mail("<a@b.example>", "", 0);
    session->rcpt("<x@example.com>");
    for (const char* name : {"Received", "From", "subject", "To", "X-SPAM", "Message-ID"}) session->header(name, " v");
    ASSERT_EQ(session->facts().headers.size(), 2u);
    EXPECT_EQ(session->facts().headers[0].name, "subject");
    EXPECT_EQ(session->facts().headers[1].name, "X-SPAM");
    // From is parsed all the same, for from and DMARC.
    EXPECT_EQ(session->facts().from.fields(), 1u);
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

/* A session on a loop of the test's own, whose checks answer when the
 * test says. */
class WaitingSession : public ::testing::Test {
protected:
    void start(const std::string& rules, std::shared_ptr<policy::StatefulChecks> stateful = nullptr) {
        script.answer_later();
        filter = std::make_unique<test_support::LoopSession>(snapshot_with(rules, &script, std::move(stateful)),
                                                             recorder);
    }
    std::optional<Reply> stage(const std::function<std::optional<Reply>(Session&)>& step) {
        return filter->stage(step);
    }
    void on_loop(const std::function<void()>& task) { filter->on_loop(task); }

    test_support::CheckScript script;
    Recorder recorder;
    std::unique_ptr<test_support::LoopSession> filter;   // goes before the script
};

constexpr const char* kListedAtMail =
    "on mail {\n"
    "  log \"before\"\n"
    "  reject 550 5.7.1 \"listed\" if client.ip in dnsbl \"bl.example\"\n"
    "}\n";

TEST_F(WaitingSession, AStageThatWaitsGivesItsReplyOnResume) {
    start(kListedAtMail);
    script.lookups.list("5.113.0.203.bl.example", {"127.0.0.2"});
    ASSERT_TRUE(stage([](Session& s) { return s.connect(kExternal, "unknown", 1); }));
    EXPECT_FALSE(stage([](Session& s) { return s.mail("<a@b.example>", "", 0); }));
    EXPECT_TRUE(filter->session().waiting());
    EXPECT_EQ(script.lookups.answers.started, std::vector<std::string>{"5.113.0.203.bl.example"});

    // A resume before the answer came gives nothing, and decides nothing twice.
    EXPECT_FALSE(stage([](Session& s) { return s.resume(); }));
    EXPECT_EQ(filter->resumes, 0);

    on_loop([&] {
        script.arrive();
        EXPECT_EQ(filter->resumes, 0);   // never from inside the call that woke it
    });
    EXPECT_EQ(filter->resumes, 1);
    const auto reply = stage([](Session& s) { return s.resume(); });
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->answer.kind, Answer::Kind::reject);
    EXPECT_EQ(reply->answer.text, std::vector<std::string>{"listed"});
    EXPECT_FALSE(filter->session().waiting());
    EXPECT_EQ(recorder.lines, (std::vector<std::string>{"mail:log", "mail:reject"}));
    EXPECT_FALSE(stage([](Session& s) { return s.resume(); }));   // nothing left to resume
}

TEST_F(WaitingSession, AnswersThatComeTogetherResumeOnce) {
    start("on mail { reject \"x\" if client.ip in dnsbl \"bl.example\" or spf == fail }\n");
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    EXPECT_FALSE(stage([](Session& s) { return s.mail("<a@b.example>", "", 0); }));
    on_loop([&] {
        script.lookups.answers.arrive();
        script.spf.checks.arrive();
    });
    EXPECT_EQ(filter->resumes, 1);
    const auto reply = stage([](Session& s) { return s.resume(); });
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->answer.kind, Answer::Kind::reject);   // spf fails
}

TEST_F(WaitingSession, AStoreAnswerThatComesLaterResumesTheStage) {
    auto store = std::make_shared<test_support::FakeStatefulChecks>(
        policy::StatefulAnswer{policy::StatefulAnswer::Kind::refuse, 300, "reason=new"});
    store->later = true;
    start("on rcpt { greylist }\n", store);
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    stage([](Session& s) { return s.mail("<a@b.example>", "", 0); });
    EXPECT_FALSE(stage([](Session& s) { return s.rcpt("<x@example.com>"); }));
    EXPECT_FALSE(stage([](Session& s) { return s.resume(); }));
    EXPECT_EQ(store->calls, 1);
    on_loop([&] { store->answer_all(); });
    EXPECT_EQ(filter->resumes, 1);
    const auto reply = stage([](Session& s) { return s.resume(); });
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->answer.kind, Answer::Kind::tempfail);
    EXPECT_EQ(reply->answer.text, std::vector<std::string>{"Greylisted, please try again in 300 seconds"});
    EXPECT_EQ(store->calls, 1);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{"rcpt:greylist defer"});
}

TEST_F(WaitingSession, AnAnswerThatComesAfterTheStageWasDecidedResumesNothing) {
    // The rule starts the lookup, but its known side decides it.
    start("on mail { reject if sender == x@y.example and client.ip in dnsbl \"bl.example\" }\n"
          "on rcpt { reject if client.ip in dnsbl \"other.example\" }\n");
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    const auto mail = stage([](Session& s) { return s.mail("<a@b.example>", "", 0); });
    ASSERT_TRUE(mail);
    EXPECT_EQ(mail->answer.kind, Answer::Kind::proceed);
    EXPECT_EQ(script.lookups.answers.started.size(), 1u);
    on_loop([&] { script.arrive(); });
    EXPECT_EQ(filter->resumes, 0);
    EXPECT_FALSE(filter->session().waiting());
    // A stage that waits later is still resumed.
    EXPECT_FALSE(stage([](Session& s) { return s.rcpt("<x@example.com>"); }));
    on_loop([&] { script.arrive(); });
    EXPECT_EQ(filter->resumes, 1);
    EXPECT_TRUE(stage([](Session& s) { return s.resume(); }));
}

TEST_F(WaitingSession, AConnectRefusalThatWaitedIsGivenAtTheNextCommand) {
    start("on connect { reject 550 5.7.1 \"listed\" if client.ip in dnsbl \"bl.example\" }\n");
    script.lookups.list("5.113.0.203.bl.example", {"127.0.0.2"});
    EXPECT_FALSE(stage([](Session& s) { return s.connect(kExternal, "unknown", 1); }));
    on_loop([&] { script.arrive(); });
    const auto connect = stage([](Session& s) { return s.resume(); });
    ASSERT_TRUE(connect);
    EXPECT_EQ(connect->answer.kind, Answer::Kind::proceed);   // no reply text at connect
    const auto helo = stage([](Session& s) { return s.helo("mx.example.net", false); });
    ASSERT_TRUE(helo);
    EXPECT_EQ(helo->answer.kind, Answer::Kind::reject);
    EXPECT_EQ(helo->answer.text, std::vector<std::string>{"listed"});
}

TEST_F(WaitingSession, ASessionGoneWhileItsLookupIsOutIsNotCalledBack) {
    start(kListedAtMail);
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    EXPECT_FALSE(stage([](Session& s) { return s.mail("<a@b.example>", "", 0); }));
    filter->end();   // the MTA went away
    EXPECT_EQ(script.ended, 1);   // its checks, and their lookups, went with it
    on_loop([&] { script.arrive(); });
    EXPECT_EQ(filter->resumes, 0);
}

TEST_F(WaitingSession, ASessionGoneBeforeItsWakeRunsIsNotCalledBack) {
    // The answer came and the resume was deferred; the session goes first.
    start(kListedAtMail);
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    EXPECT_FALSE(stage([](Session& s) { return s.mail("<a@b.example>", "", 0); }));
    on_loop([&] {
        script.arrive();
        filter->end();
    });
    EXPECT_EQ(filter->resumes, 0);
}

TEST_F(WaitingSession, ASessionGoneWhileTheStoreIsAskedIsNotCalledBack) {
    auto store = std::make_shared<test_support::FakeStatefulChecks>();
    store->later = true;
    start("on rcpt { greylist }\n", store);
    stage([](Session& s) { return s.connect(kExternal, "unknown", 1); });
    stage([](Session& s) { return s.mail("<a@b.example>", "", 0); });
    EXPECT_FALSE(stage([](Session& s) { return s.rcpt("<x@example.com>"); }));
    filter->end();
    on_loop([&] { store->answer_all(); });   // the store outlives the session
    EXPECT_EQ(filter->resumes, 0);
    EXPECT_EQ(recorder.lines, std::vector<std::string>{});
}

TEST_F(SessionTest, TheDriverGivesAStageThatWaitedItsReplyOnceWoken) {
    // One DNS list answer, at the next turn of the driver's loop: the stage
    // ends then, not at some later event (the watchdog's).
    test_support::CheckScript script;
    script.answer_on_loop();
    script.lookups.list("5.113.0.203.bl.example", {"127.0.0.2"});
    DrivenSession session(snapshot_with(kListedAtMail, &script), recorder);
    session.connect(kExternal, "unknown", 1);
    EXPECT_EQ(session.mail("<a@b.example>", "", 0).answer.text, std::vector<std::string>{"listed"});
}

TEST_F(SessionTest, TheDriverResumesAStageUntilItHasItsReply) {
    // Lookups and the store answer at later turns of the driver's loop.
    test_support::CheckScript script;
    script.answer_on_loop();
    script.lookups.list("5.113.0.203.bl.example", {"127.0.0.2"});
    auto store = std::make_shared<test_support::FakeStatefulChecks>(
        policy::StatefulAnswer{policy::StatefulAnswer::Kind::pass, 0, "reason=pass"});
    store->later = true;
    store->on_question = [&store] { EventLoop::current()->post([&store] { store->answer_all(); }); };
    DrivenSession session(snapshot_with("on rcpt {\n"
                                        "  log \"spf ${spf}\" if client.ip in dnsbl \"bl.example\"\n"
                                        "  greylist\n"
                                        "  reject 550 5.7.1 \"after\" if spf == fail\n"
                                        "}\n",
                                        &script, store),
                          recorder);
    session.connect(kExternal, "unknown", 1);
    session.mail("<a@b.example>", "", 0);
    const Reply reply = session.rcpt("<x@example.com>");
    EXPECT_EQ(reply.answer.kind, Answer::Kind::reject);
    EXPECT_EQ(reply.answer.text, std::vector<std::string>{"after"});
    EXPECT_EQ(store->calls, 1);
    EXPECT_EQ(recorder.lines, (std::vector<std::string>{"rcpt:log", "rcpt:greylist pass", "rcpt:reject"}));
}

TEST_F(SessionTest, EveryNewMessageIsToldToTheChecks) {
    // So that they forget the last message's SPF result.
    test_support::CheckScript script;
    DrivenSession session(snapshot_with("on mail { log \"${spf}\" }\n", &script), recorder);
    session.connect(kExternal, "unknown", 1);
    session.mail("<a@b.example>", "", 0);
    EXPECT_EQ(script.next_messages, 1);
    session.mail("<c@d.example>", "", 0);
    EXPECT_EQ(script.next_messages, 2);
    session.abort_message();
    EXPECT_EQ(script.next_messages, 3);
    ASSERT_EQ(script.spf.checks.started.size(), 2u);
    EXPECT_EQ(script.spf.checks.started[1].sender, "c@d.example");
}

}  // namespace
}  // namespace portcullis::milter
