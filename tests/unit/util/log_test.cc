/*
 * log_test.cc: what a log line on stderr shows of the text it is given:
 * control bytes escaped, the length bounded, the rest unchanged.
 */
#include "util/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

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

}  // namespace
}  // namespace portcullis
