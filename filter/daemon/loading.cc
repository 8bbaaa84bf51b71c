/*
 * loading.cc: config, then the store settings and the policy, then the
 * snapshot.
 */
#include "daemon/loading.h"

#include <chrono>

#include "dns/local_zones.h"
#include "policy/loader.h"
#include "store/store.h"
#include "util/log.h"
#include "util/text.h"

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

/* A warning for each DNS list in a zone libunbound answers itself:
 * whatever the list publishes, the rules never see it. */
std::vector<LoadWarning> unconsulted_dns_lists(const policy::PolicyNeeds& needs) {
    std::vector<LoadWarning> warnings;
    for (const auto& use : needs.dns_lists) {
        const dns::LocalZone* zone = dns::local_zone_of(use.zone);
        if (!zone) continue;
        warnings.push_back({use.where.str(), "DNS list " + in_quotes(use.zone) +
                                                 " is never consulted: libunbound answers every name under " +
                                                 in_quotes(zone->name) + " itself (" + std::string(zone->reason) +
                                                 ") with " + std::string(zone->answer) +
                                                 ", whatever dns.resolver names"});
    }
    return warnings;
}

/* ERROR of the policy load as printed.  One with no place in a rules file
 * (the file policy.file names cannot be read) is said at that key, where
 * it was set, as a config error is. */
std::string policy_error(const config::Config& config, const policy::Diagnostic& error) {
    if (error.where.file) return error.str();
    return config::ConfigError{config.origins.of("policy.file"), "policy.file: " + error.message}.str();
}

}  // namespace

LoadOutcome load_state(const ConfigSource& source) {
    LoadOutcome outcome;
    auto loaded = config::load_config(source.path, source.path_given, source.overrides);
    for (const auto& error : loaded.errors) outcome.errors.push_back(error.str());
    if (!loaded.config) return outcome;

    if (auto error = store_settings_error(*loaded.config); !error.empty()) outcome.errors.push_back(std::move(error));
    const auto policy = policy::load_policy(loaded.config->policy.file);
    for (const auto& error : policy.errors) outcome.errors.push_back(policy_error(*loaded.config, error));
    if (!outcome.errors.empty()) return outcome;

    const bool monitor_all = loaded.config->policy.mode == config::PolicyMode::monitor;
    outcome.state = State{*loaded.config, milter::make_snapshot(policy.policy, monitor_all),
                          std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()};
    outcome.warnings = unconsulted_dns_lists(outcome.state->snapshot->needs);
    return outcome;
}

std::string policy_summary(const State& state) {
    const auto& policy = *state.snapshot->policy;
    size_t rules = 0;
    for (const auto& stage_rules : policy.rules) rules += stage_rules.size();
    return state.config.policy.file + ": " + std::to_string(rules) + " rules, " + std::to_string(policy.lists.size()) +
           " lists, " + std::to_string(policy.maps.size()) + " maps, " + std::to_string(policy.files.size()) + " files";
}

void log_warnings(const std::vector<LoadWarning>& warnings) {
    for (const auto& warning : warnings) log::warning(warning.where + ": " + warning.message);
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
