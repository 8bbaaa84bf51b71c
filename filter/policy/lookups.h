/*
 * lookups.h: the facts that cost a DNS lookup (DNSBL and RHSBL answers,
 * SPF), as the evaluator asks for them, without knowing how they are
 * looked up.
 *
 * The daemon implements AddressResolver over its resolver (dns/): start()
 * sends the question for a name's A records and returns at once; wait()
 * gives the answer, within the resolver's timeout.  A session owns one
 * LookupCache over it, and Facts::lookups points at it: each name is
 * looked up at most once per session, and only when a rule that is
 * reached needs it.  prefetch() starts a lookup without waiting, so the
 * lookups one rule may need run in parallel; answer() waits for one.
 * Without a cache (Facts::lookups null) no list is consulted: every
 * dnsbl condition is false.
 *
 * SPF: the daemon implements SpfChecker over checks/spf and its
 * resolver; check() blocks until the result (within the resolver's
 * timeouts).  A session owns one SpfCache over it, and Facts::spf points
 * at it: the check runs when a rule that is reached reads spf or
 * spf.domain, once per message (per client, HELO name and sender).
 * Without one (Facts::spf null) both fields have no value.
 *
 * DKIM and DMARC: the daemon follows each message with a
 * MessageAuthentication (it sees the header and body as they arrive);
 * Facts::auth points at the current message's.  dkim() and dmarc() give
 * the results at end of message, each worked out on first use (DMARC
 * reads SPF and DKIM); without one (Facts::auth null) the fields have no
 * value.
 */
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/ip.h"

namespace portcullis::policy {

struct AddressAnswer {
    enum class Kind { found, not_found, temperror };
    Kind kind = Kind::temperror;
    std::vector<IpAddress> addresses;   // found
};

class PendingAddresses {
public:
    virtual ~PendingAddresses() = default;
    virtual AddressAnswer wait() = 0;
};

class AddressResolver {
public:
    virtual ~AddressResolver() = default;
    virtual std::unique_ptr<PendingAddresses> start(const std::string& name) = 0;
};

class LookupCache {
public:
    explicit LookupCache(std::shared_ptr<AddressResolver> resolver) : resolver_(std::move(resolver)) {}

    void prefetch(const std::string& name);
    const AddressAnswer& answer(const std::string& name);

private:
    struct Entry {
        std::unique_ptr<PendingAddresses> pending;   // until answered
        std::optional<AddressAnswer> answer;
    };
    Entry& entry(const std::string& name);

    std::shared_ptr<AddressResolver> resolver_;
    std::map<std::string, Entry> entries_;   // by lower-case name
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

class SpfChecker {
public:
    virtual ~SpfChecker() = default;
    virtual SpfAnswer check(const SpfIdentity& identity) = 0;
};

class SpfCache {
public:
    explicit SpfCache(std::shared_ptr<SpfChecker> checker) : checker_(std::move(checker)) {}
    const SpfAnswer& answer(const SpfIdentity& identity);

private:
    std::shared_ptr<SpfChecker> checker_;
    std::optional<std::pair<SpfIdentity, SpfAnswer>> last_;
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
    virtual const DkimAnswer& dkim() = 0;
    virtual const DmarcAnswer& dmarc() = 0;
};

}  // namespace portcullis::policy
