/*
 * deployments.h: the Redis deployments of this suite, each started once
 * for the whole process (a cluster takes seconds to form): a standalone
 * redis-server, a Sentinel group and a Cluster (support/redis_topologies.h),
 * and the store settings that reach each.
 *
 * Tests keep apart by their keys (store.prefix names the test), never by
 * emptying a deployment.  A test that kills or fails over a server leaves
 * the deployment serving again (wait_until_ok(), master()) before it
 * ends, so the next test finds it whole, though perhaps with another
 * master.  LoopThread is a loop that lives as long as a test, for the
 * tests of what a store remembers between calls.  kAddOne counts calls on
 * a key; add(), add_on() and add_error() run it.  paused_servers() are
 * fake servers that never answer (urls_of() lists them in store.url,
 * asked() counts what they got); logged() counts log lines, and
 * logged_past_late_answers() those of calls that leave answers to come.
 */
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "store/store.h"
#include "support/answering_redis.h"
#include "support/redis_topologies.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

enum class Topology { memory, standalone, sentinel, cluster };

inline std::string topology_name(const testing::TestParamInfo<Topology>& param) {
    switch (param.param) {
        case Topology::memory: return "memory";
        case Topology::standalone: return "standalone";
        case Topology::sentinel: return "sentinel";
        case Topology::cluster: return "cluster";
    }
    return "unknown";
}

inline RedisServer& standalone_redis() {
    static RedisServer server;
    return server;
}

inline SentinelGroup& sentinel_group() {
    static SentinelGroup group;
    return group;
}

inline RedisCluster& redis_cluster() {
    static RedisCluster cluster;
    return cluster;
}

/* The store settings for TOPOLOGY (not memory), keys under PREFIX.  The
 * timeout is generous: the suite runs beside builds on a small box. */
inline config::Config::Store redis_settings(Topology topology, const std::string& prefix,
                                            Millis timeout = std::chrono::seconds(1)) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.prefix = prefix;
    settings.timeout = timeout;
    switch (topology) {
        case Topology::memory:
        case Topology::standalone: settings.url = standalone_redis().url(); break;
        case Topology::sentinel:
            settings.mode = config::StoreMode::sentinel;
            settings.url = sentinel_group().urls();
            settings.master = SentinelGroup::kMasterName;
            break;
        case Topology::cluster:
            settings.mode = config::StoreMode::cluster;
            settings.url = redis_cluster().seeds();
            break;
    }
    return settings;
}

/* "t:SUITE.NAME/PARAM:": the prefix of the running test's keys. */
inline std::string test_prefix() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    return std::string("t:") + info->test_suite_name() + "." + info->name() + ":";
}

/* An event loop on a thread of its own for as long as it lives, as a
 * daemon's loop is: a store keeps on it what it learnt (links, the
 * master, the slot map) from one call to the next, where run_blocking()
 * starts afresh on a new loop each time. */
class LoopThread {
public:
    LoopThread() : thread_([this] { loop_.run(); }) {}
    ~LoopThread() {
        loop_.stop();
        thread_.join();
    }
    LoopThread(const LoopThread&) = delete;
    LoopThread& operator=(const LoopThread&) = delete;

    /* SCRIPT on KEY run by STORE on this loop, waited for. */
    store::StoreResult run(store::Store& store, const store::Script& script, const std::string& key,
                           std::vector<std::string> args = {}) {
        std::promise<store::StoreResult> answer;
        loop_.post([&] {
            store.run(script, key, store::now_ms(), args,
                      [&answer](store::StoreResult result) { answer.set_value(std::move(result)); });
        });
        return answer.get_future().get();
    }

private:
    EventLoop loop_;
    std::thread thread_;
};

/* Adds one to the key; returns the count. */
inline std::vector<std::string> add_one(store::Record& record, int64_t, std::span<const std::string>) {
    record.value = std::to_string((record.value ? std::stoll(*record.value) : 0) + 1);
    return {*record.value};
}

inline const store::Script kAddOne{"add-one", "return redis.call('INCR', KEYS[1])", add_one};

/* kAddOne on KEY, on a loop of its own; throws StoreError. */
inline std::vector<std::string> add(store::Store& store, const std::string& key) {
    return store::run_blocking(store, kAddOne, key, store::now_ms(), {});
}

/* kAddOne on KEY by STORE on LOOP; throws StoreError. */
inline std::vector<std::string> add_on(LoopThread& loop, store::Store& store, const std::string& key) {
    auto result = loop.run(store, kAddOne, key);
    if (result.error) throw store::StoreError(*result.error);
    return std::move(result.values);
}

/* Why kAddOne on KEY fails; a test failure when it does not. */
inline std::string add_error(store::Store& store, const std::string& key) {
    try {
        add(store, key);
    } catch (const store::StoreError& error) {
        return error.what();
    }
    ADD_FAILURE() << "no StoreError";
    return "";
}

/* COUNT servers that read every command and answer none, as under CLIENT
 * PAUSE or behind a lost route. */
inline std::vector<std::unique_ptr<AnsweringRedis>> paused_servers(size_t count) {
    std::vector<std::unique_ptr<AnsweringRedis>> servers;
    while (servers.size() < count) {
        servers.push_back(std::make_unique<AnsweringRedis>([](const std::vector<std::string>&) { return std::string(); }));
    }
    return servers;
}

/* store.url: the PAUSED servers, then LAST. */
inline std::string urls_of(const std::vector<std::unique_ptr<AnsweringRedis>>& paused, const std::string& last) {
    std::string urls;
    for (const auto& server : paused) urls += server->url() + ", ";
    return urls + last;
}

/* How many COMMANDs SERVERS got. */
inline size_t asked(const std::vector<std::unique_ptr<AnsweringRedis>>& servers, const std::string& command) {
    size_t count = 0;
    for (const auto& server : servers) count += server->count(command);
    return count;
}

/* The lines logged while RUN ran that hold WHAT. */
inline int logged(const std::function<void()>& run, const std::string& what) {
    testing::internal::CaptureStderr();
    run();
    const std::string log = testing::internal::GetCapturedStderr();
    int lines = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++lines;
    return lines;
}

/* Three calls of kAddOne on "k", each answered 1, for a server that
 * answers 300 ms late, one ask after the other: the first on a loop that
 * ends before its answer, two on a loop that lives on, 900 ms apart (both
 * late answers come between); the lines logged meanwhile that hold WHAT. */
inline int logged_past_late_answers(store::Store& store, const std::string& what) {
    LoopThread loop;
    return logged(
        [&] {
            EXPECT_EQ(add(store, "k"), std::vector<std::string>{"1"});
            EXPECT_EQ(add_on(loop, store, "k"), std::vector<std::string>{"1"});
            std::this_thread::sleep_for(std::chrono::milliseconds(900));
            EXPECT_EQ(add_on(loop, store, "k"), std::vector<std::string>{"1"});
        },
        what);
}

}  // namespace portcullis::test_support
