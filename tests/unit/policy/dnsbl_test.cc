/*
 * dnsbl_test.cc: DNSBL and RHSBL in the policy, over a fake resolver that
 * records what it is asked: the names (IPv4 octets and IPv6 nibbles
 * reversed, domains), the return codes (dnsbl("zone") == 127.0.0.x among
 * several, 127.255.255.x and non-127 answers not listings), a temperror
 * as "not listed", one lookup per name per session, none for a rule that
 * is not reached, and a reached rule's lookups all started before the
 * first is waited for.
 */
#include <gtest/gtest.h>

#include <map>

#include "policy/evaluator.h"
#include "policy/loader.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "support/parsed_policy.h"
#include "policy/values.h"

namespace portcullis::policy {
namespace {

using Strings = std::vector<std::string>;
using Kind = AddressAnswer::Kind;

class FakeResolver final : public AddressResolver {
public:
    std::map<std::string, AddressAnswer> answers;   // absent: not found
    Strings events;                                  // "start NAME", "wait NAME"

    void list(const std::string& name, const Strings& codes) {
        AddressAnswer& answer = answers[name];
        answer.kind = Kind::found;
        for (const auto& code : codes) answer.addresses.push_back(*parse_ip(code));
    }

    std::unique_ptr<PendingAddresses> start(const std::string& name) override {
        events.push_back("start " + name);
        const auto found = answers.find(name);
        AddressAnswer answer;
        answer.kind = Kind::not_found;
        return std::make_unique<Pending>(*this, name, found == answers.end() ? answer : found->second);
    }

private:
    class Pending final : public PendingAddresses {
    public:
        Pending(FakeResolver& owner, std::string name, AddressAnswer answer)
            : owner_(owner), name_(std::move(name)), answer_(std::move(answer)) {}
        AddressAnswer wait() override {
            owner_.events.push_back("wait " + name_);
            return answer_;
        }

    private:
        FakeResolver& owner_;
        std::string name_;
        AddressAnswer answer_;
    };
};

using test_support::parse;

class Dnsbl : public ::testing::Test {
protected:
    Dnsbl() : resolver_(std::make_shared<FakeResolver>()), cache_(resolver_) {
        facts_.client_ip = parse_ip("203.0.113.5");
        facts_.sender = "alice@Spam.Example";
        facts_.lookups = &cache_;
    }

    /* The reply text of the rule that decided at STAGE, or "none". */
    std::string decide(const std::string& policy_text, Stage stage = Stage::connect) {
        const auto policy = parse(policy_text);
        const Verdict verdict = evaluate_stage(*policy, stage, facts_, false).verdict;
        return verdict.outcome == Outcome::none ? "none" : verdict.text.front();
    }

    std::shared_ptr<FakeResolver> resolver_;
    LookupCache cache_;
    Facts facts_;
};

TEST(DnsblName, ReversedAddressesAndDomains) {
    FieldValue v4;
    v4.kind = FieldValue::Kind::ip;
    v4.ip = *parse_ip("203.0.113.5");
    EXPECT_EQ(dnsbl_name(v4, "zen.spamhaus.org"), "5.113.0.203.zen.spamhaus.org");
    EXPECT_EQ(dnsbl_name(v4, ".zen.spamhaus.org."), "5.113.0.203.zen.spamhaus.org");

    FieldValue v6 = v4;
    v6.ip = *parse_ip("2001:db8:1:2::ab");
    EXPECT_EQ(dnsbl_name(v6, "bl.example"),
              "b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example");

    FieldValue domain;
    domain.kind = FieldValue::Kind::text;
    domain.text = "Spam.Example.";
    EXPECT_EQ(dnsbl_name(domain, "dbl.example"), "spam.example.dbl.example");
    domain.text = "";
    EXPECT_EQ(dnsbl_name(domain, "dbl.example"), std::nullopt);
    EXPECT_EQ(dnsbl_name(FieldValue{}, "dbl.example"), std::nullopt);
}

TEST_F(Dnsbl, ListedClientIsRefusedUnlistedIsNot) {
    const std::string rules = "on connect { reject \"listed\" if client.ip in dnsbl \"bl.example\" }\n";
    resolver_->list("5.113.0.203.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide(rules), "listed");
    facts_.client_ip = parse_ip("203.0.113.6");
    EXPECT_EQ(decide(rules), "none");
}

TEST_F(Dnsbl, Ipv6ClientIsLookedUpByNibbles) {
    facts_.client_ip = parse_ip("2001:db8::1");
    resolver_->list("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide("on connect { reject \"listed\" if client.ip in dnsbl \"bl.example\" }\n"), "listed");
}

TEST_F(Dnsbl, RhsblOnTheSenderDomain) {
    resolver_->list("spam.example.dbl.example", {"127.0.1.2"});
    EXPECT_EQ(decide("on mail { reject \"rhsbl\" if sender.domain in dnsbl \"dbl.example\" }\n", Stage::mail),
              "rhsbl");
}

TEST_F(Dnsbl, ValueIsAnyOfTheReturnCodes) {
    resolver_->list("5.113.0.203.zen.example", {"127.0.0.10", "127.0.0.4"});
    const std::string rules =
        "on connect {\n"
        "  reject \"sbl\" if dnsbl(\"zen.example\") == 127.0.0.2\n"
        "  reject \"xbl\" if dnsbl(\"zen.example\") == 127.0.0.4\n"
        "}\n";
    EXPECT_EQ(decide(rules), "xbl");
    EXPECT_EQ(decide("on connect { reject \"pbl\" if dnsbl(\"zen.example\") == 127.0.0.10 }\n"), "pbl");
    EXPECT_EQ(decide("on connect { reject \"not 2\" if dnsbl(\"zen.example\") != 127.0.0.2 }\n"), "not 2");
    EXPECT_EQ(decide("on connect { reject \"not 4\" if dnsbl(\"zen.example\") != 127.0.0.4 }\n"), "none");
    // As a text, the smallest code.
    EXPECT_EQ(resolve_field(FieldId::dnsbl, "zen.example", facts_).str(), "127.0.0.4");
}

TEST_F(Dnsbl, ErrorCodesAndForeignAnswersAreNoListing) {
    resolver_->list("5.113.0.203.refused.example", {"127.255.255.254"});
    resolver_->list("5.113.0.203.wildcard.example", {"192.0.2.1"});
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"refused.example\" }\n"), "none");
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"wildcard.example\" }\n"), "none");
}

TEST_F(Dnsbl, TemperrorIsNotListed) {
    resolver_->answers["5.113.0.203.bl.example"] = AddressAnswer{Kind::temperror, {}};
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"bl.example\" }\n"), "none");
    EXPECT_EQ(decide("on connect { reject \"x\" if not client.ip in dnsbl \"bl.example\" }\n"), "x");
}

TEST_F(Dnsbl, WithoutLookupsNothingIsListed) {
    facts_.lookups = nullptr;
    resolver_->list("5.113.0.203.bl.example", {"127.0.0.2"});
    EXPECT_EQ(decide("on connect { reject \"x\" if client.ip in dnsbl \"bl.example\" }\n"), "none");
    EXPECT_EQ(resolver_->events, Strings{});
}

TEST_F(Dnsbl, OneLookupPerNameAndNoneForARuleNotReached) {
    resolver_->list("5.113.0.203.bl.example", {"127.0.0.2"});
    const std::string rules =
        "on connect {\n"
        "  log \"a\" if client.ip in dnsbl \"bl.example\"\n"
        "  reject \"listed\" if client.ip in dnsbl \"BL.example\"\n"
        "  reject \"never\" if client.ip in dnsbl \"other.example\"\n"
        "}\n";
    EXPECT_EQ(decide(rules), "listed");
    EXPECT_EQ(decide(rules), "listed");
    EXPECT_EQ(resolver_->events, (Strings{"start 5.113.0.203.bl.example", "wait 5.113.0.203.bl.example"}));
}

TEST_F(Dnsbl, AReachedRuleStartsAllItsLookupsFirst) {
    decide("on connect { reject \"x\" if client.ip in dnsbl \"a.example\" or dnsbl(\"b.example\") == 127.0.0.2 }\n");
    EXPECT_EQ(resolver_->events, (Strings{"start 5.113.0.203.a.example", "start 5.113.0.203.b.example",
                                          "wait 5.113.0.203.a.example", "wait 5.113.0.203.b.example"}));
}

TEST(DnsblNeeds, OnlyPoliciesThatConsultAList) {
    EXPECT_FALSE(analyse_needs(*parse("on connect { reject if client.ip == 192.0.2.1 }\n"), false).consults_dns_lists());
    EXPECT_TRUE(analyse_needs(*parse("on mail { reject if helo in dnsbl \"x.example\" }\n"), false).consults_dns_lists());
    EXPECT_TRUE(analyse_needs(*parse("on connect { reject if dnsbl(\"x.example\") == 127.0.0.2 }\n"), false)
                    .consults_dns_lists());
}

/* Each list as "ZONE FILE:LINE:COL", where the rules name it. */
Strings dns_lists_of(const std::string& text) {
    Strings uses;
    for (const auto& use : analyse_needs(*parse(text), false).dns_lists) uses.push_back(use.zone + " " + use.where.str());
    return uses;
}

TEST(DnsblNeeds, EveryListAndWhereItIsWritten) {
    EXPECT_EQ(dns_lists_of("on connect {\n"
                           "    reject \"listed: ${dnsbl(c.example)}\" if client.ip in dnsbl \"a.example\"\n"
                           "    reject if dnsbl(\"b.example\") == 127.0.0.2\n"
                           "}\n"
                           "on mail { reject if sender.domain in dnsbl \"d.example\" }\n"
                           "on rcpt { reject \"${dnsbl(\\\"e.example\\\")}\" if helo in dnsbl \"a.example\" }\n"),
              (Strings{"a.example test.rules:2:64", "c.example test.rules:2:23", "b.example test.rules:3:15",
                       "d.example test.rules:5:44", "a.example test.rules:6:61", "e.example test.rules:6:21"}));
}

}  // namespace
}  // namespace portcullis::policy
