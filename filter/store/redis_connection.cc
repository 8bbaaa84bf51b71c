/*
 * redis_connection.cc: hiredis behind RAII, so the context and every
 * reply are freed however a call ends, and its reads and writes one at a
 * time, each limited to what is left of the call's deadline.
 */
#include "store/redis_connection.h"

#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <optional>
#include <system_error>

#include "store/store.h"

namespace portcullis::store {

namespace {

struct ReplyFree {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPointer = std::unique_ptr<redisReply, ReplyFree>;

/* What is left before DEADLINE as a socket timeout, or nothing once it
 * has passed.  Rounded up to a whole microsecond, because a zero timeval
 * means no limit at all. */
std::optional<timeval> time_left(const Deadline& deadline) {
    using std::chrono::microseconds;
    const auto left = std::chrono::ceil<microseconds>(deadline.at - Deadline::Clock::now());
    if (left <= microseconds::zero()) return std::nullopt;
    timeval result{};
    result.tv_sec = static_cast<time_t>(left.count() / 1'000'000);
    result.tv_usec = static_cast<suseconds_t>(left.count() % 1'000'000);
    return result;
}

std::string no_reply(const Deadline& deadline) { return "no reply within " + format_duration(deadline.allowance); }

/* hiredis takes a command as parallel arrays of pointers and lengths. */
class Argv {
public:
    explicit Argv(std::span<const std::string_view> args) {
        pointers_.reserve(args.size());
        lengths_.reserve(args.size());
        for (const auto arg : args) {
            // An empty view may point nowhere, and hiredis memcpy()s from it.
            pointers_.push_back(arg.empty() ? "" : arg.data());
            lengths_.push_back(arg.size());
        }
    }
    int count() const { return static_cast<int>(pointers_.size()); }
    const char** pointers() { return pointers_.data(); }
    const size_t* lengths() const { return lengths_.data(); }

private:
    std::vector<const char*> pointers_;
    std::vector<size_t> lengths_;
};

RedisReply convert(const redisReply& reply) {
    RedisReply result;
    switch (reply.type) {
        case REDIS_REPLY_STRING:
            result.type = RedisReply::Type::string;
            result.text.assign(reply.str, reply.len);
            break;
        case REDIS_REPLY_STATUS:
            result.type = RedisReply::Type::status;
            result.text.assign(reply.str, reply.len);
            break;
        case REDIS_REPLY_ERROR:
            result.type = RedisReply::Type::error;
            result.text.assign(reply.str, reply.len);
            break;
        case REDIS_REPLY_INTEGER:
            result.type = RedisReply::Type::integer;
            result.integer = reply.integer;
            break;
        case REDIS_REPLY_ARRAY:
            result.type = RedisReply::Type::array;
            result.elements.reserve(reply.elements);
            for (size_t i = 0; i < reply.elements; ++i) result.elements.push_back(convert(*reply.element[i]));
            break;
        default:
            result.type = RedisReply::Type::nil;
            break;
    }
    return result;
}

}  // namespace

void RedisConnection::ContextFree::operator()(redisContext* context) const { redisFree(context); }

RedisConnection::RedisConnection(const RedisEndpoint& endpoint, const Deadline& deadline) {
    // The connect's own limit bounds the connect alone: each read and
    // write after it sets another (see limit_to()).
    const auto limit = time_left(deadline);
    if (!limit) throw StoreError(no_reply(deadline));
    context_.reset(endpoint.socket_path.empty()
                       ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, *limit)
                       : redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), *limit));
    if (!context_) throw StoreError("out of memory");
    if (context_->err) throw StoreError(context_->errstr);

    if (!endpoint.password.empty()) {
        std::vector<std::string_view> auth{"AUTH"};
        if (!endpoint.user.empty()) auth.push_back(endpoint.user);
        auth.push_back(endpoint.password);
        expect_ok(auth, "AUTH", deadline);
    }
    if (endpoint.db != 0) {
        const std::string db = std::to_string(endpoint.db);
        const std::string_view select[] = {"SELECT", db};
        expect_ok(select, "SELECT " + db, deadline);
    }
}

RedisReply RedisConnection::command(std::span<const std::string_view> args, const Deadline& deadline) {
    append(args, deadline);
    send(deadline);
    return receive(deadline);
}

std::vector<RedisReply> RedisConnection::pipeline(std::span<const std::vector<std::string_view>> commands,
                                                  const Deadline& deadline) {
    for (const auto& args : commands) append(args, deadline);
    send(deadline);
    std::vector<RedisReply> replies;
    replies.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) replies.push_back(receive(deadline));
    return replies;
}

bool RedisConnection::broken() const { return !context_ || context_->err != 0; }

/* Queues a command in hiredis's output buffer; nothing is sent yet. */
void RedisConnection::append(std::span<const std::string_view> args, const Deadline& deadline) {
    Argv argv(args);
    if (redisAppendCommandArgv(context_.get(), argv.count(), argv.pointers(), argv.lengths()) != REDIS_OK) {
        fail(deadline);
    }
}

/* Writes the output buffer out, as many writes as the socket takes. */
void RedisConnection::send(const Deadline& deadline) {
    int done = 0;
    while (done == 0) {
        limit_to(SO_SNDTIMEO, deadline);
        if (redisBufferWrite(context_.get(), &done) != REDIS_OK) fail(deadline);
    }
}

/* The next reply, from what hiredis has buffered or else from as many
 * reads as it takes to arrive. */
RedisReply RedisConnection::receive(const Deadline& deadline) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK) fail(deadline);
    while (raw == nullptr) {
        limit_to(SO_RCVTIMEO, deadline);
        if (redisBufferRead(context_.get()) != REDIS_OK || redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK) {
            fail(deadline);
        }
    }
    const ReplyPointer reply(static_cast<redisReply*>(raw));
    return convert(*reply);
}

/* Lets the next write (SO_SNDTIMEO) or read (SO_RCVTIMEO) wait only for
 * the time left: a timeout set once would let every one of them wait that
 * long again.  One option, not both as redisSetTimeout() sets them: each
 * setsockopt() costs about a twentieth of a round trip to a local Redis. */
void RedisConnection::limit_to(int option, const Deadline& deadline) {
    const auto limit = time_left(deadline);
    // On either failure half a command may be out, or a reply due: the
    // connection is good for nothing more.
    if (!limit) {
        context_.reset();
        throw StoreError(no_reply(deadline));
    }
    if (setsockopt(context_->fd, SOL_SOCKET, option, &*limit, sizeof *limit) != 0) {
        const std::string reason = std::system_category().message(errno);
        context_.reset();
        throw StoreError(reason);
    }
}

void RedisConnection::fail(const Deadline& deadline) const {
    // A socket timeout is EAGAIN, which hiredis leaves in errno; its own
    // text for it ("Resource temporarily unavailable") would puzzle.
    if (context_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        throw StoreError(no_reply(deadline));
    }
    throw StoreError(context_->errstr);
}

void RedisConnection::expect_ok(std::span<const std::string_view> args, std::string_view what,
                                const Deadline& deadline) {
    const RedisReply reply = command(args, deadline);
    if (reply.type == RedisReply::Type::error) throw StoreError(std::string(what) + " refused: " + reply.text);
}

}  // namespace portcullis::store
