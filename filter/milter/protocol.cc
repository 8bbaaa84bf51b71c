/*
 * protocol.cc: framing, command parsing and reply encoding of the milter
 * protocol.
 */
#include "milter/protocol.h"

namespace portcullis::milter::wire {

namespace {

constexpr size_t kLengthBytes = 4;

uint32_t get32(std::string_view bytes) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[0])) << 24 |
           static_cast<uint32_t>(static_cast<unsigned char>(bytes[1])) << 16 |
           static_cast<uint32_t>(static_cast<unsigned char>(bytes[2])) << 8 |
           static_cast<uint32_t>(static_cast<unsigned char>(bytes[3]));
}

void put32(std::string& out, uint32_t value) {
    out += static_cast<char>(value >> 24);
    out += static_cast<char>(value >> 16);
    out += static_cast<char>(value >> 8);
    out += static_cast<char>(value);
}

void put_header(std::string& out, char reply, size_t data_length) {
    put32(out, static_cast<uint32_t>(data_length + 1));
    out += reply;
}

void put_cstring(std::string& out, std::string_view text) {
    out += text;
    out += '\0';
}

/* The NUL-terminated string at the start of DATA, and what follows it. */
std::optional<std::pair<std::string_view, std::string_view>> take_string(std::string_view data) {
    const size_t end = data.find('\0');
    if (end == std::string_view::npos) return std::nullopt;
    return std::pair{data.substr(0, end), data.substr(end + 1)};
}

}  // namespace

std::optional<MacroStage> macro_stage_of(char command) {
    switch (command) {
        case kConnect: return MacroStage::connect;
        case kHelo: return MacroStage::helo;
        case kMail: return MacroStage::mail;
        case kRcpt: return MacroStage::rcpt;
        case kData: return MacroStage::data;
        case kEndOfMessage: return MacroStage::end_of_message;
        case kEndOfHeaders: return MacroStage::end_of_headers;
        // Postfix sends macros before each header field and body chunk too
        // (milter_*_macros have none for them); they are kept with EOH's.
        case kHeader:
        case kBody: return MacroStage::end_of_headers;
        default: return std::nullopt;
    }
}

/* ---- PacketReader ---- */

void PacketReader::feed(std::string_view bytes) {
    keep();
    if (held_offset_ < held_.size()) held_.append(bytes);   // behind a packet's start
    else input_ = bytes;
}

void PacketReader::keep() {
    if (held_offset_ > 0) {
        held_.erase(0, held_offset_);
        held_offset_ = 0;
    }
    held_.append(input_.substr(consumed_));
    input_ = {};
    consumed_ = 0;
}

/* The length of the packet at the start of BYTES (at least 4 long), or 0
 * after marking the stream broken. */
uint32_t PacketReader::checked_length(std::string_view bytes) {
    const uint32_t length = get32(bytes);
    if (length != 0 && length <= max_length_) return length;
    broken_ = true;
    bad_length_ = length;
    return 0;
}

PacketReader::Status PacketReader::next(Packet& packet) {
    if (broken_) return Status::bad_length;
    if (held_offset_ == held_.size() && !held_.empty()) {
        // The packets handed out of it are done with; the room a large one
        // took is not kept for the rest of the connection.
        std::string().swap(held_);
        held_offset_ = 0;
    }
    const bool from_held = held_offset_ < held_.size();
    const std::string_view rest = from_held ? std::string_view(held_).substr(held_offset_) : input_.substr(consumed_);
    if (rest.size() < kLengthBytes) return Status::need_more;
    const uint32_t length = checked_length(rest);
    if (length == 0) return Status::bad_length;
    if (rest.size() - kLengthBytes < length) return Status::need_more;
    packet.command = rest[kLengthBytes];
    packet.data = rest.substr(kLengthBytes + 1, length - 1);
    (from_held ? held_offset_ : consumed_) += kLengthBytes + length;
    return Status::packet;
}

/* ---- commands ---- */

std::optional<OptionNegotiation> parse_option_negotiation(std::string_view data) {
    if (data.size() < 12) return std::nullopt;
    return OptionNegotiation{get32(data), get32(data.substr(4)), get32(data.substr(8))};
}

std::optional<ConnectInfo> parse_connect(std::string_view data) {
    const auto host = take_string(data);
    if (!host || host->second.empty()) return std::nullopt;
    ConnectInfo info;
    info.host = host->first;
    info.family = host->second.front();
    std::string_view rest = host->second.substr(1);
    if (info.family == 'U') return info;
    if (info.family != '4' && info.family != '6' && info.family != 'L') return std::nullopt;
    if (rest.size() < 2) return std::nullopt;
    info.port = static_cast<uint16_t>(static_cast<unsigned char>(rest[0]) << 8 | static_cast<unsigned char>(rest[1]));
    const auto address = take_string(rest.substr(2));
    if (!address) return std::nullopt;
    info.address = address->first;
    return info;
}

std::optional<std::string_view> parse_string(std::string_view data) {
    const auto text = take_string(data);
    if (!text) return std::nullopt;
    return text->first;
}

std::optional<std::vector<std::string_view>> parse_arguments(std::string_view data, size_t max_arguments) {
    std::vector<std::string_view> arguments;
    while (!data.empty()) {
        const auto argument = take_string(data);
        if (!argument || arguments.size() == max_arguments) return std::nullopt;
        arguments.push_back(argument->first);
        data = argument->second;
    }
    if (arguments.empty()) return std::nullopt;
    return arguments;
}

std::optional<HeaderField> parse_header(std::string_view data) {
    const auto name = take_string(data);
    if (!name || name->first.empty()) return std::nullopt;
    const auto value = take_string(name->second);
    if (!value) return std::nullopt;
    return HeaderField{name->first, value->first};
}

std::optional<MacroPacket> parse_macros(std::string_view data, size_t max_pairs) {
    if (data.empty()) return std::nullopt;
    MacroPacket macros;
    macros.command = data.front();
    data.remove_prefix(1);
    while (!data.empty()) {
        const auto name = take_string(data);
        if (!name || name->first.empty()) return std::nullopt;
        const auto value = take_string(name->second);
        if (!value || macros.pairs.size() == max_pairs) return std::nullopt;
        macros.pairs.emplace_back(name->first, value->first);
        data = value->second;
    }
    return macros;
}

/* ---- replies ---- */

void put_option_negotiation(std::string& out, const OptionNegotiation& reply,
                            const std::vector<std::pair<MacroStage, std::string>>& macro_lists) {
    size_t length = 12;
    for (const auto& [stage, names] : macro_lists) length += 4 + names.size() + 1;
    put_header(out, kOptionNegotiation, length);
    put32(out, reply.version);
    put32(out, reply.actions);
    put32(out, reply.steps);
    for (const auto& [stage, names] : macro_lists) {
        put32(out, static_cast<uint32_t>(stage));
        put_cstring(out, names);
    }
}

void put_simple(std::string& out, char reply) { put_header(out, reply, 0); }

void put_reply_code(std::string& out, std::string_view text) {
    put_header(out, kReplyCode, text.size() + 1);
    put_cstring(out, text);
}

void put_add_header(std::string& out, std::string_view name, std::string_view value) {
    put_header(out, kAddHeader, name.size() + value.size() + 2);
    put_cstring(out, name);
    put_cstring(out, value);
}

void put_insert_header(std::string& out, uint32_t index, std::string_view name, std::string_view value) {
    put_header(out, kInsertHeader, 4 + name.size() + value.size() + 2);
    put32(out, index);
    put_cstring(out, name);
    put_cstring(out, value);
}

void put_change_header(std::string& out, uint32_t index, std::string_view name, std::string_view value) {
    put_header(out, kChangeHeader, 4 + name.size() + value.size() + 2);
    put32(out, index);
    put_cstring(out, name);
    put_cstring(out, value);
}

void put_quarantine(std::string& out, std::string_view reason) {
    put_header(out, kQuarantine, reason.size() + 1);
    put_cstring(out, reason);
}

std::string reply_text(std::string_view code, std::string_view xcode, const std::vector<std::string>& lines) {
    std::string text(code);
    if (lines.size() <= 1) {
        // smfi_setreply(): "CODE XCODE TEXT", each part only when given.
        text += ' ';
        text += xcode;
        if (!lines.empty()) {
            if (!xcode.empty()) text += ' ';
            text += lines.front();
        }
        return text;
    }
    // smfi_setmlreply(): "CODE-XCODE line" for all but the last, which has
    // "CODE XCODE line"; a default enhanced code of the reply's class.
    const std::string enhanced = xcode.empty() ? std::string(code.substr(0, 1)) + ".0.0" : std::string(xcode);
    text.clear();
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) text += "\r\n";
        text += code;
        text += i + 1 == lines.size() ? ' ' : '-';
        text += enhanced;
        text += ' ';
        text += lines[i];
    }
    return text;
}

}  // namespace portcullis::milter::wire
