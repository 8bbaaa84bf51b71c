/*
 * service_notify_test.cc: the datagrams systemd reads from
 * $NOTIFY_SOCKET, on a socket bound here as systemd binds its own: at a
 * path and at an abstract name; and the names that cannot be one; and
 * the watchdog interval systemd asks for.
 */
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "daemon/service_notify.h"

namespace portcullis::daemon {
namespace {

/* NOTIFY_SOCKET set for one test, and unset after it. */
class NotifySocketVariable {
public:
    explicit NotifySocketVariable(const std::string& value) { setenv("NOTIFY_SOCKET", value.c_str(), 1); }
    ~NotifySocketVariable() { unsetenv("NOTIFY_SOCKET"); }
};

/* A datagram socket bound at NAME ("@..." abstract), as systemd's. */
class Listener {
public:
    explicit Listener(const std::string& name) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::memcpy(address.sun_path, name.data(), name.size());
        if (name.front() == '@') address.sun_path[0] = '\0';
        const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
        bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), length) == 0;
    }
    ~Listener() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool bound() const { return bound_; }

    /* The next datagram, or "(none)" when none is waiting. */
    std::string next() const {
        char buffer[512];
        const ssize_t got = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        return got < 0 ? "(none)" : std::string(buffer, static_cast<size_t>(got));
    }

private:
    int fd_ = -1;
    bool bound_ = false;
};

std::string scratch_path(const std::string& leaf) {
    return (std::filesystem::temp_directory_path() / (leaf + "." + std::to_string(getpid()))).string();
}

/* The watchdog variables set for one test, and unset after it. */
class WatchdogVariables {
public:
    WatchdogVariables(const char* usec, const std::string& pid) {
        setenv("WATCHDOG_USEC", usec, 1);
        if (!pid.empty()) setenv("WATCHDOG_PID", pid.c_str(), 1);
    }
    ~WatchdogVariables() {
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
    }
};

TEST(Watchdog, TheIntervalSystemdSetsForThisProcess) {
    {
        WatchdogVariables variables("20000000", "");
        EXPECT_EQ(watchdog_interval(), std::chrono::seconds(20));
    }
    {
        WatchdogVariables variables("3000000", std::to_string(getpid()));
        EXPECT_EQ(watchdog_interval(), std::chrono::seconds(3));
    }
    EXPECT_EQ(watchdog_interval(), std::nullopt);
}

TEST(Watchdog, NoneForAnotherProcessOrAValueThatIsNotOne) {
    {
        WatchdogVariables variables("20000000", std::to_string(getpid() + 1));
        EXPECT_EQ(watchdog_interval(), std::nullopt);
    }
    for (const char* usec : {"", "0", "-5", "20s", "99999999999999999999999"}) {
        WatchdogVariables variables(usec, "");
        EXPECT_EQ(watchdog_interval(), std::nullopt) << usec;
    }
    WatchdogVariables variables("20000000", "x");
    EXPECT_EQ(watchdog_interval(), std::nullopt);
}

TEST(ServiceNotify, WithoutTheVariableNothingIsSent) {
    unsetenv("NOTIFY_SOCKET");
    EXPECT_TRUE(notify_service_manager("READY=1"));
}

TEST(ServiceNotify, AStateReachesASocketAtAPath) {
    const std::string path = scratch_path("portcullis-notify");
    std::filesystem::remove(path);
    Listener systemd(path);
    ASSERT_TRUE(systemd.bound()) << path;
    NotifySocketVariable variable(path);
    EXPECT_TRUE(notify_service_manager("READY=1\nSTATUS=running"));
    EXPECT_TRUE(notify_service_manager("STOPPING=1"));
    EXPECT_EQ(systemd.next(), "READY=1\nSTATUS=running");
    EXPECT_EQ(systemd.next(), "STOPPING=1");
    EXPECT_EQ(systemd.next(), "(none)");
    std::filesystem::remove(path);
}

TEST(ServiceNotify, AStateReachesAnAbstractName) {
    const std::string name = "@portcullis-notify-test." + std::to_string(getpid());
    Listener systemd(name);
    ASSERT_TRUE(systemd.bound()) << name;
    NotifySocketVariable variable(name);
    EXPECT_TRUE(notify_service_manager("RELOADING=1"));
    EXPECT_EQ(systemd.next(), "RELOADING=1");
}

TEST(ServiceNotify, NamesThatAreNoSocketAreRefusedWithoutHarm) {
    for (const std::string& name : {std::string("run/notify"), std::string("notify"), "/" + std::string(200, 'n')}) {
        NotifySocketVariable variable(name);
        EXPECT_FALSE(notify_service_manager("READY=1")) << name;
    }
}

TEST(ServiceNotify, NoListenerIsAFailureNotACrash) {
    const std::string path = scratch_path("portcullis-notify-nobody");
    std::filesystem::remove(path);
    NotifySocketVariable variable(path);
    EXPECT_FALSE(notify_service_manager("READY=1"));
}

}  // namespace
}  // namespace portcullis::daemon
