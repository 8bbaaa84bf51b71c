/*
 * processes.h: what the tests that run a real server (redis-server,
 * unbound) share: a free port on 127.0.0.1 and starting a program.
 *
 * loopback(PORT) is the address 127.0.0.1:PORT.  free_port() is a TCP
 * port nothing listens on right now (another process may take it before
 * the server binds it: callers retry); free_port_with(OFFSET) one whose
 * PORT + OFFSET is free too.
 * spawn(ARGS, STDOUT_FD) runs ARGS[0] (a path) with stdin on /dev/null,
 * stdout on STDOUT_FD (or /dev/null if it is -1), stderr inherited, and
 * returns its pid; it throws when the program cannot start.
 *
 * TestServer is what RedisServer and UnboundServer have in common: a
 * fresh temporary directory (removed by the destructor), a port, a pid,
 * starting on a free port (retried: another process may take the port
 * before the server binds it), waiting until answers() holds (else
 * throwing with the server's log), and stop() (SIGKILL, like a crash).
 */
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace portcullis::test_support {

inline sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    return address;
}

inline int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        if (fd >= 0) close(fd);
        throw std::runtime_error("cannot find a free port on 127.0.0.1");
    }
    close(fd);
    return ntohs(address.sin_port);
}

/* A free port whose PORT + OFFSET is free too (a Redis Cluster node's
 * bus): below 65536 - OFFSET, found by trying. */
inline int free_port_with(int offset) {
    for (int attempt = 0; attempt < 200; ++attempt) {
        const int port = free_port();
        if (port + offset > 65535) continue;
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address = loopback(port + offset);
        const bool free = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
        if (fd >= 0) close(fd);
        if (free) return port;
    }
    throw std::runtime_error("cannot find a free port P on 127.0.0.1 with P + " + std::to_string(offset) + " free");
}

inline pid_t spawn(const std::vector<std::string>& args, int stdout_fd) {
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (stdout_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = -1;
    const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) throw std::runtime_error(args[0] + ": cannot start");
    return pid;
}

class TestServer {
public:
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    int port() const { return port_; }
    bool running() const { return pid_ > 0; }

    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

protected:
    /* NAME names the server in errors ("unbound"); LOG is its log file
     * in the directory. */
    TestServer(std::string name, std::string log) : name_(std::move(name)), log_(std::move(log)) {
        std::string pattern = (std::filesystem::temp_directory_path() / ("portcullis-" + name_ + "-XXXXXX")).string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        dir_ = pattern;
    }

    virtual ~TestServer() {
        stop();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    /* START (which spawns the server on port_ and waits for it) on a
     * free port (CHOOSE's), up to three times. */
    void start_on_free_port(const std::function<void()>& start, const std::function<int()>& choose = free_port) {
        for (int attempt = 1;; ++attempt) {
            port_ = choose();
            try {
                start();
                return;
            } catch (const std::runtime_error&) {
                if (attempt == 3) throw;
            }
        }
    }

    virtual bool answers() const = 0;

    void wait_until_answering() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!answers()) {
            int status = 0;
            const bool exited = waitpid(pid_, &status, WNOHANG) == pid_;
            if (exited || std::chrono::steady_clock::now() > deadline) {
                if (exited) pid_ = -1;
                stop();
                std::ifstream log(dir_ / log_);
                std::stringstream text;
                text << log.rdbuf();
                throw std::runtime_error(name_ + " on port " + std::to_string(port_) +
                                         (exited ? " exited" : " did not answer within 10s") + "; its log:\n" +
                                         text.str());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    std::string name_;
    std::string log_;
    std::filesystem::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace portcullis::test_support
