/*
 * redis_connection.cc: hiredis behind RAII, so the context and every
 * reply are freed however a call ends.
 */
#include "store/redis_connection.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>

#include "store/store.h"

namespace portcullis::store {

namespace {

struct ReplyFree {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPointer = std::unique_ptr<redisReply, ReplyFree>;

timeval to_timeval(Millis duration) {
    timeval result{};
    result.tv_sec = static_cast<time_t>(duration.count() / 1000);
    result.tv_usec = static_cast<suseconds_t>(duration.count() % 1000 * 1000);
    return result;
}

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

RedisConnection::RedisConnection(const RedisEndpoint& endpoint, Millis timeout) : timeout_(timeout) {
    const timeval limit = to_timeval(timeout);
    context_.reset(endpoint.socket_path.empty()
                       ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, limit)
                       : redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), limit));
    if (!context_) throw StoreError("out of memory");
    if (context_->err) throw StoreError(context_->errstr);
    // The connect timeout bounds the connect alone; this bounds every
    // read and write from now on.
    if (redisSetTimeout(context_.get(), limit) != REDIS_OK) fail();

    if (!endpoint.password.empty()) {
        std::vector<std::string_view> auth{"AUTH"};
        if (!endpoint.user.empty()) auth.push_back(endpoint.user);
        auth.push_back(endpoint.password);
        expect_ok(auth, "AUTH");
    }
    if (endpoint.db != 0) {
        const std::string db = std::to_string(endpoint.db);
        const std::string_view select[] = {"SELECT", db};
        expect_ok(select, "SELECT " + db);
    }
}

RedisReply RedisConnection::command(std::span<const std::string_view> args) {
    Argv argv(args);
    const ReplyPointer reply(
        static_cast<redisReply*>(redisCommandArgv(context_.get(), argv.count(), argv.pointers(), argv.lengths())));
    if (!reply) fail();
    return convert(*reply);
}

std::vector<RedisReply> RedisConnection::pipeline(std::span<const std::vector<std::string_view>> commands) {
    for (const auto& args : commands) {
        Argv argv(args);
        if (redisAppendCommandArgv(context_.get(), argv.count(), argv.pointers(), argv.lengths()) != REDIS_OK) fail();
    }
    std::vector<RedisReply> replies;
    replies.reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(context_.get(), &raw) != REDIS_OK) fail();
        const ReplyPointer reply(static_cast<redisReply*>(raw));
        replies.push_back(convert(*reply));
    }
    return replies;
}

bool RedisConnection::broken() const { return !context_ || context_->err != 0; }

void RedisConnection::fail() const {
    // A socket timeout is EAGAIN, which hiredis leaves in errno; its own
    // text for it ("Resource temporarily unavailable") would puzzle.
    if (context_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        throw StoreError("no reply within " + format_duration(timeout_));
    }
    throw StoreError(context_->errstr);
}

void RedisConnection::expect_ok(std::span<const std::string_view> args, std::string_view what) {
    const RedisReply reply = command(args);
    if (reply.type == RedisReply::Type::error) throw StoreError(std::string(what) + " refused: " + reply.text);
}

}  // namespace portcullis::store
