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
 * A StaggeredAsk is one round of asking servers the same question (a
 * cluster's slot map, a sentinel's master) until one gives a usable
 * answer.  It asks the first server at start(), and the next one as soon
 * as the one before gave no usable answer, or kAskStagger after it
 * without an answer, with at most kAsksAtOnce unanswered at once: servers
 * that hang (paused, a lost route) hold a round about kAskStagger each,
 * not a link's timeout.  ASK(POSITION, REPLY, WHY) sends the question to
 * the server at POSITION (0 to COUNT-1, the router's order) with REPLY as
 * the link's callback, or returns false with WHY when it cannot be asked.
 * HEARD(POSITION, RESULT, WHY) hears each reply while the round lasts:
 * true when the answer was usable (the router then ends the round), or
 * false with WHY.  FAILED(ERRORS) hears, once, that every server failed
 * (each WHY, joined with "; "), maybe within start().  The round ends
 * when its owner drops it: a reply that comes later finds it gone and is
 * dropped, and never reaches the router, even one that is gone itself.
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

class StaggeredAsk : public std::enable_shared_from_this<StaggeredAsk> {
public:
    using Ask = std::function<bool(size_t position, RedisLink::Done reply, std::string& why)>;
    using Heard = std::function<bool(size_t position, LinkResult result, std::string& why)>;
    using Failed = std::function<void(const std::string& errors)>;

    static constexpr auto kAskStagger = std::chrono::milliseconds(50);
    static constexpr size_t kAsksAtOnce = 4;

    /* Made with std::make_shared (the replies hold weak pointers to it). */
    StaggeredAsk(EventLoop& loop, size_t count, Ask ask, Heard heard, Failed failed);
    StaggeredAsk(const StaggeredAsk&) = delete;
    StaggeredAsk& operator=(const StaggeredAsk&) = delete;

    void start() { ask_next(); }

private:
    void ask_next();
    void ask_sooner();
    void answered(size_t position, LinkResult result);
    void add_error(const std::string& why);

    size_t count_;
    Ask ask_;
    Heard heard_;
    Failed failed_;
    size_t next_ = 0;          // the position asked next
    size_t unanswered_ = 0;
    std::string errors_;
    Timer stagger_;            // asks the next one sooner
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
