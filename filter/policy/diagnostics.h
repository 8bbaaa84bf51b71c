/*
 * diagnostics.h: collecting the errors of one policy load.
 *
 * The lexer, the parser and the loader all report to one ErrorSink.  It
 * keeps the first kMaxReportedErrors and says when it is full, so that a
 * hopeless file (a binary, a wrong path) costs bounded time and output.
 */
#pragma once

#include <string>
#include <vector>

#include "policy/loader.h"

namespace portcullis::policy {

class ErrorSink {
public:
    /* Record MESSAGE at WHERE, unless the sink is full. */
    void report(SourceLocation where, std::string message);
    bool full() const { return errors_.size() >= kMaxReportedErrors; }
    bool empty() const { return errors_.empty(); }
    std::vector<Diagnostic> take() { return std::move(errors_); }

private:
    std::vector<Diagnostic> errors_;
};

}  // namespace portcullis::policy
