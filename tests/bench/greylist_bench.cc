/*
 * greylist_bench.cc: greylist decisions against a real Redis, and what a
 * triplet costs Redis in memory.
 *
 *   bench_greylist --url redis://127.0.0.1:PORT/0 [--sessions 50]
 *                  [--loops CORES] [--seconds 10] [--triplets 1000000] [--short]
 *   bench_greylist --mode sentinel --master NAME --url SENTINELS ...
 *   bench_greylist --mode cluster --url NODES ...
 *
 * With --mode sentinel or cluster only the phases "new" and "pass" run
 * (store_bench.h).
 *
 * Phase "new": SESSIONS concurrent SMTP sessions on event loops, one
 * loop thread per core (--loops), as the daemon serves them, each session
 * with one checks::Greylist decision out at a time, about triplets nobody
 * has seen (every decision is "new").  Phase "pass": the same sessions
 * retry those triplets with the clock 10 minutes on (every decision is
 * "pass", and counts towards the network's AWL).  Either is one store
 * script on the network's hash, through the real RedisStore: one
 * connection per loop, the sessions' scripts pipelined on it.  Each phase
 * reports decisions/s and the p50/p99/max latency of one decision, from
 * its start to its answer, as a session sees it.  Phase "memory":
 * FLUSHDB, then TRIPLETS new triplets, then Redis's used_memory (INFO
 * memory) before and after, per triplet, and the keys (networks) they
 * took.
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

/* SESSIONS sessions; session s asks about triplets s, s+S, ... with the
 * clock CLOCK_OFFSET_MS ahead. */
bench::PhaseResult run_phase(store::Store& store, const bench::Options& options, int seconds,
                             int64_t clock_offset_ms, long limit_per_session) {
    checks::Greylist greylist(store, [clock_offset_ms] { return store::now_ms() + clock_offset_ms; });
    const checks::GreylistSettings settings;
    return bench::run_sessions(options, seconds, limit_per_session,
                               [&](int s, long i, std::function<void(bool)> done) {
                                   greylist.check(triplet(s + i * options.sessions), settings,
                                                  [done = std::move(done)](store::Outcome<checks::GreylistDecision> got) {
                                                      done(got.value.has_value());
                                                  });
                               });
}

}  // namespace

int main(int argc, char** argv) {
    const bench::Options options = bench::parse_options(argc, argv, "bench_greylist", "--triplets", 1'000'000, "--short");
    short_addresses = options.flag;
    std::optional<bench::Admin> admin;
    if (bench::standalone(options)) {
        admin.emplace(options.url);
        admin->flush_database();
    }

    store::RedisStore store(bench::redis_settings(options));
    std::printf("greylist decisions, %d sessions on %d loops, %d s per phase, %s\n", options.sessions, options.loops,
                options.seconds, store.describe().c_str());
    const bench::PhaseResult fresh = run_phase(store, options, options.seconds, 0, 1L << 40);
    const long per_session = fresh.decisions / options.sessions;
    bench::report("new", fresh);
    bench::report("pass", run_phase(store, options, options.seconds, 10 * 60 * 1000, per_session));

    if (!admin) return 0;   // memory: on one server only
    admin->flush_database();
    const long long before = admin->used_memory();
    const bench::PhaseResult filled = run_phase(store, options, 3600, 0, options.count / options.sessions);
    const long long after = admin->used_memory();
    const long long keys = admin->keys();
    std::printf("memory: %lld keys after %ld new triplets (%.1f s); used_memory %lld -> %lld = %.1f bytes per triplet\n",
                keys, filled.decisions, filled.seconds, before, after,
                static_cast<double>(after - before) / static_cast<double>(std::max(1L, filled.decisions)));
    return 0;
}
