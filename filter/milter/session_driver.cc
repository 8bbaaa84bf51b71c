/*
 * session_driver.cc: a stage run to its reply on the driver's loop.
 */
#include "milter/session_driver.h"

namespace portcullis::milter {

SessionDriver::SessionDriver(std::shared_ptr<const Snapshot> snapshot, DecisionSink& sink)
    : session_(std::make_unique<Session>(std::move(snapshot), [this] { woken_ = true; }, sink)) {}

// The session, and what it asked of the loop, go before the loop.
SessionDriver::~SessionDriver() { session_.reset(); }

Reply SessionDriver::stage(const std::function<std::optional<Reply>(Session&)>& step) {
    std::optional<Reply> reply;
    bool asked = false;
    woken_ = false;
    loop_.post([&] {
        reply = step(*session_);
        asked = true;
    });
    loop_.run_until([&] { return asked; });
    while (!reply) {
        loop_.run_until([&] { return woken_; });
        woken_ = false;
        bool resumed = false;
        loop_.post([&] {
            reply = session_->resume();
            resumed = true;
        });
        loop_.run_until([&] { return resumed; });
    }
    return std::move(*reply);
}

void SessionDriver::feed(const std::function<void(Session&)>& step) {
    bool done = false;
    loop_.post([&] {
        step(*session_);
        done = true;
    });
    loop_.run_until([&] { return done; });
}

}  // namespace portcullis::milter
