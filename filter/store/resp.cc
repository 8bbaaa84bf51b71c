/*
 * resp.cc: commands as Redis reads them, and hiredis's reply reader
 * behind RAII.  The reader builds RedisReply itself (hiredis's callbacks
 * for reply objects), so that an array is checked against
 * kMaxReplyElements before room is made for it, and room is made only
 * for what came.
 */
#include "store/resp.h"

#include <hiredis/hiredis.h>

#include <charconv>
#include <new>

namespace portcullis::store {

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

/* hiredis calls these as it reads a reply: each makes one value and
 * puts it in its place, after the elements of its parent that came
 * before it, or a new root that the reader hands to next() (or frees,
 * on an error).  An array's room grows as its elements come, not as its
 * header announces: 9 bytes ("*524288\r\n") must not cost 36 MiB.
 * hiredis reads depth first, so the arrays still being filled (whose
 * addresses it keeps) are never moved: only a parent being filled grows.
 * A null return makes the reader fail; nothing may throw through
 * hiredis's C. */
struct ReplyParser::Build {
    static ReplyParser& parser(const redisReadTask* task) { return *static_cast<ReplyParser*>(task->privdata); }

    static void* place(const redisReadTask* task, RedisReply value) noexcept {
        try {
            if (task->parent == nullptr) return new RedisReply(std::move(value));
            auto& parent = *static_cast<RedisReply*>(task->parent->obj);
            if (static_cast<size_t>(task->idx) != parent.elements.size()) return nullptr;
            return &parent.elements.emplace_back(std::move(value));
        } catch (const std::exception&) {
            return nullptr;
        }
    }

    static void* text(const redisReadTask* task, char* bytes, size_t length) noexcept {
        RedisReply reply;
        reply.type = task->type == REDIS_REPLY_STATUS  ? RedisReply::Type::status
                     : task->type == REDIS_REPLY_ERROR ? RedisReply::Type::error
                                                       : RedisReply::Type::string;
        try {
            reply.text.assign(bytes, length);
        } catch (const std::bad_alloc&) {
            return nullptr;
        }
        return place(task, std::move(reply));
    }

    static void* array(const redisReadTask* task, int count) noexcept {
        if (!parser(task).admit_elements(count)) return nullptr;
        RedisReply reply;
        reply.type = RedisReply::Type::array;
        return place(task, std::move(reply));
    }

    static void* integer(const redisReadTask* task, long long value) noexcept {
        RedisReply reply;
        reply.type = RedisReply::Type::integer;
        reply.integer = value;
        return place(task, std::move(reply));
    }

    static void* nil(const redisReadTask* task) noexcept { return place(task, RedisReply{}); }

    static void release(void* reply) noexcept { delete static_cast<RedisReply*>(reply); }

    static inline redisReplyObjectFunctions functions = {text, array, integer, nil, release};
};

void ReplyParser::ReaderFree::operator()(redisReader* reader) const { redisReaderFree(reader); }

ReplyParser::ReplyParser() : reader_(redisReaderCreateWithFunctions(&Build::functions)) {
    if (!reader_) throw std::bad_alloc();
    reader_->privdata = this;
}

ReplyParser::~ReplyParser() = default;

void ReplyParser::feed(std::string_view bytes) {
    if (!refused_.empty()) refuse(refused_);
    if (bytes.empty()) return;
    if (bytes.size() > kMaxReplyBytes - unanswered_bytes_) {
        refuse("a reply longer than " + std::to_string(kMaxReplyBytes) + " bytes");
    }
    if (redisReaderFeed(reader_.get(), bytes.data(), bytes.size()) != REDIS_OK) {
        refuse(reader_->errstr[0] ? reader_->errstr : "cannot buffer the reply");
    }
    unanswered_bytes_ += bytes.size();
    if (const size_t last = bytes.rfind("\r\n"); last != std::string_view::npos) {
        since_line_end_ = bytes.size() - last - 2;
        line_end_fed_ = true;
    } else if (last_fed_ == '\r' && bytes.front() == '\n') {
        since_line_end_ = bytes.size() - 1;
        line_end_fed_ = true;
    } else {
        since_line_end_ += bytes.size();
    }
    last_fed_ = bytes.back();
    // What hiredis holds from the item it reads on has no CRLF: a line
    // without its end (the CRLF of a bulk string's length would be there).
    const size_t held = reader_->len - reader_->pos;
    if (since_line_end_ >= held && held > kMaxReplyLine) {
        refuse("a reply line longer than " + std::to_string(kMaxReplyLine) + " bytes");
    }
}

std::optional<RedisReply> ReplyParser::next() {
    if (!refused_.empty()) refuse(refused_);
    if (!line_end_fed_) return std::nullopt;
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
        if (!refused_.empty()) refuse(refused_);
        refuse(std::string("garbled reply: ") + reader_->errstr);
    }
    if (raw == nullptr) {
        line_end_fed_ = false;
        return std::nullopt;
    }
    const std::unique_ptr<RedisReply> reply(static_cast<RedisReply*>(raw));
    // What the reader holds after this reply belongs to the next ones.
    unanswered_bytes_ = reader_->len - reader_->pos;
    elements_ = 0;
    return std::move(*reply);
}

bool ReplyParser::admit_elements(long long count) {
    if (count >= 0 && static_cast<size_t>(count) <= kMaxReplyElements - elements_) {
        elements_ += static_cast<size_t>(count);
        return true;
    }
    refused_ = "a reply of more than " + std::to_string(kMaxReplyElements) + " elements";
    return false;
}

void ReplyParser::refuse(std::string why) {
    refused_ = std::move(why);
    throw ProtocolError(refused_);
}

std::string hiredis_version() {
    return "hiredis " + std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) + "." +
           std::to_string(HIREDIS_PATCH);
}

}  // namespace portcullis::store
