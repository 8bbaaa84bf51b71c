/*
 * result_words_test.cc: each result field of the policy takes exactly
 * the words its check can give it.
 *
 * The policy engine knows nothing of the checks, so the words are
 * written twice: in the field registry (policy/fields.cc), for the
 * parser to refuse a comparison that could never be true, and in each
 * check's result names.  The daemon puts one into the other
 * (message_auth.cc, session_checks.cc); this test holds the two lists to
 * each other.
 */
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "checks/dkim.h"
#include "checks/dmarc.h"
#include "checks/spf.h"
#include "policy/fields.h"

namespace portcullis::daemon {
namespace {

using Words = std::set<std::string>;

Words words_of(std::string_view field) {
    const policy::FieldInfo* info = policy::find_field(field);
    EXPECT_TRUE(info) << field;
    return info ? Words(info->words.begin(), info->words.end()) : Words{};
}

TEST(ResultWords, SpfIsEveryResultOfTheCheck) {
    using spf::Result;
    Words results;
    for (const Result result : {Result::pass, Result::fail, Result::softfail, Result::neutral, Result::none,
                                Result::temperror, Result::permerror}) {
        results.emplace(spf::result_name(result));
    }
    EXPECT_EQ(words_of("spf"), results);
}

TEST(ResultWords, DkimIsEverySummaryOfAVerdict) {
    // The field is the verdict's summary: none without signatures, and
    // with one signature of each result, what that gives.
    using dkim::Result;
    Words summaries{std::string(dkim::Verdict{}.summary())};
    for (const Result result : {Result::pass, Result::fail, Result::neutral, Result::temperror, Result::permerror}) {
        dkim::Signature signature;
        signature.result = result;
        dkim::Verdict verdict;
        verdict.signatures.push_back(signature);
        summaries.emplace(verdict.summary());
    }
    EXPECT_EQ(words_of("dkim"), summaries);
}

TEST(ResultWords, DmarcIsEveryResultOfTheCheck) {
    using dmarc::Result;
    Words results;
    for (const Result result : {Result::pass, Result::fail, Result::none, Result::temperror, Result::permerror}) {
        results.emplace(dmarc::result_name(result));
    }
    EXPECT_EQ(words_of("dmarc"), results);
}

}  // namespace
}  // namespace portcullis::daemon
