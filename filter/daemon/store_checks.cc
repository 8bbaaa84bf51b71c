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

checks::GreylistSettings settings_of(const policy::GreylistParams& params) {
    return {params.delay, params.window, params.expire, params.awl, params.by_host};
}

/* "bucket=NAME levels=3/200/1h,7/1000/1d" (events now / COUNT / PERIOD);
 * bucket names have no spaces, so the log line splits on them. */
std::string levels_note(const policy::RatelimitParams& params, const checks::RatelimitDecision& decision) {
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict)
    // about "literal" + std::string.
    std::string note = "bucket=";
    note += params.bucket;
    note += " levels=";
    for (size_t i = 0; i < params.rates.size() && i < decision.levels.size(); ++i) {
        if (i > 0) note += ',';
        note += std::to_string(decision.levels[i]);
        note += '/';
        note += policy::rate_text(params.rates[i]);
    }
    return note;
}

}  // namespace

StoreChecks::StoreChecks(std::shared_ptr<store::Store> store, config::OnError on_error)
    : store_(std::move(store)), greylist_(*store_), ratelimit_(*store_), on_error_(on_error) {}

template <typename Check>
policy::StatefulAnswer StoreChecks::timed(void (*count)(std::string_view), Check check) {
    const auto started = std::chrono::steady_clock::now();
    try {
        policy::StatefulAnswer answer = check();
        metrics::observe_store(std::chrono::steady_clock::now() - started, true);
        return answer;
    } catch (const store::StoreError& error) {
        metrics::observe_store(std::chrono::steady_clock::now() - started, false);
        count("store-error");
        const bool accept = on_error_ == config::OnError::accept;
        std::string note = "reason=store-error on_error=" + std::string(accept ? "accept" : "tempfail") +
                           " error=" + in_quotes(error.what());
        return {accept ? Kind::pass : Kind::unavailable, 0, std::move(note)};
    }
}

policy::StatefulAnswer StoreChecks::greylist(const policy::GreylistParams& params, const policy::Facts& facts) {
    if (!facts.client_ip) return {Kind::pass, 0, "reason=local-client"};
    const auto triplet = checks::make_triplet(*facts.client_ip, facts.sender, facts.rcpt, params.by_host);
    return timed(metrics::count_greylist, [&]() -> policy::StatefulAnswer {
        const auto decision = greylist_.check(triplet, settings_of(params));
        const std::string reason(checks::reason_name(decision.reason));
        metrics::count_greylist(reason);
        if (decision.passes()) return {Kind::pass, 0, "reason=" + reason};
        return {Kind::refuse, decision.wait_seconds,
                "reason=" + reason + " wait=" + std::to_string(decision.wait_seconds) + "s"};
    });
}

policy::StatefulAnswer StoreChecks::ratelimit(const policy::RatelimitParams& params, std::span<const std::string> key) {
    std::vector<checks::RateLimit> rates;
    for (const policy::Rate& rate : params.rates) rates.push_back({rate.count, rate.period});
    return timed(metrics::count_ratelimit, [&]() -> policy::StatefulAnswer {
        const auto decision = ratelimit_.take(checks::bucket_key(params.bucket, key), rates);
        std::string note = levels_note(params, decision);
        if (decision.allowed) {
            metrics::count_ratelimit("pass");
            return {Kind::pass, 0, std::move(note)};
        }
        metrics::count_ratelimit("over");
        const uint64_t retry_seconds = (static_cast<uint64_t>(decision.retry_in_ms) + 999) / 1000;
        note += " over=" + policy::rate_text(params.rates[decision.over]) + " retry=" + std::to_string(retry_seconds) + "s";
        return {Kind::refuse, retry_seconds, std::move(note)};
    });
}

void attach_store(State& state, std::shared_ptr<store::Store> store) {
    // The policy and its needs stay as loaded; only the checks are added.
    auto snapshot = std::make_shared<milter::Snapshot>(*state.snapshot);
    snapshot->stateful = std::make_shared<StoreChecks>(std::move(store), state.config.store.on_error);
    state.snapshot = std::move(snapshot);
}

}  // namespace portcullis::daemon
