/*
 * milter_packets.h: the milter protocol as a test reads it, written apart
 * from the codec under test (milter/protocol.h), so that each checks the
 * other.
 *
 * raw_packets() cuts a byte stream at its 4-byte lengths; it stops at a
 * length of 0 or over MAX_LENGTH (where a filter ends the connection) and
 * at an unfinished packet, and says how many bytes it used; raw_packet()
 * makes one packet.
 *
 * reply_errors() says what is wrong with FILTER as the answer to MTA,
 * one line per fault, "" when nothing is.  The rules (the milter protocol
 * as libmilter and the MTAs keep it):
 *   - an option negotiation is answered by one, first; the filter agrees
 *     to no version above the MTA's, and to no action or step the MTA did
 *     not offer (an offer of 0 means version 1's: actions 0x0f, steps
 *     0x3f);
 *   - connect, HELO, MAIL, RCPT, DATA, header, end of header, body and
 *     unknown command each get exactly one final reply (accept, continue,
 *     discard, reject, tempfail or a reply code), unless the agreed steps
 *     make that event no-reply (SMFIP_NR_*): then none;
 *   - an end of message gets header changes and a quarantine (h, i, m,
 *     q) if any, then one final reply;
 *   - macros, abort, quit and quit-new-connection get none;
 *   - nothing is sent that answers nothing.
 * With ALL_ANSWERED false (the filter may have closed, or still be
 * waiting), replies may stop early; each one given must still be in its
 * place.  The walk stops at the first command a filter does not know.
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::test_support {

struct RawPacket {
    char command = 0;
    std::string data;
    bool operator==(const RawPacket&) const = default;
};

/* The protocol's numbers: 4 bytes, most significant first. */
inline uint32_t big_endian32(std::string_view bytes) {
    uint32_t value = 0;
    for (size_t i = 0; i < 4; ++i) value = value << 8 | static_cast<unsigned char>(bytes[i]);
    return value;
}

inline std::string big_endian_bytes(uint32_t value) {
    return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
            static_cast<char>(value)};
}

inline std::vector<RawPacket> raw_packets(std::string_view bytes, size_t* used = nullptr,
                                          uint32_t max_length = UINT32_MAX) {
    std::vector<RawPacket> packets;
    size_t at = 0;
    while (bytes.size() - at >= 4) {
        const uint32_t length = big_endian32(bytes.substr(at, 4));
        if (length == 0 || length > max_length || bytes.size() - at - 4 < length) break;
        packets.push_back({bytes[at + 4], std::string(bytes.substr(at + 5, length - 1))});
        at += 4 + length;
    }
    if (used) *used = at;
    return packets;
}

/* One packet as it goes on the wire. */
inline std::string raw_packet(char command, std::string_view data = {}) {
    return big_endian_bytes(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}

/* The SMFIP_NR_* step that makes COMMAND's event no-reply (mfdef.h); 0
 * for a command without one. */
inline uint32_t no_reply_bit(char command) {
    switch (command) {
        case 'C': return 0x1000;
        case 'H': return 0x2000;
        case 'M': return 0x4000;
        case 'R': return 0x8000;
        case 'T': return 0x10000;
        case 'U': return 0x20000;
        case 'N': return 0x40000;
        case 'B': return 0x80000;
        case 'L': return 0x80;
        default: return 0;
    }
}

inline bool is_final_reply(char reply) {
    return reply == 'a' || reply == 'c' || reply == 'd' || reply == 'r' || reply == 't' || reply == 'y';
}

inline bool is_change_reply(char reply) { return reply == 'h' || reply == 'i' || reply == 'm' || reply == 'q'; }

inline std::string reply_errors(const std::vector<RawPacket>& mta, const std::vector<RawPacket>& filter,
                                bool all_answered) {
    std::string errors;
    size_t next = 0;
    uint32_t steps = 0;
    auto fault = [&errors](const std::string& text) { errors += text + "\n"; };
    auto missing = [&](size_t index) {
        if (all_answered) fault("packet " + std::to_string(index) + " (" + mta[index].command + ") has no reply");
    };
    for (size_t index = 0; index < mta.size(); ++index) {
        const char command = mta[index].command;
        if (command == 'D' || command == 'A' || command == 'K' || command == 'Q') continue;
        if (command == 'O') {
            if (next == filter.size()) {
                missing(index);
                break;
            }
            const RawPacket& reply = filter[next++];
            if (index != 0 || next != 1) fault("an option negotiation answered other than first");
            if (reply.command != 'O' || reply.data.size() < 12 || mta[index].data.size() < 12) {
                fault("option negotiation answered with '" + std::string(1, reply.command) + "'");
                continue;
            }
            const std::string_view offer = mta[index].data, agreed = reply.data;
            const uint32_t offered_actions = big_endian32(offer.substr(4)) ? big_endian32(offer.substr(4)) : 0x0f;
            const uint32_t offered_steps = big_endian32(offer.substr(8)) ? big_endian32(offer.substr(8)) : 0x3f;
            steps = big_endian32(agreed.substr(8));
            if (big_endian32(agreed) > big_endian32(offer)) fault("a version above the MTA's agreed");
            if (big_endian32(agreed.substr(4)) & ~offered_actions) fault("actions agreed that were not offered");
            if (steps & ~offered_steps) fault("steps agreed that were not offered");
            continue;
        }
        const bool known = no_reply_bit(command) != 0 || command == 'E';
        if (!known) break;   // the filter ends the connection there
        if (command != 'E' && (steps & no_reply_bit(command))) continue;
        if (command == 'E') {
            while (next < filter.size() && is_change_reply(filter[next].command)) ++next;
        }
        if (next == filter.size()) {
            missing(index);
            break;
        }
        const char reply = filter[next++].command;
        if (!is_final_reply(reply)) {
            fault("packet " + std::to_string(index) + " (" + command + ") answered with '" + reply + "'");
        }
    }
    if (next < filter.size()) {
        fault(std::to_string(filter.size() - next) + " replies that answer nothing, the first '" +
              filter[next].command + "'");
    }
    return errors;
}

}  // namespace portcullis::test_support
