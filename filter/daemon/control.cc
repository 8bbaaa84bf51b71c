/*
 * control.cc: the control socket's wire format, its server on an event
 * loop of its own, and the command line's client (see control.h).
 */
#include "daemon/control.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <unordered_map>

#include "daemon/commands.h"
#include "util/event_loop.h"
#include "util/files.h"
#include "util/log.h"
#include "util/text.h"
#include "util/units.h"

namespace portcullis::daemon {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kReplyTimeout = std::chrono::minutes(5);   // a reload, a scan of a large store
constexpr auto kDrainTime = std::chrono::seconds(2);

std::string escaped(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : text) {
        if (c == '%' || c == '\r' || c == '\n' || c == '\0') {
            out += '%';
            out += kHex[static_cast<unsigned char>(c) >> 4];
            out += kHex[static_cast<unsigned char>(c) & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::optional<std::string> unescaped(std::string_view text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int high = hex_digit(text[i + 1]);
        const int low = hex_digit(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        out += static_cast<char>(high << 4 | low);
        i += 2;
    }
    return out;
}


/* Whether the peer of FD may give orders: root, the daemon's own user, or
 * a member of GROUP. */
bool allowed(int fd, gid_t group) {
    ucred peer{};
    socklen_t length = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return false;
    if (peer.uid == 0 || peer.uid == geteuid() || peer.gid == group) return true;
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwuid_r(peer.uid, &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return false;
    constexpr int kFirstTry = 64;
    std::vector<gid_t> groups(kFirstTry);
    int count = kFirstTry;
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
        // More groups than that: COUNT says how many.
        if (count <= kFirstTry) return false;
        groups.resize(static_cast<size_t>(count));
        if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) return false;
    }
    groups.resize(static_cast<size_t>(count));
    return std::find(groups.begin(), groups.end(), group) != groups.end();
}

}  // namespace

std::string ControlRequest::get(const std::string& name, const std::string& fallback) const {
    const auto found = values.find(name);
    return found == values.end() ? fallback : found->second;
}

std::vector<std::string> ControlRequest::all(const std::string& name) const {
    std::vector<std::string> found;
    const auto [first, last] = values.equal_range(name);
    for (auto at = first; at != last; ++at) found.push_back(at->second);
    return found;
}

std::string encode_request(const ControlRequest& request) {
    std::string text = escaped(request.command) + "\n";
    for (const auto& [name, value] : request.values) text += escaped(name) + "=" + escaped(value) + "\n";
    return text + "\n";
}

std::optional<ControlRequest> decode_request(std::string_view text, std::string& problem) {
    ControlRequest request;
    size_t items = 0;
    size_t start = 0;
    for (;;) {
        const size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            problem = "the request does not end with an empty line";
            return std::nullopt;
        }
        const std::string_view line = text.substr(start, end - start);
        start = end + 1;
        if (line.empty()) break;
        if (++items > kMaxItems) {
            problem = "more than " + std::to_string(kMaxItems) + " items";
            return std::nullopt;
        }
        if (items == 1) {
            const auto command = unescaped(line);
            if (!command || command->empty()) {
                problem = "no command";
                return std::nullopt;
            }
            request.command = *command;
            continue;
        }
        const size_t equals = line.find('=');
        const auto name = unescaped(line.substr(0, equals));
        const auto value = equals == std::string_view::npos ? std::nullopt : unescaped(line.substr(equals + 1));
        if (!name || !value || name->empty()) {
            problem = "item " + std::to_string(items) + " is not NAME=VALUE";
            return std::nullopt;
        }
        request.values.emplace(*name, *value);
    }
    if (items == 0) {
        problem = "an empty request";
        return std::nullopt;
    }
    return request;
}

/* ---- the client ---- */

std::optional<ControlReply> ask_daemon(const config::Config& config, const ControlRequest& request) {
    const std::string& path = config.control.socket;
    if (path.empty()) return std::nullopt;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    const sockaddr_un address = unix_address(path);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const int error = errno;
        ::close(fd);
        // No daemon there; one that refuses us is an answer, though.
        if (error == EACCES || error == EPERM) {
            return ControlReply{kExitNotAllowed, errno_message("portcullis: " + path, error) + "\n"};
        }
        return std::nullopt;
    }
    const std::string text = encode_request(request);
    for (size_t at = 0; at < text.size();) {
        const ssize_t wrote = ::send(fd, text.data() + at, text.size() - at, MSG_NOSIGNAL);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) break;   // refused early: its answer is waiting to be read
        at += static_cast<size_t>(wrote);
    }
    std::string answer;
    char buffer[8192];
    const auto deadline = Clock::now() + kReplyTimeout;
    for (;;) {
        pollfd readable{fd, POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0 || ::poll(&readable, 1, static_cast<int>(left)) <= 0) break;
        const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        answer.append(buffer, static_cast<size_t>(got));
    }
    ::close(fd);
    const size_t line_end = answer.find('\n');
    const auto code = answer.starts_with("EXIT ") && line_end != std::string::npos
                          ? parse_decimal<int>(std::string_view(answer).substr(5, line_end - 5))
                          : std::nullopt;
    if (!code) return ControlReply{1, "portcullis: no proper reply from the daemon at " + path + "\n"};
    return ControlReply{*code, answer.substr(line_end + 1)};
}

/* ---- the server ---- */

struct ControlServer::Impl {
    class Client;

    class Listener final : public Watcher {
    public:
        explicit Listener(Impl& impl) : impl_(impl) {}
        void ready(uint32_t) override { impl_.accept_all(); }

    private:
        Impl& impl_;
    };

    void accept_all();
    void done(Client& client);

    int listen_fd = -1;
    std::string path;
    gid_t group = 0;
    Handler handle;
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<Listener> listener;
    std::unordered_map<Client*, std::unique_ptr<Client>> clients;
    std::thread thread;
};

/* One administrator's connection: its request read in full, then handled
 * at once (the loop is the control socket's alone) and the reply sent as
 * the peer takes it, so a peer that does not read holds up no other. */
class ControlServer::Impl::Client final : public Watcher {
public:
    Client(Impl& server, int fd)
        : server_(server), fd_(fd), deadline_(*server.loop, [this] { expire(); }) {
        server_.loop->watch(fd_, EPOLLIN, *this);
        deadline_.arm_after(kRequestTimeout);
    }
    ~Client() {
        server_.loop->unwatch(fd_, *this);
        ::close(fd_);
    }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void ready(uint32_t events) override {
        if (events & EPOLLOUT) return send_reply();
        char buffer[8192];
        const ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (answered_) {
            // What the peer still sends after its request is read and
            // dropped until it is done: a close with unread input would
            // reset the connection and could lose the reply on its way.
            if (got > 0) return;
            if (got < 0 || peer_done_ || sent_ == reply_.size()) return server_.done(*this);
            peer_done_ = true;
            server_.loop->change(fd_, EPOLLOUT, *this);   // the rest of the reply; nothing more to read
            return;
        }
        if (got <= 0) return answer({kExitUsage, "the request ended before its empty line\n"});
        request_.append(buffer, static_cast<size_t>(got));
        if (request_.size() > kMaxRequest) {
            return answer({kExitUsage, "request over " + std::to_string(kMaxRequest) + " bytes refused\n"});
        }
        if (request_.find("\n\n") == std::string::npos && !request_.starts_with("\n")) return;
        std::string problem;
        const auto request = decode_request(request_, problem);
        if (!request) return answer({kExitUsage, "malformed request: " + problem + "\n"});
        try {
            answer(server_.handle(*request));
        } catch (const std::exception& error) {
            answer({1, std::string("the daemon could not do it: ") + error.what() + "\n"});
        }
    }

    void refuse() { answer({kExitNotAllowed, "not allowed: only root and the control socket's group may ask\n"}); }

private:
    void expire() {
        if (answered_) return server_.done(*this);
        answer({kExitUsage, "request incomplete after " + format_duration(kRequestTimeout) + "\n"});
    }

    void answer(const ControlReply& reply) {
        if (answered_) return;
        answered_ = true;
        reply_ = "EXIT " + std::to_string(reply.exit_code) + "\n" + reply.text;
        request_.clear();
        deadline_.arm_after(kSendTime);
        send_reply();
    }

    /* As much of the reply as the peer has room for; once it is all out,
     * the peer has kDrainTime to stop sending and close its end. */
    void send_reply() {
        while (sent_ < reply_.size()) {
            const ssize_t wrote = ::send(fd_, reply_.data() + sent_, reply_.size() - sent_, MSG_NOSIGNAL);
            if (wrote < 0 && errno == EINTR) continue;
            if (wrote < 0 && errno == EAGAIN) {
                server_.loop->change(fd_, peer_done_ ? EPOLLOUT : EPOLLIN | EPOLLOUT, *this);
                return;
            }
            if (wrote <= 0) return server_.done(*this);
            sent_ += static_cast<size_t>(wrote);
        }
        ::shutdown(fd_, SHUT_WR);
        if (peer_done_) return server_.done(*this);
        server_.loop->change(fd_, EPOLLIN, *this);
        deadline_.arm_after(kDrainTime);
    }

    Impl& server_;
    int fd_;
    Timer deadline_;
    std::string request_;
    bool answered_ = false;
    std::string reply_;        // "EXIT N\n" and the text, once answered
    size_t sent_ = 0;          // of reply_
    bool peer_done_ = false;   // the peer closed its end; only the reply is left to send
};

void ControlServer::Impl::accept_all() {
    for (;;) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (clients.size() >= kMaxClients) {
            // A line this short fits any new socket's buffer at once.
            const std::string busy = "EXIT " + std::to_string(kExitUnavailable) + "\nthe daemon is busy with " +
                                     std::to_string(kMaxClients) + " requests; try again\n";
            ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
            ::close(fd);
            log::warning("control socket: more than " + std::to_string(kMaxClients) + " requests at once; one refused");
            continue;
        }
        auto client = std::make_unique<Client>(*this, fd);
        Client* key = client.get();
        clients.emplace(key, std::move(client));
        if (!allowed(fd, group)) {
            log::warning("control socket: a request from a user outside the socket's group refused");
            key->refuse();
        }
    }
}

void ControlServer::Impl::done(Client& client) {
    loop->defer([this, key = &client] { clients.erase(key); });
}

ControlServer::ControlServer() : impl_(std::make_unique<Impl>()) {}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
    if (impl_->thread.joinable()) {
        impl_->loop->stop();
        impl_->thread.join();
    }
    impl_->clients.clear();
    if (impl_->listener) impl_->loop->unwatch(impl_->listen_fd, *impl_->listener);
    impl_->listener.reset();
    if (impl_->listen_fd >= 0) {
        ::close(impl_->listen_fd);
        ::unlink(impl_->path.c_str());
        impl_->listen_fd = -1;
    }
}

std::string ControlServer::open(const std::string& path, const std::string& user) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    // Only root becomes milter.user (drop_privileges()); anyone else stays.
    if (!user.empty() && geteuid() == 0) {
        const passwd* entry = getpwnam(user.c_str());
        if (!entry) return "control.socket: milter.user '" + user + "' does not exist";
        uid = entry->pw_uid;
        gid = entry->pw_gid;
    }
    const std::filesystem::path directory = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!directory.empty() && !std::filesystem::exists(directory, error)) {
        if (!std::filesystem::create_directories(directory, error)) {
            return "control.socket: cannot make " + directory.string() + ": " + error.message();
        }
        ::chmod(directory.c_str(), 0750);
        if (geteuid() == 0 && ::lchown(directory.c_str(), uid, gid) != 0) {
            return errno_message("control.socket: chown " + directory.string());
        }
    }
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) return "control.socket: the path is too long";
    if (const auto refused = clear_stale_socket(path); !refused.empty()) return "control.socket: " + refused;
    impl_->listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (impl_->listen_fd < 0) return errno_message("control.socket: socket");
    const sockaddr_un address = unix_address(path);
    const mode_t old_mask = ::umask(0117);   // born 0660: never open to others, not even briefly
    const bool bound = ::bind(impl_->listen_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::umask(old_mask);
    if (!bound || ::listen(impl_->listen_fd, 16) != 0) return errno_message("control.socket: cannot listen on " + path);
    impl_->path = path;
    // lchown: whoever may write to the directory could have put a symlink
    // to a file of root's in the socket's place since bind().
    if (geteuid() == 0 && ::lchown(path.c_str(), uid, gid) != 0) return errno_message("control.socket: chown " + path);
    impl_->group = gid;
    return "";
}

void ControlServer::start(Handler handle) {
    if (impl_->listen_fd < 0) return;
    impl_->handle = std::move(handle);
    impl_->loop = std::make_unique<EventLoop>();
    impl_->listener = std::make_unique<Impl::Listener>(*impl_);
    impl_->loop->watch(impl_->listen_fd, EPOLLIN, *impl_->listener);
    impl_->thread = std::thread([this] { impl_->loop->run(); });
}

}  // namespace portcullis::daemon
