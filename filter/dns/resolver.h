/*
 * resolver.h: the daemon's one DNS resolver, on libunbound (the only code
 * that includes unbound.h).
 *
 * A Resolver owns one libunbound context, set up once:
 *   - {"system"}: the servers of /etc/resolv.conf and the names of
 *     /etc/hosts, as the C library would use them;
 *   - forwarders "IP[@PORT]": those servers and nothing else (neither
 *     /etc/resolv.conf nor /etc/hosts is read).
 * A setting libunbound refuses throws ResolverError, naming dns.resolver.
 *
 * Lookups are asynchronous: start() sends the question and returns a
 * Lookup; Lookup::wait() blocks until the answer comes or until the
 * resolver's timeout (counted from start()) has passed, when the query is
 * cancelled and the answer is a temperror.  Lookups started together run
 * in parallel; one poller thread hands libunbound's answers to the
 * waiters.  A Lookup dropped without wait() is cancelled.  Every Lookup
 * must end before its Resolver.  Thread-safe.
 */
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "util/units.h"

struct ub_ctx;

namespace portcullis::dns {

enum class RecordType : int { a = 1, ptr = 12, mx = 15, txt = 16, aaaa = 28 };

struct Answer {
    enum class Status { found, not_found, temperror };
    Status status = Status::temperror;
    /* A, AAAA: the addresses as text; TXT: each record's strings joined;
     * MX (exchanges, preferences dropped), PTR: host names without the
     * final dot, only those made of letters, digits, '-' and '_'. */
    std::vector<std::string> records;
    /* temperror: "timeout", "SERVFAIL", "bogus (...)" or libunbound's error. */
    std::string error;
    /* From start() to the answer (or to the timeout). */
    std::chrono::steady_clock::duration took{};
};

std::string_view status_name(Answer::Status status);

class ResolverError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Query;   // one question in flight (resolver.cc)

class Resolver {
public:
    class Lookup {
    public:
        Lookup(Lookup&&) noexcept;
        Lookup& operator=(Lookup&&) = delete;
        ~Lookup();
        /* The answer; a second call returns it again. */
        Answer wait();

    private:
        friend class Resolver;
        Lookup(Resolver& resolver, std::shared_ptr<Query> query);
        Resolver* resolver_;
        std::shared_ptr<Query> query_;
    };

    Resolver(const std::vector<std::string>& servers, Millis timeout);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    Lookup start(std::string_view name, RecordType type);
    /* start() and wait(). */
    Answer lookup(std::string_view name, RecordType type);

    /* "forwarders 127.0.0.1@5353" or "system resolver", for the log. */
    const std::string& describe() const { return description_; }

private:
    friend void deliver(Query& query, Answer answer);
    void configure(const std::vector<std::string>& servers);
    void poll_answers();
    Answer wait_for(Query& query);
    void give_up(Query& query);

    std::unique_ptr<ub_ctx, void (*)(ub_ctx*)> context_;
    Millis timeout_;
    std::string description_;
    int wake_fd_ = -1;   // eventfd: tells the poller to stop
    std::mutex mutex_;   // guards every Query's done and answer
    std::condition_variable answered_;
    std::thread poller_;
};

}  // namespace portcullis::dns
