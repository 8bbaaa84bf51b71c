/*
 * loading.cc: config, then the store settings and the policy, then the
 * snapshot.
 */
#include "daemon/loading.h"

#include "policy/loader.h"
#include "store/store.h"
#include "util/log.h"

namespace portcullis::daemon {

namespace {

log::Level to_log_level(config::LogLevel level) {
    switch (level) {
        case config::LogLevel::error: return log::Level::error;
        case config::LogLevel::warning: return log::Level::warning;
        case config::LogLevel::info: return log::Level::info;
        case config::LogLevel::debug: return log::Level::debug;
    }
    return log::Level::info;
}

}  // namespace

LoadOutcome load_state(const ConfigSource& source) {
    LoadOutcome outcome;
    auto loaded = config::load_config(source.path, source.path_given, source.overrides);
    for (const auto& error : loaded.errors) outcome.errors.push_back(error.str());
    if (!loaded.config) return outcome;

    if (auto error = store_settings_error(*loaded.config); !error.empty()) outcome.errors.push_back(std::move(error));
    const auto policy = policy::load_policy(loaded.config->policy.file);
    for (const auto& error : policy.errors) outcome.errors.push_back(error.str());
    if (!outcome.errors.empty()) return outcome;

    const bool monitor_all = loaded.config->policy.mode == config::PolicyMode::monitor;
    outcome.state = State{*loaded.config, milter::make_snapshot(policy.policy, monitor_all)};
    return outcome;
}

std::string store_settings_error(const config::Config& config) {
    try {
        store::check_store_settings(config.store);
        return "";
    } catch (const store::StoreSettingsError& error) {
        return config::ConfigError{config.origins.of(error.key()), error.what()}.str();
    }
}

void apply_log_settings(const config::Config& config, bool foreground) {
    const auto level = to_log_level(config.log.level);
    if (foreground || config.log.target == config::LogTarget::stderr_stream) {
        log::log_to_stderr(level);
    } else {
        log::log_to_syslog(level, config.log.facility);
    }
}

}  // namespace portcullis::daemon
