/*
 * worker_pool.h: a few threads for CPU work that must not hold up an
 * event loop (DKIM's signature checks).
 *
 * submit(JOB) queues JOB and returns at once; one of the pool's threads
 * runs it.  A job that has an answer for a loop posts it there itself
 * (EventLoop::post).  The destructor lets the queued jobs run, then joins
 * the threads.  Jobs must not throw (one that does ends the process).
 */
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace portcullis {

class WorkerPool {
public:
    explicit WorkerPool(unsigned threads);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    void submit(std::function<void()> job);
    unsigned size() const { return static_cast<unsigned>(threads_.size()); }

private:
    void work();

    std::mutex mutex_;
    std::condition_variable queued_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace portcullis
