/*
 * routing.h: what the Sentinel and Cluster routers of one loop share.
 *
 * RetiredLinks keeps the links a router stopped using until they are
 * idle.  A Call is a command under way: the command (kept for a retry), who
 * hears the answer, the time after which it may not be retried, the
 * redirects it followed, and why its last attempt failed.
 *
 * Parking holds the calls a router cannot send yet (the master or the
 * slot map is being looked for, or a pause before a retry).  park() keeps
 * a call; a parked call whose deadline passes fails with its last error
 * (a LinkResult of its kind), on the loop.  wake_at() asks for WAKE at a
 * time (the earliest asked wins), when the router tries again; release()
 * hands back every parked call, in the order parked, for sending.
 *
 * RoutedTopology is the Topology both routers are: RouterSettings (and
 * what else the router's SHARED keeps for every loop) made once, and a
 * ROUTER per event loop, made on the loop at its first command, with
 * send(Call) and masters(MastersDone).
 */
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/topology.h"
#include "util/event_loop.h"

namespace portcullis::store {

using RouterClock = std::chrono::steady_clock;

struct Call {
    std::shared_ptr<const KeyCommand> command;
    Topology::Done done;
    RouterClock::time_point started;     // each command sent has store.timeout from here
    RouterClock::time_point deadline;
    int redirects = 0;
    std::string error;        // of the last attempt, for a call that runs out of time
    std::string_view kind;

    bool has_time() const { return RouterClock::now() < deadline; }
    /* Gives up: DONE hears the last attempt's error. */
    void fail() const { done(LinkResult{false, {}, error, kind, true}); }
};

/* A call of COMMAND, begun at SINCE (now, if not given), that may be
 * retried until TIMEOUT after that. */
inline std::shared_ptr<Call> make_call(std::shared_ptr<const KeyCommand> command, Topology::Done done, Millis timeout,
                                       RouterClock::time_point since) {
    const auto started = since == RouterClock::time_point{} ? RouterClock::now() : since;
    return std::make_shared<Call>(Call{std::move(command), std::move(done), started, started + timeout, 0, {}, {}});
}

/* Links a router no longer sends to, kept until the commands on them
 * are answered (a link dropped with commands on it would never answer
 * them), and never destroyed inside one of their callbacks (a link that
 * fails calls back each command in turn). */
class RetiredLinks {
public:
    explicit RetiredLinks(EventLoop& loop) : loop_(loop) {}
    void retire(std::shared_ptr<RedisLink> link);

private:
    using Links = std::vector<std::shared_ptr<RedisLink>>;
    EventLoop& loop_;
    std::shared_ptr<Links> links_ = std::make_shared<Links>();
};

/* What every loop's router reads: the servers' credentials, the timeout,
 * the store's name and the health its links report to. */
struct RouterSettings {
    std::string user;
    std::string password;
    Millis timeout{};
    std::string description;    // "redis cluster", "redis sentinel mymaster"
    std::shared_ptr<StoreHealth> health;

    RouterSettings(const RedisServers& servers, Millis store_timeout, std::string name)
        : user(servers.user), password(servers.password), timeout(store_timeout), description(std::move(name)),
          health(std::make_shared<StoreHealth>(description)) {}
};

template <class Shared, class Router>
class RoutedTopology : public Topology {
public:
    explicit RoutedTopology(std::shared_ptr<Shared> shared)
        : shared_(std::move(shared)),
          routers_(std::make_unique<PerLoop<Router>>(
              [shared = shared_](EventLoop& loop) { return std::make_shared<Router>(loop, shared); })) {}

    void send(std::shared_ptr<const KeyCommand> command, Done done, RouterClock::time_point since) override {
        routers_->here().send(make_call(std::move(command), std::move(done), shared_->timeout, since));
    }
    void masters(MastersDone done) override { routers_->here().masters(std::move(done)); }
    std::string health() const override { return shared_->health->state(); }
    std::string describe() const override { return shared_->description; }

private:
    std::shared_ptr<Shared> shared_;
    std::unique_ptr<PerLoop<Router>> routers_;
};

class Parking {
public:
    Parking(EventLoop& loop, std::function<void()> wake);
    Parking(const Parking&) = delete;
    Parking& operator=(const Parking&) = delete;

    void park(std::shared_ptr<Call> call);
    void wake_at(RouterClock::time_point at);
    std::vector<std::shared_ptr<Call>> release();
    bool empty() const { return calls_.empty(); }

private:
    void fire();
    void arm();

    std::function<void()> wake_;
    std::deque<std::shared_ptr<Call>> calls_;
    std::optional<RouterClock::time_point> wake_at_;
    Timer timer_;
};

}  // namespace portcullis::store
