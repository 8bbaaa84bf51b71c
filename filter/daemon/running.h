/*
 * running.h: the daemon once it serves: its state, reloads, the answer to
 * `status`, and the requests of its control socket.
 *
 *   reload()          load config and policy anew and give them their
 *                     checks (daemon/checks.h) on the running store; a
 *                     broken one is refused, every error logged, and the
 *                     running one stays; sessions in flight keep theirs.
 *                     The result says which, with the errors as
 *                     FILE:LINE:COL lines or the new policy's size.  From
 *                     SIGHUP and from the control socket alike, one at a
 *                     time.
 *   status()          version, uptime, engine, policy (file, rules, when
 *                     loaded, digest), store and its health, resolver
 *                     and its health, sessions in flight, counters.
 *   handle(REQUEST)   a control socket request: reload, status, greylist
 *                     and ratelimit actions on the live store.
 *   handle_signals()  SIGHUP reloads; SIGTERM and SIGINT begin the drain,
 *                     wait for the sessions in flight (kDrainLimit at
 *                     most) and stop the engine.
 */
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "daemon/control.h"
#include "daemon/loading.h"
#include "milter/engine.h"
#include "store/store.h"

namespace portcullis::daemon {

inline constexpr auto kDrainLimit = std::chrono::seconds(30);

struct ReloadResult {
    bool ok = false;
    std::string text;   // the lines to show an administrator
};

class RunningDaemon {
public:
    RunningDaemon(ConfigSource source, State state, std::shared_ptr<store::Store> store, milter::Engine& engine,
                  bool foreground);

    ReloadResult reload();
    std::string status() const;
    ControlReply handle(const ControlRequest& request);
    void handle_signals();
    bool stopping() const { return stopping_; }

private:
    void warn_about_restart_keys(const config::Config& next) const;

    const ConfigSource source_;
    mutable std::mutex mutex_;   // guards state_: reloads come from signals and the control socket
    State state_;
    const std::shared_ptr<store::Store> store_;
    milter::Engine& engine_;
    const bool foreground_;
    const int64_t started_at_ms_;
    std::atomic<bool> stopping_{false};
};

/* The signals the daemon's signal thread takes; blocked in every other. */
sigset_t daemon_signals();

/* "loaded policy FILE: N rules, N lists, N maps, N files", as logged. */
std::string loaded_line(const char* what, const State& state);

}  // namespace portcullis::daemon
