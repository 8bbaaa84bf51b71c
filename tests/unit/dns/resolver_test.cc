/*
 * resolver_test.cc: dns::Resolver against a real unbound serving local
 * data (listed, not listed, TXT, AAAA, MX, PTR), and against a forwarder that never
 * answers (a UDP socket the test opens and never reads): the timeout, a
 * temperror within dns.timeout, and lookups running in parallel.
 */
#include "dns/resolver.h"

#include <gtest/gtest.h>

#include "support/black_hole.h"
#include "support/unbound_server.h"

namespace portcullis::dns {
namespace {

using namespace std::chrono_literals;
using Status = Answer::Status;
using Strings = std::vector<std::string>;
using test_support::BlackHole;

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
    static test_support::UnboundServer* server_;
    Resolver resolver_{{server_->forwarder()}, 2s};
};
test_support::UnboundServer* ResolverTest::server_ = nullptr;

TEST_F(ResolverTest, ListedAddressGivesItsARecords) {
    const Answer answer = resolver_.lookup("5.113.0.203.bl.example", RecordType::a);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    Strings records = answer.records;
    std::sort(records.begin(), records.end());
    EXPECT_EQ(records, (Strings{"127.0.0.10", "127.0.0.4"}));
    EXPECT_LT(answer.took, 2s);
}

TEST_F(ResolverTest, UnlistedNameIsNotFound) {
    const Answer answer = resolver_.lookup("6.113.0.203.bl.example", RecordType::a);
    EXPECT_EQ(answer.status, Status::not_found) << answer.error;
    EXPECT_TRUE(answer.records.empty());
}

TEST_F(ResolverTest, NameWithOtherTypesOnlyIsNotFound) {
    EXPECT_EQ(resolver_.lookup("mail.example", RecordType::a).status, Status::not_found);
}

TEST_F(ResolverTest, TxtStringsAreJoined) {
    const Answer answer = resolver_.lookup("5.113.0.203.bl.example", RecordType::txt);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"listed: see https://bl.example/203.0.113.5"});
}

TEST_F(ResolverTest, AaaaRecords) {
    const Answer answer = resolver_.lookup("mail.example", RecordType::aaaa);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"2001:db8::25"});
}

TEST_F(ResolverTest, MxRecordsGiveTheExchanges) {
    const Answer answer = resolver_.lookup("mail.example", RecordType::mx);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    Strings records = answer.records;
    std::sort(records.begin(), records.end());
    EXPECT_EQ(records, (Strings{"mx1.mail.example", "mx2.mail.example"}));
}

TEST_F(ResolverTest, PtrRecordGivesTheName) {
    const Answer answer = resolver_.lookup("5.113.0.93.in-addr.arpa", RecordType::ptr);
    ASSERT_EQ(answer.status, Status::found) << answer.error;
    EXPECT_EQ(answer.records, Strings{"host.mail.example"});
}

TEST_F(ResolverTest, NameWithADotInALabelIsDropped) {
    EXPECT_EQ(resolver_.lookup("odd.example", RecordType::ptr).status, Status::not_found);
}

TEST_F(ResolverTest, LookupsStartedTogetherAllAnswer) {
    std::vector<Resolver::Lookup> lookups;
    for (int i = 0; i < 20; ++i) lookups.push_back(resolver_.start(i % 2 ? "2.0.0.127.bl.example" : "x.bl.example", RecordType::a));
    for (size_t i = 0; i < lookups.size(); ++i) {
        EXPECT_EQ(lookups[i].wait().status, i % 2 ? Status::found : Status::not_found) << i;
    }
}

TEST_F(ResolverTest, WaitingTwiceGivesTheSameAnswer) {
    auto lookup = resolver_.start("2.0.0.127.bl.example", RecordType::a);
    EXPECT_EQ(lookup.wait().records, Strings{"127.0.0.2"});
    EXPECT_EQ(lookup.wait().records, Strings{"127.0.0.2"});
}

TEST(ResolverTimeout, ASilentForwarderIsATemperrorAfterTheTimeout) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 300ms);
    const auto started = std::chrono::steady_clock::now();
    const Answer answer = resolver.lookup("2.0.0.127.bl.example", RecordType::a);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(answer.status, Status::temperror);
    EXPECT_EQ(answer.error, "timeout");
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 800ms);
}

TEST(ResolverTimeout, LookupsRunInParallel) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 400ms);
    const auto started = std::chrono::steady_clock::now();
    std::vector<Resolver::Lookup> lookups;
    for (int i = 0; i < 5; ++i) lookups.push_back(resolver.start(std::to_string(i) + ".bl.example", RecordType::a));
    for (auto& lookup : lookups) EXPECT_EQ(lookup.wait().status, Status::temperror);
    // Five lookups one after the other would take 2 s.
    EXPECT_LT(std::chrono::steady_clock::now() - started, 900ms);
}

TEST(ResolverTimeout, DroppingALookupCancelsIt) {
    BlackHole silent;
    Resolver resolver({silent.forwarder()}, 5s);
    const auto started = std::chrono::steady_clock::now();
    { auto dropped = resolver.start("2.0.0.127.bl.example", RecordType::a); }
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
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
