/*
 * redis_store.h: the Store on one Redis server (store.mode "standalone").
 *
 * The constructor reads store.url, redis://[[user]:password@]host[:port][/db]
 * (host may be [IPv6]; port 6379 and db 0 by default; user and password
 * may be %-encoded) or unix:///path[?db=N][&password=P], and throws
 * StoreSettingsError on anything else, on store.mode "sentinel" or "cluster"
 * (hiredis 0.14 speaks to one server), or on a timeout that is not
 * positive.  It does not connect.
 *
 * Each call has one deadline, store.timeout after it starts, shared by
 * all its steps: the wait for a free connection, a connect with its AUTH
 * and SELECT, and every write and read of each command (EVAL after
 * NOSCRIPT included) may take only the time left, and a step with no time
 * left fails at once ("no reply within 200ms", naming store.timeout).  So
 * no call blocks longer than store.timeout, bar the scheduler's delays
 * and the resolving of a host name (the system's, before the connect:
 * give an address where that matters).  scan(), for the admin commands,
 * may take long over many keys, so it has a deadline per batch instead:
 * a SCAN and the GET (HGETALL for scan_hashes()) and PTTL of the keys
 * it returns, the first batch sharing its deadline with the wait for a
 * connection.
 *
 * Connections are made when needed, up to 16, and shared by all threads.
 * A connection that fails (a timeout included) is dropped, with every
 * idle one (a restarted Redis has closed them all), and replaced by the
 * next caller.  After a failed connect no caller connects for a second:
 * meanwhile every call that needs a new connection fails at once with the
 * last error, so workers do not each wait a timeout per message while
 * Redis is down.  The log says once that Redis became unreachable and
 * once that it is back.
 *
 * run() calls EVALSHA, and EVAL when Redis does not know the script
 * (after a restart or SCRIPT FLUSH), for a Script and a HashScript
 * alike.  Its reply becomes strings: integers in decimal, nil in an
 * array as "", and a nil reply as no strings.  scan() and scan_hashes()
 * walk the keys of their type with SCAN ... TYPE, so a key may be visited
 * twice if Redis resizes its table meanwhile.
 */
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "store/redis_connection.h"
#include "store/store.h"

namespace portcullis::store {

class RedisStore final : public Store {
public:
    explicit RedisStore(const config::Config::Store& settings);

    std::vector<std::string> run(const Script& script, std::string_view key, int64_t now_ms,
                                 std::span<const std::string> args) override;
    std::vector<std::string> run(const HashScript& script, std::string_view key, int64_t now_ms,
                                 std::span<const std::string> args) override;
    void scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) override;
    void scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) override;
    bool erase(std::string_view key) override;
    void ping() override;
    std::string describe() const override;

private:
    using Clock = std::chrono::steady_clock;
    class Lease;

    std::vector<std::string> evaluate(std::string_view name, std::string_view lua, std::string_view key,
                                      int64_t now_ms, std::span<const std::string> args);
    /* SCAN for the keys of TYPE under KEY_PREFIX; VISIT gets each one's
     * relative name, its READ reply and its expiry. */
    void walk(std::string_view key_prefix, std::string_view type, std::string_view read,
              const std::function<void(std::string, const RedisReply&, int64_t)>& visit);
    Lease acquire(const Deadline& deadline);
    Lease connect(std::unique_lock<std::mutex>& lock, const Deadline& deadline);
    void give_back(RedisConnection connection);
    void connection_failed(const std::string& reason);
    void note_failure(const std::string& reason);
    void note_success();
    [[noreturn]] void reply_failed(std::string_view what, const RedisReply& reply) const;

    RedisEndpoint endpoint_;
    std::string prefix_;
    Millis timeout_;
    std::string description_;

    // The pool, guarded by mutex_.  open_ counts the idle connections, the
    // ones lent out and the ones being connected.
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<RedisConnection> idle_;
    size_t open_ = 0;
    // The server's health, guarded by mutex_.  While connect_failed_, no
    // one connects before retry_at_, and then one caller at a time.
    bool reachable_ = true;
    bool connect_failed_ = false;
    bool probing_ = false;
    Clock::time_point retry_at_;
    std::string last_error_;
};

}  // namespace portcullis::store
