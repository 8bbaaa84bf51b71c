/*
 * redis_store.h: the Store on one Redis server (store.mode "standalone").
 *
 * The constructor reads store.url, redis://[[user]:password@]host[:port][/db]
 * (host may be [IPv6]; port 6379 and db 0 by default; user and password
 * may be %-encoded) or unix:///path[?db=N][&password=P], resolves a host
 * name once (resolve_endpoint()), and throws StoreSettingsError on
 * anything else, on store.mode "sentinel" or "cluster" here, or on a
 * timeout that is not
 * positive.  It does not connect.
 *
 * run() goes out on the calling event loop's own connection (a
 * RedisLink, made at the loop's first call): commands from one loop are
 * pipelined on it, and no loop waits for another's.  It calls EVALSHA,
 * and EVAL when Redis does not know the script (after a restart or SCRIPT
 * FLUSH), for a Script and a HashScript alike, each within store.timeout.
 * Its reply becomes strings: integers in decimal, nil in an array as "",
 * and a nil reply as no strings.  An error names the server.  The log
 * says once that Redis became unreachable and once that it is back,
 * whichever loop saw it.
 *
 * scan(), scan_hashes(), erase() and ping() block, on a connection and a
 * loop of their own.  scan() and scan_hashes() walk the keys of their type
 * with SCAN ... TYPE, so a key may be visited twice if Redis resizes its
 * table meanwhile; each batch (a SCAN and the GET or HGETALL and PTTL of
 * the keys it returns) has its own store.timeout, as a walk over many
 * keys may take long.
 */
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/redis_link.h"
#include "store/store.h"

namespace portcullis::store {

/* The server SETTINGS name, checked, without resolving or connecting;
 * throws StoreSettingsError naming the key to blame. */
RedisEndpoint redis_endpoint(const config::Config::Store& settings);

/* Whether one server answers, as its links report it: the log lines and
 * the metric of its health, shared by the links of every loop. */
class ServerHealth {
public:
    explicit ServerHealth(std::string description) : description_(std::move(description)) {}
    void report(bool ok, const std::string& error);
    /* "ok", or "unreachable since TIME: ERROR". */
    std::string state() const;

private:
    std::string description_;
    mutable std::mutex mutex_;   // one log line per change, however many links report it
    std::atomic<bool> reachable_{true};
    std::string failure_;        // under mutex_: why, and since when, while unreachable
};

class RedisStore final : public Store {
public:
    explicit RedisStore(const config::Config::Store& settings);

    void run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void run(const HashScript& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) override;
    void scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) override;
    bool erase(std::string_view key) override;
    void ping() override;
    std::string describe() const override;
    std::string health() const override { return health_->state(); }

private:
    class Blocking;   // redis_store.cc: a loop and a link of a blocking call's own

    void evaluate(std::string_view name, std::string_view lua, std::string_view key, int64_t now_ms,
                  std::span<const std::string> args, Done done);
    /* SCAN for the keys of TYPE under KEY_PREFIX; VISIT gets each one's
     * relative name, its READ reply and its expiry. */
    void walk(std::string_view key_prefix, std::string_view type, std::string_view read,
              const std::function<void(std::string, const RedisReply&, int64_t)>& visit);

    std::string prefix_;
    Millis timeout_;
    LinkAddress address_;
    std::string description_;
    std::shared_ptr<ServerHealth> health_;
    std::unique_ptr<PerLoop<RedisLink>> links_;
};

}  // namespace portcullis::store
