/*
 * answering_redis.h: a server on 127.0.0.1, on a thread of its own, that
 * speaks RESP and answers each command as the test says, to play a Redis
 * topology on demand (a node that answers MOVED for ever, TRYAGAIN, a
 * master the sentinels name that says it is a replica) for a store that
 * runs on loops of its own (run_blocking()).  support/fake_redis.h is the
 * same on the test's own loop, for the link's edges.
 *
 * AnsweringRedis(ANSWER) listens on a free port; for every command of
 * every connection it calls ANSWER(ARGS) on its own thread and writes
 * back the raw RESP it returns ("+OK\r\n", "-MOVED 1 127.0.0.1:7000\r\n").
 * It counts the commands by name (count("EVALSHA")), and the connections
 * open now (connections(): a client's close is seen within 20 ms).  The
 * destructor stops the thread and closes every connection.
 */
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/processes.h"

namespace portcullis::test_support {

class AnsweringRedis {
public:
    using Answer = std::function<std::string(const std::vector<std::string>& args)>;

    explicit AnsweringRedis(Answer answer) : answer_(std::move(answer)) {
        listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in address = loopback(0);
        socklen_t length = sizeof address;
        if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(listener_, 16) != 0 ||
            getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            throw std::runtime_error("AnsweringRedis: cannot listen on 127.0.0.1");
        }
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { serve(); });
    }

    ~AnsweringRedis() {
        stop_ = true;
        thread_.join();
        for (const auto& connection : connections_) close(connection.fd);
        close(listener_);
    }

    AnsweringRedis(const AnsweringRedis&) = delete;
    AnsweringRedis& operator=(const AnsweringRedis&) = delete;

    int port() const { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    std::string name() const { return "127.0.0.1:" + std::to_string(port_); }

    size_t count(const std::string& command) const {
        const std::lock_guard lock(mutex_);
        const auto found = counts_.find(command);
        return found == counts_.end() ? 0 : found->second;
    }

    size_t connections() const { return open_; }

private:
    struct Connection {
        int fd;
        std::string input;
    };

    void serve() {
        while (!stop_) {
            std::vector<pollfd> fds{{listener_, POLLIN, 0}};
            for (const auto& connection : connections_) fds.push_back({connection.fd, POLLIN, 0});
            if (poll(fds.data(), fds.size(), 20) <= 0) continue;
            if (fds[0].revents & POLLIN) {
                const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) connections_.push_back({fd, {}});
            }
            for (size_t i = 1; i < fds.size(); ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                Connection& connection = connections_[i - 1];
                char buffer[4096];
                const ssize_t got = read(connection.fd, buffer, sizeof buffer);
                if (got <= 0) {
                    close(connection.fd);
                    connection.fd = -1;
                    continue;
                }
                connection.input.append(buffer, static_cast<size_t>(got));
                std::string output;
                while (auto args = next_command(connection.input)) output += reply_to(*args);
                if (!output.empty() && write(connection.fd, output.data(), output.size()) < 0) {
                    close(connection.fd);
                    connection.fd = -1;
                }
            }
            std::erase_if(connections_, [](const Connection& connection) { return connection.fd < 0; });
            open_ = connections_.size();
        }
    }

    std::string reply_to(const std::vector<std::string>& args) {
        {
            const std::lock_guard lock(mutex_);
            ++counts_[args.empty() ? "" : args[0]];
        }
        return answer_(args);
    }

    /* One whole command (a RESP array of bulk strings) off the front of
     * INPUT, or nullopt while it is incomplete. */
    static std::optional<std::vector<std::string>> next_command(std::string& input) {
        size_t at = 0;
        auto line = [&](char kind) -> std::optional<long> {
            if (at >= input.size() || input[at] != kind) return std::nullopt;
            const auto end = input.find("\r\n", at);
            if (end == std::string::npos) return std::nullopt;
            const long value = std::stol(input.substr(at + 1, end - at - 1));
            at = end + 2;
            return value;
        };
        const auto count = line('*');
        if (!count) return std::nullopt;
        std::vector<std::string> args;
        for (long i = 0; i < *count; ++i) {
            const auto length = line('$');
            if (!length || at + static_cast<size_t>(*length) + 2 > input.size()) return std::nullopt;
            args.push_back(input.substr(at, static_cast<size_t>(*length)));
            at += static_cast<size_t>(*length) + 2;
        }
        input.erase(0, at);
        return args;
    }

    Answer answer_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::vector<Connection> connections_;   // the server thread's
    std::atomic<size_t> open_{0};           // its size, for other threads
    mutable std::mutex mutex_;
    std::map<std::string, size_t> counts_;
    std::thread thread_;
};

/* RESP for CLUSTER SLOTS: all 16384 slots on the node at PORT. */
inline std::string all_slots_on(int port) {
    return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:" + std::to_string(port) + "\r\n";
}

}  // namespace portcullis::test_support
