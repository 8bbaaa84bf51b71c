/*
 * version_command.cc: `portcullis version`: ours, and each library's as
 * the library itself reports it (or, for those that report none, the
 * Debian package this build was made against).
 */
#include <toml++/toml.h>

#include <CLI/Version.hpp>
#include <cstdio>

#include "checks/dkim.h"
#include "checks/spf.h"
#include "daemon/commands.h"
#include "dns/resolver.h"
#include "milter/engine.h"
#include "store/resp.h"
#include "util/digest.h"

namespace portcullis::daemon {

int version_command() {
    std::printf("portcullis %s\n", PORTCULLIS_VERSION);
    for (const std::string& line : {milter::libmilter_version(), spf::library_version(), dkim::library_version(),
                                    dns::library_version(), store::hiredis_version(), openssl_version()}) {
        std::printf("%s\n", line.c_str());
    }
    std::printf("toml++ %d.%d.%d\n", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
    std::printf("CLI11 %s\n", CLI11_VERSION);
    // These report no version of their own.
    std::printf("%s\n", PORTCULLIS_BUILT_WITH);
    return kExitOk;
}

}  // namespace portcullis::daemon
