/*
 * loop_answer.h: an answer that comes through a callback, waited for on
 * an event loop, for the tests of what answers that way (the store, the
 * checks on it, the resolver).
 *
 * answer_on<T>(LOOP, START) calls START(done) as LOOP's work (there,
 * EventLoop::current() is LOOP, as a store or resolver requires) and
 * serves LOOP until done is called; it returns what done was given.  A
 * second call of done is a test failure, whenever it comes; no answer
 * within WITHIN (30 s unless given) throws, so a test never hangs.
 * serve_for(LOOP, DURATION) serves LOOP for DURATION: for the callbacks
 * a test expects never to come.  NotedCall is a callback that keeps how
 * often it was called and its last argument; it may outlive its test's
 * frame safely.
 */
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "util/event_loop.h"
#include "util/units.h"

namespace portcullis::test_support {

inline constexpr Millis kAnswerWithin = std::chrono::seconds(30);

template <typename T>
T answer_on(EventLoop& loop, const std::function<void(std::function<void(T)>)>& start, Millis within = kAnswerWithin) {
    struct Got {
        std::optional<T> answer;
        int calls = 0;
    };
    const auto got = std::make_shared<Got>();
    bool expired = false;
    Timer watchdog(loop, [&expired] { expired = true; });
    watchdog.arm_after(within);
    loop.defer([&start, got] {
        start([got](T answer) {
            if (++got->calls > 1) {
                ADD_FAILURE() << "a callback was called " << got->calls << " times";
                return;
            }
            got->answer = std::move(answer);
        });
    });
    loop.run_until([&] { return got->answer.has_value() || expired; });
    if (!got->answer) throw std::runtime_error("no answer within " + format_duration(within));
    return std::move(*got->answer);
}

inline void serve_for(EventLoop& loop, Millis duration) {
    bool over = false;
    Timer end(loop, [&over] { over = true; });
    end.arm_after(duration);
    loop.run_until([&over] { return over; });
}

template <typename T>
class NotedCall {
public:
    std::function<void(T)> callback() const {
        return [state = state_](T argument) {
            ++state->calls;
            state->last = std::move(argument);
        };
    }
    int calls() const { return state_->calls; }
    const std::optional<T>& last() const { return state_->last; }

private:
    struct State {
        int calls = 0;
        std::optional<T> last;
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace portcullis::test_support
