/*
 * event_loop.cc: epoll, a timer heap, posted and deferred tasks.
 */
#include "util/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace portcullis {

namespace {

constexpr int kBatch = 64;

thread_local EventLoop* running_loop = nullptr;

/* Sets the thread's current loop for the time of a run. */
class RunningAs {
public:
    explicit RunningAs(EventLoop* loop) : previous_(running_loop) { running_loop = loop; }
    ~RunningAs() { running_loop = previous_; }
    RunningAs(const RunningAs&) = delete;
    RunningAs& operator=(const RunningAs&) = delete;

private:
    EventLoop* previous_;
};

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

}  // namespace

/* The eventfd that wakes the loop for post() and stop().  Its watcher
 * drains the counter and runs the posted tasks. */
class EventLoop::Wakeup final : public Watcher {
public:
    explicit Wakeup(EventLoop& loop) : loop_(loop), fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
        if (fd_ < 0) fail("eventfd");
    }
    ~Wakeup() { ::close(fd_); }
    Wakeup(const Wakeup&) = delete;
    Wakeup& operator=(const Wakeup&) = delete;

    int fd() const { return fd_; }
    void signal() const {
        const uint64_t one = 1;
        // A full counter (never in practice) still wakes the loop.
        [[maybe_unused]] const ssize_t written = ::write(fd_, &one, sizeof one);
    }
    void ready(uint32_t) override {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t got = ::read(fd_, &count, sizeof count);
        loop_.run_posted();
    }

private:
    EventLoop& loop_;
    int fd_;
};

/* ---- Timer ---- */

Timer::Timer(EventLoop& loop, std::function<void()> fire) : loop_(loop), fire_(std::move(fire)) {}

Timer::~Timer() { disarm(); }

void Timer::arm(TimePoint at) {
    at_ = at;
    if (armed()) loop_.heap_update(*this);
    else loop_.heap_insert(*this);
}

void Timer::arm_after(Millis delay) { arm(std::chrono::steady_clock::now() + delay); }

void Timer::disarm() {
    if (armed()) loop_.heap_remove(*this);
}

/* ---- EventLoop ---- */

bool LoopHandle::post(std::function<void()> task) const {
    if (!mailbox_) return false;
    // The loop cannot go while the lock is held: its destructor takes it.
    const std::lock_guard lock(mailbox_->mutex);
    if (!mailbox_->loop) return false;
    mailbox_->loop->post(std::move(task));
    return true;
}

EventLoop::EventLoop() : now_(Clock::now()), mailbox_(std::make_shared<LoopHandle::Mailbox>()) {
    mailbox_->loop = this;
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) fail("epoll_create1");
    try {
        wakeup_ = std::make_unique<Wakeup>(*this);
        watch(wakeup_->fd(), EPOLLIN, *wakeup_);
    } catch (...) {
        ::close(epoll_fd_);
        throw;
    }
}

EventLoop::~EventLoop() {
    {
        const std::lock_guard lock(mailbox_->mutex);
        mailbox_->loop = nullptr;
    }
    // What PerLoops left here goes first, while the loop can still take
    // their unwatch() and timers; their PerLoops no longer count on it.
    RunningAs as(this);
    for (auto& [key, attached] : attachments_) {
        std::lock_guard lock(attached.registry->mutex);
        auto& loops = attached.registry->loops;
        loops.erase(std::remove(loops.begin(), loops.end(), this), loops.end());
    }
    attachments_.clear();
    deferred_.clear();
    {
        std::lock_guard lock(posted_mutex_);
        posted_.clear();
    }
    unwatch(wakeup_->fd(), *wakeup_);
    wakeup_.reset();
    ::close(epoll_fd_);
}

EventLoop* EventLoop::current() { return running_loop; }

void EventLoop::watch(int fd, uint32_t events, Watcher& watcher) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = &watcher;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) fail("epoll_ctl(ADD)");
}

void EventLoop::change(int fd, uint32_t events, Watcher& watcher) {
    epoll_event event{};
    event.events = events;
    event.data.ptr = &watcher;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event) != 0) fail("epoll_ctl(MOD)");
}

void EventLoop::unwatch(int fd, Watcher& watcher) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    // An event of WATCHER still waiting in this batch must not reach it:
    // it may be gone by then.
    for (int i = batch_next_; i < batch_size_; ++i) {
        if (batch_[i].data.ptr == &watcher) batch_[i].data.ptr = nullptr;
    }
}

void EventLoop::post(std::function<void()> task) {
    bool first;
    {
        std::lock_guard lock(posted_mutex_);
        first = posted_.empty();
        posted_.push_back(std::move(task));
    }
    // One wake-up is enough for every task posted before the loop runs them.
    if (first) wakeup_->signal();
}

void EventLoop::defer(std::function<void()> task) { deferred_.push_back(std::move(task)); }

void EventLoop::stop() {
    stopping_ = true;
    wakeup_->signal();
}

void EventLoop::run() {
    RunningAs as(this);
    // A stop() that came before run() began counts: it is never reset.
    while (!stopping_) {
        run_deferred();
        turn();
    }
    run_deferred();
}

void EventLoop::run_until(const std::function<bool()>& done) {
    RunningAs as(this);
    // Checked after the deferred tasks too: one of them may be what DONE
    // waits for, and nothing else might ever wake the wait.
    for (;;) {
        run_deferred();
        if (done()) return;
        turn();
    }
}

void EventLoop::turn() {
    epoll_event events[kBatch];
    const int count = epoll_wait(epoll_fd_, events, kBatch, wait_timeout_ms());
    now_ = Clock::now();
    if (count < 0) {
        if (errno != EINTR) fail("epoll_wait");
        return;
    }
    batch_ = events;
    batch_size_ = count;
    for (batch_next_ = 0; batch_next_ < batch_size_;) {
        const epoll_event& event = events[batch_next_++];
        if (event.data.ptr) static_cast<Watcher*>(event.data.ptr)->ready(event.events);
    }
    batch_ = nullptr;
    batch_size_ = batch_next_ = 0;
    fire_timers();
}

int EventLoop::wait_timeout_ms() const {
    if (!deferred_.empty() || stopping_) return 0;
    if (timers_.empty()) return -1;
    const auto left = timers_.front()->at_ - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Rounded up, so a timer never fires a little early and spins.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<long long>(ms, 60'000));
}

void EventLoop::run_posted() {
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(posted_mutex_);
        tasks.swap(posted_);
    }
    for (auto& task : tasks) task();
}

void EventLoop::run_deferred() {
    // Tasks may defer more; those run too, before the next wait for events:
    // a chain of deferrals (cached DNS answers, a session's wakes) ends
    // before any other session's event is seen.  Test harnesses count on
    // it (ConnectionDriver::settle()).
    while (!deferred_.empty()) {
        std::vector<std::function<void()>> tasks;
        tasks.swap(deferred_);
        for (auto& task : tasks) task();
    }
}

void EventLoop::fire_timers() {
    // At most as many as were armed when this began: a timer that its own
    // function arms again for a time already past (now(), a deadline that
    // went by) fires in the next round, after the events, not forever here.
    for (size_t left = timers_.size(); left > 0 && !timers_.empty() && timers_.front()->at_ <= now_; --left) {
        Timer& due = *timers_.front();
        heap_remove(due);
        // The timer may be re-armed or destroyed by its own function.
        auto fire = due.fire_;
        fire();
    }
}

/* ---- the timer heap ---- */

void EventLoop::heap_insert(Timer& timer) {
    timer.heap_index_ = timers_.size();
    timers_.push_back(&timer);
    sift_up(timer.heap_index_);
}

void EventLoop::heap_remove(Timer& timer) {
    const size_t index = timer.heap_index_;
    const size_t last = timers_.size() - 1;
    if (index != last) heap_swap(index, last);
    timers_.pop_back();
    timer.heap_index_ = Timer::kNotArmed;
    if (index < timers_.size()) {
        sift_up(index);
        sift_down(index);
    }
}

void EventLoop::heap_update(Timer& timer) {
    sift_up(timer.heap_index_);
    sift_down(timer.heap_index_);
}

void EventLoop::sift_up(size_t index) {
    while (index > 0) {
        const size_t parent = (index - 1) / 2;
        if (timers_[parent]->at_ <= timers_[index]->at_) return;
        heap_swap(index, parent);
        index = parent;
    }
}

void EventLoop::sift_down(size_t index) {
    for (;;) {
        size_t least = index;
        for (size_t child = 2 * index + 1; child <= 2 * index + 2 && child < timers_.size(); ++child) {
            if (timers_[child]->at_ < timers_[least]->at_) least = child;
        }
        if (least == index) return;
        heap_swap(index, least);
        index = least;
    }
}

void EventLoop::heap_swap(size_t a, size_t b) {
    std::swap(timers_[a], timers_[b]);
    timers_[a]->heap_index_ = a;
    timers_[b]->heap_index_ = b;
}

/* ---- PerLoop ---- */

void* EventLoop::attachment(const PerLoopRegistry* key) const {
    const auto found = attachments_.find(key);
    return found == attachments_.end() ? nullptr : found->second.value.get();
}

void EventLoop::attach(std::shared_ptr<PerLoopRegistry> registry, std::shared_ptr<void> value) {
    const PerLoopRegistry* key = registry.get();
    attachments_[key] = Attachment{std::move(value), std::move(registry)};
}

void EventLoop::detach(const PerLoopRegistry* key) { attachments_.erase(key); }

void PerLoopBase::keep_here(EventLoop& loop, std::shared_ptr<void> value) {
    {
        std::lock_guard lock(registry_->mutex);
        registry_->loops.push_back(&loop);
    }
    loop.attach(registry_, std::move(value));
}

PerLoopBase::~PerLoopBase() {
    // Each T goes on its own loop.  A loop that no longer runs drops it
    // when it is destroyed; it cannot be destroyed meanwhile, as it must
    // take the registry's lock to leave it.
    std::lock_guard lock(registry_->mutex);
    EventLoop* here = EventLoop::current();
    for (EventLoop* loop : registry_->loops) {
        const PerLoopRegistry* key = registry_.get();
        if (loop == here) loop->detach(key);
        else loop->post([loop, key] { loop->detach(key); });
    }
    registry_->loops.clear();
}

}  // namespace portcullis
