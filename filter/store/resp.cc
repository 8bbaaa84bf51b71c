/*
 * resp.cc: hiredis's formatter and reader behind RAII.
 */
#include "store/resp.h"

#include <hiredis/hiredis.h>

#include <cstdlib>

namespace portcullis::store {

namespace {

struct ReplyFree {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
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

void encode_command(std::string& out, std::span<const std::string_view> args) {
    std::vector<const char*> pointers;
    std::vector<size_t> lengths;
    pointers.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto arg : args) {
        // An empty view may point nowhere, and hiredis memcpy()s from it.
        pointers.push_back(arg.empty() ? "" : arg.data());
        lengths.push_back(arg.size());
    }
    char* formatted = nullptr;
    const int length = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), pointers.data(), lengths.data());
    if (length < 0 || formatted == nullptr) throw std::bad_alloc();
    out.append(formatted, static_cast<size_t>(length));
    redisFreeCommand(formatted);
}

void ReplyParser::ReaderFree::operator()(redisReader* reader) const { redisReaderFree(reader); }

ReplyParser::ReplyParser() : reader_(redisReaderCreate()) {
    if (!reader_) throw std::bad_alloc();
}

ReplyParser::~ReplyParser() = default;

void ReplyParser::feed(std::string_view bytes) {
    if (redisReaderFeed(reader_.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        throw ProtocolError(reader_->errstr[0] ? reader_->errstr : "cannot buffer the reply");
    }
}

std::optional<RedisReply> ReplyParser::next() {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
        throw ProtocolError(std::string("garbled reply: ") + reader_->errstr);
    }
    if (raw == nullptr) return std::nullopt;
    const std::unique_ptr<redisReply, ReplyFree> reply(static_cast<redisReply*>(raw));
    return convert(*reply);
}

std::string hiredis_version() {
    return "hiredis " + std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) + "." +
           std::to_string(HIREDIS_PATCH);
}

}  // namespace portcullis::store
