/*
 * topology.h: which Redis server a command goes to.
 *
 * redis_servers() reads the store settings of a Redis backend into
 * RedisServers (util/redis_url.h: the server, the sentinels and the
 * master's name, or the seed nodes, and the data servers' credentials),
 * checking store.timeout too.  It throws StoreSettingsError naming the
 * key to blame; it neither resolves nor connects.
 *
 * A Topology sends a KeyCommand (one command on one key, encoded once)
 * to the server that holds the key, on the calling event loop, and gives
 * DONE the reply (a Redis error reply is a reply) or why there is none,
 * the server named in the error.  make_topology() builds the one the
 * mode names:
 *   standalone   a link per loop to the one server (as RedisLink does:
 *                reconnecting, failing fast for a second after a failed
 *                connect); no retry.
 *   sentinel     the master the sentinels name (sentinel.h).
 *   cluster      the master of the key's slot (cluster.h).
 * Sentinel and cluster retry a command only where the server surely did
 * not run it (a refused connect, MOVED, ASK, READONLY, LOADING,
 * TRYAGAIN, CLUSTERDOWN), until store.timeout has passed since send();
 * a command that may have run (no reply in time, the connection lost
 * with the command on it) fails at once, so a script never runs twice.
 * masters() finds the masters now (for the admin calls: SCAN on each),
 * on the calling loop.
 *
 * StoreHealth is what the servers' links report, shared by every loop:
 * one log line when a server becomes unreachable and one when it is
 * back, portcullis_store_up (0 while a data server is unreachable), and
 * forget() for the servers that left the topology.
 */
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "store/redis_link.h"
#include "store/store.h"
#include "util/redis_url.h"

namespace portcullis::store {

RedisServers redis_servers(const config::Config::Store& settings);

/* One command on one key: the key routes it (a cluster's slot). */
struct KeyCommand {
    std::string key;
    std::string encoded;
};

/* The word an error reply starts with ("MOVED", "READONLY"), or "". */
std::string_view error_code(const LinkResult& result);

/* Made with std::make_shared: the callbacks keep it alive, as a link
 * may outlive its topology briefly (PerLoop destroys it on its loop). */
class StoreHealth : public std::enable_shared_from_this<StoreHealth> {
public:
    /* STORE is the store's describe(): a server of that name is the whole
     * store, and state() need not name it. */
    explicit StoreHealth(std::string store) : store_(std::move(store)) {}

    /* The health callback for the links to the server NAME ("redis
     * 127.0.0.1:6379/0", "sentinel 127.0.0.1:26379"): its log lines name
     * it.  COUNTS: whether it is a data server, so its state is
     * portcullis_store_up's.  Every reply reports: the common case (no
     * change) takes no lock. */
    RedisLink::Health reporter(const std::string& name, bool counts);
    /* Forgets the data servers not in KEEP: they left the topology. */
    void forget_except(const std::set<std::string>& keep);
    /* "ok", or "unreachable since TIME: WHY" for each data server that
     * is, after its name unless it is the store. */
    std::string state() const;

private:
    struct Server {
        Server(std::string server_name, bool data) : name(std::move(server_name)), counts(data) {}
        const std::string name;
        const bool counts;
        std::atomic<bool> reachable{true};
        std::string failure;   // under mutex_: why, and since when
        bool gone = false;     // under mutex_: forgotten
    };
    void report(Server& server, bool ok, const std::string& error);
    void publish_up();

    std::string store_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Server>, std::less<>> servers_;
};

class Topology {
public:
    using Done = std::function<void(LinkResult)>;
    using MastersDone = std::function<void(std::vector<LinkAddress> masters, std::string error)>;

    virtual ~Topology() = default;

    /* SINCE: when the call began, if before now (EVAL after NOSCRIPT):
     * the command has only what is left of store.timeout. */
    virtual void send(std::shared_ptr<const KeyCommand> command, Done done,
                      std::chrono::steady_clock::time_point since = {}) = 0;
    virtual void masters(MastersDone done) = 0;
    /* StoreHealth::state() of its servers. */
    virtual std::string health() const = 0;
    /* "redis 127.0.0.1:6379/0", "redis sentinel master mymaster",
     * "redis cluster": what error messages and the log start with. */
    virtual std::string describe() const = 0;
};

/* Resolves the host names of SERVERS (the daemon calls this before it
 * serves); throws StoreError when one does not resolve. */
std::unique_ptr<Topology> make_topology(const RedisServers& servers, Millis timeout);

}  // namespace portcullis::store
