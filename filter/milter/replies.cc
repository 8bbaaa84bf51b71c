/*
 * replies.cc: reply lines made safe for the MTA, and an end of message's
 * changes in their order.
 */
#include "milter/replies.h"

#include "policy/template.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::milter {

std::string milter_text(std::string_view line) {
    auto continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
    std::string out;
    out.reserve(line.size());
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (out.size() + (c == '%' ? 2 : 1) > policy::kMaxReplyLine) {
            // Cut inside a multi-byte character: drop its first bytes too.
            if (continuation(c)) {
                while (!out.empty() && continuation(out.back())) out.pop_back();
                if (!out.empty()) out.pop_back();
            }
            break;
        }
        out += c;
        if (c == '%') out += '%';
    }
    return out;
}

std::optional<std::vector<std::string>> own_reply_lines(const Answer& answer) {
    const char digit = answer.kind == Answer::Kind::reject ? '5' : '4';
    const std::string& code = answer.code;
    const bool of_its_class = code.size() == 3 && code[0] == digit && is_digits(code.substr(1), 2, 2) &&
                              (answer.xcode.empty() || is_enhanced_code(answer.xcode));
    if (!of_its_class) {
        if (!code.empty()) {
            log::warning("reply " + code + " " + answer.xcode + " not accepted: the MTA sends its default text");
        }
        return std::nullopt;
    }
    std::vector<std::string> lines;
    for (const auto& line : answer.text) lines.push_back(milter_text(line));
    if (lines.empty()) lines.emplace_back();
    return lines;
}

namespace {

constexpr std::string_view kResultsField = "Authentication-Results";

/* VALUE as the MTA wants it: with the space after the colon when the
 * leading space was agreed. */
std::string outgoing(const std::string& value, bool leading_space) {
    const bool spaced = !value.empty() && (value.front() == ' ' || value.front() == '\t');
    return leading_space && !spaced ? " " + value : value;
}

}  // namespace

void apply_changes(const Reply& reply, bool leading_space, MessageEditor& editor) {
    for (auto position = reply.remove_results.rbegin(); position != reply.remove_results.rend(); ++position) {
        if (!editor.remove_header(kResultsField, *position)) {
            log::warning("could not remove a forged Authentication-Results (did the MTA allow header changes?)");
        }
    }
    if (reply.results_header && !editor.insert_header(kResultsField, outgoing(*reply.results_header, leading_space))) {
        log::warning("could not add Authentication-Results (did the MTA allow header changes?)");
    }
    for (const auto& [name, value] : reply.add_headers) {
        if (!editor.add_header(name, outgoing(value, leading_space))) {
            log::warning("could not add header " + name + " (did the MTA allow header changes?)");
        }
    }
    if (reply.quarantine && !editor.quarantine(*reply.quarantine)) {
        log::warning("could not quarantine the message (did the MTA allow it?)");
    }
}

}  // namespace portcullis::milter
