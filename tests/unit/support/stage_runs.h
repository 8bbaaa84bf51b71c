/*
 * stage_runs.h: one stage of a policy walked to its end as a session
 * walks it (policy/evaluator.h), for the policy unit tests.
 *
 * run_stage() calls evaluate_stage() with one StageRun; each time the
 * walk stops for a fact or a store answer, OPTIONS.arrive() brings what it
 * waits for (a fake's arrive()) and the walk goes on from where it
 * stopped.  Without arrive, a walk that stops fails the test: its facts
 * were all to be known at once.  A walk that stops more than kMaxStops
 * times fails it too (it would never end).
 */
#pragma once

#include <gtest/gtest.h>

#include <functional>

#include "policy/evaluator.h"

namespace portcullis::test_support {

/* RunOptions().stateful(&checks).arrive(...): what evaluate_stage() gets. */
struct RunOptions {
    RunOptions& monitor_all() {
        monitor_all_ = true;
        return *this;
    }
    RunOptions& observer(policy::RuleObserver* observer) {
        observer_ = observer;
        return *this;
    }
    RunOptions& stateful(policy::StatefulChecks* stateful) {
        stateful_ = stateful;
        return *this;
    }
    RunOptions& arrive(std::function<void()> arrive) {
        arrive_ = std::move(arrive);
        return *this;
    }

    bool monitor_all_ = false;
    policy::RuleObserver* observer_ = nullptr;
    policy::StatefulChecks* stateful_ = nullptr;
    std::function<void()> arrive_;
};

struct StageWalk {
    policy::StageResult result;
    int stops = 0;   // how often the walk stopped to wait
};

inline constexpr int kMaxStops = 16;

inline StageWalk run_stage(const policy::Policy& policy, policy::Stage stage, const policy::Facts& facts,
                           const RunOptions& options = RunOptions()) {
    policy::StageRun run(stage);
    StageWalk walk;
    while (!policy::evaluate_stage(policy, run, facts, options.monitor_all_, options.observer_, options.stateful_)) {
        ++walk.stops;
        if (!options.arrive_ || walk.stops > kMaxStops) {
            ADD_FAILURE() << "the walk of stage " << policy::stage_name(stage) << " stopped at rule "
                          << run.next_rule << (options.arrive_ ? " too often" : " with every fact known");
            break;
        }
        options.arrive_();
    }
    walk.result = run.result;
    return walk;
}

}  // namespace portcullis::test_support
