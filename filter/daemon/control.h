/*
 * control.h: the control socket: the running daemon takes administrative
 * requests on a unix socket (control.socket), and the command line sends
 * them there (`reload`, `status`, and `greylist` and `ratelimit` while the
 * daemon runs).
 *
 * A ControlRequest is a command and its named values; on the wire, one line per
 * item ("reload", then "NAME=VALUE" lines, %-escapes for '%', CR, LF and
 * NUL), ended by an empty line.  The reply is a line "EXIT N" (the exit
 * code the command line gives) and the command's text, to the end of the
 * connection.
 *
 * ControlServer binds the socket (as root, before privileges are
 * dropped: open() makes its directory if missing, gives socket and
 * directory to milter.user and its group, mode 0660 for the socket;
 * a socket nobody listens on is replaced, one that answers, a symlink or
 * any other file refused), and serves it on an event loop of its own
 * thread, so nothing an administrator asks ever holds up mail.  Only root, the daemon's own
 * user and members of the socket's group (SO_PEERCRED) may ask; anyone
 * else is refused (exit 4).  A request over kMaxRequest bytes or
 * kMaxItems items, one that does not parse, or one not complete within
 * kRequestTimeout is refused with a line saying why (exit 2); the
 * connection is then closed.  At most kMaxClients are served at once.
 * HANDLE runs on the server's thread and may block (a reload, a scan of
 * the store); its reply is sent as the peer takes it, so one that does
 * not read holds up no other, and is cut off after kSendTime.
 *
 * ask_daemon() sends REQUEST to the socket the config names and returns
 * the reply, or nullopt when no daemon listens there (no socket, or
 * nobody at it); a daemon that breaks off or sends garbage is an error
 * reply.
 */
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"

namespace portcullis::daemon {

inline constexpr size_t kMaxRequest = 64 * 1024;
inline constexpr size_t kMaxItems = 256;
inline constexpr auto kRequestTimeout = std::chrono::seconds(5);
inline constexpr auto kSendTime = std::chrono::seconds(60);   // for the peer to take its reply (a long list)
inline constexpr size_t kMaxClients = 16;

struct ControlRequest {
    std::string command;
    std::multimap<std::string, std::string> values;

    /* The first value of NAME, or FALLBACK. */
    std::string get(const std::string& name, const std::string& fallback = "") const;
    std::vector<std::string> all(const std::string& name) const;
};

struct ControlReply {
    int exit_code = 0;
    std::string text;
};

std::string encode_request(const ControlRequest& request);
/* The request in TEXT (up to its empty line), or why it is none. */
std::optional<ControlRequest> decode_request(std::string_view text, std::string& problem);

std::optional<ControlReply> ask_daemon(const config::Config& config, const ControlRequest& request);

class ControlServer {
public:
    using Handler = std::function<ControlReply(const ControlRequest&)>;

    ControlServer();
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    /* Binds PATH for USER when run as root (else, or for "", for the
     * process's own user); "" or why not. */
    std::string open(const std::string& path, const std::string& user);
    /* Serves on a thread of its own until stop() or the server is destroyed. */
    void start(Handler handle);
    /* Returns once no HANDLE runs or will; the socket is removed. */
    void stop();

private:
    struct Impl;   // control.cc
    std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::daemon
