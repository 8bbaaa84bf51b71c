/*
 * log_test.cc: what a log line on stderr shows of the text it is given:
 * control bytes escaped, the length bounded, the rest unchanged; and
 * that a syslog socket or a stderr pipe nobody reads drops lines instead
 * of stopping the thread that logs.
 */
#include "util/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace portcullis {
namespace {

/* The lines log::info(TEXT) writes on stderr. */
std::string logged(std::string_view text) {
    std::FILE* capture = std::tmpfile();
    EXPECT_NE(capture, nullptr);
    const int saved = dup(STDERR_FILENO);
    dup2(fileno(capture), STDERR_FILENO);
    log::log_to_stderr(log::Level::info);
    log::info(text);
    dup2(saved, STDERR_FILENO);
    close(saved);
    std::rewind(capture);
    std::string lines;
    char buffer[4096];
    while (const size_t got = std::fread(buffer, 1, sizeof buffer, capture)) lines.append(buffer, got);
    std::fclose(capture);
    return lines;
}

/* What follows "portcullis[PID]: " on the one line written. */
std::string text_of(const std::string& lines) {
    const size_t start = lines.find("]: ");
    EXPECT_NE(start, std::string::npos) << lines;
    EXPECT_EQ(lines.back(), '\n');
    EXPECT_EQ(lines.find('\n'), lines.size() - 1) << "more than one line: " << lines;
    return lines.substr(start + 3, lines.size() - start - 4);
}

TEST(LogLine, PlainTextIsUnchanged) {
    EXPECT_EQ(text_of(logged("4A2B1: dkim: d=example.com s=sel result=pass")),
              "4A2B1: dkim: d=example.com s=sel result=pass");
}

TEST(LogLine, ControlBytesAreShownAsHexNotWritten) {
    EXPECT_EQ(text_of(logged(std::string("From domain 'a\x1b[2Jb\rc\nd\te\x7f\x01' is not a host name"))),
              "From domain 'a\\x1b[2Jb\\x0dc\\x0ad\\x09e\\x7f\\x01' is not a host name");
}

TEST(LogLine, BytesOverAsciiAreKept) {
    EXPECT_EQ(text_of(logged("caf\xc3\xa9")), "caf\xc3\xa9");
}

TEST(LogLine, LongTextIsCutSayingHowMuch) {
    const std::string text = text_of(logged(std::string(20000, 'x')));
    EXPECT_EQ(text, std::string(8000, 'x') + "... (12000 bytes more)");
}

/* All that can be read from FD now (it must be non-blocking). */
std::string drain(int fd) {
    std::string got;
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) got.append(buffer, static_cast<size_t>(n));
    return got;
}

/* A fresh path in the temporary directory, PREFIX and this process's id. */
std::string syslog_path(const std::string& prefix) {
    const std::string path = (std::filesystem::temp_directory_path() / (prefix + std::to_string(getpid()))).string();
    std::filesystem::remove(path);
    return path;
}

/* A syslog daemon's datagram socket at PATH that reads nothing until
 * asked (non-blocking); -1 if it cannot be bound. */
int bound_syslog_socket(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) return fd;
    close(fd);
    return -1;
}

TEST(LogStalledReader, LinesAreDroppedNotWaitedForAndTheDropIsSaid) {
    int pipe_fds[2];
    ASSERT_EQ(pipe2(pipe_fds, O_NONBLOCK), 0);
    const int saved = dup(STDERR_FILENO);
    const int saved_flags = fcntl(STDERR_FILENO, F_GETFL);
    dup2(pipe_fds[1], STDERR_FILENO);
    // A pipe's flags belong to its open file, shared with pipe_fds[1]:
    // the writer starts blocking, as journald's stream or a shell's pipe do.
    fcntl(pipe_fds[1], F_SETFL, 0);
    log::log_to_stderr(log::Level::info);
    // 2000 lines of 1000 bytes: twice what the pipe holds, made 1 MB.
    auto writer = std::async(std::launch::async, [] {
        for (int i = 0; i < 2000; ++i) log::info(std::string(1000, 'x'));
    });
    const bool finished = writer.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    std::string lines = drain(pipe_fds[0]);
    while (writer.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) lines += drain(pipe_fds[0]);
    log::info("after the stall");
    lines += drain(pipe_fds[0]);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    log::log_to_stderr(log::Level::info);
    fcntl(STDERR_FILENO, F_SETFL, saved_flags);   // the test runner's stderr as it was

    ASSERT_TRUE(finished) << "log::info waited for a reader that did not read";
    EXPECT_LT(lines.size(), 2000u * 1000u);
    EXPECT_NE(lines.find("]: warning: log: "), std::string::npos) << lines.substr(lines.size() - 300);
    EXPECT_NE(lines.find(" lines dropped: the log's reader did not keep up\n"), std::string::npos);
    const size_t last = lines.rfind("]: after the stall\n");
    ASSERT_NE(last, std::string::npos);
    EXPECT_EQ(last + 19, lines.size());
    // Every line whole: each one starts with the tag, none is cut short.
    size_t start = 0;
    while (start < lines.size()) {
        EXPECT_EQ(lines.compare(start, 11, "portcullis["), 0) << "at " << start;
        const size_t end = lines.find('\n', start);
        ASSERT_NE(end, std::string::npos);
        start = end + 1;
    }
}

TEST(LogStalledReader, SyslogLinesAreDroppedNotWaitedForAndTheDropIsSaid) {
    const std::string path = syslog_path("portcullis-syslog.");
    const int syslogd = bound_syslog_socket(path);
    ASSERT_GE(syslogd, 0) << path;
    log::log_to_syslog(log::Level::info, "mail", path);
    // A datagram socket holds net.unix.max_dgram_qlen datagrams (10 to 512).
    auto writer = std::async(std::launch::async, [] {
        for (int i = 0; i < 2000; ++i) log::info("line " + std::to_string(i));
    });
    const bool finished = writer.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    std::vector<std::string> datagrams;
    const auto read_all = [&] {
        char buffer[9000];
        ssize_t n;
        while ((n = recv(syslogd, buffer, sizeof buffer, 0)) >= 0) datagrams.emplace_back(buffer, static_cast<size_t>(n));
    };
    read_all();
    while (writer.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) read_all();
    log::warning("after the stall");
    read_all();
    const int saved_flags = fcntl(STDERR_FILENO, F_GETFL);
    log::log_to_stderr(log::Level::info);
    fcntl(STDERR_FILENO, F_SETFL, saved_flags);   // the test runner's stderr as it was
    close(syslogd);
    std::filesystem::remove(path);

    ASSERT_TRUE(finished) << "log::info waited for a syslog daemon that did not read";
    ASSERT_GE(datagrams.size(), 3u);
    EXPECT_LT(datagrams.size(), 2000u);
    const std::string tag = " portcullis[" + std::to_string(getpid()) + "]: ";
    EXPECT_EQ(datagrams.front().substr(0, 4), "<22>") << datagrams.front();   // mail.info
    EXPECT_NE(datagrams.front().find(tag + "line 0"), std::string::npos) << datagrams.front();
    const std::string& notice = datagrams[datagrams.size() - 2];
    EXPECT_EQ(notice.substr(0, 4), "<20>") << notice;   // mail.warning
    EXPECT_NE(notice.find(tag + "warning: log: "), std::string::npos) << notice;
    EXPECT_NE(notice.find(" lines dropped: the log's reader did not keep up"), std::string::npos) << notice;
    EXPECT_NE(datagrams.back().find(tag + "warning: after the stall"), std::string::npos) << datagrams.back();
}

TEST(LogStalledReader, AReaderBehindForAMomentLosesNoLine) {
    const std::string path = syslog_path("portcullis-syslog-burst.");
    const int syslogd = bound_syslog_socket(path);
    ASSERT_GE(syslogd, 0) << path;
    log::log_to_syslog(log::Level::info, "mail", path);
    // The reader takes what waits every 2 ms: the writer's burst fills the
    // socket's queue again and again, and is let through each time.
    std::atomic<bool> writing{true};
    size_t received = 0;
    std::string dropped;
    std::thread reader([&] {
        char buffer[9000];
        while (true) {
            const bool last_round = !writing.load();
            ssize_t n;
            while ((n = recv(syslogd, buffer, sizeof buffer, 0)) >= 0) {
                ++received;
                const std::string_view datagram(buffer, static_cast<size_t>(n));
                if (datagram.find("lines dropped") != std::string_view::npos) dropped = datagram;
            }
            if (last_round) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    for (int i = 0; i < 2000; ++i) log::info("line " + std::to_string(i));
    writing = false;
    reader.join();
    const int saved_flags = fcntl(STDERR_FILENO, F_GETFL);
    log::log_to_stderr(log::Level::info);
    fcntl(STDERR_FILENO, F_SETFL, saved_flags);
    close(syslogd);
    std::filesystem::remove(path);

    EXPECT_EQ(received, 2000u);
    EXPECT_EQ(dropped, "");
}

}  // namespace
}  // namespace portcullis
