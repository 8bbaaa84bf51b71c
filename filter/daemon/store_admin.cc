/*
 * store_admin.cc: usage errors, the memory-backend refusal, the store
 * view of the admin subcommands and the daemon's replies (see
 * store_admin.h).
 */
#include "daemon/store_admin.h"

#include "daemon/commands.h"

namespace portcullis::daemon {

int admin_usage(Output& out, std::string_view command, const std::string& message) {
    out.err("portcullis %.*s: %s\n", static_cast<int>(command.size()), command.data(), message.c_str());
    return kExitUsage;
}

std::string live_state_refusal(const config::Config::Store& settings, std::string_view action,
                               std::string_view reads) {
    if (settings.backend != config::StoreBackend::memory) return "";
    std::string why(action);
    why += " needs the running daemon (it listens on control.socket) or store.backend = \"redis\": with \"memory\" "
           "only the daemon holds the state (";
    why += reads;
    why += " its snapshot)";
    return why;
}

int with_store_view(const config::Config::Store& settings, std::string_view command, Output& out,
                    const std::function<int(store::Store&)>& use) {
    try {
        auto store = store::open_store_view(settings);
        store->ping();   // before any output: a dead store prints only the error
        return use(*store);
    } catch (const store::StoreError& error) {
        out.err("portcullis %.*s: store %s\n", static_cast<int>(command.size()), command.data(), error.what());
        return kExitUnavailable;
    }
}

int print_reply(const ControlReply& reply, Output& out) {
    if (reply.exit_code == kExitOk) out.out("%s", reply.text.c_str());
    else out.err("%s", reply.text.c_str());
    return reply.exit_code;
}

}  // namespace portcullis::daemon
