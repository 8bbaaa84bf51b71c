/*
 * session_driver.h: one Session run to each stage's end on an event loop
 * of the caller's own, for callers that wait (`portcullis try`, tests).
 *
 * stage() calls STEP on the session, on the driver's loop, and runs the
 * loop until the stage has its Reply, resuming the session as often as it
 * asks; feed() does the same for an event that has no reply (a header
 * field, a piece of body).  Lookups and store calls the stage makes run on
 * that loop meanwhile.  Not for an engine: it waits.
 */
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "milter/session.h"
#include "util/event_loop.h"

namespace portcullis::milter {

class SessionDriver {
public:
    explicit SessionDriver(std::shared_ptr<const Snapshot> snapshot, DecisionSink& sink = daemon_sink());
    ~SessionDriver();
    SessionDriver(const SessionDriver&) = delete;
    SessionDriver& operator=(const SessionDriver&) = delete;

    Reply stage(const std::function<std::optional<Reply>(Session&)>& step);
    void feed(const std::function<void(Session&)>& step);
    Session& session() { return *session_; }
    EventLoop& loop() { return loop_; }

private:
    EventLoop loop_;
    bool woken_ = false;
    std::unique_ptr<Session> session_;
};

}  // namespace portcullis::milter
