/*
 * redis_connection.h: one blocking connection to one Redis server, the
 * only code that includes hiredis.
 *
 * Constructing a RedisConnection connects to a RedisEndpoint (TCP or a
 * unix socket) within TIMEOUT, bounds every later read and write by the
 * same TIMEOUT, then sends AUTH and SELECT if the endpoint asks for them;
 * it throws StoreError with the reason ("Connection refused", "AUTH
 * refused: WRONGPASS ...").
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

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/redis_url.h"
#include "util/units.h"

struct redisContext;

namespace portcullis::store {

struct RedisReply {
    enum class Type { string, array, integer, nil, status, error };
    Type type = Type::nil;
    std::string text;                   // of a string, status or error reply
    long long integer = 0;
    std::vector<RedisReply> elements;   // of an array
};

class RedisConnection {
public:
    RedisConnection(const RedisEndpoint& endpoint, Millis timeout);

    RedisReply command(std::span<const std::string_view> args);
    std::vector<RedisReply> pipeline(std::span<const std::vector<std::string_view>> commands);

    bool broken() const;

private:
    struct ContextFree {
        void operator()(redisContext* context) const;
    };

    [[noreturn]] void fail() const;
    void expect_ok(std::span<const std::string_view> args, std::string_view what);

    std::unique_ptr<redisContext, ContextFree> context_;
    Millis timeout_;
};

}  // namespace portcullis::store
