/*
 * libmilter_engine.cc: the reference engine, the one place that speaks
 * libmilter: its callbacks, negotiation, macros and replies.
 *
 * Per-connection state lives only behind smfi_setpriv: Debian's libmilter
 * runs a pool of workers, so one connection's callbacks may come on
 * different threads.  Sessions live on event loops of their own (the
 * "service loops", milter.threads of them), where their lookups and
 * store calls run: each callback hands its event to the connection's
 * loop and, for an event that is answered, waits there for the Session's
 * Reply, which it turns into libmilter's status and reply.  A waiting
 * callback holds one of libmilter's workers; that is libmilter's way.
 *
 * libmilter's smfi_main() starts a thread that sigwait()s for SIGHUP,
 * SIGTERM and SIGINT and stops the filter on any of them, so a SIGHUP
 * reload is impossible through it.  We link libmilter statically with
 * --wrap=sigwait: its signal thread then waits forever, and the daemon's
 * own signal thread (which uses sigwaitinfo) decides what a signal means.
 * Once smfi_stop() is called libmilter serves no session, not even one
 * in flight: the daemon drains first (engine.h).
 */
#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "metrics/metrics.h"
#include "milter/engine.h"
#include "milter/negotiation.h"
#include "milter/replies.h"
#include "milter/session.h"
#include "util/event_loop.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::milter {

namespace {

/* The loops sessions run on, each on its thread. */
class ServiceLoops {
public:
    void start(unsigned count) {
        for (unsigned i = 0; i < count; ++i) loops_.push_back(std::make_unique<EventLoop>());
        for (auto& loop : loops_) threads_.emplace_back([&loop] { loop->run(); });
    }
    void stop() {
        for (auto& loop : loops_) loop->stop();
        for (auto& thread : threads_) thread.join();
        threads_.clear();
        loops_.clear();
    }
    EventLoop& next() { return *loops_[next_.fetch_add(1) % loops_.size()]; }

private:
    std::vector<std::unique_ptr<EventLoop>> loops_;
    std::vector<std::thread> threads_;
    std::atomic<size_t> next_{0};
};

ServiceLoops service_loops;

constexpr unsigned long kNoReplyFlags = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                                        SMFIP_NR_DATA | SMFIP_NR_EOH | SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NR_UNKN;

/* What was negotiated on each milter connection, by its libmilter
 * context.  After SMFIC_QUIT_NC the MTA starts a new session on the same
 * connection without negotiating again, and xxfi_close, which ends every
 * session, cannot tell that from a real QUIT, after which libmilter
 * frees the context (and warns if its private data is still set): so a
 * Connection goes at every close, and what was agreed stays here.  It is
 * written at each negotiation (libmilter negotiates before any session of
 * a context, so an address malloc gives out again is written anew), and
 * read by a session that finds no Connection: one entry for each
 * address a context has had, which malloc gives out again and again.
 * Past kMaxAgreements (were it ever to stop doing so) the table starts
 * over; a reused connection whose entry went is refused. */
struct Agreement {
    unsigned long offered;   // the MTA's steps
    unsigned long agreed;    // ours, from them
};

class Agreements {
public:
    void note(SMFICTX* ctx, Agreement agreement) {
        const std::lock_guard lock(mutex_);
        if (by_context_.size() >= kMaxAgreements && !by_context_.contains(ctx)) by_context_.clear();
        by_context_.insert_or_assign(ctx, agreement);
    }
    std::optional<Agreement> find(SMFICTX* ctx) const {
        const std::lock_guard lock(mutex_);
        const auto found = by_context_.find(ctx);
        if (found == by_context_.end()) return std::nullopt;
        return found->second;
    }

private:
    static constexpr size_t kMaxAgreements = 65536;
    mutable std::mutex mutex_;
    std::unordered_map<SMFICTX*, Agreement> by_context_;
};

Agreements agreements;

/* One connection's session on its loop, and the reply a callback waits for. */
class Connection {
public:
    Connection() : home_(service_loops.next()), snapshot_(current_snapshot()) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    const SessionCount& counted() const { return counted_; }
    const Snapshot& snapshot() const { return *snapshot_; }

    /* STEP on the session, on its loop; the Reply once the session has it. */
    Reply ask(std::function<std::optional<Reply>(Session&)> step) {
        {
            const std::lock_guard lock(mutex_);
            answered_ = false;
        }
        home_.post([this, step = std::move(step)] { deliver(step(session())); });
        std::unique_lock lock(mutex_);
        answered_signal_.wait(lock, [this] { return answered_; });
        return std::move(reply_);
    }

    /* STEP on the session, on its loop, without waiting. */
    void tell(std::function<void(Session&)> step) {
        home_.post([this, step = std::move(step)] { step(session()); });
    }

    /* Dropped on its loop, after the events already handed to it. */
    void close() {
        home_.post([this] { delete this; });
    }

    /* The session's steps are STEPS, as agreed with the MTA. */
    void agree(unsigned long steps) {
        no_reply_flags = steps & kNoReplyFlags;
        leading_space = (steps & SMFIP_HDR_LEADSPC) != 0;
    }

    unsigned long no_reply_flags = 0;   // the SMFIP_NR_* we negotiated
    bool leading_space = false;         // SMFIP_HDR_LEADSPC: header values come (and go) as in the message
    bool connected = false;             // the MTA sent its connect: the session knows its client

private:
    ~Connection() = default;

    Session& session() {
        if (!session_) session_ = std::make_unique<Session>(snapshot_, [this] { deliver(session_->resume()); });
        return *session_;
    }

    void deliver(std::optional<Reply> reply) {
        if (!reply) return;   // the session resumes it later
        {
            const std::lock_guard lock(mutex_);
            reply_ = std::move(*reply);
            answered_ = true;
        }
        answered_signal_.notify_one();
    }

    EventLoop& home_;
    std::shared_ptr<const Snapshot> snapshot_;
    SessionCount counted_;
    std::unique_ptr<Session> session_;   // made and used on home_ only
    std::mutex mutex_;
    std::condition_variable answered_signal_;
    bool answered_ = false;
    Reply reply_;
};

Connection* connection_of(SMFICTX* ctx) { return static_cast<Connection*>(smfi_getpriv(ctx)); }

/* The connection of CTX for an event of its session; null, with a log
 * line, when the MTA sent the event before its connect: such a session
 * has no client, and would otherwise be taken for a local one. */
Connection* connected_of(SMFICTX* ctx, const char* event) {
    Connection* connection = connection_of(ctx);
    if (connection && connection->connected) return connection;
    log::warning(std::string("milter: ") + event + " before the connect event: refused with a temporary failure");
    return nullptr;
}

/* The Connection for CTX, made at negotiation, or at the connect of a
 * session that follows another on the same connection. */
Connection* ensure_connection(SMFICTX* ctx) {
    Connection* connection = connection_of(ctx);
    if (connection) return connection;
    connection = new Connection();
    if (smfi_setpriv(ctx, connection) != MI_SUCCESS) {
        connection->close();
        return nullptr;
    }
    return connection;
}

std::string macro(SMFICTX* ctx, const char* name) {
    const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
    return value ? value : "";
}

std::string queue_id(SMFICTX* ctx) { return macro(ctx, "i"); }

/* The queue id, once the MTA has one, for the session's log lines. */
void note_queue_id(Session& session, const std::string& id) {
    if (!id.empty()) session.facts().queue_id = id;
}

/* ANSWER's code and text, when the MTA is to have them (replies.h). */
void set_reply(SMFICTX* ctx, const Answer& answer) {
    std::optional<std::vector<std::string>> own = own_reply_lines(answer);
    if (!own) return;
    std::vector<std::string>& lines = *own;
    char* code = const_cast<char*>(answer.code.c_str());
    char* xcode = answer.xcode.empty() ? nullptr : const_cast<char*>(answer.xcode.c_str());
    int status;
    if (lines.size() == 1) {
        status = smfi_setreply(ctx, code, xcode, lines[0].data());
    } else {
        // smfi_setmlreply is variadic and stops at the first null: pass
        // all 32 slots, null past the last line.
        std::array<char*, 32> slot{};
        for (size_t i = 0; i < lines.size() && i < slot.size(); ++i) slot[i] = lines[i].data();
        status = smfi_setmlreply(ctx, code, xcode, slot[0], slot[1], slot[2], slot[3], slot[4], slot[5], slot[6],
                                 slot[7], slot[8], slot[9], slot[10], slot[11], slot[12], slot[13], slot[14],
                                 slot[15], slot[16], slot[17], slot[18], slot[19], slot[20], slot[21], slot[22],
                                 slot[23], slot[24], slot[25], slot[26], slot[27], slot[28], slot[29], slot[30],
                                 slot[31], static_cast<char*>(nullptr));
    }
    if (status != MI_SUCCESS) {
        log::warning("reply " + answer.code + " " + answer.xcode + " not accepted: the MTA sends its default text");
    }
}

sfsistat to_status(SMFICTX* ctx, const Connection& connection, unsigned long no_reply_flag, const Answer& answer) {
    if (connection.no_reply_flags & no_reply_flag) {
        if (answer.kind != Answer::Kind::proceed) {
            log::warning("a verdict at a stage negotiated without reply was dropped");
        }
        return SMFIS_NOREPLY;
    }
    switch (answer.kind) {
        case Answer::Kind::proceed: return SMFIS_CONTINUE;
        case Answer::Kind::accept: return SMFIS_ACCEPT;
        case Answer::Kind::discard: return SMFIS_DISCARD;
        case Answer::Kind::reject:
            set_reply(ctx, answer);
            return SMFIS_REJECT;
        case Answer::Kind::tempfail:
            set_reply(ctx, answer);
            return SMFIS_TEMPFAIL;
    }
    return SMFIS_CONTINUE;
}

std::optional<IpAddress> address_of(const struct sockaddr* address) {
    if (!address) return std::nullopt;
    IpAddress ip;
    if (address->sa_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(address);
        std::memcpy(ip.bytes.data(), &v4->sin_addr, 4);
        ip.family = IpAddress::Family::v4;
        return ip;
    }
    if (address->sa_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address);
        char text[INET6_ADDRSTRLEN];
        if (!inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text)) return std::nullopt;
        return parse_ip(text);   // folds ::ffff:a.b.c.d to IPv4
    }
    return std::nullopt;
}

uint16_t port_of(const struct sockaddr* address) {
    if (!address) return 0;
    if (address->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(address)->sin_port);
    if (address->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(address)->sin6_port);
    return 0;
}

/* ARGV's ESMTP arguments, after the address. */
std::vector<std::string_view> esmtp_arguments(char** argv) {
    std::vector<std::string_view> arguments;
    for (char** arg = argv && argv[0] ? argv + 1 : nullptr; arg && *arg; ++arg) arguments.emplace_back(*arg);
    return arguments;
}

/* ---- negotiation ---- */

void request_macros(SMFICTX* ctx) {
    for (const MacroList& list : kMacroLists) {
        if (smfi_setsymlist(ctx, static_cast<int>(list.stage), const_cast<char*>(list.names)) != MI_SUCCESS) {
            log::warning("MTA refused the macro list for a stage; using its defaults");
        }
    }
}

/* The steps to agree with an MTA that offers MTA_STEPS, for CONNECTION's
 * policy. */
unsigned long steps_for(const Connection& connection, unsigned long mta_steps) {
    // libmilter emulates the no-reply steps an old MTA lacks; the others
    // we may only ask for when the MTA offers them.
    unsigned long wanted = wanted_steps(connection.snapshot().needs);
    // A session refused for the drain is answered at connect.
    if (connection.counted().refused()) wanted &= ~SMFIP_NR_CONN;
    return (wanted & mta_steps) | (wanted & kNoReplyFlags);
}

sfsistat on_negotiate(SMFICTX* ctx, unsigned long mta_actions, unsigned long mta_steps, unsigned long,
                      unsigned long, unsigned long* actions, unsigned long* steps, unsigned long* reserved2,
                      unsigned long* reserved3) {
    Connection* connection = ensure_connection(ctx);
    if (!connection) return SMFIS_TEMPFAIL;
    *actions = kWantedActions & mta_actions;
    *steps = steps_for(*connection, mta_steps);
    *reserved2 = 0;
    *reserved3 = 0;
    connection->agree(*steps);
    agreements.note(ctx, Agreement{mta_steps, *steps});
    if (mta_actions & SMFIF_SETSYMLIST) request_macros(ctx);
    return SMFIS_CONTINUE;
}

/* ---- callbacks ---- */

/* The Connection of a session that follows another on one milter
 * connection (SMFIC_QUIT_NC; the last one's went at its close), with the
 * steps agreed then; null, with a log line, when they are not known or
 * the policy now needs others (a reload since). */
Connection* reused_connection(SMFICTX* ctx) {
    const std::optional<Agreement> agreement = agreements.find(ctx);
    if (!agreement) {
        log::warning("milter: a new session on a reused connection whose negotiation is no longer known: refused "
                     "with a temporary failure");
        return nullptr;
    }
    Connection* connection = ensure_connection(ctx);
    if (!connection) return nullptr;
    connection->agree(agreement->agreed);
    // One refused for the drain is answered so at connect.
    if (connection->counted().refused()) return connection;
    if (steps_for(*connection, agreement->offered) != agreement->agreed) {
        log::warning("milter: a new session on a reused connection, negotiated before a reload for protocol steps "
                     "the policy no longer needs or lacks: refused with a temporary failure");
        return nullptr;
    }
    return connection;
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
    Connection* connection = connection_of(ctx);
    if (!connection) connection = reused_connection(ctx);
    if (!connection) return SMFIS_TEMPFAIL;
    metrics::count_connection();
    if (connection->counted().refused()) return SMFIS_TEMPFAIL;
    connection->connected = true;
    auto ip = address_of(hostaddr);
    if (!ip) ip = parse_ip(macro(ctx, "{client_addr}"));
    const Reply reply = connection->ask([ip, host = std::string(hostname ? hostname : ""), port = port_of(hostaddr)](
                                            Session& session) { return session.connect(ip, host, port); });
    return to_status(ctx, *connection, SMFIP_NR_CONN, reply.answer);
}

sfsistat on_helo(SMFICTX* ctx, char* name) {
    Connection* connection = connected_of(ctx, "HELO");
    if (!connection) return SMFIS_TEMPFAIL;
    const bool tls = !macro(ctx, "{tls_version}").empty() || !macro(ctx, "{cipher}").empty();
    const Reply reply =
        connection->ask([name = std::string(name ? name : ""), tls](Session& session) { return session.helo(name, tls); });
    return to_status(ctx, *connection, SMFIP_NR_HELO, reply.answer);
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    Connection* connection = connected_of(ctx, "MAIL");
    if (!connection) return SMFIS_TEMPFAIL;
    const Reply reply = connection->ask([sender = std::string(argv && argv[0] ? argv[0] : ""),
                                         user = macro(ctx, "{auth_authen}"),
                                         size = declared_size(esmtp_arguments(argv)),
                                         id = queue_id(ctx)](Session& session) {
        auto answer = session.mail(sender, user, size);
        note_queue_id(session, id);
        return answer;
    });
    return to_status(ctx, *connection, SMFIP_NR_MAIL, reply.answer);
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    Connection* connection = connected_of(ctx, "RCPT");
    if (!connection) return SMFIS_TEMPFAIL;
    const Reply reply = connection->ask(
        [recipient = std::string(argv && argv[0] ? argv[0] : ""), id = queue_id(ctx)](Session& session) {
            note_queue_id(session, id);
            return session.rcpt(recipient);
        });
    return to_status(ctx, *connection, SMFIP_NR_RCPT, reply.answer);
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    Connection* connection = connection_of(ctx);
    if (connection && name && value) {
        // Without SMFIP_HDR_LEADSPC the MTA took one space after the colon.
        std::string field_value = connection->leading_space ? value : std::string(" ") + value;
        connection->tell([name = std::string(name), field_value = std::move(field_value)](Session& session) {
            session.header(name, field_value);
        });
    }
    return (connection && (connection->no_reply_flags & SMFIP_NR_HDR)) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t length) {
    Connection* connection = connection_of(ctx);
    if (connection && (chunk || length == 0)) {
        connection->tell([bytes = std::string(reinterpret_cast<const char*>(chunk), length)](Session& session) {
            session.body(bytes);
        });
    }
    return (connection && (connection->no_reply_flags & SMFIP_NR_BODY)) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* The end of message's changes through libmilter's calls. */
class LibmilterEditor final : public MessageEditor {
public:
    explicit LibmilterEditor(SMFICTX* ctx) : ctx_(ctx) {}
    bool remove_header(std::string_view name, int position) override {
        std::string field(name);
        return smfi_chgheader(ctx_, field.data(), position, nullptr) == MI_SUCCESS;
    }
    bool insert_header(std::string_view name, const std::string& value) override {
        std::string field(name), text(value);
        return smfi_insheader(ctx_, 0, field.data(), text.data()) == MI_SUCCESS;
    }
    bool add_header(std::string_view name, const std::string& value) override {
        std::string field(name), text(value);
        return smfi_addheader(ctx_, field.data(), text.data()) == MI_SUCCESS;
    }
    bool quarantine(const std::string& reason) override {
        std::string text(reason);
        return smfi_quarantine(ctx_, text.data()) == MI_SUCCESS;
    }

private:
    SMFICTX* ctx_;
};

sfsistat on_eom(SMFICTX* ctx) {
    Connection* connection = connected_of(ctx, "end of message");
    if (!connection) return SMFIS_TEMPFAIL;
    metrics::count_message();
    const Reply reply = connection->ask([id = queue_id(ctx)](Session& session) {
        note_queue_id(session, id);
        return session.end_of_message();
    });
    LibmilterEditor editor(ctx);
    apply_changes(reply, connection->leading_space, editor);
    return to_status(ctx, *connection, 0, reply.answer);
}

sfsistat on_abort(SMFICTX* ctx) {
    if (Connection* connection = connection_of(ctx)) connection->tell([](Session& session) { session.abort_message(); });
    return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
    // May come without connect (the MTA refused the client first).
    if (Connection* connection = connection_of(ctx)) connection->close();
    smfi_setpriv(ctx, nullptr);
    return SMFIS_CONTINUE;
}

class LibmilterEngine final : public Engine {
public:
    std::string open(const EngineSettings& settings) override {
        threads_ = settings.threads ? settings.threads : std::max(1u, std::thread::hardware_concurrency());
        static char name[] = "portcullis";
        smfiDesc description{};
        description.xxfi_name = name;
        description.xxfi_version = SMFI_VERSION;
        description.xxfi_flags = kWantedActions;
        description.xxfi_connect = on_connect;
        description.xxfi_helo = on_helo;
        description.xxfi_envfrom = on_envfrom;
        description.xxfi_envrcpt = on_envrcpt;
        description.xxfi_header = on_header;
        description.xxfi_body = on_body;
        description.xxfi_eom = on_eom;
        description.xxfi_abort = on_abort;
        description.xxfi_close = on_close;
        description.xxfi_negotiate = on_negotiate;

        if (smfi_register(description) != MI_SUCCESS) return "smfi_register failed";
        if (smfi_setconn(const_cast<char*>(settings.socket.c_str())) != MI_SUCCESS) {
            return "bad milter socket '" + settings.socket + "'";
        }
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(settings.timeout).count();
        if (smfi_settimeout(static_cast<int>(std::max<long long>(1, seconds))) != MI_SUCCESS) {
            return "smfi_settimeout failed";
        }
        // libmilter would remove whatever socket is at the path, a running
        // daemon's too.
        if (const std::string refused = make_room_for(settings.socket); !refused.empty()) return refused;
        if (smfi_opensocket(false) != MI_SUCCESS) {
            return "cannot listen on " + settings.socket + " (in use, or no permission?)";
        }
        return "";
    }

    bool run() override {
        service_loops.start(threads_);
        const bool ran = smfi_main() == MI_SUCCESS;
        service_loops.stop();
        return ran;
    }

    void stop() override { smfi_stop(); }

    std::string describe() const override {
        unsigned int major = 0, minor = 0, patch = 0;
        smfi_version(&major, &minor, &patch);
        return "libmilter " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
               " engine, " + std::to_string(threads_) + " service thread" + (threads_ == 1 ? "" : "s");
    }

private:
    unsigned threads_ = 1;
};

}  // namespace

std::unique_ptr<Engine> make_libmilter_engine() { return std::make_unique<LibmilterEngine>(); }

std::string libmilter_version() {
    unsigned int major = 0, minor = 0, patch = 0;
    smfi_version(&major, &minor, &patch);
    return "libmilter " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
           " (milter protocol " + std::to_string(SMFI_PROT_VERSION) + ")";
}

}  // namespace portcullis::milter

/* libmilter's signal thread calls sigwait() and stops the filter on
 * SIGHUP; see above.  Linked with --wrap=sigwait, that call lands here and
 * never returns: the daemon's signal thread owns signals. */
extern "C" int __wrap_sigwait(const sigset_t*, int*) {
    std::mutex mutex;
    std::condition_variable never;
    std::unique_lock lock(mutex);
    never.wait(lock, [] { return false; });
    return 0;
}
