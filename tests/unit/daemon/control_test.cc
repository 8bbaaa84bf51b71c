/*
 * control_test.cc: the control socket's server and client (control.h):
 * a socket left at the path, a second daemon on a path in use, clients
 * that do not take their reply, the end of the service, and a daemon not
 * started as root.
 */
#include "daemon/control.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "support/temp_dir.h"

namespace portcullis::daemon {
namespace {

using test_support::TempDir;

constexpr size_t kBigReply = 16 * 1024 * 1024;   // far over what a socket's buffers hold

/* "big" is answered with kBigReply bytes, anything else with its name. */
ControlReply answer(const ControlRequest& request) {
    if (request.command == "big") return {0, std::string(kBigReply, 'x')};
    return {0, request.command + "\n"};
}

config::Config config_for(const std::string& socket) {
    config::Config config;
    config.control.socket = socket;
    return config;
}

/* A connection to PATH that has sent TEXT; -1 when none. */
int connect_and_send(const std::string& path, const std::string& text) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
        ::close(fd);
        return -1;
    }
    return fd;
}

class ControlServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(server_.open(path_, ""), "");
        server_.start(answer);
    }

    TempDir dir_;
    const std::string path_ = dir_.path("control");
    ControlServer server_;
};

TEST_F(ControlServerTest, AnswersARequest) {
    const auto reply = ask_daemon(config_for(path_), ControlRequest{"status", {}});
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->exit_code, 0);
    EXPECT_EQ(reply->text, "status\n");
}

TEST_F(ControlServerTest, ASecondServerLeavesASocketInUseAlone) {
    {
        ControlServer second;
        EXPECT_EQ(second.open(path_, ""),
                  "control.socket: '" + path_ + "' answers: is another portcullis running with it?");
    }
    const auto reply = ask_daemon(config_for(path_), ControlRequest{"status", {}});
    ASSERT_TRUE(reply) << "the first server's socket was taken";
    EXPECT_EQ(reply->text, "status\n");
}

TEST_F(ControlServerTest, AClientThatDoesNotReadItsReplyHoldsUpNoOther) {
    const int idle = connect_and_send(path_, "big\n\n");
    ASSERT_GE(idle, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));   // its request is served first
    const auto started = std::chrono::steady_clock::now();
    const auto reply = ask_daemon(config_for(path_), ControlRequest{"status", {}});
    const auto took = std::chrono::steady_clock::now() - started;
    ::close(idle);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->text, "status\n");
    EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(ControlServerTest, AClientThatStopsSendingGetsItsWholeReply) {
    const int fd = connect_and_send(path_, "big\n\n");
    ASSERT_GE(fd, 0);
    ::shutdown(fd, SHUT_WR);
    std::string got;
    char buffer[65536];
    for (ssize_t count; (count = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) got.append(buffer, count);
    ::close(fd);
    EXPECT_EQ(got.size(), std::strlen("EXIT 0\n") + kBigReply);
}

TEST_F(ControlServerTest, OneRequestTooManyIsToldTheDaemonIsBusy) {
    std::vector<int> waiting;
    for (size_t i = 0; i < kMaxClients; ++i) waiting.push_back(connect_and_send(path_, "sta"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));   // all accepted
    const auto reply = ask_daemon(config_for(path_), ControlRequest{"status", {}});
    for (const int fd : waiting) ::close(fd);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->exit_code, 3);
    EXPECT_EQ(reply->text, "the daemon is busy with 16 requests; try again\n");
}

TEST_F(ControlServerTest, StopEndsTheServiceAndRemovesTheSocket) {
    server_.stop();
    EXPECT_FALSE(ask_daemon(config_for(path_), ControlRequest{"status", {}}));
    EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST(ControlServer, ReplacesASocketNobodyListensOn) {
    const TempDir dir;
    const std::string path = dir.path("control");
    {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
        ::close(fd);   // a daemon that died without removing it
    }
    ControlServer server;
    EXPECT_EQ(server.open(path, ""), "");
}

TEST(ControlServer, WithoutRootMilterUserIsNotLookedUp) {
    // As drop_privileges() does, a daemon not started as root stays its own
    // user: a milter.user that does not exist must not cost its socket.
    if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
    const TempDir dir;
    std::filesystem::permissions(dir.path(""), std::filesystem::perms::all);
    const std::string path = dir.path("control");
    const pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
        ControlServer server;
        _exit(server.open(path, "no-such-user-here").empty() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ControlServer, RefusesASymlinkOrAFileAtThePath) {
    const TempDir dir;
    const std::string target = dir.write("precious", "data");
    const std::string link = dir.path("control");
    std::filesystem::create_symlink(target, link);
    ControlServer server;
    EXPECT_EQ(server.open(link, ""), "control.socket: '" + link + "' exists and is not a socket");
    EXPECT_TRUE(std::filesystem::is_symlink(link));
}

}  // namespace
}  // namespace portcullis::daemon
