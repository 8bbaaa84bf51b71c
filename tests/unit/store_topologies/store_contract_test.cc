/*
 * store_contract_test.cc: what every Store must do, held against the
 * memory store and Redis standalone, behind Sentinel and as a Cluster:
 * scripts on strings and hashes and their expiry, the wrong kind of key,
 * SCAN by prefix over every master, erase, ping, scripts a server forgot,
 * binary values, many loops on one key, and greylist and rate-limit
 * decisions that must be the memory store's.
 */
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <set>
#include <thread>

#include "checks/greylist.h"
#include "checks/ratelimit.h"
#include "deployments.h"
#include "support/counter_script.h"
#include "support/memory_limit.h"
#include "store/cluster.h"
#include "store/memory_store.h"
#include "store/redis_store.h"
#include "util/event_loop.h"

namespace portcullis::store {
namespace {

using test_support::Topology;

using test_support::kCounterScript;

/* Sets the value ARGS[0] without expiry; returns it read back. */
std::vector<std::string> put_apply(Record& record, int64_t, std::span<const std::string> args) {
    record.value = args[0];
    record.expires_at_ms = 0;
    return {*record.value};
}

const Script kPut{"put", R"lua(
redis.call('SET', KEYS[1], ARGV[2])
return redis.call('GET', KEYS[1])
)lua",
                  put_apply};

/* Sets field ARGS[0] to ARGS[1] (or removes it when ARGS[1] is ""), the
 * key expiring ARGS[2] ms after now; returns the field count. */
std::vector<std::string> field_apply(HashRecord& record, int64_t now, std::span<const std::string> args) {
    if (args[1].empty()) record.erase(args[0]);
    else record.set(args[0], args[1]);
    if (!record.fields().empty()) record.expire_at(now + std::stoll(args[2]));
    return {std::to_string(record.fields().size())};
}

const HashScript kField{"field", R"lua(
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[2]) else redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
local count = redis.call('HLEN', KEYS[1])
if count > 0 then redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[4])) end
return count
)lua",
                        field_apply};

/* START(done) on a loop of this call's own, served until done(VALUE). */
template <typename T>
T on_own_loop(const std::function<void(std::function<void(T)>)>& start) {
    EventLoop loop;
    std::optional<T> got;
    loop.post([&] { start([&got](T value) { got = std::move(value); }); });
    loop.run_until([&got] { return got.has_value(); });
    return std::move(*got);
}

class StoreContract : public testing::TestWithParam<Topology> {
protected:
    void SetUp() override { store_ = make_store(GetParam()); }

    static std::unique_ptr<Store> make_store(Topology topology) {
        if (topology == Topology::memory) return std::make_unique<MemoryStore>("", test_support::kMemoryLimit);
        return std::make_unique<RedisStore>(test_support::redis_settings(topology, test_support::test_prefix()));
    }

    template <typename AnyScript>
    std::vector<std::string> run(const AnyScript& script, std::string_view key, std::vector<std::string> args) {
        return run_blocking(*store_, script, key, now_ms(), args);
    }

    template <typename AnyScript>
    std::string run_error(const AnyScript& script, std::string_view key, std::vector<std::string> args) {
        try {
            run(script, key, std::move(args));
        } catch (const StoreError& error) {
            return error.what();
        }
        ADD_FAILURE() << "no StoreError";
        return "";
    }

    /* Every data server of the deployment, to act on behind the store's back. */
    std::vector<test_support::RedisServer*> servers() {
        switch (GetParam()) {
            case Topology::memory: return {};
            case Topology::standalone: return {&test_support::standalone_redis()};
            case Topology::sentinel: {
                auto& group = test_support::sentinel_group();
                const int master = group.master();
                return {&group.server(master)};
            }
            case Topology::cluster: {
                auto& cluster = test_support::redis_cluster();
                std::vector<test_support::RedisServer*> masters;
                for (const int port : cluster.layout().masters) masters.push_back(&cluster.node(port));
                return masters;
            }
        }
        return {};
    }

    std::unique_ptr<Store> store_;
};

TEST_P(StoreContract, ScriptCountsAndItsExpiryIsWhatScanSees) {
    const int64_t before = now_ms();
    const auto first = run(kCounterScript, "c:1", {"1", "60000"});
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0], "1");
    EXPECT_EQ(run(kCounterScript, "c:1", {"41", "60000"})[0], "42");
    std::vector<Entry> seen;
    store_->scan("c:", [&seen](const Entry& entry) { seen.push_back(entry); });
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].key, "c:1");
    EXPECT_EQ(seen[0].value, "42");
    // Redis gives the TTL, read a moment later: the expiry is near enough.
    EXPECT_GE(seen[0].expires_at_ms, before + 59000);
    EXPECT_LE(seen[0].expires_at_ms, now_ms() + 60000);
}

TEST_P(StoreContract, HashScriptsSetFieldsAndTheLastFieldGoneIsTheKeyGone) {
    EXPECT_EQ(run(kField, "h:1", {"a", "one", "60000"}), std::vector<std::string>{"1"});
    EXPECT_EQ(run(kField, "h:1", {"b", "two", "60000"}), std::vector<std::string>{"2"});
    std::vector<HashEntry> seen;
    store_->scan_hashes("h:", [&seen](const HashEntry& hash) { seen.push_back(hash); });
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].fields, (Fields{{"a", "one"}, {"b", "two"}}));
    EXPECT_GT(seen[0].expires_at_ms, now_ms());
    run(kField, "h:1", {"a", "", "60000"});
    EXPECT_EQ(run(kField, "h:1", {"b", "", "60000"}), std::vector<std::string>{"0"});
    seen.clear();
    store_->scan_hashes("h:", [&seen](const HashEntry& hash) { seen.push_back(hash); });
    EXPECT_TRUE(seen.empty());
    EXPECT_FALSE(store_->erase("h:1"));
}

TEST_P(StoreContract, ScriptOnAKeyOfTheOtherKindFails) {
    run(kField, "k:hash", {"a", "one", "60000"});
    EXPECT_NE(run_error(kCounterScript, "k:hash", {"1", "60000"}).find("WRONGTYPE"), std::string::npos);
    run(kCounterScript, "k:string", {"1", "60000"});
    EXPECT_NE(run_error(kField, "k:string", {"a", "one", "60000"}).find("WRONGTYPE"), std::string::npos);
}

TEST_P(StoreContract, ScanSelectsByPrefixOnEveryMaster) {
    for (int i = 0; i < 150; ++i) run(kCounterScript, "s:" + std::to_string(i), {std::to_string(i), "60000"});
    for (int i = 0; i < 60; ++i) run(kField, "sh:" + std::to_string(i), {"f", std::to_string(i), "60000"});
    for (int i = 0; i < 5; ++i) run(kCounterScript, "other:" + std::to_string(i), {"1", "60000"});
    std::map<std::string, std::string> strings;
    store_->scan("s:", [&strings](const Entry& entry) { strings[entry.key] = entry.value; });
    ASSERT_EQ(strings.size(), 150u);
    for (int i = 0; i < 150; ++i) EXPECT_EQ(strings["s:" + std::to_string(i)], std::to_string(i));
    size_t hashes = 0;
    store_->scan_hashes("sh:", [&hashes](const HashEntry& hash) {
        ++hashes;
        EXPECT_EQ(hash.fields.at("f"), hash.key.substr(3));
    });
    EXPECT_EQ(hashes, 60u);
    size_t others = 0;
    store_->scan("other:", [&others](const Entry&) { ++others; });
    EXPECT_EQ(others, 5u);
    if (GetParam() == Topology::cluster) {
        // The keys spread over every master, and scan found them there.
        for (auto* master : servers()) {
            EXPECT_NE(master->cli({"--scan", "--pattern", test_support::test_prefix() + "s:*"}), "")
                << "master " << master->port() << " holds none of the keys";
        }
    }
}

TEST_P(StoreContract, EraseSaysWhetherTheKeyExisted) {
    run(kCounterScript, "e:string", {"1", "60000"});
    run(kField, "e:hash", {"a", "one", "60000"});
    EXPECT_TRUE(store_->erase("e:string"));
    EXPECT_TRUE(store_->erase("e:hash"));
    EXPECT_FALSE(store_->erase("e:string"));
    EXPECT_FALSE(store_->erase("e:never"));
    EXPECT_EQ(run(kCounterScript, "e:string", {"1", "60000"})[0], "1");
}

TEST_P(StoreContract, PingAnswers) { EXPECT_NO_THROW(store_->ping()); }

TEST_P(StoreContract, ScriptsTheServerForgotAreSentAgain) {
    EXPECT_EQ(run(kCounterScript, "f:1", {"1", "60000"})[0], "1");
    for (auto* server : servers()) EXPECT_EQ(server->cli({"SCRIPT", "FLUSH"}), "OK");
    EXPECT_EQ(run(kCounterScript, "f:1", {"1", "60000"})[0], "2");
}

TEST_P(StoreContract, BinaryValuesAndHashTagsRoundTrip) {
    const std::string value("nul\0cr\r\nlf{tag}\xff", 17);
    EXPECT_EQ(run(kPut, "b:{tag}one", {value}), std::vector<std::string>{value});
    EXPECT_EQ(run(kPut, "b:{tag}two", {""}), std::vector<std::string>{""});
    std::map<std::string, std::string> seen;
    store_->scan("b:", [&seen](const Entry& entry) { seen[entry.key] = entry.value; });
    EXPECT_EQ(seen, (std::map<std::string, std::string>{{"b:{tag}one", value}, {"b:{tag}two", ""}}));
}

/* Four loops on their own threads, each with 200 calls in flight at
 * once on one key: every increment counts once. */
TEST_P(StoreContract, ManyLoopsOnOneKeyCountExactly) {
    constexpr int kThreads = 4;
    constexpr int kCalls = 200;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            EventLoop loop;
            int answered = 0;
            const std::vector<std::string> args{"1", "60000"};
            loop.post([&] {
                for (int i = 0; i < kCalls; ++i) {
                    store_->run(kCounterScript, "m:hot", now_ms(), args, [&](StoreResult result) {
                        if (result.error) ++failures;
                        ++answered;
                    });
                }
            });
            loop.run_until([&answered, calls = kCalls] { return answered == calls; });
        });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(run(kCounterScript, "m:hot", {"0", "60000"})[0], std::to_string(kThreads * kCalls));
}

/* The decisions of a scenario on STORE, the clock injected, starting at
 * START (near the real time: Redis expires keys by its own clock). */
std::vector<std::string> decisions(Store& store, int64_t start) {
    std::atomic<int64_t> clock{start};
    checks::Greylist greylist(store, [&clock] { return clock.load(); });
    checks::Ratelimit ratelimit(store, [&clock] { return clock.load(); });
    checks::GreylistSettings settings;
    settings.delay = std::chrono::seconds(60);
    settings.awl = 2;
    const auto ip = [](const char* text) { return *parse_ip(text); };
    std::vector<std::string> out;
    auto decide = [&](const checks::Triplet& triplet) {
        const auto outcome = on_own_loop<Outcome<checks::GreylistDecision>>(
            [&](auto done) { greylist.check(triplet, settings, std::move(done)); });
        if (!outcome.value) return out.push_back("error: " + outcome.error);
        out.push_back(std::string(checks::reason_name(outcome.value->reason)) + " " +
                      std::to_string(outcome.value->wait_seconds));
    };
    const auto one = checks::make_triplet(ip("198.51.100.7"), "a@sender.example", "x@example.com", false);
    const auto two = checks::make_triplet(ip("198.51.100.8"), "b@sender.example", "y@example.com", false);
    const auto three = checks::make_triplet(ip("198.51.100.9"), "c@sender.example", "z@example.com", false);
    decide(one);
    clock += 30'000;
    decide(one);
    clock += 31'000;
    decide(one);
    decide(two);
    clock += 61'000;
    decide(two);
    decide(three);   // the network passed twice: auto-whitelisted
    const checks::RateLimit rates[] = {{3, std::chrono::minutes(1)}, {5, std::chrono::hours(1)}};
    const std::string bucket = checks::bucket_key("per-login", std::vector<std::string>{"alice"});
    for (int i = 0; i < 7; ++i) {
        const auto outcome = on_own_loop<Outcome<checks::RatelimitDecision>>(
            [&](auto done) { ratelimit.take(bucket, rates, std::move(done)); });
        if (!outcome.value) {
            out.push_back("error: " + outcome.error);
        } else {
            std::string levels;
            for (const auto level : outcome.value->levels) levels += " " + std::to_string(level);
            out.push_back((outcome.value->allowed ? "take" : "over") + levels + " retry " +
                          std::to_string(outcome.value->retry_in_ms));
        }
        clock += 20'000;
    }
    return out;
}

TEST_P(StoreContract, GreylistAndRateLimitsDecideAsTheMemoryStoreDoes) {
    const int64_t start = now_ms();
    MemoryStore reference("", test_support::kMemoryLimit);
    const auto expected = decisions(reference, start);
    EXPECT_EQ(expected.front(), "new 60");
    EXPECT_EQ(expected[5], "awl 0");
    EXPECT_EQ(decisions(*store_, start), expected);
}

INSTANTIATE_TEST_SUITE_P(Topologies, StoreContract,
                         testing::Values(Topology::memory, Topology::standalone, Topology::sentinel,
                                         Topology::cluster),
                         test_support::topology_name);

}  // namespace
}  // namespace portcullis::store
