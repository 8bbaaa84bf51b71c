/*
 * store_bench.h: what the store benchmarks share.
 *
 * parse_options() reads the options every store benchmark takes: --url
 * (a list for --mode sentinel or cluster, as store.url), --mode, --master
 * (sentinel), --sessions, --loops, --seconds, one count (--triplets,
 * --buckets) and at most one flag without a value (--short).
 * run_sessions() plays SESSIONS concurrent SMTP sessions the way the
 * daemon serves them: LOOPS event-loop threads (one per core unless
 * --loops says otherwise), the sessions spread over them, each session
 * with one decision out at a time: DECIDE(session, i, done) starts
 * decision i, and the session starts decision i + 1 once done(ok) is
 * called, until SECONDS pass or LIMIT decisions are made.  Each decision
 * is timed from its start to its done, as a session sees it; report()
 * prints decisions/s and p50/p99/max.  done(false) counts an error.
 * redis_settings() is the RedisStore config for the options: on one
 * server (standalone) the benchmark flushes the database and measures
 * memory, its keys under the default prefix; behind Sentinel or on a
 * cluster it only times decisions, its keys under a prefix of its own
 * ("bench:PID:"), so nothing needs flushing.  Admin is a connection of
 * the benchmark's own to a standalone server, for FLUSHDB, INFO and
 * DBSIZE.
 */
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "config/config.h"
#include "store/redis_link.h"
#include "store/store.h"
#include "util/event_loop.h"

namespace portcullis::bench {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string url = "redis://127.0.0.1:6379/0";
    config::StoreMode mode = config::StoreMode::standalone;
    std::string master;  // --mode sentinel
    int sessions = 50;
    int loops = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    int seconds = 10;
    long count = 0;      // what COUNT_OPTION gave
    bool flag = false;   // whether FLAG_OPTION was given
};

inline config::StoreMode parse_mode(const char* program, const std::string& value) {
    if (value == "standalone") return config::StoreMode::standalone;
    if (value == "sentinel") return config::StoreMode::sentinel;
    if (value == "cluster") return config::StoreMode::cluster;
    std::fprintf(stderr, "%s: --mode is standalone, sentinel or cluster\n", program);
    std::exit(2);
}

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
        else if (name == "--master") options.master = value;
        else if (name == "--mode") options.mode = parse_mode(program, value);
        else if (name == "--sessions") options.sessions = std::max(1, std::atoi(value));
        else if (name == "--loops") options.loops = std::max(1, std::atoi(value));
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

/* Starts decision I of SESSION; DONE(ok) once it is made. */
using Decide = std::function<void(int session, long i, std::function<void(bool ok)> done)>;

inline PhaseResult run_sessions(const Options& options, int seconds, long limit, const Decide& decide) {
    struct Session {
        int number = 0;
        long next = 0;
    };
    struct LoopResult {
        long decisions = 0;
        long errors = 0;
        std::vector<double> latencies_us;
    };
    std::vector<LoopResult> results(static_cast<size_t>(options.loops));
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::seconds(seconds);
    {
        std::vector<std::jthread> threads;
        for (int l = 0; l < options.loops; ++l) {
            threads.emplace_back([&, l] {
                EventLoop loop;
                LoopResult& mine = results[static_cast<size_t>(l)];
                std::vector<Session> sessions;
                for (int s = l; s < options.sessions; s += options.loops) sessions.push_back({s, 0});
                size_t running = sessions.size();
                if (running == 0) return;
                // Decides SESSION's next, or ends it.
                std::function<void(Session&)> step = [&](Session& session) {
                    if (session.next >= limit || Clock::now() >= deadline) {
                        if (--running == 0) loop.stop();
                        return;
                    }
                    const auto one = Clock::now();
                    decide(session.number, session.next++, [&mine, &loop, &step, &session, one](bool ok) {
                        mine.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - one).count());
                        ++mine.decisions;
                        if (!ok) ++mine.errors;
                        // Not from inside the answer: a store may answer during decide().
                        loop.defer([&step, &session] { step(session); });
                    });
                };
                loop.defer([&] {
                    for (auto& session : sessions) step(session);
                });
                // run() and stop(), not run_until(): the last session may end
                // in a deferred task, after which run_until() would wait on.
                loop.run();
            });
        }
    }
    PhaseResult result;
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    for (auto& loop : results) {
        result.decisions += loop.decisions;
        result.errors += loop.errors;
        result.latencies_us.insert(result.latencies_us.end(), loop.latencies_us.begin(), loop.latencies_us.end());
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

inline bool standalone(const Options& options) { return options.mode == config::StoreMode::standalone; }

inline config::Config::Store redis_settings(const Options& options) {
    config::Config::Store settings;
    settings.backend = config::StoreBackend::redis;
    settings.url = options.url;
    settings.mode = options.mode;
    settings.master = options.master;
    if (!standalone(options)) settings.prefix = "bench:" + std::to_string(getpid()) + ":";
    settings.timeout = std::chrono::seconds(2);
    return settings;
}

/* The benchmark's own connection: its commands (FLUSHDB on a big
 * database, INFO) may take a while, each one. */
class Admin {
public:
    explicit Admin(const std::string& url)
        : link_(loop_, store::resolve_endpoint(parse_redis_url(url)), std::chrono::seconds(30)) {}

    store::RedisReply command(std::span<const std::string_view> args) {
        std::optional<store::LinkResult> result;
        link_.command(args, [&result](store::LinkResult got) { result = std::move(got); });
        loop_.run_until([&result] { return result.has_value(); });
        if (!result->ok) throw std::runtime_error("redis: " + result->error);
        return std::move(result->reply);
    }

    long long used_memory() {
        const std::string_view info[] = {"INFO", "memory"};
        const auto reply = command(info);
        const auto at = reply.text.find("used_memory:");
        return at == std::string::npos ? -1 : std::atoll(reply.text.c_str() + at + std::strlen("used_memory:"));
    }

    void flush_database() {
        const std::string_view flush[] = {"FLUSHDB"};
        command(flush);
    }

    long long keys() {
        const std::string_view dbsize[] = {"DBSIZE"};
        return command(dbsize).integer;
    }

private:
    EventLoop loop_;
    store::RedisLink link_;
};

}  // namespace portcullis::bench
