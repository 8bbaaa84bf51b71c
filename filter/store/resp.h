/*
 * resp.h: Redis's protocol (RESP2) as bytes: commands written here, replies
 * read by hiredis 0.14's reply parser (the only code that includes
 * hiredis).  No sockets here: the connections of redis_link.h do their own
 * I/O on the event loop.
 *
 * encode_command() appends one command (an argument vector, binary-safe:
 * any byte may appear in a key or a value) to OUT as Redis reads it.
 * begin_command(OUT, N) and N append_argument() calls write the same
 * bytes piece by piece, for a caller that shares pieces between commands.
 * ReplyParser takes the bytes a connection reads (feed()) and gives each
 * complete reply in order (next()); a stream that is not RESP makes
 * next() throw ProtocolError, after which the parser is unusable.
 */
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct redisReader;

namespace portcullis::store {

struct RedisReply {
    enum class Type { string, array, integer, nil, status, error };
    Type type = Type::nil;
    std::string text;                   // of a string, status or error reply
    long long integer = 0;
    std::vector<RedisReply> elements;   // of an array
};

class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

void encode_command(std::string& out, std::span<const std::string_view> args);
void begin_command(std::string& out, size_t arguments);
void append_argument(std::string& out, std::string_view argument);

/* "hiredis 0.14.1": the library this build uses, for `version`. */
std::string hiredis_version();

class ReplyParser {
public:
    ReplyParser();
    ~ReplyParser();
    ReplyParser(const ReplyParser&) = delete;
    ReplyParser& operator=(const ReplyParser&) = delete;

    void feed(std::string_view bytes);
    std::optional<RedisReply> next();

private:
    struct ReaderFree {
        void operator()(redisReader* reader) const;
    };
    std::unique_ptr<redisReader, ReaderFree> reader_;
};

}  // namespace portcullis::store
