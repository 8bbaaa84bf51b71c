/*
 * redis_store.cc: store.url, the connection pool and its view of the
 * server's health, and the Store calls as Redis commands.
 */
#include "store/redis_store.h"

#include <optional>
#include <utility>

#include "util/digest.h"
#include "util/log.h"

namespace portcullis::store {

namespace {

constexpr size_t kMaxConnections = 16;
constexpr auto kRetryDelay = std::chrono::seconds(1);

/* Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false
 * positive) about "literal" + std::to_string(...). */
std::string describe_endpoint(const RedisEndpoint& endpoint) {
    std::string text = "redis ";
    if (!endpoint.socket_path.empty()) {
        text += "unix:";
        text += endpoint.socket_path;
    } else if (endpoint.host.find(':') != std::string::npos) {
        text += '[';
        text += endpoint.host;
        text += "]:";
        text += std::to_string(endpoint.port);
    } else {
        text += endpoint.host;
        text += ':';
        text += std::to_string(endpoint.port);
    }
    text += '/';
    text += std::to_string(endpoint.db);
    return text;
}

std::string_view mode_name(config::StoreMode mode) {
    switch (mode) {
        case config::StoreMode::standalone: return "standalone";
        case config::StoreMode::sentinel: return "sentinel";
        case config::StoreMode::cluster: return "cluster";
    }
    return "?";
}

/* SCAN MATCH takes a glob: the * ? [ ] \ of a key must match only themselves. */
std::string glob_escape(std::string_view text) {
    std::string escaped;
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped += '\\';
        escaped += c;
    }
    return escaped;
}

std::string script_label(std::string_view name) { return "script \"" + std::string(name) + "\""; }

/* A script's answer as the memory store gives it. */
std::optional<std::string> as_text(const RedisReply& reply) {
    switch (reply.type) {
        case RedisReply::Type::string:
        case RedisReply::Type::status: return reply.text;
        case RedisReply::Type::integer: return std::to_string(reply.integer);
        case RedisReply::Type::nil: return std::string();
        default: return std::nullopt;
    }
}

}  // namespace

/* A connection lent to one call, given back when the call ends.  A
 * failure to talk on it is reported to the pool and thrown with the
 * server's name. */
class RedisStore::Lease {
public:
    Lease(RedisStore& store, RedisConnection connection) : store_(store), connection_(std::move(connection)) {}
    ~Lease() { store_.give_back(std::move(connection_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    RedisReply command(std::span<const std::string_view> args, const Deadline& deadline) {
        try {
            return connection_.command(args, deadline);
        } catch (const StoreError& error) {
            lost(error);
        }
    }

    std::vector<RedisReply> pipeline(std::span<const std::vector<std::string_view>> commands,
                                     const Deadline& deadline) {
        try {
            return connection_.pipeline(commands, deadline);
        } catch (const StoreError& error) {
            lost(error);
        }
    }

private:
    [[noreturn]] void lost(const StoreError& error) {
        store_.connection_failed(error.what());
        throw StoreError(store_.description_ + ": " + error.what());
    }

    RedisStore& store_;
    RedisConnection connection_;
};

RedisStore::RedisStore(const config::Config::Store& settings) : prefix_(settings.prefix), timeout_(settings.timeout) {
    // Before the URL: a sentinel or cluster URL is a list, not one server.
    if (settings.mode != config::StoreMode::standalone) {
        throw StoreSettingsError("store.mode", "\"" + std::string(mode_name(settings.mode)) +
                                                   "\" is not supported by this build: it talks to one Redis server "
                                                   "(hiredis 0.14 has no Sentinel or Cluster client); use "
                                                   "store.mode \"standalone\"");
    }
    if (timeout_ <= Millis::zero()) throw StoreSettingsError("store.timeout", "must be more than zero");
    try {
        endpoint_ = parse_redis_url(settings.url);
    } catch (const RedisUrlError& bad) {
        throw StoreSettingsError("store.url", bad.what());
    }
    description_ = describe_endpoint(endpoint_);
}

std::vector<std::string> RedisStore::run(const Script& script, std::string_view key, int64_t now_ms,
                                         std::span<const std::string> args) {
    return evaluate(script.name, script.lua, key, now_ms, args);
}

std::vector<std::string> RedisStore::run(const HashScript& script, std::string_view key, int64_t now_ms,
                                         std::span<const std::string> args) {
    return evaluate(script.name, script.lua, key, now_ms, args);
}

std::vector<std::string> RedisStore::evaluate(std::string_view name, std::string_view lua, std::string_view key,
                                              int64_t now_ms, std::span<const std::string> args) {
    const Deadline deadline = Deadline::after(timeout_);
    const std::string sha = sha1_hex(lua);
    const std::string full_key = prefix_ + std::string(key);
    const std::string now = std::to_string(now_ms);
    std::vector<std::string_view> command{"EVALSHA", sha, "1", full_key, now};
    command.insert(command.end(), args.begin(), args.end());

    Lease lease = acquire(deadline);
    RedisReply reply = lease.command(command, deadline);
    // Redis forgets its scripts on restart and on SCRIPT FLUSH; EVAL runs
    // the source and caches it again.
    if (reply.type == RedisReply::Type::error && reply.text.starts_with("NOSCRIPT")) {
        command[0] = "EVAL";
        command[1] = lua;
        reply = lease.command(command, deadline);
    }

    if (reply.type == RedisReply::Type::error) reply_failed(script_label(name), reply);
    if (reply.type == RedisReply::Type::nil) return {};
    if (reply.type != RedisReply::Type::array) return {*as_text(reply)};
    std::vector<std::string> result;
    result.reserve(reply.elements.size());
    for (const auto& element : reply.elements) {
        auto text = as_text(element);
        if (!text) reply_failed(script_label(name), element);
        result.push_back(std::move(*text));
    }
    return result;
}

void RedisStore::scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) {
    walk(key_prefix, "string", "GET",
         [&](std::string key, const RedisReply& value, int64_t expires_at_ms) {
             if (value.type == RedisReply::Type::string) visit(Entry{std::move(key), value.text, expires_at_ms});
         });
}

void RedisStore::scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) {
    walk(key_prefix, "hash", "HGETALL",
         [&](std::string key, const RedisReply& value, int64_t expires_at_ms) {
             // HGETALL of a key deleted since SCAN saw it is empty.
             if (value.type != RedisReply::Type::array || value.elements.empty()) return;
             HashEntry hash{std::move(key), {}, expires_at_ms};
             for (size_t i = 0; i + 1 < value.elements.size(); i += 2) {
                 hash.fields.insert_or_assign(value.elements[i].text, value.elements[i + 1].text);
             }
             visit(hash);
         });
}

void RedisStore::walk(std::string_view key_prefix, std::string_view type, std::string_view read,
                      const std::function<void(std::string, const RedisReply&, int64_t)>& visit) {
    const std::string pattern = glob_escape(prefix_ + std::string(key_prefix)) + "*";
    // A deadline per batch, not per scan, which may take long over many keys.
    Deadline deadline = Deadline::after(timeout_);
    Lease lease = acquire(deadline);
    std::string cursor = "0";
    do {
        const std::string_view command[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000", "TYPE", type};
        RedisReply batch = lease.command(command, deadline);
        if (batch.type != RedisReply::Type::array || batch.elements.size() != 2 ||
            batch.elements[0].type != RedisReply::Type::string || batch.elements[1].type != RedisReply::Type::array) {
            reply_failed("SCAN", batch);
        }
        const auto& keys = batch.elements[1].elements;

        std::vector<std::vector<std::string_view>> lookups;
        lookups.reserve(2 * keys.size());
        for (const auto& key : keys) {
            lookups.push_back({read, key.text});
            lookups.push_back({"PTTL", key.text});
        }
        const auto answers = lease.pipeline(lookups, deadline);
        const int64_t now = now_ms();
        for (size_t i = 0; i < keys.size(); ++i) {
            const RedisReply& ttl = answers[2 * i + 1];
            // Gone since SCAN saw it.
            if (ttl.type != RedisReply::Type::integer || ttl.integer == -2) continue;
            visit(keys[i].text.substr(prefix_.size()), answers[2 * i], ttl.integer >= 0 ? now + ttl.integer : 0);
        }
        cursor = std::move(batch.elements[0].text);
        deadline = Deadline::after(timeout_);
    } while (cursor != "0");
}

bool RedisStore::erase(std::string_view key) {
    const Deadline deadline = Deadline::after(timeout_);
    const std::string full_key = prefix_ + std::string(key);
    const std::string_view command[] = {"DEL", full_key};
    Lease lease = acquire(deadline);
    const RedisReply reply = lease.command(command, deadline);
    if (reply.type != RedisReply::Type::integer) reply_failed("DEL", reply);
    return reply.integer > 0;
}

void RedisStore::ping() {
    const Deadline deadline = Deadline::after(timeout_);
    const std::string_view command[] = {"PING"};
    Lease lease = acquire(deadline);
    const RedisReply reply = lease.command(command, deadline);
    if (reply.type == RedisReply::Type::error) reply_failed("PING", reply);
}

std::string RedisStore::describe() const { return description_; }

/* An idle connection, else a new one while the pool has room and no
 * failed connect forbids it; with all of them lent out, waits for one to
 * come back until DEADLINE. */
RedisStore::Lease RedisStore::acquire(const Deadline& deadline) {
    std::unique_lock lock(mutex_);
    for (;;) {
        if (!idle_.empty()) {
            RedisConnection connection = std::move(idle_.back());
            idle_.pop_back();
            return Lease(*this, std::move(connection));
        }
        if (connect_failed_ && (probing_ || Clock::now() < retry_at_)) {
            throw StoreError(description_ + ": " + last_error_);
        }
        if (open_ < kMaxConnections) return connect(lock, deadline);
        // Past the deadline even a connection that just came back is no
        // use: there is no time left to send on it.
        if (changed_.wait_until(lock, deadline.at) == std::cv_status::timeout) {
            throw StoreError(description_ + ": all " + std::to_string(kMaxConnections) +
                             " connections stayed busy for " + format_duration(timeout_));
        }
    }
}

/* A new connection, made by DEADLINE without the lock LOCK holds,
 * keeping a place in the pool meanwhile. */
RedisStore::Lease RedisStore::connect(std::unique_lock<std::mutex>& lock, const Deadline& deadline) {
    ++open_;
    const bool probe = connect_failed_;
    if (probe) probing_ = true;
    lock.unlock();
    std::optional<RedisConnection> connection;
    std::string error;
    try {
        connection.emplace(endpoint_, deadline);
    } catch (const StoreError& failure) {
        error = failure.what();
    }
    lock.lock();
    if (probe) probing_ = false;
    if (!connection) {
        --open_;
        connect_failed_ = true;
        retry_at_ = Clock::now() + kRetryDelay;
        note_failure(error);
        // The waiters now fail at once rather than at their deadlines.
        changed_.notify_all();
        throw StoreError(description_ + ": " + error);
    }
    // Not yet a sign of health: a hung Redis still accepts connections.
    connect_failed_ = false;
    return Lease(*this, std::move(*connection));
}

void RedisStore::give_back(RedisConnection connection) {
    {
        const std::scoped_lock lock(mutex_);
        if (connection.broken()) {
            --open_;
        } else {
            idle_.push_back(std::move(connection));
            note_success();
        }
    }
    changed_.notify_one();
}

void RedisStore::connection_failed(const std::string& reason) {
    std::vector<RedisConnection> stale;
    {
        const std::scoped_lock lock(mutex_);
        // One dead connection usually means all are (Redis restarted and
        // closed them): drop the idle ones now rather than fail one call
        // on each.
        stale.swap(idle_);
        open_ -= stale.size();
        note_failure(reason);
    }
    changed_.notify_all();
}

void RedisStore::note_failure(const std::string& reason) {
    last_error_ = reason;
    if (!reachable_) return;
    reachable_ = false;
    log::warning("store: " + description_ + " unreachable: " + reason);
}

void RedisStore::note_success() {
    connect_failed_ = false;
    if (reachable_) return;
    reachable_ = true;
    log::info("store: " + description_ + " reachable again");
}

void RedisStore::reply_failed(std::string_view what, const RedisReply& reply) const {
    if (reply.type == RedisReply::Type::error) {
        throw StoreError(description_ + ": " + std::string(what) + " failed: " + reply.text);
    }
    throw StoreError(description_ + ": unexpected reply to " + std::string(what));
}

}  // namespace portcullis::store
