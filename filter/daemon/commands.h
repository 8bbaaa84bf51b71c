/*
 * commands.h: the subcommands of the portcullis executable
 * (docs/daemon.md, "Commands").  Each returns the process exit code
 * (docs/daemon.md, "Exit status"): 0 fine, 1 bad config or policy, 2 bad
 * usage, 3 a needed service unreachable.
 */
#pragma once

#include <string>
#include <vector>

#include "daemon/loading.h"

namespace portcullis::daemon {

inline constexpr int kExitOk = 0;
inline constexpr int kExitBadConfig = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

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

struct RatelimitOptions {
    std::string action;              // show, reset
    std::vector<std::string> key;    // the key's field values, in the rule's order
    std::string bucket;              // only this bucket
};
int ratelimit_command(const ConfigSource& source, const RatelimitOptions& options);

int version_command();

}  // namespace portcullis::daemon
