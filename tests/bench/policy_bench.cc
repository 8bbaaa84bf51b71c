/*
 * policy_bench.cc: what the shipped default policy costs per message, and
 * what loading it costs, without libmilter or an MTA.
 *
 * A "message" is one Session (one SMTP connection) driven through connect,
 * helo, mail, two recipients (one local, one foreign that the relay guard
 * refuses) and end of message, called as an engine calls it.  The policy
 * is policies/default.rules with its lists, copied to a temp dir where
 * lists/local-domains.txt also names example.com (the shipped list names
 * none) and the greylist skip list holds the untrusted client.  The store
 * is bench_greylist's and bench_ratelimit's business: here the greylist
 * rule's condition runs and passes the client, and the rate limits ask
 * stateful checks that let every unit pass at once.  Nothing is looked up
 * (DMARC has no value), so no stage waits; one that did would stop the
 * benchmark with an error.  Variants: an untrusted client
 * (203.0.113.5, every rule runs) and a trusted one (127.0.0.1, accepted at
 * connect), each with a sink that drops decisions and with the daemon's
 * log sink at info level writing to stderr redirected to /dev/null.
 */
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "milter/session.h"
#include "policy/loader.h"
#include "policy/stateful.h"
#include "util/log.h"

namespace portcullis::milter {
namespace {

namespace fs = std::filesystem;

const std::string kSourceDir = PORTCULLIS_SOURCE_DIR;
const std::string kShippedPolicy = kSourceDir + "/policies/default.rules";
constexpr const char* kLocalDomain = "example.com";
constexpr const char* kUntrustedClient = "203.0.113.5";

/* policies/ copied to a temp dir, with kLocalDomain added to the local
 * domains and kUntrustedClient to the greylist skip list; removed at exit. */
class PolicyCopy {
public:
    PolicyCopy() {
        std::string pattern = (fs::temp_directory_path() / "portcullis-bench-XXXXXX").string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        fs::copy(kSourceDir + "/policies", dir_, fs::copy_options::recursive);
        std::ofstream(dir_ / "lists" / "local-domains.txt", std::ios::app) << kLocalDomain << "\n";
        std::ofstream(dir_ / "lists" / "greylist-skip-networks.txt", std::ios::app) << kUntrustedClient << "\n";
    }
    ~PolicyCopy() {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }
    PolicyCopy(const PolicyCopy&) = delete;
    PolicyCopy& operator=(const PolicyCopy&) = delete;

    std::string rules() const { return (dir_ / "default.rules").string(); }

private:
    fs::path dir_;
};

std::shared_ptr<const policy::Policy> load_or_throw(const std::string& path) {
    auto result = policy::load_policy(path);
    if (!result.ok()) {
        std::string errors;
        for (const auto& error : result.errors) errors += error.str() + "\n";
        throw std::runtime_error("cannot load " + path + ":\n" + errors);
    }
    return result.policy;
}

/* Lets every unit pass, at once. */
class PassingChecks final : public policy::StatefulChecks {
public:
    void greylist(const policy::GreylistParams&, const policy::Facts&, Done done) override { done(pass()); }
    void ratelimit(const policy::RatelimitParams&, std::span<const std::string>, Done done) override { done(pass()); }

private:
    static policy::StatefulAnswer pass() { return {policy::StatefulAnswer::Kind::pass, 0, "reason=bench"}; }
};

/* The snapshot every message benchmark runs under, loaded once. */
std::shared_ptr<const Snapshot> bench_snapshot() {
    static const PolicyCopy copy;
    static const std::shared_ptr<const Snapshot> snapshot = [] {
        auto made = std::make_shared<Snapshot>(*make_snapshot(load_or_throw(copy.rules()), false));
        made->stateful = std::make_shared<PassingChecks>();
        return made;
    }();
    return snapshot;
}

/* Drops every decision: the policy's cost alone. */
class NullSink final : public DecisionSink {
public:
    bool wants_rule_checks() const override { return false; }
    void rule_checked(const Session&, policy::Stage, const policy::Rule&, bool) override {}
    void decision(const Session&, policy::Stage, std::string_view, const policy::Rule*, std::string_view) override {}
};

/* stderr sent to /dev/null while it lives (the log sink writes there). */
class StderrToDevNull {
public:
    StderrToDevNull() : saved_(dup(STDERR_FILENO)) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        close(null);
    }
    ~StderrToDevNull() {
        dup2(saved_, STDERR_FILENO);
        close(saved_);
    }
    StderrToDevNull(const StderrToDevNull&) = delete;
    StderrToDevNull& operator=(const StderrToDevNull&) = delete;

private:
    int saved_;
};

enum class Client { untrusted, trusted };
enum class SinkKind { null, log };

const IpAddress& client_ip(Client client) {
    static const IpAddress untrusted = *parse_ip(kUntrustedClient);
    static const IpAddress trusted = *parse_ip("127.0.0.1");
    return client == Client::untrusted ? untrusted : trusted;
}

/* A stage's answer; nullopt when the stage waited. */
using StageAnswer = std::optional<Answer::Kind>;

StageAnswer answer_of(const std::optional<Reply>& reply) {
    return reply ? StageAnswer(reply->answer.kind) : std::nullopt;
}

/* The answers of one message, in order: connect, helo, mail, local rcpt,
 * foreign rcpt, end of message. */
struct MessageAnswers {
    StageAnswer connect, helo, mail, local_rcpt, foreign_rcpt, eom;
};

MessageAnswers run_message(const std::shared_ptr<const Snapshot>& snapshot, DecisionSink& sink, Client client) {
    Session session(snapshot, {}, sink);
    MessageAnswers answers{};
    answers.connect = answer_of(session.connect(client_ip(client), "mail.example.net", 40000));
    answers.helo = answer_of(session.helo("mail.example.net", false));
    answers.mail = answer_of(session.mail("<sender@example.net>", "", 5400));
    answers.local_rcpt = answer_of(session.rcpt("<rcpt@example.com>"));
    answers.foreign_rcpt = answer_of(session.rcpt("<someone@foreign.example>"));
    answers.eom = answer_of(session.end_of_message());
    return answers;
}

/* What the policy must answer, so the benchmark measures the intended
 * path; a stage that waited answered nothing, which is never expected. */
bool answers_as_expected(const MessageAnswers& got, Client client) {
    using K = Answer::Kind;
    if (client == Client::trusted) return got.connect == K::accept;
    return got.connect == K::proceed && got.helo == K::proceed && got.mail == K::proceed &&
           got.local_rcpt == K::proceed && got.foreign_rcpt == K::reject && got.eom == K::proceed;
}

void BM_Message(benchmark::State& state, Client client, SinkKind sink_kind) {
    std::shared_ptr<const Snapshot> snapshot;
    try {
        snapshot = bench_snapshot();
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
    }
    NullSink null_sink;
    DecisionSink& sink = sink_kind == SinkKind::null ? static_cast<DecisionSink&>(null_sink) : daemon_sink();
    log::log_to_stderr(log::Level::info);
    StderrToDevNull quiet;
    if (!answers_as_expected(run_message(snapshot, sink, client), client)) {
        state.SkipWithError("the policy did not answer as expected");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(run_message(snapshot, sink, client));
    }
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_Message, untrusted_null_sink, Client::untrusted, SinkKind::null);
BENCHMARK_CAPTURE(BM_Message, untrusted_log_sink, Client::untrusted, SinkKind::log);
BENCHMARK_CAPTURE(BM_Message, trusted_null_sink, Client::trusted, SinkKind::null);
BENCHMARK_CAPTURE(BM_Message, trusted_log_sink, Client::trusted, SinkKind::log);

void BM_LoadDefaultPolicy(benchmark::State& state) {
    for (auto _ : state) {
        auto result = policy::load_policy(kShippedPolicy);
        if (!result.ok()) {
            state.SkipWithError("the shipped default policy does not load");
            return;
        }
        benchmark::DoNotOptimize(result.policy);
    }
}
BENCHMARK(BM_LoadDefaultPolicy)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace portcullis::milter
