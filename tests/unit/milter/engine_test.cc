/*
 * engine_test.cc: what the engines share about milter.socket: the path of
 * a unix socket, and the room made to bind it, which never takes a
 * running daemon's socket and never removes a file that is no socket.
 */
#include "milter/engine.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include "support/temp_dir.h"
#include "util/files.h"

namespace portcullis::milter {
namespace {

using test_support::TempDir;

/* A socket bound at PATH, listening when LISTEN; its descriptor. */
int bound_socket(const std::string& path, bool listen) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un address = unix_address(path);
    EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    if (listen) {
        EXPECT_EQ(::listen(fd, 4), 0);
    }
    return fd;
}

bool connects(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un address = unix_address(path);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

TEST(UnixSocketPath, IsThePathOfUnixAndLocalSocketsOnly) {
    EXPECT_EQ(unix_socket_path("unix:/run/portcullis/milter.sock"), "/run/portcullis/milter.sock");
    EXPECT_EQ(unix_socket_path("LOCAL:/tmp/m"), "/tmp/m");
    EXPECT_EQ(unix_socket_path("/tmp/m"), "/tmp/m");
    EXPECT_EQ(unix_socket_path("inet:8891@127.0.0.1"), "");
    EXPECT_EQ(unix_socket_path("inet6:8891@[::1]"), "");
}

TEST(MakeRoomFor, LeavesASocketARunningDaemonListensOnAlone) {
    const TempDir dir;
    const std::string path = dir.path("milter.sock");
    const int running = bound_socket(path, true);
    EXPECT_EQ(make_room_for("unix:" + path),
              "milter.socket: '" + path + "' answers: is another portcullis running with it?");
    EXPECT_TRUE(connects(path)) << "the running daemon's socket was taken";
    ::close(running);
}

TEST(MakeRoomFor, RemovesASocketNobodyListensOn) {
    const TempDir dir;
    const std::string path = dir.path("milter.sock");
    ::close(bound_socket(path, false));   // a daemon that died: the file stays
    ASSERT_TRUE(std::filesystem::is_socket(path));
    EXPECT_EQ(make_room_for("local:" + path), "");
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(MakeRoomFor, NeverRemovesAFileOrASymlink) {
    const TempDir dir;
    const std::string file = dir.write("precious", "data");
    const std::string link = dir.path("link");
    std::filesystem::create_symlink(file, link);
    EXPECT_EQ(make_room_for("unix:" + file), "milter.socket: '" + file + "' exists and is not a socket");
    EXPECT_EQ(make_room_for("unix:" + link), "milter.socket: '" + link + "' exists and is not a socket");
    EXPECT_TRUE(std::filesystem::is_symlink(link));
    EXPECT_EQ(make_room_for("inet:8891@127.0.0.1"), "");
    EXPECT_EQ(make_room_for("unix:" + dir.path("nothing-there")), "");
}

TEST(NativeEngine, ASecondEngineDoesNotTakeTheFirstOnesSocket) {
    const TempDir dir;
    const std::string socket = "unix:" + dir.path("milter.sock");
    EngineSettings settings;
    settings.socket = socket;
    auto first = make_engine(config::MilterEngine::native);
    ASSERT_EQ(first->open(settings), "");
    {
        auto second = make_engine(config::MilterEngine::native);
        EXPECT_NE(second->open(settings).find("answers: is another portcullis running"), std::string::npos);
    }
    EXPECT_TRUE(connects(dir.path("milter.sock"))) << "the first engine's socket was taken";
}

}  // namespace
}  // namespace portcullis::milter
