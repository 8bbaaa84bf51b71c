/*
 * fake_checks.h: a snapshot's checks (milter/snapshot.h) over the fakes
 * of later_answers.h, and sessions driven stage by stage, for the milter
 * and daemon unit tests.
 *
 * CheckScript holds what the sessions' checks answer and what they were
 * asked: `lookups` and `spf` answer each session (answers that come later
 * wake the session that asked them); `stream`, when set, gives each
 * message's MessageStream, with the session's wake.  `ended` counts the
 * SessionChecks destroyed, `next_messages` the calls of next_message()
 * (which forget the SPF result, as the daemon's checks do).
 * answer_later() makes the answers come only at arrive();
 * answer_on_loop() makes each come by itself, as one later event of the
 * loop that asked, as a resolver's answer comes.
 *
 * FakeChecks is the milter::Checks of a snapshot over a CheckScript;
 * snapshot_with() makes a snapshot of a policy text with them.
 *
 * DrivenSession runs a Session through milter::SessionDriver: each stage
 * returns its Reply, however often it waited.  A driver that sleeps with
 * nothing left to come (a lost wake-up) would hang the test: a watchdog
 * timer on its loop wakes it every kStallLimit, and the test fails naming
 * the stage.
 *
 * LoopSession calls a Session as an engine does, on a loop of the test's
 * own: each call is one event of the loop, after which what it deferred
 * runs; a stage may give nothing, and `resumes` counts the session's
 * requests to be resumed.
 */
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "milter/session_driver.h"
#include "milter/snapshot.h"
#include "policy/loader.h"
#include "support/later_answers.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

struct CheckScript {
    FakeAddressLookups lookups;
    FakeSpfResults spf;
    std::function<std::unique_ptr<milter::MessageStream>(const policy::Facts&, std::function<void()> wake)> stream;
    int ended = 0;
    int next_messages = 0;

    void arrive() {
        lookups.answers.arrive();
        spf.checks.arrive();
    }

    void answer_later() { lookups.answers.later = spf.checks.later = true; }

    /* Answers to come later come by themselves, each at the next turn of
     * the loop that asked. */
    void answer_on_loop() {
        answer_later();
        lookups.answers.on_start = spf.checks.on_start = [this] { EventLoop::current()->post([this] { arrive(); }); };
    }
};

class FakeSessionChecks final : public milter::SessionChecks {
public:
    FakeSessionChecks(CheckScript& script, std::function<void()> wake) : script_(script), wake_(std::move(wake)) {
        script_.lookups.answers.on_arrival = wake_;
        script_.spf.checks.on_arrival = wake_;
    }
    ~FakeSessionChecks() override {
        ++script_.ended;
        // Its answers still out are dropped, as a session's lookups are.
        script_.lookups.answers.on_arrival = nullptr;
        script_.spf.checks.on_arrival = nullptr;
    }
    FakeSessionChecks(const FakeSessionChecks&) = delete;
    FakeSessionChecks& operator=(const FakeSessionChecks&) = delete;

    const policy::AddressAnswer* addresses(const std::string& name) override { return script_.lookups.addresses(name); }
    const policy::SpfAnswer* spf(const policy::SpfIdentity& identity) override { return script_.spf.spf(identity); }
    std::unique_ptr<milter::MessageStream> begin_message(const policy::Facts& facts) override {
        return script_.stream ? script_.stream(facts, wake_) : nullptr;
    }
    void next_message() override {
        ++script_.next_messages;
        script_.spf.checks.forget();
    }

private:
    CheckScript& script_;
    std::function<void()> wake_;
};

class FakeChecks final : public milter::Checks {
public:
    explicit FakeChecks(CheckScript& script) : script_(script) {}
    std::unique_ptr<milter::SessionChecks> begin_session(std::function<void()> wake) override {
        return std::make_unique<FakeSessionChecks>(script_, std::move(wake));
    }

private:
    CheckScript& script_;
};

/* RULES parsed (any error fails the test), in monitor mode or not, with
 * SCRIPT's checks when given and STATEFUL. */
inline std::shared_ptr<milter::Snapshot> snapshot_with(const std::string& rules, CheckScript* script = nullptr,
                                                       std::shared_ptr<policy::StatefulChecks> stateful = nullptr,
                                                       bool monitor = false) {
    auto parsed = policy::parse_policy(rules, "test.rules", ".");
    std::string errors;
    for (const auto& error : parsed.errors) errors += error.str() + "\n";
    EXPECT_TRUE(parsed.ok()) << errors;
    auto snapshot = std::make_shared<milter::Snapshot>(*milter::make_snapshot(parsed.policy, monitor));
    if (script) snapshot->checks = std::make_shared<FakeChecks>(*script);
    snapshot->stateful = std::move(stateful);
    return snapshot;
}

inline constexpr Millis kStallLimit{1000};

/* While it lives, a timer on LOOP that counts each kStallLimit the loop
 * spends in one call, and fails the test if any passed. */
class StallWatch {
public:
    StallWatch(EventLoop& loop, std::string what)
        : what_(std::move(what)), timer_(loop, [this] {
              ++stalls_;
              timer_.arm_after(kStallLimit);
          }) {
        timer_.arm_after(kStallLimit);
    }
    ~StallWatch() {
        EXPECT_EQ(stalls_, 0) << what_ << " slept " << stalls_ << " times " << kStallLimit.count()
                              << "ms: its loop waited with nothing left to come";
    }
    StallWatch(const StallWatch&) = delete;
    StallWatch& operator=(const StallWatch&) = delete;

private:
    std::string what_;
    int stalls_ = 0;
    Timer timer_;
};

class DrivenSession {
public:
    using Step = std::function<std::optional<milter::Reply>(milter::Session&)>;

    DrivenSession(std::shared_ptr<const milter::Snapshot> snapshot, milter::DecisionSink& sink)
        : driver_(std::move(snapshot), sink) {}

    milter::Reply connect(std::optional<IpAddress> ip, std::string_view host, uint16_t port) {
        return stage("connect", [&](milter::Session& session) { return session.connect(ip, host, port); });
    }
    milter::Reply helo(std::string_view name, bool tls) {
        return stage("helo", [&](milter::Session& session) { return session.helo(name, tls); });
    }
    milter::Reply mail(std::string_view sender, std::string_view auth_user, uint64_t size) {
        return stage("mail", [&](milter::Session& session) { return session.mail(sender, auth_user, size); });
    }
    milter::Reply rcpt(std::string_view recipient) {
        return stage("rcpt", [&](milter::Session& session) { return session.rcpt(recipient); });
    }
    void header(std::string_view name, std::string_view value) {
        feed("header", [&](milter::Session& session) { session.header(name, value); });
    }
    void body(std::string_view chunk) {
        feed("body", [&](milter::Session& session) { session.body(chunk); });
    }
    milter::Reply end_of_message() {
        return stage("eom", [](milter::Session& session) { return session.end_of_message(); });
    }
    void abort_message() {
        feed("abort", [](milter::Session& session) { session.abort_message(); });
    }
    const policy::Facts& facts() { return driver_.session().facts(); }

private:
    milter::Reply stage(const std::string& name, const Step& step) {
        const StallWatch watch(driver_.loop(), "stage " + name);
        return driver_.stage(step);
    }
    void feed(const std::string& name, const std::function<void(milter::Session&)>& step) {
        const StallWatch watch(driver_.loop(), name);
        driver_.feed(step);
    }

    milter::SessionDriver driver_;
};

class LoopSession {
public:
    LoopSession(std::shared_ptr<const milter::Snapshot> snapshot, milter::DecisionSink& sink)
        : session_(std::make_unique<milter::Session>(std::move(snapshot), [this] { ++resumes; }, sink)) {}
    ~LoopSession() { session_.reset(); }   // before the loop
    LoopSession(const LoopSession&) = delete;
    LoopSession& operator=(const LoopSession&) = delete;

    /* TASK as one event of the loop, then the tasks it deferred. */
    void on_loop(const std::function<void()>& task) {
        bool done = false;
        loop_.post([&] {
            task();
            done = true;
        });
        loop_.run_until([&] { return done; });
        loop_.run_until([] { return true; });   // runs what was deferred
    }

    std::optional<milter::Reply> stage(const std::function<std::optional<milter::Reply>(milter::Session&)>& step) {
        std::optional<milter::Reply> reply;
        on_loop([&] { reply = step(*session_); });
        return reply;
    }

    milter::Session& session() { return *session_; }
    /* The session goes (the MTA went away); the loop stays. */
    void end() { session_.reset(); }

    int resumes = 0;

private:
    EventLoop loop_;
    std::unique_ptr<milter::Session> session_;
};

}  // namespace portcullis::test_support
