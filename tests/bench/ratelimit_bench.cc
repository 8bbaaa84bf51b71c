/*
 * ratelimit_bench.cc: rate-limit decisions against a real Redis, and what
 * a bucket costs Redis in memory.
 *
 *   bench_ratelimit --url redis://127.0.0.1:PORT/0 [--sessions 50]
 *                   [--loops CORES] [--seconds 10] [--buckets 20000]
 *   bench_ratelimit --mode sentinel --master NAME --url SENTINELS ...
 *   bench_ratelimit --mode cluster --url NODES ...
 *
 * With --mode sentinel or cluster only the phases "spread" and "hot" run
 * (store_bench.h).
 *
 * Every decision is checks::Ratelimit::take() through the daemon's
 * RedisStore (one connection per event loop, the sessions' scripts
 * pipelined on it) with the default policy's per-login rates, 100/1m
 * 1000/1h 3000/1d: one script on one key.  SESSIONS concurrent SMTP
 * sessions run on event loops, one loop thread per core (--loops), as the
 * daemon serves them, each with one decision out at a time, timed from
 * its start to its answer (store_bench.h).
 *   "spread": each session on logins of its own (50 events per login,
 *             then the next), so most events are allowed and buckets
 *             fill up;
 *   "hot":    every session on one bucket, which refuses almost all: the
 *             worst case for one key;
 *   "memory": FLUSHDB, BUCKETS logins with 50 events each (spread over
 *             50 seconds of the injected clock, so over many slots), then
 *             used_memory (INFO memory) before and after, per bucket.
 * The database named by --url is flushed: point it at a Redis of its own.
 */
#include <atomic>

#include "checks/ratelimit.h"
#include "store/redis_store.h"
#include "store_bench.h"

namespace {

using namespace portcullis;

const std::vector<checks::RateLimit> kRates{
    {100, std::chrono::minutes(1)}, {1000, std::chrono::hours(1)}, {3000, std::chrono::hours(24)}};
constexpr long kEventsPerLogin = 50;

std::string login_key(long login) {
    const std::string parts[] = {"user" + std::to_string(login) + "@customer.example.net"};
    return checks::bucket_key("auth.user:100/1m,1000/1h,3000/1d", parts);
}

/* DONE(ok) for a take() outcome, counting the allowed in ALLOWED if given. */
checks::Ratelimit::TakeDone finished(std::function<void(bool)> done, std::atomic<long>* allowed = nullptr) {
    return [done = std::move(done), allowed](store::Outcome<checks::RatelimitDecision> got) {
        if (allowed && got.value && got.value->allowed) ++*allowed;
        done(got.value.has_value());
    };
}

}  // namespace

int main(int argc, char** argv) {
    const bench::Options options = bench::parse_options(argc, argv, "bench_ratelimit", "--buckets", 20'000);
    std::optional<bench::Admin> admin;
    if (bench::standalone(options)) {
        admin.emplace(options.url);
        admin->flush_database();
    }
    store::RedisStore store(bench::redis_settings(options));
    std::printf("rate-limit decisions, %d sessions on %d loops, %d s per phase, %s\n", options.sessions,
                options.loops, options.seconds, store.describe().c_str());

    // Session s's i-th event: login s + S * (i / 50), one event a second of the injected clock.
    const int64_t start = store::now_ms();
    auto spread = [&](int s, long i, std::function<void(bool)> done) {
        checks::Ratelimit limiter(store, [&] { return start + (i % kEventsPerLogin) * 1000; });
        limiter.take(login_key(s + options.sessions * (i / kEventsPerLogin)), kRates, finished(std::move(done)));
    };
    bench::report("spread", bench::run_sessions(options, options.seconds, 1L << 40, spread));

    std::atomic<long> allowed{0};
    checks::Ratelimit hot_limiter(store);
    const std::string hot_key = login_key(-1);
    auto hot = [&](int, long, std::function<void(bool)> done) {
        hot_limiter.take(hot_key, kRates, finished(std::move(done), &allowed));
    };
    bench::report("hot", bench::run_sessions(options, options.seconds, 1L << 40, hot));
    std::printf("hot: %ld allowed (at most 100 a minute may be)\n", allowed.load());

    if (!admin) return 0;   // memory: on one server only
    admin->flush_database();
    const long long before = admin->used_memory();
    const long per_session = options.count * kEventsPerLogin / options.sessions;
    const auto filled = bench::run_sessions(options, 3600, per_session, spread);
    const long long after = admin->used_memory();
    const long long keys = admin->keys();
    std::printf("memory: %lld buckets after %ld events (%.1f s); used_memory %lld -> %lld = %.1f bytes per bucket\n",
                keys, filled.decisions, filled.seconds, before, after,
                static_cast<double>(after - before) / static_cast<double>(std::max(1LL, keys)));
    return 0;
}
