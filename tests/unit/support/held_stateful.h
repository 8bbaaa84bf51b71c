/*
 * held_stateful.h: stateful checks (policy::StatefulChecks) whose answers
 * the test gives, and when: during the call, later on the event loop (as
 * Redis answers), or only when the test says (a store that takes its
 * time, or never answers).
 *
 * ANSWER(greylist?) makes each answer; the default passes.  calls() counts
 * the questions; in Mode::held, waiting() is how many wait, and
 * answer_oldest() answers the first of them (with ANSWER's answer, or the
 * one given).  Like a store's answer, it must come on the loop the
 * question came from (a session woken off its loop never resumes): post
 * it there.  The Done callbacks are kept as the evaluator gave them, so
 * one answered after its session is gone shows what the session left
 * behind.
 */
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "policy/stateful.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

class HeldStateful final : public policy::StatefulChecks {
public:
    enum class Mode { now, later, held };
    using Answer = std::function<policy::StatefulAnswer(bool greylist)>;

    explicit HeldStateful(Mode mode, Answer answer = pass) : mode_(mode), answer_(std::move(answer)) {}

    static policy::StatefulAnswer pass(bool) { return {policy::StatefulAnswer::Kind::pass, 0, "reason=test"}; }

    void set_mode(Mode mode) { mode_ = mode; }
    size_t calls() const { return calls_; }
    size_t waiting() const { return held_.size(); }

    void answer_oldest(std::optional<policy::StatefulAnswer> answer = std::nullopt) {
        if (held_.empty()) return;
        auto [greylist, done] = std::move(held_.front());
        held_.pop_front();
        done(answer ? *answer : answer_(greylist));
    }

    void greylist(const policy::GreylistParams&, const policy::Facts&, Done done) override {
        ask(true, std::move(done));
    }
    void ratelimit(const policy::RatelimitParams&, std::span<const std::string>, Done done) override {
        ask(false, std::move(done));
    }

private:
    void ask(bool greylist, Done done) {
        ++calls_;
        switch (mode_) {
            case Mode::now: return done(answer_(greylist));
            case Mode::later:
                // Later on the loop, as an asynchronous store answers.
                return EventLoop::current()->defer(
                    [done = std::move(done), answer = answer_(greylist)]() mutable { done(std::move(answer)); });
            case Mode::held: held_.emplace_back(greylist, std::move(done)); return;
        }
    }

    Mode mode_;
    Answer answer_;
    size_t calls_ = 0;
    std::deque<std::pair<bool, Done>> held_;
};

}  // namespace portcullis::test_support
