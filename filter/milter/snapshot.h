/*
 * snapshot.h: the policy a session runs under.
 *
 * A Snapshot is what one load of config and policy produced: the rules,
 * what they need from the MTA, the mode, the stateful checks (the store
 * behind greylist rules) and the resolver behind dnsbl rules and SPF
 * checks they run with.  Sessions hold a
 * shared_ptr to the snapshot current when they started, so a reload
 * never changes the rules under a session in flight.
 */
#pragma once

#include <memory>
#include <string>

#include "policy/ast.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "policy/stateful.h"

namespace portcullis::milter {

struct Snapshot {
    std::shared_ptr<const policy::Policy> policy;
    policy::PolicyNeeds needs;
    bool monitor_all = false;     // policy.mode = "monitor"
    std::shared_ptr<policy::StatefulChecks> stateful;   // null: as if the store were down
    std::shared_ptr<policy::AddressResolver> dns;       // null: no DNS list is consulted
    std::shared_ptr<policy::SpfChecker> spf;            // null: spf has no value
};

/* A snapshot without stateful checks or resolver; the daemon adds its own. */
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const policy::Policy> policy, bool monitor_all);

}  // namespace portcullis::milter
