/*
 * greylist_command.cc: `portcullis greylist list|allow|drop|stats`, the
 * administrator's view of greylisting state in the configured store.
 *
 *   list  [--client IP] [--sender A] [--rcpt A]   triplets (and, with no
 *         sender or recipient given, the client networks' whitelist state)
 *   allow --client IP [--sender A --rcpt A] [--host] [--expire D]
 *         a triplet passes at once; with --client alone, the whole client
 *         network (its /24 or /64, or the address with --host) skips
 *         greylisting for D (default 35d)
 *   drop  --client IP [--sender A --rcpt A] [--host]
 *         forget a triplet, or a network and every triplet from it
 *   stats pending and passed triplets, auto-whitelisted and allowed networks
 *
 * Only the config is read (a broken policy does not lock the
 * administrator out).  While the daemon runs, the request goes to its
 * control socket and the daemon does it on its live store, whichever the
 * backend.  Otherwise the command line opens the store itself: Redis, or
 * with the memory backend the snapshot the daemon last wrote, which list
 * and stats read and allow and drop cannot change.
 */
#include <cstdio>
#include <ctime>

#include "checks/greylist.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/store_admin.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

/* Whether a stored network ("203.0.113.0/24" or an address) holds IP. */
bool network_holds(const std::string& network, const IpAddress& ip) {
    const auto prefix = parse_prefix(network);
    return prefix && prefix->contains(ip);
}

struct Filter {
    std::optional<IpAddress> client;
    std::string sender;      // normalised
    std::string rcpt;        // lowercased
    bool has_sender = false;
    bool has_rcpt = false;

    bool matches(const checks::Triplet& triplet) const {
        return (!client || network_holds(triplet.network, *client)) && (!has_sender || triplet.sender == sender) &&
               (!has_rcpt || triplet.rcpt == rcpt);
    }
};

int list(checks::Greylist& greylist, const Filter& filter, Output& out) {
    size_t shown = 0;
    out.out("%-8s %-22s %-34s %-34s %-21s %s\n", "STATE", "NETWORK", "SENDER", "RECIPIENT", "SINCE", "EXPIRES");
    greylist.list([&](const checks::TripletState& state) {
        if (!filter.matches(state.triplet)) return;
        ++shown;
        out.out("%-8s %-22s %-34s %-34s %-21s %s\n", state.passed ? "passed" : "pending",
                    state.triplet.network.c_str(), ("<" + state.triplet.sender + ">").c_str(),
                    ("<" + state.triplet.rcpt + ">").c_str(), utc_time(state.since_ms).c_str(),
                    utc_time(state.expires_at_ms).c_str());
    });
    out.out("%zu triplet%s\n", shown, shown == 1 ? "" : "s");
    if (filter.has_sender || filter.has_rcpt) return kExitOk;

    size_t networks = 0;
    greylist.list_networks([&](const checks::NetworkState& state) {
        if (filter.client && !network_holds(state.network, *filter.client)) return;
        const char* status = state.flag == 'a' ? "allowed" : state.flag == 'w' ? "auto-whitelisted" : "counting";
        out.out("network %-22s %-17s passes=%llu last=%s expires=%s\n", state.network.c_str(), status,
                    static_cast<unsigned long long>(state.passes), utc_time(state.last_ms).c_str(),
                    utc_time(state.expires_at_ms).c_str());
        ++networks;
    });
    out.out("%zu network%s\n", networks, networks == 1 ? "" : "s");
    return kExitOk;
}

int stats(checks::Greylist& greylist, Output& out) {
    const auto counts = greylist.stats();
    out.out("pending %llu\npassed %llu\nauto-whitelisted %llu\nallowed %llu\n",
                static_cast<unsigned long long>(counts.pending), static_cast<unsigned long long>(counts.passed),
                static_cast<unsigned long long>(counts.auto_whitelisted),
                static_cast<unsigned long long>(counts.allowed));
    return kExitOk;
}

int edit(checks::Greylist& greylist, const GreylistOptions& options, const IpAddress& client, Millis expire,
         Output& out) {
    const bool whole_network = options.sender.empty() && options.rcpt.empty();
    const std::string network = checks::client_network(client, options.host);
    if (whole_network) {
        if (options.action == "allow") {
            greylist.allow_network(network, expire);
            out.out("allowed network %s for %s\n", network.c_str(), format_duration(expire).c_str());
        } else {
            const size_t dropped = greylist.drop_network(network);
            out.out("dropped network %s: %zu record%s\n", network.c_str(), dropped, dropped == 1 ? "" : "s");
        }
        return kExitOk;
    }
    if (options.rcpt.empty() || options.sender.empty()) {
        return admin_usage(out, "greylist", "a triplet needs both --sender (\"<>\" for the null sender) and --rcpt");
    }
    const auto triplet = checks::make_triplet(client, strip_angle_brackets(options.sender),
                                              strip_angle_brackets(options.rcpt), options.host);
    if (options.action == "allow") {
        greylist.allow(triplet, expire);
        out.out("allowed %s <%s> <%s> for %s\n", triplet.network.c_str(), triplet.sender.c_str(),
                    triplet.rcpt.c_str(), format_duration(expire).c_str());
    } else {
        const bool dropped = greylist.drop(triplet);
        out.out("%s %s <%s> <%s>\n", dropped ? "dropped" : "no such triplet:", triplet.network.c_str(),
                    triplet.sender.c_str(), triplet.rcpt.c_str());
    }
    return kExitOk;
}

}  // namespace

int greylist_admin(store::Store& store, const GreylistOptions& options, Output& out) {
    auto usage = [&out](const std::string& message) { return admin_usage(out, "greylist", message); };
    Filter filter;
    if (!options.client.empty()) {
        filter.client = parse_ip(options.client);
        if (!filter.client) return usage("--client " + in_quotes(options.client) + " is not an IP address");
    }
    filter.has_sender = !options.sender.empty();
    filter.sender = checks::normalize_sender(strip_angle_brackets(options.sender));
    filter.has_rcpt = !options.rcpt.empty();
    filter.rcpt = to_lower(strip_angle_brackets(options.rcpt));
    const auto expire = options.expire.empty() ? std::optional(checks::GreylistSettings{}.expire)
                                               : parse_duration(options.expire);
    if (!expire || expire->count() <= 0) return usage("--expire " + in_quotes(options.expire) + " is not a duration");
    if (*expire > kMaxStoredDuration) {
        return usage("--expire " + in_quotes(options.expire) + " is longer than " +
                     format_duration(kMaxStoredDuration) + ", the longest a record is kept");
    }
    const bool edits = options.action == "allow" || options.action == "drop";
    if (edits && !filter.client) return usage(options.action + " needs --client IP");
    if (!edits && options.action != "list" && options.action != "stats") {
        return usage("unknown action " + in_quotes(options.action));
    }

    checks::Greylist greylist(store);
    if (options.action == "list") return list(greylist, filter, out);
    if (options.action == "stats") return stats(greylist, out);
    return edit(greylist, options, *filter.client, *expire, out);
}

ControlRequest greylist_request(const GreylistOptions& options) {
    return {"greylist",
            {{"action", options.action},
             {"client", options.client},
             {"sender", options.sender},
             {"rcpt", options.rcpt},
             {"host", options.host ? "yes" : "no"},
             {"expire", options.expire}}};
}

GreylistOptions greylist_options(const ControlRequest& request) {
    return {request.get("action"), request.get("client"), request.get("sender"), request.get("rcpt"),
            request.get("host") == "yes", request.get("expire")};
}

int greylist_command(const ConfigSource& source, const GreylistOptions& options) {
    TerminalOutput out;
    auto loaded = config::load_config(source.path, source.path_given, source.overrides);
    for (const auto& error : loaded.errors) out.err("%s\n", error.str().c_str());
    if (!loaded.config) return kExitBadConfig;
    if (const auto error = store_settings_error(*loaded.config); !error.empty()) {
        out.err("%s\n", error.c_str());
        return kExitBadConfig;
    }
    if (const auto reply = ask_daemon(*loaded.config, greylist_request(options))) return print_reply(*reply, out);

    const auto& settings = loaded.config->store;
    const bool edits = options.action == "allow" || options.action == "drop";
    if (const std::string refusal = live_state_refusal(settings, options.action, "list and stats read");
        edits && !refusal.empty()) {
        return admin_usage(out, "greylist", refusal);
    }
    return with_store_view(settings, "greylist", out,
                           [&](store::Store& store) { return greylist_admin(store, options, out); });
}

}  // namespace portcullis::daemon
