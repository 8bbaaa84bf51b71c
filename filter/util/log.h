/*
 * log.h: the daemon's log, to syslog or stderr, in Postfix's style.
 *
 * One line per call.  On stderr each line reads "portcullis[PID]: TEXT",
 * as syslog would show it; warnings and errors carry Postfix's
 * "warning: " and "error: " prefixes on both targets.  Lines are written
 * with one write(2), so lines from several threads never interleave.
 * Neither target waits long for its reader: on syslog's socket, or on a
 * pipe or a socket on stderr, a line that does not fit is given 20 ms
 * for room (a burst), and past that it and the lines after it are
 * dropped until one fits (a stalled journald must not stop the daemon);
 * the next line that fits is preceded by "warning: log: N lines
 * dropped: ...".
 * A line shows a control byte (below 0x20, or DEL) as "\xNN", and stops
 * after 8000 bytes, saying how many were left out: values a client or a
 * DNS server chose can be neither terminal commands nor a flood.
 * Until log_to_syslog() or log_to_stderr() is called, lines go to stderr
 * at info level.
 */
#pragma once

#include <string_view>

namespace portcullis::log {

enum class Level { error, warning, info, debug };

void log_to_stderr(Level level);
/* FACILITY is a name: mail, daemon, user, local0..local7.  SOCKET is
 * the syslog daemon's (a test's own in tests). */
void log_to_syslog(Level level, std::string_view facility, std::string_view socket = "/dev/log");

bool enabled(Level level);
void write(Level level, std::string_view text);

inline void error(std::string_view text) { write(Level::error, text); }
inline void warning(std::string_view text) { write(Level::warning, text); }
inline void info(std::string_view text) { write(Level::info, text); }
inline void debug(std::string_view text) { write(Level::debug, text); }

}  // namespace portcullis::log
