/*
 * sentinel.cc: asking the sentinels, confirming with ROLE, and sending to
 * the master found (see sentinel.h).
 */
#include "store/sentinel.h"

#include <mutex>
#include <sstream>
#include <utility>

#include "metrics/metrics.h"
#include "store/routing.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::store {

namespace {

constexpr auto kAskAgainPause = std::chrono::milliseconds(100);
constexpr auto kWatchAgainPause = std::chrono::seconds(1);

/* The address in a SENTINEL get-master-addr-by-name reply, or why there
 * is none. */
std::optional<LinkAddress> master_address(const RedisReply& reply, std::string& why) {
    if (reply.type == RedisReply::Type::nil) {
        why = "does not know the master";
        return std::nullopt;
    }
    if (reply.type == RedisReply::Type::error) {
        why = reply.text;
        return std::nullopt;
    }
    if (reply.type != RedisReply::Type::array || reply.elements.size() != 2) {
        why = "gave an unexpected reply";
        return std::nullopt;
    }
    const std::string& host = reply.elements[0].text;
    const auto port = parse_decimal<int>(reply.elements[1].text);
    auto address = numeric_address(host, port.value_or(0));
    if (!address) why = "names the master " + in_quotes(host) + ", not an IP address and port";
    return address;
}

}  // namespace

struct SentinelShared : RouterSettings {
    SentinelShared(const RedisServers& servers, Millis store_timeout)
        : RouterSettings(servers, store_timeout, "redis sentinel " + servers.master), master_name(servers.master) {
        for (const auto& endpoint : servers.urls) sentinels.push_back(resolve_endpoint(endpoint));
    }

    std::string master_name;
    std::vector<LinkAddress> sentinels;

    std::mutex mutex;
    std::string master;            // the address last found by any loop
    uint64_t version = 0;

    /* A loop found the master at ADDRESS. */
    void note_master(const std::string& address) {
        const std::lock_guard lock(mutex);
        if (address == master) return;
        ++version;
        if (master.empty()) {
            log::info("store: " + description + ": master at " + address);
        } else {
            metrics::count_store_failover();
            log::warning("store: " + description + ": master moved from " + master + " to " + address +
                         " (topology version " + std::to_string(version) + ")");
        }
        master = address;
        metrics::set_store_topology(version, {address});
        health->forget_except({master_label(address)});
    }

    static std::string master_label(const std::string& address) { return "redis master " + address; }
};

class SentinelRouter {
public:
    SentinelRouter(EventLoop& loop, std::shared_ptr<SentinelShared> shared)
        : loop_(loop), shared_(std::move(shared)), sentinels_(shared_->sentinels.size()),
          watches_(shared_->sentinels.size()),
          retired_(loop), parking_(loop, [this] { resume(); }) {}

    void send(std::shared_ptr<Call> call) {
        if (master_) keep_watching();
        if (master_ && master_->lost()) drop_master();
        if (master_) return dispatch(std::move(call));
        call->error = last_error_;
        call->kind = error_kind::no_master;
        parking_.park(std::move(call));
        if (!asking_) ask_again();
    }

    void masters(Topology::MastersDone done) {
        if (master_ && master_->lost()) drop_master();
        if (master_) return done({master_->address()}, "");
        waiting_masters_.push_back(std::move(done));
        if (!asking_) ask_again();
    }

private:
    /* Asks the sentinels, now or once the pause after a failed ask ends:
     * in turn from the one that answered last, staggered. */
    void ask_again() {
        if (RouterClock::now() < next_ask_) return parking_.wake_at(next_ask_);
        asking_ = true;
        const size_t first = first_;
        const size_t count = sentinels_.size();
        round_ = std::make_shared<StaggeredAsk>(
            loop_, count,
            [this, first, count](size_t position, RedisLink::Done reply, std::string&) {
                const std::string_view command[] = {"SENTINEL", "get-master-addr-by-name", shared_->master_name};
                sentinel_link((first + position) % count).command(command, std::move(reply));
                return true;
            },
            [this, first, count](size_t position, LinkResult result, std::string& why) {
                return named((first + position) % count, std::move(result), why);
            },
            [this](const std::string& errors) { not_found("no sentinel named the master: " + errors); });
        round_->start();
    }

    void resume() {
        if (!asking_ && !master_ && (!parking_.empty() || !waiting_masters_.empty())) ask_again();
    }

    /* The sentinel at INDEX answered the current round: true when it
     * named a master (the round ends; ROLE confirms it). */
    bool named(size_t index, LinkResult result, std::string& why) {
        std::string failure;
        if (!result.ok) {
            failure = result.error;
        } else if (auto address = master_address(result.reply, failure)) {
            first_ = index;
            round_.reset();
            confirm(std::move(*address));
            return true;
        }
        why = "sentinel " + shared_->sentinels[index].name + " " + failure;
        return false;
    }

    RedisLink& sentinel_link(size_t index) {
        auto& link = sentinels_[index];
        if (!link) {
            const LinkAddress& address = shared_->sentinels[index];
            link = std::make_unique<RedisLink>(loop_, address, shared_->timeout,
                                               shared_->health->reporter("sentinel " + address.name, false));
        }
        return *link;
    }

    /* A sentinel named ADDRESS: it is the master once ROLE says so. */
    void confirm(LinkAddress address) {
        address.user = shared_->user;
        address.password = shared_->password;
        const std::string label = SentinelShared::master_label(address.name);
        candidate_ = std::make_shared<RedisLink>(loop_, std::move(address), shared_->timeout,
                                                 shared_->health->reporter(label, true));
        const std::string_view role[] = {"ROLE"};
        candidate_->command(role, [this](LinkResult result) {
            const std::string name = candidate_->address().name;
            if (result.ok && result.reply.type == RedisReply::Type::array && !result.reply.elements.empty() &&
                result.reply.elements[0].text == "master") {
                return found();
            }
            retired_.retire(std::move(candidate_));
            if (!result.ok) return not_found("master " + name + ": " + result.error);
            const std::string role_text = result.reply.type == RedisReply::Type::array &&
                                                  !result.reply.elements.empty()
                                              ? result.reply.elements[0].text
                                              : result.reply.text;
            not_found("the sentinels name " + name + ", but its ROLE is " + in_quotes(role_text));
        });
    }

    void found() {
        master_ = std::move(candidate_);
        asking_ = false;
        shared_->note_master(master_->address().name);
        keep_watching();
        for (auto& call : parking_.release()) dispatch(std::move(call));
        auto waiting = std::move(waiting_masters_);
        for (auto& done : waiting) done({master_->address()}, "");
    }

    void not_found(const std::string& error) {
        round_.reset();
        asking_ = false;
        last_error_ = error;
        next_ask_ = RouterClock::now() + kAskAgainPause;
        for (auto& call : parking_.release()) {
            call->error = error;
            call->kind = error_kind::no_master;
            parking_.park(std::move(call));
        }
        if (!parking_.empty()) parking_.wake_at(next_ask_);
        auto waiting = std::move(waiting_masters_);
        for (auto& done : waiting) done({}, error);
    }

    void dispatch(std::shared_ptr<Call> call) {
        RedisLink* link = master_.get();
        link->send(
            call->command->encoded, [this, call, link](LinkResult result) { answered(call, *link, std::move(result)); },
            call->started);
    }

    /* LINK is alive here: it calls back, and RetiredLinks keeps it while
     * it does. */
    void answered(const std::shared_ptr<Call>& call, RedisLink& link, LinkResult result) {
        const std::string_view code = error_code(result);
        const bool not_a_master = code == "READONLY" || code == "LOADING" || code == "MASTERDOWN";
        if (result.ok && !not_a_master) return call->done(std::move(result));
        if (&link == master_.get()) drop_master();
        const std::string where = "master " + link.address().name + ": ";
        if (!result.ok) {
            call->error = where + result.error;
            call->kind = result.kind;
        } else {
            call->error = where + result.reply.text;
            call->kind = code == "LOADING" ? error_kind::loading : error_kind::readonly;
        }
        // Sent elsewhere only when this server surely did not run it.
        if (call->has_time() && (not_a_master || result.unsent)) return send(call);
        call->done(LinkResult{false, {}, call->error, call->kind, result.unsent});
    }

    void drop_master() { retired_.retire(std::move(master_)); }

    /* Keeps a subscription to the sentinels' news on each of them: made
     * anew a second after one failed or its connection ended, when the
     * master is asked for again, as a switch may have gone unheard. */
    void keep_watching() {
        const auto now = RouterClock::now();
        for (size_t index = 0; index < watches_.size(); ++index) {
            Watch& watch = watches_[index];
            if (watch.link && watch.link->lost()) lose_watch(index);
            if (!watch.link && now >= watch.again) subscribe(index);
        }
    }

    void subscribe(size_t index) {
        const LinkAddress& sentinel = shared_->sentinels[index];
        auto link = std::make_shared<RedisLink>(loop_, sentinel, shared_->timeout,
                                                shared_->health->reporter("sentinel " + sentinel.name, false));
        link->on_push([this, index](const RedisReply& message) { heard(index, message); });
        // Two channels, two confirmations: the second comes as a push.
        const std::string_view command[] = {"SUBSCRIBE", "+switch-master", "+promoted-slave"};
        link->command(command, [this, index, raw = link.get()](const LinkResult& result) {
            if (raw != watches_[index].link.get()) return;
            const bool refused = !result.ok || result.reply.type == RedisReply::Type::error;
            if (refused) lose_watch(index);
            else watches_[index].subscribed = true;
        });
        watches_[index].link = std::move(link);
    }

    /* A failover may have been told while the watch was down: the master
     * is asked for again, unless the watch never began (a sentinel that
     * is down, as a quorum allows, has missed no news of ours; asking
     * again each time it refuses would cost a new master connection and
     * its ROLE every second). */
    void lose_watch(size_t index) {
        Watch& watch = watches_[index];
        retired_.retire(std::move(watch.link));
        watch.again = RouterClock::now() + kWatchAgainPause;
        if (std::exchange(watch.subscribed, false)) drop_master();
    }

    /* A message from the sentinel at INDEX: on +switch-master "NAME
     * OLD-IP OLD-PORT NEW-IP NEW-PORT", on +promoted-slave (from the
     * sentinel that fails over, a second earlier) "slave NAME IP PORT @
     * MASTER-NAME IP PORT".  Another master for ours: ask that sentinel
     * now, before the next write goes to the old one. */
    void heard(size_t index, const RedisReply& message) {
        if (message.type != RedisReply::Type::array || message.elements.size() != 3 ||
            message.elements[0].text != "message") {
            return;
        }
        std::vector<std::string> words;
        std::istringstream text(message.elements[2].text);
        for (std::string word; text >> word;) words.push_back(word);
        std::optional<std::pair<std::string, std::string>> named;   // master name, its new host:port
        if (message.elements[1].text == "+switch-master" && words.size() == 5) named = {words[0], words[3] + ":" + words[4]};
        if (message.elements[1].text == "+promoted-slave" && words.size() == 8) named = {words[5], words[2] + ":" + words[3]};
        if (!named || named->first != shared_->master_name) return;
        const auto parts = named->second.rfind(':');
        const auto port = parse_decimal<int>(std::string_view(named->second).substr(parts + 1));
        if (master_ && port && master_->address().name == host_port(named->second.substr(0, parts), *port)) return;
        drop_master();
        first_ = index;
        if (!asking_) ask_again();
    }

    EventLoop& loop_;
    std::shared_ptr<SentinelShared> shared_;
    std::vector<std::unique_ptr<RedisLink>> sentinels_;   // made when first asked
    size_t first_ = 0;                                     // the sentinel asked first
    std::shared_ptr<StaggeredAsk> round_;                  // while the sentinels are asked
    std::shared_ptr<RedisLink> master_;                    // confirmed; null: ask
    std::shared_ptr<RedisLink> candidate_;                 // waiting for ROLE
    struct Watch {
        std::shared_ptr<RedisLink> link;                   // subscribed to the sentinel's news
        RouterClock::time_point again{};                   // when to subscribe again
        bool subscribed = false;                           // the sentinel said yes
    };
    std::vector<Watch> watches_;                           // by sentinel
    bool asking_ = false;
    std::string last_error_ = "no master found yet";
    RouterClock::time_point next_ask_{};
    std::vector<Topology::MastersDone> waiting_masters_;
    RetiredLinks retired_;
    Parking parking_;
};

SentinelTopology::SentinelTopology(const RedisServers& servers, Millis timeout)
    : RoutedTopology(std::make_shared<SentinelShared>(servers, timeout)) {}

SentinelTopology::~SentinelTopology() = default;

}  // namespace portcullis::store
