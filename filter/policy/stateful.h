/*
 * stateful.h: what the evaluator asks of the checks that keep state
 * between sessions (greylisting), without knowing how they keep it.
 *
 * The daemon implements StatefulChecks over the store; the evaluator
 * calls greylist() for a greylist rule whose condition holds and turns
 * the answer into a verdict: defer -> the rule's reply with
 * ${greylist.wait}; unavailable -> 451 4.3.0 (the store failed and
 * store.on_error is "tempfail"); pass -> evaluation goes on.  NOTE is
 * what the log line adds ("reason=new wait=300s").
 */
#pragma once

#include <cstdint>
#include <string>

#include "policy/ast.h"
#include "policy/facts.h"

namespace portcullis::policy {

struct GreylistAnswer {
    enum class Kind { pass, defer, unavailable };
    Kind kind = Kind::unavailable;
    uint64_t wait_seconds = 0;
    std::string note;
};

class StatefulChecks {
public:
    virtual ~StatefulChecks() = default;
    virtual GreylistAnswer greylist(const GreylistParams& params, const Facts& facts) = 0;
};

}  // namespace portcullis::policy
