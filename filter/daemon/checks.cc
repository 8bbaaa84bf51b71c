/*
 * checks.cc: the table of checks, and a snapshot made from it.
 */
#include "daemon/checks.h"

#include "daemon/session_checks.h"
#include "daemon/store_checks.h"

namespace portcullis::daemon {

namespace {

/* MESSAGE as a config error at the place KEY was set. */
std::string blame(const config::Config& config, std::string_view key, const std::string& message) {
    return config::ConfigError{config.origins.of(key), message}.str();
}

/* What the table's entries ask for, before anything is made. */
struct Plan {
    policy::PolicyNeeds needs;   // the policy's, widened by our header
    bool store = false;
    bool resolver = false;
    LookupSettings lookups;
};

struct Check {
    const char* name;
    bool (*wanted)(const Plan& plan, const config::Config& config);
    /* Sets the check up in PLAN; "" or why it cannot be. */
    std::string (*set_up)(Plan& plan, const config::Config& config);
};

bool header_wanted(const Plan&, const config::Config& config) { return !config.auth.authserv_id.empty(); }

/* With an authserv-id, forged Authentication-Results are removed, so the
 * header fields are needed; with our header on, every check runs. */
std::string set_up_header(Plan& plan, const config::Config& config) {
    auto& needs = plan.needs;
    plan.lookups.auth.authserv_id = config.auth.authserv_id;
    needs.headers = true;
    if (!config.auth.add_header) return "";
    plan.lookups.auth.add_header = true;
    needs.spf = needs.dkim = needs.dmarc = true;
    needs.headers = needs.body = true;
    needs.uses_fields_of[static_cast<size_t>(policy::Stage::helo)] = true;
    return "";
}

bool store_wanted(const Plan& plan, const config::Config&) { return plan.needs.store; }
std::string set_up_store(Plan& plan, const config::Config&) {
    plan.store = true;
    return "";
}

bool dns_lists_wanted(const Plan& plan, const config::Config&) { return plan.needs.consults_dns_lists(); }
bool spf_wanted(const Plan& plan, const config::Config&) { return plan.needs.spf; }
std::string set_up_resolver(Plan& plan, const config::Config&) {
    plan.resolver = true;
    return "";
}

bool dkim_wanted(const Plan& plan, const config::Config&) { return plan.needs.dkim; }
std::string set_up_dkim(Plan& plan, const config::Config&) {
    plan.resolver = true;
    plan.lookups.auth.dkim = true;
    return "";
}

bool dmarc_wanted(const Plan& plan, const config::Config&) { return plan.needs.dmarc; }
std::string set_up_dmarc(Plan& plan, const config::Config& config) {
    try {
        plan.lookups.dmarc = std::make_shared<const dmarc::Checker>(config.auth.public_suffix_list);
    } catch (const dmarc::CheckerError& failure) {
        return blame(config, "auth.public_suffix_list", std::string("auth.public_suffix_list: ") + failure.what());
    }
    plan.resolver = true;
    plan.lookups.auth.dkim = plan.lookups.auth.dmarc = true;   // DMARC reads DKIM (and SPF)
    return "";
}

// In this order: the header first, as it turns the others on.
constexpr Check kChecks[] = {
    {"Authentication-Results", header_wanted, set_up_header},
    {"greylisting and rate limits", store_wanted, set_up_store},
    {"DNS lists", dns_lists_wanted, set_up_resolver},
    {"SPF", spf_wanted, set_up_resolver},
    {"DKIM", dkim_wanted, set_up_dkim},
    {"DMARC", dmarc_wanted, set_up_dmarc},
};

bool wants_lookups(const Plan& plan) {
    const AuthSettings& auth = plan.lookups.auth;
    return plan.resolver || auth.dkim || auth.dmarc || !auth.authserv_id.empty();
}

}  // namespace

std::string attach_checks(State& state, const Resources& resources) {
    Plan plan{state.snapshot->needs, false, false, {}};
    for (const Check& check : kChecks) {
        if (!check.wanted(plan, state.config)) continue;
        if (std::string error = check.set_up(plan, state.config); !error.empty()) return error;
    }
    auto snapshot = std::make_shared<milter::Snapshot>(*state.snapshot);
    snapshot->needs = plan.needs;
    if (plan.store && resources.store) {
        snapshot->stateful = std::make_shared<StoreChecks>(resources.store, state.config.store.on_error);
    }
    if (resources.lookups && wants_lookups(plan)) {
        try {
            plan.lookups.resolver = std::make_shared<dns::Resolver>(state.config.dns.resolver, state.config.dns.timeout);
        } catch (const dns::ResolverError& failure) {
            return blame(state.config, "dns.resolver", failure.what());
        }
        snapshot->checks = std::make_shared<LookupChecks>(std::move(plan.lookups));
    }
    state.snapshot = std::move(snapshot);
    return "";
}

}  // namespace portcullis::daemon
