/*
 * libmilter_reply.h: the SMFIR_REPLYCODE text libmilter 8.17 builds, as a
 * model to hold milter::wire::reply_text() against (written from what
 * smfi_setreply() and smfi_setmlreply() in libmilter/smfi.c do, not from
 * their code).
 *
 * setreply_text(CODE, XCODE, MESSAGE): CODE, a space, XCODE when given,
 * then MESSAGE when given, after a space only when XCODE was given.
 * setmlreply_text(CODE, XCODE, LINES): each line "CODE-XCODE TEXT", the
 * last "CODE XCODE TEXT", joined by CR LF; without XCODE, "4.0.0" or
 * "5.0.0" after CODE's first digit; with no line at all, "CODE-XCODE"
 * alone.  Absent (nullopt) arguments are libmilter's NULL.  Both return
 * nullopt where libmilter refuses: CODE not three digits starting 4 or 5,
 * an XCODE that is not CLASS.DIGITS.DIGITS (class 2, 4 or 5, one to three
 * digits each), a line with CR or LF or longer than 980 bytes, more than
 * 32 lines.
 */
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::test_support {

inline constexpr size_t kLibmilterMaxReplyLine = 980;
inline constexpr size_t kLibmilterMaxReplyLines = 32;

inline bool libmilter_code_ok(std::string_view code) {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    return code.size() == 3 && (code[0] == '4' || code[0] == '5') && digit(code[1]) && digit(code[2]);
}

inline bool libmilter_xcode_ok(std::string_view xcode) {
    if (xcode.size() < 2 || (xcode[0] != '2' && xcode[0] != '4' && xcode[0] != '5') || xcode[1] != '.') return false;
    size_t at = 2;
    for (int part = 0; part < 2; ++part) {
        size_t digits = 0;
        while (digits < 3 && at < xcode.size() && std::isdigit(static_cast<unsigned char>(xcode[at]))) {
            ++at;
            ++digits;
        }
        if (digits == 0) return false;
        if (part == 0) {
            if (at == xcode.size() || xcode[at] != '.') return false;
            ++at;
        }
    }
    return at == xcode.size();
}

inline bool libmilter_line_ok(std::string_view line) {
    return line.size() <= kLibmilterMaxReplyLine && line.find_first_of("\r\n") == std::string_view::npos;
}

inline std::optional<std::string> setreply_text(std::string_view code, std::optional<std::string_view> xcode,
                                                std::optional<std::string_view> message) {
    if (!libmilter_code_ok(code) || (xcode && !libmilter_xcode_ok(*xcode))) return std::nullopt;
    if (message && !libmilter_line_ok(*message)) return std::nullopt;
    std::string text(code);
    text += ' ';
    if (xcode) text += *xcode;
    if (message) {
        if (xcode) text += ' ';
        text += *message;
    }
    return text;
}

inline std::optional<std::string> setmlreply_text(std::string_view code, std::optional<std::string_view> xcode,
                                                  const std::vector<std::string>& lines) {
    if (!libmilter_code_ok(code) || (xcode && !libmilter_xcode_ok(*xcode))) return std::nullopt;
    if (lines.size() > kLibmilterMaxReplyLines) return std::nullopt;
    for (const auto& line : lines) {
        if (!libmilter_line_ok(line)) return std::nullopt;
    }
    const std::string enhanced = xcode ? std::string(*xcode) : std::string(1, code[0]) + ".0.0";
    if (lines.empty()) return std::string(code) + "-" + enhanced;
    std::string text;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) text += "\r\n";
        text += std::string(code) + (i + 1 < lines.size() ? "-" : " ") + enhanced + " " + lines[i];
    }
    return text;
}

}  // namespace portcullis::test_support
