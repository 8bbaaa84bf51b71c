/*
 * running.cc: reload, status, the control socket's requests and the
 * signals of the running daemon (see running.h).
 */
#include "daemon/running.h"

#include <signal.h>

#include <algorithm>
#include <thread>

#include "daemon/checks.h"
#include "daemon/commands.h"
#include "daemon/service_notify.h"
#include "dns/lookups.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/text.h"
#include "util/units.h"

namespace portcullis::daemon {

namespace {

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void wait_for_sessions() {
    const auto deadline = std::chrono::steady_clock::now() + kDrainLimit;
    while (milter::active_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (milter::active_sessions() > 0) {
        log::warning(std::to_string(milter::active_sessions()) +
                     " sessions still open after the drain limit; the MTA applies its milter_default_action");
    }
}

/* "12" for a counter's total; 0 for one that never counted. */
std::string total(const std::map<std::string, double>& totals, const std::string& name) {
    const auto found = totals.find(name);
    return std::to_string(found == totals.end() ? 0ull : static_cast<unsigned long long>(found->second));
}

std::string resolver_line(const State& state) {
    if (!state.snapshot->checks) return "not used (no rule looks anything up)";
    const auto& servers = state.config.dns.resolver;
    std::string line = servers.size() == 1 && equals_nocase(servers.front(), "system") ? "system resolver"
                                                                                         : "forwarders";
    if (line == "forwarders") {
        for (const auto& server : servers) line += " " + server;
    }
    const dns::LookupTotals lookups = dns::lookup_totals();
    line += ": " + std::to_string(lookups.answered) + " answers, " + std::to_string(lookups.failed) + " failed";
    if (!lookups.last_failure.empty()) line += " (last: " + lookups.last_failure + ")";
    return line;
}

}  // namespace

sigset_t daemon_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return set;
}

std::string loaded_line(const char* what, const State& state) {
    return std::string(what) + " policy " + policy_summary(state) +
           (state.snapshot->monitor_all ? " (monitor mode: nothing enforced)" : "");
}

RunningDaemon::RunningDaemon(ConfigSource source, State state, std::shared_ptr<store::Store> store,
                             milter::Engine& engine, bool foreground)
    : source_(std::move(source)), state_(std::move(state)), store_(std::move(store)), engine_(engine),
      foreground_(foreground), started_at_ms_(wall_ms()) {}

ReloadResult RunningDaemon::reload() {
    const std::lock_guard lock(mutex_);
    notify_service_manager("RELOADING=1");
    auto outcome = load_state(source_);
    if (outcome.state) {
        if (const auto error = attach_checks(*outcome.state, {store_, true}); !error.empty()) {
            outcome.state.reset();
            outcome.errors.push_back(error);
        }
    }
    if (!outcome.state) {
        // Counted before it is logged: whoever reads the log line finds
        // the metrics already saying so.
        metrics::count_reload(false);
        ReloadResult refused;
        for (const auto& error : outcome.errors) {
            log::error("reload refused: " + error);
            refused.text += error + "\n";
        }
        const std::string keeping = "reload refused: keeping the running policy " + state_.config.policy.file;
        log::error(keeping);
        refused.text += keeping + "\n";
        notify_service_manager("READY=1\nSTATUS=reload refused; running the previous policy");
        return refused;
    }
    warn_about_restart_keys(outcome.state->config);
    apply_log_settings(outcome.state->config, foreground_);
    log_warnings(outcome.warnings);
    state_ = std::move(*outcome.state);
    milter::publish(state_.snapshot);
    metrics::count_reload(true);
    const std::string loaded = loaded_line("reloaded", state_);
    log::info(loaded);
    notify_service_manager("READY=1\nSTATUS=running");
    ReloadResult done{true, loaded + "\n"};
    for (const auto& warning : outcome.warnings) done.text += warning.str() + "\n";
    return done;
}

std::string RunningDaemon::status() const {
    const std::lock_guard lock(mutex_);
    const int64_t now = wall_ms();
    const auto totals = metrics::totals();
    const auto& policy = *state_.snapshot->policy;
    std::string text = "portcullis " + std::string(PORTCULLIS_VERSION) + ", up " +
                       format_duration(Millis((now - started_at_ms_) / 1000 * 1000)) + " (since " +
                       utc_time(started_at_ms_) + ")\n";
    text += "engine: " + engine_.describe() + "\n";
    text += "policy: " + policy_summary(state_) + "; loaded " + utc_time(state_.loaded_at_ms) + "; sha256 " +
            policy.digest + (state_.snapshot->monitor_all ? "; monitor mode" : "") + "\n";
    text += "store: " + store_->describe() + ": " + store_->health() + "\n";
    text += "dns: " + resolver_line(state_) + "\n";
    text += "sessions in flight: " + std::to_string(milter::active_sessions()) + "\n";
    text += "since start: " + total(totals, "portcullis_connections_total") + " connections, " +
            total(totals, "portcullis_messages_total") + " messages\n";
    text += "decisions:";
    for (const char* action : {"accept", "reject", "tempfail", "discard", "quarantine", "greylist defer",
                               "ratelimit defer", "ratelimit reject"}) {
        text += std::string(" ") + action + " " +
                total(totals, std::string("portcullis_verdicts_total{action=") + action + "}") + ",";
    }
    text.back() = '\n';
    text += "reloads: " + total(totals, "portcullis_policy_reloads_total{result=ok}") + " ok, " +
            total(totals, "portcullis_policy_reloads_total{result=failed}") + " refused\n";
    return text;
}

ControlReply RunningDaemon::handle(const ControlRequest& request) {
    if (request.command == "reload") {
        const ReloadResult result = reload();
        return {result.ok ? kExitOk : kExitBadConfig, result.text};
    }
    if (request.command == "status") return {kExitOk, status()};
    TextOutput out;
    if (request.command == "greylist") {
        const int code = greylist_admin(*store_, greylist_options(request), out);
        return {code, out.text()};
    }
    if (request.command == "ratelimit") {
        std::shared_ptr<const policy::Policy> policy;
        {
            const std::lock_guard lock(mutex_);
            policy = state_.snapshot->policy;
        }
        const int code = ratelimit_admin(*policy, *store_, ratelimit_options(request), out);
        return {code, out.text()};
    }
    return {kExitUsage, "unknown request " + in_quotes(request.command) + "\n"};
}

void RunningDaemon::handle_signals() {
    const sigset_t set = daemon_signals();
    // With WatchdogSec= systemd kills a daemon that is silent for that
    // long: this thread says it lives twice as often, between signals.
    const auto watchdog = watchdog_interval();
    const auto half = std::max<std::chrono::microseconds>(watchdog.value_or(std::chrono::microseconds(0)) / 2,
                                                          std::chrono::milliseconds(1));
    const timespec ping_every{static_cast<time_t>(half.count() / 1'000'000),
                              static_cast<long>(half.count() % 1'000'000 * 1000)};
    for (;;) {
        const int signal = watchdog ? sigtimedwait(&set, nullptr, &ping_every) : sigwaitinfo(&set, nullptr);
        if (watchdog) notify_service_manager("WATCHDOG=1");
        if (signal == SIGHUP) {
            reload();
        } else if (signal == SIGTERM || signal == SIGINT) {
            log::info("stopping: new sessions get a tempfail; " + std::to_string(milter::active_sessions()) +
                      " in flight may finish");
            notify_service_manager("STOPPING=1");
            stopping_ = true;
            milter::begin_drain();
            wait_for_sessions();
            engine_.stop();
            return;
        }
    }
}

void RunningDaemon::warn_about_restart_keys(const config::Config& next) const {
    const auto& now = state_.config;
    const auto& milter = next.milter;
    if (milter.socket != now.milter.socket || milter.user != now.milter.user || milter.engine != now.milter.engine ||
        milter.threads != now.milter.threads || milter.timeout != now.milter.timeout ||
        milter.idle_timeout != now.milter.idle_timeout || milter.max_connections != now.milter.max_connections ||
        next.metrics.listen != now.metrics.listen || next.control.socket != now.control.socket) {
        log::warning("the milter settings, metrics.listen and control.socket take effect only at restart");
    }
    const auto& store = next.store;
    if (store.backend != now.store.backend || store.url != now.store.url || store.mode != now.store.mode ||
        store.master != now.store.master || store.prefix != now.store.prefix || store.timeout != now.store.timeout ||
        store.snapshot != now.store.snapshot || store.memory_limit != now.store.memory_limit) {
        log::warning("store settings other than store.on_error take effect only at restart");
    }
}

}  // namespace portcullis::daemon
