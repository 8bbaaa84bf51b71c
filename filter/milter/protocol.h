/*
 * protocol.h: the milter protocol (version 6 and older) as bytes, for the
 * native engine; no libmilter.
 *
 * On the wire every packet is a 4-byte big-endian length of what
 * follows, a command byte, and the command's data.  The MTA sends
 * commands (SMFIC_*), the filter replies (SMFIR_*); the flags agreed at
 * option negotiation (SMFIF_* actions, SMFIP_* protocol steps) say which
 * events come and which wait for a reply.
 *
 * PacketReader frames a byte stream: feed() gives it what a read got,
 * next() hands out each complete packet in order (a packet split over
 * reads waits for its rest; several in one read come one by one).  A
 * length of 0 or over the reader's limit is an error, after which the
 * stream is unusable.  Bytes are copied only when a packet is split over
 * reads or the caller asks it to keep them (keep()), so what it holds is
 * at most one partial packet plus what the caller left unread.
 *
 * The parse_*() functions read one command's data: each returns nullopt
 * when the data does not have the command's layout (a missing NUL, a
 * short field), never reading past it.  Strings are views into the
 * packet.  Macro packets give at most max_pairs name/value pairs.
 *
 * The put_*() functions append one reply packet to OUT.  reply_text()
 * builds an SMFIR_REPLYCODE text exactly as libmilter's smfi_setreply()
 * (one line, enhanced code optional) and smfi_setmlreply() (several
 * lines, "4.0.0"/"5.0.0" when none is given) build it, so both engines
 * give the MTA the same bytes; the lines must already be safe
 * (milter_text() in replies.h).
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis::milter::wire {

// Commands, MTA to filter.
inline constexpr char kAbort = 'A';
inline constexpr char kBody = 'B';
inline constexpr char kConnect = 'C';
inline constexpr char kMacro = 'D';
inline constexpr char kEndOfMessage = 'E';
inline constexpr char kHelo = 'H';
inline constexpr char kQuitNewConnection = 'K';
inline constexpr char kHeader = 'L';
inline constexpr char kMail = 'M';
inline constexpr char kEndOfHeaders = 'N';
inline constexpr char kOptionNegotiation = 'O';
inline constexpr char kQuit = 'Q';
inline constexpr char kRcpt = 'R';
inline constexpr char kData = 'T';
inline constexpr char kUnknown = 'U';

// Replies, filter to MTA.
inline constexpr char kAccept = 'a';
inline constexpr char kContinue = 'c';
inline constexpr char kDiscard = 'd';
inline constexpr char kAddHeader = 'h';
inline constexpr char kInsertHeader = 'i';
inline constexpr char kChangeHeader = 'm';
inline constexpr char kQuarantine = 'q';
inline constexpr char kReject = 'r';
inline constexpr char kTempfail = 't';
inline constexpr char kReplyCode = 'y';

// Actions (SMFIF_*).
inline constexpr uint32_t kActionAddHeaders = 0x001;
inline constexpr uint32_t kActionChangeHeaders = 0x010;
inline constexpr uint32_t kActionQuarantine = 0x020;
inline constexpr uint32_t kActionSetMacroList = 0x100;

// Protocol steps (SMFIP_*).
inline constexpr uint32_t kNoConnect = 0x1;
inline constexpr uint32_t kNoHelo = 0x2;
inline constexpr uint32_t kNoMail = 0x4;
inline constexpr uint32_t kNoRcpt = 0x8;
inline constexpr uint32_t kNoBody = 0x10;
inline constexpr uint32_t kNoHeaders = 0x20;
inline constexpr uint32_t kNoEndOfHeaders = 0x40;
inline constexpr uint32_t kNoReplyHeader = 0x80;
inline constexpr uint32_t kNoUnknown = 0x100;
inline constexpr uint32_t kNoData = 0x200;
inline constexpr uint32_t kSkip = 0x400;
inline constexpr uint32_t kRcptRejected = 0x800;
inline constexpr uint32_t kNoReplyConnect = 0x1000;
inline constexpr uint32_t kNoReplyHelo = 0x2000;
inline constexpr uint32_t kNoReplyMail = 0x4000;
inline constexpr uint32_t kNoReplyRcpt = 0x8000;
inline constexpr uint32_t kNoReplyData = 0x10000;
inline constexpr uint32_t kNoReplyUnknown = 0x20000;
inline constexpr uint32_t kNoReplyEndOfHeaders = 0x40000;
inline constexpr uint32_t kNoReplyBody = 0x80000;
inline constexpr uint32_t kHeaderLeadingSpace = 0x100000;
inline constexpr uint32_t kNoReplyAll = kNoReplyConnect | kNoReplyHelo | kNoReplyMail | kNoReplyRcpt | kNoReplyData |
                                        kNoReplyUnknown | kNoReplyEndOfHeaders | kNoReplyBody | kNoReplyHeader;

inline constexpr uint32_t kProtocolVersion = 6;
// What an MTA that offers no actions or steps (0) means: version 1's.
inline constexpr uint32_t kVersion1Actions = 0x0f;
inline constexpr uint32_t kVersion1Steps = 0x3f;

/* The stages macro lists belong to (SMFIM_*), as the MTA numbers them. */
enum class MacroStage : uint32_t { connect = 0, helo = 1, mail = 2, rcpt = 3, data = 4, end_of_message = 5,
                                   end_of_headers = 6 };
inline constexpr size_t kMacroStages = 7;
/* The stage whose macros a MACRO packet for COMMAND carries; nullopt for
 * a command that has none. */
std::optional<MacroStage> macro_stage_of(char command);

struct Packet {
    char command = 0;
    std::string_view data;
};

class PacketReader {
public:
    enum class Status { packet, need_more, bad_length };

    explicit PacketReader(uint32_t max_length) : max_length_(max_length) {}

    /* BYTES follow what came before.  While the reader holds the start
     * of a packet, BYTES are copied behind it; else they are framed where
     * they lie, and must stay until the next feed() or keep(). */
    void feed(std::string_view bytes);
    /* Copies what is left of the last feed() into the reader, so the
     * caller may reuse its buffer (a connection that stops reading for a
     * while). */
    void keep();
    /* The next complete packet, need_more, or bad_length (then for good).
     * PACKET's data is valid until the next call to any method. */
    Status next(Packet& packet);
    /* Bytes received and not yet handed out as packets. */
    size_t pending() const { return held_.size() - held_offset_ + input_.size() - consumed_; }
    /* The length that broke the stream, for the log. */
    uint32_t bad_length() const { return bad_length_; }

private:
    uint32_t checked_length(std::string_view bytes);

    uint32_t max_length_;
    std::string held_;               // kept bytes, from held_offset_ on
    size_t held_offset_ = 0;
    std::string_view input_;         // the last feed()'s bytes, when nothing is held
    size_t consumed_ = 0;            // of input_
    bool broken_ = false;
    uint32_t bad_length_ = 0;
};

struct OptionNegotiation {
    uint32_t version = 0;
    uint32_t actions = 0;
    uint32_t steps = 0;
};
std::optional<OptionNegotiation> parse_option_negotiation(std::string_view data);

struct ConnectInfo {
    std::string_view host;
    char family = 'U';               // '4', '6', 'L' (unix socket), 'U' (unknown)
    uint16_t port = 0;
    std::string_view address;        // "" for 'U'
};
std::optional<ConnectInfo> parse_connect(std::string_view data);

/* HELO name, UNKNOWN command: one NUL-terminated string. */
std::optional<std::string_view> parse_string(std::string_view data);

/* MAIL and RCPT: the address, then ESMTP arguments, each NUL-terminated
 * (at least the address). */
std::optional<std::vector<std::string_view>> parse_arguments(std::string_view data, size_t max_arguments);

struct HeaderField {
    std::string_view name;
    std::string_view value;
};
std::optional<HeaderField> parse_header(std::string_view data);

struct MacroPacket {
    char command = 0;                // the command the macros come before
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
};
std::optional<MacroPacket> parse_macros(std::string_view data, size_t max_pairs);

/* ---- replies ---- */

/* An option negotiation reply; MACRO_LISTS are the stages whose macros
 * the filter asks for (only with kActionSetMacroList agreed). */
void put_option_negotiation(std::string& out, const OptionNegotiation& reply,
                            const std::vector<std::pair<MacroStage, std::string>>& macro_lists);
/* A reply without data: continue, accept, reject, tempfail, discard. */
void put_simple(std::string& out, char reply);
void put_reply_code(std::string& out, std::string_view text);
void put_add_header(std::string& out, std::string_view name, std::string_view value);
void put_insert_header(std::string& out, uint32_t index, std::string_view name, std::string_view value);
/* VALUE "" deletes the INDEXth (from 1) field called NAME. */
void put_change_header(std::string& out, uint32_t index, std::string_view name, std::string_view value);
void put_quarantine(std::string& out, std::string_view reason);

/* "550 5.7.1 text" or "550-5.7.1 one\r\n550 5.7.1 two"; CODE is three
 * digits starting 4 or 5, XCODE "" or an enhanced status code. */
std::string reply_text(std::string_view code, std::string_view xcode, const std::vector<std::string>& lines);

}  // namespace portcullis::milter::wire
