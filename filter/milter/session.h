/*
 * session.h: one SMTP session as the filter follows it, whichever engine
 * speaks the milter protocol.
 *
 * The engine calls one method per MTA event; each updates the facts, runs
 * the stage's rules under the session's snapshot, logs the decision and
 * gives a Reply for the engine to turn into milter replies.  A stage that
 * needs a fact still being looked up, or a store answer, does not wait:
 * it returns nullopt, and once what it waits for has come the session
 * calls RESUME (on its loop, never from inside one of its own methods);
 * the engine then calls resume(), which goes on where the stage stopped,
 * at the same rule, and returns the Reply or nullopt again.  Until a
 * stage has its Reply the engine gives the session no other event.
 * All calls come from the thread of one event loop.
 *
 * The rules of the language live here:
 *   - accept at connect or helo ends filtering for the connection, at
 *     mail for the message, at rcpt for that recipient (eom still runs);
 *   - reject/tempfail at rcpt refuse the recipient; at mail and eom the
 *     message;
 *   - a connect-stage refusal is not sent at connect (libmilter gives no
 *     reply text there), so it is kept and given at every later command
 *     (HELO, MAIL), with the rule's code and text;
 *   - add-header and quarantine are applied at end of message; those met
 *     at connect apply to every message of the connection, those of
 *     helo until the next HELO; the headers of a rcpt run that refuses
 *     its recipient are not added;
 *   - DNS list answers are kept for the whole session (one lookup per
 *     name), SPF answers for the message, in the snapshot's SessionChecks;
 *   - every From field is parsed as it comes, into Facts::from, the one
 *     parse that from, from.domain and DMARC read;
 *   - with the snapshot's checks, each message not accepted before its
 *     data is followed by a MessageStream (DKIM, DMARC): its header fields
 *     (VALUE as it came after the colon, leading white space kept) and
 *     body chunks go to it, and at eom the session asks it which
 *     Authentication-Results fields claim to be ours (to be removed, last
 *     to first) and for our own (to be inserted first), unless the
 *     message is refused.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "milter/snapshot.h"
#include "policy/evaluator.h"
#include "policy/facts.h"

namespace portcullis::milter {

struct Answer {
    enum class Kind { proceed, accept, reject, tempfail, discard };
    Kind kind = Kind::proceed;
    std::string code;                   // reject, tempfail
    std::string xcode;
    std::vector<std::string> text;      // reply lines
};

/* A stage's outcome; the changes to the message come only at its end. */
struct Reply {
    Answer answer;
    std::vector<int> remove_results;             // positions of forged Authentication-Results, ascending
    std::optional<std::string> results_header;   // our Authentication-Results value, inserted at the top
    std::vector<std::pair<std::string, std::string>> add_headers;
    std::optional<std::string> quarantine;
};

class Session;

/* Where a session's decisions go: the daemon's log, or `try`'s output. */
class DecisionSink {
public:
    virtual ~DecisionSink() = default;
    virtual bool wants_rule_checks() const = 0;
    virtual void rule_checked(const Session& session, policy::Stage stage, const policy::Rule& rule,
                              bool applies) = 0;
    virtual void decision(const Session& session, policy::Stage stage, std::string_view action,
                          const policy::Rule* rule, std::string_view detail) = 0;
};

/* The daemon's sink: one log line per decision (docs/daemon.md,
 * "Logging"), and the decision counted in the metrics. */
DecisionSink& daemon_sink();

class Session {
public:
    Session(std::shared_ptr<const Snapshot> snapshot, std::function<void()> resume,
            DecisionSink& sink = daemon_sink());
    ~Session();
    Session(const Session&) = delete;   // facts_ points at checks_ and message_stream_
    Session& operator=(const Session&) = delete;

    const Snapshot& snapshot() const { return *snapshot_; }
    policy::Facts& facts() { return facts_; }
    const policy::Facts& facts() const { return facts_; }

    std::optional<Reply> connect(std::optional<IpAddress> ip, std::string_view host, uint16_t port);
    std::optional<Reply> helo(std::string_view name, bool tls);
    std::optional<Reply> mail(std::string_view sender, std::string_view auth_user, uint64_t declared_size);
    std::optional<Reply> rcpt(std::string_view recipient);
    void header(std::string_view name, std::string_view value);
    void body(std::string_view chunk);
    std::optional<Reply> end_of_message();
    /* The stage that returned nullopt, once RESUME was called. */
    std::optional<Reply> resume();
    /* Forget the current message (MAIL FROM starts a new one; RSET, or the
     * MTA giving up on it). */
    void abort_message();
    /* Whether a stage waits to be resumed. */
    bool waiting() const { return static_cast<bool>(next_); }

private:
    using Step = std::function<std::optional<Reply>()>;

    std::optional<Reply> evaluate(policy::Stage stage, std::function<std::optional<Reply>(Answer)> then);
    std::optional<Reply> go_on_evaluating();
    std::optional<Reply> wait_with(Step next);
    void wake();
    Answer apply(policy::Stage stage, const policy::StageResult& result);
    void collect(policy::Stage stage, const std::vector<policy::Effect>& effects, bool keep_headers);
    bool has_pending_effects() const;
    MessageStream* message_stream();
    void end_headers();
    std::optional<Reply> finish_message(Reply reply);

    std::shared_ptr<const Snapshot> snapshot_;
    std::function<void()> resume_;
    DecisionSink& sink_;
    std::shared_ptr<Session*> alive_;   // what deferred wake-ups hold: gone with the session
    bool wake_pending_ = false;
    std::unique_ptr<SessionChecks> checks_;            // with the snapshot's checks
    std::unique_ptr<MessageStream> message_stream_;   // the current message's
    bool headers_ended_ = false;
    policy::Facts facts_;

    // The stage under way: its walk of the rules, what follows it, and
    // what a resume() goes on with.
    std::optional<policy::StageRun> run_;
    std::function<std::optional<Reply>(Answer)> then_;
    Step next_;

    bool connection_accepted_ = false;
    bool message_accepted_ = false;
    std::optional<Answer> connection_refusal_;         // from connect; given at every later command
    std::optional<Answer> helo_refusal_;               // from the last HELO
    /* What add-header and quarantine rules of one stage leave for the end
     * of message: connect's for every message, the last HELO's (a client
     * may say HELO again, after STARTTLS say), and the message's own. */
    struct Effects {
        std::vector<std::pair<std::string, std::string>> headers;
        std::optional<std::string> quarantine;
        bool empty() const { return headers.empty() && !quarantine; }
    };
    Effects& effects_of(policy::Stage stage);
    Effects connect_effects_, helo_effects_, message_effects_;
    uint64_t message_bytes_ = 0;
    size_t stored_header_bytes_ = 0;
};

/* The size a MAIL command's ESMTP ARGUMENTS declare (SIZE=N), 0 without
 * one: what both engines hand Session::mail(). */
uint64_t declared_size(std::span<const std::string_view> arguments);

}  // namespace portcullis::milter
