/*
 * event_loop.h: one thread's event loop, on epoll.
 *
 * An EventLoop waits for file descriptors (Watcher), deadlines (Timer)
 * and tasks, and runs what became ready, one thing at a time, on the
 * thread that calls run().  Everything a loop owns (connections, DNS and
 * Redis clients, sessions) is touched only from that thread, so none of
 * it needs a lock.
 *
 *   watch(), change(), unwatch()   file descriptors, level-triggered; a
 *                                  watcher removed while its event waits
 *                                  in the current batch is not called
 *   Timer                          a deadline; arm() again moves it
 *   post(TASK)                     from any thread: TASK runs on the loop
 *   handle()                       a LoopHandle: post() that may outlive
 *                                  the loop (the task is then dropped), for
 *                                  work handed to other threads
 *   defer(TASK)                    on the loop: TASK runs once the current
 *                                  event is handled (never inside it), and
 *                                  what it defers before the next wait
 *   run(), stop()                  serve until stop() (from any thread, even
 *                                  before run() begins); a stopped loop
 *                                  does not run again
 *   run_until(DONE)                serve until DONE() holds: for callers
 *                                  that drive one operation to its end on
 *                                  a loop of their own (command line, tests)
 *   now()                          the steady clock as of the last wake-up
 *   current()                      the loop running on this thread, if any
 *
 * PerLoop<T> keeps one T per loop for an object that several loops use
 * (a resolver, a Redis client): here() gives the current loop's T, made
 * on first use on that loop; each T is destroyed on its own loop's thread
 * (or with the loop), never while another thread uses it.
 *
 * Errors of epoll or eventfd at construction throw std::system_error; a
 * watch() the kernel refuses throws too (the caller drops that fd).
 */
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "util/units.h"

namespace portcullis {

class EventLoop;

/* Something waiting on a file descriptor. */
class Watcher {
public:
    /* EVENTS: EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP. */
    virtual void ready(uint32_t events) = 0;

protected:
    ~Watcher() = default;
};

/* A deadline on one loop, fired once at the time it was armed for. */
class Timer {
public:
    using TimePoint = std::chrono::steady_clock::time_point;

    Timer(EventLoop& loop, std::function<void()> fire);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    void arm(TimePoint at);
    void arm_after(Millis delay);
    void disarm();
    bool armed() const { return heap_index_ != kNotArmed; }
    TimePoint at() const { return at_; }

private:
    friend class EventLoop;
    static constexpr size_t kNotArmed = static_cast<size_t>(-1);

    EventLoop& loop_;
    std::function<void()> fire_;
    TimePoint at_{};
    size_t heap_index_ = kNotArmed;
};

class PerLoopBase;
struct PerLoopRegistry;

/* A way to post to a loop that may be gone by then. */
class LoopHandle {
public:
    LoopHandle() = default;
    /* False, and TASK dropped, when the loop is gone (or there is none). */
    bool post(std::function<void()> task) const;

private:
    friend class EventLoop;
    struct Mailbox {
        std::mutex mutex;
        EventLoop* loop = nullptr;
    };
    explicit LoopHandle(std::shared_ptr<Mailbox> mailbox) : mailbox_(std::move(mailbox)) {}
    std::shared_ptr<Mailbox> mailbox_;
};

class EventLoop {
public:
    using Clock = std::chrono::steady_clock;

    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    static EventLoop* current();

    void watch(int fd, uint32_t events, Watcher& watcher);
    void change(int fd, uint32_t events, Watcher& watcher);
    void unwatch(int fd, Watcher& watcher);

    void post(std::function<void()> task);
    void defer(std::function<void()> task);
    LoopHandle handle() const { return LoopHandle(mailbox_); }

    void run();
    void stop();
    void run_until(const std::function<bool()>& done);

    Clock::time_point now() const { return now_; }

private:
    friend class Timer;
    friend class PerLoopBase;

    /* One wait, then the events and the timers that are due. */
    void turn();
    int wait_timeout_ms() const;
    void run_posted();
    void run_deferred();
    void fire_timers();

    void heap_insert(Timer& timer);
    void heap_remove(Timer& timer);
    void heap_update(Timer& timer);
    void sift_up(size_t index);
    void sift_down(size_t index);
    void heap_swap(size_t a, size_t b);

    /* PerLoop's storage on this loop, by the owner's registry. */
    struct Attachment {
        std::shared_ptr<void> value;
        std::shared_ptr<PerLoopRegistry> registry;
    };
    void* attachment(const PerLoopRegistry* key) const;
    void attach(std::shared_ptr<PerLoopRegistry> registry, std::shared_ptr<void> value);
    void detach(const PerLoopRegistry* key);

    class Wakeup;   // the eventfd that post() and stop() write to

    int epoll_fd_ = -1;
    std::unique_ptr<Wakeup> wakeup_;
    Clock::time_point now_;
    std::atomic<bool> stopping_{false};

    epoll_event* batch_ = nullptr;   // the events being handled, for unwatch()
    int batch_size_ = 0;
    int batch_next_ = 0;

    std::vector<Timer*> timers_;     // a binary min-heap on Timer::at_

    std::vector<std::function<void()>> deferred_;

    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_;
    std::shared_ptr<LoopHandle::Mailbox> mailbox_;

    // Touched only on the loop's thread (and by the destructor).
    std::unordered_map<const PerLoopRegistry*, Attachment> attachments_;
};

/* Which loops hold a T of one PerLoop.  Each attachment keeps it alive,
 * so a loop that outlives the PerLoop can still reach it, and a new
 * PerLoop never finds an old one's T under the same key. */
struct PerLoopRegistry {
    std::mutex mutex;
    std::vector<EventLoop*> loops;
};

class PerLoopBase {
public:
    PerLoopBase(const PerLoopBase&) = delete;
    PerLoopBase& operator=(const PerLoopBase&) = delete;

protected:
    PerLoopBase() : registry_(std::make_shared<PerLoopRegistry>()) {}
    ~PerLoopBase();
    void* find_here(EventLoop& loop) const { return loop.attachment(registry_.get()); }
    void keep_here(EventLoop& loop, std::shared_ptr<void> value);

private:
    std::shared_ptr<PerLoopRegistry> registry_;
};

template <typename T>
class PerLoop final : public PerLoopBase {
public:
    explicit PerLoop(std::function<std::shared_ptr<T>(EventLoop&)> make) : make_(std::move(make)) {}
    ~PerLoop() = default;

    /* The current loop's T; throws std::logic_error off a loop thread. */
    T& here() {
        EventLoop* loop = EventLoop::current();
        if (!loop) throw std::logic_error("PerLoop::here() called off an event loop");
        if (void* found = find_here(*loop)) return *static_cast<T*>(found);
        std::shared_ptr<T> made = make_(*loop);
        T& result = *made;
        keep_here(*loop, std::move(made));
        return result;
    }

private:
    std::function<std::shared_ptr<T>(EventLoop&)> make_;
};

}  // namespace portcullis
