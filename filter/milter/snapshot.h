/*
 * snapshot.h: the policy a session runs under.
 *
 * A Snapshot is what one load of config and policy produced: the rules,
 * what they need from the MTA, the mode, the stateful checks (the store
 * behind greylist rules), the resolver behind dnsbl rules and SPF
 * checks, and what follows each message for DKIM, DMARC and the
 * Authentication-Results header, that they run with.  Sessions hold a
 * shared_ptr to the snapshot current when they started, so a reload
 * never changes the rules under a session in flight.
 */
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"
#include "policy/facts.h"
#include "policy/lookups.h"
#include "policy/needs.h"
#include "policy/stateful.h"

namespace portcullis::milter {

/* One message's authentication, as the session feeds it: the header
 * fields (VALUE as it came after the colon), the end of the header, the
 * body in chunks; then DKIM and DMARC for the rules (policy::
 * MessageAuthentication), the Authentication-Results fields that claim
 * to be ours, and our own. */
class MessageStream : public policy::MessageAuthentication {
public:
    virtual void header(std::string_view name, std::string_view value) = 0;
    virtual void end_of_headers() = 0;
    virtual void body(std::string_view chunk) = 0;
    /* The positions (1-based, among the message's Authentication-Results
     * fields) of those that carry our authserv-id, in order. */
    virtual std::vector<int> forged_results() const = 0;
    /* Our Authentication-Results value, "" when we add none.  DISPOSITION
     * is what the message gets: "none" or "quarantine". */
    virtual std::string results_header(std::string_view disposition) = 0;
};

class MessageAuthenticator {
public:
    virtual ~MessageAuthenticator() = default;
    /* A stream for the message FACTS describe; it reads the SPF answer
     * through FACTS.spf when DMARC or the header needs it. */
    virtual std::unique_ptr<MessageStream> begin(const policy::Facts& facts) = 0;
};

struct Snapshot {
    std::shared_ptr<const policy::Policy> policy;
    policy::PolicyNeeds needs;
    bool monitor_all = false;     // policy.mode = "monitor"
    std::shared_ptr<policy::StatefulChecks> stateful;   // null: as if the store were down
    std::shared_ptr<policy::AddressResolver> dns;       // null: no DNS list is consulted
    std::shared_ptr<policy::SpfChecker> spf;            // null: spf has no value
    std::shared_ptr<MessageAuthenticator> auth;         // null: no DKIM, DMARC or Authentication-Results
};

/* A snapshot without stateful checks or resolver; the daemon adds its own. */
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const policy::Policy> policy, bool monitor_all);

}  // namespace portcullis::milter
