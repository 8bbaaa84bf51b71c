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
 * next() throw ProtocolError, after which the parser is unusable.  So
 * does a reply too large to be one this filter asks for: feed() throws
 * when the bytes fed and not yet given back as replies pass
 * kMaxReplyBytes, and next() when a reply's arrays announce more than
 * kMaxReplyElements elements in all (before anything is allocated for
 * them).  The data path's replies are a few bytes; the largest the
 * filter asks for is HGETALL of one greylist network (greylist list,
 * stats), about 130 bytes and 2 elements per triplet: the limits hold a
 * network of some 250,000 triplets.  A line (a status, an error, an
 * integer, a length) is at most kMaxReplyLine bytes before its CRLF:
 * feed() throws past that.  The time is linear in the bytes: every reply
 * ends with CRLF, so next() asks hiredis only once one has come since it
 * last found no reply (hiredis searches a line for its end from the
 * line's start each time it is asked: a long line without one, asked
 * after every read, took time growing with its square).
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

inline constexpr size_t kMaxReplyBytes = size_t{32} << 20;
inline constexpr size_t kMaxReplyElements = size_t{1} << 19;
inline constexpr size_t kMaxReplyLine = size_t{64} << 10;

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
    struct Build;   // resp.cc: the reader's callbacks, that build RedisReply
    /* Whether the reply being read may hold COUNT more elements; when
     * not, why, kept in refused_ for next() to throw. */
    bool admit_elements(long long count);

    struct ReaderFree {
        void operator()(redisReader* reader) const;
    };
    /* Throws ProtocolError(WHY), and again on every later call. */
    [[noreturn]] void refuse(std::string why);

    std::unique_ptr<redisReader, ReaderFree> reader_;
    size_t unanswered_bytes_ = 0;   // fed, and not part of a reply next() gave
    size_t elements_ = 0;           // announced by the arrays of the reply being read
    bool line_end_fed_ = false;     // a CRLF, since hiredis last found no reply
    size_t since_line_end_ = 0;     // the bytes fed after the last CRLF
    char last_fed_ = 0;             // the last byte fed: a CR, a CRLF may follow
    std::string refused_;           // why the stream was refused
};

}  // namespace portcullis::store
