/*
 * redis_server.h: a real redis-server for one test, in a fresh temporary
 * directory, on a free 127.0.0.1 port and on DIR/redis.sock.
 *
 * RedisServer starts /usr/bin/redis-server without persistence, plus
 * EXTRA_ARGS ("--requirepass", "secret"), and returns once it answers; a
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
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

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

extern char** environ;

namespace portcullis::test_support {

class RedisServer {
public:
    static constexpr const char* kServer = "/usr/bin/redis-server";
    static constexpr const char* kCli = "/usr/bin/redis-cli";

    explicit RedisServer(std::vector<std::string> extra_args = {}) : extra_args_(std::move(extra_args)) {
        signal(SIGPIPE, SIG_IGN);
        if (access(kServer, X_OK) != 0 || access(kCli, X_OK) != 0) {
            throw std::runtime_error(std::string(kServer) + " or " + kCli +
                                     " is missing: install the redis-server package (the store tests need a real "
                                     "Redis and are never skipped)");
        }
        std::string pattern = (std::filesystem::temp_directory_path() / "portcullis-redis-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        dir_ = pattern;
        // Another process may take the free port before redis-server binds it.
        for (int attempt = 1;; ++attempt) {
            port_ = free_port();
            try {
                start();
                return;
            } catch (const std::runtime_error&) {
                if (attempt == 3) {
                    std::filesystem::remove_all(dir_);
                    throw;
                }
            }
        }
    }

    ~RedisServer() {
        stop();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    int port() const { return port_; }
    std::string socket_path() const { return (dir_ / "redis.sock").string(); }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

    void start() {
        if (pid_ > 0) throw std::runtime_error("redis-server is already running");
        std::filesystem::remove(dir_ / "redis.sock");
        std::vector<std::string> args{
            kServer,
            "--port", std::to_string(port_),
            "--bind", "127.0.0.1",
            "--dir", dir_.string(),
            "--logfile", (dir_ / "redis.log").string(),
            "--save", "",
            "--appendonly", "no",
            "--unixsocket", socket_path(),
            "--unixsocketperm", "700",
        };
        args.insert(args.end(), extra_args_.begin(), extra_args_.end());
        pid_ = spawn(args, -1);
        wait_until_answering();
    }

    void stop() {
        if (pid_ <= 0) return;
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
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
    static int free_port() {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            if (fd >= 0) close(fd);
            throw std::runtime_error("cannot find a free port on 127.0.0.1");
        }
        close(fd);
        return ntohs(address.sin_port);
    }

    /* Runs ARGS with stdin on /dev/null, stdout on STDOUT_FD (or
     * /dev/null if it is -1), stderr inherited. */
    static pid_t spawn(const std::vector<std::string>& args, int stdout_fd) {
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

    /* Whether something on the port answers PING (even with NOAUTH). */
    bool answers() const {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return false;
        const timeval limit{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(static_cast<uint16_t>(port_));
        char reply = 0;
        const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                        write(fd, "PING\r\n", 6) == 6 && read(fd, &reply, 1) == 1;
        close(fd);
        return ok;
    }

    void wait_until_answering() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!answers()) {
            int status = 0;
            const bool exited = waitpid(pid_, &status, WNOHANG) == pid_;
            if (exited || std::chrono::steady_clock::now() > deadline) {
                if (exited) pid_ = -1;
                stop();
                std::ifstream log(dir_ / "redis.log");
                std::stringstream text;
                text << log.rdbuf();
                throw std::runtime_error("redis-server on port " + std::to_string(port_) +
                                         (exited ? " exited" : " did not answer within 10s") + "; its log:\n" +
                                         text.str());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    std::vector<std::string> extra_args_;
    std::filesystem::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace portcullis::test_support
