/*
 * loader.h: reading a policy file, its includes, lists and maps.
 *
 * load_policy() parses the file at PATH and everything it names, checks
 * it against the field registry, and returns either a Policy or every
 * error found (up to 50), each with its FILE:LINE:COL.  parse_policy()
 * does the same for text already in memory, with relative paths resolved
 * against BASE_DIR; the tests use it.
 */
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"

namespace portcullis::policy {

struct Diagnostic {
    SourceLocation where;     // file may be null for errors with no place (unreadable main file)
    std::string message;      // "unknown field 'client.hots' (did you mean 'client.host'?)"
    std::string str() const;  // "path:line:col: error: message"
};

struct LoadResult {
    std::shared_ptr<const Policy> policy;   // null when there are errors
    std::vector<Diagnostic> errors;
    bool ok() const { return policy != nullptr; }
};

inline constexpr size_t kMaxReportedErrors = 50;

LoadResult load_policy(const std::string& path);
LoadResult parse_policy(std::string_view text, const std::string& name, const std::string& base_dir);

}  // namespace portcullis::policy
