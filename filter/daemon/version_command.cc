/*
 * version_command.cc: `portcullis version`: ours and the linked libraries'.
 */
#include <toml++/toml.h>

#include <CLI/Version.hpp>
#include <cstdio>

#include "daemon/commands.h"
#include "milter/engine.h"

namespace portcullis::daemon {

int version_command() {
    std::printf("portcullis %s\n", PORTCULLIS_VERSION);
    std::printf("%s\n", milter::libmilter_version().c_str());
    std::printf("toml++ %d.%d.%d\n", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
    std::printf("CLI11 %s\n", CLI11_VERSION);
    return kExitOk;
}

}  // namespace portcullis::daemon
