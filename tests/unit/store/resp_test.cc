/*
 * resp_test.cc: Redis's protocol as bytes (store/resp.h): commands as
 * Redis reads them, any byte in an argument; every kind of reply, alone
 * and nested; a stream of replies cut at every byte position and fed a
 * byte at a time gives the same replies in the same order; bytes that
 * are not RESP are a ProtocolError, after which the parser stays refused;
 * and so is a reply past kMaxReplyBytes or kMaxReplyElements, or a line
 * past kMaxReplyLine, as it comes in, before room is made for it.
 */
#include "store/resp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "support/heap_use.h"

namespace portcullis::store {
namespace {

using Type = RedisReply::Type;

std::string encoded(const std::vector<std::string>& args) {
    const std::vector<std::string_view> views(args.begin(), args.end());
    std::string out;
    encode_command(out, views);
    return out;
}

/* Every reply PARSER has complete now. */
std::vector<RedisReply> drain(ReplyParser& parser) {
    std::vector<RedisReply> replies;
    while (auto reply = parser.next()) replies.push_back(std::move(*reply));
    return replies;
}

std::vector<RedisReply> parse_whole(std::string_view bytes) {
    ReplyParser parser;
    parser.feed(bytes);
    return drain(parser);
}

/* A reply as text, every field shown, for comparing whole replies. */
std::string shown(const RedisReply& reply) {
    std::string text;
    switch (reply.type) {
        case Type::string: text = "string:"; break;
        case Type::status: text = "status:"; break;
        case Type::error: text = "error:"; break;
        case Type::integer: return "integer:" + std::to_string(reply.integer);
        case Type::nil: return "nil";
        case Type::array: {
            text = "array[";
            for (const auto& element : reply.elements) text += shown(element) + ",";
            return text + "]";
        }
    }
    for (const unsigned char c : reply.text) {
        if (c >= 0x20 && c < 0x7f && c != '\\') text += static_cast<char>(c);
        else text += "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
    }
    return text;
}

std::vector<std::string> shown(const std::vector<RedisReply>& replies) {
    std::vector<std::string> all;
    for (const auto& reply : replies) all.push_back(shown(reply));
    return all;
}

std::string every_byte() {
    std::string bytes;
    for (int byte = 0; byte < 256; ++byte) bytes += static_cast<char>(byte);
    return bytes;
}

TEST(RespEncode, ACommandIsAnArrayOfBulkStrings) {
    EXPECT_EQ(encoded({"SET", "key", "value"}), "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
    EXPECT_EQ(encoded({"PING"}), "*1\r\n$4\r\nPING\r\n");
}

TEST(RespEncode, AnyByteAndEmptyArgumentsAreKept) {
    const std::string binary("a\0\r\n$*b", 7);
    EXPECT_EQ(encoded({"SET", binary, ""}), "*3\r\n$3\r\nSET\r\n$7\r\n" + binary + "\r\n$0\r\n\r\n");
}

TEST(RespEncode, AppendsToWhatIsThere) {
    std::string out = "*1\r\n$4\r\nPING\r\n";
    const std::string_view args[] = {"GET", "k"};
    encode_command(out, args);
    EXPECT_EQ(out, "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
}

TEST(RespEncode, WhatIsEncodedParsesBackToTheSameBytes) {
    // A command is itself valid RESP: an array of bulk strings.
    const std::vector<std::string> args{"EVALSHA", every_byte(), "", std::string(100'000, 'x'), "\r\n"};
    const auto replies = parse_whole(encoded(args));
    ASSERT_EQ(replies.size(), 1u);
    ASSERT_EQ(replies[0].type, Type::array);
    ASSERT_EQ(replies[0].elements.size(), args.size());
    for (size_t i = 0; i < args.size(); ++i) {
        EXPECT_EQ(replies[0].elements[i].type, Type::string) << i;
        EXPECT_EQ(replies[0].elements[i].text, args[i]) << i;
    }
}

TEST(RespParse, EveryKindOfReply) {
    const auto replies = parse_whole(
        "+OK\r\n-ERR unknown command\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*0\r\n*-1\r\n"
        "*3\r\n:1\r\n$3\r\ntwo\r\n$-1\r\n");
    ASSERT_EQ(replies.size(), 10u);
    EXPECT_EQ(replies[0].type, Type::status);
    EXPECT_EQ(replies[0].text, "OK");
    EXPECT_EQ(replies[1].type, Type::error);
    EXPECT_EQ(replies[1].text, "ERR unknown command");
    EXPECT_EQ(replies[2].type, Type::integer);
    EXPECT_EQ(replies[2].integer, 42);
    EXPECT_EQ(replies[3].integer, -7);
    EXPECT_EQ(replies[4].type, Type::string);
    EXPECT_EQ(replies[4].text, "hello");
    EXPECT_EQ(replies[5].type, Type::string);
    EXPECT_EQ(replies[5].text, "");
    EXPECT_EQ(replies[6].type, Type::nil);
    EXPECT_EQ(replies[7].type, Type::array);
    EXPECT_TRUE(replies[7].elements.empty());
    EXPECT_EQ(replies[8].type, Type::nil);
    ASSERT_EQ(replies[9].type, Type::array);
    EXPECT_EQ(shown(replies[9]), "array[integer:1,string:two,nil,]");
}

TEST(RespParse, BulkStringsAreBinarySafe) {
    const std::string value = every_byte() + "\r\n$3\r\n";
    const auto replies = parse_whole("$" + std::to_string(value.size()) + "\r\n" + value + "\r\n");
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].text, value);
}

TEST(RespParse, NestedArrays) {
    const auto replies = parse_whole("*2\r\n*2\r\n:1\r\n*1\r\n+deep\r\n*0\r\n");
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(shown(replies[0]), "array[array[integer:1,array[status:deep,],],array[],]");
}

/* Replies of every kind, some long, one after the other. */
const std::string kStream = "+OK\r\n-NOSCRIPT No matching script\r\n:1234567890123\r\n$12\r\nhello\r\nworld\r\n$-1\r\n"
                            "*3\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n$0\r\n\r\n*0\r\n$300\r\n" +
                            std::string(300, 'z') + "\r\n:0\r\n";

TEST(RespParse, AStreamCutAnywhereGivesTheSameReplies) {
    const auto whole = shown(parse_whole(kStream));
    ASSERT_EQ(whole.size(), 9u);
    for (size_t cut = 0; cut <= kStream.size(); ++cut) {
        ReplyParser parser;
        parser.feed(std::string_view(kStream).substr(0, cut));
        auto replies = drain(parser);
        // Only complete replies come out of the first part.
        EXPECT_EQ(shown(replies), std::vector<std::string>(whole.begin(), whole.begin() + replies.size())) << cut;
        parser.feed(std::string_view(kStream).substr(cut));
        for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
        EXPECT_EQ(shown(replies), whole) << "cut at byte " << cut;
    }
}

TEST(RespParse, AStreamFedAByteAtATimeGivesEachReplyWhenItsLastByteCame) {
    const auto whole = shown(parse_whole(kStream));
    // Where each reply ends: the offsets of the replies parsed alone.
    std::vector<size_t> ends;
    {
        ReplyParser parser;
        for (size_t at = 0; at < kStream.size(); ++at) {
            parser.feed(std::string_view(kStream).substr(at, 1));
            if (parser.next()) ends.push_back(at + 1);
        }
    }
    ASSERT_EQ(ends.size(), whole.size());
    EXPECT_EQ(ends.back(), kStream.size());
    ReplyParser parser;
    std::vector<RedisReply> replies;
    for (size_t at = 0; at < kStream.size(); ++at) {
        parser.feed(std::string_view(kStream).substr(at, 1));
        auto got = drain(parser);
        const bool ends_here = std::find(ends.begin(), ends.end(), at + 1) != ends.end();
        EXPECT_EQ(got.size(), ends_here ? 1u : 0u) << at;
        for (auto& reply : got) replies.push_back(std::move(reply));
    }
    EXPECT_EQ(shown(replies), whole);
}

TEST(RespParse, ALargeReplyInChunks) {
    const std::string value(1'000'000, 'v');
    const std::string bytes = "$1000000\r\n" + value + "\r\n+after\r\n";
    ReplyParser parser;
    std::vector<RedisReply> replies;
    for (size_t at = 0; at < bytes.size(); at += 16 * 1024) {
        parser.feed(std::string_view(bytes).substr(at, 16 * 1024));
        for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
    }
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_EQ(replies[0].text, value);
    EXPECT_EQ(replies[1].text, "after");
}

TEST(RespParse, NothingYetIsNoReply) {
    ReplyParser parser;
    EXPECT_FALSE(parser.next());
    parser.feed("");
    EXPECT_FALSE(parser.next());
    parser.feed("$5\r\nhel");
    EXPECT_FALSE(parser.next());
    parser.feed("lo\r");
    EXPECT_FALSE(parser.next());
    parser.feed("\n");
    const auto reply = parser.next();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->text, "hello");
    EXPECT_FALSE(parser.next());
}

TEST(RespParse, BytesThatAreNotRespAreAProtocolError) {
    for (const std::string& garbled : std::vector<std::string>{"!garbage\r\n", "hello\r\n", "\r\n", std::string("\0\0\0\r\n", 5),
                                      "*1\r\n?\r\n", "*2\r\n:1\r\n%x\r\n"}) {
        ReplyParser parser;
        parser.feed(garbled);
        try {
            while (parser.next()) {
            }
            ADD_FAILURE() << "accepted: " << shown(RedisReply{Type::string, garbled, 0, {}});
        } catch (const ProtocolError& error) {
            EXPECT_TRUE(std::string(error.what()).starts_with("garbled reply: ")) << error.what();
        }
    }
}

TEST(RespParse, GoodRepliesBeforeGarbageComeOutThenTheParserStaysRefused) {
    ReplyParser parser;
    parser.feed("+OK\r\n:5\r\n!oops\r\n+LATER\r\n");
    ASSERT_EQ(shown(*parser.next()), "status:OK");
    ASSERT_EQ(shown(*parser.next()), "integer:5");
    EXPECT_THROW(parser.next(), ProtocolError);
    // Unusable from then on: neither more bytes nor another read bring it back.
    EXPECT_THROW(
        {
            parser.feed("+OK\r\n");
            parser.next();
        },
        ProtocolError);
}

/* "*COUNT\r\n" and COUNT integers. */
std::string array_of_integers(size_t count) {
    std::string bytes = "*" + std::to_string(count) + "\r\n";
    bytes.reserve(bytes.size() + 4 * count);
    for (size_t i = 0; i < count; ++i) bytes += ":7\r\n";
    return bytes;
}

/* What ProtocolError CALL throws, or "" when it throws none. */
std::string refusal(const std::function<void()>& call) {
    try {
        call();
    } catch (const ProtocolError& error) {
        return error.what();
    }
    return "";
}

TEST(RespLimits, AReplyLongerThanTheLimitIsRefusedAsItComesIn) {
    const std::string limit = "a reply longer than " + std::to_string(kMaxReplyBytes) + " bytes";
    // Announced as 1 GB, streamed 16 KiB at a time: refused at the byte past the limit.
    ReplyParser parser;
    const std::string chunk(16 * 1024, 'b');
    std::string header = "$1000000000\r\n";
    size_t fed = 0;
    const std::string refused = refusal([&] {
        parser.feed(header);
        fed += header.size();
        while (fed < 2 * kMaxReplyBytes) {
            parser.feed(chunk);
            fed += chunk.size();
            EXPECT_FALSE(parser.next());
        }
    });
    EXPECT_EQ(refused, limit);
    EXPECT_LE(fed, kMaxReplyBytes);
    EXPECT_GT(fed + chunk.size(), kMaxReplyBytes);
}

TEST(RespLimits, ALineWithoutItsEndIsRefusedPastTheLineLimit) {
    const std::string limit = "a reply line longer than " + std::to_string(kMaxReplyLine) + " bytes";
    // A status, an error inside an array, a bulk string's length: fed as a
    // connection reads, asked for replies after each read.
    for (const std::string start : {"+", "*2\r\n:1\r\n-ERR ", "$1"}) {
        ReplyParser parser;
        size_t fed = 0;
        const std::string refused = refusal([&] {
            parser.feed(start);
            for (fed = start.size(); fed < 4 * kMaxReplyLine; fed += 1000) {
                parser.feed(std::string(1000, '7'));
                EXPECT_FALSE(parser.next());
            }
        });
        EXPECT_EQ(refused, limit) << start;
        EXPECT_LE(fed, kMaxReplyLine + 1000) << start;
    }
}

TEST(RespLimits, LinesUpToTheLimitAndLongBulkStringsAreRead) {
    const std::string text = "ERR " + std::string(kMaxReplyLine - 10, 'e');
    const std::string bulk(4 * kMaxReplyLine, 'b');   // no CRLF in it
    const std::string stream = "-" + text + "\r\n$" + std::to_string(bulk.size()) + "\r\n" + bulk + "\r\n";
    ReplyParser parser;
    std::vector<RedisReply> replies;
    for (size_t at = 0; at < stream.size(); at += 1000) {
        parser.feed(std::string_view(stream).substr(at, 1000));
        for (auto& reply : drain(parser)) replies.push_back(std::move(reply));
    }
    ASSERT_EQ(replies.size(), 2u);
    EXPECT_EQ(replies[0].type, Type::error);
    EXPECT_EQ(replies[0].text, text);
    EXPECT_EQ(replies[1].text, bulk);
}

TEST(RespLimits, TheLimitIsPerReplyNotPerStream) {
    // Forty 1 MiB replies, more than the limit in all, each read as it ends.
    const std::string value(1 << 20, 'v');
    const std::string reply = "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
    ReplyParser parser;
    size_t replies = 0;
    for (int i = 0; i < 40; ++i) {
        for (size_t at = 0; at < reply.size(); at += 64 * 1024) {
            parser.feed(std::string_view(reply).substr(at, 64 * 1024));
            replies += drain(parser).size();
        }
    }
    EXPECT_GT(40 * reply.size(), kMaxReplyBytes);
    EXPECT_EQ(replies, 40u);
}

TEST(RespLimits, AnArrayOfTooManyElementsIsRefusedBeforeRoomIsMadeForIt) {
    const std::string limit = "a reply of more than " + std::to_string(kMaxReplyElements) + " elements";
    const size_t heap_before = test_support::heap_in_use();
    ReplyParser huge;
    huge.feed("*2000000000\r\n");
    EXPECT_EQ(refusal([&] { huge.next(); }), limit);
    if (test_support::heap_measurable()) {
        EXPECT_LT(test_support::heap_in_use() - heap_before, size_t{1} << 20) << "room made for the elements";
    }

    // The limit counts the elements of every array in the reply.
    ReplyParser nested;
    nested.feed("*1\r\n*" + std::to_string(kMaxReplyElements) + "\r\n");
    EXPECT_EQ(refusal([&] { nested.next(); }), limit);
    // And stays refused.
    EXPECT_THROW(nested.next(), ProtocolError);
}

TEST(RespLimits, AnArrayTakesRoomForTheElementsThatCameNotForItsHeader) {
    if (!test_support::heap_measurable()) GTEST_SKIP() << "the heap cannot be measured in this build";
    const size_t heap_before = test_support::heap_in_use();
    ReplyParser parser;
    parser.feed("*" + std::to_string(kMaxReplyElements) + "\r\n:1\r\n:2\r\n");
    EXPECT_FALSE(parser.next());
    EXPECT_LT(test_support::heap_in_use() - heap_before, size_t{64} << 10);
}

TEST(RespLimits, ArraysUpToTheLimitAreRead) {
    ReplyParser parser;
    parser.feed(array_of_integers(kMaxReplyElements));
    auto reply = parser.next();
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->elements.size(), kMaxReplyElements);
    EXPECT_EQ(shown(reply->elements.back()), "integer:7");
    // Each reply has the whole limit.
    parser.feed(array_of_integers(kMaxReplyElements / 2 + 1));
    parser.feed(array_of_integers(kMaxReplyElements / 2 + 1));
    EXPECT_EQ(drain(parser).size(), 2u);
}

}  // namespace
}  // namespace portcullis::store
