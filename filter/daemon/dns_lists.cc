/*
 * dns_lists.cc: A lookups for dnsbl rules and the SPF check's lookups
 * over dns::Resolver, with metrics and log lines.
 */
#include "daemon/dns_lists.h"

#include "checks/dmarc.h"
#include "checks/spf.h"
#include "daemon/message_auth.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

using Kind = policy::AddressAnswer::Kind;

long long milliseconds(std::chrono::steady_clock::duration took) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
}

std::string_view type_name(dns::RecordType type) {
    switch (type) {
        case dns::RecordType::a: return "A";
        case dns::RecordType::aaaa: return "AAAA";
        case dns::RecordType::mx: return "MX";
        case dns::RecordType::ptr: return "PTR";
        case dns::RecordType::txt: return "TXT";
    }
    return "?";
}

/* "dns: 5.113.0.203.zen.example A: found 127.0.0.2 in 3ms" */
std::string answer_line(const std::string& name, dns::RecordType type, const dns::Answer& answer) {
    std::string line = "dns: ";
    line += name;
    line += ' ';
    line += type_name(type);
    line += ": ";
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
        if (failed) log::info(answer_line(name_, dns::RecordType::a, answer) + "; taken as not listed");
        else log::debug(answer_line(name_, dns::RecordType::a, answer));
        return to_policy(answer);
    }

private:
    std::string name_;
    dns::Resolver::Lookup lookup_;
};

/* The SPF check's lookups, each counted and logged at debug. */
class SpfLookups final : public spf::SpfDns {
public:
    explicit SpfLookups(dns::Resolver& resolver) : resolver_(resolver) {}

    dns::Answer lookup(const std::string& name, dns::RecordType type) override {
        dns::Answer answer = resolver_.lookup(name, type);
        metrics::observe_dns(answer.took, answer.status != dns::Answer::Status::temperror);
        log::debug(answer_line(name, type, answer));
        return answer;
    }

private:
    dns::Resolver& resolver_;
};

/* "spf: client=192.0.2.7 helo=<mx.example> from=<a@example.com> domain=example.com result=fail" */
std::string verdict_line(const policy::SpfIdentity& identity, const spf::Verdict& verdict) {
    std::string line = "spf: client=" + identity.client->str() + " helo=<" + identity.helo + "> from=<" +
                       identity.sender + "> domain=" + verdict.domain + " result=";
    line += spf::result_name(verdict.result);
    if (!verdict.reason.empty()) line += " (" + verdict.reason + ")";
    return line;
}

}  // namespace

policy::SpfAnswer ResolverSpf::check(const policy::SpfIdentity& identity) {
    if (!identity.client) return {"none", ""};
    SpfLookups lookups(*resolver_);
    const spf::Verdict verdict = spf::check({*identity.client, identity.helo, identity.sender}, lookups);
    const bool error = verdict.result == spf::Result::temperror || verdict.result == spf::Result::permerror;
    if (error) log::info(verdict_line(identity, verdict));
    else log::debug(verdict_line(identity, verdict));
    metrics::count_auth_result("spf", spf::result_name(verdict.result));
    return {std::string(spf::result_name(verdict.result)), verdict.domain};
}

void MessageTxtLookups::start(const std::string& name) { entry(name); }

dns::Answer MessageTxtLookups::answer(const std::string& name) {
    Entry& found = entry(name);
    if (!found.answer) {
        found.answer = found.pending->wait();
        found.pending.reset();
        const bool failed = found.answer->status == dns::Answer::Status::temperror;
        metrics::observe_dns(found.answer->took, !failed);
        if (failed) log::info(answer_line(name, dns::RecordType::txt, *found.answer));
        else log::debug(answer_line(name, dns::RecordType::txt, *found.answer));
    }
    return *found.answer;
}

MessageTxtLookups::Entry& MessageTxtLookups::entry(const std::string& name) {
    std::string key = to_lower(name);
    if (key.ends_with('.')) key.pop_back();
    auto [found, added] = entries_.try_emplace(key);
    if (added) found->second.pending.emplace(resolver_->start(found->first, dns::RecordType::txt));
    return found->second;
}

std::unique_ptr<policy::PendingAddresses> ResolverAddresses::start(const std::string& name) {
    return std::make_unique<PendingLookup>(name, resolver_->start(name, dns::RecordType::a));
}

namespace {

bool results_header_on(const config::Config& config) {
    return config.auth.add_header && !config.auth.authserv_id.empty();
}

/* What the policy reads, widened by what our Authentication-Results
 * header reports. */
AuthSettings auth_settings(const State& state) {
    const auto& needs = state.snapshot->needs;
    const bool header = results_header_on(state.config);
    return {state.config.auth.authserv_id, header, needs.dkim || header, needs.dmarc || header};
}

bool needs_message_auth(const AuthSettings& settings) {
    return settings.dkim || settings.dmarc || !settings.authserv_id.empty();
}

bool needs_resolver(const State& state) {
    const auto& needs = state.snapshot->needs;
    return needs.consults_dns_lists() || needs.spf || needs_message_auth(auth_settings(state));
}

/* The DMARC checker, or why the Public Suffix List cannot be read. */
std::shared_ptr<const dmarc::Checker> load_dmarc(const config::Config& config, std::string& error) {
    try {
        return std::make_shared<const dmarc::Checker>(config.auth.public_suffix_list);
    } catch (const dmarc::CheckerError& failure) {
        error = std::string("auth.public_suffix_list: ") + failure.what();
        return nullptr;
    }
}

/* SNAPSHOT's needs as our authserv-id widens them: the header fields,
 * to find forged Authentication-Results; with our header, also the HELO
 * name and the body, for every check. */
void widen_needs(policy::PolicyNeeds& needs, const AuthSettings& settings) {
    if (!settings.authserv_id.empty()) needs.headers = true;
    if (!settings.add_header) return;
    needs.spf = needs.dkim = needs.dmarc = true;
    needs.headers = needs.body = true;
    needs.uses_fields_of[static_cast<size_t>(policy::Stage::helo)] = true;
}

}  // namespace

std::string check_resolver(const State& state) {
    if (!needs_resolver(state)) return "";
    try {
        dns::Resolver resolver(state.config.dns.resolver, state.config.dns.timeout);
    } catch (const dns::ResolverError& error) {
        return error.what();
    }
    std::string error;
    if (auth_settings(state).dmarc) load_dmarc(state.config, error);
    return error;
}

std::string attach_resolver(State& state) {
    if (!needs_resolver(state)) return "";
    const AuthSettings settings = auth_settings(state);
    std::shared_ptr<const dmarc::Checker> dmarc;
    std::string error;
    if (settings.dmarc && !(dmarc = load_dmarc(state.config, error))) return error;
    try {
        auto resolver = std::make_shared<dns::Resolver>(state.config.dns.resolver, state.config.dns.timeout);
        // The policy stays as loaded; the checks are added, and what our
        // header needs from the MTA.
        auto snapshot = std::make_shared<milter::Snapshot>(*state.snapshot);
        widen_needs(snapshot->needs, settings);
        if (snapshot->needs.consults_dns_lists()) snapshot->dns = std::make_shared<ResolverAddresses>(resolver);
        if (snapshot->needs.spf) snapshot->spf = std::make_shared<ResolverSpf>(resolver);
        if (needs_message_auth(settings)) snapshot->auth = std::make_shared<Authenticator>(resolver, dmarc, settings);
        state.snapshot = std::move(snapshot);
        return "";
    } catch (const dns::ResolverError& failure) {
        return failure.what();
    }
}

}  // namespace portcullis::daemon
