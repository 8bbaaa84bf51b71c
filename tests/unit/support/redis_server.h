/*
 * redis_server.h: a real redis-server for one test, in a fresh temporary
 * directory, on a free 127.0.0.1 port and on DIR/redis.sock.
 *
 * RedisServer starts /usr/bin/redis-server without persistence, plus
 * EXTRA_ARGS ("--requirepass", "secret") and, when CONFIG is not empty,
 * a configuration file DIR/redis.conf holding it (a sentinel needs one it
 * may rewrite), and returns once it answers; a
 * missing binary or a server that does not come up throws, failing the
 * test (the store tests need a real Redis, they are never skipped).
 * stop() kills it (SIGKILL, like a crash), start() brings it back on the
 * same port, empty; pause() and resume() stop and continue it (SIGSTOP,
 * SIGCONT), to play a Redis that hangs.  cli(ARGS) runs redis-cli against
 * it and returns its output without the last newline.  The destructor
 * kills the server and removes the directory.
 *
 * Constructing one makes the process ignore SIGPIPE, as the daemon does:
 * writing to a killed server must fail, not kill the test.
 */
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/processes.h"

namespace portcullis::test_support {

class RedisServer final : public TestServer {
public:
    static constexpr const char* kServer = "/usr/bin/redis-server";
    static constexpr const char* kCli = "/usr/bin/redis-cli";

    explicit RedisServer(std::vector<std::string> extra_args = {}, std::string config = "")
        : TestServer("redis-server", "redis.log"), extra_args_(std::move(extra_args)), config_(std::move(config)) {
        signal(SIGPIPE, SIG_IGN);
        if (access(kServer, X_OK) != 0 || access(kCli, X_OK) != 0) {
            throw std::runtime_error(std::string(kServer) + " or " + kCli +
                                     " is missing: install the redis-server package (the store tests need a real "
                                     "Redis and are never skipped)");
        }
        // A cluster node also listens on its bus, PORT + 10000.
        const bool cluster = std::find(extra_args_.begin(), extra_args_.end(), "--cluster-enabled") != extra_args_.end();
        start_on_free_port([this] { start(); }, cluster ? [] { return free_port_with(10000); } : free_port);
    }

    std::string socket_path() const { return (dir_ / "redis.sock").string(); }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

    void start() {
        if (pid_ > 0) throw std::runtime_error("redis-server is already running");
        std::filesystem::remove(dir_ / "redis.sock");
        std::vector<std::string> args{kServer};
        if (!config_.empty()) {
            const auto file = dir_ / "redis.conf";
            if (!std::filesystem::exists(file)) std::ofstream(file) << config_;
            args.push_back(file.string());
        }
        args.insert(args.end(), {
            "--port", std::to_string(port_),
            "--bind", "127.0.0.1",
            "--dir", dir_.string(),
            "--logfile", (dir_ / "redis.log").string(),
            "--save", "",
            "--appendonly", "no",
            "--unixsocket", socket_path(),
            "--unixsocketperm", "700",
        });
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        pid_ = spawn(args, -1);
        wait_until_answering();
    }

    void pause() { kill(pid_, SIGSTOP); }
    void resume() { kill(pid_, SIGCONT); }

    std::string cli(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{kCli, "-h", "127.0.0.1", "-p", std::to_string(port_)};
        argv.insert(argv.end(), args.begin(), args.end());
        int pipe_fds[2];
        if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        pid_t child = -1;
        try {
            child = spawn(argv, pipe_fds[1]);
        } catch (...) {
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            throw;
        }
        close(pipe_fds[1]);
        std::string output;
        char buffer[4096];
        for (;;) {
            const ssize_t count = read(pipe_fds[0], buffer, sizeof buffer);
            if (count < 0 && errno == EINTR) continue;
            if (count <= 0) break;
            output.append(buffer, static_cast<size_t>(count));
        }
        close(pipe_fds[0]);
        waitpid(child, nullptr, 0);
        if (output.ends_with('\n')) output.pop_back();
        return output;
    }

private:
    /* Whether something on the port answers PING (even with NOAUTH). */
    bool answers() const override {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        const timeval limit{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        sockaddr_in address = loopback(port_);
        char reply = 0;
        const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                        write(fd, "PING\r\n", 6) == 6 && read(fd, &reply, 1) == 1;
        close(fd);
        return ok;
    }

    std::vector<std::string> extra_args_;
    std::string config_;
};

}  // namespace portcullis::test_support
