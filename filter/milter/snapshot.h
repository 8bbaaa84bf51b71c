/*
 * snapshot.h: the policy a session runs under, and what the session asks
 * of the checks.
 *
 * A Snapshot is what one load of config and policy produced: the rules,
 * what they need from the MTA, the mode, the stateful checks (the store
 * behind greylist and ratelimit rules), and the checks that look things
 * up (DNS lists, SPF, DKIM, DMARC, the Authentication-Results header).
 * Sessions hold a shared_ptr to the snapshot current when they started,
 * so a reload never changes the rules under a session in flight.
 *
 * Checks::begin_session() gives one session its SessionChecks: the DNS
 * list answers and SPF results the rules read (policy::AddressLookups,
 * policy::SpfResults), and one MessageStream per message.  Nothing there
 * waits: a fact not known yet is being worked out, and WAKE is called on
 * the session's loop when something the session may be waiting for has
 * come (never during a call into the SessionChecks).
 */
#pragma once

#include <functional>
#include <memory>
#include <optional>
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
    /* Our Authentication-Results value, "" when we add none; nullopt
     * while a result it reports is being worked out.  DISPOSITION is
     * what the message gets: "none" or "quarantine". */
    virtual std::optional<std::string> results_header(std::string_view disposition) = 0;
};

class SessionChecks : public policy::AddressLookups, public policy::SpfResults {
public:
    /* A stream for the message FACTS describe (FACTS outlives it); it
     * reads the SPF answer through FACTS.spf when DMARC or the header
     * needs it.  Null when no DKIM, DMARC or header is wanted. */
    virtual std::unique_ptr<MessageStream> begin_message(const policy::Facts& facts) = 0;
    /* A new message begins: answers kept for the last one may go. */
    virtual void next_message() = 0;
};

class Checks {
public:
    virtual ~Checks() = default;
    virtual std::unique_ptr<SessionChecks> begin_session(std::function<void()> wake) = 0;
};

struct Snapshot {
    std::shared_ptr<const policy::Policy> policy;
    policy::PolicyNeeds needs;
    bool monitor_all = false;     // policy.mode = "monitor"
    std::shared_ptr<policy::StatefulChecks> stateful;   // null: as if the store were down
    std::shared_ptr<Checks> checks;                     // null: no DNS list, SPF, DKIM or DMARC
};

/* A snapshot without stateful checks or lookups; the daemon adds its own. */
std::shared_ptr<const Snapshot> make_snapshot(std::shared_ptr<const policy::Policy> policy, bool monitor_all);

}  // namespace portcullis::milter
