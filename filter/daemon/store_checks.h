/*
 * store_checks.h: the policy's stateful checks, done on the store.
 *
 * StoreChecks answers the evaluator's greylist() and ratelimit()
 * questions with checks::Greylist and checks::Ratelimit over the
 * daemon's store: it builds the triplet or the bucket key (each key
 * part normalised: case, +extension) from what the evaluator read,
 * times the store, counts the outcome in the metrics, and applies
 * store.on_error when the store fails (tempfail: the rule defers with
 * 451 4.3.0; accept: the unit passes).  Answers come as the store gives
 * them (stateful.h).  A session without a client address (local
 * submission) is not greylisted.
 */
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "checks/greylist.h"
#include "checks/ratelimit.h"
#include "config/config.h"
#include "daemon/loading.h"
#include "policy/stateful.h"
#include "store/store.h"

namespace portcullis::daemon {

class StoreChecks final : public policy::StatefulChecks {
public:
    StoreChecks(std::shared_ptr<store::Store> store, config::OnError on_error);
    void greylist(const policy::GreylistParams& params, const policy::Facts& facts, Done done) override;
    void ratelimit(const policy::RatelimitParams& params, std::span<const std::string> key, Done done) override;

private:

    std::shared_ptr<store::Store> store_;
    checks::Greylist greylist_;
    checks::Ratelimit ratelimit_;
    config::OnError on_error_;
};

}  // namespace portcullis::daemon
