/*
 * loading.h: turning a config path and -o overrides into a runnable
 * state: the Config and a Snapshot of the policy it names.
 *
 * load_state() collects every error, config and policy alike, as the
 * lines `check` prints and a refused reload logs.  The config file is
 * required when -c named it; the built-in default path may be absent.
 * It also warns of what loads but cannot work as written: a DNS list in a
 * zone libunbound answers itself (dns/local_zones.h), which is never
 * consulted.  `check` prints the warnings; start and reload log them.
 * Store settings this build cannot serve (store_settings_error()) are
 * config errors too, so every command refuses them alike.
 */
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "milter/snapshot.h"

namespace portcullis::daemon {

struct ConfigSource {
    std::string path = "/etc/portcullis/portcullis.conf";
    bool path_given = false;
    std::vector<std::string> overrides;
};

struct State {
    config::Config config;
    std::shared_ptr<const milter::Snapshot> snapshot;
    int64_t loaded_at_ms = 0;   // when load_state() read it, ms since the epoch
};

/* "FILE: N rules, N lists, N maps, N files": what a loaded policy holds. */
std::string policy_summary(const State& state);

struct LoadWarning {
    std::string where;     // "FILE:LINE:COL"
    std::string message;
    std::string str() const { return where + ": warning: " + message; }   // as `check` prints it
};

struct LoadOutcome {
    std::optional<State> state;
    std::vector<std::string> errors;     // "FILE:LINE:COL: error: ..."
    std::vector<LoadWarning> warnings;   // with a state only
};

LoadOutcome load_state(const ConfigSource& source);

/* Each warning as a log line: "warning: FILE:LINE:COL: ...". */
void log_warnings(const std::vector<LoadWarning>& warnings);

/* "" when the store CONFIG names is one this build can open, else the
 * error as a config error reads, at the place the key to blame was set:
 * "-o store.mode=cluster: error: store.mode: ...". */
std::string store_settings_error(const config::Config& config);

/* Log level and target as the config says; FOREGROUND forces stderr. */
void apply_log_settings(const config::Config& config, bool foreground);

}  // namespace portcullis::daemon
