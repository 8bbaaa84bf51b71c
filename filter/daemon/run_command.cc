/*
 * run_command.cc: `portcullis run`, the daemon's life.
 *
 * Load config and policy and try their checks (refuse to start on any
 * error), bind the milter socket with the engine milter.engine names,
 * drop privileges, check the store if the policy needs it (exit 3), go to
 * the background unless -f or systemd started us, open the store, give
 * the state its checks (daemon/checks.h), then let the engine serve while
 * a signal thread handles:
 *   SIGHUP          reload config and policy; a broken one is refused and
 *                   the running one stays; sessions in flight keep theirs
 *   SIGTERM/SIGINT  new sessions get a tempfail, those in flight finish
 *                   (up to kDrainLimit), exit 0: at once when none is open
 */
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "daemon/checks.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/privileges.h"
#include "daemon/running.h"
#include "daemon/service_notify.h"
#include "metrics/metrics.h"
#include "milter/engine.h"
#include "util/log.h"

namespace portcullis::daemon {

namespace {

milter::EngineSettings engine_settings(const config::Config& config) {
    const auto& milter = config.milter;
    return {milter.socket, milter.timeout, milter.idle_timeout, milter.threads, milter.max_connections};
}

/* Up to the hard limit: every connection is a file descriptor.  Says so
 * when milter.max_connections cannot all be served. */
void raise_file_limit(size_t max_connections) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    // Sockets to the resolver and the store, logs, the listener...
    constexpr rlim_t kSpare = 64;
    if (max_connections == 0 || max_connections + kSpare <= limit.rlim_cur) return;
    log::warning("milter.max_connections is " + std::to_string(max_connections) + " but only " +
                 std::to_string(limit.rlim_cur) +
                 " files may be open (RLIMIT_NOFILE, LimitNOFILE= under systemd): connections past that fail");
}

/* Into the background, as a daemon started from a shell expects, in the
 * same directory: a relative -c FILE (or -o path) is read again at every
 * reload, and from "/" it would name another file or none. */
bool daemonize() {
    if (::daemon(1, 0) != 0) {
        std::perror("portcullis: cannot go to the background");
        return false;
    }
    return true;
}

/* Log why the daemon does not start; say it on the terminal too when the
 * log goes elsewhere. */
int refuse_start(const std::string& error, bool foreground, int exit_code = kExitBadConfig) {
    log::error(error);
    if (!foreground) std::fprintf(stderr, "portcullis: %s\n", error.c_str());
    return exit_code;
}

/* A store that a policy with greylist or ratelimit rules needs and cannot
 * reach stops the start (exit 3).  Asked before going to the background,
 * so the shell hears about it.  (load_state() refused settings this build
 * cannot serve.) */
int check_store(const State& state, bool foreground) {
    const auto& settings = state.config.store;
    if (!state.snapshot->needs.store) return kExitOk;
    try {
        store::probe_store(settings);
        return kExitOk;
    } catch (const store::StoreError& error) {
        return refuse_start(std::string("store unreachable: ") + error.what(), foreground, kExitUnavailable);
    }
}

}  // namespace

int run_command(const ConfigSource& source, bool foreground) {
    // Before any thread exists, so every thread inherits the mask and only
    // the signal thread receives these.
    const sigset_t set = daemon_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto outcome = load_state(source);
    if (!outcome.state) {
        for (const auto& error : outcome.errors) std::fprintf(stderr, "%s\n", error.c_str());
        std::fprintf(stderr, "portcullis: not started: %zu errors\n", outcome.errors.size());
        return kExitBadConfig;
    }
    State state = std::move(*outcome.state);
    const bool under_systemd = std::getenv("NOTIFY_SOCKET") != nullptr;
    apply_log_settings(state.config, foreground);
    // Checks that cannot be set up stop the start; nothing runs yet.
    State tried = state;
    if (const auto error = attach_checks(tried, {nullptr, true}); !error.empty()) return refuse_start(error, foreground);

    const auto engine = milter::make_engine(state.config.milter.engine);
    raise_file_limit(state.config.milter.max_connections);
    if (const auto error = engine->open(engine_settings(state.config)); !error.empty()) {
        return refuse_start(error, foreground);
    }
    // Bound as root too; a daemon without it still serves mail.
    ControlServer control;
    if (!state.config.control.socket.empty()) {
        if (const auto error = control.open(state.config.control.socket, state.config.milter.user); !error.empty()) {
            log::warning(error + "; `portcullis reload` and `status` cannot reach this daemon");
        }
    }
    if (const auto error = drop_privileges(state.config.milter.user, state.config.milter.socket); !error.empty()) {
        return refuse_start(error, foreground);
    }
    if (const int refused = check_store(state, foreground); refused != kExitOk) return refused;
    if (!foreground && !under_systemd) {
        if (!daemonize()) return kExitBadConfig;
        apply_log_settings(state.config, foreground);   // the log names the new process id
    }
    // After the fork: the metrics server runs threads of its own.
    if (const auto error = metrics::serve(state.config.metrics.listen); !error.empty()) {
        log::error(error);
        return kExitBadConfig;
    }

    // After the fork too: the memory store keeps a thread for its snapshot.
    std::shared_ptr<store::Store> store = store::open_store(state.config.store);
    if (const auto error = attach_checks(state, {store, true}); !error.empty()) return refuse_start(error, foreground);
    milter::publish(state.snapshot);

    log::info(loaded_line("loaded", state));
    log_warnings(outcome.warnings);
    log::info("listening on " + state.config.milter.socket + " (" + engine->describe() + "); store: " +
              store->describe());
    RunningDaemon daemon(source, std::move(state), store, *engine, foreground);
    control.start([&daemon](const ControlRequest& request) { return daemon.handle(request); });
    std::thread signals([&daemon] { daemon.handle_signals(); });
    notify_service_manager("READY=1\nSTATUS=running");

    const bool ran = engine->run();
    if (!ran) log::error("the milter engine stopped unexpectedly");
    // When the engine returned by itself, wake the signal thread to end it.
    if (!daemon.stopping()) kill(getpid(), SIGTERM);
    signals.join();
    // Before DAEMON goes: a request could otherwise reach it as it is
    // destroyed (the store saving its snapshot takes a while).
    control.stop();
    // Only this function's locals hold the store now, so it closes (the
    // memory store writes its snapshot) before the process exits.
    milter::publish(nullptr);
    log::info("stopped");
    return ran ? kExitOk : kExitBadConfig;
}

}  // namespace portcullis::daemon
