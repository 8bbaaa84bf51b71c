/*
 * config.h: the daemon's configuration (docs/configuration.md).
 *
 * load_config() reads a TOML file (a missing file named by -c is an
 * error; the file may be empty), applies -o KEY=VALUE overrides in order,
 * fills every key not given with its default, and checks every value.
 * Unknown keys and wrong types are errors naming the file and line
 * ("portcullis.conf:12:1: error: unknown key 'store.tiemout' (did you mean
 * 'store.timeout'?)"); overrides are named "-o KEY=VALUE".  All errors are
 * returned, not just the first.  Relative paths in the file are taken
 * relative to the file's directory; in -o overrides, relative to the
 * working directory.  A loaded Config remembers where each key got its
 * value (Origins), so that what checks it later (the store's settings)
 * can point at the same place.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/redis_url.h"
#include "util/units.h"

namespace portcullis::config {

/* The longest timeout a key may set (milter.timeout, store.timeout...). */
inline constexpr Millis kMaxTimeout = std::chrono::hours(24);

enum class MilterEngine { native, libmilter };
enum class PolicyMode { enforce, monitor };
enum class StoreBackend { memory, redis };
using StoreMode = RedisMode;   // util/redis_url.h: its one parser reads the servers
enum class OnError { tempfail, accept };
enum class LogTarget { syslog, stderr_stream };
enum class LogLevel { error, warning, info, debug };

/* Where the keys of a loaded Config got their values. */
struct Origins {
    std::string file;                                          // the configuration file
    std::map<std::string, std::string, std::less<>> given;     // key -> "FILE:LINE:COL" or "-o KEY=VALUE"

    /* Where KEY's value came from; the file for a key left at its default. */
    const std::string& of(std::string_view key) const;
};

struct Config {
    struct Milter {
        std::string socket = "inet:8891@127.0.0.1";
        Millis timeout = std::chrono::seconds(30);        // within a packet, a message's content, the handshake
        Millis idle_timeout = std::chrono::hours(2);      // between an SMTP session's events
        std::string user = "portcullis";       // "" keeps the starting user
        MilterEngine engine = MilterEngine::native;
        unsigned threads = 0;                  // event loops (native) or service loops (libmilter); 0: one per core
        size_t max_connections = 1000;         // 0: no limit
    } milter;
    struct Policy {
        std::string file = "/etc/portcullis/policy.rules";
        PolicyMode mode = PolicyMode::enforce;
    } policy;
    struct Store {
        StoreBackend backend = StoreBackend::memory;
        // One URL, or ", "-separated sentinels or cluster seed nodes.
        std::string url = "redis://127.0.0.1:6379/0";
        StoreMode mode = StoreMode::standalone;
        std::string master;                  // sentinel master name
        std::string user;                    // AUTH of the Redis data servers; "": the default user
        std::string password;                // "": no AUTH (or the one in a standalone url)
        std::string prefix = "pc:";
        Millis timeout = std::chrono::milliseconds(200);
        OnError on_error = OnError::tempfail;
        std::string snapshot = "/var/lib/portcullis/state.snapshot";   // memory backend; "" = none
        uint64_t memory_limit = 256 * 1024 * 1024;   // memory backend: bytes its keys may take, as it counts them
    } store;
    struct Dns {
        std::vector<std::string> resolver{"system"};   // "system", or forwarders "ip[@port]"
        Millis timeout = std::chrono::seconds(5);
    } dns;
    struct Auth {
        std::string authserv_id;             // "" = no Authentication-Results header
        bool add_header = true;
        // DMARC's organizational domains (the publicsuffix package)
        std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dat";
    } auth;
    struct Log {
        LogTarget target = LogTarget::syslog;
        LogLevel level = LogLevel::info;
        std::string facility = "mail";       // a syslog facility name
    } log;
    struct Metrics {
        std::string listen;                  // "host:port"; "" = off
    } metrics;
    struct Control {
        std::string socket = "/run/portcullis/control";   // "" = none
    } control;
    Origins origins;
};

struct ConfigError {
    std::string where;      // "FILE:LINE:COL", "FILE", or "-o KEY=VALUE"
    std::string message;
    std::string str() const { return where + ": error: " + message; }
};

struct ConfigResult {
    std::optional<Config> config;     // empty when there are errors
    std::vector<ConfigError> errors;
};

/* PATH is the config file; when REQUIRED is false a missing file is the
 * same as an empty one (used for the built-in default path). */
ConfigResult load_config(const std::string& path, bool required, const std::vector<std::string>& overrides);

/* Every key as "section.key", for `did you mean` and for docs checks. */
const std::vector<std::string>& config_keys();

std::string_view log_level_name(LogLevel level);

}  // namespace portcullis::config
