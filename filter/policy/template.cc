/*
 * template.cc: template expansion and reply text hygiene.
 */
#include "policy/template.h"

#include "policy/values.h"

namespace portcullis::policy {

namespace {

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* Largest cut <= LIMIT that does not split a UTF-8 sequence. */
size_t utf8_cut(std::string_view text, size_t limit) {
    if (text.size() <= limit) return text.size();
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return cut;
}

}  // namespace

std::string clean_line(std::string_view text, size_t limit) {
    std::string out;
    out.reserve(std::min(text.size(), limit));
    for (const char c : text) {
        if (c == '\t') out += ' ';
        else if (!is_control(static_cast<unsigned char>(c))) out += c;
    }
    out.resize(utf8_cut(out, limit));
    return out;
}

std::string expand_text(const Template& text, const Facts& facts) {
    std::string out;
    for (const auto& piece : text.pieces) {
        if (!piece.is_field) {
            out += piece.literal;
            continue;
        }
        // A value comes from the client: it may not break the line.
        out += clean_line(resolve_field(piece.field, piece.argument, facts).str(), std::string::npos);
    }
    return out;
}

bool fields_known(const Template& text, const Facts& facts) {
    bool known = true;
    // Every piece is asked, so the work of all of them starts at once.
    for (const auto& piece : text.pieces) {
        if (piece.is_field && resolve_field(piece.field, piece.argument, facts).kind == FieldValue::Kind::pending) {
            known = false;
        }
    }
    return known;
}

std::vector<std::string> reply_lines(std::string_view expanded) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (lines.size() < kMaxReplyLines) {
        const size_t end = expanded.find('\n', start);
        const std::string_view line = expanded.substr(start, end == std::string_view::npos ? end : end - start);
        lines.push_back(clean_line(line, kMaxReplyLine));
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    return lines;
}

}  // namespace portcullis::policy
