/*
 * sentinel_test.cc: the store behind Redis Sentinel.  Against fakes: a
 * dead sentinel skipped (and, down, not making the master be sought
 * again), an unknown master name, a master whose ROLE is
 * not master (nothing written there), READONLY sending the store back to
 * the sentinels, the master found past sentinels that do not answer (at
 * most 4 waited for at once) and their late answers dropped.  Against the real group: writes land on the master the
 * sentinels name, SENTINEL FAILOVER followed, kill -9 of the master
 * followed and the old master, restarted, never written to, and
 * passwords for the sentinels and for an ACL user of the data servers.
 */
#include "store/sentinel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
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
using test_support::asked;
using test_support::kAddOne;
using test_support::logged_past_late_answers;
using test_support::LoopThread;
using test_support::paused_servers;
using test_support::SentinelGroup;
using test_support::urls_of;
using Clock = std::chrono::steady_clock;

config::Config::Store sentinels_at(const std::string& urls, const std::string& master = SentinelGroup::kMasterName,
                                   Millis timeout = 300ms) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.mode = config::StoreMode::sentinel;
    settings.url = urls;
    settings.master = master;
    settings.prefix = "";
    settings.timeout = timeout;
    return settings;
}

/* RESP of a sentinel naming 127.0.0.1:PORT as the master. */
std::string master_at(int port) {
    const std::string text = std::to_string(port);
    return "*2\r\n$9\r\n127.0.0.1\r\n$" + std::to_string(text.size()) + "\r\n" + text + "\r\n";
}

const std::string kRoleMaster = "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n";

/* A master whose every script answers VALUE (RESP). */
AnsweringRedis::Answer master_answering(std::string value) {
    return [value = std::move(value)](const std::vector<std::string>& args) {
        return args[0] == "ROLE" ? kRoleMaster : value;
    };
}

/* A sentinel that names MASTER, at once, to every command. */
AnsweringRedis::Answer naming(const AnsweringRedis& master) {
    return [port = master.port()](const std::vector<std::string>&) { return master_at(port); };
}

/* A master whose every script answers 1, named by a sentinel listed
 * after one that is down. */
struct BehindADeadSentinel {
    AnsweringRedis master{master_answering(":1\r\n")};
    AnsweringRedis sentinel{naming(master)};
    RedisStore store{
        sentinels_at("redis://127.0.0.1:" + std::to_string(test_support::free_port()) + ", " + sentinel.url())};
};

TEST(SentinelFake, ADeadSentinelIsSkippedAndTheNextAsked) {
    BehindADeadSentinel group;
    EXPECT_EQ(add(group.store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(add(group.store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(group.master.count("ROLE"), 2u);   // each run_blocking is a loop of its own, which asks anew
}

/* One sentinel of two down, as a quorum allows: each try to watch it
 * fails, which must not make one loop look for its master again (it
 * missed no news): one ROLE over 2.5 s of calls, where each failed try,
 * a second apart, used to cost one. */
TEST(SentinelFake, ASentinelThatIsDownDoesNotMakeTheMasterBeSoughtAgain) {
    BehindADeadSentinel group;
    LoopThread loop;
    for (const auto until = Clock::now() + 2500ms; Clock::now() < until;) {
        EXPECT_EQ(add_on(loop, group.store, "k"), std::vector<std::string>{"1"});
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(group.master.count("ROLE"), 1u);
    EXPECT_GE(group.sentinel.count("SUBSCRIBE"), 1u);
}

TEST(SentinelFake, AnUnknownMasterIsANoMasterErrorNamingEverySentinel) {
    AnsweringRedis first([](const std::vector<std::string>&) { return std::string("*-1\r\n"); });
    AnsweringRedis second([](const std::vector<std::string>&) { return std::string("-ERR No such master with that name\r\n"); });
    RedisStore store(sentinels_at(first.url() + "," + second.url(), "nosuch"));
    EXPECT_EQ(add_error(store, "k"), "redis sentinel nosuch: no sentinel named the master: sentinel " + first.name() +
                                         " does not know the master; sentinel " + second.name() +
                                         " ERR No such master with that name");
}

TEST(SentinelFake, NothingIsWrittenToAServerWhoseRoleIsNotMaster) {
    AnsweringRedis replica([](const std::vector<std::string>& args) -> std::string {
        if (args[0] == "ROLE") return "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:10\r\n";
        return ":1\r\n";
    });
    AnsweringRedis sentinel([&replica](const std::vector<std::string>&) { return master_at(replica.port()); });
    RedisStore store(sentinels_at(sentinel.url()));
    EXPECT_EQ(add_error(store, "k"),
              "redis sentinel mymaster: the sentinels name " + replica.name() + ", but its ROLE is 'slave'");
    EXPECT_EQ(replica.count("EVALSHA") + replica.count("EVAL"), 0u);
}

/* A master demoted under the store answers READONLY: the store asks the
 * sentinels again and writes to the new master within the same call. */
TEST(SentinelFake, ReadonlySendsTheStoreBackToTheSentinels) {
    std::atomic<int> named{0};
    AnsweringRedis fresh(master_answering(":7\r\n"));
    AnsweringRedis old([&named, &fresh](const std::vector<std::string>& args) -> std::string {
        if (args[0] == "ROLE") return kRoleMaster;
        named = fresh.port();
        return "-READONLY You can't write against a read only replica.\r\n";
    });
    named = old.port();
    AnsweringRedis sentinel([&named](const std::vector<std::string>&) { return master_at(named); });
    RedisStore store(sentinels_at(sentinel.url(), SentinelGroup::kMasterName, 1s));
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"7"});
    EXPECT_EQ(old.count("EVALSHA"), 1u);
    EXPECT_EQ(fresh.count("EVALSHA"), 1u);
    EXPECT_EQ(sentinel.count("SENTINEL"), 2u);
}

/* A master whose every script answers 1, named by a sentinel listed
 * after COUNT that do not answer (paused); store.timeout 1 s. */
struct BehindPausedSentinels {
    explicit BehindPausedSentinels(size_t count) : paused(paused_servers(count)) {}

    std::vector<std::unique_ptr<AnsweringRedis>> paused;
    AnsweringRedis master{master_answering(":1\r\n")};
    AnsweringRedis good{naming(master)};
    RedisStore store{sentinels_at(urls_of(paused, good.url()), SentinelGroup::kMasterName, 1s)};
};

/* Sentinels that do not answer hold the search for the master no longer
 * than it takes to ask past them (50 ms each): the first command is
 * answered through the fourth sentinel well within store.timeout, where
 * asking each in turn took 3 times that. */
TEST(SentinelFake, SentinelsThatDoNotAnswerDoNotHoldTheMaster) {
    BehindPausedSentinels group(3);
    auto& [paused, master, good, store] = group;
    const auto started = Clock::now();
    EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
    EXPECT_LT(Clock::now() - started, 600ms);
    EXPECT_EQ(asked(paused, "SENTINEL"), 3u);
    EXPECT_EQ(good.count("SENTINEL"), 1u);
    EXPECT_EQ(master.count("ROLE"), 1u);
}

/* A search waits for at most 4 sentinels at once: with 5 that do not
 * answer first, the 5th is asked only when one of the 4 fails (after
 * store.timeout), and the good one after that. */
TEST(SentinelFake, ASearchWaitsForAtMostFourSentinelsAtOnce) {
    BehindPausedSentinels group(5);
    auto& [paused, master, good, store] = group;
    LoopThread loop;
    auto first = std::async(std::launch::async, [&] { return loop.run(store, kAddOne, "k"); });
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(asked(paused, "SENTINEL"), 4u);
    EXPECT_EQ(paused[4]->count("SENTINEL"), 0u);
    EXPECT_EQ(first.get().error, "redis sentinel mymaster: no master found yet");
    std::this_thread::sleep_for(500ms);   // the 4 fail by 1150 ms, the rest are asked
    EXPECT_EQ(add_on(loop, store, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(asked(paused, "SENTINEL"), 5u);
    EXPECT_EQ(good.count("SENTINEL"), 1u);
}

/* A sentinel that answers late, after another one named the master: its
 * answer (here an old master, still saying "master" to ROLE) is dropped,
 * never asked for its ROLE nor written to, whether the loop that asked
 * still runs or is gone by then. */
TEST(SentinelFake, AMasterNamedAfterTheSearchEndedIsDropped) {
    AnsweringRedis old(master_answering(":2\r\n"));
    AnsweringRedis fresh(master_answering(":1\r\n"));
    AnsweringRedis slow([port = old.port()](const std::vector<std::string>& args) -> std::string {
        if (args[0] == "SENTINEL") std::this_thread::sleep_for(300ms);
        return master_at(port);
    });
    AnsweringRedis good(naming(fresh));
    RedisStore store(sentinels_at(slow.url() + ", " + good.url(), SentinelGroup::kMasterName, 1s));
    const int moves = logged_past_late_answers(store, "master moved");
    EXPECT_EQ(slow.count("SENTINEL"), 2u);
    EXPECT_EQ(old.count("ROLE"), 0u);
    EXPECT_EQ(fresh.count("EVALSHA"), 3u);
    EXPECT_EQ(moves, 0);
}

/* Counts KEY every 20 ms until a call is answered; the time since SINCE
 * and the failures seen, printed with WHAT. */
std::pair<Millis, int> until_answered(LoopThread& loop, Store& store, const std::string& key, const std::string& what,
                                      Clock::time_point since) {
    int failures = 0;
    while (Clock::now() - since < 30s) {
        try {
            add_on(loop, store, key);
            break;
        } catch (const StoreError&) {
            ++failures;
            std::this_thread::sleep_for(20ms);
        }
    }
    const auto took = std::chrono::duration_cast<Millis>(Clock::now() - since);
    std::printf("sentinel: %s: %d failed calls, first answer after %lld ms\n", what.c_str(), failures,
                static_cast<long long>(took.count()));
    return {took, failures};
}

TEST(SentinelLive, WritesLandOnTheMasterTheSentinelsName) {
    auto& group = test_support::sentinel_group();
    RedisStore store(sentinels_at(group.urls()));
    const std::string key = test_support::test_prefix();
    EXPECT_EQ(add(store, key), std::vector<std::string>{"1"});
    EXPECT_EQ(group.data_cli(group.master(), {"GET", key}), "1");
    EXPECT_NO_THROW(store.ping());
}

/* "cmdstat_evalsha:calls=N" of the data server on PORT: the scripts the
 * store ran there. */
std::string evalsha_calls(SentinelGroup& group, int port) {
    for (const auto& line : test_support::lines_of(group.data_cli(port, {"INFO", "commandstats"}))) {
        if (line.starts_with("cmdstat_evalsha:")) return line.substr(0, line.find(','));
    }
    return "none";
}

/* SENTINEL FAILOVER under writes every 20 ms from one loop: they go on,
 * on the new master as soon as the sentinels announce it; the old one,
 * still a master for seconds more, gets none of them. */
TEST(SentinelLive, SentinelFailoverIsFollowed) {
    auto& group = test_support::sentinel_group();
    LoopThread loop;
    RedisStore store(sentinels_at(group.urls()));
    const std::string key = test_support::test_prefix();
    const int before = group.master();
    add_on(loop, store, key + ":warm-up");
    ASSERT_EQ(group.sentinel_cli(0, {"SENTINEL", "FAILOVER", SentinelGroup::kMasterName}), "OK");
    const auto started = Clock::now();
    int answered = 0;
    int failures = 0;
    int answered_after_switch = 0;
    std::optional<Clock::time_point> switched_at;
    std::string scripts_on_old;   // its EVALSHA count half a second after the switch
    while (Clock::now() - started < 30s && answered_after_switch < 25) {
        const auto named = test_support::lines_of(
            group.sentinel_cli(1, {"SENTINEL", "get-master-addr-by-name", SentinelGroup::kMasterName}));
        if (!switched_at && named.size() == 2 && named[1] != std::to_string(before)) switched_at = Clock::now();
        if (switched_at && scripts_on_old.empty() && Clock::now() - *switched_at > 500ms) {
            scripts_on_old = evalsha_calls(group, before);
        }
        try {
            add_on(loop, store, key);
            ++answered;
            if (switched_at) ++answered_after_switch;
        } catch (const StoreError&) {
            ++failures;
        }
        std::this_thread::sleep_for(20ms);
    }
    std::printf("sentinel: SENTINEL FAILOVER: %d writes answered, %d failed, in %lld ms\n", answered, failures,
                static_cast<long long>(std::chrono::duration_cast<Millis>(Clock::now() - started).count()));
    ASSERT_EQ(answered_after_switch, 25);
    // The old master, demoted only later, got no write after the switch.
    EXPECT_EQ(evalsha_calls(group, before), scripts_on_old);
    const int after = group.master();
    ASSERT_NE(after, before);
    // The last writes before the switch may be lost (asynchronous
    // replication); those after it are all on the new master.
    const int kept = std::stoi(group.data_cli(after, {"GET", key}));
    EXPECT_LE(kept, answered);
    EXPECT_GE(kept, answered_after_switch);
    group.wait_until_settled();
    EXPECT_EQ(test_support::lines_of(group.data_cli(before, {"ROLE"})).front(), "slave");
}

/* kill -9 of the master under one loop's writes; once a replica took
 * over, the old master starts again, as a master, and says so to ROLE
 * until the sentinels demote it.  No write may go there: not from the
 * busy loop, not from a loop that was idle all along with a connection to
 * the old address, not from a new store. */
TEST(SentinelLive, KilledMasterIsReplacedAndTheRestartedOneNeverWrittenTo) {
    auto& group = test_support::sentinel_group();
    LoopThread busy;
    LoopThread idle;
    RedisStore store(sentinels_at(group.urls()));
    const std::string key = test_support::test_prefix();
    add_on(busy, store, key);
    add_on(idle, store, key);
    const int old_master = group.master();
    group.server(old_master).stop();
    const auto killed = Clock::now();
    const auto [took, failures] = until_answered(busy, store, key, "kill -9 of the master", killed);
    EXPECT_GT(failures, 0);
    EXPECT_LT(took, 20s);
    ASSERT_NE(group.master(), old_master);

    // Started again as a master (as its own configuration would say; this
    // one may have been a replica once, so it is told).
    group.server(old_master).start();
    group.data_cli(old_master, {"REPLICAOF", "NO", "ONE"});
    ASSERT_EQ(test_support::lines_of(group.data_cli(old_master, {"ROLE"})).front(), "master");
    RedisStore fresh_store(sentinels_at(group.urls()));
    std::vector<std::string> written;
    for (int i = 0; i < 10; ++i) {
        for (const char* who : {"busy", "idle", "fresh"}) {
            written.push_back(key + ":" + who + ":" + std::to_string(i));
            if (who == std::string("busy")) add_on(busy, store, written.back());
            else if (who == std::string("idle")) add_on(idle, store, written.back());
            else add(fresh_store, written.back());
        }
    }
    // Still a master, and none of those keys went there.
    const bool still_master = test_support::lines_of(group.data_cli(old_master, {"ROLE"})).front() == "master";
    size_t on_old_master = 0;
    for (const auto& name : written) on_old_master += group.data_cli(old_master, {"EXISTS", name}) == "1";
    std::printf("sentinel: restarted old master (%s): %zu of %zu new keys on it\n",
                still_master ? "still says master" : "demoted already", on_old_master, written.size());
    EXPECT_TRUE(still_master) << "the test came too late to prove anything";
    EXPECT_EQ(on_old_master, 0u);
    for (const auto& name : written) EXPECT_EQ(group.data_cli(group.master(), {"EXISTS", name}), "1") << name;
    group.wait_until_settled();
}

TEST(SentinelLive, PasswordsForTheSentinelsAndAnAclUserOfTheMaster) {
    SentinelGroup group({"datapw", "sentinelpw", "portcullis", "userpw"});
    auto settings = sentinels_at(group.urls());
    settings.user = "portcullis";
    settings.password = "userpw";
    RedisStore store(settings);
    EXPECT_EQ(add(store, "authenticated"), std::vector<std::string>{"1"});
    EXPECT_EQ(group.data_cli(group.master(), {"GET", "authenticated"}), "1");

    settings.password = "wrong";
    RedisStore refused(settings);
    EXPECT_NE(add_error(refused, "authenticated").find("AUTH refused"), std::string::npos);
    settings = sentinels_at(group.urls());
    settings.url = "redis://127.0.0.1:" + std::to_string(group.sentinel(0).port());   // no sentinel password
    RedisStore no_sentinel_password(settings);
    EXPECT_NE(add_error(no_sentinel_password, "authenticated").find("NOAUTH"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::store
