/*
 * log.cc: syslog and stderr targets, written without waiting for their
 * reader.
 */
#include "util/log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>

#include "util/files.h"

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

/* The log is written without waiting for its reader.  When journald or
 * the syslog daemon stalls, its socket (or a pipe on stderr) fills; a
 * line that does not fit then is dropped, so that the threads serving
 * mail never wait for the log, and the next line that fits is preceded
 * by how many were dropped.  (glibc's syslog() waits, and so did a
 * blocking write(2).)  A terminal or a file on stderr is written as it
 * comes: neither stalls that way. */
struct Output {
    std::mutex mutex;
    uint64_t dropped = 0;   // lines since the last one written
    bool torn = false;      // stderr: the last line was cut short, so end it first
    int facility = LOG_MAIL;
    std::string syslog_path;
    int syslog_fd = -1;
    int syslog_type = SOCK_DGRAM;
};

Output& output() {
    static Output instance;
    return instance;
}

std::string dropped_notice(uint64_t dropped) {
    return "warning: log: " + std::to_string(dropped) + " lines dropped: the log's reader did not keep up";
}

std::string line_tag() { return "portcullis[" + std::to_string(process_id.load(std::memory_order_relaxed)) + "]: "; }

/* A pipe gets room for a burst (the most an unprivileged process may
 * ask, fs.pipe-max-size, 1 MB by default), so that a reader that is only
 * slow for a moment loses nothing; only one that stalls does. */
constexpr int kStderrPipeBytes = 1 << 20;

void stop_waiting_for_stderr_reader() {
    struct stat status{};
    if (fstat(STDERR_FILENO, &status) != 0 || !(S_ISFIFO(status.st_mode) || S_ISSOCK(status.st_mode))) return;
    if (S_ISFIFO(status.st_mode)) fcntl(STDERR_FILENO, F_SETPIPE_SZ, kStderrPipeBytes);
    const int flags = fcntl(STDERR_FILENO, F_GETFL);
    if (flags >= 0) fcntl(STDERR_FILENO, F_SETFL, flags | O_NONBLOCK);
}

/* A reader that keeps up but is behind for a moment (a burst of lines)
 * is waited for this long, once: only when it was not behind at the last
 * line, so a stalled one costs this once, not for every line. */
constexpr int kBurstWaitMs = 20;

/* Whether FD took room for more within kBurstWaitMs. */
bool room_came(int fd) {
    pollfd waiting{fd, POLLOUT, 0};
    return ::poll(&waiting, 1, kBurstWaitMs) > 0 && (waiting.revents & POLLOUT) != 0;
}

/* How much of BYTES went to stderr; MAY_WAIT: a full pipe is waited for
 * once. */
size_t write_stderr(std::string_view bytes, bool may_wait) {
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(STDERR_FILENO, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN && std::exchange(may_wait, false) && room_came(STDERR_FILENO)) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
    }
    return done;
}

/* LINE, with what the reader missed before it, in one write(2): lines
 * of concurrent sessions never interleave. */
void emit_stderr(const std::string& line) {
    Output& out = output();
    const std::lock_guard lock(out.mutex);
    std::string bytes;
    if (out.torn) bytes += '\n';
    if (out.dropped > 0) bytes += line_tag() + dropped_notice(out.dropped) + '\n';
    bytes += line;
    const size_t written = write_stderr(bytes, out.dropped == 0);
    if (written == bytes.size()) {
        out.dropped = 0;
        out.torn = false;
        return;
    }
    const bool notice_went = written >= bytes.size() - line.size();
    out.dropped = (notice_went ? 0 : out.dropped) + 1;
    if (written > 0) out.torn = bytes[written - 1] != '\n';
}

/* A non-blocking connection to the syslog daemon's socket at PATH: a
 * datagram one, or a stream one where the daemon listens so (its frames
 * end with a NUL, as glibc's); -1 when there is none. */
int connect_syslog(const std::string& path, int& type) {
    if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) return -1;
    const sockaddr_un address = unix_address(path);
    for (const int kind : {SOCK_DGRAM, SOCK_STREAM}) {
        const int fd = ::socket(AF_UNIX, kind | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) return -1;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
            type = kind;
            return fd;
        }
        const int error = errno;
        ::close(fd);
        if (error != EPROTOTYPE) return -1;
    }
    return -1;
}

/* MESSAGE to the syslog daemon; false when it could not take it now.  A
 * daemon restarted since is connected to again, once. */
bool send_syslog(Output& out, const std::string& message) {
    bool may_wait = out.dropped == 0;
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (out.syslog_fd < 0) out.syslog_fd = connect_syslog(out.syslog_path, out.syslog_type);
        if (out.syslog_fd < 0) return false;
        const size_t size = message.size() + (out.syslog_type == SOCK_STREAM ? 1 : 0);   // with its NUL
        const ssize_t sent = ::send(out.syslog_fd, message.c_str(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent >= 0 && static_cast<size_t>(sent) == size) return true;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            if (std::exchange(may_wait, false) && room_came(out.syslog_fd)) {
                --attempt;   // the same connection, once more
                continue;
            }
            return false;
        }
        ::close(out.syslog_fd);
        out.syslog_fd = -1;
        if (sent >= 0) return false;   // a stream cut within a frame: the next line starts afresh
    }
    return false;
}

/* TEXT as RFC 3164 has it: "<PRI>Mmm dd hh:mm:ss portcullis[PID]: TEXT". */
std::string syslog_message(int facility, int priority, std::string_view text) {
    char stamp[32] = "";
    const time_t now = time(nullptr);
    tm local{};
    if (localtime_r(&now, &local)) std::strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &local);
    std::string message = "<" + std::to_string(facility | priority) + ">" + stamp + " " + line_tag();
    message += text;
    return message;
}

void emit_syslog(Level level, std::string_view text) {
    Output& out = output();
    const std::lock_guard lock(out.mutex);
    if (out.dropped > 0) {
        if (!send_syslog(out, syslog_message(out.facility, LOG_WARNING, dropped_notice(out.dropped)))) {
            ++out.dropped;
            return;
        }
        out.dropped = 0;
    }
    std::string line(level_prefix(level));
    line += text;
    if (!send_syslog(out, syslog_message(out.facility, syslog_priority(level), line))) ++out.dropped;
}

}  // namespace

void log_to_stderr(Level level) {
    process_id = getpid();
    stop_waiting_for_stderr_reader();
    current_level = level;
    use_syslog = false;
}

void log_to_syslog(Level level, std::string_view facility, std::string_view socket) {
    Output& out = output();
    {
        const std::lock_guard lock(out.mutex);
        process_id = getpid();
        out.facility = syslog_facility(facility);
        if (out.syslog_fd >= 0) ::close(out.syslog_fd);
        out.syslog_path = socket;
        // At once, as openlog(LOG_NDELAY) did: before privileges go.
        out.syslog_fd = connect_syslog(out.syslog_path, out.syslog_type);
    }
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
        emit_syslog(level, text);
        return;
    }
    std::string line = line_tag();
    line += level_prefix(level);
    line += text;
    line += '\n';
    emit_stderr(line);
}

}  // namespace portcullis::log
