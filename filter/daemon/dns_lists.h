/*
 * dns_lists.h: the policy's DNS list lookups and SPF checks, done by
 * the daemon's one resolver.
 *
 * ResolverAddresses answers the evaluator's A lookups
 * (policy::AddressResolver) with a dns::Resolver: it counts each lookup's
 * latency and failure in the metrics and logs it (debug: every answer;
 * info: a temperror, which the policy takes as "not listed").
 * ResolverSpf runs the SPF check (checks/spf) for the evaluator
 * (policy::SpfChecker), every query through the same resolver, with the
 * same metrics and log lines, and logs each verdict (debug; info for
 * temperror and permerror, with why).  A client without an address
 * (local submission) is none without a lookup.
 * When a loaded State's policy consults a DNS list or reads SPF, DKIM or
 * DMARC, or its config asks for the Authentication-Results header (or
 * names an authserv-id, whose forged fields are then removed),
 * attach_resolver() opens the resolver its config asks for (dns.resolver,
 * dns.timeout) and gives the State's snapshot the checks over it: DNS
 * lists, SPF, and an Authenticator (message_auth.h) with the DMARC
 * checker of auth.public_suffix_list.  With our header on, every check
 * runs and the snapshot's needs grow to match (HELO, header, body).
 * check_resolver() only tries the settings (before the daemon forks: the
 * resolver's thread would not survive it).  Both return "" or why
 * libunbound refuses the settings, naming dns.resolver, or why the
 * Public Suffix List cannot be read, naming auth.public_suffix_list.  A resolver that does not answer is not an error
 * here: its lookups time out, and dnsbl rules then do not apply.
 */
#pragma once

#include <map>
#include <memory>
#include <optional>

#include "daemon/loading.h"
#include "dns/resolver.h"
#include "dns/txt_lookups.h"
#include "policy/lookups.h"

namespace portcullis::daemon {

class ResolverAddresses final : public policy::AddressResolver {
public:
    explicit ResolverAddresses(std::shared_ptr<dns::Resolver> resolver) : resolver_(std::move(resolver)) {}
    std::unique_ptr<policy::PendingAddresses> start(const std::string& name) override;

private:
    std::shared_ptr<dns::Resolver> resolver_;
};

class MessageTxtLookups final : public dns::TxtLookups {
public:
    explicit MessageTxtLookups(std::shared_ptr<dns::Resolver> resolver) : resolver_(std::move(resolver)) {}
    void start(const std::string& name) override;
    dns::Answer answer(const std::string& name) override;

private:
    struct Entry {
        std::optional<dns::Resolver::Lookup> pending;   // until answered
        std::optional<dns::Answer> answer;
    };
    Entry& entry(const std::string& name);

    std::shared_ptr<dns::Resolver> resolver_;
    std::map<std::string, Entry> entries_;   // by lower-case name
};

class ResolverSpf final : public policy::SpfChecker {
public:
    explicit ResolverSpf(std::shared_ptr<dns::Resolver> resolver) : resolver_(std::move(resolver)) {}
    policy::SpfAnswer check(const policy::SpfIdentity& identity) override;

private:
    std::shared_ptr<dns::Resolver> resolver_;
};

std::string check_resolver(const State& state);
std::string attach_resolver(State& state);

}  // namespace portcullis::daemon
