/*
 * auth_bench.cc: CPU time per message of SPF, DKIM, DMARC and the
 * Authentication-Results header, each alone and all together as the
 * daemon does them for one message, on one thread, DNS from tables.
 *
 *   bench_auth [--messages 2000] [--rounds 5] [--public-suffix-list FILE]
 *              MESSAGE KEY_RECORD [MESSAGE KEY_RECORD ...]
 *
 * MESSAGE is a DKIM-signed message with CRLF line ends, KEY_RECORD a file
 * whose first line is the key record's name, a space and the record
 * (signed_messages.py writes both, for an RSA-2048 and an Ed25519 key).
 * The message's From domain publishes "v=DMARC1; p=reject" and an SPF
 * record; the client is 198.51.100.20, not loopback (libspf2 passes
 * loopback clients without a lookup).  SPF is measured three times: with
 * the client in the domain's own record (one TXT lookup), and behind
 * three includes of four networks each, the client in the last one (four
 * TXT lookups), the way large senders publish theirs, once with every
 * answer in and once as a session makes it, libspf2 run again as each
 * answer comes (the copy of the table each message needs is included).
 *
 * The DKIM verifier gets the message as the milter hands it over: each
 * header field's value as it came after the colon (leading space kept),
 * then the body in one chunk (libmilter sends up to 64 KB at a time), and
 * its key's answer at finish().  The DNS tables answer at once, so each
 * check gives its verdict at its first call: what is timed is the CPU of
 * the checks, not the waiting for answers (a session's loop does other
 * work meanwhile).
 * "all together" is one message through SPF (the domain's own record),
 * DKIM, DMARC and the header, the way daemon/message_auth.cc chains them,
 * without its log lines and metrics.  Every message's verdict must pass:
 * a benchmark of a failing path measures nothing, so any other verdict
 * stops the run.
 *
 * Each row runs MESSAGES / 10 messages to warm up, then ROUNDS rounds of
 * MESSAGES messages, and reports the process's CPU time per message
 * (CLOCK_PROCESS_CPUTIME_ID) as the median and lowest of the rounds, and
 * the median wall time.  The DMARC checker is made once from the Public
 * Suffix List, as the daemon makes it per configuration; its
 * construction (the list's load) is timed on its own, median of ROUNDS.
 */
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "checks/auth_results.h"
#include "checks/dkim.h"
#include "checks/dmarc.h"
#include "checks/spf.h"
#include "support/fake_spf_dns.h"
#include "support/fake_txt_lookups.h"
#include "support/from_fields.h"
#include "support/mail_message.h"
#include "util/files.h"
#include "util/ip.h"
#include "util/text.h"

namespace {

using namespace portcullis;
using test_support::FakeSpfDns;
using test_support::FakeTxtLookups;

constexpr const char* kAuthservId = "mx.bench";
constexpr const char* kClient = "198.51.100.20";
constexpr const char* kHelo = "relay.example.net";
constexpr size_t kMaxFileBytes = 1024 * 1024;

struct Options {
    int messages = 2000;
    int rounds = 5;
    std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dat";
    std::vector<std::pair<std::string, std::string>> inputs;   // (message file, key record file)
};

[[noreturn]] void usage(const std::string& problem) {
    std::fprintf(stderr,
                 "bench_auth: %s\nusage: bench_auth [--messages N] [--rounds N] [--public-suffix-list FILE] "
                 "MESSAGE KEY_RECORD [MESSAGE KEY_RECORD ...]\n",
                 problem.c_str());
    std::exit(2);
}

Options parse_options(int argc, char** argv) {
    Options options;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--messages" && has_value) options.messages = std::atoi(argv[++i]);
        else if (arg == "--rounds" && has_value) options.rounds = std::atoi(argv[++i]);
        else if (arg == "--public-suffix-list" && has_value) options.public_suffix_list = argv[++i];
        else if (arg.starts_with("--")) usage("unknown option or missing value: " + arg);
        else files.push_back(arg);
    }
    if (files.empty() || files.size() % 2 != 0) usage("give MESSAGE KEY_RECORD pairs");
    if (options.messages < 10 || options.rounds < 1) usage("--messages needs 10 at least, --rounds 1");
    for (size_t i = 0; i < files.size(); i += 2) options.inputs.emplace_back(files[i], files[i + 1]);
    return options;
}

std::string read_file(const std::string& path) {
    FileText file = read_text_file(path, kMaxFileBytes);
    if (!file.ok) throw std::runtime_error(file.error);
    return std::move(file.text);
}

// ------------------------------------------------------------------ timing

double seconds_of(clockid_t clock) {
    timespec now{};
    clock_gettime(clock, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

/* The process's CPU time and the wall time since it was made. */
class Stopwatch {
public:
    double cpu_seconds() const { return seconds_of(CLOCK_PROCESS_CPUTIME_ID) - cpu_start_; }
    double wall_seconds() const { return seconds_of(CLOCK_MONOTONIC) - wall_start_; }

private:
    double cpu_start_ = seconds_of(CLOCK_PROCESS_CPUTIME_ID);
    double wall_start_ = seconds_of(CLOCK_MONOTONIC);
};

struct Timing {
    double cpu_median_us = 0;
    double cpu_min_us = 0;
    double wall_median_us = 0;
};

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const size_t middle = values.size() / 2;
    return values.size() % 2 != 0 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

/* ONE_MESSAGE run MESSAGES times per round, after a warm-up. */
Timing per_message(const Options& options, const std::function<void()>& one_message) {
    for (int i = 0; i < options.messages / 10; ++i) one_message();
    std::vector<double> cpu, wall;
    for (int round = 0; round < options.rounds; ++round) {
        const Stopwatch watch;
        for (int i = 0; i < options.messages; ++i) one_message();
        cpu.push_back(watch.cpu_seconds() * 1e6 / options.messages);
        wall.push_back(watch.wall_seconds() * 1e6 / options.messages);
    }
    return {median(cpu), *std::min_element(cpu.begin(), cpu.end()), median(wall)};
}

void print_row(const std::string& what, const Timing& timing) {
    std::printf("| %s | %.1f | %.1f | %.1f |\n", what.c_str(), timing.cpu_median_us, timing.cpu_min_us,
                timing.wall_median_us);
    std::fflush(stdout);
}

void expect(bool passed, const std::string& what) {
    if (!passed) throw std::runtime_error(what + " did not pass: the benchmark would measure a failing path");
}

// -------------------------------------------------------------- the checks

/* A signed message, and the DNS that makes all of its checks pass. */
struct Case {
    test_support::MailMessage message;
    size_t bytes = 0;
    std::vector<std::string> from_values;
    FakeTxtLookups txt;   // the DKIM key and the DMARC record
    std::string domain;   // d= of the signature, the From domain
    std::string label;    // "rsa-sha256, 2048-bit key"
};

/* The sender domain's SPF record listing the client itself. */
void add_direct_spf(FakeSpfDns& dns, const std::string& domain) {
    dns.add(domain, dns::RecordType::txt, {"v=spf1 ip4:" + std::string(kClient) + " -all"});
}

/* The sender domain's SPF record as three includes of four networks each,
 * the client's network last. */
void add_included_spf(FakeSpfDns& dns, const std::string& domain) {
    std::string top = "v=spf1";
    for (int include = 1; include <= 3; ++include) {
        const std::string name = "_spf" + std::to_string(include) + "." + domain;
        std::string record = "v=spf1";
        for (int network = 0; network < 3; ++network) {
            record += " ip4:" + std::to_string(192 + include) + "." + std::to_string(network * 64) + ".0.0/10";
        }
        record += include == 3 ? " ip4:198.51.100.0/24" : " ip4:10." + std::to_string(include) + ".0.0/16";
        dns.add(name, dns::RecordType::txt, {record + " ~all"});
        top += " include:" + name;
    }
    dns.add(domain, dns::RecordType::txt, {top + " -all"});
}

spf::Verdict check_spf(FakeSpfDns& dns, const spf::Request& request) {
    dns.queries.clear();   // the fake keeps every query: only this message's
    // Every answer is in (as on a replay once the last has come): one call.
    const std::optional<spf::Verdict> verdict = spf::check(request, dns);
    expect(verdict && verdict->result == spf::Result::pass, "SPF");
    return *verdict;
}

/* The SPF check as a session makes it: called again as each answer
 * comes, libspf2 starting over each time (spf.h). */
spf::Verdict replay_spf(const FakeSpfDns& dns, const spf::Request& request) {
    FakeSpfDns one_by_one = dns;
    one_by_one.hold_answers();
    spf::Verdict verdict = test_support::checked(request, one_by_one);
    expect(verdict.result == spf::Result::pass, "SPF");
    return verdict;
}

dkim::Verdict verify_dkim(Case& c) {
    c.txt.started.clear();
    c.txt.answered.clear();
    dkim::Verifier verifier;
    dkim::Verdict verdict = test_support::verify(verifier, c.message, c.txt);
    expect(verdict.summary() == "pass", "DKIM");
    return verdict;
}

dmarc::Verdict check_dmarc(const dmarc::Checker& checker, Case& c, const spf::Verdict& spf,
                           const dkim::Verdict& dkim) {
    dmarc::Identifiers ids{std::string(spf::result_name(spf.result)), spf.domain, {}};
    for (const auto& signature : dkim.signatures) {
        if (signature.result == dkim::Result::pass) ids.dkim_passing.push_back(signature.domain);
    }
    const FromHeader from = test_support::from_fields(c.from_values);   // the session's parse, per message
    checker.start_lookups(from, c.txt);
    std::optional<dmarc::Verdict> verdict = checker.check(from, ids, c.txt);
    expect(verdict && verdict->result == dmarc::Result::pass, "DMARC");
    return std::move(*verdict);
}

std::string results_header(const spf::Verdict& spf, const dkim::Verdict& dkim, const dmarc::Verdict& dmarc) {
    auth_results::Results results;
    results.spf = auth_results::Spf{std::string(spf::result_name(spf.result)), spf.domain, false};
    results.dkim = &dkim;
    results.dmarc = auth_results::Dmarc{dmarc, "none"};
    return auth_results::header_value(kAuthservId, results);
}

Case load_case(const std::string& message_file, const std::string& key_file) {
    Case c;
    const std::string raw = read_file(message_file);
    c.message = test_support::split_message(raw);
    c.bytes = raw.size();
    for (const auto& [name, value] : c.message.fields) {
        if (equals_nocase(name, "From")) c.from_values.push_back(value);
    }
    const std::string key = read_file(key_file);
    const size_t space = key.find(' ');
    const size_t end = key.find('\n');
    if (space == std::string::npos) throw std::runtime_error(key_file + ": want \"NAME RECORD\"");
    c.txt.add(key.substr(0, space), {key.substr(space + 1, end == std::string::npos ? end : end - space - 1)});
    const dkim::Verdict verdict = verify_dkim(c);
    const dkim::Signature& signature = verdict.signatures.front();
    c.domain = signature.domain;
    c.label = signature.algorithm +
              (signature.key_bits != 0 ? ", " + std::to_string(signature.key_bits) + "-bit key" : std::string());
    c.txt.add("_dmarc." + c.domain, {"v=DMARC1; p=reject"});
    return c;
}

void bench_case(const Options& options, const dmarc::Checker& checker, Case& c) {
    // The envelope sender is in the From domain, which signed.
    const spf::Request request{*parse_ip(kClient), kHelo, "sender@" + c.domain};
    FakeSpfDns direct, included;
    add_direct_spf(direct, c.domain);
    add_included_spf(included, c.domain);
    const spf::Verdict spf = check_spf(direct, request);
    const dkim::Verdict dkim = verify_dkim(c);
    const dmarc::Verdict dmarc = check_dmarc(checker, c, spf, dkim);
    std::printf("\n%s: %zu bytes, %zu header fields; %s\n", c.label.c_str(), c.bytes, c.message.fields.size(),
                results_header(spf, dkim, dmarc).c_str());
    std::printf("| what | CPU µs/message, median | CPU µs, lowest round | wall µs/message |\n|---|---|---|---|\n");
    print_row("SPF, client in the domain's record (1 TXT lookup)",
              per_message(options, [&] { check_spf(direct, request); }));
    print_row("SPF, client behind 3 includes (4 TXT lookups)",
              per_message(options, [&] { check_spf(included, request); }));
    print_row("SPF, 3 includes, replayed as each answer comes (5 calls)",
              per_message(options, [&] { replay_spf(included, request); }));
    print_row("DKIM, " + c.label, per_message(options, [&] { verify_dkim(c); }));
    print_row("DMARC (p=reject, both aligned)", per_message(options, [&] { check_dmarc(checker, c, spf, dkim); }));
    print_row("Authentication-Results header", per_message(options, [&] { results_header(spf, dkim, dmarc); }));
    print_row("all together: SPF + DKIM + DMARC + header", per_message(options, [&] {
                  const spf::Verdict s = check_spf(direct, request);
                  const dkim::Verdict d = verify_dkim(c);
                  results_header(s, d, check_dmarc(checker, c, s, d));
              }));
}

/* Making the checker (loading the Public Suffix List), in ms. */
void bench_checker_construction(const Options& options) {
    std::vector<double> cpu, wall;
    for (int round = 0; round < options.rounds; ++round) {
        const Stopwatch watch;
        const dmarc::Checker checker(options.public_suffix_list);
        cpu.push_back(watch.cpu_seconds() * 1e3);
        wall.push_back(watch.wall_seconds() * 1e3);
    }
    std::printf("\ndmarc::Checker construction (loads %s): %.2f ms CPU, %.2f ms wall (median of %d)\n",
                options.public_suffix_list.c_str(), median(cpu), median(wall), options.rounds);
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    try {
        const dmarc::Checker checker(options.public_suffix_list);
        std::printf("bench_auth: %d rounds of %d messages after %d to warm up, one thread; client %s\n",
                    options.rounds, options.messages, options.messages / 10, kClient);
        for (const auto& [message_file, key_file] : options.inputs) {
            Case c = load_case(message_file, key_file);
            bench_case(options, checker, c);
        }
        bench_checker_construction(options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "bench_auth: %s\n", error.what());
        return 1;
    }
    return 0;
}
