/*
 * commands.h: the subcommands of the portcullis executable
 * (docs/daemon.md, "Commands").  Each returns the process exit code
 * (docs/daemon.md, "Exit status"): 0 fine, 1 bad config or policy, 2 bad
 * usage, 3 a needed service unreachable.
 */
#pragma once

#include <string>
#include <vector>

#include "daemon/control.h"
#include "daemon/loading.h"
#include "daemon/output.h"
#include "store/store.h"

namespace portcullis::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitBadConfig = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;
inline constexpr int kExitNotAllowed = 4;

int run_command(const ConfigSource& source, bool foreground);
int check_command(const ConfigSource& source);

struct TryOptions {
    std::string ip;
    std::string helo;
    std::string from;
    std::vector<std::string> to;
    std::string user;
    std::string message_file;
    bool dry = false;
};
int try_command(const ConfigSource& source, const TryOptions& options);

struct GreylistOptions {
    std::string action;          // list, allow, drop, stats
    std::string client;          // an IP address
    std::string sender;          // "<>" for the null sender
    std::string rcpt;
    bool host = false;           // the client's address, not its /24 or /64
    std::string expire;          // allow; "" is a greylist rule's default
};
int greylist_command(const ConfigSource& source, const GreylistOptions& options);
/* The action OPTIONS on STORE, its text to OUT; the exit code.  The
 * command line runs it on its own view of the store, the daemon on its
 * live store for a request on its control socket. */
int greylist_admin(store::Store& store, const GreylistOptions& options, Output& out);
ControlRequest greylist_request(const GreylistOptions& options);
GreylistOptions greylist_options(const ControlRequest& request);

struct RatelimitOptions {
    std::string action;              // show, reset
    std::vector<std::string> key;    // the key's field values, in the rule's order
    std::string bucket;              // only this bucket
};
int ratelimit_command(const ConfigSource& source, const RatelimitOptions& options);
/* As greylist_admin(), with the buckets POLICY names. */
int ratelimit_admin(const policy::Policy& policy, store::Store& store, const RatelimitOptions& options, Output& out);
ControlRequest ratelimit_request(const RatelimitOptions& options);
RatelimitOptions ratelimit_options(const ControlRequest& request);

/* `reload` and `status`: asked of the running daemon. */
int reload_command(const ConfigSource& source);
int status_command(const ConfigSource& source);

int version_command();

}  // namespace portcullis::daemon
