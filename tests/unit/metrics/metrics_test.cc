/*
 * metrics_test.cc: the labelled counters, as a scrape sees them
 * (totals()): each set of labels counts in its own counter, whichever
 * thread counts.
 */
#include <gtest/gtest.h>

#include <thread>

#include "metrics/metrics.h"

namespace portcullis::metrics {
namespace {

double total(const std::string& name) { return totals()[name]; }

TEST(Metrics, EachSetOfLabelsHasACounterOfItsOwn) {
    const double accepted = total("portcullis_verdicts_total{action=accept}");
    const double rejected = total("portcullis_verdicts_total{action=reject}");
    const double monitored = total("portcullis_verdicts_total{monitor=true}");
    const double rule_one = total("portcullis_rule_hits_total{rule=metrics_test.rules:1}");
    count_decision("rcpt", "accept", false, "metrics_test.rules:1");
    count_decision("rcpt", "accept", false, "metrics_test.rules:1");
    count_decision("rcpt", "reject", false, "metrics_test.rules:2");
    count_decision("rcpt", "reject", true, "metrics_test.rules:2");
    count_decision("mail", "accept", false, "");
    EXPECT_EQ(total("portcullis_verdicts_total{action=accept}") - accepted, 3);
    EXPECT_EQ(total("portcullis_verdicts_total{action=reject}") - rejected, 2);
    EXPECT_EQ(total("portcullis_verdicts_total{monitor=true}") - monitored, 1);
    EXPECT_EQ(total("portcullis_rule_hits_total{rule=metrics_test.rules:1}") - rule_one, 2);
}

TEST(Metrics, LabelValuesThatJoinAlikeStayApart) {
    // "ab" + "c" and "a" + "bc" are different labels.
    count_auth_result("ab", "c");
    count_auth_result("a", "bc");
    count_auth_result("a", "bc");
    EXPECT_EQ(total("portcullis_auth_results_total{method=ab}"), 1);
    EXPECT_EQ(total("portcullis_auth_results_total{method=a}"), 2);
    EXPECT_EQ(total("portcullis_auth_results_total{result=c}"), 1);
    EXPECT_EQ(total("portcullis_auth_results_total{result=bc}"), 2);
}

TEST(Metrics, FamiliesWithTheSameLabelValuesStayApart) {
    const double greylist = total("portcullis_greylist_total{result=metrics-test}");
    const double ratelimit = total("portcullis_ratelimit_total{result=metrics-test}");
    count_greylist("metrics-test");
    count_ratelimit("metrics-test");
    count_ratelimit("metrics-test");
    EXPECT_EQ(total("portcullis_greylist_total{result=metrics-test}") - greylist, 1);
    EXPECT_EQ(total("portcullis_ratelimit_total{result=metrics-test}") - ratelimit, 2);
}

TEST(Metrics, ThreadsCountInTheSameCounter) {
    const std::string name = "portcullis_store_errors_total{kind=metrics-test}";
    const double before = total(name);
    constexpr int kThreads = 4, kEach = 1000;
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([] {
                for (int i = 0; i < kEach; ++i) count_store_error("metrics-test");
            });
        }
    }
    EXPECT_EQ(total(name) - before, kThreads * kEach);
}

}  // namespace
}  // namespace portcullis::metrics
