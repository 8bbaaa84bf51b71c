/*
 * resp.cc: commands as Redis reads them, and hiredis's reply reader behind
 * RAII.
 */
#include "store/resp.h"

#include <hiredis/hiredis.h>

#include <charconv>
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

void begin_command(std::string& out, size_t arguments) {
    char digits[24];
    const auto [stop, error] = std::to_chars(digits, digits + sizeof digits, arguments);
    out += '*';
    out.append(digits, stop);
    out += "\r\n";
}

void append_argument(std::string& out, std::string_view argument) {
    char digits[24];
    const auto [stop, error] = std::to_chars(digits, digits + sizeof digits, argument.size());
    out += '$';
    out.append(digits, stop);
    out += "\r\n";
    out += argument;
    out += "\r\n";
}

void encode_command(std::string& out, std::span<const std::string_view> args) {
    begin_command(out, args.size());
    for (const auto arg : args) append_argument(out, arg);
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
