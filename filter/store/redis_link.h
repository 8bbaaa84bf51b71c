/*
 * redis_link.h: one connection to one Redis server, on one event loop.
 *
 * resolve_endpoint() turns an endpoint into the address to connect to,
 * once (the host name, if any, through the system's resolver: the daemon
 * does this before it serves, where waiting is harmless); it throws
 * StoreError when the name does not resolve.  numeric_address() does the
 * same for an address a server named (a cluster node, a master a
 * sentinel gave) without any resolver, as it runs on a loop: nullopt
 * when HOST is not an IP address.
 *
 * A RedisLink sends commands and returns at once; DONE gets the reply (an
 * error reply from Redis is a reply) or why the exchange failed (the
 * connect refused, no reply in time, the connection closed, a garbled
 * reply, or one past resp.h's limits), always later, on the loop, never
 * inside command().  A failure says its kind ("connect", "timeout",
 * "connection") and whether the command surely never reached the server
 * (unsent: the connect failed), so that the caller knows it may send it
 * elsewhere.  Commands are pipelined, and answered in order: those
 * queued while the loop handles one batch of events are written
 * together, before it waits again; a wake-up reads at most 64 KiB of
 * replies, so that a long one does not hold the loop.
 * command() takes the arguments; send() a command already encoded
 * (encode_command()), for a caller that may send it more than once.
 * After SUBSCRIBE, the messages Redis pushes go to on_push()'s handler.
 *
 * The first command connects (without waiting: AUTH and SELECT, when the
 * endpoint asks for them, go first on the new connection).  Each command
 * must be answered within TIMEOUT of being sent on this link, or the link
 * fails: every command on it fails with "no reply within 200ms" and the
 * socket is closed.  The next command connects again, except within a
 * second of a failed connect: commands then fail at once with that
 * connect's error, so that while Redis is down sessions do not each wait
 * a timeout.
 *
 * A command may carry the time its call began (SINCE): one sent again for
 * the same call (EVAL after NOSCRIPT, a cluster's retry, a call that
 * waited for a Sentinel's master) must be answered within TIMEOUT of
 * SINCE too.  When that passes first, it alone fails, with the same
 * error; its place in the pipeline stays, and its reply, when it comes,
 * is dropped.  The link is judged only by how long its first command
 * has been on it, so that a call short of time cannot fail the fresh
 * commands behind it, which the server has received (and may have run).
 *
 * HEALTH hears of every reply (but to AUTH and SELECT) and every
 * failure (so it must be cheap), for the log and the metrics.  lost()
 * tells whether a connection of this link ended (failed, or closed by
 * the server): a caller that must not reconnect to the same address
 * blindly (Sentinel) drops the link then.
 * Destroying a link fails nothing: the callbacks of the commands on it
 * are dropped (so a caller that still wants them keeps the link until it
 * is no longer busy()).  A callback may destroy its link.
 */
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>

#include "store/resp.h"
#include "util/event_loop.h"
#include "util/redis_url.h"
#include "util/units.h"

namespace portcullis::store {

/* Where a link connects: a resolved address and what to say first. */
struct LinkAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
    std::string name;        // "127.0.0.1:6379", "unix:/run/redis.sock": for messages
    std::string user;        // AUTH
    std::string password;
    int db = 0;              // SELECT, when not 0
};

LinkAddress resolve_endpoint(const RedisEndpoint& endpoint);
std::optional<LinkAddress> numeric_address(const std::string& host, int port);

/* "host:port", with brackets around an IPv6 address. */
std::string host_port(const std::string& host, int port);

/* A reply, or why there is none. */
struct LinkResult {
    bool ok = false;
    RedisReply reply;        // when ok
    std::string error;       // when not ok
    std::string_view kind;   // when not ok: "connect", "timeout", "connection", or a router's kind
    bool unsent = false;     // when not ok: the command never reached a server
};

class RedisLink final : public Watcher {
public:
    using Done = std::function<void(LinkResult)>;
    /* (true, "") after a reply; (false, why) after a failure. */
    using Health = std::function<void(bool ok, const std::string& error)>;

    RedisLink(EventLoop& loop, LinkAddress address, Millis timeout, Health health = {});
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    void command(std::span<const std::string_view> args, Done done,
                 std::chrono::steady_clock::time_point since = {});
    void send(std::string_view encoded, Done done, std::chrono::steady_clock::time_point since = {});
    /* Replies no command waits for (a subscriber's messages) go to PUSH;
     * without it they end the connection. */
    void on_push(std::function<void(RedisReply)> push) { push_ = std::move(push); }
    const LinkAddress& address() const { return address_; }
    bool lost() const { return lost_; }
    /* Whether commands wait for their answers. */
    bool busy() const { return !waiting_.empty(); }

    void ready(uint32_t events) override;

private:
    struct Waiting {
        Done done;                                     // empty once its call's time ran out
        std::chrono::steady_clock::time_point queued;
        bool setup;                                    // AUTH, SELECT: said first on a connection
    };
    /* When the call of the command numbered NUMBER (in the order queued)
     * runs out of time, before its link deadline. */
    struct CallDeadline {
        std::chrono::steady_clock::time_point at;
        uint64_t number;
        bool operator>(const CallDeadline& other) const { return at > other.at; }
    };

    bool connect();
    void say_first(std::string_view encoded, std::string what);
    void queue(std::string_view encoded, Done done, std::chrono::steady_clock::time_point since = {});
    /* Writes what is queued; "" or why the connection failed. */
    std::string flush();
    void read_replies();
    void fail(const std::string& error, std::string_view kind);
    void fail_later(Done done, std::string error);
    void report(bool ok, const std::string& error);
    /* The deadline timer: the link's, or the calls' that ran out. */
    void expire();
    void arm_deadline();
    void update_interest();

    EventLoop& loop_;
    LinkAddress address_;
    Millis timeout_;
    Health health_;
    std::function<void(RedisReply)> push_;
    int fd_ = -1;
    bool connecting_ = false;
    bool want_write_ = false;
    bool flush_due_ = false;          // a deferred flush() will write out_
    std::string out_;                 // written from out_sent_ on
    size_t out_sent_ = 0;
    std::unique_ptr<ReplyParser> parser_;
    std::deque<Waiting> waiting_;     // in the order sent
    uint64_t first_number_ = 0;       // of waiting_.front(): each command queued has the next number
    std::priority_queue<CallDeadline, std::vector<CallDeadline>, std::greater<>> call_deadlines_;
    Timer deadline_;
    std::chrono::steady_clock::time_point retry_at_{};
    std::string connect_error_;      // of the last failed connect, until retry_at_
    bool lost_ = false;               // a connection ended
    std::shared_ptr<bool> alive_;     // false once destroyed: for callbacks that outlive a call
};

}  // namespace portcullis::store
