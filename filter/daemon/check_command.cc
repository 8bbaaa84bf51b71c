/*
 * check_command.cc: `portcullis check`, what an administrator runs before
 * a reload.  Every error and warning goes to stderr; a one-line summary
 * to stdout.  Warnings alone do not fail the check.
 */
#include <cstdio>

#include "daemon/checks.h"
#include "daemon/commands.h"

namespace portcullis::daemon {

int check_command(const ConfigSource& source) {
    auto outcome = load_state(source);
    if (outcome.state) {
        // The checks as the daemon would set them up, without a store.
        if (const auto error = attach_checks(*outcome.state, {nullptr, true}); !error.empty()) {
            outcome.errors.push_back(error);
        }
        if (!outcome.errors.empty()) outcome.state.reset();
    }
    for (const auto& error : outcome.errors) std::fprintf(stderr, "%s\n", error.c_str());
    for (const auto& warning : outcome.warnings) std::fprintf(stderr, "%s\n", warning.str().c_str());
    if (!outcome.state) {
        std::fprintf(stderr, "portcullis check: %zu error%s\n", outcome.errors.size(),
                     outcome.errors.size() == 1 ? "" : "s");
        return kExitBadConfig;
    }
    std::printf("portcullis check: ok: %s\n", policy_summary(*outcome.state).c_str());
    return kExitOk;
}

}  // namespace portcullis::daemon
