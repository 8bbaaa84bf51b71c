/*
 * service_notify.cc: the sd_notify(3) datagram, sent to $NOTIFY_SOCKET.
 */
#include "daemon/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "util/log.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

/* The address NAME stands for: a path, or "@..." in the abstract
 * namespace (its leading NUL counted in the length, no trailing NUL). */
bool notify_address(std::string_view name, sockaddr_un& address, socklen_t& length) {
    if (name.empty() || (name.front() != '/' && name.front() != '@')) return false;
    if (name.size() >= sizeof address.sun_path) return false;
    address = {};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name.front() == '@') address.sun_path[0] = '\0';
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    return true;
}

/* Sends STATE to NAME: "" once sent, else why not (NAME is said by the
 * caller). */
std::string send_state(std::string_view name, std::string_view state) {
    sockaddr_un address;
    socklen_t length = 0;
    if (!notify_address(name, address, length)) {
        return "not an absolute path or an @abstract name of at most " + std::to_string(sizeof address.sun_path - 1) +
               " characters";
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_message("socket");
    ssize_t sent;
    do {
        sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                        length);
    } while (sent < 0 && errno == EINTR);
    const int error = errno;
    ::close(fd);
    if (sent < 0) return std::strerror(error);
    if (static_cast<size_t>(sent) != state.size()) return "datagram cut short";
    return "";
}

}  // namespace

bool notify_service_manager(std::string_view state) {
    const char* name = std::getenv("NOTIFY_SOCKET");
    if (name == nullptr || *name == '\0') return true;
    const std::string error = send_state(name, state);
    if (error.empty()) return true;
    const std::string first_line(state.substr(0, state.find('\n')));
    log::warning("cannot tell systemd " + first_line + ": NOTIFY_SOCKET=" + name + ": " + error);
    return false;
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    const char* usec = std::getenv("WATCHDOG_USEC");
    if (usec == nullptr) return std::nullopt;
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
        const auto watched = parse_decimal<pid_t>(pid);
        if (!watched || *watched != getpid()) return std::nullopt;
    }
    const auto interval = parse_decimal<uint64_t>(usec);
    if (!interval || *interval == 0) return std::nullopt;
    return std::chrono::microseconds(*interval);
}

}  // namespace portcullis::daemon
