/*
 * lookups_test.cc: dns::Lookups, one session's cache of answers, on a
 * Resolver asking a real unbound (local data; questions under
 * slow.example get no answer): each question asked once however often
 * find() is called, names compared without case or final dot, the owner
 * woken once per answer and never inside find(), a timeout logged once,
 * forget() dropping the answers and the questions out, and a Lookups
 * dropped with questions out never waking anyone.
 */
#include "dns/lookups.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "support/loop_answer.h"
#include "support/unbound_server.h"
#include "util/event_loop.h"

namespace portcullis::dns {
namespace {

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

size_t occurrences(std::string_view text, std::string_view part) {
    size_t found = 0;
    for (auto at = text.find(part); at != std::string_view::npos; at = text.find(part, at + 1)) ++found;
    return found;
}

class LookupsTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new test_support::UnboundServer(
            {"2.0.0.127.bl.example. A 127.0.0.2", "2.0.0.127.bl.example. TXT \"listed\"", "mail.example. A 192.0.2.25"},
            {"local-zone: \"slow.example.\" deny"});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    std::unique_ptr<Lookups> make_lookups() {
        return std::make_unique<Lookups>(resolver_, [this] {
            if (inside_find_) ++woken_inside_;
            ++woken_;
        });
    }

    /* LOOKUPS' find(), run on the loop as a session's code is (as a DNS
     * list's lookup unless said otherwise). */
    const Answer* find(Lookups& lookups, std::string_view name, RecordType type,
                       Purpose purpose = Purpose::dns_list) {
        const Answer* found = nullptr;
        bool done = false;
        loop_.defer([&] {
            inside_find_ = true;
            found = lookups.find(name, type, purpose);
            inside_find_ = false;
            done = true;
        });
        loop_.run_until([&] { return done; });
        return found;
    }

    /* Serves the loop until the owner was woken COUNT times in all (false after 5 s). */
    bool woken(int count) {
        bool expired = false;
        Timer watchdog(loop_, [&expired] { expired = true; });
        watchdog.arm_after(5s);
        loop_.run_until([&] { return expired || woken_ >= count; });
        return woken_ >= count;
    }

    static test_support::UnboundServer* server_;
    std::shared_ptr<Resolver> resolver_ = std::make_shared<Resolver>(Strings{server_->forwarder()}, 500ms);
    EventLoop loop_;
    int woken_ = 0;
    int woken_inside_ = 0;
    bool inside_find_ = false;
};
test_support::UnboundServer* LookupsTest::server_ = nullptr;

TEST_F(LookupsTest, AQuestionIsAskedOnceAndItsOwnerWokenWhenTheAnswerComes) {
    auto lookups = make_lookups();
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), nullptr);
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), nullptr);
    EXPECT_EQ(lookups->size(), 1u);
    ASSERT_TRUE(woken(1));
    const Answer* answer = find(*lookups, "2.0.0.127.bl.example", RecordType::a);
    ASSERT_NE(answer, nullptr);
    EXPECT_EQ(answer->status, Answer::Status::found);
    EXPECT_EQ(answer->records, Strings{"127.0.0.2"});
    // The same answer, at the same place, however often it is asked for.
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), answer);
    test_support::serve_for(loop_, 50ms);
    EXPECT_EQ(woken_, 1);
    EXPECT_EQ(woken_inside_, 0) << "woken from inside find()";
}

TEST_F(LookupsTest, EachTypeIsAQuestionOfItsOwnAndNamesIgnoreCaseAndTheFinalDot) {
    auto lookups = make_lookups();
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), nullptr);
    EXPECT_EQ(find(*lookups, "2.0.0.127.BL.Example.", RecordType::a), nullptr);
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::txt), nullptr);
    EXPECT_EQ(lookups->size(), 2u);
    ASSERT_TRUE(woken(2));
    EXPECT_EQ(find(*lookups, "2.0.0.127.BL.EXAMPLE", RecordType::a)->records, Strings{"127.0.0.2"});
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example.", RecordType::txt)->records, Strings{"listed"});
    test_support::serve_for(loop_, 50ms);
    EXPECT_EQ(woken_, 2);
    EXPECT_EQ(lookup_key("Mail.EXAMPLE."), "mail.example");
}

TEST_F(LookupsTest, ATimeoutIsATemperrorAnsweredAndLoggedOnce) {
    auto lookups = make_lookups();
    ::testing::internal::CaptureStderr();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(find(*lookups, "x.slow.example", RecordType::a), nullptr);
    EXPECT_EQ(find(*lookups, "mail.example", RecordType::a), nullptr);
    const bool answered = woken(2);
    test_support::serve_for(loop_, 50ms);
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(answered);
    EXPECT_EQ(woken_, 2);
    const Answer* slow = find(*lookups, "x.slow.example", RecordType::a);
    ASSERT_NE(slow, nullptr);
    EXPECT_EQ(slow->status, Answer::Status::temperror);
    EXPECT_EQ(slow->error, "timeout");
    EXPECT_EQ(occurrences(log, "dns: x.slow.example A: temperror (timeout) in "), 1u) << log;
    EXPECT_EQ(occurrences(log, "ms; taken as not listed"), 1u) << log;
    EXPECT_EQ(find(*lookups, "mail.example", RecordType::a)->records, Strings{"192.0.2.25"});
}

TEST_F(LookupsTest, AFailedAnswerIsLoggedAsItsPurposeReadsIt) {
    auto lookups = make_lookups();
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(find(*lookups, "key.slow.example", RecordType::txt, Purpose::record), nullptr);
    EXPECT_EQ(find(*lookups, "spf.slow.example", RecordType::txt, Purpose::spf), nullptr);
    const bool answered = woken(2);
    const std::string log = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(answered);
    // A DKIM key's or DMARC record's failure at info, as it is; SPF's at
    // debug only (its verdict says what became of it).
    EXPECT_EQ(occurrences(log, "dns: key.slow.example TXT: temperror (timeout) in "), 1u) << log;
    EXPECT_EQ(occurrences(log, "taken as not listed"), 0u) << log;
    EXPECT_EQ(occurrences(log, "spf.slow.example"), 0u) << log;
}

TEST_F(LookupsTest, ForgetDropsTheAnswersAndTheQuestionsStillOut) {
    auto lookups = make_lookups();
    find(*lookups, "mail.example", RecordType::a);
    ASSERT_TRUE(woken(1));
    ASSERT_NE(find(*lookups, "mail.example", RecordType::a), nullptr);
    // A question out when forget() comes: its answer is dropped, unseen.
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), nullptr);
    lookups->forget();
    EXPECT_EQ(lookups->size(), 0u);
    test_support::serve_for(loop_, 300ms);
    EXPECT_EQ(woken_, 1);
    // Asked again, each is a new question.
    EXPECT_EQ(find(*lookups, "mail.example", RecordType::a), nullptr);
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a), nullptr);
    ASSERT_TRUE(woken(3));
    EXPECT_EQ(find(*lookups, "2.0.0.127.bl.example", RecordType::a)->records, Strings{"127.0.0.2"});
}

TEST_F(LookupsTest, WhatTheAnswersKeptCostIsCountedUntilForget) {
    auto lookups = make_lookups();
    EXPECT_EQ(lookups->bytes(), 0u);
    find(*lookups, "2.0.0.127.bl.example", RecordType::txt);
    ASSERT_TRUE(woken(1));
    const size_t one = lookups->bytes();
    EXPECT_GT(one, std::string("listed").size());
    find(*lookups, "mail.example", RecordType::a);
    ASSERT_TRUE(woken(2));
    EXPECT_GT(lookups->bytes(), one);
    // Found again, an answer costs nothing more.
    find(*lookups, "mail.example", RecordType::a);
    const size_t both = lookups->bytes();
    test_support::serve_for(loop_, 50ms);
    EXPECT_EQ(lookups->bytes(), both);
    lookups->forget();
    EXPECT_EQ(lookups->bytes(), 0u);
}

TEST_F(LookupsTest, ALookupsDroppedWithQuestionsOutWakesNobody) {
    auto lookups = make_lookups();
    find(*lookups, "mail.example", RecordType::a);
    find(*lookups, "x.slow.example", RecordType::a);
    lookups.reset();
    // Past the answer and the timeout: both come to a Lookups that is gone.
    test_support::serve_for(loop_, 800ms);
    EXPECT_EQ(woken_, 0);
}

}  // namespace
}  // namespace portcullis::dns
