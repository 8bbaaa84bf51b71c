/*
 * ratelimit_test.cc: key normalisation and the rolling-window buckets,
 * with an injected clock, on both store backends (memory, and a real
 * redis-server), so the Lua and C++ halves of the bucket script give the
 * same answers.  A randomized run holds the bucket to a brute-force
 * count of the accepted events: never more than COUNT in any window of
 * PERIOD, and a refusal only when the last PERIOD + PERIOD/60 already
 * holds COUNT.  The memory a bucket costs in Redis is read with MEMORY
 * USAGE.  take() answers through its callback, waited for on the
 * backend's loop; what it makes of replies no script gives, and of a
 * store that fails, is tried on a store that answers as the test says
 * (support/scripted_store.h).
 */
#include "checks/ratelimit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <random>

#include "support/loop_answer.h"
#include "support/scripted_store.h"
#include "support/store_backends.h"

namespace portcullis::checks {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using test_support::Backend;

/* What LIMITER's take() gives, waited for on LOOP. */
store::Outcome<RatelimitDecision> outcome_of(Ratelimit& limiter, EventLoop& loop, const std::string& key,
                                             const std::vector<RateLimit>& rates) {
    return test_support::answer_on<store::Outcome<RatelimitDecision>>(
        loop, [&](Ratelimit::TakeDone done) { limiter.take(key, rates, std::move(done)); });
}

RatelimitDecision decide(Ratelimit& limiter, EventLoop& loop, const std::string& key,
                         const std::vector<RateLimit>& rates) {
    return test_support::value_of(outcome_of(limiter, loop, key, rates));
}

TEST(RatelimitKey, AddressesLoseCaseAndExtension) {
    EXPECT_EQ(normalize_key_part("Alice+News@Example.COM"), "alice@example.com");
    EXPECT_EQ(normalize_key_part("alice+1@example.com"), normalize_key_part("ALICE+2@example.com"));
    EXPECT_EQ(normalize_key_part("a+b+c@example.com"), "a@example.com");
}

TEST(RatelimitKey, OtherValuesLoseCaseOnly) {
    EXPECT_EQ(normalize_key_part("Alice"), "alice");
    EXPECT_EQ(normalize_key_part("c++"), "c++");              // a plus with no '@' is no extension
    EXPECT_EQ(normalize_key_part("2001:DB8::1"), "2001:db8::1");
    EXPECT_EQ(normalize_key_part(""), "");
}

TEST(RatelimitKey, BucketKeysKeepBucketsAndPartsApart) {
    const std::vector<std::string> ab{"a", "b"}, a_b{"a\0b"}, ba{"b", "a"};
    EXPECT_EQ(bucket_key("x", ab), bucket_key("x", ab));
    EXPECT_NE(bucket_key("x", ab), bucket_key("y", ab));
    EXPECT_NE(bucket_key("x", ab), bucket_key("x", ba));
    EXPECT_TRUE(bucket_key("x", ab).starts_with("r:"));
    EXPECT_EQ(bucket_key("x", ab).size(), 2u + 14u);      // fixed, whatever the parts
    const std::vector<std::string> typed{"Alice+News@Example.COM"}, plain{"alice@example.com"};
    EXPECT_EQ(bucket_key("x", typed), bucket_key("x", plain));   // the values are normalised
}

class RatelimitBuckets : public testing::TestWithParam<Backend> {
protected:
    /* The clock starts on a whole minute, so 1m slots (1 s) start with it. */
    RatelimitBuckets() : backend_(GetParam(), [this] { return now_.load(); }), limiter_(*backend_.store, [this] {
        return now_.load();
    }) {}

    void advance(Millis by) { now_ += by.count(); }

    RatelimitDecision take(std::initializer_list<RateLimit> rates, const std::string& key = "r:test") {
        return decide(limiter_, backend_.loop, key, std::vector<RateLimit>(rates));
    }

    /* How many of N events in a row RATES allow. */
    int allowed_of(int n, std::initializer_list<RateLimit> rates) {
        int allowed = 0;
        for (int i = 0; i < n; ++i) allowed += take(rates).allowed ? 1 : 0;
        return allowed;
    }

    std::atomic<int64_t> now_{1'800'000'040'000 - 1'800'000'040'000 % 3'600'000};
    test_support::TestStore backend_;
    Ratelimit limiter_;
};

const RateLimit five_a_minute{5, minutes(1)};

TEST_P(RatelimitBuckets, ExactlyCountEventsPass) {
    for (uint64_t i = 1; i <= 5; ++i) {
        const auto decision = take({five_a_minute});
        ASSERT_TRUE(decision.allowed) << "event " << i;
        EXPECT_EQ(decision.levels, std::vector<uint64_t>{i});
    }
    const auto refused = take({five_a_minute});
    EXPECT_FALSE(refused.allowed);
    EXPECT_EQ(refused.over, 0u);
    EXPECT_EQ(refused.levels, std::vector<uint64_t>{5});
    EXPECT_EQ(refused.retry_in_ms, 61'000);    // the slot of the first event leaves the window
}

TEST_P(RatelimitBuckets, CapacityFreesWithinOneSlotOfTheExactWindow) {
    advance(seconds(10) + Millis(400));          // mid-slot: the first events are 400 ms into theirs
    ASSERT_EQ(allowed_of(5, {five_a_minute}), 5);
    const auto refused = take({five_a_minute});
    EXPECT_EQ(refused.retry_in_ms, 60'600);      // the exact window frees at 60,000: 600 ms (< 1 s) later
    advance(Millis(60'599));
    EXPECT_FALSE(take({five_a_minute}).allowed);
    advance(Millis(1));
    EXPECT_EQ(allowed_of(6, {five_a_minute}), 5);   // all five slots freed at once
}

TEST_P(RatelimitBuckets, SpreadEventsFreeOneByOne) {
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(take({five_a_minute}).allowed);
        advance(seconds(10));
    }
    // Now 50 s on: the first event's slot leaves at 61 s, the second's at 71 s.
    EXPECT_FALSE(take({five_a_minute}).allowed);
    advance(seconds(11));
    EXPECT_EQ(allowed_of(2, {five_a_minute}), 1);
    advance(seconds(10));
    EXPECT_EQ(allowed_of(2, {five_a_minute}), 1);
}

TEST_P(RatelimitBuckets, EveryRateMustAllowAndAllCount) {
    const RateLimit per_minute{3, minutes(1)}, per_hour{5, hours(1)};
    EXPECT_EQ(allowed_of(4, {per_minute, per_hour}), 3);
    const auto over_minute = take({per_minute, per_hour});
    EXPECT_EQ(over_minute.over, 0u);
    EXPECT_EQ(over_minute.levels, (std::vector<uint64_t>{3, 3}));

    advance(minutes(2));
    EXPECT_EQ(allowed_of(3, {per_minute, per_hour}), 2);   // the hour has room for 2 more
    const auto over_hour = take({per_minute, per_hour});
    EXPECT_FALSE(over_hour.allowed);
    EXPECT_EQ(over_hour.over, 1u);
    EXPECT_EQ(over_hour.retry_in_ms, Millis(hours(1) + minutes(1) - minutes(2)).count());
}

TEST_P(RatelimitBuckets, RefusedEventsAreNotCounted) {
    const RateLimit two_a_minute{2, minutes(1)};
    EXPECT_EQ(allowed_of(2, {two_a_minute}), 2);
    advance(seconds(30));
    EXPECT_EQ(allowed_of(50, {two_a_minute}), 0);
    advance(seconds(31));                        // the first two left; the 50 refusals never counted
    EXPECT_EQ(allowed_of(3, {two_a_minute}), 2);
}

TEST_P(RatelimitBuckets, BucketsAreIndependent) {
    EXPECT_EQ(allowed_of(5, {five_a_minute}), 5);
    EXPECT_TRUE(take({five_a_minute}, "r:other").allowed);
}

TEST_P(RatelimitBuckets, SharedBucketKeepsOnePeriodPerLength) {
    // Two rules naming one bucket ('as NAME'): a period both use is one count.
    const RateLimit three_a_minute{3, minutes(1)}, ten_an_hour{10, hours(1)};
    EXPECT_TRUE(take({three_a_minute}).allowed);
    EXPECT_TRUE(take({ten_an_hour}).allowed);
    EXPECT_EQ(take({three_a_minute, ten_an_hour}).levels, (std::vector<uint64_t>{2, 2}));
    const auto levels = limiter_.show("r:test");
    ASSERT_EQ(levels.size(), 2u);
    EXPECT_EQ(levels[0].level, 2u);
    EXPECT_EQ(levels[1].level, 2u);
}

TEST_P(RatelimitBuckets, ShowGivesLevelAndWhenASlotFrees) {
    EXPECT_TRUE(limiter_.show("r:test").empty());
    ASSERT_EQ(allowed_of(3, {five_a_minute}), 3);
    advance(seconds(20));
    const auto levels = limiter_.show("r:test");
    ASSERT_EQ(levels.size(), 1u);
    EXPECT_EQ(levels[0].period, minutes(1));
    EXPECT_EQ(levels[0].level, 3u);
    EXPECT_EQ(levels[0].frees_in_ms, 41'000);
    advance(seconds(41));
    EXPECT_TRUE(limiter_.show("r:test").empty());
}

TEST_P(RatelimitBuckets, ResetForgetsTheBucket) {
    ASSERT_EQ(allowed_of(6, {five_a_minute}), 5);
    EXPECT_TRUE(limiter_.reset("r:test"));
    EXPECT_FALSE(limiter_.reset("r:test"));
    EXPECT_EQ(allowed_of(6, {five_a_minute}), 5);
}

TEST_P(RatelimitBuckets, BucketExpiresWhenItsEventsLeaveTheWindow) {
    ASSERT_TRUE(take({five_a_minute}).allowed);
    std::vector<int64_t> expiries;
    backend_.store->scan("r:", [&](const store::Entry& entry) { expiries.push_back(entry.expires_at_ms); });
    ASSERT_EQ(expiries.size(), 1u);
    EXPECT_NEAR(expiries[0], now_.load() + 61'000, 50);   // Redis reports a TTL, read back on the wall clock
}

TEST_P(RatelimitBuckets, AClockBehindTheBucketsStillCountsItsEvents) {
    // Another MX host with a clock 30 s ahead filled the bucket.
    advance(seconds(30));
    ASSERT_EQ(allowed_of(5, {five_a_minute}), 5);
    advance(-seconds(30));
    EXPECT_FALSE(take({five_a_minute}).allowed);
}

/* A key some other program wrote: read as an empty bucket. */
const store::Script& overwrite_script() {
    static const store::Script script{
        "test-overwrite", "redis.call('SET', KEYS[1], ARGV[2]) return {}",
        [](store::Record& record, int64_t, std::span<const std::string> args) {
            record.value = args[0];
            record.expires_at_ms = 0;
            return std::vector<std::string>{};
        }};
    return script;
}

TEST_P(RatelimitBuckets, AValueThatDoesNotDecodeIsAnEmptyBucket) {
    for (const std::string& garbage : {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10),
                                      std::string("\x01\x02\x7f", 3), std::string("hello"), std::string()}) {
        const std::string args[] = {garbage};
        store::run_blocking(*backend_.store, overwrite_script(), "r:test", now_.load(), args);
        const auto decision = take({five_a_minute});
        EXPECT_TRUE(decision.allowed);
        EXPECT_EQ(decision.levels, std::vector<uint64_t>{1});
    }
}

/* The brute force: allowed events' times, against which every answer is judged. */
struct AcceptedLog {
    std::deque<int64_t> times;

    uint64_t within(int64_t now, int64_t span) const {
        return static_cast<uint64_t>(std::count_if(times.begin(), times.end(), [&](int64_t at) {
            return at > now - span;
        }));
    }
};

void randomized_run(std::atomic<int64_t>& now, Ratelimit& limiter, EventLoop& loop, int events, unsigned seed) {
    std::mt19937 random(seed);
    const RateLimit rate{7, seconds(90)};
    const int64_t period = rate.period.count();
    std::exponential_distribution<double> gap(1.0 / 4000.0);   // mean 4 s apart: often at the limit
    AcceptedLog log;
    uint64_t accepted = 0, refused = 0;
    for (int i = 0; i < events; ++i) {
        now += static_cast<int64_t>(gap(random));
        const std::vector<RateLimit> rates{rate};
        const auto decision = decide(limiter, loop, "r:random", rates);
        if (decision.allowed) {
            log.times.push_back(now.load());
            ++accepted;
            ASSERT_LE(log.within(now.load(), period), rate.count) << "more than COUNT in a window, event " << i;
        } else {
            ++refused;
            ASSERT_GE(log.within(now.load(), period + period / 60), rate.count)
                << "refused although the last PERIOD + PERIOD/60 had room, event " << i;
        }
        while (!log.times.empty() && log.times.front() <= now.load() - 2 * period) log.times.pop_front();
    }
    // Both branches must have been exercised for the run to prove anything.
    EXPECT_GT(accepted, static_cast<uint64_t>(events) / 10);
    EXPECT_GT(refused, static_cast<uint64_t>(events) / 10);
}

TEST_P(RatelimitBuckets, NeverMoreThanCountInAnyWindowAgainstBruteForce) {
    const int events = GetParam() == Backend::memory ? 50'000 : 5'000;
    randomized_run(now_, limiter_, backend_.loop, events, 20261122);
}

TEST_P(RatelimitBuckets, NoRatesAllowAtOnceWithoutTheStore) {
    int calls = 0;
    limiter_.take("r:test", {}, [&calls](store::Outcome<RatelimitDecision> outcome) {
        ++calls;
        ASSERT_TRUE(outcome.value);
        EXPECT_TRUE(outcome.value->allowed);
        EXPECT_TRUE(outcome.value->levels.empty());
    });
    EXPECT_EQ(calls, 1) << "answered during the call";
    EXPECT_TRUE(limiter_.show("r:test").empty()) << "nothing counted";
}

INSTANTIATE_TEST_SUITE_P(Backends, RatelimitBuckets, testing::Values(Backend::memory, Backend::redis),
                         test_support::backend_name);

TEST(RatelimitTake, AStoreThatCannotAnswerIsAnErrorNotADecision) {
    int64_t now = 1'800'000'000'000;
    test_support::TestStore backend(Backend::redis, [&now] { return now; });
    Ratelimit limiter(*backend.store, [&now] { return now; });
    const std::vector<RateLimit> rates{five_a_minute};
    ASSERT_TRUE(outcome_of(limiter, backend.loop, "r:test", rates).value);
    backend.redis->stop();
    const auto outcome = outcome_of(limiter, backend.loop, "r:test", rates);
    EXPECT_FALSE(outcome.value);
    EXPECT_TRUE(outcome.error.starts_with("redis 127.0.0.1:" + std::to_string(backend.redis->port()) + "/0: "))
        << outcome.error;
}

class RatelimitReplies : public testing::Test {
protected:
    store::Outcome<RatelimitDecision> given(std::vector<std::string> reply, std::vector<RateLimit> rates,
                                            std::optional<std::string> error = {}) {
        store_.answer({std::move(reply), std::move(error)});
        return outcome_of(limiter_, loop_, "r:test", rates);
    }

    test_support::ScriptedStore store_;
    Ratelimit limiter_{store_, [] { return int64_t{1'800'000'000'000}; }};
    EventLoop loop_;
    const std::vector<RateLimit> one_rate_{five_a_minute};
    const std::vector<RateLimit> two_rates_{five_a_minute, {100, hours(1)}};
};

TEST_F(RatelimitReplies, TheReplyIsTheDecision) {
    auto outcome = given({"1", "0", "0", "3"}, one_rate_);
    ASSERT_TRUE(outcome.value) << outcome.error;
    EXPECT_TRUE(outcome.value->allowed);
    EXPECT_EQ(outcome.value->levels, std::vector<uint64_t>{3});
    outcome = given({"0", "1", "5000", "5", "100"}, two_rates_);
    ASSERT_TRUE(outcome.value) << outcome.error;
    EXPECT_FALSE(outcome.value->allowed);
    EXPECT_EQ(outcome.value->over, 1u);
    EXPECT_EQ(outcome.value->retry_in_ms, 5000);
    EXPECT_EQ(outcome.value->levels, (std::vector<uint64_t>{5, 100}));
    EXPECT_EQ(store_.calls.size(), 2u);
}

TEST_F(RatelimitReplies, RepliesOfTheWrongShapeAreErrors) {
    auto outcome = given({"1", "0", "0"}, one_rate_);
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "ratelimit: unexpected reply from the store");
    outcome = given({"0", "2", "5000", "5", "100"}, two_rates_);
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "ratelimit: the store named a rate the rule has not");
}

TEST_F(RatelimitReplies, AValueThatIsNoNumberIsAnErrorNotAThrow) {
    // The reply reaches take()'s callback on the loop: an exception there
    // would unwind through the store's connection and the event loop.
    for (const bool later : {false, true}) {
        store_.answer_later(later);
        std::optional<store::Outcome<RatelimitDecision>> outcome;
        EXPECT_NO_THROW(outcome = given({"1", "0", "0", "x"}, one_rate_)) << (later ? "later" : "during the call");
        if (!outcome) continue;
        EXPECT_FALSE(outcome->value);
        EXPECT_EQ(outcome->error, "ratelimit: unexpected reply 'x' from the store");
    }
}

TEST_F(RatelimitReplies, AStoreFailureIsTheOutcomesError) {
    const auto outcome = given({}, one_rate_, "redis 127.0.0.1:6379/0: connect: Connection refused");
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "redis 127.0.0.1:6379/0: connect: Connection refused");
}

/* The bytes of the bucket after COUNT events spread over every slot of
 * an hour: the most a bucket of that COUNT holds. */
std::string fullest_bucket(uint64_t count) {
    int64_t now = 1'800'000'000'000;
    store::MemoryStore memory("", test_support::kMemoryLimit, [&] { return now; });
    Ratelimit limiter(memory, [&] { return now; });
    EventLoop loop;
    const std::vector<RateLimit> rates{{count, hours(1)}};
    for (uint64_t event = 0; event < count; ++event) {
        now = 1'800'000'000'000 + static_cast<int64_t>(event * 61 / count) * 60'000;
        if (!decide(limiter, loop, "r:full", rates).allowed) throw std::runtime_error("bucket refused below COUNT");
    }
    std::string value;
    memory.scan("r:", [&](const store::Entry& entry) { value = entry.value; });
    return value;
}

/* MEMORY USAGE of the fullest bucket for COUNT, written into a real Redis. */
long long redis_bytes_of_fullest_bucket(uint64_t count) {
    test_support::RedisServer redis;
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.url = redis.url();
    store::RedisStore store(settings);
    const std::string args[] = {fullest_bucket(count)};
    store::run_blocking(store, overwrite_script(), "r:aaaaaaaaaaaaaa", 0, args);
    // The copy is the same bucket: Redis reads COUNT events back.
    Ratelimit limiter(store, [] { return int64_t{1'800'000'000'000 + 60 * 60'000}; });
    const auto levels = limiter.show("r:aaaaaaaaaaaaaa");
    if (levels.size() != 1 || levels[0].level != count) throw std::runtime_error("copied bucket does not decode");
    return std::stoll(redis.cli({"MEMORY", "USAGE", settings.prefix + "r:aaaaaaaaaaaaaa", "SAMPLES", "0"}));
}

TEST(RatelimitMemory, ABucketStaysUnder512BytesWhateverCount) {
    const long long small = redis_bytes_of_fullest_bucket(10);
    const long long large = redis_bytes_of_fullest_bucket(100'000);
    RecordProperty("bytes_count_10", std::to_string(small));
    RecordProperty("bytes_count_100000", std::to_string(large));
    std::printf("Redis MEMORY USAGE of a full bucket: COUNT=10 %lld B, COUNT=100000 %lld B\n", small, large);
    EXPECT_LE(small, 512);
    EXPECT_LE(large, 512);
    EXPECT_LE(fullest_bucket(100'000).size(), 61u * 2 + 16);   // two bytes a slot, and the header
}

}  // namespace
}  // namespace portcullis::checks
