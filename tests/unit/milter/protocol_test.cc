/*
 * protocol_test.cc: the milter codec (milter/protocol.h) on the bytes real
 * MTAs sent (data/, recorded from Postfix 3.7 and Sendmail 8.17): framing
 * fed whole, one byte at a time and split at every position; every packet
 * parsed as its command says; the framing errors; each parser on data not
 * in its command's layout; the replies byte for byte, and reply texts
 * exactly as libmilter builds them.
 */
#include "milter/protocol.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "milter/connection.h"
#include "support/heap_use.h"
#include "support/libmilter_reply.h"
#include "support/milter_fixtures.h"
#include "support/milter_packets.h"
#include "util/ip.h"
#include "util/text.h"

namespace portcullis::milter::wire {
namespace {

using test_support::RawPacket;
using test_support::raw_packet;
using test_support::raw_packets;
using test_support::read_milter_fixture;

/* Copies: what next() gives is valid only until the reader's next call. */
void take_packets(PacketReader& reader, std::vector<RawPacket>& into) {
    Packet packet;
    PacketReader::Status status;
    while ((status = reader.next(packet)) == PacketReader::Status::packet) {
        into.push_back({packet.command, std::string(packet.data)});
    }
    ASSERT_EQ(status, PacketReader::Status::need_more);
}

std::string commands(const std::vector<RawPacket>& packets) {
    std::string out;
    for (const auto& packet : packets) out += packet.command;
    return out;
}

/* ---- framing, on every fixture ---- */

class Fixture : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        bytes = read_milter_fixture(GetParam(), "mta");
        size_t used = 0;
        expected = raw_packets(bytes, &used);
        ASSERT_EQ(used, bytes.size()) << "the recording ends inside a packet";
        ASSERT_FALSE(expected.empty());
    }
    std::string bytes;
    std::vector<RawPacket> expected;   // as the lengths say, read apart from the codec
};

TEST_P(Fixture, FedWhole) {
    PacketReader reader(kMaxPacket);
    std::vector<RawPacket> got;
    reader.feed(bytes);
    take_packets(reader, got);
    EXPECT_EQ(got, expected);
    EXPECT_EQ(reader.pending(), 0u);
}

TEST_P(Fixture, FedOneByteAtATime) {
    PacketReader reader(kMaxPacket);
    std::vector<RawPacket> got;
    char byte = 0;
    for (const char c : bytes) {
        byte = c;
        reader.feed(std::string_view(&byte, 1));
        take_packets(reader, got);
        reader.keep();
        byte = '\xee';   // the caller's buffer is reused once kept
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(reader.pending(), 0u);
}

TEST_P(Fixture, SplitAtEveryPosition) {
    // Every position in a packet up to 4 KiB long, and in the first and
    // last 64 bytes of a longer one (a body chunk; in its middle, every
    // 61st): the reader copies what follows a split, so every position of
    // the 150 KiB fixtures would take minutes under ASan, and the middle
    // of a body chunk is framed as its other bytes are.
    std::vector<size_t> splits;
    size_t packet_start = 0;
    for (const RawPacket& packet : expected) {
        const size_t length = 5 + packet.data.size();
        for (size_t into = 0; into < length; ++into) {
            const bool middle = length > 4096 && into >= 64 && length - into > 64;
            if (!middle || into % 61 == 0) splits.push_back(packet_start + into);
        }
        packet_start += length;
    }
    splits.push_back(bytes.size());

    for (const size_t at : splits) {
        std::string first = bytes.substr(0, at);
        const std::string second = bytes.substr(at);
        PacketReader reader(kMaxPacket);
        std::vector<RawPacket> got;
        reader.feed(first);
        take_packets(reader, got);
        reader.keep();
        std::fill(first.begin(), first.end(), '\xee');   // the caller's buffer, reused once kept
        reader.feed(second);
        take_packets(reader, got);
        ASSERT_EQ(got, expected) << "split at " << at;
        ASSERT_EQ(reader.pending(), 0u) << "split at " << at;
    }
}

/* ---- every packet parses as its command says ---- */

std::map<std::string, std::string> macro_map(const MacroPacket& macros) {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : macros.pairs) out[std::string(name)] = std::string(value);
    return out;
}

TEST_P(Fixture, EveryPacketParsesAsItsCommandSays) {
    std::map<char, std::map<std::string, std::string>> macros;   // the latest, by the command they precede
    for (size_t i = 0; i < expected.size(); ++i) {
        const char command = expected[i].command;
        const std::string_view data = expected[i].data;
        SCOPED_TRACE(std::string("packet ") + std::to_string(i) + " '" + command + "'");
        switch (command) {
            case kOptionNegotiation: {
                ASSERT_EQ(i, 0u);
                const auto offer = parse_option_negotiation(data);
                ASSERT_TRUE(offer);
                EXPECT_TRUE(offer->version == 2 || offer->version == 4 || offer->version == 6) << offer->version;
                EXPECT_EQ(offer->actions, 0x1ffu);
                break;
            }
            case kMacro: {
                const auto parsed = parse_macros(data, kMaxMacroPairs);
                ASSERT_TRUE(parsed);
                EXPECT_NE(std::string("CHMRTLNBEU").find(parsed->command), std::string::npos) << parsed->command;
                for (const auto& [name, value] : parsed->pairs) EXPECT_FALSE(name.empty());
                macros[parsed->command] = macro_map(*parsed);
                break;
            }
            case kConnect: {
                const auto info = parse_connect(data);
                ASSERT_TRUE(info);
                EXPECT_FALSE(info->host.empty());
                auto& connect_macros = macros[kConnect];
                if (info->family == '4' || info->family == '6') {
                    const auto ip = parse_ip(info->address);
                    ASSERT_TRUE(ip) << info->address;
                    EXPECT_EQ(ip->is_v4(), info->family == '4');
                    // Postfix's macros say the same as the event.
                    EXPECT_EQ(connect_macros["{client_port}"], std::to_string(info->port));
                    const std::string addr = connect_macros["{client_addr}"];
                    EXPECT_EQ(addr, info->family == '6' ? "IPv6:" + std::string(info->address) : info->address);
                } else {
                    EXPECT_EQ(info->family, 'U');   // Sendmail's -bs: no address
                    EXPECT_EQ(info->port, 0);
                    EXPECT_EQ(info->address, "");
                }
                break;
            }
            case kHelo: {
                const auto name = parse_string(data);
                ASSERT_TRUE(name);
                EXPECT_EQ(*name, "client.test.invalid");
                break;
            }
            case kMail:
            case kRcpt: {
                const auto arguments = parse_arguments(data, kMaxArguments);
                ASSERT_TRUE(arguments);
                const std::string_view address = arguments->front();
                EXPECT_TRUE(address.starts_with("<") && address.ends_with(">")) << address;
                for (size_t a = 1; a < arguments->size(); ++a) {
                    EXPECT_NE((*arguments)[a].find('='), std::string_view::npos);   // ESMTP parameters
                }
                break;
            }
            case kHeader: {
                const auto field = parse_header(data);
                ASSERT_TRUE(field);
                EXPECT_EQ(field->name.find_first_of(": \t\r\n"), std::string_view::npos) << field->name;
                break;
            }
            case kBody:
                EXPECT_FALSE(data.empty());
                EXPECT_LE(data.size(), 65535u);
                break;
            case kEndOfMessage:
            case kAbort:
            case kQuit:
            case kEndOfHeaders:
            case kData:
                EXPECT_TRUE(data.empty());
                break;
            default:
                ADD_FAILURE() << "a command no MTA was seen to send";
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Recorded, Fixture, ::testing::ValuesIn(test_support::milter_fixture_names()),
                         [](const auto& test) {
                             std::string name = test.param;
                             for (char& c : name) {
                                 if (c == '-') c = '_';
                             }
                             return name;
                         });

/* ---- what each MTA sent, in detail ---- */

std::vector<RawPacket> fixture(const std::string& name) { return raw_packets(read_milter_fixture(name, "mta")); }

std::vector<std::string_view> arguments_of(const RawPacket& packet) {
    auto arguments = parse_arguments(packet.data, kMaxArguments);
    return arguments ? *arguments : std::vector<std::string_view>{};
}

std::vector<std::pair<std::string, std::string>> header_fields(const std::vector<RawPacket>& packets, size_t from,
                                                               size_t to) {
    std::vector<std::pair<std::string, std::string>> fields;
    for (size_t i = from; i < to; ++i) {
        if (packets[i].command != kHeader) continue;
        const auto field = parse_header(packets[i].data);
        fields.emplace_back(std::string(field->name), std::string(field->value));
    }
    return fields;
}

size_t index_of(const std::vector<RawPacket>& packets, char command, size_t from = 0) {
    for (size_t i = from; i < packets.size(); ++i) {
        if (packets[i].command == command) return i;
    }
    return packets.size();
}

TEST(RecordedPostfix, TwoMessagesInOneSession) {
    const auto packets = fixture("postfix-every-stage");
    // A macro packet before every event, the header fields and body chunks
    // included, and before the DATA event the filter skipped; an ABORT
    // between the messages; ABORT, ABORT, QUIT at the end.
    EXPECT_EQ(commands(packets), "ODCDHDMDRDRDDLDLDLDLDLDLDBDBDBDEADMDRDDLDLDLDLDLDBDEAAQ");

    const auto offer = parse_option_negotiation(packets[0].data);
    EXPECT_EQ(offer->version, 6u);
    EXPECT_EQ(offer->steps, 0x1fffffu);

    const auto connect = parse_connect(packets[index_of(packets, kConnect)].data);
    EXPECT_EQ(connect->host, "[127.0.0.1]");   // smtpd_peername_lookup = no
    EXPECT_EQ(connect->family, '4');
    EXPECT_EQ(connect->address, "127.0.0.1");

    const size_t mail = index_of(packets, kMail);
    EXPECT_EQ(arguments_of(packets[mail]), (std::vector<std::string_view>{"<alice@sender.example>", "SIZE=160000"}));
    const size_t abort = index_of(packets, kAbort);
    const auto first = header_fields(packets, mail, abort);
    ASSERT_EQ(first.size(), 6u);
    // SMFIP_HDR_LEADSPC: the value as it came, its leading space, the fold
    // as a bare LF and the tab.
    EXPECT_EQ(first[2], (std::pair<std::string, std::string>{"Subject", " a subject folded\n\tover two lines"}));
    EXPECT_EQ(first[3], (std::pair<std::string, std::string>{"X-Spaces", "    leading spaces kept"}));

    std::vector<size_t> chunks;
    for (size_t i = mail; i < abort; ++i) {
        if (packets[i].command == kBody) chunks.push_back(packets[i].data.size());
    }
    EXPECT_EQ(chunks, (std::vector<size_t>{65535, 65535, 22563}));

    // The queue id arrives with the macros of the first RCPT that was not
    // the first (Postfix has one only after a recipient is accepted).
    const auto rcpt_macros = parse_macros(packets[index_of(packets, kRcpt) + 1].data, kMaxMacroPairs);
    EXPECT_EQ(rcpt_macros->command, kRcpt);
    ASSERT_EQ(rcpt_macros->pairs.size(), 1u);
    EXPECT_EQ(rcpt_macros->pairs[0].first, "i");
}

TEST(RecordedPostfix, OlderProtocolVersions) {
    for (const char* name : {"postfix-protocol2", "postfix-protocol4"}) {
        SCOPED_TRACE(name);
        const auto packets = fixture(name);
        const auto offer = parse_option_negotiation(packets[0].data);
        const bool two = std::string(name).ends_with("2");
        EXPECT_EQ(offer->version, two ? 2u : 4u);
        EXPECT_EQ(offer->steps, two ? 0x7fu : 0x37fu);   // no no-reply steps, no leading space
        // Without SMFIP_HDR_LEADSPC, Postfix takes the space after the colon.
        const auto fields = header_fields(packets, 0, packets.size());
        ASSERT_FALSE(fields.empty());
        EXPECT_EQ(fields[0], (std::pair<std::string, std::string>{"From", "Alice <alice@sender.example>"}));
    }
    const auto six = fixture("postfix-protocol4");
    const auto connect = parse_connect(six[index_of(six, kConnect)].data);
    EXPECT_EQ(connect->family, '6');
    EXPECT_EQ(connect->address, "2001:db8::5");
    EXPECT_EQ(connect->host, "mail6.example.net");
}

TEST(RecordedPostfix, AcceptedAtConnectTheMtaGoesAway) {
    // The shipped policy accepts 127.0.0.1 at connect; Postfix then says
    // nothing more on that connection (XCLIENT opened another).
    EXPECT_EQ(commands(fixture("postfix-default-untrusted-pre-xclient")), "ODC");
    EXPECT_EQ(commands(fixture("postfix-default-untrusted")), "ODCDHDMDRDRAAQ");
}

TEST(RecordedSendmail, LocalSubmission) {
    const auto packets = fixture("sendmail");
    // Sendmail sends macros only before the stages that have some, no
    // ABORT between messages, and QUIT without one.
    EXPECT_EQ(commands(packets), "ODCDHDMDRDRDLLLLLLBBBDEDMDRDLLLLLBDEQ");
    const auto connect = parse_connect(packets[index_of(packets, kConnect)].data);
    EXPECT_EQ(connect->host, "localhost");
    EXPECT_EQ(connect->family, 'U');
    const auto macros = parse_macros(packets[1].data, kMaxMacroPairs);
    EXPECT_EQ(macros->command, kConnect);
    EXPECT_EQ(macros->pairs[0], (std::pair<std::string_view, std::string_view>{"j", "mx.test.invalid"}));
    const auto mail_macros = parse_macros(packets[index_of(packets, kMail) - 1].data, kMaxMacroPairs);
    EXPECT_EQ(mail_macros->command, kMail);
    EXPECT_EQ(mail_macros->pairs[0].first, "i");   // Sendmail has the queue id at MAIL already
    const auto fields = header_fields(packets, 0, index_of(packets, kEndOfMessage));
    EXPECT_EQ(fields[2], (std::pair<std::string, std::string>{"Subject", " a subject folded\n\tover two lines"}));
}

/* ---- framing errors and keep() ---- */

TEST(PacketReader, LengthZeroBreaksTheStreamForGood) {
    PacketReader reader(100);
    const std::string bytes = raw_packet('Q') + test_support::big_endian_bytes(0) + raw_packet('Q');
    reader.feed(bytes);
    Packet packet;
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.command, 'Q');
    EXPECT_EQ(reader.next(packet), PacketReader::Status::bad_length);
    EXPECT_EQ(reader.bad_length(), 0u);
    const std::string more = raw_packet('Q');
    reader.feed(more);
    EXPECT_EQ(reader.next(packet), PacketReader::Status::bad_length);
}

TEST(PacketReader, APacketSplitAcrossReadsLeavesNoRoomBehind) {
    // 200 connections, each once sent a 60 kB body in two pieces: the
    // reader holds the first piece until the second comes, and then
    // nothing.
    if (!test_support::heap_measurable()) GTEST_SKIP() << "malloc is not glibc's (a sanitizer build)";
    constexpr size_t kReaders = 200;
    const std::string body = raw_packet('B', std::string(60'000, 'x'));
    const std::string_view bytes = body;
    std::vector<std::unique_ptr<PacketReader>> readers;
    readers.reserve(kReaders);
    const size_t before = test_support::heap_in_use();
    for (size_t i = 0; i < kReaders; ++i) {
        readers.push_back(std::make_unique<PacketReader>(kMaxPacket));
        PacketReader& reader = *readers.back();
        Packet packet;
        reader.feed(bytes.substr(0, 1000));
        ASSERT_EQ(reader.next(packet), PacketReader::Status::need_more);
        reader.keep();
        reader.feed(bytes.substr(1000));
        ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
        ASSERT_EQ(packet.data.size(), 60'000u);
        ASSERT_EQ(reader.next(packet), PacketReader::Status::need_more);
        reader.keep();
    }
    const size_t per_reader = (test_support::heap_in_use() - before) / kReaders;
    EXPECT_LT(per_reader, 1'000u) << per_reader;
}

TEST(PacketReader, OverTheLimitIsSeenFromTheLengthAlone) {
    // The reader must not wait for (or hold) the data of a packet it will
    // refuse: four bytes are enough, even when they come one at a time.
    PacketReader reader(100);
    const std::string length = test_support::big_endian_bytes(101);
    const std::string_view bytes = length;
    Packet packet;
    for (size_t i = 0; i < 3; ++i) {
        reader.feed(bytes.substr(i, 1));
        EXPECT_EQ(reader.next(packet), PacketReader::Status::need_more);
        reader.keep();
    }
    reader.feed(bytes.substr(3));
    EXPECT_EQ(reader.next(packet), PacketReader::Status::bad_length);
    EXPECT_EQ(reader.bad_length(), 101u);

    PacketReader huge(kMaxPacket);
    const std::string huge_length = test_support::big_endian_bytes(0xffffffffu);
    huge.feed(huge_length);
    EXPECT_EQ(huge.next(packet), PacketReader::Status::bad_length);
    EXPECT_EQ(huge.bad_length(), 0xffffffffu);
}

TEST(PacketReader, UpToTheLimitIsAPacket) {
    PacketReader reader(100);
    const std::string bytes = raw_packet('B', std::string(99, 'x'));
    reader.feed(bytes);
    Packet packet;
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.command, 'B');
    EXPECT_EQ(packet.data, std::string(99, 'x'));
    // A packet of length 1 has a command and no data.
    const std::string empty = raw_packet('A');
    reader.feed(empty);
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.command, 'A');
    EXPECT_TRUE(packet.data.empty());
}

TEST(PacketReader, KeepCopiesWhatIsLeftSoTheBufferMayBeReused) {
    PacketReader reader(100);
    const std::string third = raw_packet('H', std::string("three\0", 6));
    std::string buffer = raw_packet('H', std::string("one\0", 4)) + raw_packet('H', std::string("two\0", 4)) +
                         third.substr(0, 8);
    reader.feed(buffer);
    Packet packet;
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.data, std::string("one\0", 4));
    EXPECT_EQ(reader.pending(), buffer.size() - 9);
    reader.keep();
    std::fill(buffer.begin(), buffer.end(), '\xee');   // the loop's buffer, reused
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.data, std::string("two\0", 4));
    EXPECT_EQ(reader.next(packet), PacketReader::Status::need_more);
    EXPECT_EQ(reader.pending(), 8u);   // the third packet's length, command and "thr"
    buffer = third.substr(8) + raw_packet('Q');
    reader.feed(buffer);
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.command, 'H');
    EXPECT_EQ(packet.data, std::string("three\0", 6));
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    EXPECT_EQ(packet.command, 'Q');
    EXPECT_EQ(reader.next(packet), PacketReader::Status::need_more);
    EXPECT_EQ(reader.pending(), 0u);
}

TEST(PacketReader, KeepWithNothingLeftHoldsNothing) {
    PacketReader reader(100);
    std::string buffer = raw_packet('Q');
    reader.feed(buffer);
    Packet packet;
    ASSERT_EQ(reader.next(packet), PacketReader::Status::packet);
    reader.keep();
    EXPECT_EQ(reader.pending(), 0u);
    EXPECT_EQ(reader.next(packet), PacketReader::Status::need_more);
}

/* ---- each parser on data not in its layout ---- */

TEST(Parsers, OptionNegotiation) {
    EXPECT_FALSE(parse_option_negotiation(std::string(11, '\0')));
    const auto offer = parse_option_negotiation(std::string("\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 12));
    ASSERT_TRUE(offer);
    EXPECT_EQ(offer->version, 6u);
    EXPECT_EQ(offer->actions, 0x1ffu);
    EXPECT_EQ(offer->steps, 0x1fffffu);
}

TEST(Parsers, Connect) {
    using namespace std::string_literals;
    // The results are views into the data: each is kept while they are used.
    const std::string v4_data = "mx.example\0"s "4\x12\x34" "192.0.2.1\0"s;
    const auto v4 = parse_connect(v4_data);
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "mx.example");
    EXPECT_EQ(v4->family, '4');
    EXPECT_EQ(v4->port, 0x1234);
    EXPECT_EQ(v4->address, "192.0.2.1");
    const std::string local_data = "localhost\0"s "L\0\0" "/run/x.sock\0"s;
    const auto local = parse_connect(local_data);
    ASSERT_TRUE(local);
    EXPECT_EQ(local->family, 'L');
    EXPECT_EQ(local->address, "/run/x.sock");
    const auto unknown = parse_connect("localhost\0U"s);
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->family, 'U');

    EXPECT_FALSE(parse_connect(""s));
    EXPECT_FALSE(parse_connect("no terminator"s));
    EXPECT_FALSE(parse_connect("host\0"s));                          // no family
    EXPECT_FALSE(parse_connect("host\0X\0\0" "1.2.3.4\0"s));        // no such family
    EXPECT_FALSE(parse_connect("host\0" "4\0"s));                   // half a port
    EXPECT_FALSE(parse_connect("host\0" "4\0\x19" "192.0.2.1"s));   // an address without its NUL
}

TEST(Parsers, Strings) {
    using namespace std::string_literals;
    const std::string helo = "helo.example\0"s;
    EXPECT_EQ(parse_string(helo), "helo.example");
    EXPECT_EQ(parse_string("\0"s), "");
    EXPECT_FALSE(parse_string(""s));
    EXPECT_FALSE(parse_string("helo.example"s));
}

TEST(Parsers, Arguments) {
    using namespace std::string_literals;
    const std::string data = "<a@b.example>\0SIZE=10\0"s;
    const auto two = parse_arguments(data, 2);
    ASSERT_TRUE(two);
    EXPECT_EQ(*two, (std::vector<std::string_view>{"<a@b.example>", "SIZE=10"}));
    EXPECT_FALSE(parse_arguments(data, 1));   // one more than allowed
    EXPECT_FALSE(parse_arguments(""s, 2));                            // not even the address
    EXPECT_FALSE(parse_arguments("<a@b.example>"s, 2));
    EXPECT_FALSE(parse_arguments("<a@b.example>\0SIZE=10"s, 2));
    const std::string null_sender = "<>\0"s;
    EXPECT_EQ(parse_arguments(null_sender, 1)->front(), "<>");
}

TEST(Parsers, Header) {
    using namespace std::string_literals;
    const std::string data = "Subject\0 hi\0"s;
    const auto field = parse_header(data);
    ASSERT_TRUE(field);
    EXPECT_EQ(field->name, "Subject");
    EXPECT_EQ(field->value, " hi");
    const std::string empty_value = "X\0\0"s;
    EXPECT_EQ(parse_header(empty_value)->value, "");
    EXPECT_FALSE(parse_header("\0value\0"s));   // no name
    EXPECT_FALSE(parse_header("Subject\0 hi"s));
    EXPECT_FALSE(parse_header("Subject"s));
    EXPECT_FALSE(parse_header(""s));
}

TEST(Parsers, Macros) {
    using namespace std::string_literals;
    const std::string data = "Ci\0ABC\0{x}\0\0"s;
    const auto macros = parse_macros(data, 2);
    ASSERT_TRUE(macros);
    EXPECT_EQ(macros->command, 'C');
    ASSERT_EQ(macros->pairs.size(), 2u);
    EXPECT_EQ(macros->pairs[0], (std::pair<std::string_view, std::string_view>{"i", "ABC"}));
    EXPECT_EQ(macros->pairs[1], (std::pair<std::string_view, std::string_view>{"{x}", ""}));
    EXPECT_TRUE(parse_macros("H"s, 2)->pairs.empty());   // Postfix sends these for empty lists

    EXPECT_FALSE(parse_macros(""s, 2));
    EXPECT_FALSE(parse_macros(data, 1));   // over the limit
    EXPECT_FALSE(parse_macros("Ci\0ABC"s, 2));            // a value without its NUL
    EXPECT_FALSE(parse_macros("Ci"s, 2));                 // a name without its value
    EXPECT_FALSE(parse_macros("C\0value\0"s, 2));         // an empty name
}

TEST(Parsers, MacroStages) {
    EXPECT_EQ(macro_stage_of(kConnect), MacroStage::connect);
    EXPECT_EQ(macro_stage_of(kHelo), MacroStage::helo);
    EXPECT_EQ(macro_stage_of(kMail), MacroStage::mail);
    EXPECT_EQ(macro_stage_of(kRcpt), MacroStage::rcpt);
    EXPECT_EQ(macro_stage_of(kData), MacroStage::data);
    EXPECT_EQ(macro_stage_of(kEndOfMessage), MacroStage::end_of_message);
    EXPECT_EQ(macro_stage_of(kEndOfHeaders), MacroStage::end_of_headers);
    EXPECT_EQ(macro_stage_of(kHeader), MacroStage::end_of_headers);
    EXPECT_EQ(macro_stage_of(kBody), MacroStage::end_of_headers);
    EXPECT_FALSE(macro_stage_of(kAbort));
    EXPECT_FALSE(macro_stage_of(kQuit));
    EXPECT_FALSE(macro_stage_of('Z'));
    // The numbers the MTA gives the stages in a SETSYMLIST reply (mfapi.h).
    EXPECT_EQ(static_cast<int>(MacroStage::end_of_message), 5);
    EXPECT_EQ(static_cast<int>(MacroStage::end_of_headers), 6);
}

/* ---- replies, byte for byte ---- */

std::string put(void (*writer)(std::string&, char), char reply) {
    std::string out;
    writer(out, reply);
    return out;
}

TEST(Replies, Simple) {
    using namespace std::string_literals;
    EXPECT_EQ(put(put_simple, kContinue), "\0\0\0\x01" "c"s);
    EXPECT_EQ(put(put_simple, kAccept), "\0\0\0\x01" "a"s);
    EXPECT_EQ(put(put_simple, kReject), "\0\0\0\x01" "r"s);
    EXPECT_EQ(put(put_simple, kTempfail), "\0\0\0\x01" "t"s);
    EXPECT_EQ(put(put_simple, kDiscard), "\0\0\0\x01" "d"s);
}

TEST(Replies, WithData) {
    using namespace std::string_literals;
    std::string out;
    put_reply_code(out, "550 5.7.1 No");
    EXPECT_EQ(out, "\0\0\0\x0e" "y550 5.7.1 No\0"s);
    out.clear();
    put_add_header(out, "X-A", " b");
    EXPECT_EQ(out, "\0\0\0\x08" "hX-A\0 b\0"s);
    out.clear();
    put_insert_header(out, 0, "X-A", "b");
    EXPECT_EQ(out, "\0\0\0\x0b" "i\0\0\0\0X-A\0b\0"s);
    out.clear();
    put_change_header(out, 0x01020304, "Authentication-Results", "");
    EXPECT_EQ(out, "\0\0\0\x1d" "m\x01\x02\x03\x04" "Authentication-Results\0\0"s);
    out.clear();
    put_quarantine(out, "held");
    EXPECT_EQ(out, "\0\0\0\x06" "qheld\0"s);
}

TEST(Replies, OptionNegotiation) {
    using namespace std::string_literals;
    std::string out;
    put_option_negotiation(out, {2, 0x31, 0x40}, {});
    EXPECT_EQ(out, "\0\0\0\x0d" "O\0\0\0\x02\0\0\0\x31\0\0\0\x40"s);
    out.clear();
    put_option_negotiation(out, {6, 0x131, 0x1f03c0},
                           {{MacroStage::connect, "j"}, {MacroStage::end_of_message, "i {x}"}});
    EXPECT_EQ(out, "\0\0\0\x1d" "O\0\0\0\x06\0\0\x01\x31\0\x1f\x03\xc0" "\0\0\0\0j\0" "\0\0\0\x05" "i {x}\0"s);
}

TEST(Replies, AsRecorded) {
    // The negotiation reply the engine gave Postfix, rebuilt: one fact,
    // the macro lists each stage asks for, in one place.
    const auto replies = raw_packets(read_milter_fixture("postfix-every-stage", "filter"));
    ASSERT_FALSE(replies.empty());
    std::vector<std::pair<MacroStage, std::string>> lists;
    std::string_view data = replies[0].data;
    data.remove_prefix(12);
    while (!data.empty()) {
        const auto stage = static_cast<MacroStage>(test_support::big_endian32(data));
        const size_t end = data.find('\0', 4);
        lists.emplace_back(stage, std::string(data.substr(4, end - 4)));
        data.remove_prefix(end + 1);
    }
    std::string out;
    put_option_negotiation(out, {6, 0x131, 0x1f03c0}, lists);
    EXPECT_EQ(out, raw_packet('O', replies[0].data));
}

/* ---- reply texts, exactly as libmilter builds them ---- */

TEST(ReplyText, OneLine) {
    EXPECT_EQ(reply_text("550", "5.7.1", {"Relay access denied"}), "550 5.7.1 Relay access denied");
    EXPECT_EQ(reply_text("550", "", {"Relay access denied"}), "550 Relay access denied");
    EXPECT_EQ(reply_text("451", "4.7.1", {""}), "451 4.7.1 ");
    EXPECT_EQ(reply_text("451", "", {""}), "451 ");
    EXPECT_EQ(reply_text("451", "4.7.1", {}), "451 4.7.1");
    EXPECT_EQ(reply_text("451", "", {}), "451 ");
}

TEST(ReplyText, SeveralLines) {
    EXPECT_EQ(reply_text("550", "5.7.1", {"one", "two"}), "550-5.7.1 one\r\n550 5.7.1 two");
    EXPECT_EQ(reply_text("550", "", {"one", "two", "three"}), "550-5.0.0 one\r\n550-5.0.0 two\r\n550 5.0.0 three");
    EXPECT_EQ(reply_text("421", "", {"a", "b"}), "421-4.0.0 a\r\n421 4.0.0 b");
    EXPECT_EQ(reply_text("452", "4.5.3", {"", "x"}), "452-4.5.3 \r\n452 4.5.3 x");
}

TEST(ReplyText, AsLibmilterForEveryShape) {
    // One line as smfi_setreply() makes it (the libmilter engine calls it
    // for one line), several as smfi_setmlreply().
    const std::vector<std::string> codes{"550", "554", "451", "421"};
    const std::vector<std::string> xcodes{"", "5.7.1", "4.7.1", "2.0.0", "5.123.456", "4.0.0"};
    std::vector<std::string> pool{"Relay access denied", "", "100%% sure", "x y  z", std::string(980, 'w')};
    for (size_t count = 0; count <= 32; count = count < 5 ? count + 1 : count * 2) {
        std::vector<std::string> lines;
        for (size_t i = 0; i < count; ++i) lines.push_back(pool[i % pool.size()]);
        for (const auto& code : codes) {
            for (const auto& xcode : xcodes) {
                const auto x = xcode.empty() ? std::nullopt : std::optional<std::string_view>(xcode);
                const std::optional<std::string> want =
                    count == 0   ? test_support::setreply_text(code, x, std::nullopt)
                    : count == 1 ? test_support::setreply_text(code, x, lines[0])
                                 : test_support::setmlreply_text(code, x, lines);
                ASSERT_TRUE(want) << code << " " << xcode << " " << count;
                EXPECT_EQ(reply_text(code, xcode, lines), *want) << code << " " << xcode << " " << count << " lines";
            }
        }
    }
}

TEST(ReplyText, TheModelRefusesWhatLibmilterRefuses) {
    // So that the model above is libmilter's, not a copy of reply_text().
    EXPECT_FALSE(test_support::setreply_text("250", std::nullopt, "ok"));
    EXPECT_FALSE(test_support::setreply_text("55", std::nullopt, "x"));
    EXPECT_FALSE(test_support::setreply_text("550", "5.7", "x"));
    EXPECT_FALSE(test_support::setreply_text("550", "3.7.1", "x"));
    EXPECT_FALSE(test_support::setreply_text("550", "5.1234.1", "x"));
    EXPECT_FALSE(test_support::setreply_text("550", std::nullopt, "a\r\nb"));
    EXPECT_FALSE(test_support::setreply_text("550", std::nullopt, std::string(981, 'x')));
    EXPECT_FALSE(test_support::setmlreply_text("550", std::nullopt, std::vector<std::string>(33, "x")));
    EXPECT_EQ(test_support::setmlreply_text("550", std::nullopt, {}), "550-5.0.0");
    EXPECT_EQ(test_support::setmlreply_text("550", std::nullopt, {"x"}), "550 5.0.0 x");
}

}  // namespace
}  // namespace portcullis::milter::wire
