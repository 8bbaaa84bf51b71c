/*
 * evaluator.h: running the rules of one stage for one unit.
 *
 * evaluate_stage() walks a stage's rules in file order over a Facts and
 * returns the verdict of the first terminal action that applies (or
 * Outcome::none), plus the non-terminal effects met on the way:
 * add-header, log, and what `monitor` rules would have done.  With
 * monitor_all (policy.mode = "monitor") every rule is a monitor rule.
 * Reply codes come from the rule; texts are expanded and made safe
 * (template.h).  An optional RuleObserver sees every rule tested; `try`
 * and debug logging use it.  Greylist and ratelimit rules ask STATEFUL
 * (stateful.h); without one they behave as when the store is
 * unreachable.  DNSBL conditions and values ask the session's
 * LookupCache (facts.lookups, lookups.h): a rule that is reached first
 * starts every lookup its condition may need, so they run in parallel,
 * then the condition waits for the ones it reads.  Apart from what
 * STATEFUL and the lookups do, the evaluator never blocks and never
 * fails: a fact that is missing makes comparisons false (and != true),
 * and a failed lookup is not a listing.
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"
#include "policy/facts.h"
#include "policy/stateful.h"

namespace portcullis::policy {

enum class Outcome { none, accept, reject, tempfail, discard, quarantine };
std::string_view outcome_name(Outcome outcome);

struct Verdict {
    Outcome outcome = Outcome::none;
    const Rule* rule = nullptr;        // the rule that decided; null for none
    std::string code;                  // reject and tempfail
    std::string xcode;
    std::vector<std::string> text;     // reply lines, or the quarantine reason
    std::string note;                  // more for the log line ("reason=new wait=300s")
};

/* "greylist defer", "ratelimit defer" (or "... reject" with a 5xx reply)
 * for those rules' refusals, else the outcome's name. */
std::string verdict_label(const Verdict& verdict);

/* What a rule did without ending the stage: add-header, log, a monitor
 * rule's would-be verdict, or a greylist or ratelimit rule that let the
 * unit pass. */
struct Effect {
    enum class Kind { add_header, log, monitored, passed };
    Kind kind = Kind::log;
    const Rule* rule = nullptr;
    std::string name;                  // add-header: the header name
    std::string value;                 // add-header value, log text; passed: the note
    Verdict would_be;                  // monitored: what the rule would have done
};

struct StageResult {
    Verdict verdict;
    std::vector<Effect> effects;
};

class RuleObserver {
public:
    virtual ~RuleObserver() = default;
    virtual void rule_checked(const Rule& rule, bool applies) = 0;
};

StageResult evaluate_stage(const Policy& policy, Stage stage, const Facts& facts, bool monitor_all,
                           RuleObserver* observer = nullptr, StatefulChecks* stateful = nullptr);

/* Whether CONDITION holds for FACTS (exposed for tests). */
bool condition_holds(const Condition& condition, const Facts& facts);

}  // namespace portcullis::policy
