/*
 * black_hole.h: servers that never answer: a DNS forwarder, for resolver
 * tests, and a TCP server, for the store's (a Redis node under CLIENT
 * PAUSE or behind a lost route).
 *
 * BlackHole opens a UDP socket on a free 127.0.0.1 port that receives
 * queries and never answers them: every lookup sent there times out.
 * forwarder() is the "IP@PORT" that dns.resolver takes; received() is
 * how many queries have come so far.
 *
 * SilentServer listens on a free 127.0.0.1 port and never accepts: the
 * kernel completes the connects, and what is sent waits unanswered.
 * url() is its "redis://IP:PORT".
 */
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "support/processes.h"

namespace portcullis::test_support {

class BlackHole {
public:
    BlackHole() : fd_(loopback_socket(SOCK_DGRAM, port_)) {}
    ~BlackHole() { close(fd_); }
    BlackHole(const BlackHole&) = delete;
    BlackHole& operator=(const BlackHole&) = delete;
    std::string forwarder() const { return "127.0.0.1@" + std::to_string(port_); }
    size_t received() {
        char datagram[512];
        while (recv(fd_, datagram, sizeof datagram, MSG_DONTWAIT) >= 0) ++received_;
        return received_;
    }

private:
    int port_ = 0;   // before fd_, whose initializer sets it
    int fd_;
    size_t received_ = 0;
};

class SilentServer {
public:
    SilentServer() : fd_(loopback_socket(SOCK_STREAM, port_)) {
        if (listen(fd_, 16) != 0) {
            close(fd_);
            throw std::runtime_error("cannot listen on 127.0.0.1");
        }
    }
    ~SilentServer() { close(fd_); }
    SilentServer(const SilentServer&) = delete;
    SilentServer& operator=(const SilentServer&) = delete;
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

private:
    int port_ = 0;   // before fd_, whose initializer sets it
    int fd_;
};

}  // namespace portcullis::test_support
