/*
 * dns_lists.cc: A lookups for dnsbl rules over dns::Resolver, with
 * metrics and log lines.
 */
#include "daemon/dns_lists.h"

#include "metrics/metrics.h"
#include "util/log.h"

namespace portcullis::daemon {

namespace {

using Kind = policy::AddressAnswer::Kind;

long long milliseconds(std::chrono::steady_clock::duration took) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
}

/* "dns: 5.113.0.203.zen.example A: found 127.0.0.2 in 3ms" */
std::string answer_line(const std::string& name, const dns::Answer& answer) {
    std::string line = "dns: ";
    line += name;
    line += " A: ";
    line += dns::status_name(answer.status);
    for (const auto& record : answer.records) {
        line += ' ';
        line += record;
    }
    if (!answer.error.empty()) {
        line += " (";
        line += answer.error;
        line += ')';
    }
    line += " in " + std::to_string(milliseconds(answer.took)) + "ms";
    return line;
}

policy::AddressAnswer to_policy(const dns::Answer& answer) {
    policy::AddressAnswer converted;
    switch (answer.status) {
        case dns::Answer::Status::found: converted.kind = Kind::found; break;
        case dns::Answer::Status::not_found: converted.kind = Kind::not_found; break;
        case dns::Answer::Status::temperror: converted.kind = Kind::temperror; break;
    }
    for (const auto& record : answer.records) {
        if (const auto address = parse_ip(record)) converted.addresses.push_back(*address);
    }
    return converted;
}

class PendingLookup final : public policy::PendingAddresses {
public:
    PendingLookup(std::string name, dns::Resolver::Lookup lookup) : name_(std::move(name)), lookup_(std::move(lookup)) {}

    policy::AddressAnswer wait() override {
        const dns::Answer answer = lookup_.wait();
        const bool failed = answer.status == dns::Answer::Status::temperror;
        metrics::observe_dns(answer.took, !failed);
        if (failed) log::info(answer_line(name_, answer) + "; taken as not listed");
        else log::debug(answer_line(name_, answer));
        return to_policy(answer);
    }

private:
    std::string name_;
    dns::Resolver::Lookup lookup_;
};

}  // namespace

std::unique_ptr<policy::PendingAddresses> ResolverAddresses::start(const std::string& name) {
    return std::make_unique<PendingLookup>(name, resolver_->start(name, dns::RecordType::a));
}

std::string check_resolver(const State& state) {
    if (!state.snapshot->needs.dns) return "";
    try {
        dns::Resolver resolver(state.config.dns.resolver, state.config.dns.timeout);
        return "";
    } catch (const dns::ResolverError& error) {
        return error.what();
    }
}

std::string attach_resolver(State& state) {
    if (!state.snapshot->needs.dns) return "";
    try {
        auto resolver = std::make_shared<dns::Resolver>(state.config.dns.resolver, state.config.dns.timeout);
        // The policy and its needs stay as loaded; only the resolver is added.
        auto snapshot = std::make_shared<milter::Snapshot>(*state.snapshot);
        snapshot->dns = std::make_shared<ResolverAddresses>(std::move(resolver));
        state.snapshot = std::move(snapshot);
        return "";
    } catch (const dns::ResolverError& error) {
        return error.what();
    }
}

}  // namespace portcullis::daemon
