/*
 * event_loop_test.cc: watchers, timers, posted and deferred tasks,
 * PerLoop and the worker pool.
 */
#include "util/event_loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "util/worker_pool.h"

namespace portcullis {
namespace {

using namespace std::chrono_literals;

class SocketPair {
public:
    SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
    ~SocketPair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
    int fd[2] = {-1, -1};
};

class CountingWatcher final : public Watcher {
public:
    void ready(uint32_t events) override {
        ++calls;
        last = events;
        if (on_ready) on_ready();
    }
    int calls = 0;
    uint32_t last = 0;
    std::function<void()> on_ready;
};

TEST(EventLoop, WatcherSeesReadableData) {
    EventLoop loop;
    SocketPair pair;
    CountingWatcher watcher;
    loop.watch(pair.fd[0], EPOLLIN, watcher);
    ASSERT_EQ(::write(pair.fd[1], "x", 1), 1);
    loop.run_until([&] { return watcher.calls > 0; });
    EXPECT_TRUE(watcher.last & EPOLLIN);
    loop.unwatch(pair.fd[0], watcher);
}

TEST(EventLoop, UnwatchedInTheSameBatchIsNotCalled) {
    EventLoop loop;
    SocketPair first, second;
    CountingWatcher a, b;
    loop.watch(first.fd[0], EPOLLIN, a);
    loop.watch(second.fd[0], EPOLLIN, b);
    // Whichever runs first removes the other: the other must not be called.
    a.on_ready = [&] { loop.unwatch(second.fd[0], b); loop.unwatch(first.fd[0], a); };
    b.on_ready = [&] { loop.unwatch(first.fd[0], a); loop.unwatch(second.fd[0], b); };
    ASSERT_EQ(::write(first.fd[1], "x", 1), 1);
    ASSERT_EQ(::write(second.fd[1], "x", 1), 1);
    bool timed_out = false;
    Timer guard(loop, [&] { timed_out = true; });
    guard.arm_after(100ms);
    loop.run_until([&] { return timed_out; });
    EXPECT_EQ(a.calls + b.calls, 1);
}

TEST(EventLoop, TimersFireInOrderOfTheirDeadlines) {
    EventLoop loop;
    std::vector<int> fired;
    Timer late(loop, [&] { fired.push_back(3); });
    Timer early(loop, [&] { fired.push_back(1); });
    Timer middle(loop, [&] { fired.push_back(2); });
    late.arm_after(30ms);
    early.arm_after(5ms);
    middle.arm_after(15ms);
    loop.run_until([&] { return fired.size() == 3; });
    EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoop, RearmedTimerFiresOnceAtItsNewTime) {
    EventLoop loop;
    int fired = 0;
    Timer timer(loop, [&] { ++fired; });
    timer.arm_after(5ms);
    timer.arm_after(40ms);
    const auto start = std::chrono::steady_clock::now();
    loop.run_until([&] { return fired > 0; });
    EXPECT_GE(std::chrono::steady_clock::now() - start, 40ms);
    EXPECT_EQ(fired, 1);
    EXPECT_FALSE(timer.armed());
}

TEST(EventLoop, ATimerRearmedForAPastTimeLetsEventsIn) {
    EventLoop loop;
    constexpr int kChain = 100000;
    int fired = 0;
    int fired_when_posted_ran = -1;
    std::unique_ptr<Timer> timer;
    timer = std::make_unique<Timer>(loop, [&] {
        if (++fired < kChain) timer->arm(loop.now());
    });
    loop.post([&] {
        timer->arm(loop.now());
        loop.post([&] { fired_when_posted_ran = fired; });
    });
    loop.run_until([&] { return fired == kChain; });
    EXPECT_GE(fired_when_posted_ran, 0);
    EXPECT_LT(fired_when_posted_ran, 10);
}

TEST(EventLoop, DisarmedAndDestroyedTimersNeverFire) {
    EventLoop loop;
    int fired = 0;
    Timer kept(loop, [&] { ++fired; });
    kept.arm_after(5ms);
    kept.disarm();
    {
        Timer dropped(loop, [&] { ++fired; });
        dropped.arm_after(5ms);
    }
    bool done = false;
    Timer end(loop, [&] { done = true; });
    end.arm_after(30ms);
    loop.run_until([&] { return done; });
    EXPECT_EQ(fired, 0);
}

TEST(EventLoop, ManyTimersKeepTheHeapInOrder) {
    EventLoop loop;
    std::vector<std::unique_ptr<Timer>> timers;
    std::vector<int> fired;
    // One base instant: arming 200 timers takes long enough under a
    // sanitizer that now() + delay would no longer follow delay's order.
    const auto base = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
        const int delay = (i * 37) % 50;
        timers.push_back(std::make_unique<Timer>(loop, [&fired, delay] { fired.push_back(delay); }));
        timers.back()->arm(base + std::chrono::milliseconds(delay));
    }
    for (int i = 0; i < 200; i += 3) timers[i]->disarm();
    const size_t expected = 200 - 67;
    loop.run_until([&] { return fired.size() == expected; });
    EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end()));
}

TEST(EventLoop, PostedTasksRunOnTheLoopThread) {
    EventLoop loop;
    std::atomic<int> ran{0};
    std::thread::id ran_on;
    std::thread poster([&] {
        for (int i = 0; i < 100; ++i) loop.post([&] { ++ran; ran_on = std::this_thread::get_id(); });
    });
    poster.join();
    loop.run_until([&] { return ran == 100; });
    EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(EventLoop, DeferredTasksRunAfterTheCurrentOne) {
    EventLoop loop;
    std::vector<int> order;
    loop.post([&] {
        loop.defer([&] { order.push_back(2); });
        order.push_back(1);
    });
    loop.run_until([&] { return order.size() == 2; });
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(EventLoop, StopFromAnotherThreadEndsRun) {
    EventLoop loop;
    std::thread stopper([&] {
        std::this_thread::sleep_for(20ms);
        loop.stop();
    });
    loop.run();
    stopper.join();
    SUCCEED();
}

TEST(EventLoop, CurrentIsTheRunningLoop) {
    EventLoop loop;
    EXPECT_EQ(EventLoop::current(), nullptr);
    EventLoop* seen = nullptr;
    loop.post([&] { seen = EventLoop::current(); });
    loop.run_until([&] { return seen != nullptr; });
    EXPECT_EQ(seen, &loop);
    EXPECT_EQ(EventLoop::current(), nullptr);
}

struct Tracked {
    explicit Tracked(std::atomic<int>& alive) : alive_(alive), thread(std::this_thread::get_id()) { ++alive_; }
    ~Tracked() {
        --alive_;
        destroyed_on_own_thread = std::this_thread::get_id() == thread;
        if (report) *report = destroyed_on_own_thread;
    }
    std::atomic<int>& alive_;
    std::thread::id thread;
    bool destroyed_on_own_thread = false;
    std::atomic<bool>* report = nullptr;
};

TEST(PerLoop, OneValuePerLoopMadeOnFirstUse) {
    std::atomic<int> alive{0};
    int made = 0;
    PerLoop<Tracked> per_loop([&](EventLoop&) {
        ++made;
        return std::make_shared<Tracked>(alive);
    });
    EventLoop loop;
    Tracked* first = nullptr;
    Tracked* second = nullptr;
    loop.post([&] { first = &per_loop.here(); second = &per_loop.here(); });
    loop.run_until([&] { return second != nullptr; });
    EXPECT_EQ(first, second);
    EXPECT_EQ(made, 1);
    EXPECT_THROW(per_loop.here(), std::logic_error);   // not on a loop
}

TEST(PerLoop, ValueIsDestroyedOnItsOwnLoop) {
    std::atomic<int> alive{0};
    std::atomic<bool> own_thread{false};
    EventLoop* loop_ptr = nullptr;
    std::atomic<bool> ready{false};
    auto per_loop = std::make_unique<PerLoop<Tracked>>([&](EventLoop&) {
        auto value = std::make_shared<Tracked>(alive);
        value->report = &own_thread;
        return value;
    });
    std::thread runner([&] {
        EventLoop loop;
        loop_ptr = &loop;
        loop.post([&] { per_loop->here(); ready = true; });
        loop.run();
    });
    while (!ready) std::this_thread::sleep_for(1ms);
    per_loop.reset();   // from this thread: the value must go on the loop's
    while (alive > 0) std::this_thread::sleep_for(1ms);
    EXPECT_TRUE(own_thread);
    loop_ptr->stop();
    runner.join();
}

TEST(PerLoop, LoopDestroyedFirstReleasesItsValue) {
    std::atomic<int> alive{0};
    PerLoop<Tracked> per_loop([&](EventLoop&) { return std::make_shared<Tracked>(alive); });
    {
        EventLoop loop;
        bool done = false;
        loop.post([&] { per_loop.here(); done = true; });
        loop.run_until([&] { return done; });
        EXPECT_EQ(alive, 1);
    }
    EXPECT_EQ(alive, 0);
}

TEST(WorkerPool, RunsEveryJobOffTheCallingThread) {
    std::atomic<int> ran{0};
    std::atomic<bool> on_caller{false};
    const auto caller = std::this_thread::get_id();
    {
        WorkerPool pool(2);
        for (int i = 0; i < 50; ++i) {
            pool.submit([&] {
                if (std::this_thread::get_id() == caller) on_caller = true;
                ++ran;
            });
        }
    }
    EXPECT_EQ(ran, 50);
    EXPECT_FALSE(on_caller);
}

}  // namespace
}  // namespace portcullis
