/*
 * black_hole.h: a DNS forwarder that never answers, for resolver tests.
 *
 * BlackHole opens a UDP socket on a free 127.0.0.1 port that receives
 * queries and never answers them: every lookup sent there times out.
 * forwarder() is the "IP@PORT" that dns.resolver takes; received() is
 * how many queries have come so far.
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
    BlackHole() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in address = loopback(0);
        socklen_t length = sizeof address;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            throw std::runtime_error("cannot open a UDP socket on 127.0.0.1");
        }
        port_ = ntohs(address.sin_port);
    }
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
    int fd_;
    int port_ = 0;
    size_t received_ = 0;
};

}  // namespace portcullis::test_support
