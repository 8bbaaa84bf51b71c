/*
 * fake_redis.h: a Redis server the test plays itself, on the test's own
 * event loop, for what a real one cannot be made to do on cue: answer
 * late, in pieces, garbled, never, or close the connection.
 *
 * FakeRedis listens on a free 127.0.0.1 port; address() is where a
 * RedisLink connects.  Each command a client sends (RESP: an array of
 * bulk strings, so store::ReplyParser reads it) goes to the handler with
 * its Peer; the handler answers with Peer::send() (raw bytes), now or
 * later, or never.  The default handler answers PING with +PONG and
 * everything else with +OK.  commands() lists what each connection sent,
 * by connection in the order accepted; accepted() counts connections.
 * close_all() closes every connection (reset: with an RST, as a crashed
 * host; else a FIN, as a restarted server); Peer::hang_up() sends a FIN
 * and keeps reading, so the test sees when the client closed its end
 * (Peer::open() turns false); stop_listening() makes
 * connects refused until listen_again() reopens the same port.
 * Everything runs on the loop's thread; nothing here blocks.
 */
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "store/redis_link.h"
#include "store/resp.h"
#include "support/processes.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

class FakeRedis final : public Watcher {
public:
    class Peer final : public Watcher {
    public:
        Peer(FakeRedis& server, int fd, size_t number) : server_(server), fd_(fd), number_(number) {
            server_.loop_.watch(fd_, EPOLLIN, *this);
        }
        ~Peer() { close(false); }
        Peer(const Peer&) = delete;
        Peer& operator=(const Peer&) = delete;

        void send(std::string_view bytes) {
            if (fd_ < 0) return;
            const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            // A client that hung up gets nothing, as from a real server.
            if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) return close(false);
            // Small replies on loopback: the socket buffer takes them whole.
            if (sent != static_cast<ssize_t>(bytes.size())) throw std::runtime_error("fake redis: a short write");
        }
        /* A FIN, the connection kept open to see the client close its end. */
        void hang_up() {
            if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
        }
        void close(bool reset) {
            if (fd_ < 0) return;
            if (reset) {
                const linger abort{1, 0};
                setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
            }
            server_.loop_.unwatch(fd_, *this);
            ::close(fd_);
            fd_ = -1;
        }
        bool open() const { return fd_ >= 0; }
        size_t number() const { return number_; }

        void ready(uint32_t) override {
            char buffer[4096];
            const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (got <= 0) return close(false);
            parser_.feed(std::string_view(buffer, static_cast<size_t>(got)));
            while (auto command = parser_.next()) {
                std::vector<std::string> words;
                for (const auto& element : command->elements) words.push_back(element.text);
                server_.commands_[number_].push_back(words);
                server_.handler_(*this, words);
                if (fd_ < 0) return;
            }
        }

    private:
        FakeRedis& server_;
        int fd_;
        size_t number_;
        store::ReplyParser parser_;
    };

    using Handler = std::function<void(Peer& peer, const std::vector<std::string>& command)>;

    explicit FakeRedis(EventLoop& loop) : loop_(loop), handler_(answer_ok) {
        // Another process may take the free port first: try another.
        for (int attempt = 1;; ++attempt) {
            port_ = free_port();
            try {
                listen_again();
                return;
            } catch (const std::runtime_error&) {
                if (attempt == 3) throw;
            }
        }
    }
    ~FakeRedis() {
        peers_.clear();
        stop_listening();
    }
    FakeRedis(const FakeRedis&) = delete;
    FakeRedis& operator=(const FakeRedis&) = delete;

    void on_command(Handler handler) { handler_ = std::move(handler); }

    store::LinkAddress address(const std::string& user = "", const std::string& password = "", int db = 0) const {
        RedisEndpoint endpoint;
        endpoint.host = "127.0.0.1";
        endpoint.port = port_;
        endpoint.user = user;
        endpoint.password = password;
        endpoint.db = db;
        return store::resolve_endpoint(endpoint);
    }
    int port() const { return port_; }

    size_t accepted() const { return peers_.size(); }
    Peer& peer(size_t number) { return *peers_.at(number); }
    const std::vector<std::vector<std::vector<std::string>>>& commands() const { return commands_; }

    void close_all(bool reset) {
        for (auto& peer : peers_) peer->close(reset);
    }

    void stop_listening() {
        if (listener_ < 0) return;
        loop_.unwatch(listener_, *this);
        ::close(listener_);
        listener_ = -1;
    }

    void listen_again() {
        if (listener_ >= 0) return;
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in address = loopback(port_);
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 16) != 0) {
            if (fd >= 0) ::close(fd);
            throw std::runtime_error("fake redis: cannot listen on 127.0.0.1:" + std::to_string(port_));
        }
        listener_ = fd;
        loop_.watch(listener_, EPOLLIN, *this);
    }

    void ready(uint32_t) override {
        for (;;) {
            const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            commands_.emplace_back();
            peers_.push_back(std::make_unique<Peer>(*this, fd, peers_.size()));
        }
    }

    static void answer_ok(Peer& peer, const std::vector<std::string>& command) {
        peer.send(!command.empty() && command[0] == "PING" ? "+PONG\r\n" : "+OK\r\n");
    }

private:
    EventLoop& loop_;
    Handler handler_;
    int port_ = 0;
    int listener_ = -1;
    std::vector<std::unique_ptr<Peer>> peers_;
    std::vector<std::vector<std::vector<std::string>>> commands_;
};

}  // namespace portcullis::test_support
