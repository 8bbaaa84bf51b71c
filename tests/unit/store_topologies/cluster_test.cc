/*
 * cluster_test.cc: the store on a Redis Cluster: key slots as Redis
 * computes them, CLUSTER SLOTS read into a slot map; against fake nodes,
 * redirects bounded per command, ASK followed without changing the map,
 * MOVED updating it, TRYAGAIN retried only until store.timeout; against
 * the real cluster, a slot migrated under the store and a master killed
 * (kill -9) while the store keeps running.
 */
#include "store/cluster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "deployments.h"
#include "store/redis_store.h"
#include "support/answering_redis.h"

namespace portcullis::store {
namespace {

using namespace std::chrono_literals;
using test_support::AnsweringRedis;
using test_support::add;
using test_support::add_error;
using test_support::add_on;
using test_support::kAddOne;
using Clock = std::chrono::steady_clock;

config::Config::Store cluster_of(const std::string& seeds, Millis timeout = 300ms) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.mode = config::StoreMode::cluster;
    settings.url = seeds;
    settings.prefix = "";
    settings.timeout = timeout;
    return settings;
}

RedisReply integer(long long value) {
    RedisReply reply;
    reply.type = RedisReply::Type::integer;
    reply.integer = value;
    return reply;
}

RedisReply text(std::string value) {
    RedisReply reply;
    reply.type = RedisReply::Type::string;
    reply.text = std::move(value);
    return reply;
}

RedisReply array(std::vector<RedisReply> elements) {
    RedisReply reply;
    reply.type = RedisReply::Type::array;
    reply.elements = std::move(elements);
    return reply;
}

TEST(ClusterKeySlot, IsWhatRedisComputes) {
    // The values of CLUSTER KEYSLOT on redis-server 7.0.
    EXPECT_EQ(key_slot("foo"), 12182);
    EXPECT_EQ(key_slot("bar"), 5061);
    EXPECT_EQ(key_slot("123456789"), 12739);
    EXPECT_EQ(key_slot("{user1000}.following"), 3443);
    EXPECT_EQ(key_slot("user1000"), 3443);
    EXPECT_EQ(key_slot("foo{}{bar}"), 8363);     // an empty tag: the whole key
    EXPECT_EQ(key_slot("foo{{bar}}zap"), 4015);  // the tag is "{bar"
    EXPECT_EQ(key_slot("foo{bar}{zap}"), 5061);  // the first tag only
    EXPECT_EQ(key_slot("{}"), 15257);
    EXPECT_EQ(key_slot("a{b"), 13340);
}

TEST(ClusterKeySlot, AgreesWithTheRealClusterOnTheStoresKeys) {
    auto& cluster = test_support::redis_cluster();
    for (const std::string key : {"pc:g:0123456789abcd", "pc:r:ffeeddccbbaa99", "mx:g:\x01\x02", "", "x"}) {
        EXPECT_EQ(std::to_string(key_slot(key)), cluster.node(cluster.layout().masters.front()).cli({"CLUSTER", "KEYSLOT", key}))
            << key;
    }
}

TEST(ClusterSlots, ReadsMastersReplicasAndRanges) {
    const auto node = [](std::string host, long long port) { return array({text(std::move(host)), integer(port)}); };
    const auto reply = array({
        array({integer(0), integer(5460), node("127.0.0.1", 7000), node("127.0.0.1", 7003)}),
        array({integer(5461), integer(10922), node("", 7001), node("127.0.0.1", 7004)}),
        array({integer(10923), integer(16383), node("::1", 7002)}),
        array({integer(16000), integer(16001), node("?", 7009)}),
    });
    const SlotMap map = parse_cluster_slots(reply, "127.0.0.9");
    EXPECT_EQ(map.masters, (std::vector<std::string>{"127.0.0.1:7000", "127.0.0.9:7001", "[::1]:7002"}));
    EXPECT_EQ(map.replicas[0], std::vector<std::string>{"127.0.0.1:7003"});
    EXPECT_EQ(map.masters[map.owner[0]], "127.0.0.1:7000");
    EXPECT_EQ(map.masters[map.owner[5461]], "127.0.0.9:7001");
    EXPECT_EQ(map.masters[map.owner[16383]], "[::1]:7002");
    EXPECT_EQ(map.describe(), "127.0.0.1:7000 0-5460; 127.0.0.9:7001 5461-10922; [::1]:7002 10923-16383");
}

TEST(ClusterSlots, RefusesWhatItCannotUse) {
    const auto refused = [](const RedisReply& reply) {
        try {
            parse_cluster_slots(reply, "127.0.0.1");
        } catch (const StoreError& error) {
            return std::string(error.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(refused(text("nonsense")), "CLUSTER SLOTS gave no array");
    EXPECT_EQ(refused(array({array({integer(0), integer(16384), array({text("127.0.0.1"), integer(7000)})})})),
              "CLUSTER SLOTS gave the slot range 0-16384");
    EXPECT_EQ(refused(array({array({integer(0), integer(9), array({text("redis-1.example"), integer(7000)})})})),
              "CLUSTER SLOTS names the node 'redis-1.example', not an IP address and port (set "
              "cluster-preferred-endpoint-type ip)");
    EXPECT_EQ(refused(array({array({integer(0), integer(9)})})),
              "CLUSTER SLOTS gave an entry without its slot range and master");
}

/* A fake node that owns every slot and answers every script with what
 * SCRIPT_REPLY gives (it gets the node's port). */
class FakeNode {
public:
    explicit FakeNode(std::function<std::string(int port)> script_reply)
        : server_([this, reply = std::move(script_reply)](const std::vector<std::string>& args) -> std::string {
              if (args[0] == "CLUSTER") return test_support::all_slots_on(server_.port());
              return reply(server_.port());
          }) {}

    AnsweringRedis& server() { return server_; }

private:
    AnsweringRedis server_;
};

TEST(ClusterRedirects, AreBoundedPerCommand) {
    FakeNode node([](int port) { return "-MOVED 3000 127.0.0.1:" + std::to_string(port) + "\r\n"; });
    RedisStore store(cluster_of(node.server().url()));
    const auto error = add_error(store, "k");
    EXPECT_EQ(error, "redis cluster: node " + node.server().name() + ": MOVED 3000 " + node.server().name() +
                         " (after 5 redirects)");
    EXPECT_EQ(node.server().count("EVALSHA"), 6u);
}

TEST(ClusterRedirects, AskSendsAskingToTheTargetAndLeavesTheMap) {
    AnsweringRedis target([](const std::vector<std::string>& args) -> std::string {
        return args[0] == "ASKING" ? "+OK\r\n" : ":1\r\n";
    });
    FakeNode node([&target](int) { return "-ASK 3000 " + target.name() + "\r\n"; });
    RedisStore store(cluster_of(node.server().url()));
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(node.server().count("EVALSHA"), 2u);   // asked first each time
    EXPECT_EQ(target.count("ASKING"), 2u);
    EXPECT_EQ(target.count("EVALSHA"), 2u);
}

TEST(ClusterRedirects, MovedSendsToTheNewMasterFromThenOn) {
    // Both nodes say the slots are the source's until it answered MOVED.
    std::atomic<int> owner{0};
    AnsweringRedis target([&owner](const std::vector<std::string>& args) -> std::string {
        return args[0] == "CLUSTER" ? test_support::all_slots_on(owner) : ":1\r\n";
    });
    AnsweringRedis source([&owner, &target](const std::vector<std::string>& args) -> std::string {
        if (args[0] == "CLUSTER") return test_support::all_slots_on(owner);
        owner = target.port();
        return "-MOVED 3000 " + target.name() + "\r\n";
    });
    owner = source.port();
    RedisStore store(cluster_of(source.url()));
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(source.count("EVALSHA"), 1u);
    EXPECT_EQ(target.count("EVALSHA"), 2u);
}

TEST(ClusterRetries, TryagainIsRetriedUntilTheTimeoutAndNoLonger) {
    FakeNode node([](int) { return std::string("-TRYAGAIN Multiple keys request during rehashing of slot\r\n"); });
    RedisStore store(cluster_of(node.server().url(), 300ms));
    const auto started = Clock::now();
    const auto error = add_error(store, "k");
    const auto took = Clock::now() - started;
    EXPECT_EQ(error, "redis cluster: node " + node.server().name() +
                         ": TRYAGAIN Multiple keys request during rehashing of slot");
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 900ms);
    EXPECT_GE(node.server().count("EVALSHA"), 4u);   // every 25 ms, the pace of a loaded box aside
}

TEST(ClusterRetries, ClusterdownThatEndsGivesTheAnswer) {
    std::atomic<int> refusals{3};
    FakeNode node([&refusals](int) {
        return refusals-- > 0 ? std::string("-CLUSTERDOWN The cluster is down\r\n") : std::string(":5\r\n");
    });
    RedisStore store(cluster_of(node.server().url(), 1s));
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"5"});
    EXPECT_EQ(node.server().count("EVALSHA"), 4u);
}

/* Moves the slot of KEY (already in the cluster) to another master the
 * way redis-cli --cluster reshard does, checking on the way that the store
 * follows ASK while the slot migrates and MOVED once it moved. */
TEST(ClusterLive, SlotMigratedUnderTheStoreIsFollowed) {
    auto& cluster = test_support::redis_cluster();
    RedisStore store(cluster_of(cluster.seeds(), 1s));
    const std::string key = "{migrating}" + test_support::test_prefix();
    const std::string fresh = key + ":fresh";
    const int slot = key_slot(key);
    EXPECT_EQ(add(store, key), std::vector<std::string>{"1"});
    const int source = cluster.master_of(slot);
    int destination = 0;
    for (const int master : cluster.layout().masters) {
        if (master != source) destination = master;
    }
    auto& from = cluster.node(source);
    auto& to = cluster.node(destination);
    const std::string slot_text = std::to_string(slot);
    ASSERT_EQ(to.cli({"CLUSTER", "SETSLOT", slot_text, "IMPORTING", cluster.id_of(source)}), "OK");
    ASSERT_EQ(from.cli({"CLUSTER", "SETSLOT", slot_text, "MIGRATING", cluster.id_of(destination)}), "OK");

    // Migrating: the key still on the source is served there; a key not
    // there is ASKed of the destination, which creates it.
    EXPECT_EQ(add(store, key), std::vector<std::string>{"2"});
    EXPECT_EQ(add(store, fresh), std::vector<std::string>{"1"});
    EXPECT_TRUE(from.cli({"EXISTS", fresh}).starts_with("ASK ")) << "the source holds the new key";

    ASSERT_EQ(from.cli({"MIGRATE", "127.0.0.1", std::to_string(destination), "", "0", "5000", "KEYS", key}), "OK");
    for (const int master : cluster.layout().masters) {
        cluster.node(master).cli({"CLUSTER", "SETSLOT", slot_text, "NODE", cluster.id_of(destination)});
    }
    // Moved: the source answers MOVED; the store goes on at the destination.
    EXPECT_EQ(add(store, key), std::vector<std::string>{"3"});
    EXPECT_EQ(add(store, fresh), std::vector<std::string>{"2"});   // 1: it was made on the source
    EXPECT_EQ(to.cli({"GET", key}), "3");
    cluster.wait_until_ok();
}

/* kill -9 of the master of a key: the store fails while the cluster
 * fails over, then serves from the promoted replica, whose script cache
 * is empty (NOSCRIPT, then EVAL), without a new store. */
TEST(ClusterLive, KilledMasterFailsOverAndTheStoreServesAgain) {
    auto& cluster = test_support::redis_cluster();
    test_support::LoopThread loop;
    RedisStore store(cluster_of(cluster.seeds(), 300ms));
    const std::string key = "{killed}" + test_support::test_prefix();
    EXPECT_EQ(loop.run(store, kAddOne, key).values, std::vector<std::string>{"1"});
    const int victim = cluster.master_of(key_slot(key));
    cluster.node(victim).stop();
    const auto killed = Clock::now();
    int failures = 0;
    std::vector<std::string> answer;
    while (Clock::now() - killed < 30s) {
        auto result = loop.run(store, kAddOne, key);
        if (!result.error) {
            answer = std::move(result.values);
            break;
        }
        ++failures;
        std::this_thread::sleep_for(20ms);
    }
    const auto recovered = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
    std::printf("cluster: kill -9 of master %d: %d failed calls, first answer after %lld ms\n", victim, failures,
                static_cast<long long>(recovered.count()));
    EXPECT_GT(failures, 0);
    // The replica had the key (replication is fast when idle): 2.  A lost
    // write would be 1; both are what a failover may give.
    ASSERT_FALSE(answer.empty()) << "no answer within 30 s of the kill";
    EXPECT_TRUE(answer[0] == "2" || answer[0] == "1") << answer[0];
    EXPECT_NE(cluster.master_of(key_slot(key)), victim);

    cluster.node(victim).start();   // it rejoins as a replica
    cluster.wait_until_ok();
}

}  // namespace
}  // namespace portcullis::store
