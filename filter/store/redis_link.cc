/*
 * redis_link.cc: a non-blocking connection, its pipeline of commands and
 * their deadlines.
 */
#include "store/redis_link.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "store/store.h"
#include "util/text.h"

namespace portcullis::store {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kRetryDelay = std::chrono::seconds(1);
constexpr size_t kReadChunk = 16 * 1024;
// Reads per wake-up: a server that sends without pause (a huge reply)
// must not keep the loop from its other work.  The socket, still
// readable, wakes the loop again.
constexpr int kReadsPerWake = 4;
/* A burst of commands (every session's after a restart) grows the output
 * buffer; once written, one larger than this is let go, not kept for the
 * link's life. */
constexpr size_t kKeptOutput = 64 * 1024;


constexpr std::string_view kConnect = error_kind::connect;
constexpr std::string_view kTimeout = error_kind::timeout;
constexpr std::string_view kConnection = error_kind::connection;

}  // namespace

std::string host_port(const std::string& host, int port) {
    std::string text = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    text += ':';
    text += std::to_string(port);
    return text;
}

std::optional<LinkAddress> numeric_address(const std::string& host, int port) {
    if (port < 1 || port > 65535) return std::nullopt;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (getaddrinfo(host.c_str(), service.c_str(), &hints, &found) != 0 || found == nullptr) return std::nullopt;
    LinkAddress address;
    std::memcpy(&address.address, found->ai_addr, found->ai_addrlen);
    address.length = found->ai_addrlen;
    freeaddrinfo(found);
    address.name = host_port(host, port);
    return address;
}

LinkAddress resolve_endpoint(const RedisEndpoint& endpoint) {
    LinkAddress address;
    address.user = endpoint.user;
    address.password = endpoint.password;
    address.db = endpoint.db;
    if (!endpoint.socket_path.empty()) {
        sockaddr_un local{};
        local.sun_family = AF_UNIX;
        if (endpoint.socket_path.size() >= sizeof local.sun_path) {
            throw StoreError("store.url: the socket path is longer than " + std::to_string(sizeof local.sun_path - 1) +
                             " bytes");
        }
        std::memcpy(local.sun_path, endpoint.socket_path.c_str(), endpoint.socket_path.size() + 1);
        std::memcpy(&address.address, &local, sizeof local);
        address.length = sizeof local;
        address.name = "unix:" + endpoint.socket_path;
        return address;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(endpoint.port);
    const int status = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found);
    if (status != 0 || found == nullptr) {
        throw StoreError("redis host " + endpoint.host + ": " + gai_strerror(status));
    }
    std::memcpy(&address.address, found->ai_addr, found->ai_addrlen);
    address.length = found->ai_addrlen;
    freeaddrinfo(found);
    address.name = host_port(endpoint.host, endpoint.port);
    return address;
}

RedisLink::RedisLink(EventLoop& loop, LinkAddress address, Millis timeout, Health health)
    : loop_(loop), address_(std::move(address)), timeout_(timeout), health_(std::move(health)),
      deadline_(loop, [this] { expire(); }),
      alive_(std::make_shared<bool>(true)) {}

RedisLink::~RedisLink() {
    *alive_ = false;
    if (fd_ >= 0) {
        loop_.unwatch(fd_, *this);
        ::close(fd_);
    }
}

void RedisLink::command(std::span<const std::string_view> args, Done done, Clock::time_point since) {
    std::string encoded;
    encode_command(encoded, args);
    send(encoded, std::move(done), since);
}

void RedisLink::send(std::string_view encoded, Done done, Clock::time_point since) {
    if (fd_ < 0 && !connect()) return fail_later(std::move(done), connect_error_);
    queue(encoded, std::move(done), since);
    if (connecting_ || flush_due_) return;
    // Written once the loop has handled the events at hand: what all of
    // them queued goes out in one write (and comes back in one read), not
    // a packet each.  A failure is the loop's to report then, never inside
    // send().
    flush_due_ = true;
    loop_.defer([alive = std::weak_ptr(alive_), this] {
        const auto still = alive.lock();
        if (!still || !*still) return;
        flush_due_ = false;
        if (fd_ < 0 || connecting_) return;   // failed meanwhile, or the connect writes it
        if (std::string error = flush(); !error.empty()) fail(error, kConnection);
    });
}

/* A new socket and its connect under way; false when it cannot even
 * start (or a failed one is too recent), with the reason in
 * connect_error_. */
bool RedisLink::connect() {
    if (!connect_error_.empty() && Clock::now() < retry_at_) return false;
    const int family = address_.address.ss_family;
    fd_ = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        connect_error_ = errno_message("socket");
        retry_at_ = Clock::now() + kRetryDelay;
        return false;
    }
    if (family != AF_UNIX) {
        const int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const int status = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address_.address), address_.length);
    if (status != 0 && errno != EINPROGRESS) {
        connect_error_ = errno_message("connect");
        retry_at_ = Clock::now() + kRetryDelay;
        ::close(fd_);
        fd_ = -1;
        lost_ = true;
        report(false, connect_error_);
        return false;
    }
    connecting_ = status != 0;
    want_write_ = true;
    loop_.watch(fd_, EPOLLIN | EPOLLOUT, *this);
    parser_ = std::make_unique<ReplyParser>();
    std::string first;
    if (!address_.password.empty()) {
        if (address_.user.empty()) {
            const std::string_view auth[] = {"AUTH", address_.password};
            encode_command(first, auth);
        } else {
            const std::string_view auth[] = {"AUTH", address_.user, address_.password};
            encode_command(first, auth);
        }
        say_first(first, "AUTH");
    }
    if (address_.db != 0) {
        const std::string db = std::to_string(address_.db);
        const std::string_view select[] = {"SELECT", db};
        first.clear();
        encode_command(first, select);
        say_first(first, "SELECT " + db);
    }
    return true;
}

/* What the connection must say first, answered before anything else: an
 * error reply is a failed connect. */
void RedisLink::say_first(std::string_view encoded, std::string what) {
    queue(encoded, [this, what = std::move(what)](LinkResult result) {
        if (result.ok && result.reply.type == RedisReply::Type::error) {
            connect_error_ = what + " refused: " + result.reply.text;
            retry_at_ = Clock::now() + kRetryDelay;
            fail(connect_error_, kConnect);
        }
    });
    waiting_.back().setup = true;
}

void RedisLink::queue(std::string_view encoded, Done done, Clock::time_point since) {
    const auto now = Clock::now();
    out_ += encoded;
    waiting_.push_back({std::move(done), now, false});
    if (since != Clock::time_point{} && since < now) {
        call_deadlines_.push({since + timeout_, first_number_ + waiting_.size() - 1});
        arm_deadline();
    } else if (!deadline_.armed()) {
        arm_deadline();
    }
}

void RedisLink::arm_deadline() {
    // The deadlines of calls answered since are done with.
    while (!call_deadlines_.empty() && call_deadlines_.top().number < first_number_) call_deadlines_.pop();
    if (waiting_.empty()) return deadline_.disarm();
    auto at = waiting_.front().queued + timeout_;
    if (!call_deadlines_.empty()) at = std::min(at, call_deadlines_.top().at);
    deadline_.arm(at);
}

void RedisLink::expire() {
    const std::string error = "no reply within " + format_duration(timeout_);
    const auto now = Clock::now();
    if (!waiting_.empty() && waiting_.front().queued + timeout_ <= now) return fail(error, kTimeout);
    const std::shared_ptr<bool> alive = alive_;
    while (!call_deadlines_.empty() && call_deadlines_.top().at <= now) {
        const uint64_t number = call_deadlines_.top().number;
        call_deadlines_.pop();
        if (number < first_number_) continue;   // answered
        Done done = std::exchange(waiting_[number - first_number_].done, nullptr);
        done(LinkResult{false, {}, error, kTimeout, false});
        if (!*alive || fd_ < 0) return;
    }
    arm_deadline();
}

std::string RedisLink::flush() {
    while (out_sent_ < out_.size()) {
        const ssize_t sent = ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return errno_message("send");
        }
        out_sent_ += static_cast<size_t>(sent);
    }
    if (out_sent_ == out_.size()) {
        if (out_.capacity() > kKeptOutput) std::string().swap(out_);
        out_.clear();
        out_sent_ = 0;
    }
    update_interest();
    return "";
}

void RedisLink::update_interest() {
    const bool want_write = connecting_ || out_sent_ < out_.size();
    if (want_write == want_write_ || fd_ < 0) return;
    want_write_ = want_write;
    loop_.change(fd_, want_write ? EPOLLIN | EPOLLOUT : EPOLLIN, *this);
}

void RedisLink::ready(uint32_t events) {
    // A reply's callback may destroy this link.
    const std::shared_ptr<bool> alive = alive_;
    if (connecting_) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
            connect_error_ = errno_message("connect", error);
            retry_at_ = Clock::now() + kRetryDelay;
            return fail(connect_error_, kConnect);
        }
        connecting_ = false;
        connect_error_.clear();
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        read_replies();
        if (!*alive || fd_ < 0) return;
    }
    if (std::string error = flush(); !error.empty()) fail(error, kConnection);
}

void RedisLink::read_replies() {
    char buffer[kReadChunk];
    for (int reads = 0; reads < kReadsPerWake; ++reads) {
        const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return fail(errno_message("recv"), kConnection);
        }
        if (got == 0) {
            // Closed by the server (a restart, an idle timeout): news only
            // for commands still waiting.
            if (waiting_.empty()) return fail("", kConnection);
            return fail("connection closed by the server", kConnection);
        }
        try {
            parser_->feed(std::string_view(buffer, static_cast<size_t>(got)));
            while (auto reply = parser_->next()) {
                if (waiting_.empty()) {
                    if (!push_) return fail("a reply nobody asked for", kConnection);
                    const std::shared_ptr<bool> alive = alive_;
                    push_(std::move(*reply));
                    if (!*alive || fd_ < 0) return;
                    continue;
                }
                Done done = std::move(waiting_.front().done);
                const bool setup = waiting_.front().setup;
                waiting_.pop_front();
                ++first_number_;
                arm_deadline();
                // An AUTH or SELECT answered is no sign yet of a server that
                // serves: the next one may be refused, and the connect fail.
                if (!setup) report(true, "");
                if (!done) continue;   // its call ran out of time: a late reply
                const std::shared_ptr<bool> alive = alive_;
                done(LinkResult{true, std::move(*reply), "", {}, false});
                if (!*alive || fd_ < 0) return;   // the callback dropped or failed the link
            }
        } catch (const ProtocolError& error) {
            return fail(error.what(), kConnection);
        }
        if (static_cast<size_t>(got) < sizeof buffer) break;
    }
}

/* The connection is done for: close it, and fail what waits on it.  An
 * empty ERROR is a quiet close (nothing was waiting).  Commands waiting
 * on a connect that never completed never left. */
void RedisLink::fail(const std::string& error, std::string_view kind) {
    if (fd_ >= 0) {
        loop_.unwatch(fd_, *this);
        ::close(fd_);
        fd_ = -1;
    }
    lost_ = true;
    const bool unsent = connecting_;
    connecting_ = false;
    want_write_ = false;
    out_.clear();
    out_sent_ = 0;
    parser_.reset();
    deadline_.disarm();
    call_deadlines_ = {};
    first_number_ += waiting_.size();
    std::deque<Waiting> failed;
    failed.swap(waiting_);
    if (error.empty()) return;
    report(false, error);
    const std::shared_ptr<bool> alive = alive_;
    for (auto& waiting : failed) {
        if (!*alive) return;
        if (waiting.done) waiting.done(LinkResult{false, {}, error, kind, unsent});
    }
}

void RedisLink::report(bool ok, const std::string& error) {
    if (health_) health_(ok, error);
}

void RedisLink::fail_later(Done done, std::string error) {
    loop_.defer([alive = std::weak_ptr(alive_), done = std::move(done), error = std::move(error)] {
        const auto still = alive.lock();
        if (still && *still) done(LinkResult{false, {}, error, kConnect, true});
    });
}

}  // namespace portcullis::store
