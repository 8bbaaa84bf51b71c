/*
 * resolver_test.cc: dns::Resolver against a real unbound serving local
 * data (listed, not listed, TXT, AAAA, MX, PTR), and against a forwarder
 * that never answers (a UDP socket the test opens and never reads): the
 * timeout, a temperror within dns.timeout that holds up no other lookup,
 * lookups running in parallel on one loop and on several, the answer
 * given later on the loop that asked, a resolver dropped with lookups
 * out, one query for lookups of one name at once (each with its own
 * deadline), and answers kept for their TTL (not a TTL of 0, not a
 * temperror).
 */
#include "dns/resolver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <thread>

#include "metrics/metrics.h"
#include "support/black_hole.h"
#include "support/loop_answer.h"
#include "support/unbound_server.h"

namespace portcullis::dns {
namespace {

using namespace std::chrono_literals;
using Status = Answer::Status;
using Strings = std::vector<std::string>;
using test_support::BlackHole;
using Clock = std::chrono::steady_clock;

/* RESOLVER's answer to NAME's TYPE records, asked on LOOP. */
Answer resolve(Resolver& resolver, EventLoop& loop, std::string_view name, RecordType type) {
    return test_support::answer_on<Answer>(loop, [&](Resolver::Done done) { resolver.lookup(name, type, done); });
}

/* portcullis_dns_queries_total: the questions handed to libunbound. */
double questions_sent() { return metrics::totals()["portcullis_dns_queries_total"]; }

/* The answers to every name in NAMES, all asked at once on LOOP, in the
 * order of NAMES, and when each came. */
struct Answered {
    std::vector<Answer> answers;
    std::vector<Clock::time_point> at;
};
Answered resolve_all(Resolver& resolver, EventLoop& loop, const std::vector<std::string>& names, RecordType type) {
    Answered all;
    all.answers.resize(names.size());
    all.at.resize(names.size());
    size_t answered = 0;
    loop.defer([&] {
        for (size_t i = 0; i < names.size(); ++i) {
            resolver.lookup(names[i], type, [&all, &answered, i](Answer answer) {
                all.answers[i] = std::move(answer);
                all.at[i] = Clock::now();
                ++answered;
            });
        }
    });
    bool expired = false;
    Timer watchdog(loop, [&expired] { expired = true; });
    watchdog.arm_after(std::chrono::seconds(30));
    loop.run_until([&] { return expired || answered == names.size(); });
    if (answered != names.size()) throw std::runtime_error("lookups without an answer after 30 s");
    return all;
}

const Strings kRecords{
    "2.0.0.127.bl.example. A 127.0.0.2",
    "5.113.0.203.bl.example. A 127.0.0.4",
    "5.113.0.203.bl.example. A 127.0.0.10",
    "5.113.0.203.bl.example. TXT \"listed: see\" \" https://bl.example/203.0.113.5\"",
    "mail.example. AAAA 2001:db8::25",
    "mail.example. MX 10 mx1.mail.example.",
    "mail.example. MX 20 mx2.mail.example.",
    // Not a documentation network: libunbound answers their reverse zones itself.
    "5.113.0.93.in-addr.arpa. PTR host.mail.example.",
    "odd.example. PTR bad\\.label.example.",
};

class ResolverTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new test_support::UnboundServer(kRecords); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    Answer lookup(std::string_view name, RecordType type) { return resolve(resolver_, loop_, name, type); }

    static test_support::UnboundServer* server_;
    Resolver resolver_{{server_->forwarder()}, 2s};
    EventLoop loop_;
};
test_support::UnboundServer* ResolverTest::server_ = nullptr;

TEST_F(ResolverTest, ListedAddressGivesItsARecords) {
    const Answer answer = lookup("5.113.0.203.bl.example", RecordType::a);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    Strings records = answer.records;
    std::sort(records.begin(), records.end());
    EXPECT_EQ(records, (Strings{"127.0.0.10", "127.0.0.4"}));
    EXPECT_GT(answer.took, 0ms);
    EXPECT_LT(answer.took, 2s);
}

TEST_F(ResolverTest, UnlistedNameIsNotFound) {
    const Answer answer = lookup("6.113.0.203.bl.example", RecordType::a);
    EXPECT_EQ(answer.status, Status::not_found) << answer.error;
    EXPECT_TRUE(answer.records.empty());
}

TEST_F(ResolverTest, NameWithOtherTypesOnlyIsNotFound) {
    EXPECT_EQ(lookup("mail.example", RecordType::a).status, Status::not_found);
}

TEST_F(ResolverTest, TxtStringsAreJoined) {
    const Answer answer = lookup("5.113.0.203.bl.example", RecordType::txt);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"listed: see https://bl.example/203.0.113.5"});
}

TEST_F(ResolverTest, AaaaRecords) {
    const Answer answer = lookup("mail.example", RecordType::aaaa);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"2001:db8::25"});
}

TEST_F(ResolverTest, MxRecordsGiveTheExchanges) {
    const Answer answer = lookup("mail.example", RecordType::mx);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    Strings records = answer.records;
    std::sort(records.begin(), records.end());
    EXPECT_EQ(records, (Strings{"mx1.mail.example", "mx2.mail.example"}));
}

TEST_F(ResolverTest, PtrRecordGivesTheName) {
    const Answer answer = lookup("5.113.0.93.in-addr.arpa", RecordType::ptr);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"host.mail.example"});
}

TEST_F(ResolverTest, NameWithADotInALabelIsDropped) {
    EXPECT_EQ(lookup("odd.example", RecordType::ptr).status, Status::not_found);
}

TEST_F(ResolverTest, LookupsStartedTogetherAllAnswer) {
    std::vector<std::string> names;
    for (int i = 0; i < 20; ++i) names.push_back(i % 2 ? "2.0.0.127.bl.example" : "x" + std::to_string(i) + ".bl.example");
    const Answered all = resolve_all(resolver_, loop_, names, RecordType::a);
    for (size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(all.answers[i].status, i % 2 ? Status::found : Status::not_found) << i;
    }
}

TEST_F(ResolverTest, TheAnswerComesLaterOnTheLoopThatAsked) {
    bool returned = false, inside = false;
    EventLoop* answered_on = nullptr;
    const Answer answer = test_support::answer_on<Answer>(loop_, [&](Resolver::Done done) {
        resolver_.lookup("2.0.0.127.bl.example", RecordType::a, [&, done](Answer got) {
            inside = !returned;
            answered_on = EventLoop::current();
            done(std::move(got));
        });
        returned = true;
    });
    EXPECT_FALSE(inside);
    EXPECT_EQ(answered_on, &loop_);
    EXPECT_EQ(answer.records, Strings{"127.0.0.2"});
}

TEST_F(ResolverTest, ALookupOffAnEventLoopIsALogicError) {
    EXPECT_THROW(resolver_.lookup("2.0.0.127.bl.example", RecordType::a, [](Answer) { ADD_FAILURE() << "answered"; }),
                 std::logic_error);
}

TEST_F(ResolverTest, LoopsOnSeveralThreadsEachLookUpOnTheirOwn) {
    constexpr int kLoops = 4;
    std::vector<std::vector<Answer>> answers(kLoops);
    {
        std::vector<std::jthread> threads;
        for (int l = 0; l < kLoops; ++l) {
            threads.emplace_back([&, l] {
                EventLoop loop;
                for (int i = 0; i < 10; ++i) {
                    answers[l].push_back(resolve(resolver_, loop, i % 2 ? "mail.example" : "x.example", RecordType::aaaa));
                }
            });
        }
    }
    for (int l = 0; l < kLoops; ++l) {
        ASSERT_EQ(answers[l].size(), 10u);
        for (size_t i = 0; i < answers[l].size(); ++i) {
            EXPECT_EQ(answers[l][i].records, i % 2 ? Strings{"2001:db8::25"} : Strings{}) << l << " " << i;
        }
    }
}

/* The threads of this process. */
size_t thread_count() {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                             std::filesystem::directory_iterator()));
}

TEST_F(ResolverTest, EveryLoopSharesOneLibunboundThread) {
    constexpr size_t kLoops = 4;
    const size_t before = thread_count();
    std::atomic<size_t> answered = 0;
    std::atomic<bool> counted = false;
    size_t during = 0;
    {
        std::vector<std::jthread> threads;
        for (size_t l = 0; l < kLoops; ++l) {
            threads.emplace_back([&] {
                EventLoop loop;
                EXPECT_EQ(resolve(resolver_, loop, "mail.example", RecordType::mx).status, Status::found);
                ++answered;
                while (!counted) std::this_thread::sleep_for(1ms);
            });
        }
        while (answered < kLoops) std::this_thread::sleep_for(1ms);
        during = thread_count();
        counted = true;
    }
    // The loops' own threads, and one of libunbound's for them all (it
    // stays with the Resolver: the first may have been made earlier).
    EXPECT_LE(during, before + kLoops + 1);
    EXPECT_GE(during, before + kLoops);
}

/* A loop on a thread of its own that has looked up with RESOLVER (so it
 * watches libunbound's socket too) and serves until the object goes. */
class OtherLoop {
public:
    explicit OtherLoop(Resolver& resolver)
        : thread_([this, &resolver] {
              EventLoop loop;
              EXPECT_EQ(resolve(resolver, loop, "mail.example", RecordType::aaaa).status, Status::found);
              loop_ = &loop;
              loop.run();
          }) {
        while (!loop_) std::this_thread::sleep_for(1ms);
    }
    ~OtherLoop() { loop_.load()->stop(); }

private:
    std::atomic<EventLoop*> loop_ = nullptr;
    std::jthread thread_;
};

TEST_F(ResolverTest, AnAnswerReadOnAnotherLoopIsGivenOnTheLoopThatAsked) {
    // The other loop waits for libunbound's socket while this one does
    // not run: it reads this loop's answer, which then waits for this loop.
    OtherLoop other(resolver_);
    for (const char* name : {"2.0.0.127.bl.example", "5.113.0.203.bl.example"}) {
        EventLoop* answered_on = nullptr;
        std::optional<Answer> answer;
        loop_.defer([&] {
            resolver_.lookup(name, RecordType::a, [&](Answer got) {
                answered_on = EventLoop::current();
                answer = std::move(got);
            });
        });
        loop_.run_until([] { return true; });   // asked; nothing waited for
        std::this_thread::sleep_for(300ms);
        test_support::serve_for(loop_, 100ms);
        ASSERT_TRUE(answer.has_value()) << name;
        EXPECT_EQ(answered_on, &loop_) << name;
        EXPECT_EQ(answer->status, Status::found) << name;
    }
}

TEST_F(ResolverTest, AnAnswerForALoopThatIsGoneIsDropped) {
    OtherLoop other(resolver_);
    {
        EventLoop gone;
        gone.defer([&] {
            resolver_.lookup("5.113.0.93.in-addr.arpa", RecordType::ptr, [](Answer) { ADD_FAILURE() << "answered"; });
        });
        gone.run_until([] { return true; });
        // The other loop reads the answer meanwhile; this one goes first.
        std::this_thread::sleep_for(300ms);
    }
    // The resolver still serves the loops that are left.
    EXPECT_EQ(lookup("5.113.0.93.in-addr.arpa", RecordType::ptr).records, Strings{"host.mail.example"});
}

/* ---- answers kept for their TTL ---- */

TEST(ResolverCache, AnAnswerIsGivenAgainWithoutAQueryForItsTtl) {
    auto server = std::make_unique<test_support::UnboundServer>(
        Strings{"kept.example. 300 A 127.0.0.7", "kept.example. 300 TXT \"v=spf1 -all\""});
    Resolver resolver({server->forwarder()}, 2s);
    EventLoop loop;
    const Answer first = resolve(resolver, loop, "kept.example", RecordType::a);
    ASSERT_EQ(first.status, Status::found) << first.error;
    EXPECT_GT(first.took, 0ms);
    server.reset();   // nobody left to ask
    // Another spelling of the name is the same name.
    const double before = questions_sent();
    const Answer again = resolve(resolver, loop, "KEPT.example.", RecordType::a);
    EXPECT_EQ(questions_sent(), before);
    EXPECT_EQ(again.status, Status::found) << again.error;
    EXPECT_EQ(again.records, Strings{"127.0.0.7"});
    EXPECT_EQ(again.took, 0ms);
    // Another type of the same name was never asked: it is not kept.
    const Answer other_type = resolve(resolver, loop, "kept.example", RecordType::txt);
    EXPECT_EQ(other_type.status, Status::temperror);
}

TEST(ResolverCache, AnAnswerWithATtlOfZeroIsAskedForEachTime) {
    test_support::UnboundServer server({"fleeting.example. 0 A 127.0.0.8"});
    Resolver resolver({server.forwarder()}, 2s);
    EventLoop loop;
    for (int i = 0; i < 2; ++i) {
        const Answer answer = resolve(resolver, loop, "fleeting.example", RecordType::a);
        ASSERT_EQ(answer.status, Status::found) << answer.error;
        EXPECT_GT(answer.took, 0ms) << "lookup " << i;
    }
}

/* A domain's owner chooses how big its answers are: one over 8 kB is
 * given and not kept, so 1024 of them cannot fill a loop's memory. */
TEST(ResolverCache, AnAnswerOverEightKilobytesIsNotKept) {
    std::string strings;
    for (int i = 0; i < 40; ++i) strings += " \"" + std::string(250, static_cast<char>('a' + i % 26)) + "\"";
    test_support::UnboundServer server({"big.example. 300 TXT" + strings, "small.example. 300 TXT \"v=spf1 -all\""});
    Resolver resolver({server.forwarder()}, 5s);
    EventLoop loop;
    for (int i = 0; i < 2; ++i) {
        const Answer big = resolve(resolver, loop, "big.example", RecordType::txt);
        ASSERT_EQ(big.status, Status::found) << big.error;
        EXPECT_EQ(big.records.at(0).size(), 40u * 250u);
        EXPECT_GT(big.took, 0ms) << "lookup " << i;
    }
    resolve(resolver, loop, "small.example", RecordType::txt);
    EXPECT_EQ(resolve(resolver, loop, "small.example", RecordType::txt).took, 0ms);
}

TEST(ResolverCache, ATemperrorIsNotKept) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 200ms);
    EventLoop loop;
    for (int i = 0; i < 2; ++i) {
        const Answer answer = resolve(resolver, loop, "2.0.0.127.bl.example", RecordType::a);
        EXPECT_EQ(answer.status, Status::temperror);
        EXPECT_GE(answer.took, 200ms) << "lookup " << i;
    }
}

TEST(ResolverCache, AnswersAreKeptPerLoopAndGivenLater) {
    test_support::UnboundServer server({"kept.example. 300 A 127.0.0.7"});
    Resolver resolver({server.forwarder()}, 2s);
    EventLoop loop;
    ASSERT_EQ(resolve(resolver, loop, "kept.example", RecordType::a).status, Status::found);
    bool returned = false, inside = false;
    const Answer answer = test_support::answer_on<Answer>(loop, [&](Resolver::Done done) {
        resolver.lookup("kept.example", RecordType::a, [&, done](Answer got) {
            inside = !returned;
            done(std::move(got));
        });
        returned = true;
    });
    EXPECT_FALSE(inside) << "a kept answer is still never given inside lookup()";
    EXPECT_EQ(answer.took, 0ms);
    // Another loop keeps answers of its own: it asks libunbound again.
    Answer elsewhere;
    std::thread other([&] {
        EventLoop other_loop;
        elsewhere = resolve(resolver, other_loop, "kept.example", RecordType::a);
    });
    other.join();
    EXPECT_EQ(elsewhere.status, Status::found);
    EXPECT_GT(elsewhere.took, 0ms);
}

TEST(ResolverTimeout, ASilentForwarderIsATemperrorAfterTheTimeout) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 300ms);
    EventLoop loop;
    const auto started = Clock::now();
    const Answer answer = resolve(resolver, loop, "2.0.0.127.bl.example", RecordType::a);
    const auto took = Clock::now() - started;
    EXPECT_EQ(answer.status, Status::temperror);
    EXPECT_EQ(answer.error, "timeout");
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 800ms);
    EXPECT_GE(answer.took, 300ms);
    EXPECT_LE(answer.took, took);
}

TEST(ResolverTimeout, LookupsRunInParallel) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 400ms);
    EventLoop loop;
    std::vector<std::string> names;
    for (int i = 0; i < 5; ++i) names.push_back(std::to_string(i) + ".bl.example");
    const auto started = Clock::now();
    const Answered all = resolve_all(resolver, loop, names, RecordType::a);
    for (const auto& answer : all.answers) EXPECT_EQ(answer.status, Status::temperror);
    // Five lookups one after the other would take 2 s.
    EXPECT_LT(Clock::now() - started, 900ms);
}

TEST(ResolverTimeout, ALookupThatTimesOutHoldsUpNoOther) {
    // unbound drops every question under slow.example and answers the rest.
    test_support::UnboundServer server({"2.0.0.127.bl.example. A 127.0.0.2"}, {"local-zone: \"slow.example.\" deny"});
    Resolver resolver({server.forwarder()}, 600ms);
    EventLoop loop;
    std::vector<std::string> names{"2.0.0.127.slow.example"};
    for (int i = 0; i < 5; ++i) names.push_back(i % 2 ? "2.0.0.127.bl.example" : std::to_string(i) + ".bl.example");
    const auto started = Clock::now();
    const Answered all = resolve_all(resolver, loop, names, RecordType::a);
    EXPECT_EQ(all.answers[0].status, Status::temperror);
    EXPECT_EQ(all.answers[0].error, "timeout");
    EXPECT_GE(all.at[0] - started, 600ms);
    for (size_t i = 1; i < names.size(); ++i) {
        EXPECT_EQ(all.answers[i].status, i % 2 ? Status::not_found : Status::found) << names[i];
        EXPECT_LT(all.at[i] - started, 300ms) << names[i] << " waited for the silent one";
    }
}

TEST(ResolverTimeout, LookupsOfOneNameAtOnceAreOneQuery) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 300ms);
    EventLoop loop;
    const std::vector<std::string> names{"a.bl.example", "A.bl.example.", "a.bl.example", "b.bl.example",
                                         "a.bl.example"};
    const double before = questions_sent();
    const Answered all = resolve_all(resolver, loop, names, RecordType::a);
    for (const auto& answer : all.answers) {
        EXPECT_EQ(answer.error, "timeout");
        EXPECT_GE(answer.took, 300ms);
    }
    // libunbound would join equal questions on the wire too; the counter
    // says none but the first of each name went to libunbound.
    EXPECT_EQ(questions_sent() - before, 2.0);
    EXPECT_EQ(silent.received(), 2u);
}

TEST(ResolverTimeout, ALookupThatJoinsAQuestionHasItsOwnDeadline) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 400ms);
    EventLoop loop;
    std::optional<Answer> first, second;
    const auto started = Clock::now();
    Timer later(loop, [&] { resolver.lookup("a.bl.example", RecordType::a, [&](Answer got) { second = got; }); });
    loop.defer([&] {
        resolver.lookup("a.bl.example", RecordType::a, [&](Answer got) { first = got; });
        later.arm_after(200ms);
    });
    bool expired = false;
    Timer watchdog(loop, [&expired] { expired = true; });
    watchdog.arm_after(5s);
    loop.run_until([&] { return expired || (first && second); });
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->error, "timeout");
    EXPECT_EQ(second->error, "timeout");
    EXPECT_GE(first->took, 400ms);
    EXPECT_GE(second->took, 400ms);
    EXPECT_GE(Clock::now() - started, 600ms) << "the second waited only for the first's deadline";
}

TEST(ResolverTimeout, AResolverDroppedWithLookupsOutCallsNothingBack) {
    BlackHole silent;
    auto resolver = std::make_unique<Resolver>(std::vector<std::string>{silent.forwarder()}, 200ms);
    EventLoop loop;
    test_support::NotedCall<Answer> answered;
    const auto started = Clock::now();
    loop.defer([&] {
        for (int i = 0; i < 3; ++i) resolver->lookup(std::to_string(i) + ".bl.example", RecordType::a, answered.callback());
        // Dropped on the loop's own thread, its lookups with it.
        resolver.reset();
    });
    test_support::serve_for(loop, 500ms);
    EXPECT_EQ(answered.calls(), 0);
    // Cancelled, not waited for.
    EXPECT_LT(Clock::now() - started, 1500ms);
}

TEST(ResolverSettings, ForwardersLibunboundRefusesNameDnsResolver) {
    try {
        Resolver resolver({"192.0.2.1@notaport"}, 1s);
        FAIL() << "accepted";
    } catch (const ResolverError& error) {
        EXPECT_EQ(std::string(error.what()), "dns.resolver '192.0.2.1@notaport': syntax error");
    }
}

TEST(ResolverSettings, DescribeNamesTheForwarders) {
    EXPECT_EQ(Resolver({"127.0.0.1@5353", "::1"}, 1s).describe(), "forwarders 127.0.0.1@5353 ::1");
}

}  // namespace
}  // namespace portcullis::dns
