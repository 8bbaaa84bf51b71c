/*
 * redis_store.h: the Store on Redis: one server (store.mode
 * "standalone"), a master Redis Sentinel watches ("sentinel") or a Redis
 * Cluster ("cluster").
 *
 * The constructor reads the settings (topology.h: redis_servers(), which
 * throws StoreSettingsError naming the key to blame; store.url's forms
 * are util/redis_url.h's), resolves the host names of store.url once,
 * and builds the topology of store.mode.  It does not connect.
 *
 * run() sends EVALSHA through the topology, on the calling event loop
 * (commands from one loop are pipelined on its links, and no loop waits
 * for another's), and EVAL when the server does not know the script (a
 * restarted server, SCRIPT FLUSH, a promoted replica: each node has its
 * own script cache), for a Script and a HashScript alike, each within
 * store.timeout; a call that meets NOSCRIPT while an EVAL of its script
 * from the same loop is on its way sends EVALSHA once more, behind it.  Its reply becomes strings: integers in decimal, nil in
 * an array as "", and a nil reply as no strings.  An error starts with
 * the topology's describe() and names the server; each failed run()
 * counts once in portcullis_store_errors_total by its kind.  The log says
 * once that a server became unreachable and once that it is back,
 * whichever loop saw it (topology.h, StoreHealth).
 *
 * scan(), scan_hashes(), erase() and ping() block, on a loop of their
 * own and its connections.  scan() and scan_hashes() walk the keys of
 * their type on every master with SCAN ... TYPE, so a key may be visited
 * twice if Redis resizes its table meanwhile (or a cluster slot moves);
 * each batch (a SCAN, and the GET or HGETALL and PTTL of the keys it
 * returns, sent to the key's master) has its own store.timeout, as a
 * walk over many keys may take long.  A server whose SCAN would never
 * end (a cursor given twice, or more rounds than ten times what DBSIZE
 * makes likely) or gives a key outside the prefix asked for stops the
 * walk with a StoreError that says so.  ping() finds the masters (asking
 * the sentinels, or reading the slot map) and PINGs each.
 */
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"
#include "store/topology.h"

namespace portcullis::store {

class RedisStore final : public Store {
public:
    explicit RedisStore(const config::Config::Store& settings);
    ~RedisStore() override;

    void run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void run(const HashScript& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) override;
    void scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) override;
    bool erase(std::string_view key) override;
    void ping() override;
    std::string describe() const override;
    std::string health() const override;

private:
    class Blocking;   // redis_store.cc: a loop of a blocking call's own

    /* One run(): its EVALSHA, and what its EVAL would need. */
    struct ScriptCall {
        std::shared_ptr<const KeyCommand> evalsha;
        std::string_view lua;
        size_t arguments;
        std::string shared_tail;   // the arguments after the script or its SHA-1, encoded
        std::function<void(LinkResult)> finish;
        std::chrono::steady_clock::time_point started;
    };

    void evaluate(std::string_view name, std::string_view lua, std::string_view key, int64_t now_ms,
                  std::span<const std::string> args, Done done);
    /* FIRST_TRY: sent once more, when NOSCRIPT came while an EVAL of the
     * script was on its way (redis_store.cc says why). */
    void send_evalsha(std::shared_ptr<const ScriptCall> call, bool first_try);
    void send_eval(std::shared_ptr<const ScriptCall> call);
    /* SCAN every master for the keys of TYPE under KEY_PREFIX; VISIT gets
     * each one's relative name, its READ reply and its expiry. */
    void walk(std::string_view key_prefix, std::string_view type, std::string_view read,
              const std::function<void(std::string, const RedisReply&, int64_t)>& visit);

    std::string prefix_;
    Millis timeout_;
    std::unique_ptr<Topology> topology_;
};

}  // namespace portcullis::store
