/*
 * scripted_store.h: a Store that gives whatever reply the test sets, for
 * what a check makes of replies none of our scripts gives (too few
 * values, a word it does not know, a failure) and of a reply that comes
 * after run() returned rather than during it.
 *
 * answer(RESULT) sets what every run() gets.  By default the reply comes
 * during run(), as from the memory store; answer_later(true) makes it
 * come on the calling loop once run() has returned, as from Redis (run()
 * must then be called on a loop).  calls lists the names of the scripts
 * run, in order.  The admin calls throw StoreError: no check under test
 * needs them.
 */
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/store.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

class ScriptedStore final : public store::Store {
public:
    void answer(store::StoreResult result) { result_ = std::move(result); }
    void answer_later(bool later) { later_ = later; }

    void run(const store::Script& script, std::string_view, int64_t, std::span<const std::string>,
             Done done) override {
        respond(script.name, std::move(done));
    }
    void run(const store::HashScript& script, std::string_view, int64_t, std::span<const std::string>,
             Done done) override {
        respond(script.name, std::move(done));
    }
    void scan(std::string_view, const std::function<void(const store::Entry&)>&) override { refuse(); }
    void scan_hashes(std::string_view, const std::function<void(const store::HashEntry&)>&) override { refuse(); }
    bool erase(std::string_view) override { refuse(); }
    void ping() override {}
    std::string describe() const override { return "scripted"; }

    std::vector<std::string> calls;

private:
    void respond(std::string_view name, Done done) {
        calls.emplace_back(name);
        if (!later_) return done(result_);
        EventLoop* loop = EventLoop::current();
        if (!loop) throw std::logic_error("ScriptedStore: a later answer needs run() on an event loop");
        loop->defer([done = std::move(done), result = result_] { done(result); });
    }
    [[noreturn]] static void refuse() { throw store::StoreError("scripted store: no admin calls"); }

    store::StoreResult result_;
    bool later_ = false;
};

}  // namespace portcullis::test_support
