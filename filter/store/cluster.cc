/*
 * cluster.cc: key slots, the slot map, and sending by slot with
 * redirects and retries (see cluster.h).
 */
#include "store/cluster.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "metrics/metrics.h"
#include "store/routing.h"
#include "store/store.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::store {

namespace {

constexpr int kMaxRedirects = 5;
constexpr auto kRetryPause = std::chrono::milliseconds(25);
constexpr auto kRefreshPause = std::chrono::milliseconds(100);
// Redis Cluster is made for up to 1000 nodes.
constexpr size_t kMaxNodes = 1000;
// Links of a loop to nodes outside its map (ASK and MOVED targets).
constexpr size_t kMaxStrangers = 4;

/* CRC16 of Redis Cluster: XMODEM, polynomial 0x1021, initial value 0. */
constexpr std::array<uint16_t, 256> crc16_table() {
    std::array<uint16_t, 256> table{};
    for (unsigned byte = 0; byte < 256; ++byte) {
        unsigned crc = byte << 8;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1;
        table[byte] = static_cast<uint16_t>(crc);
    }
    return table;
}

constexpr auto kCrc16 = crc16_table();

uint16_t crc16(std::string_view data) {
    uint16_t crc = 0;
    for (const char c : data) {
        crc = static_cast<uint16_t>((crc << 8) ^ kCrc16[((crc >> 8) ^ static_cast<unsigned char>(c)) & 0xff]);
    }
    return crc;
}

/* A node's host and port from "ip:port", "[v6]:port" or "v6:port" (as
 * MOVED and ASK write an IPv6 address). */
std::optional<std::pair<std::string, int>> split_node(std::string_view name) {
    const auto colon = name.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view host = name.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const auto port = parse_decimal<int>(name.substr(colon + 1));
    if (host.empty() || !port) return std::nullopt;
    return std::pair{std::string(host), *port};
}

/* The one way a node is named here: as host_port() writes it. */
std::optional<std::string> node_name(std::string_view text) {
    const auto parts = split_node(text);
    if (!parts) return std::nullopt;
    return host_port(parts->first, parts->second);
}

std::string node_label(const std::string& name) { return "redis cluster node " + name; }

/* The "ip:port" of a node entry of CLUSTER SLOTS; nullopt for "?", a
 * node whose address Redis does not know. */
std::optional<std::string> entry_node(const RedisReply& node, const std::string& asked_host) {
    if (node.type != RedisReply::Type::array || node.elements.size() < 2 ||
        (node.elements[0].type != RedisReply::Type::string && node.elements[0].type != RedisReply::Type::nil) ||
        node.elements[1].type != RedisReply::Type::integer) {
        throw StoreError("CLUSTER SLOTS gave a node entry without address and port");
    }
    std::string host = node.elements[0].text;
    if (host == "?") return std::nullopt;
    // "": the node does not know its address yet; NULL: the address asked.
    if (host.empty()) host = asked_host;
    const long long port = node.elements[1].integer;
    if (port < 1 || port > 65535) {
        throw StoreError("CLUSTER SLOTS gave the node " + in_quotes(host) + " the port " + std::to_string(port));
    }
    if (!numeric_address(host, static_cast<int>(port))) {
        throw StoreError("CLUSTER SLOTS names the node " + in_quotes(host) +
                         ", not an IP address and port (set cluster-preferred-endpoint-type ip)");
    }
    return host_port(host, static_cast<int>(port));
}

const std::string& asking_command() {
    static const std::string encoded = [] {
        std::string text;
        const std::string_view asking[] = {"ASKING"};
        encode_command(text, asking);
        return text;
    }();
    return encoded;
}

}  // namespace

uint16_t key_slot(std::string_view key) {
    const auto open = key.find('{');
    if (open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
    }
    return crc16(key) & (kClusterSlots - 1);
}

uint16_t SlotMap::master_index(const std::string& name) {
    const auto [found, added] = index_of_.try_emplace(name, static_cast<uint16_t>(masters.size()));
    if (added) {
        masters.push_back(name);
        replicas.emplace_back();
    }
    return found->second;
}

std::string SlotMap::describe() const {
    // Each master's ranges, the masters in the order of their first slot.
    std::vector<std::string> ranges(masters.size());
    std::vector<size_t> order;
    for (size_t slot = 0; slot < kClusterSlots;) {
        const uint16_t master = owner[slot];
        size_t end = slot;
        while (end + 1 < kClusterSlots && owner[end + 1] == master) ++end;
        if (master != kNoMaster) {
            if (ranges[master].empty()) order.push_back(master);
            ranges[master] += (ranges[master].empty() ? "" : ",") + std::to_string(slot);
            if (end > slot) ranges[master] += "-" + std::to_string(end);
        }
        slot = end + 1;
    }
    std::string text;
    for (const size_t master : order) text += (text.empty() ? "" : "; ") + masters[master] + " " + ranges[master];
    return text.empty() ? "no slot served" : text;
}

SlotMap parse_cluster_slots(const RedisReply& reply, const std::string& asked_host) {
    if (reply.type != RedisReply::Type::array) throw StoreError("CLUSTER SLOTS gave no array");
    SlotMap map;
    size_t replicas = 0;
    // Checked as each node is added: a replica's search for one seen
    // before is linear, so the bound keeps a hostile map's cost down too.
    const auto within_bound = [&] {
        if (map.masters.size() + replicas > kMaxNodes) {
            throw StoreError("CLUSTER SLOTS names more than " + std::to_string(kMaxNodes) + " nodes");
        }
    };
    for (const RedisReply& entry : reply.elements) {
        if (entry.type != RedisReply::Type::array || entry.elements.size() < 3 ||
            entry.elements[0].type != RedisReply::Type::integer ||
            entry.elements[1].type != RedisReply::Type::integer) {
            throw StoreError("CLUSTER SLOTS gave an entry without its slot range and master");
        }
        const long long first = entry.elements[0].integer;
        const long long last = entry.elements[1].integer;
        const std::string range = std::to_string(first) + "-" + std::to_string(last);
        if (first < 0 || last < first || last >= static_cast<long long>(kClusterSlots)) {
            throw StoreError("CLUSTER SLOTS gave the slot range " + range);
        }
        const auto master = entry_node(entry.elements[2], asked_host);
        if (!master) {
            throw StoreError("CLUSTER SLOTS gave the slots " + range +
                             " a master without an address ('?': set cluster-preferred-endpoint-type ip)");
        }
        const uint16_t index = map.master_index(*master);
        within_bound();
        for (auto slot = static_cast<size_t>(first); slot <= static_cast<size_t>(last); ++slot) {
            if (map.owner[slot] != SlotMap::kNoMaster) {
                throw StoreError("CLUSTER SLOTS gave slot " + std::to_string(slot) + " to " +
                                 map.masters[map.owner[slot]] + " and again to " + *master);
            }
            map.owner[slot] = index;
        }
        for (size_t i = 3; i < entry.elements.size(); ++i) {
            const auto replica = entry_node(entry.elements[i], asked_host);
            auto& known = map.replicas[index];
            if (replica && std::find(known.begin(), known.end(), *replica) == known.end()) {
                known.push_back(*replica);
                ++replicas;
                within_bound();
            }
        }
    }
    if (map.masters.empty()) throw StoreError("CLUSTER SLOTS gave no slot a master");
    return map;
}

struct ClusterShared : RouterSettings {
    ClusterShared(const RedisServers& servers, Millis store_timeout)
        : RouterSettings(servers, store_timeout, "redis cluster") {
        for (const auto& endpoint : servers.urls) seeds.push_back(resolve_endpoint(endpoint));
    }

    std::vector<LinkAddress> seeds;

    std::mutex mutex;
    std::optional<SlotMap> map;    // the last one any loop read
    std::string map_text;          // its describe()
    uint64_t version = 0;
    std::string refusal;           // the last map refused, logged, since that version
    uint64_t crowded_version = 0;  // the version of the last "more than kMaxStrangers" logged

    /* A loop read MAP from a node. */
    void note_map(const SlotMap& fresh) {
        std::string text = fresh.describe();
        const std::lock_guard lock(mutex);
        if (text == map_text) return;
        ++version;
        std::string failovers;
        std::vector<std::string> masters;
        std::set<std::string> nodes;
        for (size_t index = 0; index < fresh.masters.size(); ++index) {
            const std::string& name = fresh.masters[index];
            nodes.insert(node_label(name));
            for (const auto& replica : fresh.replicas[index]) nodes.insert(node_label(replica));
            const auto first_slot = std::find(fresh.owner.begin(), fresh.owner.end(), index);
            if (first_slot == fresh.owner.end()) continue;
            masters.push_back(name);
            if (const auto before = replaced(name, static_cast<size_t>(first_slot - fresh.owner.begin()))) {
                metrics::count_store_failover();
                failovers += "; failover: " + name + " took over from " + *before;
            }
        }
        refusal.clear();
        log::info("store: redis cluster slot map version " + std::to_string(version) + ": " + text + failovers);
        map = fresh;
        map_text = std::move(text);
        metrics::set_store_topology(version, masters);
        health->forget_except(nodes);
    }

    /* A loop refused what NODE gave for a map, for WHY: one line per
     * refusal, not per time asked. */
    void note_refusal(const std::string& node, const std::string& why) {
        std::string text = "node " + node + " gave a slot map refused: " + why;
        const std::lock_guard lock(mutex);
        if (text == refusal) return;
        log::warning("store: redis cluster: " + text);
        refusal = std::move(text);
    }

    /* A loop had kMaxStrangers links to nodes outside its map and was
     * redirected to one more, NODE: one line per version of the map. */
    void note_crowded(const std::string& node) {
        const std::lock_guard lock(mutex);
        if (crowded_version == version) return;
        crowded_version = version;
        log::warning("store: redis cluster: redirected to more than " + std::to_string(kMaxStrangers) +
                     " nodes outside slot map version " + std::to_string(version) + " (the last " + node +
                     "); the oldest idle link to one is closed for each new one");
    }

    /* The master MASTER replaced at SLOT, when it was that one's replica. */
    std::optional<std::string> replaced(const std::string& master, size_t slot) const {
        if (!map || map->owner[slot] == SlotMap::kNoMaster) return std::nullopt;
        const uint16_t before = map->owner[slot];
        const auto& replicas = map->replicas[before];
        if (std::find(replicas.begin(), replicas.end(), master) == replicas.end()) return std::nullopt;
        return map->masters[before];
    }

    /* Where to reach the node NAME (a seed, or "ip:port"), with the
     * cluster's credentials; nullopt when NAME is no address. */
    std::optional<LinkAddress> address_of(const std::string& name) const {
        std::optional<LinkAddress> address;
        const auto seed = std::find_if(seeds.begin(), seeds.end(), [&](const auto& s) { return s.name == name; });
        if (seed != seeds.end()) {
            address = *seed;
        } else if (const auto parts = split_node(name)) {
            address = numeric_address(parts->first, parts->second);
        }
        if (address) {
            address->user = user;
            address->password = password;
        }
        return address;
    }
};

class ClusterRouter {
public:
    ClusterRouter(EventLoop& loop, std::shared_ptr<ClusterShared> shared)
        : loop_(loop), shared_(std::move(shared)), retired_(loop), parking_(loop, [this] { resume(); }) {
        learn_nodes();
    }

    void send(std::shared_ptr<Call> call) {
        if (map_) return dispatch(std::move(call));
        call->error = last_error_;
        call->kind = error_kind::clusterdown;
        parking_.park(std::move(call));
        refresh("");
    }

    void masters(Topology::MastersDone done) {
        if (map_) return answer_masters(done);
        waiting_masters_.push_back(std::move(done));
        refresh("");
    }

private:
    /* Sends CALL to the master of its slot, or to TARGET (ASKING first
     * when ASKING). */
    void dispatch(std::shared_ptr<Call> call, const std::string* target = nullptr, bool asking = false) {
        RedisLink* link = nullptr;
        const std::string* node = target;
        std::string why;
        if (target) {
            link = link_to(*target, why);
        } else {
            const uint16_t slot = key_slot(call->command->key);
            const uint16_t master = map_->owner[slot];
            if (master == SlotMap::kNoMaster) {
                call->error = "slot " + std::to_string(slot) + " has no master in the slot map";
                call->kind = error_kind::clusterdown;
                parking_.park(std::move(call));
                return refresh("");
            }
            node = &map_->masters[master];
            link = master_links_[master];
            if (!link) link = master_links_[master] = link_to(*node, why);
        }
        if (!link) {
            // A redirect's error says where the name came from.
            call->error = target ? call->error + " (" + why + ")" : "node " + *node + ": " + why;
            return call->fail();
        }
        if (asking) link->send(asking_command(), [](const LinkResult&) {});
        link->send(
            call->command->encoded, [this, call, link](LinkResult result) { answered(call, *link, std::move(result)); },
            call->started);
    }

    /* LINK is alive here: it calls back, and RetiredLinks keeps it while
     * it does. */
    void answered(const std::shared_ptr<Call>& call, RedisLink& link, LinkResult result) {
        const std::string_view code = error_code(result);
        if (code == "MOVED" || code == "ASK") return redirect(call, link, code, result.reply.text);
        const bool busy_cluster = code == "TRYAGAIN" || code == "CLUSTERDOWN";
        if (result.ok && !busy_cluster) return call->done(std::move(result));
        const std::string& node = link.address().name;
        call->error = "node " + node + ": " + (result.ok ? result.reply.text : result.error);
        call->kind = result.ok ? error_kind::clusterdown : result.kind;
        if (!result.ok) refresh(node);
        else if (code == "CLUSTERDOWN") refresh("");
        // Sent again only when the node surely did not run it.
        if (call->has_time() && (busy_cluster || result.unsent)) {
            parking_.park(call);
            if (busy_cluster) parking_.wake_at(RouterClock::now() + kRetryPause);
            return;
        }
        call->done(LinkResult{false, {}, call->error, call->kind, result.unsent});
    }

    /* MOVED SLOT NODE or ASK SLOT NODE. */
    void redirect(const std::shared_ptr<Call>& call, const RedisLink& link, std::string_view code,
                  const std::string& text) {
        const auto first = text.find(' ');
        const auto second = text.find(' ', first + 1);
        const auto slot = parse_decimal<size_t>(std::string_view(text).substr(first + 1, second - first - 1));
        const auto target = second == std::string::npos ? std::nullopt : node_name(text.substr(second + 1));
        call->error = "node " + link.address().name + ": " + text;
        call->kind = error_kind::redirects;
        if (!slot || *slot >= kClusterSlots || !target) return call->fail();
        if (++call->redirects > kMaxRedirects) {
            call->error += " (after " + std::to_string(kMaxRedirects) + " redirects)";
            return call->fail();
        }
        if (code == "ASK") {
            metrics::count_store_redirect("ask");
            return dispatch(call, &*target, true);
        }
        metrics::count_store_redirect("moved");
        // A node of the map (a replica promoted, a master given the slot)
        // takes the slot; another one only serves this command, until the
        // map read next says where it is.
        if (known_.contains(*target)) {
            const uint16_t master = map_->master_index(*target);
            if (master >= master_links_.size()) master_links_.resize(master + 1, nullptr);
            map_->owner[*slot] = master;
        }
        refresh("");
        dispatch(call, &*target);
    }

    /* Asks for a new map, from another node than AVOID if there is one:
     * now, or once the pause after the last one ends. */
    void refresh(const std::string& avoid) {
        if (!avoid.empty()) avoid_ = avoid;
        if (reading_) return;
        if (RouterClock::now() < next_refresh_) {
            refresh_wanted_ = true;
            return parking_.wake_at(next_refresh_);
        }
        refresh_wanted_ = false;
        std::vector<std::string>& nodes = reading_nodes_;
        nodes.clear();
        auto add = [&](const std::string& name) {
            if (name != avoid_ && std::find(nodes.begin(), nodes.end(), name) == nodes.end()) nodes.push_back(name);
        };
        if (map_) {
            for (const auto& master : map_->masters) add(master);
            for (const auto& replicas : map_->replicas) {
                for (const auto& replica : replicas) add(replica);
            }
        }
        for (const auto& seed : shared_->seeds) add(seed.name);
        if (!avoid_.empty()) nodes.push_back(avoid_);   // the last resort
        reading_ = std::make_shared<StaggeredAsk>(
            loop_, nodes.size(),
            [this](size_t position, RedisLink::Done reply, std::string& why) {
                return ask_map(reading_nodes_[position], std::move(reply), why);
            },
            [this](size_t position, LinkResult result, std::string& why) {
                return map_answered(position, std::move(result), why);
            },
            [this](const std::string& errors) { refresh_failed("no node gave the slot map: " + errors); });
        reading_->start();
    }

    /* Sends CLUSTER SLOTS to the node NAME, if it has a link. */
    bool ask_map(const std::string& name, RedisLink::Done reply, std::string& why) {
        RedisLink* link = link_to(name, why);
        if (!link) {
            why = "node " + name + ": " + why;
            return false;
        }
        const std::string_view command[] = {"CLUSTER", "SLOTS"};
        link->command(command, std::move(reply));
        return true;
    }

    /* The node at POSITION answered the current reading's CLUSTER SLOTS:
     * true when its map is installed. */
    bool map_answered(size_t position, LinkResult result, std::string& why) {
        // A copy: installing the map may begin the next reading.
        const std::string asked = reading_nodes_[position];
        std::string failure = result.ok ? result.reply.text : result.error;
        if (result.ok && result.reply.type != RedisReply::Type::error) {
            try {
                install(parse_cluster_slots(result.reply, split_node(asked)->first));
                return true;
            } catch (const StoreError& bad) {
                failure = bad.what();
            }
        }
        // A node that answers but gives no map (not in cluster mode, a map
        // refused) is news; one that does not answer, its link's to tell.
        if (result.ok) shared_->note_refusal(asked, failure);
        why = "node " + asked + ": " + failure;
        return false;
    }

    void install(SlotMap map) {
        end_reading();
        avoid_.clear();
        next_refresh_ = RouterClock::now() + kRefreshPause;
        shared_->note_map(map);
        map_ = std::make_unique<SlotMap>(std::move(map));
        master_links_.assign(map_->masters.size(), nullptr);
        learn_nodes();
        retire_strangers();
        if (refresh_wanted_) parking_.wake_at(next_refresh_);
        for (auto& call : parking_.release()) dispatch(std::move(call));
        auto waiting = std::move(waiting_masters_);
        for (auto& done : waiting) answer_masters(done);
    }

    void refresh_failed(const std::string& error) {
        end_reading();
        last_error_ = error;
        next_refresh_ = RouterClock::now() + kRefreshPause;
        if (map_) {
            // The map there stands: what waited for a new one goes by it
            // (else a refresh begun as each pause ends would hold them).
            for (auto& call : parking_.release()) dispatch(std::move(call));
        } else {
            // Waiting for a first map: its failure is theirs.
            for (auto& call : parking_.release()) {
                call->error = error;
                call->kind = error_kind::clusterdown;
                parking_.park(std::move(call));
            }
            if (!parking_.empty()) {
                refresh_wanted_ = true;
                parking_.wake_at(next_refresh_);
            }
        }
        auto waiting = std::move(waiting_masters_);
        for (auto& done : waiting) done({}, error);
    }

    /* The answers still to come to this reading are dropped (their links
     * stay, bounded as every node's). */
    void end_reading() { reading_.reset(); }

    void resume() {
        if (refresh_wanted_ && !reading_) refresh("");
        if (map_ && !reading_) {
            for (auto& call : parking_.release()) dispatch(std::move(call));
        }
    }

    void answer_masters(const Topology::MastersDone& done) {
        std::vector<LinkAddress> masters;
        for (size_t index = 0; index < map_->masters.size(); ++index) {
            const bool serves = std::find(map_->owner.begin(), map_->owner.end(), index) != map_->owner.end();
            if (!serves) continue;
            if (auto address = shared_->address_of(map_->masters[index])) masters.push_back(std::move(*address));
        }
        done(std::move(masters), "");
    }

    /* The nodes of the map, if any, and the seeds are the loop's known_. */
    void learn_nodes() {
        known_.clear();
        for (size_t index = 0; map_ && index < map_->masters.size(); ++index) {
            known_.insert(map_->masters[index]);
            known_.insert(map_->replicas[index].begin(), map_->replicas[index].end());
        }
        for (const auto& seed : shared_->seeds) known_.insert(seed.name);
    }

    /* The link to the node NAME, made on first use; null, with WHY, when
     * NAME is no address, or is a stranger (a node neither in the map
     * nor a seed) while kMaxStrangers links to strangers are busy.  A
     * stranger's link reports to no health: the command's error names
     * it, and the store's health is its map's nodes. */
    RedisLink* link_to(const std::string& name, std::string& why) {
        if (const auto found = links_.find(name); found != links_.end()) return found->second.get();
        auto address = shared_->address_of(name);
        if (!address) {
            why = "not an IP address and port";
            return nullptr;
        }
        const bool stranger = !known_.contains(name);
        if (stranger && !room_for_stranger(name, why)) return nullptr;
        RedisLink::Health health = stranger ? nullptr : shared_->health->reporter(node_label(name), true);
        auto& link = links_[name];
        link = std::make_shared<RedisLink>(loop_, std::move(*address), shared_->timeout, std::move(health));
        if (stranger) strangers_.push_back(name);
        return link.get();
    }

    /* Closes the oldest idle link to a stranger when there are
     * kMaxStrangers; false, with WHY, when all of them are busy. */
    bool room_for_stranger(const std::string& name, std::string& why) {
        if (strangers_.size() < kMaxStrangers) return true;
        shared_->note_crowded(name);
        const auto idle = std::find_if(strangers_.begin(), strangers_.end(),
                                       [this](const std::string& stranger) { return !links_.at(stranger)->busy(); });
        if (idle == strangers_.end()) {
            why = "the links to " + std::to_string(kMaxStrangers) + " nodes outside the slot map are busy";
            return false;
        }
        const auto link = links_.find(*idle);
        retired_.retire(std::move(link->second));
        links_.erase(link);
        strangers_.erase(idle);
        return true;
    }

    /* Links to nodes neither in the map nor seeds go (a node removed, or
     * an ASK target whose migration ended), and those made to a node as a
     * stranger (it reports to no health). */
    void retire_strangers() {
        for (auto it = links_.begin(); it != links_.end();) {
            const bool stranger = std::find(strangers_.begin(), strangers_.end(), it->first) != strangers_.end();
            if (known_.contains(it->first) && !stranger) {
                ++it;
            } else {
                retired_.retire(std::move(it->second));
                it = links_.erase(it);
            }
        }
        strangers_.clear();
    }

    EventLoop& loop_;
    std::shared_ptr<ClusterShared> shared_;
    std::unique_ptr<SlotMap> map_;                    // null until the first one is read
    std::vector<RedisLink*> master_links_;            // by master index, in links_
    std::unordered_map<std::string, std::shared_ptr<RedisLink>> links_;   // by node name
    std::set<std::string> known_;                     // the map's nodes and the seeds
    std::vector<std::string> strangers_;              // the other nodes in links_, oldest first
    std::shared_ptr<StaggeredAsk> reading_;           // while a map is asked for
    std::vector<std::string> reading_nodes_;          // what it asks, in order
    bool refresh_wanted_ = false;
    std::string avoid_;                               // the node that failed
    RouterClock::time_point next_refresh_{};
    std::string last_error_ = "no slot map read yet";
    std::vector<Topology::MastersDone> waiting_masters_;
    RetiredLinks retired_;
    Parking parking_;
};

ClusterTopology::ClusterTopology(const RedisServers& servers, Millis timeout)
    : RoutedTopology(std::make_shared<ClusterShared>(servers, timeout)) {}

ClusterTopology::~ClusterTopology() = default;

}  // namespace portcullis::store
