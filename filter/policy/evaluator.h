/*
 * evaluator.h: running the rules of one stage for one unit.
 *
 * evaluate_stage() walks a stage's rules in file order over a Facts and
 * finds the verdict of the first terminal action that applies (or
 * Outcome::none), plus the non-terminal effects met on the way:
 * add-header, log, and what `monitor` rules would have done.  With
 * monitor_all (policy.mode = "monitor") every rule is a monitor rule.
 * Reply codes come from the rule; texts are expanded and made safe
 * (template.h).  An optional RuleObserver sees every rule tested, once;
 * `try` and debug logging use it.  Greylist and ratelimit rules ask
 * STATEFUL (stateful.h); without one they behave as when the store is
 * unreachable.  A fact that is missing makes comparisons false (and !=
 * true), and a failed lookup is not a listing.
 *
 * The evaluator never waits.  A fact that takes a lookup (DNS lists, SPF,
 * DKIM, DMARC: lookups.h) may not be known yet; a condition is decided
 * without it when the rest decides it (false and X, true or X), and
 * otherwise the walk stops at that rule.  So does a greylist or ratelimit
 * rule whose store answer has not come.  A StageRun keeps where the walk
 * stopped: evaluate_stage() returns false, and the caller calls it again
 * with the same StageRun once woken (StageRun::wake, or the sources of
 * lookups.h) and goes on from that rule.  The rules before it are not
 * tested again, and a greylist or ratelimit rule that asked the store is
 * never asked again: its answer is kept in the run.  A rule that is
 * reached first starts every lookup its condition may need, so they run
 * in parallel.
 */
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
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

/* One walk of a stage's rules for one unit, across the waits. */
struct StageRun {
    explicit StageRun(Stage run_stage, std::function<void()> wake_caller = {})
        : stage(run_stage), wake(std::move(wake_caller)) {}

    Stage stage;
    /* Called, on the caller's loop, when a store answer this run waits for
     * has come; not during evaluate_stage(). */
    std::function<void()> wake;
    size_t next_rule = 0;     // where the walk goes on
    StageResult result;       // the effects so far; the verdict once done

    /* The store's answer to one rule, shared with the call that brings it. */
    struct Asked {
        std::optional<StatefulAnswer> answer;
        bool waited = false;   // the answer did not come during the call
    };
    std::map<const Rule*, std::shared_ptr<Asked>> asked;
};

/* True when RUN is decided (RUN.result is final); false when a rule waits
 * for a fact or a store answer. */
bool evaluate_stage(const Policy& policy, StageRun& run, const Facts& facts, bool monitor_all,
                    RuleObserver* observer = nullptr, StatefulChecks* stateful = nullptr);

/* Whether CONDITION holds for FACTS; nullopt while a fact it needs is not
 * known (exposed for tests). */
std::optional<bool> condition_holds(const Condition& condition, const Facts& facts);

}  // namespace portcullis::policy
