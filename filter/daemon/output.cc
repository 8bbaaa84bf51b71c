/*
 * output.cc: printf-style text to the terminal or into a string.
 */
#include "daemon/output.h"

#include <cstdarg>
#include <cstdio>
#include <vector>

namespace portcullis::daemon {

namespace {

std::string formatted(const char* format, va_list arguments) {
    va_list again;
    va_copy(again, arguments);
    const int length = std::vsnprintf(nullptr, 0, format, again);
    va_end(again);
    if (length <= 0) return "";
    std::vector<char> buffer(static_cast<size_t>(length) + 1);
    std::vsnprintf(buffer.data(), buffer.size(), format, arguments);
    return std::string(buffer.data(), static_cast<size_t>(length));
}

}  // namespace

void Output::out(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    write(false, formatted(format, arguments));
    va_end(arguments);
}

void Output::err(const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    write(true, formatted(format, arguments));
    va_end(arguments);
}

void TerminalOutput::write(bool error, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), error ? stderr : stdout);
}

void TextOutput::write(bool, std::string_view text) { text_ += text; }

}  // namespace portcullis::daemon
