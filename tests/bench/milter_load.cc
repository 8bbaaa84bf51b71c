/*
 * milter_load.cc: a milter's throughput and latency with no MTA in the
 * way: the MTA's side of the milter protocol, as Postfix 3.7 speaks it,
 * over many concurrent connections.
 *
 *   bench_milter_load --filter inet:HOST:PORT|unix:PATH --message FILE
 *                     [--sessions 50] [--messages 5000] [--warmup N]
 *                     [--per-connection 1] [--threads 1]
 *                     [--client-ip 127.0.0.1] [--helo NAME]
 *                     [--sender ADDR] [--rcpt ADDR]
 *                     [--pid PID] [--json FILE]
 *
 * SESSIONS connections are busy at once, each one SMTP session of
 * PER_CONNECTION messages from SENDER to RCPT with the content of FILE;
 * a connection that ends is replaced at once (a closed loop), until
 * WARMUP (default: SESSIONS) + MESSAGES messages have had their final
 * reply.  The first WARMUP are not measured.  THREADS event loops share
 * the sessions.
 *
 * What goes on the wire is what Postfix 3.7 (milter8.c) sends:
 *   - option negotiation: protocol 6, every action (0x1ff), every step
 *     (0x1fffff).  The filter's reply says which events to send, which
 *     wait for a reply, and which macros to send at each stage (without
 *     SMFIF_SETSYMLIST, Postfix's default macro lists);
 *   - before each event its stage's macros (only those with a value:
 *     the client's, the queue id from DATA on), even when the event itself
 *     is skipped (SMFIP_NOHELO...); header fields, end of header and
 *     body chunks that the filter skips are not sent at all, macros
 *     included;
 *   - an event agreed as no-reply (SMFIP_NR_*) is not waited for: it stays
 *     in the output and goes out in one write with the next event that
 *     waits for a reply, as Postfix's buffered stream does.  The macros of
 *     the DATA stage are written on their own: there Postfix's smtpd
 *     hands the connection to its cleanup server, which sends the content;
 *   - header fields as in FILE (folded lines joined by a bare LF, as
 *     Postfix does), the value with its leading space when
 *     SMFIP_HDR_LEADSPC was agreed, else with one space less; the body
 *     after the empty line, each line ending in CRLF, in chunks of at
 *     most 65535 bytes; then end of message;
 *   - ABORT after each message; ABORT and QUIT at the end of the
 *     session, and close (Postfix reads nothing after QUIT);
 *   - the replies taken as Postfix takes them: accept at connect or HELO
 *     ends the connection's events, at MAIL the message's; a refusal or
 *     discard at MAIL or RCPT (there is one recipient) ends the message;
 *     SMFIR_SKIP ends the body; at end of message header changes and
 *     quarantine come before the final reply.  Any other reply, or a
 *     connection the filter closes, is an error;
 *   - Nagle on (no TCP_NODELAY), as on Postfix's milter socket.
 *
 * Reported: messages per second over the measured messages, their
 * outcomes, and the latency (p50, p99, max) of each kind of event that
 * waits for a reply, from the write that carries it to its reply, and of
 * each message, from its first byte (a connection's first message: from
 * connect()) to the final reply at its end.  With --pid, the filter's
 * CPU time per 1000 messages over the measured ones (/proc/PID/stat),
 * and its RSS and thread count (/proc/PID/status) sampled every 100 ms
 * while they ran, with the connections open at that moment; VmHWM at
 * the end.  --json FILE writes it all as one JSON object.
 *
 * Exit status: 0 when every message had its final reply, 1 when a
 * connection failed (the first few errors are printed), 2 bad usage.
 */
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "milter/protocol.h"
#include "util/event_loop.h"
#include "util/ip.h"
#include "util/text.h"

namespace {

using namespace portcullis;
namespace wire = milter::wire;
using Clock = std::chrono::steady_clock;
using wire::MacroStage;

// What Postfix 3.7 offers (milter8.c: SMFIF_* it implements, MILTER8_V6_PROTO_MASK).
constexpr uint32_t kOfferedActions = 0x1ff;
constexpr uint32_t kOfferedSteps = 0x1fffff;
constexpr size_t kBodyChunk = 65535;              // milter8.c's MILTER_CHUNK_SIZE
constexpr uint32_t kMaxReply = 1u << 30;         // Postfix takes up to INT_MAX / 2
constexpr size_t kReadBuffer = 64 * 1024;
constexpr uint16_t kClientPort = 4711;
constexpr const char* kQueueId = "4BENCH0QUEUE";
constexpr auto kSampleInterval = std::chrono::milliseconds(100);
constexpr int kErrorsShown = 5;

// Postfix 3.7's milter_*_macros defaults, by stage (SMFIM_* numbering).
constexpr std::array<const char*, wire::kMacroStages> kPostfixMacroLists{
    "j {daemon_name} {daemon_addr} v _",
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    "i",
    "i",
    "i",
};

struct Options {
    std::string filter;
    std::string message_file;
    int sessions = 50;
    long messages = 5000;
    long warmup = -1;   // -1: SESSIONS
    int per_connection = 1;
    int threads = 1;
    std::string client_ip = "127.0.0.1";
    std::string helo = "client.bench.example";
    std::string sender = "sender@example.net";
    std::string rcpt = "rcpt@example.com";
    long pid = 0;
    std::string json;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "bench_milter_load: %s\n"
                 "usage: bench_milter_load --filter inet:HOST:PORT|unix:PATH --message FILE [--sessions N]\n"
                 "       [--messages N] [--warmup N] [--per-connection N] [--threads N] [--client-ip IP]\n"
                 "       [--helo NAME] [--sender ADDR] [--rcpt ADDR] [--pid PID] [--json FILE]\n",
                 why.c_str());
    std::exit(2);
}

template <typename T>
T number_option(const std::string& name, const std::string& text, T minimum) {
    const auto value = parse_decimal<T>(text);
    if (!value || *value < minimum) usage(name + " takes a whole number of at least " + std::to_string(minimum));
    return *value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        if (i + 1 >= argc) usage(name + " needs a value");
        const std::string value = argv[++i];
        if (name == "--filter") options.filter = value;
        else if (name == "--message") options.message_file = value;
        else if (name == "--sessions") options.sessions = number_option<int>(name, value, 1);
        else if (name == "--messages") options.messages = number_option<long>(name, value, 1);
        else if (name == "--warmup") options.warmup = number_option<long>(name, value, 0);
        else if (name == "--per-connection") options.per_connection = number_option<int>(name, value, 1);
        else if (name == "--threads") options.threads = number_option<int>(name, value, 1);
        else if (name == "--client-ip") options.client_ip = value;
        else if (name == "--helo") options.helo = value;
        else if (name == "--sender") options.sender = value;
        else if (name == "--rcpt") options.rcpt = value;
        else if (name == "--pid") options.pid = number_option<long>(name, value, 1);
        else if (name == "--json") options.json = value;
        else usage("unknown option " + name);
    }
    if (options.filter.empty() || options.message_file.empty()) usage("--filter and --message are required");
    if (options.warmup < 0) options.warmup = options.sessions;
    options.threads = std::min(options.threads, options.sessions);
    return options;
}

/* ---- the filter's address ---- */

struct Address {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

/* Postfix's notation (inet:HOST:PORT, unix:PATH), or HOST:PORT. */
Address filter_address(const std::string& text) {
    Address address;
    if (text.rfind("unix:", 0) == 0) {
        const std::string path = text.substr(5);
        sockaddr_un local{};
        local.sun_family = AF_UNIX;
        if (path.empty() || path.size() >= sizeof local.sun_path) usage("--filter " + text + ": bad unix socket path");
        std::memcpy(local.sun_path, path.c_str(), path.size() + 1);
        std::memcpy(&address.storage, &local, sizeof local);
        address.length = sizeof local;
        return address;
    }
    const std::string rest = text.rfind("inet:", 0) == 0 ? text.substr(5) : text;
    const auto colon = rest.rfind(':');
    const auto ip = colon == std::string::npos ? std::nullopt : parse_ip(rest.substr(0, colon));
    const auto port = colon == std::string::npos ? std::nullopt : parse_decimal<uint16_t>(rest.substr(colon + 1));
    if (!ip || !ip->is_v4() || !port || *port == 0) usage("--filter " + text + ": not inet:IPV4:PORT or unix:PATH");
    sockaddr_in inet{};
    inet.sin_family = AF_INET;
    inet.sin_port = htons(*port);
    std::memcpy(&inet.sin_addr, ip->bytes.data(), 4);
    std::memcpy(&address.storage, &inet, sizeof inet);
    address.length = sizeof inet;
    return address;
}

/* ---- the message, as Postfix gives it to a milter ---- */

struct Message {
    std::vector<std::pair<std::string, std::string>> fields;   // name, what follows the colon
    std::string body;                                          // CRLF line ends
};

Message read_message(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) usage("cannot read " + path + ": " + std::strerror(errno));
    std::stringstream text;
    text << file.rdbuf();
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(text, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(line);
    }
    Message message;
    size_t at = 0;
    for (; at < lines.size() && !lines[at].empty(); ++at) {
        const std::string& field = lines[at];
        if ((field[0] == ' ' || field[0] == '\t') && !message.fields.empty()) {
            message.fields.back().second += "\n" + field;
            continue;
        }
        const auto colon = field.find(':');
        if (colon == std::string::npos || colon == 0) {
            usage(path + ":" + std::to_string(at + 1) + ": not a header field (no colon)");
        }
        message.fields.emplace_back(std::string(trim(field.substr(0, colon))), field.substr(colon + 1));
    }
    for (++at; at < lines.size(); ++at) message.body += lines[at] + "\r\n";
    return message;
}

/* ---- packets ---- */

void put32(std::string& out, uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(value >> shift);
}

uint32_t get32(std::string_view bytes) {
    uint32_t value = 0;
    for (size_t i = 0; i < 4; ++i) value = value << 8 | static_cast<unsigned char>(bytes[i]);
    return value;
}

void put_packet(std::string& out, char command, std::string_view data) {
    put32(out, static_cast<uint32_t>(data.size() + 1));
    out += command;
    out += data;
}

std::string cstrings(std::initializer_list<std::string_view> parts) {
    std::string data;
    for (const auto part : parts) {
        data += part;
        data += '\0';
    }
    return data;
}

/* The filter's option negotiation reply: version, actions, steps, and
 * the macro lists it asks for (empty for a stage it names none). */
struct Agreement {
    wire::OptionNegotiation agreed;
    std::array<std::string, wire::kMacroStages> macro_lists;
};

std::optional<Agreement> parse_agreement(std::string_view data) {
    const auto agreed = wire::parse_option_negotiation(data);
    if (!agreed) return std::nullopt;
    Agreement agreement{*agreed, {}};
    for (size_t i = 0; i < wire::kMacroStages; ++i) agreement.macro_lists[i] = kPostfixMacroLists[i];
    if (!(agreed->actions & wire::kActionSetMacroList)) return agreement;
    data.remove_prefix(12);
    while (!data.empty()) {
        if (data.size() < 5) return std::nullopt;
        const uint32_t stage = get32(data);
        const auto end = data.find('\0', 4);
        if (stage >= wire::kMacroStages || end == std::string_view::npos) return std::nullopt;
        agreement.macro_lists[stage] = std::string(data.substr(4, end - 4));
        data.remove_prefix(end + 1);
    }
    return agreement;
}

/* ---- the events of one connection ---- */

enum class Kind { connect, helo, mail, rcpt, data, header, end_of_headers, body, end_of_message, abort, quit };
constexpr std::array<const char*, 11> kKindNames{"CONNECT", "HELO", "MAIL", "RCPT", "DATA", "HEADER",
                                                 "EOH", "BODY", "EOM", "ABORT", "QUIT"};
constexpr size_t kOptionNegotiationSlot = kKindNames.size();   // latency slot of OPTNEG

struct Event {
    Kind kind;
    std::string bytes;        // macros and command, as written
    bool waits = false;       // for a reply
    bool flush = false;       // written at once though nothing waits
    size_t message = 0;       // which message of the connection
    size_t message_end = 0;   // index of the ABORT that ends it (connect, helo: of the last)
    size_t body_end = 0;      // index of the end of message (body chunks)
};

/* Every connection whose filter agreed the same gets the same events. */
struct Script {
    std::string agreement_bytes;
    uint32_t steps = 0;
    std::vector<Event> events;
    size_t quit = 0;          // index of the final ABORT, QUIT
};

class ScriptBuilder {
public:
    ScriptBuilder(const Options& options, const Message& message) : options_(options), message_(message) {}

    Script build(std::string_view agreement_bytes, const Agreement& agreement) const {
        Script script;
        script.agreement_bytes = agreement_bytes;
        script.steps = agreement.agreed.steps;
        const uint32_t steps = script.steps;
        auto& events = script.events;
        const auto add = [&](Kind kind, MacroStage stage, char command, std::string_view data, uint32_t skip,
                             uint32_t no_reply, size_t message) {
            Event event{kind, macros(agreement, stage, command), false, false, message, 0, 0};
            if (!(steps & skip)) {
                put_packet(event.bytes, command, data);
                event.waits = !(steps & no_reply);
            }
            events.push_back(std::move(event));
        };
        const std::string connect_data = cstrings({"[" + options_.client_ip + "]"}) + "4" +
                                         std::string{static_cast<char>(kClientPort >> 8),
                                                     static_cast<char>(kClientPort & 0xff)} +
                                         cstrings({options_.client_ip});
        add(Kind::connect, MacroStage::connect, wire::kConnect, connect_data, wire::kNoConnect,
            wire::kNoReplyConnect, 0);
        std::vector<size_t> message_starts;
        for (int m = 0; m < options_.per_connection; ++m) {
            const size_t index = static_cast<size_t>(m);
            if (m == 0) {
                add(Kind::helo, MacroStage::helo, wire::kHelo, cstrings({options_.helo}), wire::kNoHelo,
                    wire::kNoReplyHelo, index);
            }
            message_starts.push_back(events.size());
            add(Kind::mail, MacroStage::mail, wire::kMail, cstrings({"<" + options_.sender + ">"}), wire::kNoMail,
                wire::kNoReplyMail, index);
            add(Kind::rcpt, MacroStage::rcpt, wire::kRcpt, cstrings({"<" + options_.rcpt + ">"}), wire::kNoRcpt,
                wire::kNoReplyRcpt, index);
            add(Kind::data, MacroStage::data, wire::kData, "", wire::kNoData, wire::kNoReplyData, index);
            events.back().flush = true;   // smtpd hands the connection to cleanup
            if (!(steps & wire::kNoHeaders)) {
                for (const auto& [name, value] : message_.fields) {
                    const std::string_view sent =
                        !(steps & wire::kHeaderLeadingSpace) && !value.empty() && value[0] == ' '
                            ? std::string_view(value).substr(1)
                            : std::string_view(value);
                    add(Kind::header, MacroStage::end_of_headers, wire::kHeader, cstrings({name, sent}), 0,
                        wire::kNoReplyHeader, index);
                }
            }
            if (!(steps & wire::kNoEndOfHeaders)) {
                add(Kind::end_of_headers, MacroStage::end_of_headers, wire::kEndOfHeaders, "", 0,
                    wire::kNoReplyEndOfHeaders, index);
            }
            const size_t first_chunk = events.size();
            if (!(steps & wire::kNoBody)) {
                for (size_t at = 0; at < message_.body.size(); at += kBodyChunk) {
                    add(Kind::body, MacroStage::end_of_message, wire::kBody,
                        std::string_view(message_.body).substr(at, kBodyChunk), 0, wire::kNoReplyBody, index);
                }
            }
            add(Kind::end_of_message, MacroStage::end_of_message, wire::kEndOfMessage, "", 0, 0, index);
            events.back().waits = true;
            for (size_t i = first_chunk; i < events.size(); ++i) events[i].body_end = events.size() - 1;
            Event abort{Kind::abort, {}, false, false, index, 0, 0};
            put_packet(abort.bytes, wire::kAbort, "");
            events.push_back(std::move(abort));
            for (size_t i = message_starts.back(); i < events.size(); ++i) events[i].message_end = events.size() - 1;
        }
        script.quit = events.size();
        Event quit{Kind::quit, {}, false, true, static_cast<size_t>(options_.per_connection - 1), 0, 0};
        put_packet(quit.bytes, wire::kAbort, "");
        put_packet(quit.bytes, wire::kQuit, "");
        events.push_back(std::move(quit));
        // Connect and HELO belong to no message: a verdict there ends them all.
        for (size_t i = 0; i < message_starts.front(); ++i) events[i].message_end = script.quit;
        return script;
    }

private:
    /* The macro packet before COMMAND: the stage's names that have a value. */
    std::string macros(const Agreement& agreement, MacroStage stage, char command) const {
        const std::string& names = agreement.macro_lists[static_cast<size_t>(stage)];
        if (names.empty()) return {};
        std::string data(1, command);
        std::istringstream words(names);
        std::string name;
        while (words >> name) {
            if (const auto value = macro_value(name, stage)) data += cstrings({name, *value});
        }
        std::string packet;
        put_packet(packet, wire::kMacro, data);
        return packet;
    }

    std::optional<std::string> macro_value(const std::string& name, MacroStage stage) const {
        if (name == "j" || name == "{daemon_name}") return "mx.bench.example";
        if (name == "{daemon_addr}") return "127.0.0.1";
        if (name == "v") return "Postfix 3.7.11";
        if (name == "_") return "unknown [" + options_.client_ip + "]";
        if (name == "{client_addr}") return options_.client_ip;
        if (name == "{client_name}") return "unknown";
        if (name == "{client_port}") return std::to_string(kClientPort);
        if (name == "{mail_addr}") return options_.sender;
        if (name == "{rcpt_addr}") return options_.rcpt;
        // Postfix's smtpd knows the queue id once cleanup has the message.
        if (name == "i" && static_cast<int>(stage) >= static_cast<int>(MacroStage::data)) return kQueueId;
        return std::nullopt;
    }

    const Options& options_;
    const Message& message_;
};

/* ---- measurements ---- */

struct Outcomes {
    long delivered = 0;          // continue or accept at end of message
    long accepted_early = 0;     // accept at connect, HELO or MAIL: no content filtered
    long refused = 0;            // reject, tempfail or reply code
    long discarded = 0;
    long failed = 0;             // the connection broke first
    long headers_added = 0;      // SMFIR_ADDHEADER, SMFIR_INSHEADER
    long headers_changed = 0;
    long quarantined = 0;

    void add(const Outcomes& other) {
        delivered += other.delivered;
        accepted_early += other.accepted_early;
        refused += other.refused;
        discarded += other.discarded;
        failed += other.failed;
        headers_added += other.headers_added;
        headers_changed += other.headers_changed;
        quarantined += other.quarantined;
    }
};

struct Latencies {
    std::vector<double> message;
    std::array<std::vector<double>, kKindNames.size() + 1> events;   // by Kind, then OPTNEG

    void add(const Latencies& other) {
        message.insert(message.end(), other.message.begin(), other.message.end());
        for (size_t i = 0; i < events.size(); ++i) {
            events[i].insert(events[i].end(), other.events[i].begin(), other.events[i].end());
        }
    }
};

double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

/* utime + stime of PID in seconds; nullopt when it cannot be read. */
std::optional<double> process_cpu_seconds(long pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(file, text)) return std::nullopt;
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(paren + 2));
    std::string field;
    double ticks = 0;
    for (int i = 0; i < 13 && fields >> field; ++i) {
        if (i == 11 || i == 12) ticks += std::stod(field);   // utime, stime (after state, ...)
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/* A field of /proc/PID/status in its own unit (kB for Vm*), 0 if absent. */
long status_field(long pid, const std::string& name) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(file, line)) {
        if (line.rfind(name + ":", 0) == 0) return std::strtol(line.c_str() + name.size() + 1, nullptr, 10);
    }
    return 0;
}

/* What all loops share: the message counts, the measured window. */
class Run {
public:
    explicit Run(const Options& options) : options_(options), total_(options.warmup + options.messages) {}

    /* Claims the messages of a new connection; false when enough have. */
    bool claim() { return started_.fetch_add(options_.per_connection) < total_; }

    /* A message had its final reply; returns whether it is measured. */
    bool finished() {
        const long index = done_.fetch_add(1);
        if (index == options_.warmup) window_edge(window_start_, cpu_start_);
        if (index == total_ - 1) window_edge(window_end_, cpu_end_);
        return index >= options_.warmup && index < total_;
    }

    bool measuring() const {
        const long done = done_.load();
        return done >= options_.warmup && done < total_;
    }

    void error(const std::string& what) {
        if (errors_.fetch_add(1) < kErrorsShown) std::fprintf(stderr, "bench_milter_load: %s\n", what.c_str());
    }

    long errors() const { return errors_.load(); }
    size_t per_connection() const { return static_cast<size_t>(options_.per_connection); }
    std::atomic<long> open_connections{0};

    double window_seconds() const { return ms_between(window_start_, window_end_) / 1000.0; }
    std::optional<double> filter_cpu_seconds() const {
        if (!cpu_start_ || !cpu_end_) return std::nullopt;
        return *cpu_end_ - *cpu_start_;
    }

private:
    void window_edge(Clock::time_point& at, std::optional<double>& cpu) {
        at = Clock::now();
        if (options_.pid) cpu = process_cpu_seconds(options_.pid);
    }

    const Options& options_;
    const long total_;
    std::atomic<long> started_{0};
    std::atomic<long> done_{0};
    std::atomic<long> errors_{0};
    Clock::time_point window_start_{};
    Clock::time_point window_end_{};
    std::optional<double> cpu_start_;
    std::optional<double> cpu_end_;
};

/* ---- one loop, its sessions and their connections ---- */

class Loop;

/* One connection: option negotiation, then the script's events. */
class Connection final : public Watcher {
public:
    Connection(Loop& loop, int fd);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void ready(uint32_t events) override;
    bool done() const { return done_; }

private:
    void start();
    void send_until_wait();
    void write_out();
    void read_in();
    void handle(const wire::Packet& packet);
    void negotiated(const wire::Packet& packet);
    void event_reply(const wire::Packet& packet);
    void end_message(long Outcomes::*outcome, size_t resume_at);
    void end_all_messages(long Outcomes::*outcome);
    void fail(const std::string& why);
    void finish();
    void watch(bool out);

    Loop& loop_;
    int fd_;
    bool connected_ = false;
    bool done_ = false;
    bool watching_out_ = true;
    std::string out_;
    size_t out_sent_ = 0;
    wire::PacketReader reader_{kMaxReply};
    const Script* script_ = nullptr;
    size_t next_ = 0;                 // next event to send
    size_t waiting_ = 0;              // the event whose reply is awaited
    bool awaiting_ = false;
    size_t messages_done_ = 0;        // of this connection
    Clock::time_point written_at_;    // when the write carrying the awaited event began
    Clock::time_point message_started_;
};

class Loop {
public:
    Loop(const Options& options, const Address& address, const ScriptBuilder& builder, Run& run, int sessions)
        : options_(options), address_(address), builder_(builder), run_(run), sessions_(sessions) {}

    void serve(bool sample) {
        std::unique_ptr<Timer> sampler;
        if (sample) {
            sampler = std::make_unique<Timer>(loop_, [this, &sampler] {
                take_sample();
                sampler->arm_after(kSampleInterval);
            });
            sampler->arm_after(kSampleInterval);
        }
        for (int i = 0; i < sessions_; ++i) start_connection();
        loop_.run_until([this] {
            std::erase_if(connections_, [](const auto& c) { return c->done(); });
            return connections_.empty();
        });
    }

    void start_connection() {
        if (!run_.claim()) return;
        const int fd = ::socket(address_.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            run_.error(std::string("socket: ") + std::strerror(errno));
            return;
        }
        connections_.push_back(std::make_unique<Connection>(*this, fd));
    }

    /* A connection ended: another takes its place. */
    void ended() { start_connection(); }

    const Script& script_for(std::string_view agreement_bytes, const Agreement& agreement) {
        for (const auto& script : scripts_) {
            if (script->agreement_bytes == agreement_bytes) return *script;
        }
        scripts_.push_back(std::make_unique<Script>(builder_.build(agreement_bytes, agreement)));
        return *scripts_.back();
    }

    EventLoop& loop() { return loop_; }
    const Address& address() const { return address_; }
    Run& run() { return run_; }
    std::span<char> read_buffer() { return read_buffer_; }
    Outcomes outcomes;
    Latencies latencies;

    // Samples of the filter while messages were measured.
    long samples = 0;
    long max_rss_kb = 0;
    long max_threads = 0;
    long connections_at_max_rss = 0;

private:
    void take_sample() {
        if (!run_.measuring()) return;
        const long rss = status_field(options_.pid, "VmRSS");
        const long threads = status_field(options_.pid, "Threads");
        ++samples;
        if (rss > max_rss_kb) {
            max_rss_kb = rss;
            connections_at_max_rss = run_.open_connections.load();
        }
        max_threads = std::max(max_threads, threads);
    }

    const Options& options_;
    const Address& address_;
    const ScriptBuilder& builder_;
    Run& run_;
    const int sessions_;
    EventLoop loop_;
    std::vector<char> read_buffer_ = std::vector<char>(kReadBuffer);
    std::vector<std::unique_ptr<Connection>> connections_;
    std::vector<std::unique_ptr<Script>> scripts_;
};

Connection::Connection(Loop& loop, int fd) : loop_(loop), fd_(fd), message_started_(Clock::now()) {
    ++loop_.run().open_connections;
    const Address& address = loop_.address();
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0 &&
        errno != EINPROGRESS) {
        loop_.loop().defer([this, why = std::string("connect: ") + std::strerror(errno)] { fail(why); });
        return;
    }
    loop_.loop().watch(fd_, EPOLLOUT, *this);
}

Connection::~Connection() {
    if (fd_ >= 0) ::close(fd_);
}

void Connection::ready(uint32_t events) {
    if (done_) return;
    if (!connected_) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) return fail(std::string("connect: ") + std::strerror(error));
        connected_ = true;
        return start();
    }
    if (events & EPOLLOUT) write_out();
    if (!done_ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_in();
}

void Connection::start() {
    std::string offer;
    put32(offer, wire::kProtocolVersion);
    put32(offer, kOfferedActions);
    put32(offer, kOfferedSteps);
    put_packet(out_, wire::kOptionNegotiation, offer);
    awaiting_ = true;
    written_at_ = Clock::now();
    write_out();
}

/* Queue events up to and including the next that waits for a reply (or
 * must be written at once), then write them. */
void Connection::send_until_wait() {
    const auto& events = script_->events;
    while (next_ < events.size()) {
        const Event& event = events[next_++];
        if (event.kind == Kind::mail && event.message > 0) message_started_ = Clock::now();
        out_ += event.bytes;
        if (event.waits) {
            awaiting_ = true;
            waiting_ = next_ - 1;
            written_at_ = Clock::now();
            return write_out();
        }
        if (event.kind == Kind::quit) {
            write_out();
            return finish();
        }
        if (event.flush) write_out();
        if (done_) return;
    }
}

void Connection::write_out() {
    while (out_sent_ < out_.size()) {
        const ssize_t sent = ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return watch(true);
            return fail(std::string("write: ") + std::strerror(errno));
        }
        out_sent_ += static_cast<size_t>(sent);
    }
    out_.clear();
    out_sent_ = 0;
    watch(false);
}

void Connection::watch(bool out) {
    if (done_ || out == watching_out_) return;
    watching_out_ = out;
    loop_.loop().change(fd_, EPOLLIN | (out ? EPOLLOUT : 0u), *this);
}

void Connection::read_in() {
    const auto buffer = loop_.read_buffer();
    const ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        return fail(std::string("read: ") + std::strerror(errno));
    }
    if (got == 0) return fail("the filter closed the connection");
    reader_.feed(std::string_view(buffer.data(), static_cast<size_t>(got)));
    wire::Packet packet;
    while (!done_) {
        const auto status = reader_.next(packet);
        if (status == wire::PacketReader::Status::need_more) break;
        if (status == wire::PacketReader::Status::bad_length) return fail("a reply of bad length");
        handle(packet);
    }
    if (!done_) reader_.keep();
}

void Connection::handle(const wire::Packet& packet) {
    if (!awaiting_) return fail(std::string("a reply ('") + packet.command + "') to nothing");
    if (!script_) return negotiated(packet);
    event_reply(packet);
}

void Connection::negotiated(const wire::Packet& packet) {
    const auto agreement = packet.command == wire::kOptionNegotiation ? parse_agreement(packet.data) : std::nullopt;
    if (!agreement) return fail("option negotiation: no valid reply");
    awaiting_ = false;
    if (loop_.run().measuring()) {
        loop_.latencies.events[kOptionNegotiationSlot].push_back(ms_between(written_at_, Clock::now()));
    }
    script_ = &loop_.script_for(packet.data, *agreement);
    send_until_wait();
}

void Connection::event_reply(const wire::Packet& packet) {
    const Event& event = script_->events[waiting_];
    const char reply = packet.command;
    if (reply == 'p') return;   // SMFIR_PROGRESS: still working
    if (event.kind == Kind::end_of_message) {
        switch (reply) {
            case wire::kAddHeader:
            case wire::kInsertHeader: ++loop_.outcomes.headers_added; return;
            case wire::kChangeHeader: ++loop_.outcomes.headers_changed; return;
            case wire::kQuarantine: ++loop_.outcomes.quarantined; return;
            default: break;
        }
    }
    awaiting_ = false;
    const auto now = Clock::now();
    if (loop_.run().measuring()) {
        loop_.latencies.events[static_cast<size_t>(event.kind)].push_back(ms_between(written_at_, now));
    }
    const bool whole_connection = event.kind == Kind::connect || event.kind == Kind::helo;
    switch (reply) {
        case wire::kContinue:
            if (event.kind == Kind::end_of_message) return end_message(&Outcomes::delivered, waiting_ + 1);
            return send_until_wait();
        case 's':   // SMFIR_SKIP: no more body
            if (event.kind == Kind::body) {
                next_ = event.body_end;
                return send_until_wait();
            }
            return send_until_wait();
        case wire::kAccept:
            if (event.kind == Kind::end_of_message) return end_message(&Outcomes::delivered, waiting_ + 1);
            if (whole_connection) return end_all_messages(&Outcomes::accepted_early);
            return end_message(&Outcomes::accepted_early, event.message_end);
        case wire::kDiscard:
            if (whole_connection) return send_until_wait();   // Postfix ignores it there
            return end_message(&Outcomes::discarded, event.message_end);
        case wire::kReject:
        case wire::kTempfail:
        case wire::kReplyCode:
            if (whole_connection) return end_all_messages(&Outcomes::refused);
            return end_message(&Outcomes::refused, event.message_end);
        default:
            return fail(std::string("unexpected reply '") + reply + "' to " + kKindNames[static_cast<size_t>(event.kind)]);
    }
}

/* The current message is over (OUTCOME); go on at event RESUME_AT. */
void Connection::end_message(long Outcomes::*outcome, size_t resume_at) {
    ++(loop_.outcomes.*outcome);
    if (loop_.run().finished()) loop_.latencies.message.push_back(ms_between(message_started_, Clock::now()));
    ++messages_done_;
    next_ = resume_at;
    send_until_wait();
}

/* A verdict for the connection: every message it was to carry ends so. */
void Connection::end_all_messages(long Outcomes::*outcome) {
    const auto now = Clock::now();
    for (; messages_done_ < loop_.run().per_connection(); ++messages_done_) {
        ++(loop_.outcomes.*outcome);
        if (loop_.run().finished()) loop_.latencies.message.push_back(ms_between(message_started_, now));
    }
    next_ = script_->quit;
    send_until_wait();
}

void Connection::fail(const std::string& why) {
    if (done_) return;
    loop_.run().error(why);
    // Messages it was to carry still count, as failed, so that the run ends.
    for (size_t i = messages_done_; i < loop_.run().per_connection(); ++i) {
        ++loop_.outcomes.failed;
        loop_.run().finished();
    }
    finish();
}

void Connection::finish() {
    if (done_) return;
    done_ = true;
    loop_.loop().unwatch(fd_, *this);
    ::close(fd_);
    fd_ = -1;
    --loop_.run().open_connections;
    loop_.ended();
}

/* ---- report ---- */

double percentile(std::vector<double>& values, double fraction) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const size_t rank = static_cast<size_t>(fraction * static_cast<double>(values.size()));
    return values[std::min(rank, values.size() - 1)];
}

struct Row {
    std::string name;
    size_t count;
    double p50, p99, max;
};

Row latency_row(const std::string& name, std::vector<double>& values) {
    return Row{name, values.size(), percentile(values, 0.50), percentile(values, 0.99), percentile(values, 1.0)};
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    const Address address = filter_address(options.filter);
    const Message message = read_message(options.message_file);
    // Each session holds a socket; raise the soft limit as far as allowed.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }

    const ScriptBuilder builder(options, message);
    Run run(options);
    std::vector<std::unique_ptr<Loop>> loops;
    for (int t = 0; t < options.threads; ++t) {
        const int sessions = options.sessions / options.threads + (t < options.sessions % options.threads ? 1 : 0);
        loops.push_back(std::make_unique<Loop>(options, address, builder, run, sessions));
    }
    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < loops.size(); ++t) {
        threads.emplace_back([&loops, t, &options] { loops[t]->serve(t == 0 && options.pid != 0); });
    }
    for (auto& thread : threads) thread.join();
    rusage after{};
    getrusage(RUSAGE_SELF, &after);

    Outcomes outcomes;
    Latencies latencies;
    for (const auto& loop : loops) {
        outcomes.add(loop->outcomes);
        latencies.add(loop->latencies);
    }
    const double seconds = run.window_seconds();
    const double rate = seconds > 0 ? static_cast<double>(options.messages) / seconds : 0;
    const auto cpu_of = [](const timeval& user, const timeval& system) {
        return static_cast<double>(user.tv_sec + system.tv_sec) + static_cast<double>(user.tv_usec + system.tv_usec) / 1e6;
    };
    const double own_cpu = cpu_of(after.ru_utime, after.ru_stime) - cpu_of(before.ru_utime, before.ru_stime);

    std::vector<Row> rows{latency_row("message", latencies.message),
                          latency_row("OPTNEG", latencies.events[kOptionNegotiationSlot])};
    for (size_t kind = 0; kind < kKindNames.size(); ++kind) {
        if (!latencies.events[kind].empty()) rows.push_back(latency_row(kKindNames[kind], latencies.events[kind]));
    }

    std::printf("bench_milter_load: %s, %d sessions, %d message%s per connection, %ld measured after %ld, "
                "%d thread%s\n",
                options.filter.c_str(), options.sessions, options.per_connection,
                options.per_connection == 1 ? "" : "s", options.messages, options.warmup, options.threads,
                options.threads == 1 ? "" : "s");
    std::printf("messages/s: %.1f (%.3f s)\n", rate, seconds);
    std::printf("outcomes (all %ld messages): delivered %ld, accepted before the content %ld, refused %ld, "
                "discarded %ld, failed %ld; headers added %ld, changed %ld, quarantined %ld\n",
                options.warmup + options.messages, outcomes.delivered, outcomes.accepted_early, outcomes.refused,
                outcomes.discarded, outcomes.failed, outcomes.headers_added, outcomes.headers_changed,
                outcomes.quarantined);
    std::printf("latency, ms    %8s %8s %8s %8s\n", "count", "p50", "p99", "max");
    for (const Row& row : rows) {
        std::printf("  %-12s %8zu %8.3f %8.3f %8.3f\n", row.name.c_str(), row.count, row.p50, row.p99, row.max);
    }
    const auto filter_cpu = run.filter_cpu_seconds();
    const double per_1000 = 1000.0 / static_cast<double>(options.messages);
    long hwm_kb = 0;
    if (options.pid) {
        hwm_kb = status_field(options.pid, "VmHWM");
        std::printf("filter (pid %ld): CPU %.3f s per 1000 messages; RSS max %.1f MB (%ld connections open), "
                    "threads max %ld, %ld samples; VmHWM %.1f MB\n",
                    options.pid, filter_cpu ? *filter_cpu * per_1000 : -1.0, loops[0]->max_rss_kb / 1024.0,
                    loops[0]->connections_at_max_rss, loops[0]->max_threads, loops[0]->samples, hwm_kb / 1024.0);
    }
    std::printf("generator CPU: %.3f s per 1000 messages (whole run)\n",
                own_cpu * 1000.0 / static_cast<double>(options.warmup + options.messages));
    if (run.errors() > 0) std::printf("errors: %ld\n", run.errors());

    if (!options.json.empty()) {
        FILE* out = std::fopen(options.json.c_str(), "w");
        if (!out) {
            std::fprintf(stderr, "bench_milter_load: cannot write %s: %s\n", options.json.c_str(), std::strerror(errno));
            return 1;
        }
        std::fprintf(out, "{\"sessions\": %d, \"per_connection\": %d, \"messages\": %ld, \"warmup\": %ld, "
                          "\"threads\": %d, \"seconds\": %.4f, \"messages_per_s\": %.1f, \"errors\": %ld,\n",
                     options.sessions, options.per_connection, options.messages, options.warmup, options.threads,
                     seconds, rate, run.errors());
        std::fprintf(out, " \"outcomes\": {\"delivered\": %ld, \"accepted_early\": %ld, \"refused\": %ld, "
                          "\"discarded\": %ld, \"failed\": %ld, \"headers_added\": %ld, \"headers_changed\": %ld, "
                          "\"quarantined\": %ld},\n",
                     outcomes.delivered, outcomes.accepted_early, outcomes.refused, outcomes.discarded,
                     outcomes.failed, outcomes.headers_added, outcomes.headers_changed, outcomes.quarantined);
        std::fprintf(out, " \"latency_ms\": {");
        for (size_t i = 0; i < rows.size(); ++i) {
            std::fprintf(out, "%s\"%s\": {\"count\": %zu, \"p50\": %.4f, \"p99\": %.4f, \"max\": %.4f}",
                         i ? ", " : "", rows[i].name.c_str(), rows[i].count, rows[i].p50, rows[i].p99, rows[i].max);
        }
        std::fprintf(out, "},\n \"generator_cpu_s_per_1000\": %.4f", own_cpu * 1000.0 /
                                                                          static_cast<double>(options.warmup +
                                                                                              options.messages));
        if (options.pid) {
            std::fprintf(out, ",\n \"filter\": {\"pid\": %ld, \"cpu_s_per_1000\": %.4f, \"max_rss_kb\": %ld, "
                              "\"connections_at_max_rss\": %ld, \"max_threads\": %ld, \"samples\": %ld, "
                              "\"vm_hwm_kb\": %ld}",
                         options.pid, filter_cpu ? *filter_cpu * per_1000 : -1.0, loops[0]->max_rss_kb,
                         loops[0]->connections_at_max_rss, loops[0]->max_threads, loops[0]->samples, hwm_kb);
        }
        std::fprintf(out, "}\n");
        std::fclose(out);
    }
    return run.errors() > 0 ? 1 : 0;
}
