/*
 * config_fuzz.cc: the fuzz target for the TOML configuration.
 *
 * Each input is tried twice: as the whole configuration file, written to
 * a file in a directory made once per process (so relative paths in it
 * resolve there), and, with no file, as a single -o KEY=VALUE override.
 * Errors are expected; what must hold is that load_config() returns,
 * throws nothing, gives either a configuration or the reasons it has
 * none, and that a configuration it gives keeps the promises of
 * config.cc: every timeout above zero, a policy file, a resolver.
 */
#include <string>

#include "config/config.h"
#include "fuzz_target.h"
#include "scratch_directory.h"

namespace portcullis::fuzz {
namespace {

using portcullis::config::ConfigResult;

/* The configuration file's directory, made at the first input;
 * "absent.conf" in it never exists. */
const ScratchDirectory& directory() {
    static const ScratchDirectory made("portcullis-config-fuzz");
    return made;
}

std::string file_path() { return (directory().path() / "portcullis.conf").string(); }
std::string absent_path() { return (directory().path() / "absent.conf").string(); }

void check(const ConfigResult& result) {
    fuzz_require(result.config.has_value() == result.errors.empty(), "a configuration, or the errors");
    for (const auto& error : result.errors) {
        fuzz_require(!error.where.empty() && !error.message.empty(), "each error says where and what");
    }
    if (!result.config) return;
    const auto& config = *result.config;
    fuzz_require(config.milter.timeout.count() > 0 && config.store.timeout.count() > 0 &&
                     config.dns.timeout.count() > 0,
                 "timeouts are above zero");
    fuzz_require(!config.policy.file.empty(), "there is a policy file");
    fuzz_require(!config.dns.resolver.empty(), "there is a resolver");
}

void as_file(std::string_view text) {
    directory().write("portcullis.conf", text);
    check(config::load_config(file_path(), true, {}));
}

void as_override(std::string_view text) { check(config::load_config(absent_path(), false, {std::string(text)})); }

}  // namespace
}  // namespace portcullis::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    portcullis::fuzz::as_file(text);
    portcullis::fuzz::as_override(text);
    return 0;
}
