/*
 * connection.cc: the native engine's protocol state, commands, replies,
 * buffers and deadlines for one MTA connection (see connection.h).
 */
#include "milter/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "metrics/metrics.h"
#include "milter/negotiation.h"
#include "milter/replies.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::milter {

namespace {

using Clock = std::chrono::steady_clock;
using wire::MacroStage;

/* The step that makes COMMAND's event need no reply; 0 when it always
 * has one. */
uint32_t no_reply_step(char command) {
    switch (command) {
        case wire::kConnect: return wire::kNoReplyConnect;
        case wire::kHelo: return wire::kNoReplyHelo;
        case wire::kMail: return wire::kNoReplyMail;
        case wire::kRcpt: return wire::kNoReplyRcpt;
        case wire::kData: return wire::kNoReplyData;
        case wire::kHeader: return wire::kNoReplyHeader;
        case wire::kEndOfHeaders: return wire::kNoReplyEndOfHeaders;
        case wire::kBody: return wire::kNoReplyBody;
        case wire::kUnknown: return wire::kNoReplyUnknown;
        default: return 0;
    }
}

bool is_command(char command) {
    static constexpr std::string_view kCommands = "ABCDEHKLMNOQRTU";
    return kCommands.find(command) != std::string_view::npos;
}

/* "M" or "0x07": a command byte in a log line. */
std::string command_name(char command) {
    const auto byte = static_cast<unsigned char>(command);
    if (byte > 0x20 && byte < 0x7f) return std::string(1, command);
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string("0x") + kHex[byte >> 4] + kHex[byte & 0xf];
}

/* The client's address from a connect event: the family's address, or
 * for a local or unknown client, the {client_addr} macro if any. */
std::optional<IpAddress> client_address(const wire::ConnectInfo& info, const std::string& client_addr_macro) {
    if (info.family == '4' || info.family == '6') {
        std::string_view text = info.address;
        if (text.size() > 5 && equals_nocase(text.substr(0, 5), "IPv6:")) text.remove_prefix(5);
        return parse_ip(text);
    }
    return parse_ip(client_addr_macro);
}

/* The wire form of the end-of-message changes. */
class WireEditor final : public MessageEditor {
public:
    WireEditor(std::string& out, uint32_t actions) : out_(out), actions_(actions) {}
    bool remove_header(std::string_view name, int position) override {
        if (!(actions_ & wire::kActionChangeHeaders)) return false;
        wire::put_change_header(out_, static_cast<uint32_t>(position), name, "");
        return true;
    }
    bool insert_header(std::string_view name, const std::string& value) override {
        if (!(actions_ & wire::kActionAddHeaders)) return false;
        wire::put_insert_header(out_, 0, name, value);
        return true;
    }
    bool add_header(std::string_view name, const std::string& value) override {
        if (!(actions_ & wire::kActionAddHeaders)) return false;
        wire::put_add_header(out_, name, value);
        return true;
    }
    bool quarantine(const std::string& reason) override {
        if (!(actions_ & wire::kActionQuarantine) || reason.empty()) return false;
        wire::put_quarantine(out_, reason);
        return true;
    }

private:
    std::string& out_;
    uint32_t actions_;
};

}  // namespace

Connection::Connection(ConnectionOwner& owner, int fd, bool tcp, std::string peer)
    : owner_(owner), fd_(fd), tcp_(tcp), peer_(std::move(peer)), deadline_(owner.loop(), [this] { expire(); }),
      accepted_at_(Clock::now()) {
    owner_.loop().watch(fd_, EPOLLIN | EPOLLRDHUP, *this);
    rearm();
}

Connection::~Connection() {
    // The session first: it may hold on to the loop's timers and lookups.
    session_.reset();
    owner_.loop().unwatch(fd_, *this);
    ::close(fd_);
}

void Connection::ready(uint32_t events) {
    if (closed_) return;
    if (events & EPOLLOUT) {
        const bool was_full = unsent() >= kMaxHeldOutput;
        flush();
        if (closed_) return;
        // The peer read enough of our replies: its held commands go on.
        if (was_full && unsent() < kMaxHeldOutput) serve_input();
        if (closed_) return;
        rearm();   // it read some: milter.timeout again for the rest
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_input();
}

void Connection::read_input() {
    const std::span<char> buffer = owner_.read_buffer();
    const ssize_t got = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        return close(errno_message("read failed"));
    }
    if (got == 0) return close("");   // the MTA went away; it says why in its own log
    const uint64_t sent_before = bytes_sent_;
    reader_.feed(std::string_view(buffer.data(), static_cast<size_t>(got)));
    serve_input();
    if (closed_) return;
    // The buffer is the loop's: what is left of it must be copied now.
    reader_.keep();
    if (tcp_ && bytes_sent_ == sent_before) {
        // Nothing answered what came (no-reply events, part of a packet,
        // a stage that waits): the ACK goes now, not after the kernel's
        // delay, for which the MTA's Nagle would hold its next packet.  A
        // reply carries the ACK itself.  The kernel clears the flag again,
        // so it is set each time.
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
}

void Connection::serve_input() {
    bool need_more = false;
    while (!closed_ && waiting_for_ == 0 && unsent() < kMaxHeldOutput) {
        wire::Packet packet;
        const auto status = reader_.next(packet);
        if (status == wire::PacketReader::Status::need_more) {
            need_more = true;
            break;
        }
        if (status == wire::PacketReader::Status::bad_length) {
            const uint32_t length = reader_.bad_length();
            return close(length == 0 ? std::string("a packet of length 0")
                                     : "a packet of " + std::to_string(length) + " bytes, over the limit of " +
                                           std::to_string(kMaxPacket));
        }
        in_packet_ = false;
        if (!handle(packet)) return;
    }
    if (closed_) return;
    // A packet begun and not finished: its deadline runs from its start.
    // (Whole packets held back for unread replies are not one.)
    if (need_more && reader_.pending() > 0 && !in_packet_) {
        in_packet_ = true;
        packet_started_ = Clock::now();
    }
    flush();
    if (closed_) return;
    watch_for(wants_input(), unsent() > 0);
    rearm();
}

bool Connection::refuse(std::string why) {
    close(why);
    return false;
}

bool Connection::handle(const wire::Packet& packet) {
    const char command = packet.command;
    if (!is_command(command)) return refuse("unknown command " + command_name(command));
    if (command == wire::kOptionNegotiation) return negotiate(packet.data);
    if (!negotiated_) return refuse("command " + command_name(command) + " before option negotiation");
    switch (command) {
        case wire::kMacro: return store_macros(packet.data);
        case wire::kConnect: return start_session(packet.data);
        case wire::kQuit: return refuse("");
        case wire::kQuitNewConnection: return next_session();
        case wire::kAbort:
            if (session_) session_->abort_message();
            in_message_ = in_content_ = false;
            clear_macros_from(MacroStage::mail);
            return true;
        default: break;
    }
    if (!session_) return refuse("command " + command_name(command) + " before CONNECT");
    switch (command) {
        case wire::kHelo: {
            const auto name = wire::parse_string(packet.data);
            if (!name) return refuse("HELO without its name");
            const bool tls = !macro("{tls_version}").empty() || !macro("{cipher}").empty();
            waited(command, session_->helo(*name, tls));
            return true;
        }
        case wire::kMail: return start_message(packet.data);
        case wire::kUnknown:
            answer(command, Reply{});
            return true;
        default: break;
    }
    if (!in_message_) return refuse("command " + command_name(command) + " before MAIL");
    switch (command) {
        case wire::kRcpt: {
            const auto arguments = wire::parse_arguments(packet.data, kMaxArguments);
            if (!arguments) return refuse("RCPT without its address");
            note_queue_id();
            waited(command, session_->rcpt(arguments->front()));
            return true;
        }
        case wire::kData:
            answer(command, Reply{});
            return true;
        case wire::kHeader: return header(packet.data);
        case wire::kEndOfHeaders:
            in_content_ = true;
            answer(command, Reply{});
            return true;
        case wire::kBody:
            in_content_ = true;
            session_->body(packet.data);
            answer(command, Reply{});
            return true;
        case wire::kEndOfMessage: return end_of_message(packet.data);
        default: return refuse("command " + command_name(command) + " in a message");
    }
}

bool Connection::negotiate(std::string_view data) {
    if (negotiated_) return refuse("a second option negotiation");
    const auto offer = wire::parse_option_negotiation(data);
    if (!offer) return refuse("option negotiation shorter than 12 bytes");
    snapshot_ = current_snapshot();
    if (!snapshot_) return refuse("no policy loaded yet");
    counted_ = std::make_unique<SessionCount>();
    uint32_t steps = wanted_steps(snapshot_->needs);
    // A session refused for the drain is answered at connect.
    if (counted_->refused()) steps &= ~wire::kNoReplyConnect;
    const auto reply = agree(*offer, steps);
    if (!reply) return refuse("milter protocol version " + std::to_string(offer->version) + " is older than 2");
    negotiated_ = true;
    actions_ = reply->actions;
    steps_ = reply->steps;
    std::vector<std::pair<MacroStage, std::string>> lists;
    if (actions_ & wire::kActionSetMacroList) {
        for (const MacroList& list : kMacroLists) lists.emplace_back(list.stage, list.names);
    }
    wire::put_option_negotiation(out_, *reply, lists);
    return true;
}

/* After SMFIC_QUIT_NC the connection waits for a new SMTP session, and
 * nothing of the last one stays: no session is in flight until its
 * CONNECT. */
bool Connection::next_session() {
    reused_ = true;
    session_.reset();
    counted_.reset();
    in_message_ = in_content_ = false;
    clear_macros_from(MacroStage::connect);
    return true;
}

/* A session after SMFIC_QUIT_NC is counted (refused in a drain) and runs
 * under the policy published now, as on a new connection; a policy that
 * needs other protocol steps than were negotiated cannot be served here,
 * so then the session keeps the connection's. */
void Connection::renew_for_session() {
    counted_ = std::make_unique<SessionCount>();
    auto latest = current_snapshot();
    if (latest && wanted_steps(latest->needs) == wanted_steps(snapshot_->needs)) snapshot_ = std::move(latest);
}

bool Connection::store_macros(std::string_view data) {
    const auto macros = wire::parse_macros(data, kMaxMacroPairs);
    if (!macros) return refuse("macros not as the protocol has them, or more than " + std::to_string(kMaxMacroPairs));
    const auto stage = wire::macro_stage_of(macros->command);
    if (!stage) return true;   // for an event that has none: nothing to keep
    auto& kept = macros_[static_cast<size_t>(*stage)];
    kept.clear();
    for (const auto& [name, value] : macros->pairs) kept.emplace_back(name, value);
    return true;
}

bool Connection::start_session(std::string_view data) {
    if (session_) return refuse("a second CONNECT in one SMTP session");
    const auto info = wire::parse_connect(data);
    if (!info) return refuse("CONNECT not as the protocol has it");
    if (!counted_) renew_for_session();
    session_ = std::make_unique<Session>(snapshot_, [this] { resumed(); });
    metrics::count_connection();
    if (counted_->refused()) {
        // A connection negotiated before the drain may have agreed to no
        // reply at connect: then the MTA gets none, and its default action.
        if (agreed(wire::kNoReplyConnect)) return refuse("stopping: a new session refused");
        Answer refusal;
        refusal.kind = Answer::Kind::tempfail;
        put_answer(refusal);
        return true;
    }
    const auto ip = client_address(*info, macro("{client_addr}"));
    waited(wire::kConnect, session_->connect(ip, info->host, info->port));
    return true;
}

bool Connection::start_message(std::string_view data) {
    const auto arguments = wire::parse_arguments(data, kMaxArguments);
    if (!arguments) return refuse("MAIL without its address");
    in_message_ = true;
    in_content_ = false;
    const auto reply = session_->mail(arguments->front(), macro("{auth_authen}"),
                                      declared_size(std::span(*arguments).subspan(1)));
    note_queue_id();
    waited(wire::kMail, reply);
    return true;
}

bool Connection::header(std::string_view data) {
    const auto field = wire::parse_header(data);
    if (!field) return refuse("a header field not as the protocol has it");
    in_content_ = true;
    // Without SMFIP_HDR_LEADSPC the MTA took one space after the colon.
    if (agreed(wire::kHeaderLeadingSpace)) session_->header(field->name, field->value);
    else session_->header(field->name, std::string(" ").append(field->value));
    answer(wire::kHeader, Reply{});
    return true;
}

bool Connection::end_of_message(std::string_view data) {
    // The last piece of the body may come with the end of message.
    if (!data.empty()) session_->body(data);
    in_message_ = in_content_ = false;
    note_queue_id();
    metrics::count_message();
    waited(wire::kEndOfMessage, session_->end_of_message());
    return true;
}

/* REPLY to COMMAND, or the wait for it. */
void Connection::waited(char command, std::optional<Reply> reply) {
    if (!reply) {
        waiting_for_ = command;
        return;
    }
    if (command == wire::kEndOfMessage) answer_end_of_message(*reply);
    else answer(command, *reply);
}

void Connection::resumed() {
    if (closed_ || !session_ || waiting_for_ == 0) return;
    std::optional<Reply> reply = session_->resume();
    if (!reply) return;
    const char command = std::exchange(waiting_for_, 0);
    waited(command, std::move(reply));
    serve_input();
}

void Connection::answer(char command, const Reply& reply) {
    if (agreed(no_reply_step(command))) {
        if (reply.answer.kind != Answer::Kind::proceed) {
            log::warning("a verdict at a stage negotiated without reply was dropped");
        }
        return;
    }
    put_answer(reply.answer);
}

void Connection::answer_end_of_message(const Reply& reply) {
    WireEditor editor(out_, actions_);
    apply_changes(reply, agreed(wire::kHeaderLeadingSpace), editor);
    put_answer(reply.answer);
}

void Connection::put_answer(const Answer& answer) {
    switch (answer.kind) {
        case Answer::Kind::proceed: return wire::put_simple(out_, wire::kContinue);
        case Answer::Kind::accept: return wire::put_simple(out_, wire::kAccept);
        case Answer::Kind::discard: return wire::put_simple(out_, wire::kDiscard);
        case Answer::Kind::reject:
        case Answer::Kind::tempfail: break;
    }
    const auto lines = own_reply_lines(answer);
    if (!lines) return wire::put_simple(out_, answer.kind == Answer::Kind::reject ? wire::kReject : wire::kTempfail);
    wire::put_reply_code(out_, wire::reply_text(answer.code, answer.xcode, *lines));
}

std::string Connection::macro(std::string_view name) const {
    // As libmilter: the latest stage first; "{x}" and "x" are one name.
    const std::string_view bare =
        name.size() == 3 && name.front() == '{' && name.back() == '}' ? name.substr(1, 1) : std::string_view();
    const std::string braced = name.size() == 1 ? std::string("{").append(name).append("}") : std::string();
    for (auto stage = macros_.rbegin(); stage != macros_.rend(); ++stage) {
        for (const auto& [key, value] : *stage) {
            if (key == name || (!bare.empty() && key == bare) || (!braced.empty() && key == braced)) return value;
        }
    }
    return "";
}

void Connection::note_queue_id() {
    const std::string id = macro("i");
    if (!id.empty() && session_) session_->facts().queue_id = id;
}

void Connection::clear_macros_from(MacroStage stage) {
    // The message's stages are mail, rcpt, data, end of message and end of
    // header (numbered so by the protocol); connect and helo come before.
    for (size_t i = static_cast<size_t>(stage); i < macros_.size(); ++i) macros_[i].clear();
}

void Connection::flush() {
    bool took_some = false;
    while (out_sent_ < out_.size()) {
        const ssize_t sent = ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return close(errno_message("write failed"));
        }
        out_sent_ += static_cast<size_t>(sent);
        bytes_sent_ += static_cast<uint64_t>(sent);
        took_some = true;
    }
    if (out_sent_ == out_.size()) {
        out_.clear();
        out_sent_ = 0;
        unread_since_.reset();
    } else {
        if (took_some || !unread_since_) unread_since_ = Clock::now();
        // A peer that reads, but never all: what it read goes once it is
        // as much as what waits (each byte is moved at most once).
        if (out_sent_ >= unsent()) {
            out_.erase(0, out_sent_);
            out_sent_ = 0;
        }
    }
    if (!closed_) watch_for(wants_input(), unsent() > 0);
}

/* Whether to read more now.  While a stage waits, what comes is held
 * (complete packets and the start of one) up to kMaxHeldInput; otherwise
 * every complete packet has been handled and what is held is one packet
 * being read, which may be as long as kMaxPacket. */
bool Connection::wants_input() const {
    if (unsent() >= kMaxHeldOutput) return false;
    return waiting_for_ == 0 || reader_.pending() < kMaxHeldInput;
}

void Connection::watch_for(bool in, bool out) {
    if (in == watching_in_ && out == watching_out_) return;
    watching_in_ = in;
    watching_out_ = out;
    owner_.loop().change(fd_, (in ? EPOLLIN | EPOLLRDHUP : 0u) | (out ? EPOLLOUT : 0u), *this);
}

void Connection::rearm() {
    if (closed_ || waiting_for_ != 0) {
        deadline_.disarm();
        return;
    }
    const EngineSettings& settings = owner_.settings();
    Clock::time_point at;
    if (awaits_first_connect()) at = accepted_at_ + settings.timeout;
    else if (in_packet_) at = packet_started_ + settings.timeout;
    else if (in_content_) at = Clock::now() + settings.timeout;
    else at = Clock::now() + settings.idle_timeout;
    if (unread_since_) at = std::min(at, *unread_since_ + settings.timeout);
    deadline_.arm(at);
}

void Connection::expire() {
    const EngineSettings& settings = owner_.settings();
    if (unread_since_ && Clock::now() >= *unread_since_ + settings.timeout) {
        return close("its replies unread for milter.timeout (" + format_duration(settings.timeout) + ", " +
                     std::to_string(unsent()) + " bytes)");
    }
    if (awaits_first_connect()) {
        return close("no CONNECT within milter.timeout (" + format_duration(settings.timeout) + ")");
    }
    if (in_packet_) {
        return close("stalled in the middle of a packet (" + std::to_string(reader_.pending()) +
                     " bytes) for milter.timeout (" + format_duration(settings.timeout) + ")");
    }
    if (in_content_) {
        return close("no event within a message's content for milter.timeout (" + format_duration(settings.timeout) +
                     ")");
    }
    close("idle for milter.idle_timeout (" + format_duration(settings.idle_timeout) + ")");
}

/* Ends the connection; a WHY ("" for an ordinary end) is logged. */
void Connection::close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    deadline_.disarm();
    // Replies to the commands before a QUIT or a protocol error in the
    // same read: libmilter would have sent each before reading on.  What
    // the socket takes now, without waiting: a peer that does not read
    // loses them (flush() on a closed connection logs nothing more).
    flush();
    if (!why.empty()) log::warning("milter connection from " + peer_ + " closed: " + why);
    owner_.closed(*this);
}

}  // namespace portcullis::milter
