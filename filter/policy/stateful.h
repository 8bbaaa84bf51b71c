/*
 * stateful.h: what the evaluator asks of the checks that keep state
 * between sessions (greylisting, rate limits), without knowing how they
 * keep it.
 *
 * The daemon implements StatefulChecks over the store.  The evaluator
 * calls greylist() or ratelimit() for a rule whose condition holds, once
 * per rule and unit (a check counts or records: it is never asked twice),
 * and turns the answer into a verdict: refuse -> the rule's reply (with
 * ${greylist.wait} for greylisting); unavailable -> 451 4.3.0 (the store
 * failed and store.on_error is "tempfail"); pass -> evaluation goes on.
 * NOTE is what the log line adds ("reason=new wait=300s").
 *
 * Both return at once; DONE gets the answer, during the call (the memory
 * store) or later on the same event loop (Redis), exactly once.
 *
 * ratelimit() gets the rule's key as the fields' values, in the rule's
 * order, as the evaluator read them; at least one is not empty.
 */
#pragma once

#include <cstdint>
#include <functional>
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
    using Done = std::function<void(StatefulAnswer)>;

    virtual ~StatefulChecks() = default;
    virtual void greylist(const GreylistParams& params, const Facts& facts, Done done) = 0;
    virtual void ratelimit(const RatelimitParams& params, std::span<const std::string> key, Done done) = 0;
};

}  // namespace portcullis::policy
