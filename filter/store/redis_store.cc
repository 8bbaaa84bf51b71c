/*
 * redis_store.cc: the Store calls as Redis commands, through the
 * topology.
 */
#include "store/redis_store.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>
#include <utility>

#include "metrics/metrics.h"
#include "util/digest.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::store {

namespace {

/* SCAN MATCH takes a glob: the * ? [ ] \ of a key must match only themselves. */
std::string glob_escape(std::string_view text) {
    std::string escaped;
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped += '\\';
        escaped += c;
    }
    return escaped;
}

/* A SCAN cursor: a decimal number (an unsigned 64-bit one, in Redis). */
bool is_cursor(const RedisReply& reply) {
    return reply.type == RedisReply::Type::string && parse_decimal<uint64_t>(reply.text).has_value();
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

/* The kind of a failed run() whose reply was an error. */
std::string_view reply_error_kind(const LinkResult& result) {
    const std::string_view code = error_code(result);
    if (code == "READONLY" || code == "MASTERDOWN") return error_kind::readonly;
    if (code == "LOADING") return error_kind::loading;
    if (code == "CLUSTERDOWN" || code == "TRYAGAIN") return error_kind::clusterdown;
    if (code == "MOVED" || code == "ASK") return error_kind::redirects;
    return error_kind::script;
}

/* A command on KEY (already prefixed), encoded. */
std::shared_ptr<KeyCommand> key_command(std::string key, std::span<const std::string_view> args) {
    auto command = std::make_shared<KeyCommand>();
    command->key = std::move(key);
    encode_command(command->encoded, args);
    return command;
}

/* The SHA-1 that names LUA for EVALSHA, worked out once per script and
 * thread (hashing a script of some kilobytes cost a few microseconds of
 * every call): scripts are constants, so the text's address names it. */
std::string_view script_sha(std::string_view lua) {
    struct Known {
        const char* text;
        size_t size;
        std::string sha;
    };
    thread_local std::vector<Known> known;
    for (const Known& script : known) {
        if (script.text == lua.data() && script.size == lua.size()) return script.sha;
    }
    return known.emplace_back(Known{lua.data(), lua.size(), sha1_hex(lua)}).sha;
}

/* The scripts whose EVAL this thread has sent and not yet had answered,
 * each as many times as it is on its way.  A restarted server answers
 * NOSCRIPT to every call at once, and an EVAL each (the script's source,
 * some kB) would pile up in the link's buffer, 750 kB with 500 sessions,
 * a buffer the link then keeps.  A call that meets NOSCRIPT while an EVAL
 * of its script is on its way sends EVALSHA again instead: on the same
 * link that goes behind the EVAL, which caches the script first; only if
 * that meets NOSCRIPT too (another node of a cluster) does it send EVAL. */
thread_local std::vector<const char*> scripts_loading;

/* One EVAL on its way, from sent until its callback is done with
 * (answered, or dropped with its link). */
class ScriptLoading {
public:
    explicit ScriptLoading(std::string_view lua) : text_(lua.data()) { scripts_loading.push_back(text_); }
    ~ScriptLoading() {
        // Dropped on another thread (a link destroyed with its store), it
        // finds nothing, or takes another EVAL's mark: that costs an EVAL
        // or a round trip more, never a wrong answer.
        const auto at = std::find(scripts_loading.begin(), scripts_loading.end(), text_);
        if (at != scripts_loading.end()) scripts_loading.erase(at);
    }
    ScriptLoading(const ScriptLoading&) = delete;
    ScriptLoading& operator=(const ScriptLoading&) = delete;

    static bool on_its_way(std::string_view lua) {
        return std::find(scripts_loading.begin(), scripts_loading.end(), lua.data()) != scripts_loading.end();
    }

private:
    const char* text_;
};

}  // namespace

/* One blocking call's own loop: what the admin calls wait on. */
class RedisStore::Blocking {
public:
    explicit Blocking(const RedisStore& store) : store_(store) {}

    /* The masters, found now. */
    std::vector<LinkAddress> masters() {
        std::optional<std::pair<std::vector<LinkAddress>, std::string>> found;
        run([&](const auto& stop) {
            store_.topology_->masters([&found, stop](std::vector<LinkAddress> masters, std::string error) {
                found.emplace(std::move(masters), std::move(error));
                stop();
            });
        });
        if (!found->second.empty()) throw StoreError(store_.describe() + ": " + found->second);
        return std::move(found->first);
    }

    /* ARGS' reply from the server of LINK; throws StoreError when the
     * exchange fails. */
    RedisReply call(RedisLink& link, std::span<const std::string_view> args) {
        std::optional<LinkResult> result;
        run([&](const auto& stop) {
            link.command(args, [&result, stop](LinkResult got) {
                result = std::move(got);
                stop();
            });
        });
        if (!result->ok) fail(link, result->error);
        return std::move(result->reply);
    }

    /* The most SCAN rounds a walk of LINK's database may take: a full SCAN
     * of COUNT 1000 takes about DBSIZE / 1000 of them (Redis visits up to
     * ten times COUNT empty buckets a round, and keeps its table at least
     * a tenth full), so ten times that, and 1000 more for keys added
     * meanwhile. */
    uint64_t most_scan_rounds(RedisLink& link) {
        const std::string_view command[] = {"DBSIZE"};
        const RedisReply size = call(link, command);
        if (size.type != RedisReply::Type::integer || size.integer < 0) refuse("DBSIZE", size);
        return 1000 + static_cast<uint64_t>(size.integer) / 100;
    }

    /* The replies to COMMANDS, each sent to the master of its key (its
     * second word), together. */
    std::vector<RedisReply> routed(const std::vector<std::vector<std::string_view>>& commands) {
        std::vector<std::optional<LinkResult>> results(commands.size());
        size_t answered = 0;
        run([&](const auto& stop) {
            if (commands.empty()) return stop();
            for (size_t i = 0; i < commands.size(); ++i) {
                store_.topology_->send(key_command(std::string(commands[i][1]), commands[i]),
                                       [&results, &answered, i, stop, count = commands.size()](LinkResult got) {
                                           results[i] = std::move(got);
                                           if (++answered == count) stop();
                                       });
            }
        });
        std::vector<RedisReply> replies;
        replies.reserve(results.size());
        for (auto& result : results) {
            if (!result->ok) throw StoreError(store_.describe() + ": " + result->error);
            replies.push_back(std::move(result->reply));
        }
        return replies;
    }

    EventLoop& loop() { return loop_; }

    /* REPLY was not what WHAT should answer. */
    [[noreturn]] void refuse(std::string_view what, const RedisReply& reply) const {
        throw StoreError(store_.describe() + ": " + reply_problem(what, reply));
    }

    /* The exchange with the server of LINK failed: WHY. */
    [[noreturn]] void fail(const RedisLink& link, const std::string& why) const {
        throw StoreError(store_.describe() + ": " + server_of(link) + why);
    }

private:
    /* "HOST:PORT: " for messages, when the store's name does not say it. */
    std::string server_of(const RedisLink& link) const {
        const std::string& name = link.address().name;
        return store_.describe().find(name) == std::string::npos ? name + ": " : "";
    }

    /* START(stop) on this loop, served until it calls stop(). */
    void run(const std::function<void(const std::function<void()>&)>& start) {
        bool done = false;
        const std::function<void()> stop = [&done] { done = true; };
        loop_.post([&] { start(stop); });
        loop_.run_until([&done] { return done; });
    }

    const RedisStore& store_;
    EventLoop loop_;
};

RedisStore::RedisStore(const config::Config::Store& settings)
    : prefix_(settings.prefix), timeout_(settings.timeout),
      topology_(make_topology(redis_servers(settings), settings.timeout)) {}

RedisStore::~RedisStore() = default;

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
    // EVALSHA first; EVAL, which runs the source and caches it on the node
    // that has the key now, only after NOSCRIPT.  The two differ only in
    // their first two arguments, so what follows is encoded once.
    auto evalsha = std::make_shared<KeyCommand>();
    evalsha->key = prefix_;
    evalsha->key += key;
    const size_t arguments = 5 + args.size();
    std::string shared_tail;
    append_argument(shared_tail, "1");
    append_argument(shared_tail, evalsha->key);
    char now[24];
    append_argument(shared_tail, std::string_view(now, std::to_chars(now, now + sizeof now, now_ms).ptr));
    for (const auto& arg : args) append_argument(shared_tail, arg);
    begin_command(evalsha->encoded, arguments);
    append_argument(evalsha->encoded, "EVALSHA");
    append_argument(evalsha->encoded, script_sha(lua));
    evalsha->encoded += shared_tail;

    // The texts of an error are made only for an error.
    auto finish = [this, name, done = std::move(done)](LinkResult result) {
        StoreResult answer;
        std::string_view kind = result.kind;
        if (!result.ok) {
            answer.error = describe() + ": " + result.error;
        } else if (result.reply.type == RedisReply::Type::error) {
            answer.error = describe() + ": " + reply_problem(script_label(name), result.reply);
            kind = reply_error_kind(result);
        } else if (auto values = script_values(result.reply)) {
            answer.values = std::move(*values);
        } else {
            answer.error = describe() + ": unexpected reply to " + script_label(name);
            kind = error_kind::script;
        }
        if (answer.error) metrics::count_store_error(kind);
        done(std::move(answer));
    };
    auto call = std::make_shared<ScriptCall>(ScriptCall{std::move(evalsha), lua, arguments, std::move(shared_tail),
                                                        std::move(finish), std::chrono::steady_clock::now()});
    send_evalsha(std::move(call), true);
}

void RedisStore::send_evalsha(std::shared_ptr<const ScriptCall> call, bool first_try) {
    const auto since = first_try ? std::chrono::steady_clock::time_point{} : call->started;
    topology_->send(call->evalsha, [this, call, first_try](LinkResult result) {
        if (error_code(result) != "NOSCRIPT") return call->finish(std::move(result));
        if (first_try && ScriptLoading::on_its_way(call->lua)) return send_evalsha(call, false);
        send_eval(call);
    }, since);
}

void RedisStore::send_eval(std::shared_ptr<const ScriptCall> call) {
    auto eval = std::make_shared<KeyCommand>();
    eval->key = call->evalsha->key;
    begin_command(eval->encoded, call->arguments);
    append_argument(eval->encoded, "EVAL");
    append_argument(eval->encoded, call->lua);
    eval->encoded += call->shared_tail;
    auto loading = std::make_shared<const ScriptLoading>(call->lua);
    // Within the call's one store.timeout.
    topology_->send(std::move(eval), [call, loading](LinkResult result) { call->finish(std::move(result)); },
                    call->started);
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
    const std::string full_prefix = prefix_ + std::string(key_prefix);
    const std::string pattern = glob_escape(full_prefix) + "*";
    Blocking blocking(*this);
    for (const LinkAddress& master : blocking.masters()) {
        RedisLink link(blocking.loop(), master, timeout_);
        const uint64_t most_rounds = blocking.most_scan_rounds(link);
        std::set<std::string> cursors;   // each is new, or the server's SCAN would never end
        std::string cursor = "0";
        for (uint64_t round = 1;; ++round) {
            const std::string_view command[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000", "TYPE", type};
            RedisReply batch = blocking.call(link, command);
            if (batch.type != RedisReply::Type::array || batch.elements.size() != 2 ||
                !is_cursor(batch.elements[0]) || batch.elements[1].type != RedisReply::Type::array) {
                blocking.refuse("SCAN", batch);
            }
            const auto& keys = batch.elements[1].elements;
            std::vector<std::vector<std::string_view>> lookups;
            lookups.reserve(2 * keys.size());
            for (const auto& key : keys) {
                if (key.type != RedisReply::Type::string || !key.text.starts_with(full_prefix)) {
                    blocking.fail(link, "SCAN gave a key that does not start with '" + full_prefix + "'");
                }
                lookups.push_back({read, key.text});
                lookups.push_back({"PTTL", key.text});
            }
            const auto answers = blocking.routed(lookups);
            const int64_t now = now_ms();
            for (size_t i = 0; i < keys.size(); ++i) {
                const RedisReply& ttl = answers[2 * i + 1];
                // Gone since SCAN saw it.
                if (ttl.type != RedisReply::Type::integer || ttl.integer == -2) continue;
                visit(keys[i].text.substr(prefix_.size()), answers[2 * i], ttl.integer >= 0 ? now + ttl.integer : 0);
            }
            cursor = std::move(batch.elements[0].text);
            if (cursor == "0") break;
            if (!cursors.insert(cursor).second) blocking.fail(link, "SCAN gave the cursor " + cursor + " again");
            if (round == most_rounds) {
                blocking.fail(link, "SCAN did not end within " + std::to_string(most_rounds) + " rounds");
            }
        }
    }
}

bool RedisStore::erase(std::string_view key) {
    const std::string full_key = prefix_ + std::string(key);
    Blocking blocking(*this);
    const RedisReply reply = blocking.routed({{"DEL", full_key}}).front();
    if (reply.type != RedisReply::Type::integer) blocking.refuse("DEL", reply);
    return reply.integer > 0;
}

void RedisStore::ping() {
    const std::string_view command[] = {"PING"};
    Blocking blocking(*this);
    const auto masters = blocking.masters();
    if (masters.empty()) throw StoreError(describe() + ": no master serves any key");
    for (const LinkAddress& master : masters) {
        RedisLink link(blocking.loop(), master, timeout_);
        const RedisReply reply = blocking.call(link, command);
        if (reply.type == RedisReply::Type::error) blocking.refuse("PING", reply);
    }
}

std::string RedisStore::describe() const { return topology_->describe(); }

std::string RedisStore::health() const { return topology_->health(); }

}  // namespace portcullis::store
