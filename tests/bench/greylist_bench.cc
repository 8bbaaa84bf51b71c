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
 * (about 30 bytes), to show what the address length costs.  The database named by --url is
 * flushed: point it at a Redis of its own.
 */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "checks/greylist.h"
#include "store/redis_connection.h"
#include "store/redis_store.h"

namespace {

using namespace portcullis;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string url = "redis://127.0.0.1:6379/0";
    int sessions = 50;
    int seconds = 10;
    long triplets = 1'000'000;
    bool short_addresses = false;
};

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; i += 2) {
        const std::string name = argv[i];
        if (name == "--short") {
            options.short_addresses = true;
            --i;
            continue;
        }
        if (i + 1 >= argc) std::fprintf(stderr, "bench_greylist: %s needs a value\n", name.c_str()), std::exit(2);
        const char* value = argv[i + 1];
        if (name == "--url") options.url = value;
        else if (name == "--sessions") options.sessions = std::max(1, std::atoi(value));
        else if (name == "--seconds") options.seconds = std::max(1, std::atoi(value));
        else if (name == "--triplets") options.triplets = std::max(1L, std::atol(value));
        else std::fprintf(stderr, "bench_greylist: unknown option %s\n", name.c_str()), std::exit(2);
    }
    return options;
}

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

config::Config::Store settings_for(const std::string& url) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.url = url;
    settings.timeout = std::chrono::seconds(2);
    return settings;
}

struct PhaseResult {
    long decisions = 0;
    long errors = 0;
    double seconds = 0;
    std::vector<double> latencies_us;
};

/* SESSIONS threads for SECONDS; thread t asks about triplets t, t+S, ... */
PhaseResult run_phase(store::Store& store, const Options& options, int64_t clock_offset_ms, long limit_per_thread) {
    std::vector<std::vector<double>> latencies(options.sessions);
    std::vector<long> counts(options.sessions), errors(options.sessions);
    const auto deadline = Clock::now() + std::chrono::seconds(options.seconds);
    const auto started = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < options.sessions; ++t) {
        threads.emplace_back([&, t] {
            checks::Greylist greylist(store, [clock_offset_ms] { return store::now_ms() + clock_offset_ms; });
            const checks::GreylistSettings settings;
            for (long i = 0; i < limit_per_thread && Clock::now() < deadline; ++i) {
                const auto one = Clock::now();
                try {
                    greylist.check(triplet(t + i * options.sessions), settings);
                } catch (const store::StoreError&) {
                    ++errors[t];
                }
                latencies[t].push_back(std::chrono::duration<double, std::micro>(Clock::now() - one).count());
                ++counts[t];
            }
        });
    }
    for (auto& thread : threads) thread.join();
    PhaseResult result;
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    for (int t = 0; t < options.sessions; ++t) {
        result.decisions += counts[t];
        result.errors += errors[t];
        result.latencies_us.insert(result.latencies_us.end(), latencies[t].begin(), latencies[t].end());
    }
    return result;
}

double percentile(std::vector<double>& values, double p) {
    if (values.empty()) return 0;
    const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
    std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
    return values[index];
}

void report(const char* phase, PhaseResult result) {
    const double max = result.latencies_us.empty()
                           ? 0
                           : *std::max_element(result.latencies_us.begin(), result.latencies_us.end());
    std::printf("%-5s %9ld decisions in %5.2f s = %8.0f/s  p50 %7.0f us  p99 %7.0f us  max %7.0f us  errors %ld\n",
                phase, result.decisions, result.seconds, static_cast<double>(result.decisions) / result.seconds,
                percentile(result.latencies_us, 0.50), percentile(result.latencies_us, 0.99), max, result.errors);
}

/* The benchmark's own commands (FLUSHDB on a big database, INFO) may take
 * a while, each one. */
store::Deadline admin_deadline() { return store::Deadline::after(std::chrono::seconds(30)); }

long long used_memory(store::RedisConnection& connection) {
    const std::string_view info[] = {"INFO", "memory"};
    const auto reply = connection.command(info, admin_deadline());
    const auto at = reply.text.find("used_memory:");
    return at == std::string::npos ? -1 : std::atoll(reply.text.c_str() + at + std::strlen("used_memory:"));
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    short_addresses = options.short_addresses;
    const auto endpoint = parse_redis_url(options.url);
    store::RedisConnection admin(endpoint, admin_deadline());
    const std::string_view flush[] = {"FLUSHDB"};
    admin.command(flush, admin_deadline());

    store::RedisStore store(settings_for(options.url));
    std::printf("greylist decisions, %d sessions, %d s per phase, %s\n", options.sessions, options.seconds,
                store.describe().c_str());
    const PhaseResult fresh = run_phase(store, options, 0, 1L << 40);
    const long per_thread = fresh.decisions / options.sessions;
    report("new", fresh);
    report("pass", run_phase(store, options, 10 * 60 * 1000, per_thread));

    admin.command(flush, admin_deadline());
    const long long before = used_memory(admin);
    Options fill = options;
    fill.seconds = 3600;
    const PhaseResult filled = run_phase(store, fill, 0, options.triplets / options.sessions);
    const long long after = used_memory(admin);
    const std::string_view dbsize[] = {"DBSIZE"};
    const long long keys = admin.command(dbsize, admin_deadline()).integer;
    std::printf("memory: %lld keys after %ld new triplets (%.1f s); used_memory %lld -> %lld = %.1f bytes per triplet\n",
                keys, filled.decisions, filled.seconds, before, after,
                static_cast<double>(after - before) / static_cast<double>(std::max(1L, filled.decisions)));
    return 0;
}
