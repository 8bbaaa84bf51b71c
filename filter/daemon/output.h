/*
 * output.h: where a command's text goes: the terminal, or the reply to a
 * request on the control socket.
 *
 * The admin commands (`greylist`, `ratelimit`, `reload`, `status`) write
 * through an Output, so the command line and the running daemon run the
 * same code.  out() is the command's result, err() what went wrong;
 * both take printf formats.  TerminalOutput writes them to stdout and
 * stderr; TextOutput keeps both, in order, as one text.
 */
#pragma once

#include <string>
#include <string_view>

namespace portcullis::daemon {

class Output {
public:
    virtual ~Output() = default;
    void out(const char* format, ...) __attribute__((format(printf, 2, 3)));
    void err(const char* format, ...) __attribute__((format(printf, 2, 3)));

protected:
    virtual void write(bool error, std::string_view text) = 0;
};

class TerminalOutput final : public Output {
protected:
    void write(bool error, std::string_view text) override;
};

class TextOutput final : public Output {
public:
    const std::string& text() const { return text_; }

protected:
    void write(bool error, std::string_view text) override;

private:
    std::string text_;
};

}  // namespace portcullis::daemon
