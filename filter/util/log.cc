/*
 * log.cc: syslog and stderr targets.
 */
#include "util/log.h"

#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace portcullis::log {

namespace {

std::atomic<Level> current_level{Level::info};
std::atomic<bool> use_syslog{false};
// Read once per configuration (after any fork), not once per line: getpid
// is a system call.
std::atomic<pid_t> process_id{getpid()};

int syslog_facility(std::string_view name) {
    struct Entry { std::string_view name; int facility; };
    static constexpr Entry kFacilities[] = {
        {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
        {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
    };
    for (const auto& entry : kFacilities) {
        if (entry.name == name) return entry.facility;
    }
    return LOG_MAIL;
}

int syslog_priority(Level level) {
    switch (level) {
        case Level::error: return LOG_ERR;
        case Level::warning: return LOG_WARNING;
        case Level::info: return LOG_INFO;
        case Level::debug: return LOG_DEBUG;
    }
    return LOG_INFO;
}

std::string_view level_prefix(Level level) {
    switch (level) {
        case Level::error: return "error: ";
        case Level::warning: return "warning: ";
        default: return "";
    }
}

/* TEXT as a log line may carry it: a byte below 0x20 or DEL (which a
 * client, a DNS answer or a header can put in a value we quote) becomes
 * "\xNN", so that it can neither drive the terminal of whoever reads
 * the log nor end the line; and text past kMaxLineBytes is cut, with how
 * much was left out, as a header or a TXT record can be tens of
 * kilobytes. */
constexpr size_t kMaxLineBytes = 8000;

bool is_control(unsigned char byte) { return byte < 0x20 || byte == 0x7f; }

std::string printable(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string line;
    line.reserve(std::min(text.size(), kMaxLineBytes) + 32);
    size_t used = 0;
    for (; used < text.size() && line.size() < kMaxLineBytes; ++used) {
        const auto byte = static_cast<unsigned char>(text[used]);
        if (!is_control(byte)) {
            line += static_cast<char>(byte);
            continue;
        }
        line += "\\x";
        line += kHex[byte >> 4];
        line += kHex[byte & 0xf];
    }
    if (used < text.size()) line += "... (" + std::to_string(text.size() - used) + " bytes more)";
    return line;
}

bool needs_printable(std::string_view text) {
    return text.size() > kMaxLineBytes ||
           std::any_of(text.begin(), text.end(), [](char c) { return is_control(static_cast<unsigned char>(c)); });
}

}  // namespace

void log_to_stderr(Level level) {
    process_id = getpid();
    current_level = level;
    use_syslog = false;
}

void log_to_syslog(Level level, std::string_view facility) {
    openlog("portcullis", LOG_PID | LOG_NDELAY, syslog_facility(facility));
    current_level = level;
    use_syslog = true;
}

bool enabled(Level level) { return level <= current_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view text) {
    if (!enabled(level)) return;
    std::string escaped;
    if (needs_printable(text)) {
        escaped = printable(text);
        text = escaped;
    }
    if (use_syslog) {
        syslog(syslog_priority(level), "%.*s%.*s", static_cast<int>(level_prefix(level).size()),
               level_prefix(level).data(), static_cast<int>(text.size()), text.data());
        return;
    }
    std::string line = "portcullis[" + std::to_string(process_id.load(std::memory_order_relaxed)) + "]: ";
    line += level_prefix(level);
    line += text;
    line += '\n';
    // One write per line: lines of concurrent sessions never interleave.
    size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
        if (n <= 0) return;
        done += static_cast<size_t>(n);
    }
}

}  // namespace portcullis::log
