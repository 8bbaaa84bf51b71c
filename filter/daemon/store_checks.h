/*
 * store_checks.h: the policy's stateful checks, done on the store.
 *
 * StoreChecks answers the evaluator's greylist() questions with
 * checks::Greylist over the daemon's store: it builds the triplet from
 * the session's facts, times the store, counts the outcome in the
 * metrics, and applies store.on_error when the store fails (tempfail:
 * the rule defers with 451 4.3.0; accept: the recipient passes).  A
 * session without a client address (local submission) is not
 * greylisted.  attach_store() gives a loaded State its checks.
 */
#pragma once

#include <memory>

#include "checks/greylist.h"
#include "config/config.h"
#include "daemon/loading.h"
#include "policy/stateful.h"
#include "store/store.h"

namespace portcullis::daemon {

class StoreChecks final : public policy::StatefulChecks {
public:
    StoreChecks(std::shared_ptr<store::Store> store, config::OnError on_error);
    policy::GreylistAnswer greylist(const policy::GreylistParams& params, const policy::Facts& facts) override;

private:
    std::shared_ptr<store::Store> store_;
    checks::Greylist greylist_;
    config::OnError on_error_;
};

/* Rebuilds STATE's snapshot so its greylist rules use STORE. */
void attach_store(State& state, std::shared_ptr<store::Store> store);

}  // namespace portcullis::daemon
