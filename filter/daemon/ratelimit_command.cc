/*
 * ratelimit_command.cc: `portcullis ratelimit show|reset VALUE...`, the
 * administrator's view of rate-limit buckets in the configured store.
 *
 *   show  VALUE... [--bucket NAME]   each rate of every bucket whose key
 *         has as many fields as VALUEs were given: the events counted in
 *         its window, whether there is room, and when a slot frees
 *   reset VALUE... [--bucket NAME]   forget those buckets
 *
 * VALUEs are the key's field values in the rule's order ("alice", or
 * "203.0.113.5" "example.com" for (client.ip, sender.domain)), normalised
 * as the daemon does (case, +extension).  The policy is loaded to learn
 * the buckets and their rates.  While the daemon runs, the request goes
 * to its control socket and the daemon answers with its running policy
 * and its live store.  Otherwise the command line loads the policy (a
 * policy with errors is reported first) and opens the store itself:
 * Redis, or with the memory backend the snapshot the daemon last wrote
 * (up to a minute old), which show reads and reset cannot change.
 */
#include <algorithm>
#include <cstdio>
#include <map>

#include "checks/ratelimit.h"
#include "daemon/commands.h"
#include "daemon/control.h"
#include "daemon/store_admin.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

/* One bucket as the rules name it: its rates, from every rule using it. */
struct BucketRules {
    std::vector<policy::Rate> rates;
    std::string rules;                  // "policy.rules:37, policy.rules:52"
};

/* The buckets whose key has KEY_FIELDS fields, by name (NAME_FILTER: only that one). */
std::map<std::string, BucketRules> buckets_of(const policy::Policy& policy, size_t key_fields,
                                              const std::string& name_filter) {
    std::map<std::string, BucketRules> buckets;
    for (const auto& stage_rules : policy.rules) {
        for (const policy::Rule& rule : stage_rules) {
            if (rule.action != policy::ActionKind::ratelimit || rule.ratelimit.key.size() != key_fields) continue;
            if (!name_filter.empty() && !equals_nocase(rule.ratelimit.bucket, name_filter)) continue;
            BucketRules& bucket = buckets[rule.ratelimit.bucket];
            bucket.rules += (bucket.rules.empty() ? "" : ", ") + rule.where.log_str();
            for (const policy::Rate& rate : rule.ratelimit.rates) {
                const bool known = std::any_of(bucket.rates.begin(), bucket.rates.end(), [&](const policy::Rate& seen) {
                    return seen.count == rate.count && seen.period == rate.period;
                });
                if (!known) bucket.rates.push_back(rate);
            }
        }
    }
    return buckets;
}

std::string seconds_text(int64_t ms) { return format_duration(Millis((ms + 999) / 1000 * 1000)); }

void show_bucket(checks::Ratelimit& limiter, const std::string& name, const BucketRules& bucket,
                 const std::string& key, Output& out) {
    out.out("bucket %s (%s)\n", in_quotes(name).c_str(), bucket.rules.c_str());
    const auto levels = limiter.show(key);
    for (const policy::Rate& rate : bucket.rates) {
        const auto found = std::find_if(levels.begin(), levels.end(),
                                        [&](const checks::RateLevel& level) { return level.period == rate.period; });
        const std::string limit = policy::rate_text(rate);
        if (found == levels.end()) {
            out.out("  %-10s 0 events\n", limit.c_str());
            continue;
        }
        const bool full = found->level >= rate.count;
        out.out("  %-10s %llu events, %s, a slot frees in %s\n", limit.c_str(),
                    static_cast<unsigned long long>(found->level), full ? "full" : "room",
                    seconds_text(found->frees_in_ms).c_str());
    }
}

}  // namespace

int ratelimit_admin(const policy::Policy& policy, store::Store& store, const RatelimitOptions& options, Output& out) {
    auto usage = [&out](const std::string& message) { return admin_usage(out, "ratelimit", message); };
    if (options.action != "show" && options.action != "reset") return usage("unknown action " + in_quotes(options.action));
    if (options.key.empty()) return usage("give the key's value: " + options.action + " VALUE [VALUE...]");
    const auto buckets = buckets_of(policy, options.key.size(), options.bucket);
    if (buckets.empty()) {
        return usage("no ratelimit rule" + (options.bucket.empty() ? "" : " of bucket " + in_quotes(options.bucket)) +
                     " has a key of " + std::to_string(options.key.size()) + " field" +
                     (options.key.size() == 1 ? "" : "s"));
    }
    std::vector<std::string> values;
    for (const std::string& value : options.key) values.emplace_back(strip_angle_brackets(value));
    checks::Ratelimit limiter(store);
    for (const auto& [name, bucket] : buckets) {
        const std::string key = checks::bucket_key(name, values);
        if (options.action == "show") {
            show_bucket(limiter, name, bucket, key, out);
        } else {
            out.out("bucket %s: %s\n", in_quotes(name).c_str(), limiter.reset(key) ? "reset" : "no events");
        }
    }
    return kExitOk;
}

ControlRequest ratelimit_request(const RatelimitOptions& options) {
    ControlRequest request{"ratelimit", {{"action", options.action}, {"bucket", options.bucket}}};
    for (const std::string& value : options.key) request.values.emplace("key", value);
    return request;
}

RatelimitOptions ratelimit_options(const ControlRequest& request) {
    return {request.get("action"), request.all("key"), request.get("bucket")};
}

int ratelimit_command(const ConfigSource& source, const RatelimitOptions& options) {
    TerminalOutput out;
    auto loaded = config::load_config(source.path, source.path_given, source.overrides);
    for (const auto& error : loaded.errors) out.err("%s\n", error.str().c_str());
    if (!loaded.config) return kExitBadConfig;
    if (const auto reply = ask_daemon(*loaded.config, ratelimit_request(options))) return print_reply(*reply, out);

    auto outcome = load_state(source);
    for (const auto& error : outcome.errors) out.err("%s\n", error.c_str());
    if (!outcome.state) return kExitBadConfig;
    const auto& settings = outcome.state->config.store;
    if (const std::string refusal = live_state_refusal(settings, options.action, "show reads");
        options.action == "reset" && !refusal.empty()) {
        return admin_usage(out, "ratelimit", refusal);
    }
    return with_store_view(settings, "ratelimit", out, [&](store::Store& store) {
        return ratelimit_admin(*outcome.state->snapshot->policy, store, options, out);
    });
}

}  // namespace portcullis::daemon
