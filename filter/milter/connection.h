/*
 * connection.h: one MTA connection on the native engine, from accept to
 * close: the milter protocol read and written on a non-blocking socket,
 * each command handed to the Session, each reply sent.
 *
 * Commands are handled strictly in order.  A command whose stage waits
 * (a lookup, the store) holds back the ones after it: they stay in the
 * input, and reading goes on only until kMaxHeldInput bytes wait, so a
 * peer that streams a message meanwhile is held up by TCP, not by memory.
 * (With no stage waiting, only one unfinished packet is held, up to
 * kMaxPacket.)
 * Likewise a peer that does not read its replies: past kMaxHeldOutput
 * bytes of them, no more commands are handled until it does (and the
 * replies it read are not kept while it lags behind the rest).
 * Replies go out in one write per batch of input; TCP sockets have Nagle
 * off (TCP_NODELAY), and TCP_QUICKACK is set after every read that sends
 * nothing back, so neither side waits for a delayed ACK when no-reply
 * events leave nothing to answer (a reply carries the ACK itself).
 *
 * The protocol's order is enforced: option negotiation first and once;
 * a connect before anything of a session; MAIL before RCPT, DATA, header
 * fields, end of header, body and end of message.  Anything else (an
 * unknown command, a packet longer than kMaxPacket or of length 0, more
 * than kMaxMacroPairs macros in one packet, data not in the command's
 * layout) ends the connection with one log line saying why; the MTA then
 * applies its milter_default_action.  No session is ever run from a
 * command out of order.  After SMFIC_QUIT_NC the next CONNECT starts a
 * session as on a new connection: the macros of the last one forgotten,
 * counted anew (refused in a drain), under the policy published now if it
 * needs the protocol steps negotiated.
 *
 * Deadlines (milter.timeout, milter.idle_timeout): from accept to the
 * first connect event, and from the first byte of a packet to its last,
 * at most milter.timeout; between the events of a message's content
 * (header to end of message, which the MTA sends without pause)
 * milter.timeout; between other events (the SMTP client's commands,
 * messages, the sessions of a reused connection) at most
 * milter.idle_timeout; replies the peer leaves unread, milter.timeout
 * from the last write that it took any of (an MTA reads each reply
 * before it sends on).  While a stage waits for its checks, no deadline
 * runs: the checks have their own.  A connection past a deadline is
 * closed with a log line.
 */
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "milter/engine.h"
#include "milter/protocol.h"
#include "milter/session.h"
#include "util/event_loop.h"

namespace portcullis::milter {

inline constexpr uint32_t kMaxPacket = 1024 * 1024 + 1024;   // a body chunk is at most 64 KiB; header values 1 MiB
inline constexpr size_t kMaxMacroPairs = 128;
inline constexpr size_t kMaxHeldInput = 256 * 1024;
inline constexpr size_t kMaxHeldOutput = 64 * 1024;   // replies the peer has not read: it reads no more of ours
inline constexpr size_t kMaxArguments = 64;                   // MAIL and RCPT: the address and ESMTP parameters

class Connection;

/* What a connection needs of the loop that owns it. */
class ConnectionOwner {
public:
    virtual EventLoop& loop() = 0;
    /* A buffer to read into, shared by the loop's connections. */
    virtual std::span<char> read_buffer() = 0;
    /* CONNECTION is done: the owner destroys it once the event is handled. */
    virtual void closed(Connection& connection) = 0;
    virtual const EngineSettings& settings() const = 0;

protected:
    ~ConnectionOwner() = default;
};

class Connection final : public Watcher {
public:
    /* FD is accepted and non-blocking; PEER names it in log lines. */
    Connection(ConnectionOwner& owner, int fd, bool tcp, std::string peer);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void ready(uint32_t events) override;

private:
    enum class Deadline { handshake, packet, content, idle };

    void read_input();
    void serve_input();
    /* One command; false when the connection must end (already logged). */
    bool handle(const wire::Packet& packet);
    bool negotiate(std::string_view data);
    bool next_session();
    void renew_for_session();
    bool store_macros(std::string_view data);
    bool start_session(std::string_view data);
    bool start_message(std::string_view data);
    bool header(std::string_view data);
    bool end_of_message(std::string_view data);
    bool refuse(std::string why);

    void waited(char command, std::optional<Reply> reply);
    void resumed();
    void answer(char command, const Reply& reply);
    void answer_end_of_message(const Reply& reply);
    void put_answer(const Answer& answer);
    bool agreed(uint32_t step) const { return (steps_ & step) != 0; }
    /* A reused connection waits for its next session as for any event. */
    bool awaits_first_connect() const { return !session_ && !reused_; }
    std::string macro(std::string_view name) const;
    void note_queue_id();
    void clear_macros_from(wire::MacroStage stage);

    void flush();
    size_t unsent() const { return out_.size() - out_sent_; }
    bool wants_input() const;
    void watch_for(bool in, bool out);
    void rearm();
    void expire();
    void close(const std::string& why);

    ConnectionOwner& owner_;
    int fd_;
    bool tcp_;
    std::string peer_;
    wire::PacketReader reader_{kMaxPacket};
    std::string out_;
    size_t out_sent_ = 0;
    uint64_t bytes_sent_ = 0;   // in all, to tell whether a read was answered
    bool watching_in_ = true;
    bool watching_out_ = false;
    bool closed_ = false;

    Timer deadline_;
    std::chrono::steady_clock::time_point accepted_at_;
    std::chrono::steady_clock::time_point packet_started_;
    bool in_packet_ = false;
    // Since when replies wait in out_ with the peer reading none of them.
    std::optional<std::chrono::steady_clock::time_point> unread_since_;

    bool negotiated_ = false;
    bool reused_ = false;    // an SMFIC_QUIT_NC came: sessions after the first
    uint32_t actions_ = 0;
    uint32_t steps_ = 0;
    std::shared_ptr<const Snapshot> snapshot_;
    std::unique_ptr<SessionCount> counted_;   // from negotiation, then from each CONNECT after QUIT_NC
    std::unique_ptr<Session> session_;
    bool in_message_ = false;
    bool in_content_ = false;
    char waiting_for_ = 0;   // the command whose stage waits, 0 when none
    std::array<std::vector<std::pair<std::string, std::string>>, wire::kMacroStages> macros_;
};

}  // namespace portcullis::milter
