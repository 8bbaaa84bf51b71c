/*
 * unbound_server.h: a real unbound for one test, answering from local
 * data only, on a free 127.0.0.1 port, in a fresh temporary directory.
 *
 * UnboundServer(RECORDS) serves RECORDS (zone-file lines, "name. A
 * 127.0.0.2") under `local-zone: "." static`: every other name is
 * NXDOMAIN, and nothing is ever asked of another server.  SETTINGS are
 * more lines for its server: section, e.g. `local-zone: "slow.example."
 * deny` for a zone whose questions get no answer at all.  It returns
 * once the server answers; a missing binary or a server that does not
 * come up throws, failing the test.  forwarder() is the "IP@PORT" that
 * dns.resolver takes.  The destructor kills it and removes the directory.
 */
#pragma once

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/processes.h"

namespace portcullis::test_support {

class UnboundServer final : public TestServer {
public:
    static constexpr const char* kServer = "/usr/sbin/unbound";

    explicit UnboundServer(const std::vector<std::string>& records, const std::vector<std::string>& settings = {})
        : TestServer("unbound", "log") {
        if (access(kServer, X_OK) != 0) {
            throw std::runtime_error(std::string(kServer) + " is missing: install the unbound package");
        }
        start_on_free_port([&] { start(records, settings); });
    }

    std::string forwarder() const { return "127.0.0.1@" + std::to_string(port_); }

private:
    void start(const std::vector<std::string>& records, const std::vector<std::string>& settings) {
        const auto config = dir_ / "unbound.conf";
        std::ofstream out(config);
        out << "server:\n  interface: 127.0.0.1@" << port_ << "\n  do-daemonize: no\n  username: \"\"\n"
            << "  chroot: \"\"\n  directory: \"" << dir_.string() << "\"\n  pidfile: \"" << (dir_ / "pid").string()
            << "\"\n  use-syslog: no\n  logfile: \"" << (dir_ / "log").string() << "\"\n  do-ip6: no\n"
            << "  local-zone: \".\" static\n";
        for (const auto& setting : settings) out << "  " << setting << "\n";
        for (const auto& record : records) out << "  local-data: '" << record << "'\n";
        out << "remote-control:\n  control-enable: no\n";
        out.close();
        pid_ = spawn({kServer, "-d", "-c", config.string()}, -1);
        wait_until_answering();
    }

    /* Whether a query for the root (any answer) comes back within 200 ms. */
    bool answers() const override {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        const timeval limit{0, 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        sockaddr_in address = loopback(port_);
        // id 0x1234, RD, one question: ". IN A".
        static constexpr char kQuery[] = "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01";
        char reply[512];
        const bool ok = sendto(fd, kQuery, sizeof kQuery - 1, 0, reinterpret_cast<sockaddr*>(&address),
                               sizeof address) == static_cast<ssize_t>(sizeof kQuery - 1) &&
                        recv(fd, reply, sizeof reply, 0) > 0;
        close(fd);
        return ok;
    }
};

}  // namespace portcullis::test_support
