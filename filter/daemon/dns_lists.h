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
 * When a loaded State's policy consults a DNS list or reads SPF,
 * attach_resolver() opens the resolver its config asks for (dns.resolver,
 * dns.timeout) and gives it to the State's snapshot, for each of them; check_resolver() only tries the
 * settings (before the daemon forks: the resolver's thread would not
 * survive it).  Both return "" or why libunbound refuses the settings,
 * naming dns.resolver.  A resolver that does not answer is not an error
 * here: its lookups time out, and dnsbl rules then do not apply.
 */
#pragma once

#include <memory>

#include "daemon/loading.h"
#include "dns/resolver.h"
#include "policy/lookups.h"

namespace portcullis::daemon {

class ResolverAddresses final : public policy::AddressResolver {
public:
    explicit ResolverAddresses(std::shared_ptr<dns::Resolver> resolver) : resolver_(std::move(resolver)) {}
    std::unique_ptr<policy::PendingAddresses> start(const std::string& name) override;

private:
    std::shared_ptr<dns::Resolver> resolver_;
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
