/*
 * connection_driver.h: one milter::Connection on an event loop of the
 * caller's, over a socketpair whose other end the test holds: the test
 * plays the MTA.
 *
 *   send(BYTES)       writes as much of BYTES as the socket takes now;
 *                     returns how much
 *   send_all(BYTES)   writes BYTES, letting the connection read between
 *                     writes; returns how much: all, or less when the
 *                     connection stopped reading (or is closed)
 *   settle()          runs the loop until nothing more happens without
 *                     the test: what the connection will read is read,
 *                     its replies are written, the work it deferred done
 *   run_until_closed(LIMIT), run_for(TIME)   the loop, for deadlines
 *   output()          what the connection wrote, read from the socket as
 *                     it came (unless reading(false): then it stays in
 *                     the socket, as with an MTA that does not read, or
 *                     reads slowly: discard_some())
 *   closed()          the connection closed itself (it is destroyed once
 *                     the event that closed it is handled: gone())
 *   hang_up()         the MTA closes its end
 *   small_socket()    the connection's socket takes only a few kB of
 *                     replies the MTA has not read
 *
 * The driver is the ConnectionOwner: it lends the loop, a read buffer of
 * READ_BUFFER bytes and SETTINGS.  What goes wrong on its side (a loop
 * that never settles within ten seconds, a connection closed twice, an
 * error writing) is in faults(), for the test to check; it never hangs.
 */
#pragma once

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "milter/connection.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

class ConnectionDriver final : public milter::ConnectionOwner {
public:
    ConnectionDriver(EventLoop& loop, milter::EngineSettings settings, size_t read_buffer = 64 * 1024)
        : loop_(loop), settings_(std::move(settings)), buffer_(read_buffer) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
            throw std::runtime_error("socketpair failed");
        }
        connection_fd_ = fds[0];
        mta_fd_ = fds[1];
        connection_ = std::make_unique<milter::Connection>(*this, connection_fd_, false, "test");
    }
    ~ConnectionDriver() {
        connection_.reset();
        if (mta_fd_ >= 0) ::close(mta_fd_);
    }
    ConnectionDriver(const ConnectionDriver&) = delete;
    ConnectionDriver& operator=(const ConnectionDriver&) = delete;

    EventLoop& loop() override { return loop_; }
    std::span<char> read_buffer() override { return buffer_; }
    void closed(milter::Connection& connection) override {
        if (&connection != connection_.get()) faults_ += "closed() for another connection\n";
        if (closed_) faults_ += "closed twice\n";
        closed_ = true;
        loop_.defer([this] { connection_.reset(); });
    }
    const milter::EngineSettings& settings() const override { return settings_; }

    size_t send(std::string_view bytes) {
        const ssize_t sent = ::send(mta_fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EPIPE && errno != ECONNRESET) faults_ += "send failed\n";
            return 0;
        }
        return static_cast<size_t>(sent);
    }

    size_t send_all(std::string_view bytes) {
        size_t written = 0;
        while (written < bytes.size()) {
            const size_t sent = send(bytes.substr(written));
            written += sent;
            if (sent > 0) continue;
            if (closed_ || mta_fd_ < 0) break;
            const int before = unread();
            settle();
            if (closed_ || unread() == before) break;   // it stopped reading
        }
        return written;
    }

    /* BYTES in two writes, split at AT, the first read before the second
     * is written. */
    void send_split(std::string_view bytes, size_t at) {
        send_all(bytes.substr(0, at));
        settle();
        send_all(bytes.substr(at));
    }

    /* Quiet: three turns of the loop in a row changed nothing the test
     * sees.  Work deferred during a turn runs at the start of the next,
     * so one quiet turn is not enough. */
    void settle() {
        const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        Observation last = observe();
        int quiet = -1;   // the first check comes before any turn
        loop_.run_until([&] {
            const Observation now = observe();
            quiet = now == last ? quiet + 1 : 0;
            last = now;
            if (quiet >= 3) return true;
            if (std::chrono::steady_clock::now() > limit) {
                faults_ += "the connection did not settle within 10 s\n";
                return true;
            }
            loop_.post([] {});   // so that the next turn does not wait
            return false;
        });
    }

    /* Runs the loop until the connection closed, or LIMIT passed; how
     * long that took. */
    std::chrono::milliseconds run_until_closed(std::chrono::milliseconds limit) {
        const auto start = std::chrono::steady_clock::now();
        Timer stop(loop_, [] {});
        stop.arm(start + limit);
        loop_.run_until([&] {
            observe();
            return closed_ || std::chrono::steady_clock::now() >= start + limit;
        });
        settle();
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    }

    void run_for(std::chrono::milliseconds time) {
        const auto end = std::chrono::steady_clock::now() + time;
        Timer stop(loop_, [] {});
        stop.arm(end);
        loop_.run_until([&] {
            observe();
            return std::chrono::steady_clock::now() >= end;
        });
    }

    void reading(bool on) { reading_ = on; }
    const std::string& output() {
        drain();
        return output_;
    }
    bool closed() const { return closed_; }
    const std::string& faults() const { return faults_; }
    bool gone() const { return !connection_; }
    void hang_up() {
        ::close(mta_fd_);
        mta_fd_ = -1;
    }
    /* Reads and drops at most BYTES of what the connection wrote (with
     * reading(false), an MTA reading slowly); how much. */
    size_t discard_some(size_t bytes) {
        std::vector<char> chunk(bytes);
        const ssize_t got = mta_fd_ < 0 ? -1 : ::recv(mta_fd_, chunk.data(), chunk.size(), 0);
        return got > 0 ? static_cast<size_t>(got) : 0;
    }
    void small_socket() {
        const int bytes = 4096;   // the kernel's least, about
        setsockopt(connection_fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    /* Bytes written to the connection that it has not read yet. */
    int unread() const {
        int count = 0;
        if (connection_ && ioctl(connection_fd_, FIONREAD, &count) != 0) count = -1;
        return count;
    }

private:
    struct Observation {
        int unread = 0;
        size_t output = 0;
        int unread_output = 0;
        bool closed = false;
        bool operator==(const Observation&) const = default;
    };

    Observation observe() {
        if (reading_) drain();
        int waiting_output = 0;
        if (mta_fd_ >= 0) ioctl(mta_fd_, FIONREAD, &waiting_output);
        return {unread(), output_.size(), waiting_output, closed_};
    }

    void drain() {
        if (mta_fd_ < 0) return;
        char chunk[16384];
        ssize_t got;
        while ((got = ::recv(mta_fd_, chunk, sizeof chunk, 0)) > 0) output_.append(chunk, static_cast<size_t>(got));
    }

    EventLoop& loop_;
    milter::EngineSettings settings_;
    std::vector<char> buffer_;
    int connection_fd_ = -1;
    int mta_fd_ = -1;
    std::unique_ptr<milter::Connection> connection_;
    bool closed_ = false;
    bool reading_ = true;
    std::string output_;
    std::string faults_;
};

}  // namespace portcullis::test_support
