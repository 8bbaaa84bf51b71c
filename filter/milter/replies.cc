/*
 * replies.cc: reply lines made safe for the MTA, and an end of message's
 * changes in their order.
 */
#include "milter/replies.h"

#include "policy/template.h"
#include "util/log.h"

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
