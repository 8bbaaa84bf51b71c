/*
 * redis_store_test.cc: the Redis store against a real redis-server:
 * store.url, scripts and their replies, keys and expiry as Redis sees
 * them, SCAN, authentication and databases, a hung, killed and restarted
 * server, the one deadline of each call, many threads on one key, and
 * hash scripts with SCAN of hashes.
 */
#include "store/redis_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "support/redis_server.h"
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

/* Adds ARGS[0] to the key, which expires ARGS[1] ms after now; returns
 * the new count and the expiry. */
std::vector<std::string> counter_apply(Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t count = (record.value ? std::stoll(*record.value) : 0) + std::stoll(args[0]);
    record.value = std::to_string(count);
    record.expires_at_ms = now + std::stoll(args[1]);
    return {*record.value, std::to_string(record.expires_at_ms)};
}

const Script kCounter{"counter", R"lua(
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local expires_at = tonumber(ARGV[1]) + tonumber(ARGV[3])
redis.call('PEXPIREAT', KEYS[1], expires_at)
return {count, expires_at}
)lua",
                      counter_apply};

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

template <typename AnyScript>
std::vector<std::string> run(Store& store, const AnyScript& script, std::string_view key,
                             const std::vector<std::string>& args, int64_t now = now_ms()) {
    return store.run(script, key, now, args);
}

std::vector<std::string> count(Store& store, std::string_view key) { return run(store, kCounter, key, {"1", "60000"}); }

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

/* Runs the counter until it works, for up to 5 seconds. */
bool recovers(Store& store, std::string_view key) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
        try {
            count(store, key);
            return true;
        } catch (const StoreError&) {
            std::this_thread::sleep_for(50ms);
        }
    }
    return false;
}

TEST(RedisStoreUrl, DescribeNamesTheServerButNeverThePassword) {
    const auto describe = [](const std::string& url) { return RedisStore(settings_for(url)).describe(); };
    EXPECT_EQ(describe("redis://127.0.0.1:6379/0"), "redis 127.0.0.1:6379/0");
    EXPECT_EQ(describe("redis://localhost"), "redis localhost:6379/0");
    EXPECT_EQ(describe("redis://:secret@redis.example:6380/2"), "redis redis.example:6380/2");
    EXPECT_EQ(describe("redis://alice:secret@[::1]/5"), "redis [::1]:6379/5");
    EXPECT_EQ(describe("redis://[2001:db8::7]:7000"), "redis [2001:db8::7]:7000/0");
    EXPECT_EQ(describe("redis://:p%40ss%2Fw@host/1"), "redis host:6379/1");
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

TEST(RedisStoreUrl, SentinelAndClusterModesAreRefused) {
    auto settings = settings_for("redis://127.0.0.1:26379, redis://127.0.0.2:26379");
    settings.mode = config::StoreMode::sentinel;
    settings.master = "mymaster";
    EXPECT_TRUE(store_error([&] { RedisStore store(settings); })
                    .starts_with("store.mode: \"sentinel\" is not supported by this build: "));
    settings.mode = config::StoreMode::cluster;
    EXPECT_TRUE(store_error([&] { RedisStore store(settings); })
                    .starts_with("store.mode: \"cluster\" is not supported by this build: "));
    try {
        check_store_settings(settings);
        ADD_FAILURE() << "cluster mode accepted";
    } catch (const StoreSettingsError& error) {
        EXPECT_EQ(error.key(), "store.mode");   // the caller names where store.mode was set
    }
}

TEST(RedisStoreUrl, OpenStoreBuildsTheRedisBackend) {
    const auto store = open_store(settings_for("redis://127.0.0.1:6390/1"));
    EXPECT_EQ(store->describe(), "redis 127.0.0.1:6390/1");
}

class RedisStoreTest : public ::testing::Test {
protected:
    RedisServer server_;
    RedisStore store_{settings_for(server_.url())};
};

TEST_F(RedisStoreTest, CounterScriptMatchesItsCppTwin) {
    Record record;
    const int64_t start = now_ms();
    for (int step = 1; step <= 5; ++step) {
        const int64_t now = start + step * 1000;
        const std::vector<std::string> args{std::to_string(step), "60000"};
        const auto expected = counter_apply(record, now, args);
        EXPECT_EQ(run(store_, kCounter, "c:1", args, now), expected) << "step " << step;
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
    const std::string sha = sha1_hex(kCounter.lua);
    EXPECT_EQ(count(store_, "c")[0], "1");
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "1");
    server_.cli({"SCRIPT", "FLUSH"});
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "0");
    EXPECT_EQ(count(store_, "c")[0], "2");
    EXPECT_EQ(server_.cli({"SCRIPT", "EXISTS", sha}), "1");
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

TEST_F(RedisStoreTest, PausedServerFailsEveryThreadWithinTheTimeout) {
    count(store_, "c");
    server_.pause();
    // Twice the pool: half the threads connect, the rest wait for a
    // connection, and those a failure frees connect late.
    std::vector<std::pair<std::string, Millis>> results(32);
    {
        std::vector<std::jthread> threads;
        for (auto& result : results) {
            threads.emplace_back([&] { result = timed_error([&] { count(store_, "c"); }); });
        }
    }
    server_.resume();
    const std::string name = "redis 127.0.0.1:" + std::to_string(server_.port()) + "/0: ";
    for (const auto& [message, elapsed] : results) {
        EXPECT_TRUE(message.starts_with(name)) << message;
        EXPECT_LE(elapsed, kTimeout + kMargin) << message;
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
    // Another client keeps Redis busy for 180ms with its own copy of the
    // slow script (another text, so the store's stays unknown): EVALSHA
    // waits behind it for its NOSCRIPT, and the EVAL that follows would
    // run for a second.
    const std::string held = std::string(kSlow.lua) + "-- another client's copy\n";
    RedisConnection other(parse_redis_url(server_.url()), Deadline::after(5s));
    std::jthread blocker([&] {
        const std::string_view command[] = {"EVAL", held, "1", "hold", "0", "180"};
        other.command(command, Deadline::after(5s));
    });
    std::this_thread::sleep_for(30ms);
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
    ASSERT_TRUE(contains(store_error([&] { store_.ping(); }), "Connection refused"));
    const auto failed_at = Clock::now();
    server_.start();
    // Redis is back, but the store does not know it yet.
    if (since(failed_at) < 800ms) {
        const auto start = Clock::now();
        const auto message = store_error([&] { count(store_, "c"); });
        EXPECT_TRUE(contains(message, "Connection refused")) << message;
        EXPECT_LT(since(start), 50ms);
    }
    std::this_thread::sleep_for(1100ms);
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

TEST_F(RedisStoreTest, FiftyThreadsCountExactly) {
    // A generous timeout: this is about atomicity, not speed.
    RedisStore store(settings_for(server_.url(), 5s));
    constexpr int kThreads = 50;
    constexpr int kIncrements = 200;
    std::vector<std::vector<int64_t>> counts(kThreads);
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < kIncrements; ++i) counts[t].push_back(std::stoll(count(store, "shared")[0]));
            });
        }
    }
    std::vector<int64_t> all;
    for (const auto& some : counts) all.insert(all.end(), some.begin(), some.end());
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kIncrements));
    // Every increment saw a different count: 1, 2, ... 10000.
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<int64_t>(i + 1));
    EXPECT_EQ(server_.cli({"GET", "t:shared"}), std::to_string(kThreads * kIncrements));
}

TEST(RedisStoreAuth, PasswordAndDatabaseFromUrl) {
    RedisServer server({"--requirepass", "s3:cr@t/"});
    RedisStore store(settings_for("redis://:s3%3Acr%40t%2F@127.0.0.1:" + std::to_string(server.port()) + "/3"));
    count(store, "k");
    EXPECT_EQ(server.cli({"-a", "s3:cr@t/", "--no-auth-warning", "-n", "3", "GET", "t:k"}), "1");
    EXPECT_EQ(server.cli({"-a", "s3:cr@t/", "--no-auth-warning", "-n", "0", "EXISTS", "t:k"}), "0");
}

TEST(RedisStoreAuth, UserAndPasswordFromUrl) {
    RedisServer server({"--user", "alice", "on", ">pw", "~*", "+@all"});
    RedisStore store(settings_for("redis://alice:pw@127.0.0.1:" + std::to_string(server.port()) + "/2"));
    count(store, "k");
    EXPECT_EQ(server.cli({"--user", "alice", "--pass", "pw", "--no-auth-warning", "-n", "2", "GET", "t:k"}), "1");
}

TEST(RedisStoreAuth, UnixSocketUrlWithDatabaseAndPassword) {
    RedisServer server({"--requirepass", "pw"});
    RedisStore store(settings_for("unix://" + server.socket_path() + "?db=4&password=pw"));
    EXPECT_EQ(store.describe(), "redis unix:" + server.socket_path() + "/4");
    count(store, "k");
    EXPECT_EQ(server.cli({"-a", "pw", "--no-auth-warning", "-n", "4", "GET", "t:k"}), "1");
}

TEST(RedisStoreAuth, AuthOnAPausedServerFailsWithinTheTimeout) {
    RedisServer server({"--requirepass", "secret"});
    RedisStore store(settings_for("redis://:secret@127.0.0.1:" + std::to_string(server.port()) + "/2"));
    server.pause();
    const auto [message, elapsed] = timed_error([&] { count(store, "k"); });
    server.resume();
    EXPECT_EQ(message, timed_out(server, 2));
    EXPECT_LE(elapsed, kTimeout + kMargin);
}

TEST(RedisStoreAuth, WrongOrMissingPasswordIsAClearError) {
    RedisServer server({"--requirepass", "right"});
    RedisStore wrong(settings_for("redis://:wrong@127.0.0.1:" + std::to_string(server.port())));
    const auto refused = store_error([&] { count(wrong, "k"); });
    EXPECT_TRUE(contains(refused, "AUTH refused: WRONGPASS")) << refused;
    EXPECT_FALSE(contains(refused, "wrong@")) << refused;
    RedisStore missing(settings_for(server.url()));
    const auto unauthenticated = store_error([&] { count(missing, "k"); });
    EXPECT_TRUE(contains(unauthenticated, "script \"counter\" failed: NOAUTH")) << unauthenticated;
    EXPECT_TRUE(contains(store_error([&] { missing.ping(); }), "PING failed: NOAUTH"));
}

}  // namespace
}  // namespace portcullis::store
