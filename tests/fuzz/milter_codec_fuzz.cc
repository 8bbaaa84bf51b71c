/*
 * milter_codec_fuzz.cc: the fuzz target for the milter codec
 * (milter/protocol.h), with the bytes a peer of the milter socket sends
 * as the input.
 *
 * The input is framed by a PacketReader fed it whole, by another fed it
 * in pieces (their sizes drawn from the input's hash, keep() after each,
 * the caller's buffer overwritten then), each with the engine's packet
 * limit and with a small one, and by the lengths alone
 * (support/milter_packets.h).  Every packet's data then goes to every
 * parser, whatever its command.  What must hold:
 *   - the readers give the same packets as the lengths say, up to where
 *     the stream breaks (a length of 0 or over the limit), and all say
 *     bad_length there, with that length;
 *   - no parser reads past the data (ASan), every view a parser returns
 *     lies within it, the limits on arguments and macros hold, an
 *     option negotiation and a header field parsed re-encode to the
 *     bytes they came from;
 *   - reply_text() on code, enhanced code and lines taken from the input
 *     gives what libmilter's smfi_setreply()/smfi_setmlreply() would
 *     (support/libmilter_reply.h).
 */
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_target.h"
#include "milter/connection.h"
#include "milter/protocol.h"
#include "support/libmilter_reply.h"
#include "support/milter_packets.h"

namespace portcullis::fuzz {
namespace {

using namespace milter::wire;
using test_support::RawPacket;

constexpr size_t kMaxArgumentsHere = 4;   // small, so that the limit is met
constexpr size_t kMaxPairsHere = 4;

bool within(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

struct Framed {
    std::vector<RawPacket> packets;
    bool broken = false;
    uint32_t bad_length = 0;
};

void take(PacketReader& reader, Framed& framed) {
    Packet packet;
    for (;;) {
        const auto status = reader.next(packet);
        if (status == PacketReader::Status::need_more) return;
        if (status == PacketReader::Status::bad_length) {
            framed.broken = true;
            framed.bad_length = reader.bad_length();
            return;
        }
        framed.packets.push_back({packet.command, std::string(packet.data)});
    }
}

Framed whole(std::string_view input, uint32_t limit) {
    PacketReader reader(limit);
    Framed framed;
    reader.feed(input);
    take(reader, framed);
    return framed;
}

Framed in_pieces(std::string_view input, uint32_t limit) {
    PacketReader reader(limit);
    Framed framed;
    std::mt19937_64 random(hash_of(input));
    std::string buffer;
    size_t at = 0;
    while (at < input.size() && !framed.broken) {
        const size_t piece = std::min<size_t>(input.size() - at, 1 + random() % (random() % 4 == 0 ? 512 : 8));
        buffer.assign(input.substr(at, piece));
        reader.feed(buffer);
        take(reader, framed);
        reader.keep();
        std::memset(buffer.data(), 0xee, buffer.size());   // the loop's buffer, reused
        at += piece;
    }
    return framed;
}

void check_framing(std::string_view input, uint32_t limit) {
    size_t used = 0;
    const auto expected = test_support::raw_packets(input, &used, limit);
    const bool breaks = input.size() - used >= 4 && (test_support::big_endian32(input.substr(used)) == 0 ||
                                                     test_support::big_endian32(input.substr(used)) > limit);
    for (const Framed& framed : {whole(input, limit), in_pieces(input, limit)}) {
        fuzz_require(framed.packets == expected, "the reader frames as the lengths say");
        fuzz_require(framed.broken == breaks, "the reader breaks where a length is 0 or over the limit");
        if (breaks) fuzz_require(framed.bad_length == test_support::big_endian32(input.substr(used)), "bad_length()");
    }
}

void parse_every_way(std::string_view data) {
    if (const auto offer = parse_option_negotiation(data)) {
        std::string out;
        put_option_negotiation(out, *offer, {});
        fuzz_require(out.substr(5) == data.substr(0, 12), "an option negotiation re-encodes");
    }
    if (const auto info = parse_connect(data)) {
        fuzz_require(within(info->host, data) && within(info->address, data), "connect: views within the data");
        fuzz_require(std::string_view("46LU").find(info->family) != std::string_view::npos, "connect: a family");
        fuzz_require(info->family != 'U' || (info->port == 0 && info->address.empty()), "connect: U has no address");
    }
    if (const auto text = parse_string(data)) {
        fuzz_require(within(*text, data) && text->find('\0') == std::string_view::npos, "string: within, no NUL");
    }
    if (const auto arguments = parse_arguments(data, kMaxArgumentsHere)) {
        fuzz_require(!arguments->empty() && arguments->size() <= kMaxArgumentsHere, "arguments: the limit");
        for (const auto argument : *arguments) fuzz_require(within(argument, data), "arguments: within the data");
    }
    if (const auto field = parse_header(data)) {
        fuzz_require(!field->name.empty(), "header: a name");
        std::string out;
        put_add_header(out, field->name, field->value);
        fuzz_require(out.substr(5) == data.substr(0, field->name.size() + field->value.size() + 2),
                     "a header field re-encodes");
    }
    if (const auto macros = parse_macros(data, kMaxPairsHere)) {
        fuzz_require(macros->command == data.front() && macros->pairs.size() <= kMaxPairsHere, "macros: the limit");
        for (const auto& [name, value] : macros->pairs) {
            fuzz_require(!name.empty() && within(name, data) && within(value, data), "macros: within the data");
        }
    }
    (void)macro_stage_of(data.empty() ? 0 : data.front());
}

/* Code, enhanced code and reply lines from the input: what libmilter
 * accepts of them must come out as libmilter builds it. */
void check_reply_text(std::string_view input) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= input.size() && parts.size() < 40) {
        const size_t end = std::min(input.find('\n', start), input.size());
        parts.emplace_back(input.substr(start, end - start));
        start = end + 1;
    }
    if (parts.size() < 2) return;
    const std::string code = parts[0].substr(0, 3);
    const std::string xcode = parts[1];
    std::vector<std::string> lines(parts.begin() + 2, parts.end());
    if (!test_support::libmilter_code_ok(code) || (!xcode.empty() && !test_support::libmilter_xcode_ok(xcode))) return;
    for (const auto& line : lines) {
        if (!test_support::libmilter_line_ok(line)) return;
    }
    const auto x = xcode.empty() ? std::nullopt : std::optional<std::string_view>(xcode);
    const std::optional<std::string> want = lines.empty()       ? test_support::setreply_text(code, x, std::nullopt)
                                            : lines.size() == 1 ? test_support::setreply_text(code, x, lines[0])
                                                                : test_support::setmlreply_text(code, x, lines);
    if (!want) return;   // more lines than libmilter takes
    fuzz_require(reply_text(code, xcode, lines) == *want, "reply_text() as libmilter builds it");
}

}  // namespace
}  // namespace portcullis::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace portcullis;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz::check_framing(input, milter::kMaxPacket);
    fuzz::check_framing(input, 64);
    for (const auto& packet : test_support::raw_packets(input)) fuzz::parse_every_way(packet.data);
    fuzz::parse_every_way(input);
    fuzz::check_reply_text(input);
    return 0;
}
