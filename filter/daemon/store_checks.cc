/*
 * store_checks.cc: greylist and ratelimit rules on the store, with
 * on_error and metrics.
 */
#include "daemon/store_checks.h"

#include <chrono>

#include "metrics/metrics.h"
#include "util/text.h"
#include "util/units.h"

namespace portcullis::daemon {

namespace {

using Kind = policy::StatefulAnswer::Kind;

/* "bucket=NAME levels=3/200/1h,7/1000/1d" (events now / COUNT / PERIOD);
 * bucket names have no spaces, so the log line splits on them. */
std::string levels_note(const std::string& bucket, const std::vector<policy::Rate>& rates,
                        const checks::RatelimitDecision& decision) {
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict)
    // about "literal" + std::string.
    std::string note = "bucket=";
    note += bucket;
    note += " levels=";
    for (size_t i = 0; i < rates.size() && i < decision.levels.size(); ++i) {
        if (i > 0) note += ',';
        note += std::to_string(decision.levels[i]);
        note += '/';
        note += policy::rate_text(rates[i]);
    }
    return note;
}

/* The answer to one check: from DECIDE when the store gave a decision,
 * else what ON_ERROR says, counted with COUNT("store-error").  The time
 * the store took is observed either way. */
template <typename Decision, typename Decide>
policy::StatefulAnswer answer(const store::Outcome<Decision>& outcome, std::chrono::steady_clock::time_point started,
                              config::OnError on_error, void (*count)(std::string_view), Decide decide) {
    metrics::observe_store(std::chrono::steady_clock::now() - started);
    if (outcome.value) return decide(*outcome.value);
    count("store-error");
    const bool accept = on_error == config::OnError::accept;
    std::string note = "reason=store-error on_error=" + std::string(accept ? "accept" : "tempfail") +
                       " error=" + in_quotes(outcome.error);
    return {accept ? Kind::pass : Kind::unavailable, 0, std::move(note)};
}

policy::StatefulAnswer greylist_answer(const checks::GreylistDecision& decision) {
    const std::string reason(checks::reason_name(decision.reason));
    metrics::count_greylist(reason);
    if (decision.passes()) return {Kind::pass, 0, "reason=" + reason};
    return {Kind::refuse, decision.wait_seconds, "reason=" + reason + " wait=" + std::to_string(decision.wait_seconds) + "s"};
}

}  // namespace

StoreChecks::StoreChecks(std::shared_ptr<store::Store> store, config::OnError on_error)
    : store_(std::move(store)), greylist_(*store_), ratelimit_(*store_), on_error_(on_error) {}

// The callbacks below may outlive this object and the rule (Redis answers
// after the session is gone): they hold copies, never references.

void StoreChecks::greylist(const policy::GreylistParams& params, const policy::Facts& facts, Done done) {
    if (!facts.client_ip) return done({Kind::pass, 0, "reason=local-client"});
    const auto triplet = checks::make_triplet(*facts.client_ip, facts.sender, facts.rcpt, params.by_host);
    greylist_.check(triplet, params,
                    [started = std::chrono::steady_clock::now(), on_error = on_error_,
                     done = std::move(done)](store::Outcome<checks::GreylistDecision> outcome) {
                        done(answer(outcome, started, on_error, metrics::count_greylist, greylist_answer));
                    });
}

void StoreChecks::ratelimit(const policy::RatelimitParams& params, std::span<const std::string> key, Done done) {
    std::vector<checks::RateLimit> rates;
    for (const policy::Rate& rate : params.rates) rates.push_back({rate.count, rate.period});
    auto decide = [bucket = params.bucket, rates = params.rates](const checks::RatelimitDecision& decision) {
        std::string note = levels_note(bucket, rates, decision);
        if (decision.allowed) {
            metrics::count_ratelimit("pass");
            return policy::StatefulAnswer{Kind::pass, 0, std::move(note)};
        }
        metrics::count_ratelimit("over");
        const uint64_t retry_seconds = (static_cast<uint64_t>(decision.retry_in_ms) + 999) / 1000;
        note += " over=" + policy::rate_text(rates[decision.over]) + " retry=" + std::to_string(retry_seconds) + "s";
        return policy::StatefulAnswer{Kind::refuse, retry_seconds, std::move(note)};
    };
    ratelimit_.take(checks::bucket_key(params.bucket, key), rates,
                    [started = std::chrono::steady_clock::now(), on_error = on_error_, decide = std::move(decide),
                     done = std::move(done)](store::Outcome<checks::RatelimitDecision> outcome) {
                        done(answer(outcome, started, on_error, metrics::count_ratelimit, decide));
                    });
}

}  // namespace portcullis::daemon
