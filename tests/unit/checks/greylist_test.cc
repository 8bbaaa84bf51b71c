/*
 * greylist_test.cc: triplet normalisation and the greylist decisions, with
 * an injected clock, on both store backends (the memory store, and a real
 * redis-server the test starts), so the Lua and C++ halves of every
 * script are held to the same answers: the decisions, and the network's
 * hash they leave (its fields, its TTL, what pruning drops).  check()
 * answers through its callback, waited for on the backend's loop; what it
 * makes of replies no script gives, and of a store that fails, is tried
 * on a store that answers as the test says (support/scripted_store.h).
 */
#include "checks/greylist.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/heap_use.h"
#include "support/loop_answer.h"
#include "support/scripted_store.h"
#include "support/store_backends.h"
#include "support/temp_dir.h"
#include "util/digest.h"

namespace portcullis::checks {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using test_support::Backend;

IpAddress ip(std::string_view text) { return *parse_ip(text); }

/* What GREYLIST's check() of TRIPLET gives, waited for on LOOP. */
store::Outcome<GreylistDecision> outcome_of(Greylist& greylist, EventLoop& loop, const Triplet& triplet,
                                            const GreylistSettings& settings) {
    return test_support::answer_on<store::Outcome<GreylistDecision>>(
        loop, [&](Greylist::CheckDone done) { greylist.check(triplet, settings, std::move(done)); });
}

GreylistDecision decide(Greylist& greylist, EventLoop& loop, const Triplet& triplet,
                        const GreylistSettings& settings) {
    return test_support::value_of(outcome_of(greylist, loop, triplet, settings));
}

TEST(GreylistNormalize, LowercasesAndStripsExtension) {
    EXPECT_EQ(normalize_sender("John.Doe+Lists@Example.COM"), "john.doe@example.com");
}

TEST(GreylistNormalize, UnwrapsBatv) {
    EXPECT_EQ(normalize_sender("prvs=4a5b6c7d8e=alice@example.org"), "alice@example.org");
    EXPECT_EQ(normalize_sender("PRVS=0123ABCDEF=Bob@Example.org"), "bob@example.org");
}

TEST(GreylistNormalize, FoldsVerpDigits) {
    EXPECT_EQ(normalize_sender("bounce-12345-67@lists.example.net"), "bounce-#-#@lists.example.net");
    EXPECT_EQ(normalize_sender("bounce-99999-1@lists.example.net"), normalize_sender("bounce-1-23@lists.example.net"));
}

TEST(GreylistNormalize, AllStepsTogether) {
    // BATV first, then the extension, then the VERP digits.
    EXPECT_EQ(normalize_sender("prvs=1111aaaa=News-2024+id77@Mail.Example"), "news-#@mail.example");
}

TEST(GreylistNormalize, NullSenderStaysNull) { EXPECT_EQ(normalize_sender(""), ""); }

TEST(GreylistNormalize, DigitsInTheDomainAreKept) {
    EXPECT_EQ(normalize_sender("user1@mx1.example123.com"), "user#@mx1.example123.com");
}

TEST(GreylistNetwork, Ipv4GroupsBySlash24) {
    EXPECT_EQ(client_network(ip("203.0.113.77"), false), "203.0.113.0/24");
    EXPECT_EQ(client_network(ip("203.0.113.77"), true), "203.0.113.77");
}

TEST(GreylistNetwork, Ipv6GroupsBySlash64) {
    EXPECT_EQ(client_network(ip("2001:db8:1:2:aaaa::5"), false), "2001:db8:1:2::/64");
    EXPECT_EQ(client_network(ip("2001:db8:1:2:bbbb:cccc:dddd:eeee"), false), "2001:db8:1:2::/64");
    EXPECT_NE(client_network(ip("2001:db8:1:3::5"), false), "2001:db8:1:2::/64");
    EXPECT_EQ(client_network(ip("2001:db8:1:2::5"), true), "2001:db8:1:2::5");
}

TEST(GreylistNetwork, MappedIpv4IsIpv4) {
    EXPECT_EQ(client_network(ip("::ffff:198.51.100.9"), false), "198.51.100.0/24");
}

TEST(GreylistTriplet, RecipientIsLowercased) {
    const auto triplet = make_triplet(ip("192.0.2.1"), "A@B.example", "Postmaster@Example.COM", false);
    EXPECT_EQ(triplet.rcpt, "postmaster@example.com");
    EXPECT_EQ(triplet.sender, "a@b.example");
}

class GreylistDecisions : public testing::TestWithParam<Backend> {
protected:
    GreylistDecisions()
        : backend_(GetParam(), [this] { return now_.load(); }),
          redis_(backend_.redis.get()),
          store_(backend_.store.get()),
          greylist_(std::make_unique<Greylist>(*store_, [this] { return now_.load(); })) {}

    void advance(Millis by) { now_ += by.count(); }

    /* The hash of the network NETWORK, as the store's scan gives it; the
     * expiry of a Redis key comes back through its PTTL, so to within a
     * second. */
    std::optional<store::HashEntry> hash_of(const std::string& network) {
        std::optional<store::HashEntry> found;
        store_->scan_hashes("g:", [&](const store::HashEntry& hash) {
            if (hash.key == "g:" + key_digest(network)) found = hash;
        });
        return found;
    }

    /* The fields of NETWORK's hash: meta "m", "a", and the triplets. */
    size_t fields_of(const std::string& network) {
        const auto hash = hash_of(network);
        return hash ? hash->fields.size() : 0;
    }

    int64_t ms(Millis duration) const { return duration.count(); }

    GreylistDecision check(const Triplet& triplet) { return decide(*greylist_, backend_.loop, triplet, settings_); }

    GreylistSettings settings_;                       // 5m, 2d, 35d, awl 5
    Triplet triplet_ = make_triplet(ip("203.0.113.5"), "sender@example.org", "rcpt@example.com", false);
    std::atomic<int64_t> now_{1'800'000'000'000};
    test_support::TestStore backend_;
    test_support::RedisServer* redis_;   // null on the memory backend
    store::Store* store_;
    std::unique_ptr<Greylist> greylist_;
};

TEST_P(GreylistDecisions, FirstAttemptIsNewAndWaitsTheDelay) {
    const auto decision = check(triplet_);
    EXPECT_EQ(decision.reason, GreylistReason::new_triplet);
    EXPECT_EQ(decision.wait_seconds, 300u);
    EXPECT_FALSE(decision.passes());
}

TEST_P(GreylistDecisions, RetryBeforeTheDelayIsEarly) {
    check(triplet_);
    advance(seconds(100));
    const auto decision = check(triplet_);
    EXPECT_EQ(decision.reason, GreylistReason::early);
    EXPECT_EQ(decision.wait_seconds, 200u);
    // One millisecond short of the delay still waits (rounded up to 1 s).
    advance(seconds(200) - Millis(1));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::early);
    EXPECT_EQ(check(triplet_).wait_seconds, 1u);
}

TEST_P(GreylistDecisions, RetryExactlyAtTheDelayPasses) {
    check(triplet_);
    advance(minutes(5));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
}

TEST_P(GreylistDecisions, RetryJustBeforeTheWindowEndsPasses) {
    check(triplet_);
    advance(hours(48) - Millis(1));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
}

TEST_P(GreylistDecisions, RetryAtTheEndOfTheWindowStartsOver) {
    check(triplet_);
    advance(hours(48));
    const auto decision = check(triplet_);
    EXPECT_EQ(decision.reason, GreylistReason::new_triplet);
    EXPECT_EQ(decision.wait_seconds, 300u);
    advance(minutes(4));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::early);
}

TEST_P(GreylistDecisions, PassIsKeptForExpireAndRefreshedOnEveryPass) {
    check(triplet_);
    advance(minutes(5));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);
    advance(hours(24 * 34));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);   // refreshes
    advance(hours(24 * 34));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);   // 68 days after the first pass
    advance(hours(24 * 35));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::new_triplet);   // 35 days without a pass
}

TEST_P(GreylistDecisions, SameNetworkSharesTheTriplet) {
    check(triplet_);
    advance(minutes(6));
    const auto neighbour = make_triplet(ip("203.0.113.200"), "sender@example.org", "rcpt@example.com", false);
    EXPECT_EQ(check(neighbour).reason, GreylistReason::pass);
    const auto elsewhere = make_triplet(ip("203.0.114.5"), "sender@example.org", "rcpt@example.com", false);
    EXPECT_EQ(check(elsewhere).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, ByHostKeepsAddressesApart) {
    settings_.by_host = true;
    const auto first = make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", true);
    const auto second = make_triplet(ip("203.0.113.6"), "s@example.org", "r@example.com", true);
    check(first);
    advance(minutes(6));
    EXPECT_EQ(check(first).reason, GreylistReason::pass);
    EXPECT_EQ(check(second).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, Ipv6GroupsBySlash64) {
    const auto first = make_triplet(ip("2001:db8:5:6::1"), "s@example.org", "r@example.com", false);
    const auto same_64 = make_triplet(ip("2001:db8:5:6:ffff::2"), "s@example.org", "r@example.com", false);
    const auto other_64 = make_triplet(ip("2001:db8:5:7::1"), "s@example.org", "r@example.com", false);
    check(first);
    advance(minutes(5));
    EXPECT_EQ(check(same_64).reason, GreylistReason::pass);
    EXPECT_EQ(check(other_64).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, NormalisedSendersShareTheTriplet) {
    check(make_triplet(ip("198.51.100.1"), "bounce-123+x@Lists.Example", "r@example.com", false));
    advance(minutes(5));
    const auto later = make_triplet(ip("198.51.100.1"), "prvs=abcd1234=bounce-987@lists.example", "R@Example.com", false);
    EXPECT_EQ(check(later).reason, GreylistReason::pass);
}

/* Passes triplet number I from 203.0.113.0/24 (new, then after the delay). */
void pass_one(Greylist& greylist, EventLoop& loop, const GreylistSettings& settings, int i,
              std::atomic<int64_t>& now) {
    const auto triplet = make_triplet(ip("203.0.113.9"), std::string("s").append(1, char('a' + i)) + "@example.org",
                                      "r@example.com", false);
    ASSERT_EQ(decide(greylist, loop, triplet, settings).reason, GreylistReason::new_triplet);
    now += std::chrono::duration_cast<Millis>(minutes(5)).count();
    ASSERT_EQ(decide(greylist, loop, triplet, settings).reason, GreylistReason::pass);
}

TEST_P(GreylistDecisions, NetworkIsWhitelistedAfterAwlPasses) {
    settings_.awl = 3;
    for (int i = 0; i < 2; ++i) pass_one(*greylist_, backend_.loop, settings_, i, now_);
    const auto stranger = make_triplet(ip("203.0.113.44"), "new@elsewhere.example", "r@example.com", false);
    EXPECT_EQ(check(stranger).reason, GreylistReason::new_triplet) << "2 passes are below awl 3";
    pass_one(*greylist_, backend_.loop, settings_, 2, now_);
    const auto another = make_triplet(ip("203.0.113.45"), "other@elsewhere.example", "x@example.com", false);
    EXPECT_EQ(check(another).reason, GreylistReason::awl);
    EXPECT_EQ(greylist_->stats().auto_whitelisted, 1u);
    // The whitelist lapses after expire without a pass from the network.
    advance(hours(24 * 35));
    const auto late = make_triplet(ip("203.0.113.46"), "late@elsewhere.example", "x@example.com", false);
    EXPECT_EQ(check(late).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, AwlPassesRefreshTheWhitelist) {
    settings_.awl = 1;
    pass_one(*greylist_, backend_.loop, settings_, 0, now_);
    for (int day = 0; day < 3; ++day) {
        advance(hours(24 * 30));
        const auto triplet = make_triplet(ip("203.0.113.50"), std::string("d").append(std::to_string(day)) + "@x.example",
                                          "r@example.com", false);
        EXPECT_EQ(check(triplet).reason, GreylistReason::awl) << "day " << day * 30;
    }
}

TEST_P(GreylistDecisions, AwlZeroNeverWhitelists) {
    settings_.awl = 0;
    for (int i = 0; i < 6; ++i) pass_one(*greylist_, backend_.loop, settings_, i, now_);
    const auto stranger = make_triplet(ip("203.0.113.44"), "new@elsewhere.example", "r@example.com", false);
    EXPECT_EQ(check(stranger).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, AllowedTripletPassesAtOnce) {
    greylist_->allow(triplet_, hours(24));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
}

TEST_P(GreylistDecisions, AllowedNetworkSkipsGreylisting) {
    greylist_->allow_network("203.0.113.0/24", hours(24));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::awl);
    EXPECT_EQ(greylist_->stats().allowed, 1u);
}

TEST_P(GreylistDecisions, AwlZeroIgnoresANetworkAnotherRuleWhitelisted) {
    settings_.awl = 3;
    for (int i = 0; i < 3; ++i) pass_one(*greylist_, backend_.loop, settings_, i, now_);
    const auto stranger = make_triplet(ip("203.0.113.44"), "new@elsewhere.example", "r@example.com", false);
    settings_.awl = 0;   // another rule, or the policy reloaded
    EXPECT_EQ(check(stranger).reason, GreylistReason::new_triplet) << "awl 0 turns the auto-whitelist off";
    settings_.awl = 10;
    EXPECT_EQ(check(stranger).reason, GreylistReason::early) << "3 passes are below awl 10";
    settings_.awl = 3;
    EXPECT_EQ(check(stranger).reason, GreylistReason::awl) << "the passes were kept";
}

TEST_P(GreylistDecisions, AnAllowedNetworkSkipsGreylistingForItsExpireExactly) {
    greylist_->allow_network("203.0.113.0/24", hours(1));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::awl);
    // Its passes do not stretch the administrator's hour to the rule's 35 days.
    advance(hours(1));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::new_triplet);

    // Nor does the rule's expire cut a longer allow short.
    greylist_->allow_network("198.51.100.0/24", hours(24 * 90));
    const auto other = make_triplet(ip("198.51.100.7"), "x@example.net", "y@example.com", false);
    advance(hours(24 * 40));
    EXPECT_EQ(check(other).reason, GreylistReason::awl);
    advance(hours(24 * 50) - Millis(1));
    EXPECT_EQ(check(other).reason, GreylistReason::awl);
    advance(Millis(1));
    EXPECT_EQ(check(other).reason, GreylistReason::new_triplet);
}

TEST_P(GreylistDecisions, AnAllowedTripletPassesForAllOfItsExpire) {
    greylist_->allow(triplet_, hours(24 * 90));
    advance(hours(24 * 40));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass) << "allowed for 90 days, past the rule's 35";
    std::vector<TripletState> listed;
    greylist_->list([&](const TripletState& state) { listed.push_back(state); });
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].expires_at_ms, now_ + ms(hours(24 * 35))) << "the pass keeps it for the rule's expire";
}

TEST_P(GreylistDecisions, AClockThatStepsBackWaitsTheLongerForIt) {
    check(triplet_);
    advance(-hours(1));
    const auto decision = check(triplet_);
    EXPECT_EQ(decision.reason, GreylistReason::early);
    EXPECT_EQ(decision.wait_seconds, 3900u) << "an hour back, and the delay";
    advance(hours(1) + minutes(5));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);
    // A pass on a clock behind the last one still passes, and is kept
    // for expire from its own time.
    advance(-hours(24));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
    advance(hours(24 * 35) - Millis(1));
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
}

TEST_P(GreylistDecisions, ControlBytesAndCaseInAddressesMakeDistinctOrSharedTriplets) {
    const auto plain = make_triplet(ip("192.0.2.1"), "User@Example.COM", "Rcpt@Example.COM", false);
    check(plain);
    advance(minutes(5));
    EXPECT_EQ(check(make_triplet(ip("192.0.2.1"), "user@example.com", "rcpt@example.com", false)).reason,
              GreylistReason::pass);
    // A sender and recipient that join alike with the separator stay apart.
    const auto joined_a = make_triplet(ip("192.0.2.1"), "a\nb", "c", false);
    const auto joined_b = make_triplet(ip("192.0.2.1"), "a", "b\nc", false);
    check(joined_a);
    EXPECT_EQ(check(joined_b).reason, GreylistReason::new_triplet);
    const auto nul = make_triplet(ip("192.0.2.1"), std::string("a\0b@x.example", 13), "r\n@example.com", false);
    check(nul);
    advance(minutes(5));
    EXPECT_EQ(check(nul).reason, GreylistReason::pass);
    bool found = false;
    greylist_->list([&](const TripletState& state) { found = found || state.triplet.sender == nul.sender; });
    EXPECT_TRUE(found) << "the sender's bytes come back as they went in";
}

TEST_P(GreylistDecisions, ListStatsAndDrop) {
    check(triplet_);
    const auto other = make_triplet(ip("198.51.100.7"), "x@example.net", "y@example.com", false);
    check(other);
    advance(minutes(5));
    check(other);
    auto stats = greylist_->stats();
    EXPECT_EQ(stats.pending, 1u);
    EXPECT_EQ(stats.passed, 1u);

    std::vector<TripletState> listed;
    greylist_->list([&](const TripletState& state) { listed.push_back(state); });
    ASSERT_EQ(listed.size(), 2u);
    for (const auto& state : listed) {
        if (state.passed) {
            EXPECT_EQ(state.triplet.network, "198.51.100.0/24");
            EXPECT_EQ(state.triplet.sender, "x@example.net");
            EXPECT_EQ(state.triplet.rcpt, "y@example.com");
        } else {
            EXPECT_EQ(state.triplet.network, "203.0.113.0/24");
        }
    }

    EXPECT_TRUE(greylist_->drop(triplet_));
    EXPECT_FALSE(greylist_->drop(triplet_));
    EXPECT_EQ(greylist_->drop_network("198.51.100.0/24"), 2u);   // its whitelist record and its triplet
    stats = greylist_->stats();
    EXPECT_EQ(stats.pending + stats.passed, 0u);
    size_t hashes = 0;
    store_->scan_hashes("", [&](const store::HashEntry&) { ++hashes; });
    EXPECT_EQ(hashes, 0u) << "a network with nothing left has no key";
}

TEST_P(GreylistDecisions, OneHashPerNetworkHoldsTheTripletsInCompactFields) {
    check(triplet_);
    const auto other = make_triplet(ip("203.0.113.77"), "other@example.org", "rcpt@example.com", false);
    check(other);
    EXPECT_EQ(check(make_triplet(ip("198.51.100.1"), "s@example.org", "r@example.com", false)).reason,
              GreylistReason::new_triplet);

    size_t hashes = 0;
    store_->scan_hashes("", [&](const store::HashEntry&) { ++hashes; });
    EXPECT_EQ(hashes, 2u);
    const auto hash = hash_of("203.0.113.0/24");
    ASSERT_TRUE(hash);
    const std::string field = key_digest("sender@example.org\nrcpt@example.com").substr(0, 8) + "rcpt@example.com";
    ASSERT_TRUE(hash->fields.contains(field));
    // In base 36: now (1'800'000'000'000), now + 48 h, now + 1 h.
    const std::string now36 = "mywpiww0", window36 = "myzkem80", hour36 = "mywro2o0";
    // "f", first seen, expiry, the sender.
    EXPECT_EQ(hash->fields.at(field), "f" + now36 + "." + window36 + ".sender@example.org");
    // "m", next prune, the key's expiry, the network.
    EXPECT_EQ(hash->fields.at("m"), "m" + hour36 + "." + window36 + ".203.0.113.0/24");
    EXPECT_EQ(hash->fields.size(), 3u);   // m and two triplets: no AWL record before a pass
    for (const auto& [name, value] : hash->fields) EXPECT_LE(value.size(), 64u) << name;
}

TEST_P(GreylistDecisions, HashLivesAsLongAsItsLatestEntry) {
    check(triplet_);
    EXPECT_NEAR(static_cast<double>(hash_of("203.0.113.0/24")->expires_at_ms),
                static_cast<double>(now_ + ms(hours(48))), 1000);
    advance(minutes(5));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);
    EXPECT_NEAR(static_cast<double>(hash_of("203.0.113.0/24")->expires_at_ms),
                static_cast<double>(now_ + ms(hours(24 * 35))), 1000);
    // A later pending triplet does not shorten it.
    advance(minutes(1));
    check(make_triplet(ip("203.0.113.8"), "late@example.org", "rcpt@example.com", false));
    EXPECT_NEAR(static_cast<double>(hash_of("203.0.113.0/24")->expires_at_ms),
                static_cast<double>(now_ - ms(minutes(1)) + ms(hours(24 * 35))), 1000);
}

TEST_P(GreylistDecisions, WritesPruneDeadEntriesAtMostHourly) {
    // A triplet allowed for a minute, in a hash created now: the next
    // prune is due in an hour.
    greylist_->allow(triplet_, minutes(1));
    advance(minutes(2));
    const auto second = make_triplet(ip("203.0.113.5"), "second@example.org", "rcpt@example.com", false);
    EXPECT_EQ(check(second).reason, GreylistReason::new_triplet);
    EXPECT_EQ(check(triplet_).reason, GreylistReason::new_triplet) << "dead, if not yet pruned";
    greylist_->allow(triplet_, minutes(1));
    advance(minutes(2));
    EXPECT_EQ(fields_of("203.0.113.0/24"), 3u) << "m, second, and the dead triplet";
    std::vector<TripletState> listed;
    greylist_->list([&](const TripletState& state) { listed.push_back(state); });
    ASSERT_EQ(listed.size(), 1u) << "the dead triplet is not listed";
    EXPECT_EQ(listed[0].triplet.sender, "second@example.org");

    advance(hours(1));
    check(make_triplet(ip("203.0.113.5"), "third@example.org", "rcpt@example.com", false));
    EXPECT_EQ(fields_of("203.0.113.0/24"), 3u) << "m, second and third";
    EXPECT_EQ(greylist_->stats().pending, 2u);
}

TEST_P(GreylistDecisions, PruningSetsTheTtlExactlyAndDropsDeadNetworks) {
    check(triplet_);
    advance(minutes(5));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);   // expires in 35 days
    advance(hours(24 * 35));
    const auto fresh = make_triplet(ip("203.0.113.5"), "fresh@example.org", "rcpt@example.com", false);
    EXPECT_EQ(check(fresh).reason, GreylistReason::new_triplet);
    const auto hash = hash_of("203.0.113.0/24");
    ASSERT_TRUE(hash);
    EXPECT_EQ(hash->fields.size(), 2u) << "the passed triplet and the AWL record are gone";
    EXPECT_NEAR(static_cast<double>(hash->expires_at_ms), static_cast<double>(now_ + ms(hours(48))), 1000);

    // Dropping the last live entry deletes the key.
    EXPECT_TRUE(greylist_->drop(fresh));
    EXPECT_FALSE(hash_of("203.0.113.0/24"));
}

TEST_P(GreylistDecisions, LongAddressesStillWork) {
    const std::string local(80, 'x');
    const auto triplet = make_triplet(ip("192.0.2.9"), local + "@example.org", local + "@example.com", false);
    check(triplet);
    advance(minutes(5));
    EXPECT_EQ(check(triplet).reason, GreylistReason::pass);
    std::vector<TripletState> listed;
    greylist_->list([&](const TripletState& state) { listed.push_back(state); });
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].triplet.sender, local + "@example.org");
    EXPECT_EQ(listed[0].triplet.rcpt, local + "@example.com");
    if (redis_) {
        // Past hash-max-listpack-value: this one hash is a hashtable now.
        EXPECT_EQ(redis_->cli({"OBJECT", "ENCODING", "pc:g:" + key_digest("192.0.2.0/24")}), "hashtable");
        EXPECT_EQ(redis_->cli({"OBJECT", "ENCODING", "pc:g:" + key_digest("203.0.113.0/24")}), "");
    }
}

TEST_P(GreylistDecisions, ANetworkKeepsAtMostItsBoundOfTripletsDroppingTheNearestExpiryFirst) {
    check(triplet_);
    advance(minutes(5));
    ASSERT_EQ(check(triplet_).reason, GreylistReason::pass);   // kept for 35 days
    // Pending triplets, each expiring a millisecond after the one before.
    const auto pending = [](size_t index) {
        return make_triplet(ip("203.0.113.9"), "s@example.org", "r" + std::to_string(index) + "@example.com", false);
    };
    for (size_t index = 0; index + 1 < kMaxNetworkTriplets; ++index) {
        check(pending(index));
        advance(Millis(1));
    }
    EXPECT_EQ(fields_of("203.0.113.0/24"), kMaxNetworkTriplets + 2) << "the meta and AWL fields, and every triplet";
    // One more is one too many: the nearest expiry goes, down to the kept number.
    check(pending(kMaxNetworkTriplets - 1));
    EXPECT_EQ(fields_of("203.0.113.0/24"), kKeptNetworkTriplets + 2);
    const size_t dropped = kMaxNetworkTriplets + 1 - kKeptNetworkTriplets;
    EXPECT_EQ(check(pending(dropped)).reason, GreylistReason::early);
    EXPECT_EQ(check(triplet_).reason, GreylistReason::pass);
    // A dropped triplet is absent: new again.
    EXPECT_EQ(check(pending(dropped - 1)).reason, GreylistReason::new_triplet);
    EXPECT_EQ(check(pending(0)).reason, GreylistReason::new_triplet);
}

TEST(GreylistMemory, TheMemoryStoresCountFollowsTheHeap) {
    if (!test_support::heap_measurable()) GTEST_SKIP() << "the heap count does not see this build's allocations";
    int64_t now = 1'800'000'000'000;
    const GreylistSettings settings;
    EventLoop loop;
    // The shapes greylisting makes: a triplet from each of many networks,
    // and many triplets of one network.
    const std::vector<std::function<Triplet(size_t)>> shapes = {
        [](size_t index) {
            const std::string client =
                "10." + std::to_string(index >> 8 & 255) + "." + std::to_string(index & 255) + ".1";
            return make_triplet(ip(client), "bounce-" + std::to_string(index) + "x@spam" + std::to_string(index) +
                                                ".example",
                                "user" + std::to_string(index) + "@victim.example", false);
        },
        [](size_t index) {
            return make_triplet(ip("198.51.100.7"), "a@b.example", "r" + std::to_string(index) + "@victim.example",
                                false);
        }};
    for (const auto& shape : shapes) {
        const size_t before = test_support::heap_in_use();
        store::MemoryStore store("", test_support::kMemoryLimit, [&now] { return now; });
        Greylist greylist(store, [&now] { return now; });
        for (size_t index = 0; index < kKeptNetworkTriplets; ++index) decide(greylist, loop, shape(index), settings);
        const double grown = static_cast<double>(test_support::heap_in_use() - before);
        const double counted = static_cast<double>(store.memory_used());
        EXPECT_GT(counted, grown * 0.8);
        EXPECT_LT(counted, grown * 1.25);
        std::printf("greylist memory: %zu triplets: heap +%.0f bytes, store counts %.0f\n", kKeptNetworkTriplets, grown,
                    counted);
    }
}

TEST(GreylistLayout, TypicalNetworkStaysAListpackInRedis) {
    int64_t now = 1'800'000'000'000;
    test_support::TestStore backend(Backend::redis, [&now] { return now; });
    Greylist greylist(*backend.store, [&now] { return now; });
    const GreylistSettings settings;
    const auto check = [&](const Triplet& triplet) { return decide(greylist, backend.loop, triplet, settings); };
    for (int i = 0; i < 20; ++i) {
        check(make_triplet(ip("203.0.113.5"), "newsletter-" + std::to_string(i) + "@shop17.example.com",
                           "firstname.lastname" + std::to_string(100000 + i) + "@customer42.example.net", false));
    }
    now += std::chrono::duration_cast<Millis>(minutes(5)).count();
    for (int i = 0; i < 2; ++i) {
        check(make_triplet(ip("203.0.113.5"), "newsletter-" + std::to_string(i) + "@shop17.example.com",
                           "firstname.lastname" + std::to_string(100000 + i) + "@customer42.example.net", false));
    }
    EXPECT_EQ(backend.redis->cli({"OBJECT", "ENCODING", "pc:g:" + key_digest("203.0.113.0/24")}), "listpack");
}

TEST(GreylistSnapshot, StateSurvivesTheMemoryStoresSnapshot) {
    test_support::TempDir dir;
    const std::string path = dir.path("state");
    int64_t now = 1'800'000'000'000;
    const auto clock = [&now] { return now; };
    const auto triplet = make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", false);
    const GreylistSettings settings;
    EventLoop loop;
    {
        store::MemoryStore store(path, test_support::kMemoryLimit, clock);
        Greylist greylist(store, clock);
        decide(greylist, loop, triplet, settings);
        greylist.allow_network("198.51.100.0/24", hours(1));
    }
    now += std::chrono::duration_cast<Millis>(minutes(5)).count();
    store::MemoryStore store(path, test_support::kMemoryLimit, clock);
    Greylist greylist(store, clock);
    EXPECT_EQ(decide(greylist, loop, triplet, settings).reason, GreylistReason::pass);
    EXPECT_EQ(decide(greylist, loop, make_triplet(ip("198.51.100.9"), "x@y.example", "r@example.com", false), settings)
                  .reason,
              GreylistReason::awl);
}

TEST(GreylistCheck, TheMemoryStoresDecisionComesDuringTheCall) {
    int64_t now = 1'800'000'000'000;
    store::MemoryStore store("", test_support::kMemoryLimit, [&now] { return now; });
    Greylist greylist(store, [&now] { return now; });
    int calls = 0;
    greylist.check(make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", false), GreylistSettings{},
                   [&calls](store::Outcome<GreylistDecision> outcome) {
                       ++calls;
                       ASSERT_TRUE(outcome.value) << outcome.error;
                       EXPECT_EQ(outcome.value->reason, GreylistReason::new_triplet);
                   });
    EXPECT_EQ(calls, 1);
}

TEST(GreylistCheck, RedisDecidesLaterOnTheLoopThatAsked) {
    int64_t now = 1'800'000'000'000;
    test_support::TestStore backend(Backend::redis, [&now] { return now; });
    Greylist greylist(*backend.store, [&now] { return now; });
    bool returned = false, inside = false;
    EventLoop* answered_on = nullptr;
    const auto outcome = test_support::answer_on<store::Outcome<GreylistDecision>>(
        backend.loop, [&](Greylist::CheckDone done) {
            greylist.check(make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", false),
                           GreylistSettings{}, [&, done](store::Outcome<GreylistDecision> got) {
                               inside = !returned;
                               answered_on = EventLoop::current();
                               done(std::move(got));
                           });
            returned = true;
        });
    EXPECT_FALSE(inside);
    EXPECT_EQ(answered_on, &backend.loop);
    ASSERT_TRUE(outcome.value) << outcome.error;
    EXPECT_EQ(outcome.value->reason, GreylistReason::new_triplet);
}

TEST(GreylistCheck, AStoreThatCannotAnswerIsAnErrorNotADecision) {
    int64_t now = 1'800'000'000'000;
    test_support::TestStore backend(Backend::redis, [&now] { return now; });
    Greylist greylist(*backend.store, [&now] { return now; });
    const auto triplet = make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", false);
    ASSERT_TRUE(outcome_of(greylist, backend.loop, triplet, GreylistSettings{}).value);
    backend.redis->stop();
    const auto outcome = outcome_of(greylist, backend.loop, triplet, GreylistSettings{});
    EXPECT_FALSE(outcome.value);
    EXPECT_TRUE(outcome.error.starts_with("redis 127.0.0.1:" + std::to_string(backend.redis->port()) + "/0: "))
        << outcome.error;
}

class GreylistReplies : public testing::Test {
protected:
    store::Outcome<GreylistDecision> given(std::vector<std::string> reply, std::optional<std::string> error = {}) {
        store_.answer({std::move(reply), std::move(error)});
        return outcome_of(greylist_, loop_, triplet_, GreylistSettings{});
    }

    test_support::ScriptedStore store_;
    Greylist greylist_{store_, [] { return int64_t{1'800'000'000'000}; }};
    EventLoop loop_;
    Triplet triplet_ = make_triplet(ip("203.0.113.5"), "s@example.org", "r@example.com", false);
};

TEST_F(GreylistReplies, EachWordIsItsDecisionAndTheWaitIsRoundedUpToSeconds) {
    auto outcome = given({"new", "299001"});
    ASSERT_TRUE(outcome.value) << outcome.error;
    EXPECT_EQ(outcome.value->reason, GreylistReason::new_triplet);
    EXPECT_EQ(outcome.value->wait_seconds, 300u);
    outcome = given({"early", "1"});
    ASSERT_TRUE(outcome.value);
    EXPECT_EQ(outcome.value->reason, GreylistReason::early);
    EXPECT_EQ(outcome.value->wait_seconds, 1u);
    EXPECT_EQ(given({"pass", "0"}).value->reason, GreylistReason::pass);
    EXPECT_EQ(given({"awl", "0"}).value->reason, GreylistReason::awl);
    EXPECT_EQ(store_.calls, std::vector<std::string>(4, "greylist-check"));
}

TEST_F(GreylistReplies, RepliesOfTheWrongShapeAreErrors) {
    auto outcome = given({});
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "greylist-check: unexpected reply from the store");
    outcome = given({"new", "1", "extra"});
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "greylist-check: unexpected reply from the store");
    outcome = given({"maybe", "0"});
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "greylist-check: unexpected reply 'maybe'");
}

TEST_F(GreylistReplies, AStoreFailureIsTheOutcomesError) {
    const auto outcome = given({}, "redis 127.0.0.1:6379/0: no reply within 200ms");
    EXPECT_FALSE(outcome.value);
    EXPECT_EQ(outcome.error, "redis 127.0.0.1:6379/0: no reply within 200ms");
}

TEST_F(GreylistReplies, AnAnswerThatComesLaterIsPassedOnOnce) {
    store_.answer_later(true);
    const auto outcome = given({"pass", "0"});
    ASSERT_TRUE(outcome.value) << outcome.error;
    EXPECT_EQ(outcome.value->reason, GreylistReason::pass);
    test_support::serve_for(loop_, Millis(10));   // a second answer would fail answer_on()
}

INSTANTIATE_TEST_SUITE_P(Backends, GreylistDecisions, testing::Values(Backend::memory, Backend::redis),
                         test_support::backend_name);

}  // namespace
}  // namespace portcullis::checks
