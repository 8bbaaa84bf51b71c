/*
 * redis_store.cc: store.url, a link per loop, the server's health, and
 * the Store calls as Redis commands.
 */
#include "store/redis_store.h"

#include <optional>
#include <utility>

#include "metrics/metrics.h"
#include "util/digest.h"
#include "util/log.h"

namespace portcullis::store {

namespace {

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

/* A script's reply as strings (see redis_store.h); nullopt when it is
 * not one a script gives. */
std::optional<std::vector<std::string>> script_values(const RedisReply& reply) {
    if (reply.type == RedisReply::Type::nil) return std::vector<std::string>{};
    if (reply.type != RedisReply::Type::array) {
        auto text = as_text(reply);
        if (!text) return std::nullopt;
        return std::vector<std::string>{std::move(*text)};
    }
    std::vector<std::string> values;
    values.reserve(reply.elements.size());
    for (const auto& element : reply.elements) {
        auto text = as_text(element);
        if (!text) return std::nullopt;
        values.push_back(std::move(*text));
    }
    return values;
}

/* Why REPLY is not what WHAT should answer. */
std::string reply_problem(std::string_view what, const RedisReply& reply) {
    if (reply.type == RedisReply::Type::error) return std::string(what) + " failed: " + reply.text;
    return "unexpected reply to " + std::string(what);
}

}  // namespace

void ServerHealth::report(bool ok, const std::string& error) {
    // Every reply reports: the common case must not take the lock.
    if (ok == reachable_.load(std::memory_order_relaxed)) return;
    const std::lock_guard lock(mutex_);
    if (ok == reachable_.load()) return;
    reachable_ = ok;
    metrics::set_store_up(ok);
    failure_ = ok ? "" : "unreachable since " + utc_time(now_ms()) + ": " + error;
    if (ok) log::info("store: " + description_ + " reachable again");
    else log::warning("store: " + description_ + " unreachable: " + error);
}

std::string ServerHealth::state() const {
    const std::lock_guard lock(mutex_);
    return failure_.empty() ? "ok" : failure_;
}

/* One blocking call's own loop and connection. */
class RedisStore::Blocking {
public:
    explicit Blocking(const RedisStore& store) : store_(store), link_(loop_, store.address_, store.timeout_) {}

    /* ARGS' reply; throws StoreError when the exchange fails. */
    RedisReply call(std::span<const std::string_view> args) {
        std::optional<LinkResult> result;
        link_.command(args, [&result](LinkResult got) { result = std::move(got); });
        loop_.run_until([&result] { return result.has_value(); });
        if (!result->ok) throw StoreError(store_.description_ + ": " + result->error);
        return std::move(result->reply);
    }

    /* The replies to COMMANDS, sent together. */
    std::vector<RedisReply> pipeline(const std::vector<std::vector<std::string_view>>& commands) {
        std::vector<std::optional<LinkResult>> results(commands.size());
        size_t answered = 0;
        for (size_t i = 0; i < commands.size(); ++i) {
            link_.command(commands[i], [&results, &answered, i](LinkResult got) {
                results[i] = std::move(got);
                ++answered;
            });
        }
        loop_.run_until([&] { return answered == commands.size(); });
        std::vector<RedisReply> replies;
        replies.reserve(results.size());
        for (auto& result : results) {
            if (!result->ok) throw StoreError(store_.description_ + ": " + result->error);
            replies.push_back(std::move(result->reply));
        }
        return replies;
    }

    /* REPLY was not what WHAT should answer. */
    [[noreturn]] void refuse(std::string_view what, const RedisReply& reply) const {
        throw StoreError(store_.description_ + ": " + reply_problem(what, reply));
    }

private:
    const RedisStore& store_;
    EventLoop loop_;
    RedisLink link_;
};


RedisEndpoint redis_endpoint(const config::Config::Store& settings) {
    // Before the URL: a sentinel or cluster URL is a list, not one server.
    if (settings.mode != config::StoreMode::standalone) {
        throw StoreSettingsError("store.mode", "\"" + std::string(mode_name(settings.mode)) +
                                                   "\" is not supported by this build: it talks to one Redis server; "
                                                   "use store.mode \"standalone\"");
    }
    if (settings.timeout <= Millis::zero()) throw StoreSettingsError("store.timeout", "must be more than zero");
    try {
        return parse_redis_url(settings.url);
    } catch (const RedisUrlError& bad) {
        throw StoreSettingsError("store.url", bad.what());
    }
}

RedisStore::RedisStore(const config::Config::Store& settings) : prefix_(settings.prefix), timeout_(settings.timeout) {
    const RedisEndpoint endpoint = redis_endpoint(settings);
    description_ = describe_endpoint(endpoint);
    address_ = resolve_endpoint(endpoint);
    health_ = std::make_shared<ServerHealth>(description_);
    links_ = std::make_unique<PerLoop<RedisLink>>([this](EventLoop& loop) {
        return std::make_shared<RedisLink>(loop, address_, timeout_,
                                           [health = health_](bool ok, const std::string& error) {
                                               health->report(ok, error);
                                           });
    });
}

void RedisStore::run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
                     Done done) {
    evaluate(script.name, script.lua, key, now_ms, args, std::move(done));
}

void RedisStore::run(const HashScript& script, std::string_view key, int64_t now_ms,
                     std::span<const std::string> args, Done done) {
    evaluate(script.name, script.lua, key, now_ms, args, std::move(done));
}

void RedisStore::evaluate(std::string_view name, std::string_view lua, std::string_view key, int64_t now_ms,
                          std::span<const std::string> args, Done done) {
    RedisLink& link = links_->here();
    const std::string sha = sha1_hex(lua);
    const std::string full_key = prefix_ + std::string(key);
    const std::string now = std::to_string(now_ms);
    std::vector<std::string_view> command{"EVALSHA", sha, "1", full_key, now};
    command.insert(command.end(), args.begin(), args.end());
    // Kept for a second try with EVAL: Redis forgets its scripts on
    // restart and on SCRIPT FLUSH, and EVAL runs the source and caches it.
    std::vector<std::string> again(command.begin(), command.end());
    again[0] = "EVAL";
    again[1] = lua;
    auto finish = [label = script_label(name), description = description_, done](const LinkResult& result) {
        StoreResult answer;
        if (!result.ok) {
            answer.error = description + ": " + result.error;
        } else if (result.reply.type == RedisReply::Type::error) {
            answer.error = description + ": " + reply_problem(label, result.reply);
        } else if (auto values = script_values(result.reply)) {
            answer.values = std::move(*values);
        } else {
            answer.error = description + ": unexpected reply to " + label;
        }
        done(std::move(answer));
    };
    const auto started = std::chrono::steady_clock::now();
    link.command(command, [&link, again = std::move(again), finish, started](LinkResult result) {
        if (result.ok && result.reply.type == RedisReply::Type::error && result.reply.text.starts_with("NOSCRIPT")) {
            const std::vector<std::string_view> eval(again.begin(), again.end());
            link.command(eval, finish, started);   // within the call's one store.timeout
            return;
        }
        finish(result);
    });
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
    Blocking blocking(*this);
    std::string cursor = "0";
    do {
        const std::string_view command[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000", "TYPE", type};
        RedisReply batch = blocking.call(command);
        if (batch.type != RedisReply::Type::array || batch.elements.size() != 2 ||
            batch.elements[0].type != RedisReply::Type::string || batch.elements[1].type != RedisReply::Type::array) {
            blocking.refuse("SCAN", batch);
        }
        const auto& keys = batch.elements[1].elements;
        std::vector<std::vector<std::string_view>> lookups;
        lookups.reserve(2 * keys.size());
        for (const auto& key : keys) {
            lookups.push_back({read, key.text});
            lookups.push_back({"PTTL", key.text});
        }
        const auto answers = blocking.pipeline(lookups);
        const int64_t now = now_ms();
        for (size_t i = 0; i < keys.size(); ++i) {
            const RedisReply& ttl = answers[2 * i + 1];
            // Gone since SCAN saw it.
            if (ttl.type != RedisReply::Type::integer || ttl.integer == -2) continue;
            visit(keys[i].text.substr(prefix_.size()), answers[2 * i], ttl.integer >= 0 ? now + ttl.integer : 0);
        }
        cursor = std::move(batch.elements[0].text);
    } while (cursor != "0");
}

bool RedisStore::erase(std::string_view key) {
    const std::string full_key = prefix_ + std::string(key);
    const std::string_view command[] = {"DEL", full_key};
    Blocking blocking(*this);
    const RedisReply reply = blocking.call(command);
    if (reply.type != RedisReply::Type::integer) blocking.refuse("DEL", reply);
    return reply.integer > 0;
}

void RedisStore::ping() {
    const std::string_view command[] = {"PING"};
    Blocking blocking(*this);
    const RedisReply reply = blocking.call(command);
    if (reply.type == RedisReply::Type::error) blocking.refuse("PING", reply);
}

std::string RedisStore::describe() const { return description_; }

}  // namespace portcullis::store
