/*
 * store_bench.h: what the store benchmarks share.
 *
 * parse_options() reads the options every store benchmark takes: --url,
 * --sessions, --seconds, one count (--triplets, --buckets) and at most one
 * flag without a value (--short).
 * run_sessions() plays SESSIONS concurrent SMTP sessions as threads, each
 * calling DECIDE(thread, i) for i = 0, 1, ... until SECONDS pass or
 * LIMIT calls are made, and times every call as a milter worker would
 * see it; report() prints decisions/s and p50/p99/max.  A DECIDE that
 * throws store::StoreError counts as an error.  redis_settings() is the
 * RedisStore config for a --url; used_memory() reads INFO memory over
 * an admin connection.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_connection.h"
#include "store/store.h"

namespace portcullis::bench {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string url = "redis://127.0.0.1:6379/0";
    int sessions = 50;
    int seconds = 10;
    long count = 0;      // what COUNT_OPTION gave
    bool flag = false;   // whether FLAG_OPTION was given
};

/* PROGRAM names the benchmark in errors; a bad option exits 2. */
inline Options parse_options(int argc, char** argv, const char* program, const std::string& count_option,
                             long default_count, const std::string& flag_option = "") {
    Options options;
    options.count = default_count;
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (!flag_option.empty() && name == flag_option) {
            options.flag = true;
            continue;
        }
        if (i + 1 >= argc) std::fprintf(stderr, "%s: %s needs a value\n", program, name.c_str()), std::exit(2);
        const char* value = argv[++i];
        if (name == "--url") options.url = value;
        else if (name == "--sessions") options.sessions = std::max(1, std::atoi(value));
        else if (name == "--seconds") options.seconds = std::max(1, std::atoi(value));
        else if (name == count_option) options.count = std::max(1L, std::atol(value));
        else std::fprintf(stderr, "%s: unknown option %s\n", program, name.c_str()), std::exit(2);
    }
    return options;
}

struct PhaseResult {
    long decisions = 0;
    long errors = 0;
    double seconds = 0;
    std::vector<double> latencies_us;
};

inline PhaseResult run_sessions(int sessions, int seconds, long limit,
                                const std::function<void(int thread, long i)>& decide) {
    std::vector<std::vector<double>> latencies(static_cast<size_t>(sessions));
    std::vector<long> counts(static_cast<size_t>(sessions)), errors(static_cast<size_t>(sessions));
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    const auto started = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < sessions; ++t) {
        threads.emplace_back([&, t] {
            const auto slot = static_cast<size_t>(t);
            for (long i = 0; i < limit && Clock::now() < deadline; ++i) {
                const auto one = Clock::now();
                try {
                    decide(t, i);
                } catch (const store::StoreError&) {
                    ++errors[slot];
                }
                latencies[slot].push_back(std::chrono::duration<double, std::micro>(Clock::now() - one).count());
                ++counts[slot];
            }
        });
    }
    for (auto& thread : threads) thread.join();
    PhaseResult result;
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    for (size_t t = 0; t < latencies.size(); ++t) {
        result.decisions += counts[t];
        result.errors += errors[t];
        result.latencies_us.insert(result.latencies_us.end(), latencies[t].begin(), latencies[t].end());
    }
    return result;
}

inline double percentile(std::vector<double>& values, double p) {
    if (values.empty()) return 0;
    const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
    std::nth_element(values.begin(), values.begin() + static_cast<long>(index), values.end());
    return values[index];
}

inline void report(const char* phase, PhaseResult result) {
    const double max = result.latencies_us.empty()
                           ? 0
                           : *std::max_element(result.latencies_us.begin(), result.latencies_us.end());
    std::printf("%-6s %9ld decisions in %5.2f s = %8.0f/s  p50 %7.0f us  p99 %7.0f us  max %7.0f us  errors %ld\n",
                phase, result.decisions, result.seconds, static_cast<double>(result.decisions) / result.seconds,
                percentile(result.latencies_us, 0.50), percentile(result.latencies_us, 0.99), max, result.errors);
}

inline config::Config::Store redis_settings(const std::string& url) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.url = url;
    settings.timeout = std::chrono::seconds(2);
    return settings;
}

/* The benchmark's own commands (FLUSHDB on a big database, INFO) may take
 * a while, each one. */
inline store::Deadline admin_deadline() { return store::Deadline::after(std::chrono::seconds(30)); }

inline long long used_memory(store::RedisConnection& connection) {
    const std::string_view info[] = {"INFO", "memory"};
    const auto reply = connection.command(info, admin_deadline());
    const auto at = reply.text.find("used_memory:");
    return at == std::string::npos ? -1 : std::atoll(reply.text.c_str() + at + std::strlen("used_memory:"));
}

inline void flush_database(store::RedisConnection& connection) {
    const std::string_view flush[] = {"FLUSHDB"};
    connection.command(flush, admin_deadline());
}

}  // namespace portcullis::bench
