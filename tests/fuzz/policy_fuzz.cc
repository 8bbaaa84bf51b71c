/*
 * policy_fuzz.cc: the fuzz target for the policy language.
 *
 * Each input is the text of a policy file.  parse_policy() reads it with
 * relative paths resolved in a sandbox directory, made once per process,
 * that holds a list file of each kind, a map file, files with malformed
 * items and lines (lists/mixed.txt, maps/odd.txt), two files for a glob
 * include and a file that includes itself, so that inputs can name
 * "lists/ip.txt", "maps/logins.txt", "loop.rules" or a glob in "conf.d".
 * While the loader runs, file access is fenced into the sandbox
 * (file_fence.h).  A policy that loads is evaluated at every stage over
 * three fixed sessions, with and without monitor mode, and analysed for
 * its needs; the verdicts are checked against the spec's promises (reply
 * codes of the action's class, reply lines without control characters
 * and within RFC 5321's line (kMaxReplyLine), quarantine, header and log
 * texts within 980 bytes), and a broken promise aborts like a crash.  A
 * session without lookups or a store never waits.  The first session
 * also runs with fake lookups and a fake store (tests/unit/support/
 * later_answers.h), once answering at once and once later: the walk that
 * waits must end, test each rule once, and decide exactly as the one
 * that did not wait.  A load that fails must say why, in at most 50
 * errors.
 */
#include <string>
#include <vector>

#include "file_fence.h"
#include "fuzz_target.h"
#include "policy/evaluator.h"
#include "policy/loader.h"
#include "policy/needs.h"
#include "policy/template.h"
#include "scratch_directory.h"
#include "support/later_answers.h"

namespace portcullis::fuzz {
namespace {

using namespace portcullis::policy;

struct SandboxFile {
    const char* path;
    const char* text;
};

constexpr SandboxFile kSandboxFiles[] = {
    {"lists/ip.txt", "# trusted networks\n127.0.0.0/8\n::1\n192.0.2.0/24, 2001:db8::/32\n::ffff:10.0.0.0/104\n"},
    {"lists/domains.txt", "example.com\n=exact.example\nEXAMPLE.net.  # a comment\n"},
    {"lists/addresses.txt", "ceo@example.com\n@partner.example\npostmaster@\n"},
    {"lists/regex.txt", "/^mail[0-9]+\\./i\n/\\bspam\\b/\n"},
    {"lists/strings.txt", "alice \"Bob Smith\", carol\n"},
    {"maps/logins.txt", "alice@example.com alice\n@example.org bob carol\n# comment\n"},
    {"maps/odd.txt", "/regex/ value\nlonely\n\"quoted key\" \"quoted, value\"\nkey v1,v2\n"},
    {"lists/mixed.txt", "10.0.0.0/8 not-an-ip /regex/i \"string\" =exact.example @domain user@ \xff\n"},
    {"conf.d/10-connect.rules", "on connect {\n    accept if client.ip in { 127.0.0.1 ::1 }\n}\n"},
    {"conf.d/20-rcpt.rules",
     "list conf_local domain { example.com }\non rcpt {\n    reject if not rcpt.domain in conf_local\n"
     "       and not authenticated\n}\n"},
    {"loop.rules", "include \"loop.rules\"\n"},
};

Facts outside_client() {
    Facts facts;
    facts.client_ip = parse_ip("203.0.113.5");
    facts.client_host = "mail.example.net";
    facts.client_port = 25;
    facts.helo = "mail.example.net";
    facts.sender = "alice@example.net";
    facts.size = 1234;
    facts.rcpt = "bob@example.com";
    facts.rcpt_count = 1;
    facts.headers = {{"Subject", " hello"}, {"From", " Alice <alice@example.net>"}};
    facts.queue_id = "4FxY1m2Zc8z9sQ";
    return facts;
}

/* Values a client controls, at their worst: control characters, '%',
 * multi-byte UTF-8 around the cuts, extreme numbers. */
Facts hostile_client() {
    Facts facts;
    facts.client_ip = parse_ip("2001:db8::1");
    facts.client_port = 65535;
    facts.helo = "evil\r\n250 ok%s\x7f";
    facts.tls = true;
    facts.authenticated = true;
    facts.auth_user = "Alice";
    facts.sender = "";
    facts.size = UINT64_MAX;
    facts.rcpt = "Postmaster";
    facts.rcpt_count = UINT64_MAX;
    std::string long_value(" \x01\r\n%s ${client.ip} ");
    while (long_value.size() < 2000) long_value += "\xc3\xa9";
    facts.headers = {{"subject", long_value}, {"From", " (Bob, \"x\") bob@example.org,carol@x"}, {"From", " <>"}};
    return facts;
}

Facts local_submission() { return Facts{}; }

const std::vector<Facts>& sessions() {
    static const std::vector<Facts> all = {outside_client(), hostile_client(), local_submission()};
    return all;
}

bool is_safe_line(const std::string& line, size_t limit) {
    if (line.size() > limit) return false;
    for (const char c : line) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    }
    return true;
}

bool all_safe(const std::vector<std::string>& lines, size_t limit) {
    for (const auto& line : lines) {
        if (!is_safe_line(line, limit)) return false;
    }
    return true;
}

void check_verdict(const Verdict& verdict) {
    if (verdict.outcome == Outcome::none) return;
    fuzz_require(verdict.rule != nullptr, "a verdict names its rule");
    const bool refusal = verdict.outcome == Outcome::reject || verdict.outcome == Outcome::tempfail;
    fuzz_require(all_safe(verdict.text, refusal ? kMaxReplyLine : kMaxTextLine),
                 "reply lines are safe and within RFC 5321's line, a quarantine reason within 980 bytes");
    if (!refusal) return;
    const char wanted = verdict.outcome == Outcome::reject ? '5' : '4';
    fuzz_require(verdict.code.size() == 3 && verdict.code[0] == wanted, "reject is 5xx, tempfail 4xx");
    fuzz_require(!verdict.xcode.empty() && verdict.xcode[0] == wanted, "the enhanced code agrees with the code");
    fuzz_require(!verdict.text.empty() && verdict.text.size() <= kMaxReplyLines, "1 to 32 reply lines");
}

void check_effect(const Effect& effect) {
    fuzz_require(effect.rule != nullptr, "an effect names its rule");
    fuzz_require(is_safe_line(effect.value, kMaxTextLine), "header and log texts are safe lines of at most 980 bytes");
    check_verdict(effect.would_be);
}

/* Counts the rules tested, which cannot be more than the stage has. */
class CountingObserver final : public RuleObserver {
public:
    void rule_checked(const Rule&, bool applies) override {
        ++checked_;
        applied_ += applies ? 1 : 0;
    }
    size_t checked() const { return checked_; }
    size_t applied() const { return applied_; }

private:
    size_t checked_ = 0;
    size_t applied_ = 0;
};

void check_result(const Policy& policy, Stage stage, bool monitor_all, const StageResult& result,
                  const CountingObserver& observer) {
    check_verdict(result.verdict);
    fuzz_require(observer.checked() <= policy.stage_rules(stage).size(), "each rule tested once");
    fuzz_require(result.verdict.outcome == Outcome::none || observer.applied() > 0, "a verdict has a rule");
    fuzz_require(!monitor_all || result.verdict.outcome == Outcome::none, "monitor mode enforces nothing");
    for (const Effect& effect : result.effects) check_effect(effect);
}

/* What the lookups and the store of one session answer, at once or later. */
struct Sources {
    explicit Sources(bool later) {
        lookups.answers.later = spf.checks.later = stateful.later = later;
        auth.set_later(later);
        // The lists the corpus names, for the first session's client and sender.
        lookups.list("5.113.0.203.zen.spamhaus.org", {"127.0.0.10", "127.0.0.2"});
        lookups.list("example.net.dbl.example", {"127.0.1.2"});
        stateful.answer = {StatefulAnswer::Kind::pass, 0, "reason=pass"};
    }
    void arrive() {
        lookups.answers.arrive();
        spf.checks.arrive();
        auth.arrive();
        stateful.answer_all();
    }
    Facts with(Facts facts) {
        facts.lookups = &lookups;
        facts.spf = &spf;
        facts.auth = &auth;
        return facts;
    }

    test_support::FakeAddressLookups lookups;
    test_support::FakeSpfResults spf;
    test_support::FakeAuthentication auth;
    test_support::FakeStatefulChecks stateful;
};

/* STAGE walked to its end with SOURCES, each stop answered.  A rule
 * stops the walk at most this often: for a fact, for the list named by
 * a fact (spf.domain in dnsbl), for its texts' facts, for the store. */
constexpr size_t kStopsPerRule = 4;

StageResult walk(const Policy& policy, Stage stage, bool monitor_all, Sources& sources, const Facts& facts) {
    CountingObserver observer;
    StageRun run(stage);
    size_t stops = 0;
    while (!evaluate_stage(policy, run, facts, monitor_all, &observer, &sources.stateful)) {
        fuzz_require(++stops <= kStopsPerRule * policy.stage_rules(stage).size(), "a walk that waits ends");
        sources.arrive();
    }
    check_result(policy, stage, monitor_all, run.result, observer);
    return std::move(run.result);
}

bool same_verdict(const Verdict& a, const Verdict& b) {
    return a.outcome == b.outcome && a.rule == b.rule && a.code == b.code && a.xcode == b.xcode && a.text == b.text &&
           a.note == b.note;
}

bool same_result(const StageResult& a, const StageResult& b) {
    if (!same_verdict(a.verdict, b.verdict) || a.effects.size() != b.effects.size()) return false;
    for (size_t i = 0; i < a.effects.size(); ++i) {
        const Effect& x = a.effects[i];
        const Effect& y = b.effects[i];
        if (x.kind != y.kind || x.rule != y.rule || x.name != y.name || x.value != y.value ||
            !same_verdict(x.would_be, y.would_be)) {
            return false;
        }
    }
    return true;
}

void evaluate_everywhere(const Policy& policy) {
    for (const bool monitor_all : {false, true}) {
        analyse_needs(policy, monitor_all);
        for (const Facts& facts : sessions()) {
            for (const Stage stage : kAllStages) {
                CountingObserver observer;
                StageRun run(stage);
                fuzz_require(evaluate_stage(policy, run, facts, monitor_all, &observer),
                             "a session without lookups or a store never waits");
                check_result(policy, stage, monitor_all, run.result, observer);
            }
        }
        for (const Stage stage : kAllStages) {
            if (policy.stage_rules(stage).empty()) continue;
            Sources at_once(false), later(true);
            const StageResult known = walk(policy, stage, monitor_all, at_once, at_once.with(outside_client()));
            const StageResult waited = walk(policy, stage, monitor_all, later, later.with(outside_client()));
            fuzz_require(same_result(known, waited), "answers that come later decide as answers at once");
            fuzz_require(at_once.stateful.calls == later.stateful.calls, "the store is asked once per rule");
        }
    }
}

void check_errors(const LoadResult& result) {
    fuzz_require(!result.errors.empty(), "a failed load says why");
    fuzz_require(result.errors.size() <= kMaxReportedErrors, "at most 50 errors");
    for (const auto& error : result.errors) fuzz_require(!error.str().empty() && !error.message.empty(), "error text");
}

LoadResult load(std::string_view text, const ScratchDirectory& sandbox) {
    const FileFence fence(sandbox.path().string());
    return parse_policy(text, "fuzz.rules", sandbox.path().string());
}

/* The fence only works if the loader's calls really are wrapped: a
 * policy naming a file outside it must fail to load. */
void check_fence(const ScratchDirectory& sandbox) {
    const LoadResult result = load("include \"/dev/null\"\n", sandbox);
    fuzz_require(!result.ok() && result.errors.front().message.find("Permission denied") != std::string::npos,
                 "the policy loader's open() is fenced (link with -Wl,--wrap=open,--wrap=glob)");
}

bool fill_sandbox(const ScratchDirectory& sandbox) {
    for (const auto& file : kSandboxFiles) sandbox.write(file.path, file.text);
    check_fence(sandbox);
    return true;
}

/* The sandbox, made, filled and checked at the first input. */
const ScratchDirectory& sandbox() {
    static const ScratchDirectory made("portcullis-policy-fuzz");
    static const bool filled = fill_sandbox(made);
    (void)filled;
    return made;
}

}  // namespace
}  // namespace portcullis::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace portcullis::fuzz;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto result = load(text, sandbox());
    if (result.ok()) evaluate_everywhere(*result.policy);
    else check_errors(result);
    return 0;
}
