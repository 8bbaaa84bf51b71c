/*
 * store_admin.cc: usage errors, the memory-backend refusal and the store
 * view of the admin subcommands (see store_admin.h).
 */
#include "daemon/store_admin.h"

#include <cstdio>

#include "daemon/commands.h"

namespace portcullis::daemon {

int admin_usage(std::string_view command, const std::string& message) {
    std::fprintf(stderr, "portcullis %.*s: %s\n", static_cast<int>(command.size()), command.data(), message.c_str());
    return kExitUsage;
}

std::string live_state_refusal(const config::Config::Store& settings, std::string_view action,
                               std::string_view reads) {
    if (settings.backend != config::StoreBackend::memory) return "";
    std::string why(action);
    why += " needs store.backend = \"redis\": with \"memory\" only the running daemon holds the state (";
    why += reads;
    why += " its snapshot)";
    return why;
}

int with_store_view(const config::Config::Store& settings, std::string_view command,
                    const std::function<int(store::Store&)>& use) {
    try {
        auto store = store::open_store_view(settings);
        store->ping();   // before any output: a dead store prints only the error
        return use(*store);
    } catch (const store::StoreError& error) {
        std::fprintf(stderr, "portcullis %.*s: store %s\n", static_cast<int>(command.size()), command.data(),
                     error.what());
        return kExitUnavailable;
    }
}

}  // namespace portcullis::daemon
