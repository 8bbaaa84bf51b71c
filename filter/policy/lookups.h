/*
 * lookups.h: the facts that take a lookup or some work (DNS list answers,
 * SPF, DKIM, DMARC), as the evaluator asks for them, without knowing how
 * they are worked out.
 *
 * None of these ever waits.  Each returns the fact if it is known, or
 * null when it is not yet: then the work is under way (started by this
 * very call if it was not), and when it is done the session that owns
 * the source is woken to evaluate again.  The evaluator stops at a rule
 * whose condition needs a fact that is not known, and goes on from that
 * rule when woken (evaluator.h).
 *
 * AddressLookups: the A records of a DNS list name, each name looked up
 * at most once per session.  SpfResults: the SPF check of an identity,
 * once per message.  MessageAuthentication: DKIM and DMARC, at end of
 * message.  The session's source (Facts::lookups, ::spf, ::auth) is
 * null when no rule needs it: those fields then have no value and no
 * DNS list is consulted.
 */
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/ip.h"

namespace portcullis::policy {

struct AddressAnswer {
    enum class Kind { found, not_found, temperror };
    Kind kind = Kind::temperror;
    std::vector<IpAddress> addresses;   // found
};

class AddressLookups {
public:
    virtual ~AddressLookups() = default;
    virtual const AddressAnswer* addresses(const std::string& name) = 0;
};

struct SpfIdentity {
    std::optional<IpAddress> client;   // absent for local submission
    std::string helo;
    std::string sender;   // "" for <>
    bool operator==(const SpfIdentity&) const = default;
};

struct SpfAnswer {
    std::string result;   // pass fail softfail neutral none temperror permerror
    std::string domain;   // the domain checked, "" if none could be
};

class SpfResults {
public:
    virtual ~SpfResults() = default;
    virtual const SpfAnswer* spf(const SpfIdentity& identity) = 0;
};

struct DkimAnswer {
    std::string result;   // pass fail temperror permerror none
    std::string domain;   // d= of the first passing signature, "" if none
};

struct DmarcAnswer {
    std::string result;   // pass fail none temperror permerror
    std::string policy;   // none quarantine reject: to apply, after sp= and pct=
    std::string domain;   // the From domain evaluated, "" if From gave none
};

class MessageAuthentication {
public:
    virtual ~MessageAuthentication() = default;
    virtual const DkimAnswer* dkim() = 0;
    virtual const DmarcAnswer* dmarc() = 0;
};

}  // namespace portcullis::policy
