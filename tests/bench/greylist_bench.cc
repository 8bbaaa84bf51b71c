/*
 * greylist_bench.cc: greylist decisions against a real Redis, and what a
 * triplet costs Redis in memory.
 *
 *   bench_greylist --url redis://127.0.0.1:PORT/0 [--sessions 50]
 *                  [--seconds 10] [--triplets 1000000] [--short]
 *
 * Phase "new": SESSIONS threads, one per concurrent SMTP session, each
 * asking checks::Greylist about triplets nobody has seen (every decision
 * is "new").  Phase "pass": the same threads retry those triplets with
 * the clock 10 minutes on (every decision is "pass", and counts towards
 * the network's AWL).  Either is one store script on the network's hash.
 * Each phase reports decisions/s and the p50/p99/max latency of one
 * decision, as a milter worker would see it.  Phase "memory": FLUSHDB,
 * then TRIPLETS new triplets, then Redis's used_memory (INFO memory)
 * before and after, per triplet, and the keys (networks) they took.
 *
 * Addresses are shaped like bulk traffic: a client /24 out of 65,536, a
 * sender like "newsletter-4711@shop17.example.com" (the VERP digits fold
 * to '#'), a recipient like "firstname.lastname123@customer42.example.net"
 * (about 80 bytes of addresses per triplet).  Triplet N comes from
 * network N mod 65,536, so a million triplets are about 15 per network.
 * --short uses addresses like "u4711@s17.example" and "r123@c42.example"
 * (about 30 bytes), to show what the address length costs.  The database
 * named by --url is flushed: point it at a Redis of its own.
 */
#include "checks/greylist.h"
#include "store/redis_store.h"
#include "store_bench.h"

namespace {

using namespace portcullis;

bool short_addresses = false;

/* Triplet number N: distinct for every N. */
checks::Triplet triplet(long n) {
    const unsigned net = static_cast<unsigned>(n) & 0xffff;
    char client[32];
    std::snprintf(client, sizeof client, "10.%u.%u.7", net >> 8, net & 0xff);
    char sender[64];
    char rcpt[64];
    if (short_addresses) {
        std::snprintf(sender, sizeof sender, "u%ld@s%ld.example", n % 9973, (n / 9973) % 1000);
        std::snprintf(rcpt, sizeof rcpt, "r%ld@c%ld.example", n, n % 97);
    } else {
        std::snprintf(sender, sizeof sender, "newsletter-%ld@shop%ld.example.com", n % 9973, (n / 9973) % 1000);
        std::snprintf(rcpt, sizeof rcpt, "firstname.lastname%ld@customer%ld.example.net", n, n % 97);
    }
    return checks::make_triplet(*parse_ip(client), sender, rcpt, false);
}

/* SESSIONS threads; thread t asks about triplets t, t+S, ... with the
 * clock CLOCK_OFFSET_MS ahead. */
bench::PhaseResult run_phase(store::Store& store, const bench::Options& options, int seconds,
                             int64_t clock_offset_ms, long limit_per_thread) {
    checks::Greylist greylist(store, [clock_offset_ms] { return store::now_ms() + clock_offset_ms; });
    const checks::GreylistSettings settings;
    return bench::run_sessions(options.sessions, seconds, limit_per_thread, [&](int t, long i) {
        greylist.check(triplet(t + i * options.sessions), settings);
    });
}

}  // namespace

int main(int argc, char** argv) {
    const bench::Options options = bench::parse_options(argc, argv, "bench_greylist", "--triplets", 1'000'000, "--short");
    short_addresses = options.flag;
    store::RedisConnection admin(parse_redis_url(options.url), bench::admin_deadline());
    bench::flush_database(admin);

    store::RedisStore store(bench::redis_settings(options.url));
    std::printf("greylist decisions, %d sessions, %d s per phase, %s\n", options.sessions, options.seconds,
                store.describe().c_str());
    const bench::PhaseResult fresh = run_phase(store, options, options.seconds, 0, 1L << 40);
    const long per_thread = fresh.decisions / options.sessions;
    bench::report("new", fresh);
    bench::report("pass", run_phase(store, options, options.seconds, 10 * 60 * 1000, per_thread));

    bench::flush_database(admin);
    const long long before = bench::used_memory(admin);
    const bench::PhaseResult filled = run_phase(store, options, 3600, 0, options.count / options.sessions);
    const long long after = bench::used_memory(admin);
    const std::string_view dbsize[] = {"DBSIZE"};
    const long long keys = admin.command(dbsize, bench::admin_deadline()).integer;
    std::printf("memory: %lld keys after %ld new triplets (%.1f s); used_memory %lld -> %lld = %.1f bytes per triplet\n",
                keys, filled.decisions, filled.seconds, before, after,
                static_cast<double>(after - before) / static_cast<double>(std::max(1L, filled.decisions)));
    return 0;
}
