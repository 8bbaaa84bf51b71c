/*
 * diagnostics.cc: the error sink, and how an error is written.
 */
#include "policy/diagnostics.h"

namespace portcullis::policy {

std::string Diagnostic::str() const {
    if (!where.file) return "error: " + message;
    return where.str() + ": error: " + message;
}

void ErrorSink::report(SourceLocation where, std::string message) {
    if (!full()) errors_.push_back({std::move(where), std::move(message)});
}

}  // namespace portcullis::policy
