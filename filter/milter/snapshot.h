/*
 * snapshot.h: the policy a session runs under.
 *
 * A Snapshot is what one load of config and policy produced: the rules,
 * what they need from the MTA, the mode, and the stateful checks (the
 * store behind greylist rules) they run with.  Sessions hold a
 * shared_ptr to the snapshot current when they started, so a reload
 * never changes the rules under a session in flight.
 */
#pragma once

#include <memory>
#include <string>

#include "policy/ast.h"
#include "policy/needs.h"
#include "policy/stateful.h"

namespace portcullis::milter {

struct Snapshot {
    std::shared_ptr<const policy::Policy> policy;
    policy::PolicyNeeds needs;
    bool monitor_all = false;     // policy.mode = "monitor"
    std::shared_ptr<policy::StatefulChecks> stateful;   // null: as if the store were down
};

/* A snapshot without stateful checks; the daemon adds its store's. */
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const policy::Policy> policy, bool monitor_all);

}  // namespace portcullis::milter
