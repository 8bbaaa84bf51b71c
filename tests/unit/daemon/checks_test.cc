/*
 * checks_test.cc: attach_checks(), the one place a loaded state gets its
 * checks.  The store's checks come only for rules that keep state, and
 * never without a store; the lookups only for a policy that consults a
 * DNS list or reads SPF, DKIM or DMARC, or a config that wants our
 * Authentication-Results, and never for `try --dry`; our header turns on
 * every check and what the MTA must send for them; a check that cannot
 * be set up is a config error at the place its key was set.  The policy
 * and its rules stay as loaded.  Nothing is looked up: the resolver is a
 * forwarder on loopback that no test asks.
 */
#include "daemon/checks.h"

#include <gtest/gtest.h>

#include "store/memory_store.h"
#include "support/memory_limit.h"
#include "support/temp_dir.h"

namespace portcullis::daemon {
namespace {

using Strings = std::vector<std::string>;

class AttachChecks : public ::testing::Test {
protected:
    /* The state of RULES with the config's defaults, dns.resolver a
     * loopback forwarder, and OVERRIDES. */
    State load(const std::string& rules, Strings overrides = {}) {
        overrides.push_back("policy.file=" + dir_.write("test.rules", rules));
        overrides.push_back("dns.resolver=127.0.0.1@5353");
        overrides.push_back("store.snapshot=");
        ConfigSource source;
        source.path = dir_.path("absent.conf");
        source.overrides = std::move(overrides);
        LoadOutcome outcome = load_state(source);
        std::string errors;
        for (const auto& error : outcome.errors) errors += error + "\n";
        EXPECT_TRUE(outcome.state) << errors;
        return outcome.state ? std::move(*outcome.state) : State{};
    }

    /* STATE with its checks attached, which must work. */
    State attached(State state, const Resources& resources) {
        EXPECT_EQ(attach_checks(state, resources), "");
        return state;
    }

    Resources with_store() const { return {store_, true}; }

    test_support::TempDir dir_;
    std::shared_ptr<store::Store> store_ = std::make_shared<store::MemoryStore>("", test_support::kMemoryLimit);
};

TEST_F(AttachChecks, APolicyThatNeedsNothingGetsNothing) {
    const State state = attached(load("on rcpt { reject if rcpt.count > 5 }\n"), with_store());
    EXPECT_FALSE(state.snapshot->stateful);
    EXPECT_FALSE(state.snapshot->checks);
}

TEST_F(AttachChecks, RulesThatKeepStateGetTheStore) {
    for (const std::string rules : {"on rcpt { greylist }\n", "on mail { ratelimit sender 5/1m }\n",
                                    "on rcpt { monitor greylist }\n"}) {
        const State state = attached(load(rules), with_store());
        EXPECT_TRUE(state.snapshot->stateful) << rules;
        EXPECT_FALSE(state.snapshot->checks) << rules;
    }
}

TEST_F(AttachChecks, WithoutAStoreStatefulRulesActAsWithTheStoreDown) {
    const State state = attached(load("on rcpt { greylist }\n"), Resources{nullptr, true});
    EXPECT_FALSE(state.snapshot->stateful);
}

TEST_F(AttachChecks, LookupsForEveryFactThatTakesOne) {
    for (const std::string rules :
         {"on connect { reject if client.ip in dnsbl \"bl.example\" }\n", "on mail { reject if spf == fail }\n",
          "on eom { log \"${dkim.domain}\" }\n", "on eom { reject if dmarc.policy == reject }\n"}) {
        const State state = attached(load(rules), with_store());
        EXPECT_TRUE(state.snapshot->checks) << rules;
        EXPECT_FALSE(state.snapshot->stateful) << rules;
    }
}

TEST_F(AttachChecks, DryRunsLookNothingUp) {
    const State state = attached(load("on connect { reject if client.ip in dnsbl \"bl.example\" }\n"),
                                 Resources{store_, false});
    EXPECT_FALSE(state.snapshot->checks);
}

TEST_F(AttachChecks, OurHeaderTurnsOnEveryCheckAndWhatTheMtaMustSend) {
    State loaded = load("on rcpt { reject if rcpt.count > 5 }\n", {"auth.authserv_id=mx.example"});
    const auto policy = loaded.snapshot->policy;
    EXPECT_FALSE(loaded.snapshot->needs.body);
    const State state = attached(std::move(loaded), with_store());
    const policy::PolicyNeeds& needs = state.snapshot->needs;
    EXPECT_TRUE(state.snapshot->checks);
    EXPECT_TRUE(needs.spf && needs.dkim && needs.dmarc);
    EXPECT_TRUE(needs.headers && needs.body);
    EXPECT_TRUE(needs.reads_fields_of(policy::Stage::helo));   // SPF's identity for <>
    EXPECT_EQ(state.snapshot->policy, policy);                  // the rules stay as loaded
}

TEST_F(AttachChecks, AnAuthservIdWithoutOurHeaderStillNeedsTheHeaderFields) {
    // To remove forged Authentication-Results, not to check anything.
    const State state =
        attached(load("on rcpt { reject if rcpt.count > 5 }\n", {"auth.authserv_id=mx.example", "auth.add_header=false"}),
                 with_store());
    const policy::PolicyNeeds& needs = state.snapshot->needs;
    EXPECT_TRUE(state.snapshot->checks);
    EXPECT_TRUE(needs.headers);
    EXPECT_FALSE(needs.spf || needs.dkim || needs.dmarc || needs.body);
}

TEST_F(AttachChecks, AnUnreadablePublicSuffixListIsAnErrorAtItsKey) {
    const std::string missing = dir_.path("no-such.dat");
    State state = load("on eom { reject if dmarc == fail }\n", {"auth.public_suffix_list=" + missing});
    const std::string error = attach_checks(state, with_store());
    const std::string where = "-o auth.public_suffix_list=" + missing + ": error: auth.public_suffix_list: ";
    EXPECT_TRUE(error.starts_with(where)) << error;
    EXPECT_NE(error.find(missing, where.size()), std::string::npos) << "the message names the file: " << error;
}

/* The policy file that cannot be read is said at policy.file, where it
 * was set (here an -o; else the configuration file), not as a bare
 * "error:" that names no key. */
TEST_F(AttachChecks, AnUnreadablePolicyFileIsAnErrorAtItsKey) {
    const std::string missing = dir_.path("no-such.rules");
    ConfigSource source;
    source.path = dir_.path("absent.conf");
    source.overrides = {"policy.file=" + missing};
    const LoadOutcome outcome = load_state(source);
    EXPECT_FALSE(outcome.state);
    EXPECT_EQ(outcome.errors, (Strings{"-o policy.file=" + missing + ": error: policy.file: cannot open '" + missing +
                                       "': No such file or directory"}));
}

}  // namespace
}  // namespace portcullis::daemon
