/*
 * mail_message.h: a raw message as a milter gets it, for the DKIM tests.
 *
 * split_message(RAW) cuts RAW into header fields and body as the MTA
 * hands them over: each field's name, and its value as it came after the
 * colon (leading white space and folds kept, with the line ends RAW has:
 * CRLF or bare LF); the body is everything after the empty line.
 * feed(VERIFIER, MESSAGE, CHUNK) gives a message to a dkim::Verifier as
 * the MTA does, the body in pieces of CHUNK bytes (0: whole);
 * key_answers(VERIFIER, KEYS) answers the verifier's key names from KEYS,
 * which must have every answer; verify(VERIFIER, MESSAGE, KEYS, CHUNK)
 * does both and returns the verdict of finish().  dkimpy_data(NAME) is
 * the file NAME of python3-dkim's test data (signed messages, their keys'
 * records), as it is; a missing one throws, naming the package.
 */
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "checks/dkim.h"
#include "dns/lookups.h"
#include "dns/txt_lookups.h"

namespace portcullis::test_support {

// Installed with python3-dkim (contrib/install-deps.sh --test).
inline const std::string kDkimpyData = "/usr/lib/python3/dist-packages/dkim/tests/data/";

inline std::string dkimpy_data(const std::string& name) {
    std::ifstream in(kDkimpyData + name, std::ios::binary);
    if (!in) throw std::runtime_error(kDkimpyData + name + " is missing: install python3-dkim");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

struct MailMessage {
    std::vector<std::pair<std::string, std::string>> fields;
    std::string body;
};

/* The line at the start of TEXT, and its line end ("\r\n", "\n" or ""). */
inline std::pair<std::string_view, std::string_view> first_line(std::string_view text) {
    const size_t newline = text.find('\n');
    if (newline == std::string_view::npos) return {text, ""};
    const size_t end = newline > 0 && text[newline - 1] == '\r' ? newline - 1 : newline;
    return {text.substr(0, end), text.substr(end, newline + 1 - end)};
}

inline MailMessage split_message(std::string_view raw) {
    MailMessage message;
    std::string_view last_line_end;
    while (!raw.empty()) {
        const auto [line, line_end] = first_line(raw);
        raw.remove_prefix(line.size() + line_end.size());
        if (line.empty()) break;
        const bool continued = (line.front() == ' ' || line.front() == '\t') && !message.fields.empty();
        if (continued) {
            message.fields.back().second += std::string(last_line_end) + std::string(line);
        } else {
            const size_t colon = line.find(':');
            message.fields.emplace_back(std::string(line.substr(0, colon)),
                                        colon == std::string_view::npos ? "" : std::string(line.substr(colon + 1)));
        }
        last_line_end = line_end;
    }
    message.body = std::string(raw);
    return message;
}

inline void feed(dkim::Verifier& verifier, const MailMessage& message, size_t chunk = 0) {
    for (const auto& [name, value] : message.fields) verifier.header(name, value);
    verifier.end_of_headers();
    const std::string_view body = message.body;
    const size_t step = chunk == 0 ? body.size() : chunk;
    for (size_t at = 0; at < body.size(); at += step) verifier.body(body.substr(at, step));
}

inline dkim::KeyAnswers key_answers(const dkim::Verifier& verifier, dns::TxtLookups& keys) {
    dkim::KeyAnswers answers;
    for (const auto& name : verifier.key_names()) {
        const dns::Answer* answer = keys.answer(name);
        if (!answer) throw std::logic_error("no answer yet for the key " + name);
        answers.emplace(dns::lookup_key(name), *answer);
    }
    return answers;
}

inline dkim::Verdict verify(dkim::Verifier& verifier, const MailMessage& message, dns::TxtLookups& keys,
                            size_t chunk = 0) {
    feed(verifier, message, chunk);
    return verifier.finish(key_answers(verifier, keys));
}

}  // namespace portcullis::test_support
