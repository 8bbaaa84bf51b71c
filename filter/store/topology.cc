/*
 * topology.cc: the store settings as servers, the servers' health, the
 * standalone topology, and the choice of topology.
 */
#include "store/topology.h"

#include "metrics/metrics.h"
#include "store/cluster.h"
#include "store/sentinel.h"
#include "store/store.h"
#include "util/log.h"
#include "util/units.h"

namespace portcullis::store {

namespace {

/* Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false
 * positive) about "literal" + std::to_string(...). */
std::string describe_endpoint(const RedisEndpoint& endpoint) {
    std::string text = "redis ";
    text += endpoint.socket_path.empty() ? host_port(endpoint.host, endpoint.port) : "unix:" + endpoint.socket_path;
    text += '/';
    text += std::to_string(endpoint.db);
    return text;
}

/* One server, a link to it per loop: as RedisLink behaves, no more. */
class StandaloneTopology final : public Topology {
public:
    StandaloneTopology(const RedisEndpoint& endpoint, Millis timeout)
        : address_(resolve_endpoint(endpoint)), description_(describe_endpoint(endpoint)),
          health_(std::make_shared<StoreHealth>(description_)),
          links_([this, timeout](EventLoop& loop) {
              return std::make_shared<RedisLink>(loop, address_, timeout, health_->reporter(description_, true));
          }) {}

    void send(std::shared_ptr<const KeyCommand> command, Done done,
              std::chrono::steady_clock::time_point since) override {
        links_.here().send(command->encoded, std::move(done), since);
    }

    void masters(MastersDone done) override { done({address_}, ""); }

    std::string health() const override { return health_->state(); }

    std::string describe() const override { return description_; }

private:
    LinkAddress address_;
    std::string description_;
    std::shared_ptr<StoreHealth> health_;
    PerLoop<RedisLink> links_;
};

}  // namespace

RedisServers redis_servers(const config::Config::Store& settings) {
    if (settings.timeout <= Millis::zero()) throw StoreSettingsError("store.timeout", "must be more than zero");
    try {
        return parse_redis_servers(settings.mode, settings.url, settings.master, settings.user, settings.password);
    } catch (const RedisServersError& bad) {
        // what() is "KEY: why", and StoreSettingsError puts the key back.
        throw StoreSettingsError(bad.key(), std::string(bad.what()).substr(bad.key().size() + 2));
    }
}

std::string_view error_code(const LinkResult& result) {
    if (!result.ok || result.reply.type != RedisReply::Type::error) return {};
    const std::string_view text = result.reply.text;
    return text.substr(0, text.find(' '));
}

RedisLink::Health StoreHealth::reporter(const std::string& name, bool counts) {
    std::shared_ptr<Server> server;
    {
        const std::lock_guard lock(mutex_);
        auto& known = servers_[name];
        if (!known) known = std::make_shared<Server>(name, counts);
        server = known;
    }
    return [self = shared_from_this(), server](bool ok, const std::string& error) { self->report(*server, ok, error); };
}

void StoreHealth::report(Server& server, bool ok, const std::string& error) {
    if (ok == server.reachable.load(std::memory_order_relaxed)) return;
    const std::lock_guard lock(mutex_);
    if (server.gone || ok == server.reachable.load()) return;
    server.reachable = ok;
    server.failure = ok ? "" : "unreachable since " + utc_time(now_ms()) + ": " + error;
    if (ok) log::info("store: " + server.name + " reachable again");
    else log::warning("store: " + server.name + " unreachable: " + error);
    if (server.counts) publish_up();
}

void StoreHealth::forget_except(const std::set<std::string>& keep) {
    const std::lock_guard lock(mutex_);
    std::erase_if(servers_, [&keep](const auto& entry) {
        const bool forget = entry.second->counts && !keep.contains(entry.first);
        if (forget) entry.second->gone = true;
        return forget;
    });
    publish_up();
}

std::string StoreHealth::state() const {
    const std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& [name, server] : servers_) {
        if (!server->counts || server->failure.empty()) continue;
        if (!text.empty()) text += "; ";
        if (name != store_) text += name + " ";
        text += server->failure;
    }
    return text.empty() ? "ok" : text;
}

/* Under mutex_. */
void StoreHealth::publish_up() {
    bool up = true;
    for (const auto& [name, server] : servers_) up = up && (!server->counts || server->reachable);
    metrics::set_store_up(up);
}

std::unique_ptr<Topology> make_topology(const RedisServers& servers, Millis timeout) {
    switch (servers.mode) {
        case RedisMode::standalone: return std::make_unique<StandaloneTopology>(servers.urls.front(), timeout);
        case RedisMode::sentinel: return std::make_unique<SentinelTopology>(servers, timeout);
        case RedisMode::cluster: return std::make_unique<ClusterTopology>(servers, timeout);
    }
    throw StoreError("unknown store.mode");
}

}  // namespace portcullis::store
