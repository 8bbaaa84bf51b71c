/*
 * try_command.cc: `portcullis try`: one message through the policy with
 * no MTA, printing stage by stage each rule tested and the verdict.
 *
 * It drives the same Session the milter glue drives, with a sink that
 * prints instead of logging, so what `try` shows is what the daemon does.
 * A MESSAGE_FILE (headers, empty line, body) feeds the eom stage; without
 * one the message is empty.  Greylist rules use the configured store (so
 * with Redis a try records its triplets, as a real attempt would; with the
 * memory backend they read the daemon's snapshot and record nothing), or
 * with --dry an empty store of their own.  dnsbl rules ask the
 * configured resolver, or with --dry no list at all (none applies).
 */
#include <algorithm>
#include <cstdio>
#include <string_view>

#include "daemon/checks.h"
#include "daemon/commands.h"
#include "milter/session_driver.h"
#include "store/memory_store.h"
#include "util/files.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

using milter::Answer;
using policy::Stage;

class PrintSink final : public milter::DecisionSink {
public:
    bool wants_rule_checks() const override { return true; }
    void rule_checked(const milter::Session&, Stage, const policy::Rule& rule, bool applies) override {
        std::printf("  %-28s %-11s %s\n", rule.where.log_str().c_str(), std::string(policy::action_name(rule.action)).c_str(),
                    applies ? "applies" : "-");
    }
    void decision(const milter::Session&, Stage, std::string_view action, const policy::Rule* rule,
                  std::string_view detail) override {
        std::string line = "  => " + std::string(action);
        if (rule) {
            line += " (";
            line += rule->where.log_str();
            line += ')';
        }
        if (!detail.empty()) {
            line += ' ';
            line += detail;
        }
        std::printf("%s\n", line.c_str());
    }
};

std::string describe(const Answer& answer) {
    switch (answer.kind) {
        case Answer::Kind::proceed: return "continue";
        case Answer::Kind::accept: return "accept";
        case Answer::Kind::discard: return "discard";
        case Answer::Kind::reject:
        case Answer::Kind::tempfail: {
            std::string text = answer.code + " " + answer.xcode;
            for (const auto& line : answer.text) text += " " + line;
            return text;
        }
    }
    return "?";
}

bool refuses(const Answer& answer) {
    return answer.kind == Answer::Kind::reject || answer.kind == Answer::Kind::tempfail ||
           answer.kind == Answer::Kind::discard;
}

/* A message file is read whole before the session starts, so that a
 * wrong name is bad usage (exit 2) even when no recipient is accepted. */
constexpr size_t kMaxMessageFileBytes = 64 * 1024 * 1024;

/* Feed the header fields (each value as it follows the colon, folds
 * kept) and the body of MESSAGE, a message file's text. */
void feed_message(std::string_view message, milter::SessionDriver& driver) {
    std::string name, value;
    auto flush = [&] {
        if (!name.empty()) driver.feed([&](milter::Session& session) { session.header(name, value); });
        name.clear();
        value.clear();
    };
    size_t at = 0;
    while (at < message.size()) {
        const size_t end = std::min(message.find('\n', at), message.size());
        std::string_view line = message.substr(at, end - at);
        at = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        if ((line[0] == ' ' || line[0] == '\t') && !name.empty()) {
            value += "\r\n";
            value += line;
            continue;
        }
        flush();
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;   // not a header line: skipped, as an MTA would refuse it
        name = line.substr(0, colon);
        value = line.substr(colon + 1);
    }
    flush();
    driver.feed([text = std::string(message.substr(std::min(at, message.size())))](milter::Session& session) {
        session.body(text);
    });
}

}  // namespace

int try_command(const ConfigSource& source, const TryOptions& options) {
    const auto ip = parse_ip(options.ip);
    if (!ip) {
        std::fprintf(stderr, "portcullis try: --ip %s: not an IP address\n", options.ip.c_str());
        return kExitUsage;
    }
    FileText message;
    if (!options.message_file.empty()) {
        message = read_text_file(options.message_file, kMaxMessageFileBytes);
        if (!message.ok) {
            std::fprintf(stderr, "portcullis try: message file: %s\n", message.error.c_str());
            return kExitUsage;
        }
    }
    auto outcome = load_state(source);
    for (const auto& error : outcome.errors) std::fprintf(stderr, "%s\n", error.c_str());
    for (const auto& warning : outcome.warnings) std::fprintf(stderr, "%s\n", warning.str().c_str());
    if (!outcome.state) return kExitBadConfig;
    // --dry: a fresh store of our own, so greylisting sees every triplet as
    // new, and no resolver.
    const auto& store_settings = outcome.state->config.store;
    const Resources resources{options.dry ? std::make_unique<store::MemoryStore>("", store_settings.memory_limit)
                                          : store::open_store_view(store_settings),
                              !options.dry};
    if (const auto error = attach_checks(*outcome.state, resources); !error.empty()) {
        std::fprintf(stderr, "portcullis try: %s\n", error.c_str());
        return kExitBadConfig;
    }

    PrintSink sink;
    milter::SessionDriver driver(outcome.state->snapshot, sink);
    using milter::Session;
    std::printf("policy %s%s\n", outcome.state->config.policy.file.c_str(),
                outcome.state->snapshot->monitor_all ? " (monitor mode)" : "");
    // Each stage: its heading, the rules the sink prints, then the reply.
    auto stage = [](const std::string& heading) { std::printf("%s\n", heading.c_str()); };
    auto reply = [&driver](const std::function<std::optional<milter::Reply>(Session&)>& step) {
        const Answer answer = driver.stage(step).answer;
        std::printf("  reply: %s\n", describe(answer).c_str());
        return answer;
    };

    stage("connect client=" + ip->str());
    if (refuses(reply([&](Session& session) { return session.connect(*ip, "unknown", 0); }))) return kExitOk;
    stage(options.helo.empty() ? std::string("helo (no name)") : "helo " + options.helo);
    if (refuses(reply([&](Session& session) { return session.helo(options.helo, false); }))) return kExitOk;
    // Addresses as the session takes them: "<>" and "a@b" alike, shown in brackets once.
    const auto bracketed = [](const std::string& address) {
        std::string shown = "<";
        shown += strip_angle_brackets(address);
        shown += '>';
        return shown;
    };
    stage("mail from=" + bracketed(options.from) + (options.user.empty() ? "" : " user=" + options.user));
    if (refuses(reply([&](Session& session) { return session.mail(options.from, options.user, 0); }))) {
        return kExitOk;
    }

    size_t accepted = 0;
    for (const auto& recipient : options.to) {
        stage("rcpt to=" + bracketed(recipient));
        if (!refuses(reply([&](Session& session) { return session.rcpt(recipient); }))) ++accepted;
    }
    if (accepted == 0) {
        std::printf("verdict: no recipient accepted; no DATA\n");
        return kExitOk;
    }
    if (!options.message_file.empty()) feed_message(message.text, driver);
    stage("eom " + std::to_string(accepted) + " of " + std::to_string(options.to.size()) + " recipients");
    const milter::Reply end = driver.stage([](Session& session) { return session.end_of_message(); });
    std::printf("  reply: %s\n", describe(end.answer).c_str());
    for (const int position : end.remove_results) {
        std::printf("  remove header Authentication-Results #%d (claims our authserv-id)\n", position);
    }
    if (end.results_header) std::printf("  insert header Authentication-Results: %s\n", end.results_header->c_str());
    for (const auto& [name, value] : end.add_headers) std::printf("  add header %s: %s\n", name.c_str(), value.c_str());
    if (end.quarantine) std::printf("  quarantine: %s\n", end.quarantine->c_str());
    std::printf("verdict: %s\n", refuses(end.answer) ? describe(end.answer).c_str()
                                                      : (end.quarantine ? "delivered to quarantine" : "delivered"));
    return kExitOk;
}

}  // namespace portcullis::daemon
