/*
 * redis_connection.h: one blocking connection to one Redis server, the
 * only code that includes hiredis.
 *
 * Every call has a Deadline: the moment it must be over by, and the
 * allowance it started with, which a timeout names ("no reply within
 * 200ms") however little of it the call had left.  Each write and each
 * read of the socket may wait only for the time left, so neither a hung
 * server nor a reply trickling in keeps a call past its deadline; with
 * no time left, a call fails at once.
 *
 * Constructing a RedisConnection connects to a RedisEndpoint (TCP or a
 * unix socket), then sends AUTH and SELECT if the endpoint asks for them,
 * all by DEADLINE; it throws StoreError with the reason ("Connection
 * refused", "AUTH refused: WRONGPASS ...").
 *
 * command() sends one command as an argument vector (binary-safe: any
 * byte may appear in a key or a value) and returns the reply as a plain
 * RedisReply; pipeline() sends several commands at once and returns
 * their replies in order.  An error reply from Redis is a reply, not an
 * exception.  A failure to talk (timeout, connection closed, garbled
 * reply) throws StoreError and leaves the connection broken(): it is then
 * good only for destruction.
 *
 * A connection serves one thread at a time (hiredis contexts are not
 * thread-safe).  Writing to a connection the server closed raises
 * SIGPIPE, which the process must ignore (the daemon does).
 */
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/redis_url.h"
#include "util/units.h"

struct redisContext;

namespace portcullis::store {

/* When a call must be over by, and the allowance it was given. */
struct Deadline {
    using Clock = std::chrono::steady_clock;

    static Deadline after(Millis allowance) { return {Clock::now() + allowance, allowance}; }

    Clock::time_point at;
    Millis allowance;
};

struct RedisReply {
    enum class Type { string, array, integer, nil, status, error };
    Type type = Type::nil;
    std::string text;                   // of a string, status or error reply
    long long integer = 0;
    std::vector<RedisReply> elements;   // of an array
};

class RedisConnection {
public:
    RedisConnection(const RedisEndpoint& endpoint, const Deadline& deadline);

    RedisReply command(std::span<const std::string_view> args, const Deadline& deadline);
    std::vector<RedisReply> pipeline(std::span<const std::vector<std::string_view>> commands,
                                     const Deadline& deadline);

    bool broken() const;

private:
    struct ContextFree {
        void operator()(redisContext* context) const;
    };

    void append(std::span<const std::string_view> args, const Deadline& deadline);
    void send(const Deadline& deadline);
    RedisReply receive(const Deadline& deadline);
    void limit_to(int option, const Deadline& deadline);
    [[noreturn]] void fail(const Deadline& deadline) const;
    void expect_ok(std::span<const std::string_view> args, std::string_view what, const Deadline& deadline);

    std::unique_ptr<redisContext, ContextFree> context_;
};

}  // namespace portcullis::store
