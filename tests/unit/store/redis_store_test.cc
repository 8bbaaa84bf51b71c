/*
 * redis_store_test.cc: the Redis store against a real redis-server:
 * store.url, scripts and their replies, keys and expiry as Redis sees
 * them, SCAN, authentication and databases, a hung, killed and restarted
 * server, the one deadline of each call, many loops on one key, hash
 * scripts with SCAN of hashes, the EVAL fallback, the log lines and the
 * metric of the server's health; and, against a server the test plays, a
 * SCAN that would never end and keys outside the prefix.
 *
 * run() answers on the event loop that calls it: each test serves a loop
 * of its own, as a daemon's loop thread does (support/loop_answer.h), so
 * the store keeps one connection per loop across a test's calls.
 */
#include "store/redis_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include "metrics/metrics.h"
#include "support/counter_script.h"
#include "support/fake_redis.h"
#include "support/loop_answer.h"
#include "support/redis_server.h"
#include "support/temp_dir.h"
#include "util/digest.h"

namespace portcullis::store {
namespace {

using namespace std::chrono_literals;
using test_support::RedisServer;
using Clock = std::chrono::steady_clock;

constexpr Millis kTimeout = 200ms;
// How late a call that runs out of time may return: the scheduler's share
// on a loaded machine, not the store's.
constexpr Millis kMargin = 100ms;

config::Config::Store settings_for(const std::string& url, Millis timeout = kTimeout) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.url = url;
    settings.prefix = "t:";
    settings.timeout = timeout;
    return settings;
}

using test_support::counter_apply;
using test_support::kCounterScript;

// The scripts below only ever run on Redis, so they have no C++ twin.

/* Returns the kind of reply ARGS[0] names. */
const Script kShapes{"shapes", R"lua(
local shape = ARGV[2]
if shape == 'array' then return {1, 'two', false, 'four'} end
if shape == 'string' then return 'one' end
if shape == 'integer' then return 42 end
if shape == 'status' then return redis.status_reply('OK') end
if shape == 'empty' then return {} end
return false
)lua",
                     nullptr};

/* Sets the value ARGS[0], expiring ARGS[1] ms after now unless that is
 * 0; returns the value read back. */
const Script kPut{"put", R"lua(
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3])) end
return redis.call('GET', KEYS[1])
)lua",
                  nullptr};

/* Keeps Redis busy for ARGS[0] ms. */
const Script kSlow{"slow", R"lua(
local function ms() local t = redis.call('TIME') return t[1] * 1000 + t[2] / 1000 end
local stop = ms() + tonumber(ARGV[2])
while ms() < stop do end
return 1
)lua",
                   nullptr};

/* Sets field ARGS[0] to ARGS[1], the key expiring ARGS[2] ms after now;
 * returns the field count and the expiry. */
std::vector<std::string> hash_put_apply(HashRecord& record, int64_t now, std::span<const std::string> args) {
    record.set(args[0], args[1]);
    record.expire_at(now + std::stoll(args[2]));
    return {std::to_string(record.fields().size()), std::to_string(record.expires_at_ms())};
}

const HashScript kHashPut{"hash-put", R"lua(
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local expires_at = tonumber(ARGV[1]) + tonumber(ARGV[4])
redis.call('PEXPIREAT', KEYS[1], expires_at)
return {redis.call('HLEN', KEYS[1]), expires_at}
)lua",
                          hash_put_apply};

const Script kExplode{"explode", "return redis.error_reply('boom: ' .. ARGV[2])", nullptr};
const Script kBroken{"broken", "return redis.call('NO_SUCH_COMMAND')", nullptr};

/* SCRIPT's reply, run on LOOP; its failure thrown as a StoreError. */
template <typename AnyScript>
std::vector<std::string> run(EventLoop& loop, Store& store, const AnyScript& script, std::string_view key,
                             const std::vector<std::string>& args, int64_t now = now_ms()) {
    const auto result = test_support::answer_on<StoreResult>(
        loop, [&](Store::Done done) { store.run(script, key, now, args, std::move(done)); });
    if (result.error) throw StoreError(*result.error);
    return result.values;
}

std::vector<std::string> count(EventLoop& loop, Store& store, std::string_view key) {
    return run(loop, store, kCounterScript, key, {"1", "60000"});
}

/* What CALL throws as StoreError; a test failure if it throws nothing. */
template <typename Call>
std::string store_error(Call call) {
    try {
        call();
    } catch (const StoreError& error) {
        return error.what();
    }
    ADD_FAILURE() << "no StoreError thrown";
    return {};
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

size_t occurrences(std::string_view text, std::string_view part) {
    size_t found = 0;
    for (auto at = text.find(part); at != std::string_view::npos; at = text.find(part, at + 1)) ++found;
    return found;
}

Millis since(Clock::time_point start) { return std::chrono::duration_cast<Millis>(Clock::now() - start); }

/* The StoreError CALL throws, and how long it took to throw it. */
template <typename Call>
std::pair<std::string, Millis> timed_error(Call call) {
    const auto start = Clock::now();
    std::string message = store_error(call);
    return {std::move(message), since(start)};
}

/* What a call to database DB of SERVER says when it runs out of time. */
std::string timed_out(const RedisServer& server, int db = 0) {
    return "redis 127.0.0.1:" + std::to_string(server.port()) + "/" + std::to_string(db) + ": no reply within 200ms";
}

/* Runs the counter on LOOP until it works, for up to 5 seconds. */
bool recovers(EventLoop& loop, Store& store, std::string_view key) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
        try {
            count(loop, store, key);
            return true;
        } catch (const StoreError&) {
            test_support::serve_for(loop, 50ms);
        }
    }
    return false;
}

TEST(RedisStoreUrl, DescribeNamesTheServerButNeverThePassword) {
    // The constructor resolves a host name: the names here are those
    // /etc/hosts gives, as no test may ask the machine's DNS resolver.
    const auto describe = [](const std::string& url) { return RedisStore(settings_for(url)).describe(); };
    EXPECT_EQ(describe("redis://127.0.0.1:6379/0"), "redis 127.0.0.1:6379/0");
    EXPECT_EQ(describe("redis://localhost"), "redis localhost:6379/0");
    EXPECT_EQ(describe("redis://:secret@localhost:6380/2"), "redis localhost:6380/2");
    EXPECT_EQ(describe("redis://alice:secret@[::1]/5"), "redis [::1]:6379/5");
    EXPECT_EQ(describe("redis://[2001:db8::7]:7000"), "redis [2001:db8::7]:7000/0");
    EXPECT_EQ(describe("redis://:p%40ss%2Fw@127.0.0.2/1"), "redis 127.0.0.2:6379/1");
    EXPECT_EQ(describe("unix:///run/redis/redis.sock"), "redis unix:/run/redis/redis.sock/0");
    EXPECT_EQ(describe("unix:///run/redis.sock?db=3&password=secret"), "redis unix:/run/redis.sock/3");
    EXPECT_EQ(describe("unix:///run/redis.sock?password=secret&db=4"), "redis unix:/run/redis.sock/4");
}

TEST(RedisStoreUrl, NonsenseIsRefusedWithoutShowingThePassword) {
    for (const std::string url :
         {"http://host", "redis://", "redis://host:0", "redis://host:65536", "redis://host:port", "redis://host/x",
          "redis://host/", "redis://::1", "redis://[::1", "redis://[::1]x", "redis://secret@host",
          "redis://:@host", "redis://:secret%4@host", "unix://relative.sock", "unix://", "unix:///s?db=x",
          "unix:///s?user=secret"}) {
        const auto message = store_error([&] { RedisStore store(settings_for(url)); });
        EXPECT_TRUE(message.starts_with("store.url: ")) << url << ": " << message;
        EXPECT_FALSE(contains(message, "secret")) << url << ": " << message;
    }
}

/* Settings a sentinel or cluster store cannot use name the key to
 * blame, for the caller to say where it was set; none shows a password. */
TEST(RedisStoreUrl, SentinelAndClusterSettingsNameTheirKey) {
    const auto refused = [](config::Config::Store settings) -> std::pair<std::string, std::string> {
        try {
            check_store_settings(settings);
            RedisStore store(settings);
        } catch (const StoreSettingsError& error) {
            return {error.key(), error.what()};
        }
        return {"accepted", ""};
    };
    auto sentinel = settings_for("redis://127.0.0.1:26379, redis://127.0.0.2:26379");
    sentinel.mode = config::StoreMode::sentinel;
    EXPECT_EQ(refused(sentinel), std::make_pair(std::string("store.mode"),
                                                std::string("store.mode: \"sentinel\" needs store.master, the name of "
                                                            "the master the sentinels watch")));
    sentinel.master = "mymaster";
    EXPECT_EQ(refused(sentinel).first, "accepted");
    auto cluster = settings_for("redis://127.0.0.1:7000, redis://:secret@127.0.0.1:7001");
    cluster.mode = config::StoreMode::cluster;
    const auto [key, message] = refused(cluster);
    EXPECT_EQ(key, "store.url");
    EXPECT_TRUE(message.starts_with("store.url: URL 2: every cluster node authenticates")) << message;
    EXPECT_FALSE(contains(message, "secret")) << message;
    auto user_alone = settings_for("redis://127.0.0.1:6379");
    user_alone.user = "portcullis";
    EXPECT_EQ(refused(user_alone).first, "store.user");
}

TEST(RedisStoreUrl, DescribeNamesTheTopology) {
    auto settings = settings_for("redis://127.0.0.1:26379");
    settings.mode = config::StoreMode::sentinel;
    settings.master = "mx-state";
    EXPECT_EQ(RedisStore(settings).describe(), "redis sentinel mx-state");
    settings.mode = config::StoreMode::cluster;
    EXPECT_EQ(RedisStore(settings).describe(), "redis cluster");
}

TEST(RedisStoreUrl, OpenStoreBuildsTheRedisBackend) {
    const auto store = open_store(settings_for("redis://127.0.0.1:6390/1"));
    EXPECT_EQ(store->describe(), "redis 127.0.0.1:6390/1");
}

class RedisStoreTest : public ::testing::Test {
protected:
    template <typename AnyScript>
    std::vector<std::string> run(Store& store, const AnyScript& script, std::string_view key,
                                 const std::vector<std::string>& args, int64_t now = now_ms()) {
        return store::run(loop_, store, script, key, args, now);
    }
    std::vector<std::string> count(Store& store, std::string_view key) { return store::count(loop_, store, key); }
    bool recovers(Store& store, std::string_view key) { return store::recovers(loop_, store, key); }

    RedisServer server_;
    RedisStore store_{settings_for(server_.url())};
    EventLoop loop_;   // destroyed first, and its connections with it
};

TEST_F(RedisStoreTest, CounterScriptMatchesItsCppTwin) {
    Record record;
    const int64_t start = now_ms();
    for (int step = 1; step <= 5; ++step) {
        const int64_t now = start + step * 1000;
        const std::vector<std::string> args{std::to_string(step), "60000"};
        const auto expected = counter_apply(record, now, args);
        EXPECT_EQ(run(store_, kCounterScript, "c:1", args, now), expected) << "step " << step;
    }
    EXPECT_EQ(record.value, "15");
    EXPECT_EQ(server_.cli({"GET", "t:c:1"}), "15");
}

TEST_F(RedisStoreTest, HashScriptMatchesItsCppTwinAndScanHashesSeesIt) {
    HashRecord record;
    const int64_t now = now_ms();
    const std::string binary("f\0\r\n", 4);
    for (const auto& args : {std::vector<std::string>{"a", "1", "60000"}, std::vector<std::string>{binary, "2", "60000"},
                             std::vector<std::string>{"a", "3", "120000"}}) {
        EXPECT_EQ(run(store_, kHashPut, "h:1", args, now), hash_put_apply(record, now, args));
    }
    EXPECT_EQ(server_.cli({"TYPE", "t:h:1"}), "hash");
    run(store_, kPut, "h:string", {"v", "0"});

    std::vector<HashEntry> hashes;
    store_.scan_hashes("h:", [&](const HashEntry& hash) { hashes.push_back(hash); });
    ASSERT_EQ(hashes.size(), 1u);
    EXPECT_EQ(hashes[0].key, "h:1");
    EXPECT_EQ(hashes[0].fields, record.fields());
    EXPECT_NEAR(static_cast<double>(hashes[0].expires_at_ms), static_cast<double>(now + 120000), 2000);
    std::vector<std::string> strings;
    store_.scan("h:", [&](const Entry& entry) { strings.push_back(entry.key); });
    EXPECT_EQ(strings, std::vector<std::string>{"h:string"});

    // The wrong kind of key is Redis's WRONGTYPE, named with the script.
    const auto error = store_error([&] { run(store_, kHashPut, "h:string", {"f", "v", "1000"}); });
    EXPECT_TRUE(contains(error, "script \"hash-put\" failed: ")) << error;
    EXPECT_TRUE(store_.erase("h:1"));
}

TEST_F(RedisStoreTest, RepliesBecomeStrings) {
    EXPECT_EQ(run(store_, kShapes, "s", {"array"}), (std::vector<std::string>{"1", "two", "", "four"}));
    EXPECT_EQ(run(store_, kShapes, "s", {"string"}), std::vector<std::string>{"one"});
    EXPECT_EQ(run(store_, kShapes, "s", {"integer"}), std::vector<std::string>{"42"});
    EXPECT_EQ(run(store_, kShapes, "s", {"status"}), std::vector<std::string>{"OK"});
    EXPECT_TRUE(run(store_, kShapes, "s", {"empty"}).empty());
    EXPECT_TRUE(run(store_, kShapes, "s", {"nil"}).empty());
}

TEST_F(RedisStoreTest, KeysCarryThePrefixAndRedisSeesTheExpiry) {
    count(store_, "c:1");
    EXPECT_EQ(server_.cli({"EXISTS", "t:c:1"}), "1");
    EXPECT_EQ(server_.cli({"EXISTS", "c:1"}), "0");
    const auto ttl = std::stoll(server_.cli({"PTTL", "t:c:1"}));
    EXPECT_GT(ttl, 55000);
    EXPECT_LE(ttl, 60000);
}

TEST_F(RedisStoreTest, BinaryKeysAndValuesSurviveIntact) {
    const std::string key("b:\0\r\n *?[x]\\", 12);
    const std::string value("\0value\r\n\xff", 9);
    EXPECT_EQ(run(store_, kPut, key, {value, "0"}), std::vector<std::string>{value});
    std::vector<Entry> seen;
    store_.scan("b:", [&](const Entry& entry) { seen.push_back(entry); });
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].key, key);
    EXPECT_EQ(seen[0].value, value);
    EXPECT_TRUE(store_.erase(key));
}

TEST_F(RedisStoreTest, FallsBackToEvalAfterScriptFlush) {
    const std::string sha = sha1_hex(kCounterScript.lua);
    EXPECT_EQ(count(store_, "c")[0], "1");
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "1");
    server_.cli({"SCRIPT", "FLUSH"});
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "0");
    EXPECT_EQ(count(store_, "c")[0], "2");
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "1");
}

TEST_F(RedisStoreTest, CallsThatMeetNoscriptTogetherSendTheSourceOnce) {
    // As after a restart, with 50 sessions' calls out at once: each meets
    // NOSCRIPT, and one EVAL carries the source; the others' EVALSHA goes
    // again behind it.
    constexpr int kOut = 50;
    const std::vector<std::string> args{"1", "60000"};
    std::vector<StoreResult> results;
    loop_.defer([&] {
        for (int i = 0; i < kOut; ++i) {
            store_.run(kCounterScript, "c", now_ms(), args, [&](StoreResult result) {
                results.push_back(std::move(result));
            });
        }
    });
    loop_.run_until([&] { return results.size() == kOut; });
    for (const auto& result : results) ASSERT_FALSE(result.error) << *result.error;
    EXPECT_EQ(server_.cli({"GET", "t:c"}), std::to_string(kOut));
    const std::string stats = server_.cli({"INFO", "commandstats"});
    EXPECT_EQ(occurrences(stats, "cmdstat_eval:calls=1,"), 1u) << stats;
    EXPECT_EQ(occurrences(stats, "cmdstat_evalsha:calls=" + std::to_string(2 * kOut - 1) + ","), 1u) << stats;
}

TEST_F(RedisStoreTest, ScriptErrorsNameTheScript) {
    const auto explicit_error = store_error([&] { run(store_, kExplode, "e", {"x"}); });
    EXPECT_TRUE(contains(explicit_error, "script \"explode\" failed: boom: x")) << explicit_error;
    const auto runtime_error = store_error([&] { run(store_, kBroken, "e", {}); });
    EXPECT_TRUE(contains(runtime_error, "script \"broken\" failed: ")) << runtime_error;
    EXPECT_TRUE(contains(runtime_error, "Unknown Redis command")) << runtime_error;
    // A script's error leaves the connection usable.
    EXPECT_EQ(count(store_, "c")[0], "1");
}

TEST_F(RedisStoreTest, ScanListsTheKeysUnderARelativePrefixWithValueAndExpiry) {
    const int64_t now = now_ms();
    run(store_, kPut, "g:a", {"va", "60000"}, now);
    run(store_, kPut, "g:b", {"vb", "120000"}, now);
    run(store_, kPut, "a:c", {"vc", "60000"}, now);
    server_.cli({"SET", "t:g:forever", "vf"});
    server_.cli({"SET", "other:g:z", "vz"});
    auto other_settings = settings_for(server_.url());
    other_settings.prefix = "u:";
    RedisStore other(other_settings);
    run(other, kPut, "g:c", {"vu", "0"});
    for (int i = 0; i < 2500; ++i) run(store_, kPut, "n:" + std::to_string(i), {"x", "0"});

    std::map<std::string, Entry> seen;
    store_.scan("g:", [&](const Entry& entry) { seen[entry.key] = entry; });
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen["g:a"].value, "va");
    EXPECT_NEAR(static_cast<double>(seen["g:a"].expires_at_ms), static_cast<double>(now + 60000), 2000);
    EXPECT_EQ(seen["g:b"].value, "vb");
    EXPECT_NEAR(static_cast<double>(seen["g:b"].expires_at_ms), static_cast<double>(now + 120000), 2000);
    EXPECT_EQ(seen["g:forever"].value, "vf");
    EXPECT_EQ(seen["g:forever"].expires_at_ms, 0);

    // More keys than one SCAN batch.
    size_t numbered = 0;
    store_.scan("n:", [&](const Entry&) { ++numbered; });
    EXPECT_EQ(numbered, 2500u);
    size_t everything = 0;
    store_.scan("", [&](const Entry&) { ++everything; });
    EXPECT_EQ(everything, 2504u);
}

TEST_F(RedisStoreTest, ScanHasTheTimeoutPerBatchNotInAll) {
    server_.cli({"EVAL", "for i = 1, 2500 do redis.call('SET', 't:n:' .. i, 'x') end", "0"});
    const auto start = Clock::now();
    size_t seen = 0;
    store_.scan("n:", [&](const Entry&) {
        // A slow reader, as an admin command printing to a pipe may be.
        if (seen++ % 1000 == 0) std::this_thread::sleep_for(150ms);
    });
    EXPECT_EQ(seen, 2500u);
    EXPECT_GT(since(start), kTimeout);
}

TEST_F(RedisStoreTest, ScanTakesGlobCharactersLiterally) {
    for (const char* key : {"g:*", "g:*x", "g:?", "g:[ab]", "g:a", "g:b", "g:\\"}) run(store_, kPut, key, {"v", "0"});
    const auto keys = [&](std::string_view prefix) {
        std::vector<std::string> found;
        store_.scan(prefix, [&](const Entry& entry) { found.push_back(entry.key); });
        std::sort(found.begin(), found.end());
        return found;
    };
    EXPECT_EQ(keys("g:*"), (std::vector<std::string>{"g:*", "g:*x"}));
    EXPECT_EQ(keys("g:?"), std::vector<std::string>{"g:?"});
    EXPECT_EQ(keys("g:[a"), std::vector<std::string>{"g:[ab]"});
    EXPECT_EQ(keys("g:\\"), std::vector<std::string>{"g:\\"});
}

TEST_F(RedisStoreTest, EraseReportsWhetherTheKeyExisted) {
    count(store_, "c");
    EXPECT_TRUE(store_.erase("c"));
    EXPECT_EQ(server_.cli({"EXISTS", "t:c"}), "0");
    EXPECT_FALSE(store_.erase("c"));
}

TEST_F(RedisStoreTest, ConstructorDoesNotConnectAndPingReportsAStoppedServer) {
    store_.ping();
    server_.stop();
    RedisStore fresh(settings_for(server_.url()));
    EXPECT_TRUE(contains(store_error([&] { fresh.ping(); }), "Connection refused"));
    EXPECT_FALSE(store_error([&] { store_.ping(); }).empty());
}

TEST_F(RedisStoreTest, PausedServerTimesOutThenWorksAfterResume) {
    count(store_, "c");
    server_.pause();
    const auto [message, elapsed] = timed_error([&] { count(store_, "c"); });
    server_.resume();
    EXPECT_EQ(message, timed_out(server_));
    EXPECT_LE(elapsed, kTimeout + kMargin);
    EXPECT_NO_THROW(count(store_, "c"));
}

TEST_F(RedisStoreTest, PausedServerFailsEveryKindOfCallWithinTheTimeout) {
    count(store_, "c");
    server_.pause();
    const auto check = [&](std::string_view what, auto call) {
        const auto [message, elapsed] = timed_error(call);
        EXPECT_EQ(message, timed_out(server_)) << what;
        EXPECT_LE(elapsed, kTimeout + kMargin) << what;
    };
    check("ping", [&] { store_.ping(); });
    check("erase", [&] { store_.erase("c"); });
    check("scan", [&] { store_.scan("", [](const Entry&) {}); });
    server_.resume();
    EXPECT_TRUE(recovers(store_, "c"));
}

TEST_F(RedisStoreTest, PausedServerFailsEveryLoopsWaitingCallsWithinTheTimeout) {
    count(store_, "c");
    server_.pause();
    // Four loops, as a daemon's threads, each with eight calls out at once.
    constexpr int kLoops = 4, kCalls = 8;
    std::vector<std::vector<std::pair<std::string, Millis>>> results(kLoops);
    {
        std::vector<std::jthread> threads;
        for (int l = 0; l < kLoops; ++l) {
            threads.emplace_back([&, l] {
                EventLoop loop;
                const std::vector<std::string> args{"1", "60000"};
                loop.defer([&] {
                    for (int i = 0; i < kCalls; ++i) {
                        const auto sent = Clock::now();
                        store_.run(kCounterScript, "c", now_ms(), args, [&results, l, sent](StoreResult result) {
                            results[l].emplace_back(result.error.value_or("no error"), since(sent));
                        });
                    }
                });
                loop.run_until([&] { return results[l].size() == kCalls; });
            });
        }
    }
    server_.resume();
    for (const auto& some : results) {
        ASSERT_EQ(some.size(), static_cast<size_t>(kCalls));
        for (const auto& [message, elapsed] : some) {
            EXPECT_EQ(message, timed_out(server_));
            EXPECT_GE(elapsed, kTimeout) << message;
            EXPECT_LE(elapsed, kTimeout + kMargin) << message;
        }
    }
    EXPECT_TRUE(recovers(store_, "c"));
}

TEST_F(RedisStoreTest, PausedServerFailsANewConnectionWithinTheTimeout) {
    count(store_, "c");
    server_.stop();
    // The one idle connection fails, and the pool is empty.
    EXPECT_FALSE(store_error([&] { count(store_, "c"); }).empty());
    server_.start();
    server_.pause();
    const auto [message, elapsed] = timed_error([&] { count(store_, "c"); });
    server_.resume();
    EXPECT_EQ(message, timed_out(server_));
    EXPECT_LE(elapsed, kTimeout + kMargin);
    EXPECT_TRUE(recovers(store_, "c"));
}

TEST_F(RedisStoreTest, EvalAfterNoscriptHasOnlyWhatIsLeftOfTheTimeout) {
    // Redis holds every client's commands for 180ms (CLIENT PAUSE, in
    // force once redis-cli has its reply): EVALSHA waits that long for its
    // NOSCRIPT, and the EVAL that follows would run for a second.  The
    // call as a whole has store.timeout, not EVALSHA and EVAL each.
    count(store_, "c");
    ASSERT_EQ(server_.cli({"CLIENT", "PAUSE", "180"}), "OK");
    const auto [message, elapsed] = timed_error([&] { run(store_, kSlow, "s", {"1000"}); });
    EXPECT_EQ(message, timed_out(server_));
    EXPECT_LE(elapsed, kTimeout + kMargin);
}

TEST_F(RedisStoreTest, KilledServerFailsFastAndRecoversAfterRestart) {
    count(store_, "c");
    server_.stop();
    EXPECT_FALSE(store_error([&] { count(store_, "c"); }).empty());
    for (int i = 0; i < 20; ++i) {
        const auto start = Clock::now();
        EXPECT_TRUE(contains(store_error([&] { count(store_, "c"); }), "Connection refused"));
        EXPECT_LT(since(start), 100ms);
    }
    server_.start();
    ASSERT_TRUE(recovers(store_, "c"));
    // The restarted server is empty: this is its second increment.
    EXPECT_EQ(count(store_, "c")[0], "2");
}

TEST_F(RedisStoreTest, FailedConnectHoldsOffTheNextForASecond) {
    server_.stop();
    ASSERT_TRUE(contains(store_error([&] { count(store_, "c"); }), "Connection refused"));
    const auto failed_at = Clock::now();
    server_.start();
    // Redis is back, but the store does not know it yet.
    if (since(failed_at) < 800ms) {
        const auto start = Clock::now();
        const auto message = store_error([&] { count(store_, "c"); });
        EXPECT_TRUE(contains(message, "Connection refused")) << message;
        EXPECT_LT(since(start), 50ms);
    }
    test_support::serve_for(loop_, std::max(Millis(0), 1100ms - since(failed_at)));
    EXPECT_EQ(count(store_, "c")[0], "1");
}

TEST_F(RedisStoreTest, LogsOnceWhenUnreachableAndOnceWhenBack) {
    count(store_, "c");
    ::testing::internal::CaptureStderr();
    server_.stop();
    for (int i = 0; i < 10; ++i) store_error([&] { count(store_, "c"); });
    server_.start();
    const bool recovered = recovers(store_, "c");
    for (int i = 0; i < 10; ++i) count(store_, "c");
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(recovered);
    const std::string name = "store: redis 127.0.0.1:" + std::to_string(server_.port()) + "/0";
    EXPECT_EQ(occurrences(log, "warning: " + name + " unreachable: "), 1u) << log;
    EXPECT_EQ(occurrences(log, "unreachable"), 1u) << log;
    EXPECT_EQ(occurrences(log, name + " reachable again"), 1u) << log;
}

TEST_F(RedisStoreTest, TenLoopsWithFiftyCallsOutEachCountExactly) {
    // A generous timeout: this is about atomicity, not speed.
    RedisStore store(settings_for(server_.url(), 5s));
    constexpr int kLoops = 10, kIncrements = 1000, kOut = 50;
    std::vector<std::vector<int64_t>> counts(kLoops);
    {
        std::vector<std::jthread> threads;
        for (int l = 0; l < kLoops; ++l) {
            threads.emplace_back([&, l] {
                EventLoop loop;
                const std::vector<std::string> args{"1", "60000"};
                int sent = 0;
                std::function<void()> send_one = [&] {
                    ++sent;
                    store.run(kCounterScript, "shared", now_ms(), args, [&](StoreResult result) {
                        counts[l].push_back(result.error ? -1 : std::stoll(result.values.at(0)));
                        if (sent < kIncrements) send_one();
                    });
                };
                loop.defer([&] {
                    for (int i = 0; i < kOut; ++i) send_one();
                });
                loop.run_until([&] { return counts[l].size() == kIncrements; });
            });
        }
    }
    std::vector<int64_t> all;
    for (const auto& some : counts) {
        // One loop's calls share a connection, answered in the order sent.
        EXPECT_TRUE(std::is_sorted(some.begin(), some.end()));
        all.insert(all.end(), some.begin(), some.end());
    }
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), static_cast<size_t>(kLoops * kIncrements));
    // Every increment saw a different count: 1, 2, ... 10000.
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<int64_t>(i + 1));
    EXPECT_EQ(server_.cli({"GET", "t:shared"}), std::to_string(kLoops * kIncrements));
}

TEST_F(RedisStoreTest, RunOffAnEventLoopIsALogicError) {
    const std::vector<std::string> args{"1", "60000"};
    EXPECT_THROW(store_.run(kCounterScript, "c", now_ms(), args, [](StoreResult) { ADD_FAILURE() << "answered"; }),
                 std::logic_error);
}

TEST_F(RedisStoreTest, TheReplyComesLaterOnTheCallingLoop) {
    const std::vector<std::string> args{"1", "60000"};
    bool returned = false, answered_inside = false;
    EventLoop* answered_on = nullptr;
    std::optional<StoreResult> result;
    loop_.defer([&] {
        store_.run(kCounterScript, "c", now_ms(), args, [&](StoreResult got) {
            answered_inside = !returned;
            answered_on = EventLoop::current();
            result = std::move(got);
        });
        returned = true;
    });
    loop_.run_until([&] { return result.has_value(); });
    EXPECT_FALSE(answered_inside);
    EXPECT_EQ(answered_on, &loop_);
    EXPECT_FALSE(result->error);
    EXPECT_EQ(result->values.at(0), "1");
}

/* The connections SERVER has from clients other than redis-cli. */
size_t store_connections(const RedisServer& server) {
    const std::string clients = server.cli({"CLIENT", "LIST"});
    return occurrences(clients, "\n") + 1 - occurrences(clients, "cmd=client");
}

TEST_F(RedisStoreTest, EachLoopHasOneConnectionOfItsOwn) {
    EventLoop other;
    for (int i = 0; i < 5; ++i) {
        count(store_, "c");
        store::run(other, store_, kCounterScript, "c", {"1", "60000"});
    }
    EXPECT_EQ(count(store_, "c")[0], "11");
    EXPECT_EQ(store_connections(server_), 2u);
}

TEST_F(RedisStoreTest, ARestartWhileTheLoopServesCostsNoCall) {
    count(store_, "c");
    // As a daemon's loop would, the store sees its connection close while
    // the server restarts, and connects anew on the next call.
    std::atomic<bool> restarted = false;
    std::jthread restart([&] {
        server_.stop();
        server_.start();
        restarted = true;
        loop_.post([] {});
    });
    loop_.run_until([&] { return restarted.load(); });
    EXPECT_EQ(count(store_, "c")[0], "1") << "the restarted server is empty";
}

TEST_F(RedisStoreTest, HashScriptsFallBackToEvalToo) {
    const std::string sha = sha1_hex(kHashPut.lua);
    const int64_t now = now_ms();
    EXPECT_EQ(run(store_, kHashPut, "h", {"a", "1", "60000"}, now)[0], "1");
    server_.cli({"SCRIPT", "FLUSH"});
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "0");
    EXPECT_EQ(run(store_, kHashPut, "h", {"b", "2", "60000"}, now)[0], "2");
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "1");
}

TEST_F(RedisStoreTest, AnErrorThatIsNotNoscriptIsNotRetriedWithEval) {
    // The first call loads the script (EVALSHA, NOSCRIPT, EVAL); the
    // second's error is the script's own, and final.
    for (int i = 0; i < 2; ++i) {
        const auto error = store_error([&] { run(store_, kExplode, "e", {"x"}); });
        EXPECT_TRUE(contains(error, "script \"explode\" failed: boom: x")) << error;
    }
    const std::string stats = server_.cli({"INFO", "commandstats"});
    EXPECT_EQ(occurrences(stats, "cmdstat_evalsha:calls=2,"), 1u) << stats;
    EXPECT_EQ(occurrences(stats, "cmdstat_eval:calls=1,"), 1u) << stats;
}

TEST_F(RedisStoreTest, RunBlockingWaitsOnALoopOfItsOwn) {
    const std::vector<std::string> args{"1", "60000"};
    EXPECT_EQ(run_blocking(store_, kCounterScript, "c", now_ms(), args)[0], "1");
    EXPECT_EQ(run_blocking(store_, kCounterScript, "c", now_ms(), args)[0], "2");
    const std::vector<std::string> field{"f", "v", "60000"};
    EXPECT_EQ(run_blocking(store_, kHashPut, "h", now_ms(), field)[0], "1");
    server_.stop();
    const auto message = store_error([&] { run_blocking(store_, kCounterScript, "c", now_ms(), args); });
    EXPECT_TRUE(message.starts_with("redis 127.0.0.1:" + std::to_string(server_.port()) + "/0: ")) << message;
}

TEST(RedisStoreUnreachable, RunBlockingFailsAtOnceWhenTheConnectFailsAtOnce) {
    // A unix socket with no server behind it: connect() fails in the call.
    // The thread owns all it uses, so that a hang fails this test alone.
    test_support::TempDir dir;
    struct Call {
        std::unique_ptr<RedisStore> store;
        std::promise<std::string> message;
    };
    auto call = std::make_shared<Call>();
    call->store = std::make_unique<RedisStore>(settings_for("unix://" + dir.path("none.sock")));
    auto answer = call->message.get_future();
    // The thread lets go of the store before the test ends, so that the
    // store is destroyed here, not on the thread as the process exits.
    std::promise<void> let_go;
    auto released = let_go.get_future();
    std::thread([call, let_go = std::move(let_go)]() mutable {
        const std::vector<std::string> args{"1", "60000"};
        call->message.set_value(store_error([&] { run_blocking(*call->store, kCounterScript, "c", now_ms(), args); }));
        call.reset();
        let_go.set_value();
    }).detach();
    ASSERT_EQ(answer.wait_for(5s), std::future_status::ready) << "run_blocking() still waits after 5 s";
    const std::string message = answer.get();
    EXPECT_TRUE(message.starts_with("redis unix:" + dir.path("none.sock") + "/0: connect: ")) << message;
    EXPECT_EQ(released.wait_for(5s), std::future_status::ready);
}

TEST_F(RedisStoreTest, LogsOnceForAllLoopsWhenUnreachableAndOnceWhenBack) {
    std::vector<std::unique_ptr<EventLoop>> loops;
    for (int i = 0; i < 3; ++i) loops.push_back(std::make_unique<EventLoop>());
    for (auto& loop : loops) store::run(*loop, store_, kCounterScript, "c", {"1", "60000"});
    ::testing::internal::CaptureStderr();
    server_.stop();
    for (auto& loop : loops) {
        for (int i = 0; i < 3; ++i) store_error([&] { store::run(*loop, store_, kCounterScript, "c", {"1", "60000"}); });
    }
    server_.start();
    bool recovered = true;
    for (auto& loop : loops) recovered = store::recovers(*loop, store_, "c") && recovered;
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(recovered);
    const std::string name = "store: redis 127.0.0.1:" + std::to_string(server_.port()) + "/0";
    EXPECT_EQ(occurrences(log, name + " unreachable: "), 1u) << log;
    EXPECT_EQ(occurrences(log, name + " reachable again"), 1u) << log;
}

/* The value of the metric NAME in the text http://127.0.0.1:PORT/metrics
 * serves; "" when absent or unreachable. */
std::string metric(int port, const std::string& name) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = test_support::loopback(port);
    const timeval limit{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    std::string response;
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
        char buffer[4096];
        for (ssize_t got; (got = read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, static_cast<size_t>(got));
    }
    close(fd);
    const size_t at = response.find("\n" + name + " ");
    if (at == std::string::npos) return "";
    const size_t start = at + name.size() + 2;
    return response.substr(start, response.find('\n', start) - start);
}

TEST_F(RedisStoreTest, TheStoreUpMetricFollowsTheServer) {
    const int port = test_support::free_port();
    ASSERT_EQ(metrics::serve("127.0.0.1:" + std::to_string(port)), "");
    count(store_, "c");
    server_.stop();
    EXPECT_FALSE(store_error([&] { count(store_, "c"); }).empty());
    EXPECT_EQ(metric(port, "portcullis_store_up"), "0");
    server_.start();
    ASSERT_TRUE(recovers(store_, "c"));
    EXPECT_EQ(metric(port, "portcullis_store_up"), "1");
}

/* A RedisStore on a FakeRedis that HANDLER plays, served by a thread of
 * its own (the store's admin calls block theirs); it answers DBSIZE 10. */
class StoreOnAFake {
public:
    explicit StoreOnAFake(std::function<void(test_support::FakeRedis::Peer&, const std::string& cursor)> scan) {
        fake_.on_command([scan = std::move(scan)](test_support::FakeRedis::Peer& peer,
                                                  const std::vector<std::string>& command) {
            if (command[0] == "DBSIZE") peer.send(":10\r\n");
            else if (command[0] == "SCAN") scan(peer, command[1]);
            else test_support::FakeRedis::answer_ok(peer, command);
        });
        server_ = std::jthread([this] { loop_.run(); });
    }
    ~StoreOnAFake() { loop_.stop(); }

    /* What scan() of "g:" throws. */
    std::string scan_error() {
        RedisStore store(settings_for("redis://127.0.0.1:" + std::to_string(fake_.port())));
        return store_error([&] { store.scan("g:", [](const Entry&) {}); });
    }
    std::string server() const { return "redis 127.0.0.1:" + std::to_string(fake_.port()) + "/0: "; }

private:
    EventLoop loop_;
    test_support::FakeRedis fake_{loop_};
    std::jthread server_;   // joined first
};

/* A SCAN reply: CURSOR and the bulk strings KEYS. */
std::string scan_reply(const std::string& cursor, const std::vector<std::string>& keys = {}) {
    std::string reply = "*2\r\n$" + std::to_string(cursor.size()) + "\r\n" + cursor + "\r\n*" +
                        std::to_string(keys.size()) + "\r\n";
    for (const auto& key : keys) reply += "$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
    return reply;
}

TEST(RedisStoreScan, ACursorGivenTwiceStopsTheWalk) {
    StoreOnAFake fake([](test_support::FakeRedis::Peer& peer, const std::string&) { peer.send(scan_reply("7")); });
    EXPECT_EQ(fake.scan_error(), fake.server() + "SCAN gave the cursor 7 again");
}

TEST(RedisStoreScan, ASCANThatNeverEndsStopsAfterTenTimesTheRoundsItsDatabaseTakes) {
    std::atomic<int> rounds = 0;
    StoreOnAFake fake([&rounds](test_support::FakeRedis::Peer& peer, const std::string&) {
        peer.send(scan_reply(std::to_string(++rounds)));
    });
    // DBSIZE 10: 1000 + 10 / 100 rounds.
    EXPECT_EQ(fake.scan_error(), fake.server() + "SCAN did not end within 1000 rounds");
    EXPECT_EQ(rounds, 1000);
}

TEST(RedisStoreScan, AKeyOutsideThePrefixIsRefused) {
    // The store's prefix is "t:", the walk's "t:g:".
    for (const std::string key : {"x", "t:h:1", ""}) {
        StoreOnAFake fake([&key](test_support::FakeRedis::Peer& peer, const std::string&) {
            peer.send(scan_reply("0", {"t:g:1", key}));
        });
        EXPECT_EQ(fake.scan_error(), fake.server() + "SCAN gave a key that does not start with 't:g:'") << key;
    }
}

TEST(RedisStoreScan, ACursorThatIsNoNumberIsRefused) {
    StoreOnAFake fake([](test_support::FakeRedis::Peer& peer, const std::string&) { peer.send(scan_reply("1x")); });
    EXPECT_EQ(fake.scan_error(), fake.server() + "unexpected reply to SCAN");
}

TEST(RedisStoreAuth, PasswordAndDatabaseFromUrl) {
    EventLoop loop;
    RedisServer server({"--requirepass", "s3:cr@t/"});
    RedisStore store(settings_for("redis://:s3%3Acr%40t%2F@127.0.0.1:" + std::to_string(server.port()) + "/3"));
    count(loop, store, "k");
    EXPECT_EQ(server.cli({"-a", "s3:cr@t/", "--no-auth-warning", "-n", "3", "GET", "t:k"}), "1");
    EXPECT_EQ(server.cli({"-a", "s3:cr@t/", "--no-auth-warning", "-n", "0", "EXISTS", "t:k"}), "0");
}

TEST(RedisStoreAuth, UserAndPasswordFromUrl) {
    EventLoop loop;
    RedisServer server({"--user", "alice", "on", ">pw", "~*", "+@all"});
    RedisStore store(settings_for("redis://alice:pw@127.0.0.1:" + std::to_string(server.port()) + "/2"));
    count(loop, store, "k");
    EXPECT_EQ(server.cli({"--user", "alice", "--pass", "pw", "--no-auth-warning", "-n", "2", "GET", "t:k"}), "1");
}

TEST(RedisStoreAuth, UnixSocketUrlWithDatabaseAndPassword) {
    EventLoop loop;
    RedisServer server({"--requirepass", "pw"});
    RedisStore store(settings_for("unix://" + server.socket_path() + "?db=4&password=pw"));
    EXPECT_EQ(store.describe(), "redis unix:" + server.socket_path() + "/4");
    count(loop, store, "k");
    EXPECT_EQ(server.cli({"-a", "pw", "--no-auth-warning", "-n", "4", "GET", "t:k"}), "1");
}

TEST(RedisStoreAuth, AuthOnAPausedServerFailsWithinTheTimeout) {
    EventLoop loop;
    RedisServer server({"--requirepass", "secret"});
    RedisStore store(settings_for("redis://:secret@127.0.0.1:" + std::to_string(server.port()) + "/2"));
    server.pause();
    const auto [message, elapsed] = timed_error([&] { count(loop, store, "k"); });
    server.resume();
    EXPECT_EQ(message, timed_out(server, 2));
    EXPECT_LE(elapsed, kTimeout + kMargin);
}

TEST(RedisStoreAuth, WrongOrMissingPasswordIsAClearError) {
    EventLoop loop;
    RedisServer server({"--requirepass", "right"});
    RedisStore wrong(settings_for("redis://:wrong@127.0.0.1:" + std::to_string(server.port())));
    const auto refused = store_error([&] { count(loop, wrong, "k"); });
    EXPECT_TRUE(contains(refused, "AUTH refused: WRONGPASS")) << refused;
    EXPECT_FALSE(contains(refused, "wrong@")) << refused;
    RedisStore missing(settings_for(server.url()));
    const auto unauthenticated = store_error([&] { count(loop, missing, "k"); });
    EXPECT_TRUE(contains(unauthenticated, "script \"counter\" failed: NOAUTH")) << unauthenticated;
    EXPECT_TRUE(contains(store_error([&] { missing.ping(); }), "PING failed: NOAUTH"));
}

}  // namespace
}  // namespace portcullis::store
