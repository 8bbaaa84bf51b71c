/*
 * native_engine.cc: the milter protocol served by a few event loops, no
 * libmilter (see engine.h, connection.h).
 *
 * open() binds the listening socket: inet:PORT@HOST, inet6:PORT@HOST,
 * unix:PATH, local:PATH, or a bare PATH (a unix socket, as libmilter
 * takes it).  A unix socket left by an earlier run is removed first.
 * run() starts milter.threads loops (one per core when 0), each waiting
 * on the one listening socket (EPOLLEXCLUSIVE: one loop takes each new
 * connection) and serving the connections it accepted; it returns when
 * stop() has ended them all.  Past milter.max_connections, a new
 * connection is closed at once and logged (once a second at most, with
 * how many): the MTA applies its milter_default_action.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_map>

#include "milter/connection.h"
#include "milter/engine.h"
#include "util/files.h"
#include "util/log.h"
#include "util/text.h"
#include "util/units.h"

namespace portcullis::milter {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBuffer = 128 * 1024;
constexpr int kAcceptsPerWakeup = 32;
// Out of descriptors or memory, a loop stops accepting for this long: the
// listening socket stays readable, and would otherwise spin the loop.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

struct ListenAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
    std::string path;   // a unix socket's
};


/* milter.socket as an address to bind; throws std::runtime_error saying
 * what is wrong with it. */
ListenAddress listen_address(const std::string& socket) {
    ListenAddress listen;
    const auto colon = socket.find(':');
    const std::string kind = colon == std::string::npos ? "" : to_lower(socket.substr(0, colon));
    if (const std::string path = unix_socket_path(socket); !path.empty() || kind == "unix" || kind == "local") {
        if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            throw std::runtime_error("bad milter socket '" + socket + "': the path is empty or too long");
        }
        const sockaddr_un local = unix_address(path);
        std::memcpy(&listen.address, &local, sizeof local);
        listen.length = sizeof local;
        listen.path = path;
        return listen;
    }
    if (kind != "inet" && kind != "inet6") throw std::runtime_error("bad milter socket '" + socket + "'");
    const std::string rest = socket.substr(colon + 1);
    const auto at = rest.find('@');
    const std::string port = rest.substr(0, at);
    std::string host = at == std::string::npos ? "" : rest.substr(at + 1);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const auto number = parse_decimal<uint16_t>(port);
    if (!number || *number == 0) throw std::runtime_error("bad milter socket '" + socket + "': no port");
    addrinfo hints{};
    hints.ai_family = kind == "inet6" ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int status = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
    if (status != 0 || !found) {
        throw std::runtime_error("bad milter socket '" + socket + "': " + gai_strerror(status));
    }
    std::memcpy(&listen.address, found->ai_addr, found->ai_addrlen);
    listen.length = found->ai_addrlen;
    freeaddrinfo(found);
    return listen;
}

/* "192.0.2.1:4711", "[2001:db8::1]:4711" or "local", for log lines. */
std::string peer_name(const sockaddr_storage& address) {
    char text[INET6_ADDRSTRLEN] = "";
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
        return std::string(text) + ":" + std::to_string(ntohs(v4.sin_port));
    }
    if (address.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
        inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        return std::string("[").append(text).append("]:") + std::to_string(ntohs(v6.sin6_port));
    }
    return "local";
}

class NativeEngine;

/* One loop: its thread, its connections, its read buffer. */
class Loop final : public ConnectionOwner, public Watcher {
public:
    Loop(NativeEngine& engine, int listen_fd);
    ~Loop();

    EventLoop& loop() override { return loop_; }
    std::span<char> read_buffer() override { return {read_buffer_.get(), kReadBuffer}; }
    void closed(Connection& connection) override;
    const EngineSettings& settings() const override;

    void ready(uint32_t events) override;   // the listening socket
    void run() { loop_.run(); }
    void stop() { loop_.stop(); }

private:
    void accept_one(int fd, const sockaddr_storage& peer);
    void pause_accepting(int error);

    NativeEngine& engine_;
    int listen_fd_;
    EventLoop loop_;
    Timer accept_pause_{loop_, [this] { loop_.watch(listen_fd_, EPOLLIN | EPOLLEXCLUSIVE, *this); }};
    // Not zeroed: a page is resident once a read reaches it, and most
    // reads are a few kB.
    std::unique_ptr<char[]> read_buffer_ = std::make_unique_for_overwrite<char[]>(kReadBuffer);
    std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
};

class NativeEngine final : public Engine {
public:
    ~NativeEngine() override {
        if (listen_fd_ >= 0) ::close(listen_fd_);
        if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
    }

    std::string open(const EngineSettings& settings) override {
        settings_ = settings;
        ListenAddress address;
        try {
            address = listen_address(settings.socket);
        } catch (const std::exception& error) {
            return error.what();
        }
        const int family = address.address.ss_family;
        listen_fd_ = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd_ < 0) return errno_message("cannot listen on " + settings.socket);
        const int one = 1;
        if (family != AF_UNIX) setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (const std::string refused = make_room_for(settings.socket); !refused.empty()) return refused;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address.address), address.length) != 0 ||
            ::listen(listen_fd_, SOMAXCONN) != 0) {
            return errno_message("cannot listen on " + settings.socket + " (in use, or no permission?)");
        }
        socket_path_ = address.path;
        return "";
    }

    bool run() override {
        const unsigned count = settings_.threads ? settings_.threads : std::max(1u, std::thread::hardware_concurrency());
        {
            const std::lock_guard lock(mutex_);
            if (stopping_) return true;
            for (unsigned i = 0; i < count; ++i) loops_.push_back(std::make_unique<Loop>(*this, listen_fd_));
        }
        std::vector<std::thread> threads;
        for (auto& loop : loops_) threads.emplace_back([&loop] { loop->run(); });
        for (auto& thread : threads) thread.join();
        const std::lock_guard lock(mutex_);
        loops_.clear();
        return true;
    }

    void stop() override {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& loop : loops_) loop->stop();
    }

    std::string describe() const override {
        const unsigned count = settings_.threads ? settings_.threads : std::max(1u, std::thread::hardware_concurrency());
        return "native engine, " + std::to_string(count) + " thread" + (count == 1 ? "" : "s");
    }

    const EngineSettings& settings() const { return settings_; }

    /* Whether one more connection may be served; the refusal is logged. */
    bool admit() {
        const size_t limit = settings_.max_connections;
        if (const size_t open = connections_.fetch_add(1); limit == 0 || open < limit) return true;
        connections_.fetch_sub(1);
        ++refused_;
        const auto now = Clock::now().time_since_epoch().count();
        auto last = last_refusal_log_.load();
        if (now - last >= std::chrono::nanoseconds(std::chrono::seconds(1)).count() &&
            last_refusal_log_.compare_exchange_strong(last, now)) {
            log::warning("milter.max_connections (" + std::to_string(limit) + ") reached: " +
                         std::to_string(refused_.exchange(0)) +
                         " new connections closed at once; the MTA applies its milter_default_action");
        }
        return false;
    }

    void released() { connections_.fetch_sub(1); }

private:
    EngineSettings settings_;
    int listen_fd_ = -1;
    std::string socket_path_;
    std::mutex mutex_;
    bool stopping_ = false;
    std::vector<std::unique_ptr<Loop>> loops_;
    std::atomic<size_t> connections_{0};
    std::atomic<size_t> refused_{0};
    std::atomic<Clock::rep> last_refusal_log_{0};
};

Loop::Loop(NativeEngine& engine, int listen_fd) : engine_(engine), listen_fd_(listen_fd) {
    loop_.watch(listen_fd_, EPOLLIN | EPOLLEXCLUSIVE, *this);
}

Loop::~Loop() {
    loop_.unwatch(listen_fd_, *this);
    for (size_t i = 0; i < connections_.size(); ++i) engine_.released();
    connections_.clear();
}

const EngineSettings& Loop::settings() const { return engine_.settings(); }

void Loop::ready(uint32_t) {
    for (int i = 0; i < kAcceptsPerWakeup; ++i) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            // EAGAIN: another loop took it, or none is left.
            if (errno != EAGAIN) pause_accepting(errno);
            return;
        }
        accept_one(fd, peer);
    }
}

/* EMFILE, ENFILE, ENOBUFS, ENOMEM and the like: logged, and no accept on
 * this loop for kAcceptPause (EPOLLEXCLUSIVE cannot be modified: the
 * socket is watched again). */
void Loop::pause_accepting(int error) {
    log::warning(errno_message("milter: accept", error) + "; new connections wait " +
                 format_duration(kAcceptPause));
    loop_.unwatch(listen_fd_, *this);
    accept_pause_.arm_after(kAcceptPause);
}

void Loop::accept_one(int fd, const sockaddr_storage& peer) {
    if (!engine_.admit()) {
        ::close(fd);
        return;
    }
    const bool tcp = peer.ss_family == AF_INET || peer.ss_family == AF_INET6;
    if (tcp) {
        // Replies go out once per batch of input: Nagle could only delay them.
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    try {
        auto connection = std::make_unique<Connection>(*this, fd, tcp, peer_name(peer));
        Connection* key = connection.get();
        connections_.emplace(key, std::move(connection));
    } catch (const std::exception& error) {
        log::warning(std::string("milter: cannot serve a new connection: ") + error.what());
        ::close(fd);
        engine_.released();
    }
}

void Loop::closed(Connection& connection) {
    // Destroyed once the event that closed it is handled: its methods may
    // still be on the stack.
    loop_.defer([this, key = &connection] {
        if (connections_.erase(key) > 0) engine_.released();
    });
}

}  // namespace

std::unique_ptr<Engine> make_native_engine() { return std::make_unique<NativeEngine>(); }

}  // namespace portcullis::milter
