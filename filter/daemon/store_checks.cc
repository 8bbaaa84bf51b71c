/*
 * store_checks.cc: greylist rules on the store, with on_error and metrics.
 */
#include "daemon/store_checks.h"

#include <chrono>

#include "metrics/metrics.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

checks::GreylistSettings settings_of(const policy::GreylistParams& params) {
    return {params.delay, params.window, params.expire, params.awl, params.by_host};
}

}  // namespace

StoreChecks::StoreChecks(std::shared_ptr<store::Store> store, config::OnError on_error)
    : store_(std::move(store)), greylist_(*store_), on_error_(on_error) {}

policy::GreylistAnswer StoreChecks::greylist(const policy::GreylistParams& params, const policy::Facts& facts) {
    using Kind = policy::GreylistAnswer::Kind;
    if (!facts.client_ip) return {Kind::pass, 0, "reason=local-client"};

    const auto triplet = checks::make_triplet(*facts.client_ip, facts.sender, facts.rcpt, params.by_host);
    const auto started = std::chrono::steady_clock::now();
    try {
        const auto decision = greylist_.check(triplet, settings_of(params));
        metrics::observe_store(std::chrono::steady_clock::now() - started, true);
        const std::string_view reason = checks::reason_name(decision.reason);
        metrics::count_greylist(reason);
        if (decision.passes()) return {Kind::pass, 0, "reason=" + std::string(reason)};
        return {Kind::defer, decision.wait_seconds,
                "reason=" + std::string(reason) + " wait=" + std::to_string(decision.wait_seconds) + "s"};
    } catch (const store::StoreError& error) {
        metrics::observe_store(std::chrono::steady_clock::now() - started, false);
        metrics::count_greylist("store-error");
        const bool accept = on_error_ == config::OnError::accept;
        std::string note = "reason=store-error on_error=" + std::string(accept ? "accept" : "tempfail") +
                           " error=" + in_quotes(error.what());
        return {accept ? Kind::pass : Kind::unavailable, 0, std::move(note)};
    }
}

void attach_store(State& state, std::shared_ptr<store::Store> store) {
    // The policy and its needs stay as loaded; only the checks are added.
    auto snapshot = std::make_shared<milter::Snapshot>(*state.snapshot);
    snapshot->stateful = std::make_shared<StoreChecks>(std::move(store), state.config.store.on_error);
    state.snapshot = std::move(snapshot);
}

}  // namespace portcullis::daemon
