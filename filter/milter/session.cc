/*
 * session.cc: stage events -> facts -> policy -> answer, the waits in
 * between, and the log line for every decision.
 */
#include "milter/session.h"

#include "metrics/metrics.h"
#include "util/event_loop.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::milter {

using policy::Outcome;
using policy::Stage;

namespace {

/* Headers kept for header() and From: enough for any real message; a
 * hostile one cannot make us hold more. */
constexpr size_t kMaxStoredHeaderBytes = 256 * 1024;
constexpr size_t kMaxStoredHeaderValue = 16 * 1024;

/* A stage's reply that changes nothing in the message. */
Reply answered(Answer answer) {
    Reply reply;
    reply.answer = std::move(answer);
    return reply;
}

Answer refusal_from(const policy::Verdict& verdict) {
    Answer answer;
    answer.kind = verdict.outcome == Outcome::reject ? Answer::Kind::reject : Answer::Kind::tempfail;
    answer.code = verdict.code;
    answer.xcode = verdict.xcode;
    answer.text = verdict.text;
    return answer;
}

/* 'reply="451 4.7.1 text"', then the verdict's note. */
std::string refusal_detail(const policy::Verdict& verdict) {
    std::string text = verdict.code + " " + verdict.xcode;
    for (const auto& line : verdict.text) text += " " + line;
    std::string detail = "reply=\"" + text + "\"";
    if (!verdict.note.empty()) detail += " " + verdict.note;
    return detail;
}

}  // namespace

std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const policy::Policy> policy, bool monitor_all) {
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->needs = policy::analyse_needs(*policy, monitor_all);
    snapshot->policy = std::move(policy);
    snapshot->monitor_all = monitor_all;
    return snapshot;
}

Session::Session(std::shared_ptr<const Snapshot> snapshot, std::function<void()> resume, DecisionSink& sink)
    : snapshot_(std::move(snapshot)), resume_(std::move(resume)), sink_(sink),
      alive_(std::make_shared<Session*>(this)) {
    if (snapshot_->checks) {
        checks_ = snapshot_->checks->begin_session([this] { wake(); });
        facts_.lookups = checks_.get();
        facts_.spf = checks_.get();
    }
}

// The stream and the checks go before the facts they point at.
Session::~Session() {
    message_stream_.reset();
    checks_.reset();
}

/* Something a stage may wait for has come.  The resume runs once the
 * current event is handled, and once for many answers that come together;
 * a session that no longer waits (or is gone) ignores it. */
void Session::wake() {
    if (wake_pending_) return;
    EventLoop* loop = EventLoop::current();
    if (!loop) return;   // only a test without a loop gets here
    wake_pending_ = true;
    loop->defer([alive = std::weak_ptr(alive_)] {
        const auto session = alive.lock();
        if (!session) return;
        (*session)->wake_pending_ = false;
        if ((*session)->waiting() && (*session)->resume_) (*session)->resume_();
    });
}

std::optional<Reply> Session::wait_with(Step next) {
    next_ = std::move(next);
    return std::nullopt;
}

std::optional<Reply> Session::resume() {
    if (!next_) return std::nullopt;
    Step next = std::move(next_);
    next_ = nullptr;
    return next();
}

/* STAGE's rules, then THEN with their answer (at once when the stage has
 * none). */
std::optional<Reply> Session::evaluate(Stage stage, std::function<std::optional<Reply>(Answer)> then) {
    if (snapshot_->policy->stage_rules(stage).empty()) return then(Answer{});
    run_.emplace(stage, [this] { wake(); });
    then_ = std::move(then);
    return go_on_evaluating();
}

std::optional<Reply> Session::go_on_evaluating() {
    class Relay final : public policy::RuleObserver {
    public:
        Relay(const Session& session, Stage stage) : session_(session), stage_(stage) {}
        void rule_checked(const policy::Rule& rule, bool applies) override {
            session_.sink_.rule_checked(session_, stage_, rule, applies);
        }

    private:
        const Session& session_;
        Stage stage_;
    };
    Relay relay(*this, run_->stage);
    const bool decided = policy::evaluate_stage(*snapshot_->policy, *run_, facts_, snapshot_->monitor_all,
                                                sink_.wants_rule_checks() ? &relay : nullptr,
                                                snapshot_->stateful.get());
    if (!decided) return wait_with([this] { return go_on_evaluating(); });
    const Answer answer = apply(run_->stage, run_->result);
    run_.reset();
    auto then = std::move(then_);
    then_ = nullptr;
    return then(answer);
}

std::optional<Reply> Session::connect(std::optional<IpAddress> ip, std::string_view host, uint16_t port) {
    facts_.client_ip = ip;
    // Sendmail hands "[192.0.2.1]" when it has no verified name.
    facts_.client_host = (host.empty() || host.front() == '[') ? "unknown" : std::string(host);
    facts_.client_port = port;
    return evaluate(Stage::connect, [this](Answer answer) -> std::optional<Reply> {
        if (answer.kind == Answer::Kind::reject || answer.kind == Answer::Kind::tempfail) {
            connection_refusal_ = answer;
            return Reply{};   // given at the next command, where a reply text can be sent
        }
        return answered(answer);
    });
}

std::optional<Reply> Session::helo(std::string_view name, bool tls) {
    facts_.helo = name;
    facts_.tls = tls;
    if (connection_refusal_) return answered(*connection_refusal_);
    if (connection_accepted_) return Reply{};
    helo_refusal_.reset();
    helo_effects_ = {};
    return evaluate(Stage::helo, [this](Answer answer) -> std::optional<Reply> {
        if (answer.kind == Answer::Kind::reject || answer.kind == Answer::Kind::tempfail) helo_refusal_ = answer;
        return answered(answer);
    });
}

std::optional<Reply> Session::mail(std::string_view sender, std::string_view auth_user, uint64_t declared_size) {
    abort_message();
    facts_.sender = strip_angle_brackets(sender);
    facts_.auth_user = auth_user;
    facts_.authenticated = !auth_user.empty();
    facts_.size = declared_size;
    if (connection_refusal_) return answered(*connection_refusal_);
    if (helo_refusal_) return answered(*helo_refusal_);
    if (connection_accepted_) return Reply{};
    return evaluate(Stage::mail, [](Answer answer) -> std::optional<Reply> { return answered(answer); });
}

std::optional<Reply> Session::rcpt(std::string_view recipient) {
    facts_.rcpt = strip_angle_brackets(recipient);
    if (connection_accepted_ || message_accepted_) {
        ++facts_.rcpt_count;
        return Reply{};
    }
    return evaluate(Stage::rcpt, [this](Answer answer) -> std::optional<Reply> {
        // An accept here covers this recipient only: the message goes on.
        if (answer.kind == Answer::Kind::accept) answer = Answer{};
        if (answer.kind == Answer::Kind::proceed) ++facts_.rcpt_count;
        return answered(answer);
    });
}

void Session::header(std::string_view name, std::string_view value) {
    // name ":" value CRLF, as the message travels.
    message_bytes_ += name.size() + 1 + value.size() + 2;
    if (equals_nocase(name, "From")) facts_.from.add_field(value);
    if (MessageStream* stream = message_stream()) stream->header(name, value);
    if (!snapshot_->needs.reads_header(name)) return;
    const size_t cost = name.size() + std::min(value.size(), kMaxStoredHeaderValue);
    if (stored_header_bytes_ + cost > kMaxStoredHeaderBytes) return;
    stored_header_bytes_ += cost;
    facts_.headers.push_back({std::string(name), std::string(value.substr(0, kMaxStoredHeaderValue))});
}

void Session::body(std::string_view chunk) {
    message_bytes_ += chunk.size();
    MessageStream* stream = message_stream();
    if (!stream) return;
    end_headers();
    stream->body(chunk);
}

std::optional<Reply> Session::end_of_message() {
    if (snapshot_->needs.body) facts_.size = message_bytes_ + 2;   // the empty line after the headers
    message_stream();   // a message without header fields
    end_headers();
    if (connection_accepted_ || message_accepted_) return finish_message(Reply{});
    return evaluate(Stage::eom, [this](Answer answer) { return finish_message(answered(answer)); });
}

/* The changes an end of message brings, unless it is refused: the
 * rules' headers and quarantine, and the Authentication-Results, whose
 * results may still be being worked out. */
std::optional<Reply> Session::finish_message(Reply reply) {
    const Answer::Kind kind = reply.answer.kind;
    if (kind == Answer::Kind::reject || kind == Answer::Kind::tempfail || kind == Answer::Kind::discard) return reply;
    for (const Effects* effects : {&connect_effects_, &helo_effects_, &message_effects_}) {
        reply.add_headers.insert(reply.add_headers.end(), effects->headers.begin(), effects->headers.end());
        if (effects->quarantine) reply.quarantine = effects->quarantine;   // the latest stage's wins
    }
    if (!message_stream_) return reply;
    std::optional<std::string> value = message_stream_->results_header(reply.quarantine ? "quarantine" : "none");
    if (!value) return wait_with([this, reply = std::move(reply)] { return finish_message(reply); });
    reply.remove_results = message_stream_->forged_results();
    if (!value->empty()) reply.results_header = std::move(*value);
    return reply;
}

/* The message's stream, begun with its data (not at MAIL: most refused
 * recipients never get that far).  A message accepted before its data
 * is not filtered and gets none. */
MessageStream* Session::message_stream() {
    if (!message_stream_ && checks_ && !connection_accepted_ && !message_accepted_) {
        message_stream_ = checks_->begin_message(facts_);
        facts_.auth = message_stream_.get();
    }
    return message_stream_.get();
}

/* The header ends at the first body chunk, or at eom for a message
 * without body. */
void Session::end_headers() {
    if (!message_stream_ || headers_ended_) return;
    headers_ended_ = true;
    message_stream_->end_of_headers();
}

void Session::abort_message() {
    facts_.auth = nullptr;
    message_stream_.reset();
    if (checks_) checks_->next_message();
    headers_ended_ = false;
    facts_.reset_message();
    message_effects_ = {};
    message_accepted_ = false;
    message_bytes_ = 0;
    stored_header_bytes_ = 0;
}

bool Session::has_pending_effects() const {
    return !connect_effects_.empty() || !helo_effects_.empty() || !message_effects_.empty();
}

Answer Session::apply(Stage stage, const policy::StageResult& result) {
    const policy::Verdict& verdict = result.verdict;
    // A refused recipient's run adds nothing to the message that goes on.
    const bool refused = verdict.outcome == Outcome::reject || verdict.outcome == Outcome::tempfail;
    collect(stage, result.effects, !(stage == Stage::rcpt && refused));
    Answer answer;
    switch (verdict.outcome) {
        case Outcome::none:
            return answer;
        case Outcome::accept:
            sink_.decision(*this, stage, "accept", verdict.rule, "");
            if (policy::is_connection_stage(stage)) connection_accepted_ = true;
            else if (stage == Stage::mail) message_accepted_ = true;
            // With effects still to apply at eom the MTA must keep calling us.
            answer.kind = (stage == Stage::rcpt || has_pending_effects()) ? Answer::Kind::proceed : Answer::Kind::accept;
            return answer;
        case Outcome::reject:
        case Outcome::tempfail:
            sink_.decision(*this, stage, policy::verdict_label(verdict), verdict.rule, refusal_detail(verdict));
            return refusal_from(verdict);
        case Outcome::discard:
            sink_.decision(*this, stage, "discard", verdict.rule, "");
            answer.kind = Answer::Kind::discard;
            return answer;
        case Outcome::quarantine: {
            const std::string& reason = verdict.text.front();
            sink_.decision(*this, stage, "quarantine", verdict.rule, "reason=\"" + reason + "\"");
            effects_of(stage).quarantine = reason;
            return answer;
        }
    }
    return answer;
}

Session::Effects& Session::effects_of(Stage stage) {
    if (stage == Stage::connect) return connect_effects_;
    return stage == Stage::helo ? helo_effects_ : message_effects_;
}

void Session::collect(Stage stage, const std::vector<policy::Effect>& effects, bool keep_headers) {
    auto& headers = effects_of(stage).headers;
    for (const auto& effect : effects) {
        switch (effect.kind) {
            case policy::Effect::Kind::add_header:
                if (!keep_headers) break;
                headers.emplace_back(effect.name, effect.value);
                sink_.decision(*this, stage, "add-header", effect.rule, "header=\"" + effect.name + ": " + effect.value + "\"");
                break;
            case policy::Effect::Kind::log:
                sink_.decision(*this, stage, "log", effect.rule, "text=\"" + effect.value + "\"");
                break;
            case policy::Effect::Kind::passed:
                sink_.decision(*this, stage, std::string(policy::action_name(effect.rule->action)) + " pass",
                               effect.rule, effect.value);
                break;
            case policy::Effect::Kind::monitored: {
                const auto& would = effect.would_be;
                std::string action = "monitor ";
                std::string detail;
                if (effect.name.empty()) {
                    action += policy::verdict_label(would);
                    if (would.outcome == Outcome::reject || would.outcome == Outcome::tempfail) {
                        detail = refusal_detail(would);
                    }
                } else {
                    action += "add-header";
                    detail = "header=\"" + effect.name + ": " + effect.value + "\"";
                }
                sink_.decision(*this, stage, action, effect.rule, detail);
                break;
            }
        }
    }
}

namespace {

/* "QUEUEID: stage: action client=... from=<...> to=<...> rule=FILE:LINE ...",
 * RULE as SourceLocation::log_str() gives it, or "" for none.  Built in
 * one string: several lines a message. */
std::string decision_line(const policy::Facts& facts, Stage stage, std::string_view action, std::string_view rule,
                          std::string_view detail) {
    std::string line;
    line.reserve(96 + facts.queue_id.size() + action.size() + facts.helo.size() + facts.sender.size() +
                 facts.rcpt.size() + rule.size() + detail.size());
    line += facts.queue_id.empty() ? std::string_view("NOQUEUE") : std::string_view(facts.queue_id);
    line += ": ";
    line += policy::stage_name(stage);
    line += ": ";
    line += action;
    line += " client=";
    line += facts.client_ip ? facts.client_ip->str() : std::string("local");
    const auto add = [&line](std::string_view label, std::string_view value, std::string_view close) {
        line += label;
        line += value;
        line += close;
    };
    if (!facts.helo.empty()) add(" helo=<", facts.helo, ">");
    if (stage >= Stage::mail) add(" from=<", facts.sender, ">");
    if (stage == Stage::rcpt) add(" to=<", facts.rcpt, ">");
    if (!rule.empty()) add(" rule=", rule, "");
    if (!detail.empty()) add(" ", detail, "");
    return line;
}

class DaemonSink final : public DecisionSink {
public:
    bool wants_rule_checks() const override { return log::enabled(log::Level::debug); }
    void rule_checked(const Session& session, Stage stage, const policy::Rule& rule, bool applies) override {
        log::debug(decision_line(session.facts(), stage, applies ? "rule applies" : "rule does not apply",
                                 rule.where.log_str(), ""));
    }
    void decision(const Session& session, Stage stage, std::string_view action, const policy::Rule* rule,
                  std::string_view detail) override {
        const std::string where = rule ? rule->where.log_str() : std::string();
        log::info(decision_line(session.facts(), stage, action, where, detail));
        const bool monitored = action.starts_with("monitor ");
        metrics::count_decision(policy::stage_name(stage), monitored ? action.substr(8) : action, monitored, where);
    }
};

}  // namespace

DecisionSink& daemon_sink() {
    static DaemonSink sink;
    return sink;
}

uint64_t declared_size(std::span<const std::string_view> arguments) {
    for (const auto argument : arguments) {
        if (argument.size() > 5 && equals_nocase(argument.substr(0, 5), "SIZE=")) {
            if (const auto size = parse_decimal<uint64_t>(argument.substr(5))) return *size;
        }
    }
    return 0;
}

}  // namespace portcullis::milter
