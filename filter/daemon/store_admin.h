/*
 * store_admin.h: what the store's admin subcommands (`greylist`,
 * `ratelimit`) share.
 *
 * admin_usage() prints "portcullis COMMAND: MESSAGE" and gives exit 2.
 * live_state_refusal() is why ACTION cannot run on SETTINGS, or "": with
 * the memory backend only the running daemon holds the state, so edits
 * need Redis.  with_store_view() opens the store as the command line
 * sees it, pings it before any output, and runs USE on it; a store that
 * fails prints "portcullis COMMAND: store ..." and gives exit 3.
 */
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "store/store.h"

namespace portcullis::daemon {

int admin_usage(std::string_view command, const std::string& message);

/* READS names what still works on a snapshot ("show"). */
std::string live_state_refusal(const config::Config::Store& settings, std::string_view action,
                               std::string_view reads);

int with_store_view(const config::Config::Store& settings, std::string_view command,
                    const std::function<int(store::Store&)>& use);

}  // namespace portcullis::daemon
