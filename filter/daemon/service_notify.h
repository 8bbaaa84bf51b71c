/*
 * service_notify.h: tells systemd how the daemon stands (Type=notify).
 *
 * notify_service_manager(STATE) sends STATE ("READY=1", "RELOADING=1",
 * "STOPPING=1", "STATUS=...", several joined by newlines) as one datagram
 * to the AF_UNIX socket that $NOTIFY_SOCKET names: a path, or "@NAME"
 * for a name in the abstract namespace.  This is the protocol sd_notify(3)
 * documents as stable.  Without NOTIFY_SOCKET it does nothing.  A state
 * that cannot be sent is logged as a warning naming the socket, and the
 * daemon goes on (systemd itself times a start out); the result says
 * whether it was sent (true without NOTIFY_SOCKET).
 *
 * watchdog_interval() is how often systemd wants "WATCHDOG=1" when the
 * unit sets WatchdogSec=: $WATCHDOG_USEC, when $WATCHDOG_PID is unset or
 * names this process; none otherwise (or when either is not a number).
 *
 * Why not libsystemd's sd_notify(): libsystemd and the six libraries it
 * brings (libgcrypt, libgpg-error, liblz4, libzstd, liblzma, libcap) kept
 * about 1 MB of pages resident in every filter process, for this one
 * datagram.
 */
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace portcullis::daemon {

bool notify_service_manager(std::string_view state);
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace portcullis::daemon
