/*
 * control_command.cc: `portcullis reload` and `portcullis status`, asked
 * of the running daemon on its control socket (control.socket, found in
 * the config -c names).  The daemon's answer is printed as it comes, and
 * its exit code given: reload 0 when the new config and policy serve, 1
 * when they were refused (the errors as FILE:LINE:COL lines; the running
 * ones stay).  No daemon at the socket is exit 3; a user the daemon does
 * not let in, exit 4.
 */
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/store_admin.h"

namespace portcullis::daemon {

namespace {

int ask(const ConfigSource& source, const char* command) {
    TerminalOutput out;
    auto loaded = config::load_config(source.path, source.path_given, source.overrides);
    for (const auto& error : loaded.errors) out.err("%s\n", error.str().c_str());
    if (!loaded.config) return kExitBadConfig;
    const std::string& socket = loaded.config->control.socket;
    if (socket.empty()) {
        return admin_usage(out, command, "control.socket is \"\": this daemon takes no requests");
    }
    const auto reply = ask_daemon(*loaded.config, ControlRequest{command, {}});
    if (!reply) {
        out.err("portcullis %s: no daemon answers on %s (is it running?)\n", command, socket.c_str());
        return kExitUnavailable;
    }
    return print_reply(*reply, out);
}

}  // namespace

int reload_command(const ConfigSource& source) { return ask(source, "reload"); }

int status_command(const ConfigSource& source) { return ask(source, "status"); }

}  // namespace portcullis::daemon
