/*
 * store.h: the shared state behind greylisting and rate limits.
 *
 * A Store holds keys, each with an absolute expiry time and either a
 * string value or a hash (fields and their values, as a Redis hash).
 * Every change is a Script (on a string key) or a HashScript (on a hash
 * key): one read-modify-write of one key, atomic on the server, so a
 * Redis Cluster can hold the data and two filters on one Redis never
 * race.  A script is written twice, once in Lua for Redis and once in
 * C++ for the memory store; the unit tests run every script on both and
 * compare.  A script of one kind on a key of the other kind fails
 * (StoreError), as Redis answers WRONGTYPE.
 *
 * Keys given to a Store are relative ("g:..."); the store puts
 * store.prefix in front.  Times are milliseconds since the Unix epoch,
 * taken by the caller, so tests inject a clock and MX hosts agree on
 * expiry as long as their clocks do.
 *
 * run() never waits: the reply goes to the callback given, during the
 * call (the memory store) or later, on the event loop that called it
 * (Redis, which may only be called on a loop).  A store that cannot
 * answer within store.timeout gives an error in place of the reply; it
 * recovers by itself (reconnecting) when the server is back.  The admin
 * calls (scan, erase, ping) block: they are for the command line and the
 * control socket, never for an event loop.  run_blocking() waits for a
 * run() on a loop of its own, for those callers.
 *
 * open_store() builds the backend the config names.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace portcullis::store {

/* What a script sees of its key.  An expired key is absent. */
struct Record {
    std::optional<std::string> value;
    int64_t expires_at_ms = 0;          // 0: no expiry (meaningful only with a value)
};

/* One atomic operation on one key.  Scripts are constants: a store may
 * keep NAME and LUA (not copies) until a call's answer.
 *
 * lua: KEYS[1] is the key (prefix included), ARGV[1] the current time in
 *   ms, ARGV[2..] the arguments.  It sets expiry with PEXPIREAT (absolute,
 *   from ARGV[1]) and returns an array of strings or integers.
 * apply: the same on a Record, for the memory store: ARGS are ARGV[2..].
 *   Setting value to nullopt deletes the key.
 * Both return the same list, integers written in decimal. */
struct Script {
    std::string_view name;
    std::string_view lua;
    std::vector<std::string> (*apply)(Record& record, int64_t now_ms, std::span<const std::string> args);
};

/* A hash's fields and their values. */
using Fields = std::map<std::string, std::string, std::less<>>;

/* What a hash script sees of its key: no fields when the key is absent
 * or expired.  Removing the last field deletes the key, as in Redis.
 * changed() tells the memory store whether the script wrote anything,
 * and so whether the snapshot needs saving; bytes() is the sum of the
 * sizes of its fields and their values, kept up to date by every change
 * so that the memory store can count its memory without walking a hash. */
class HashRecord {
public:
    HashRecord() = default;
    /* BYTES must be bytes_of(FIELDS): the memory store keeps it with the
     * hash, and counting it here would walk every field. */
    HashRecord(Fields fields, int64_t expires_at_ms, size_t bytes)
        : fields_(std::move(fields)), expires_at_ms_(expires_at_ms), bytes_(bytes) {}

    const Fields& fields() const { return fields_; }
    const std::string* get(std::string_view field) const;
    void set(std::string_view field, std::string value);
    void erase(std::string_view field);
    void clear();
    int64_t expires_at_ms() const { return expires_at_ms_; }
    void expire_at(int64_t expires_at_ms);   // 0: no expiry
    bool changed() const { return changed_; }
    size_t bytes() const { return bytes_; }
    /* What bytes() is for FIELDS, counted field by field. */
    static size_t bytes_of(const Fields& fields);
    Fields release() && { return std::move(fields_); }

private:
    Fields fields_;
    int64_t expires_at_ms_ = 0;
    size_t bytes_ = 0;
    bool changed_ = false;
};

/* One atomic operation on one hash key: as Script, with HSET, HDEL, DEL
 * and PEXPIREAT on KEYS[1] in Lua, and a HashRecord in C++. */
struct HashScript {
    std::string_view name;
    std::string_view lua;
    std::vector<std::string> (*apply)(HashRecord& record, int64_t now_ms, std::span<const std::string> args);
};

class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/* A setting the store cannot work with: KEY names it ("store.mode"), so
 * the caller can say where its value was set; what() is "KEY: why". */
class StoreSettingsError : public StoreError {
public:
    StoreSettingsError(std::string key, const std::string& why) : StoreError(key + ": " + why), key_(std::move(key)) {}
    const std::string& key() const { return key_; }

private:
    std::string key_;
};

struct Entry {
    std::string key;                    // relative, as given to run()
    std::string value;
    int64_t expires_at_ms = 0;
};

struct HashEntry {
    std::string key;                    // relative, as given to run()
    Fields fields;
    int64_t expires_at_ms = 0;
};

/* Why a store call failed, as portcullis_store_errors_total counts it. */
namespace error_kind {
inline constexpr std::string_view connect = "connect";          // no connection to the server
inline constexpr std::string_view timeout = "timeout";          // no reply within store.timeout
inline constexpr std::string_view connection = "connection";    // the connection broke, or a garbled reply
inline constexpr std::string_view no_master = "no-master";      // the sentinels named no usable master
inline constexpr std::string_view readonly = "readonly";        // the server is not (or no longer) a master
inline constexpr std::string_view loading = "loading";          // the server is loading its data
inline constexpr std::string_view clusterdown = "clusterdown";  // the cluster cannot serve the key's slot
inline constexpr std::string_view redirects = "redirects";      // too many MOVED or ASK
inline constexpr std::string_view script = "script";            // the script failed, or answered nonsense
}  // namespace error_kind

/* A script's reply, or why the store gave none. */
struct StoreResult {
    std::vector<std::string> values;
    std::optional<std::string> error;   // set: the store failed
};

/* What a check made of a reply, or why it has nothing. */
template <typename T>
struct Outcome {
    std::optional<T> value;
    std::string error;   // when there is no value
};

class Store {
public:
    using Done = std::function<void(StoreResult)>;

    virtual ~Store() = default;

    /* Runs SCRIPT on KEY at NOW_MS with ARGS; DONE gets the result once. */
    virtual void run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
                     Done done) = 0;
    virtual void run(const HashScript& script, std::string_view key, int64_t now_ms,
                     std::span<const std::string> args, Done done) = 0;

    /* Calls VISIT for every live string key starting with KEY_PREFIX
     * (relative).  For the admin commands: not atomic, may be slow;
     * throws StoreError. */
    virtual void scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) = 0;
    /* The same for the hash keys. */
    virtual void scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) = 0;

    /* Deletes KEY, string or hash; whether it existed.  Throws StoreError. */
    virtual bool erase(std::string_view key) = 0;

    /* Throws StoreError unless the store answers now (startup check). */
    virtual void ping() = 0;

    /* "redis 127.0.0.1:6379/0", "memory (snapshot /var/lib/...)": for logs. */
    virtual std::string describe() const = 0;

    /* "ok", or what is wrong as the store last saw it ("unreachable since
     * ...: Connection refused"), for `portcullis status`. */
    virtual std::string health() const { return "ok"; }
};

/* The wall clock in ms since the epoch: what the daemon passes as now. */
int64_t now_ms();

/* run() and its reply, waited for; throws StoreError.  Not on an event
 * loop's thread. */
std::vector<std::string> run_blocking(Store& store, const Script& script, std::string_view key, int64_t now_ms,
                                      std::span<const std::string> args);
std::vector<std::string> run_blocking(Store& store, const HashScript& script, std::string_view key, int64_t now_ms,
                                      std::span<const std::string> args);

/* The backend SETTINGS name, for the daemon.  Does not connect: a Redis
 * that is down is an error of ping() and run(). */
std::unique_ptr<Store> open_store(const config::Config::Store& settings);

/* For the command line (`greylist`, `try`): Redis as configured, or the
 * memory backend as a view of its snapshot file that never writes (the
 * running daemon alone owns the live state). */
std::unique_ptr<Store> open_store_view(const config::Config::Store& settings);

/* Throws StoreSettingsError when SETTINGS name a Redis store that cannot
 * be opened (a list of servers without store.mode "sentinel" or
 * "cluster", a sentinel mode without store.master...).  Connects to
 * nothing. */
void check_store_settings(const config::Config::Store& settings);

/* Throws StoreError unless the store SETTINGS name can serve now: Redis
 * answers.  A memory store always can; a snapshot directory it cannot
 * write to is logged as a warning.  Starts no thread and writes nothing,
 * so the daemon asks it before it forks. */
void probe_store(const config::Config::Store& settings);

}  // namespace portcullis::store
