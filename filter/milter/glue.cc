/*
 * glue.cc: libmilter callbacks, negotiation, macros and replies.
 *
 * Per-connection state lives only behind smfi_setpriv: Debian's libmilter
 * runs a pool of workers, so one connection's callbacks may come on
 * different threads.  Each callback reads what the MTA gave, hands it to
 * the Session, and turns the Session's Answer into a milter reply.
 */
#include "milter/glue.h"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "metrics/metrics.h"
#include "milter/session.h"
#include "policy/template.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::milter {

namespace {

std::mutex snapshot_mutex;
std::shared_ptr<const Snapshot> published_snapshot;
std::atomic<size_t> session_count{0};
std::atomic<bool> draining{false};

/* What one session negotiated, kept beside the Session.  Sessions that
 * start while draining are refused at connect and not counted as in
 * flight, so a steady stream of them cannot hold up the stop. */
struct Connection {
    explicit Connection(std::shared_ptr<const Snapshot> snapshot)
        : session(std::move(snapshot)), refused_for_drain(draining.load()) {
        if (refused_for_drain) return;
        ++session_count;
        metrics::session_opened();
    }
    ~Connection() {
        if (refused_for_drain) return;
        --session_count;
        metrics::session_closed();
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    Session session;
    const bool refused_for_drain;
    unsigned long no_reply_flags = 0;   // the SMFIP_NR_* we negotiated
    bool leading_space = false;         // SMFIP_HDR_LEADSPC: header values come (and go) as in the message
};

Connection* connection_of(SMFICTX* ctx) { return static_cast<Connection*>(smfi_getpriv(ctx)); }

/* The Connection for CTX, made at first use (an MTA that skips
 * negotiation still gets a session). */
Connection* ensure_connection(SMFICTX* ctx) {
    Connection* connection = connection_of(ctx);
    if (connection) return connection;
    connection = new Connection(current_snapshot());
    if (smfi_setpriv(ctx, connection) != MI_SUCCESS) {
        delete connection;
        return nullptr;
    }
    return connection;
}

std::string macro(SMFICTX* ctx, const char* name) {
    const char* value = smfi_getsymval(ctx, const_cast<char*>(name));
    return value ? value : "";
}

void note_queue_id(SMFICTX* ctx, Connection& connection) {
    const std::string id = macro(ctx, "i");
    if (!id.empty()) connection.session.facts().queue_id = id;
}

void set_reply(SMFICTX* ctx, const Answer& answer) {
    std::vector<std::string> lines;
    for (const auto& line : answer.text) lines.push_back(milter_text(line));
    if (lines.empty()) lines.emplace_back();
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
        log::warning("libmilter refused reply " + answer.code + " " + answer.xcode + ": the MTA sends its default text");
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

uint64_t declared_size(char** argv) {
    for (char** arg = argv; arg && *arg; ++arg) {
        const std::string_view text(*arg);
        if (text.size() > 5 && equals_nocase(text.substr(0, 5), "SIZE=")) {
            if (const auto size = parse_decimal<uint64_t>(text.substr(5))) return *size;
        }
    }
    return 0;
}

/* ---- negotiation ---- */

void request_macros(SMFICTX* ctx) {
    struct StageMacros { int stage; const char* names; };
    static constexpr StageMacros kMacros[] = {
        {SMFIM_CONNECT, "j {daemon_name} {client_addr} {client_name} {client_port}"},
        {SMFIM_HELO, "{tls_version} {cipher}"},
        {SMFIM_ENVFROM, "i {auth_type} {auth_authen}"},
        {SMFIM_ENVRCPT, "i"},
        {SMFIM_DATA, "i"},
        {SMFIM_EOH, "i"},
        {SMFIM_EOM, "i"},
    };
    for (const auto& entry : kMacros) {
        if (smfi_setsymlist(ctx, entry.stage, const_cast<char*>(entry.names)) != MI_SUCCESS) {
            log::warning("MTA refused the macro list for a stage; using its defaults");
        }
    }
}

/* Protocol steps to skip and stages that need no reply, from what the
 * snapshot's policy needs. */
unsigned long wanted_protocol(const policy::PolicyNeeds& needs) {
    using policy::Stage;
    unsigned long flags = SMFIP_NODATA | SMFIP_NOEOH | SMFIP_NOUNKNOWN | SMFIP_NR_DATA | SMFIP_NR_EOH |
                          SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NR_UNKN;
    // A refusal at connect is given at the next command (HELO or MAIL); one
    // at HELO again at MAIL.
    const bool connect_refuses = needs.refuses_at(Stage::connect);
    const bool helo_refuses = needs.refuses_at(Stage::helo);
    const bool helo_needed = needs.runs_at(Stage::helo) || needs.reads_fields_of(Stage::helo) || connect_refuses;
    if (!helo_needed) flags |= SMFIP_NOHELO;
    if (!needs.answers_at(Stage::connect)) flags |= SMFIP_NR_CONN;
    if (!needs.answers_at(Stage::helo) && !connect_refuses) flags |= SMFIP_NR_HELO;
    if (!needs.answers_at(Stage::mail) && !connect_refuses && !helo_refuses) flags |= SMFIP_NR_MAIL;
    if (!needs.runs_at(Stage::rcpt) && !needs.reads_fields_of(Stage::rcpt)) flags |= SMFIP_NORCPT;
    if (!needs.answers_at(Stage::rcpt)) flags |= SMFIP_NR_RCPT;
    if (!needs.headers && !needs.body) flags |= SMFIP_NOHDRS;
    if (!needs.body) flags |= SMFIP_NOBODY;
    // DKIM hashes header fields exactly as they came.
    if (needs.headers) flags |= SMFIP_HDR_LEADSPC;
    return flags;
}

/* Add and insert header fields (ours and the rules'), remove forged
 * Authentication-Results, quarantine, choose macros. */
constexpr unsigned long kActions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_SETSYMLIST;

constexpr unsigned long kNoReplyFlags = SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                                        SMFIP_NR_DATA | SMFIP_NR_EOH | SMFIP_NR_HDR | SMFIP_NR_BODY | SMFIP_NR_UNKN;

sfsistat on_negotiate(SMFICTX* ctx, unsigned long mta_actions, unsigned long mta_steps, unsigned long,
                      unsigned long, unsigned long* actions, unsigned long* steps, unsigned long* reserved2,
                      unsigned long* reserved3) {
    Connection* connection = ensure_connection(ctx);
    if (!connection) return SMFIS_TEMPFAIL;
    *actions = kActions & mta_actions;
    // libmilter emulates the no-reply steps an old MTA lacks; the others
    // we may only ask for when the MTA offers them.
    unsigned long wanted = wanted_protocol(connection->session.snapshot().needs);
    // A session refused for the drain is answered at connect.
    if (connection->refused_for_drain) wanted &= ~SMFIP_NR_CONN;
    *steps = (wanted & mta_steps) | (wanted & kNoReplyFlags);
    *reserved2 = 0;
    *reserved3 = 0;
    connection->no_reply_flags = *steps & kNoReplyFlags;
    connection->leading_space = (*steps & SMFIP_HDR_LEADSPC) != 0;
    if (mta_actions & SMFIF_SETSYMLIST) request_macros(ctx);
    return SMFIS_CONTINUE;
}

/* ---- callbacks ---- */

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* hostaddr) {
    Connection* connection = ensure_connection(ctx);
    if (!connection) return SMFIS_TEMPFAIL;
    if (connection->refused_for_drain) return SMFIS_TEMPFAIL;
    metrics::count_connection();
    auto ip = address_of(hostaddr);
    if (!ip) ip = parse_ip(macro(ctx, "{client_addr}"));
    const Answer answer = connection->session.connect(ip, hostname ? hostname : "", port_of(hostaddr));
    return to_status(ctx, *connection, SMFIP_NR_CONN, answer);
}

sfsistat on_helo(SMFICTX* ctx, char* name) {
    Connection* connection = connection_of(ctx);
    if (!connection) return SMFIS_CONTINUE;
    const bool tls = !macro(ctx, "{tls_version}").empty() || !macro(ctx, "{cipher}").empty();
    const Answer answer = connection->session.helo(name ? name : "", tls);
    return to_status(ctx, *connection, SMFIP_NR_HELO, answer);
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    Connection* connection = connection_of(ctx);
    if (!connection) return SMFIS_CONTINUE;
    const char* sender = argv && argv[0] ? argv[0] : "";
    const Answer answer = connection->session.mail(sender, macro(ctx, "{auth_authen}"), declared_size(argv ? argv + 1 : nullptr));
    note_queue_id(ctx, *connection);
    return to_status(ctx, *connection, SMFIP_NR_MAIL, answer);
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    Connection* connection = connection_of(ctx);
    if (!connection) return SMFIS_CONTINUE;
    note_queue_id(ctx, *connection);
    const Answer answer = connection->session.rcpt(argv && argv[0] ? argv[0] : "");
    return to_status(ctx, *connection, SMFIP_NR_RCPT, answer);
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    Connection* connection = connection_of(ctx);
    if (connection && name && value) {
        // Without SMFIP_HDR_LEADSPC the MTA took one space after the colon.
        if (connection->leading_space) connection->session.header(name, value);
        else connection->session.header(name, std::string(" ") + value);
    }
    return (connection && (connection->no_reply_flags & SMFIP_NR_HDR)) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

sfsistat on_body(SMFICTX* ctx, unsigned char* chunk, size_t length) {
    Connection* connection = connection_of(ctx);
    if (connection && (chunk || length == 0)) {
        connection->session.body(std::string_view(reinterpret_cast<const char*>(chunk), length));
    }
    return (connection && (connection->no_reply_flags & SMFIP_NR_BODY)) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* VALUE as the MTA wants it: with the space after the colon when we
 * negotiated SMFIP_HDR_LEADSPC (then it adds none itself). */
std::string outgoing_value(const Connection& connection, const std::string& value) {
    const bool spaced = !value.empty() && (value.front() == ' ' || value.front() == '\t');
    return connection.leading_space && !spaced ? " " + value : value;
}

/* Forged Authentication-Results go first, last to first (positions of
 * the ones after a removed field do not move); ours goes on top. */
void apply_results(SMFICTX* ctx, const Connection& connection, const EndOfMessage& end) {
    static char kName[] = "Authentication-Results";
    for (auto position = end.remove_results.rbegin(); position != end.remove_results.rend(); ++position) {
        if (smfi_chgheader(ctx, kName, *position, nullptr) != MI_SUCCESS) {
            log::warning("could not remove a forged Authentication-Results (did the MTA allow header changes?)");
        }
    }
    if (!end.results_header) return;
    std::string value = outgoing_value(connection, *end.results_header);
    if (smfi_insheader(ctx, 0, kName, value.data()) != MI_SUCCESS) {
        log::warning("could not add Authentication-Results (did the MTA allow header changes?)");
    }
}

sfsistat on_eom(SMFICTX* ctx) {
    Connection* connection = connection_of(ctx);
    if (!connection) return SMFIS_CONTINUE;
    note_queue_id(ctx, *connection);
    metrics::count_message();
    const EndOfMessage end = connection->session.end_of_message();
    apply_results(ctx, *connection, end);
    for (const auto& [name, value] : end.add_headers) {
        std::string sent = outgoing_value(*connection, value);
        if (smfi_addheader(ctx, const_cast<char*>(name.c_str()), sent.data()) != MI_SUCCESS) {
            log::warning("could not add header " + name + " (did the MTA allow header changes?)");
        }
    }
    if (end.quarantine && smfi_quarantine(ctx, const_cast<char*>(milter_text(*end.quarantine).c_str())) != MI_SUCCESS) {
        log::warning("could not quarantine the message (did the MTA allow it?)");
    }
    return to_status(ctx, *connection, 0, end.answer);
}

sfsistat on_abort(SMFICTX* ctx) {
    if (Connection* connection = connection_of(ctx)) connection->session.abort_message();
    return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
    // May come without connect (the MTA refused the client first).
    delete connection_of(ctx);
    smfi_setpriv(ctx, nullptr);
    return SMFIS_CONTINUE;
}

}  // namespace

std::string milter_text(std::string_view line) {
    auto continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
    std::string out;
    out.reserve(line.size());
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (out.size() + (c == '%' ? 2 : 1) > policy::kMaxReplyLine) {
            // Cut inside a multi-byte character: drop its first bytes too.
            if (continuation(c)) {
                while (!out.empty() && continuation(out.back())) out.pop_back();
                if (!out.empty()) out.pop_back();
            }
            break;
        }
        out += c;
        if (c == '%') out += '%';
    }
    return out;
}

std::shared_ptr<const Snapshot> current_snapshot() {
    std::lock_guard lock(snapshot_mutex);
    return published_snapshot;
}

void publish(std::shared_ptr<const Snapshot> snapshot) {
    std::lock_guard lock(snapshot_mutex);
    published_snapshot = std::move(snapshot);
}

void begin_drain() { draining = true; }
size_t active_sessions() { return session_count.load(); }

std::string open_listener(const std::string& socket, Millis timeout) {
    static char name[] = "portcullis";
    smfiDesc description{};
    description.xxfi_name = name;
    description.xxfi_version = SMFI_VERSION;
    description.xxfi_flags = kActions;
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
    if (smfi_setconn(const_cast<char*>(socket.c_str())) != MI_SUCCESS) return "bad milter socket '" + socket + "'";
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
    if (smfi_settimeout(static_cast<int>(std::max<long long>(1, seconds))) != MI_SUCCESS) return "smfi_settimeout failed";
    if (smfi_opensocket(true) != MI_SUCCESS) return "cannot listen on " + socket + " (in use, or no permission?)";
    return "";
}

bool run() { return smfi_main() == MI_SUCCESS; }

void stop() { smfi_stop(); }

std::string library_version() {
    unsigned int major = 0, minor = 0, patch = 0;
    smfi_version(&major, &minor, &patch);
    return "libmilter " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch) +
           " (milter protocol " + std::to_string(SMFI_PROT_VERSION) + ")";
}

}  // namespace portcullis::milter

/* libmilter's signal thread calls sigwait() and stops the filter on
 * SIGHUP; see glue.h.  Linked with --wrap=sigwait, that call lands here and
 * never returns: the daemon's signal thread owns signals. */
extern "C" int __wrap_sigwait(const sigset_t*, int*) {
    std::mutex mutex;
    std::condition_variable never;
    std::unique_lock lock(mutex);
    never.wait(lock, [] { return false; });
    return 0;
}
