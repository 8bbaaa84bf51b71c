/*
 * store_admin.h: what the admin subcommands (`greylist`, `ratelimit`,
 * `reload`, `status`) share.
 *
 * admin_usage() writes "portcullis COMMAND: MESSAGE" and gives exit 2.
 * live_state_refusal() is why ACTION cannot run on SETTINGS from the
 * command line, or "": with the memory backend only the running daemon
 * holds the state, so an edit needs the daemon (its control socket) or
 * Redis.  with_store_view() opens the store as the command line sees it,
 * pings it before any output, and runs USE on it; a store that fails
 * writes "portcullis COMMAND: store ..." and gives exit 3.  print_reply()
 * writes a reply of the daemon's control socket and gives its exit code.
 */
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "daemon/control.h"
#include "daemon/output.h"
#include "store/store.h"

namespace portcullis::daemon {

int admin_usage(Output& out, std::string_view command, const std::string& message);

/* READS names what still works on a snapshot ("show"). */
std::string live_state_refusal(const config::Config::Store& settings, std::string_view action,
                               std::string_view reads);

int with_store_view(const config::Config::Store& settings, std::string_view command, Output& out,
                    const std::function<int(store::Store&)>& use);

int print_reply(const ControlReply& reply, Output& out);

}  // namespace portcullis::daemon
