/*
 * stateful.h: what the evaluator asks of the checks that keep state
 * between sessions (greylisting, rate limits), without knowing how they
 * keep it.
 *
 * The daemon implements StatefulChecks over the store.  The evaluator
 * calls greylist() or ratelimit() for a rule whose condition holds and
 * turns the answer into a verdict: refuse -> the rule's reply (with
 * ${greylist.wait} for greylisting); unavailable -> 451 4.3.0 (the store
 * failed and store.on_error is "tempfail"); pass -> evaluation goes on.
 * NOTE is what the log line adds ("reason=new wait=300s").
 *
 * ratelimit() gets the rule's key as the fields' values, in the rule's
 * order, as the evaluator read them; at least one is not empty.
 */
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "policy/ast.h"
#include "policy/facts.h"

namespace portcullis::policy {

struct StatefulAnswer {
    enum class Kind { pass, refuse, unavailable };
    Kind kind = Kind::unavailable;
    uint64_t wait_seconds = 0;
    std::string note;
};

class StatefulChecks {
public:
    virtual ~StatefulChecks() = default;
    virtual StatefulAnswer greylist(const GreylistParams& params, const Facts& facts) = 0;
    virtual StatefulAnswer ratelimit(const RatelimitParams& params, std::span<const std::string> key) = 0;
};

}  // namespace portcullis::policy
