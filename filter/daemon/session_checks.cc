/*
 * session_checks.cc: one session's DNS list answers and SPF verdicts, and
 * its message streams, over its dns::Lookups.
 */
#include "daemon/session_checks.h"

#include "checks/spf.h"
#include "dns/lookups.h"
#include "metrics/metrics.h"
#include "util/log.h"

namespace portcullis::daemon {

namespace {

/* A session with many messages asks about many names, and a hostile
 * domain answers with tens of kilobytes: past this many answers, or
 * this many bytes of them, the next message starts afresh (its lookups
 * are mostly answered from the resolver's cache). */
constexpr size_t kMaxKeptAnswers = 512;
constexpr size_t kMaxKeptBytes = 256 * 1024;

policy::AddressAnswer to_policy(const dns::Answer& answer) {
    using Kind = policy::AddressAnswer::Kind;
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

/* "spf: client=192.0.2.7 helo=<mx.example> from=<a@example.com> domain=example.com result=fail" */
std::string verdict_line(const policy::SpfIdentity& identity, const spf::Verdict& verdict) {
    std::string line = "spf: client=" + identity.client->str() + " helo=<" + identity.helo + "> from=<" +
                       identity.sender + "> domain=" + verdict.domain + " result=";
    line += spf::result_name(verdict.result);
    if (!verdict.reason.empty()) line += " (" + verdict.reason + ")";
    return line;
}

/* SPF's queries, answered from the session's lookups. */
class SpfFromLookups final : public spf::SpfDns {
public:
    explicit SpfFromLookups(dns::Lookups& lookups) : lookups_(lookups) {}
    const dns::Answer* lookup(const std::string& name, dns::RecordType type) override {
        return lookups_.find(name, type, dns::Purpose::spf);
    }

private:
    dns::Lookups& lookups_;
};

class Session final : public milter::SessionChecks {
public:
    Session(const LookupSettings& settings, std::function<void()> wake)
        : settings_(settings), wake_(wake), lookups_(settings.resolver, std::move(wake)) {}

    const policy::AddressAnswer* addresses(const std::string& name) override {
        auto known = addresses_.find(name);
        if (known != addresses_.end()) return &known->second;
        const dns::Answer* answer = lookups_.find(name, dns::RecordType::a, dns::Purpose::dns_list);
        if (!answer) return nullptr;
        return &addresses_.emplace(name, to_policy(*answer)).first->second;
    }

    const policy::SpfAnswer* spf(const policy::SpfIdentity& identity) override {
        if (spf_ && spf_->identity == identity) {
            if (spf_->answer) return &*spf_->answer;
        } else {
            spf_.emplace(Spf{identity, std::chrono::steady_clock::now(), std::nullopt});
        }
        if (!identity.client) return &spf_->answer.emplace(policy::SpfAnswer{"none", ""});
        SpfFromLookups dns(lookups_);
        const std::optional<spf::Verdict> verdict =
            spf::check({*identity.client, identity.helo, identity.sender, spf_->started}, dns);
        if (!verdict) return nullptr;
        const bool error = verdict->result == spf::Result::temperror || verdict->result == spf::Result::permerror;
        if (error) log::info(verdict_line(identity, *verdict));
        else if (log::enabled(log::Level::debug)) log::debug(verdict_line(identity, *verdict));
        metrics::count_auth_result("spf", spf::result_name(verdict->result));
        return &spf_->answer.emplace(policy::SpfAnswer{std::string(spf::result_name(verdict->result)), verdict->domain});
    }

    std::unique_ptr<milter::MessageStream> begin_message(const policy::Facts& facts) override {
        const AuthSettings& auth = settings_.auth;
        if (!auth.dkim && !auth.dmarc && auth.authserv_id.empty()) return nullptr;
        return begin_message_stream(facts, lookups_, settings_.dmarc, auth, wake_);
    }

    void next_message() override {
        spf_.reset();
        if (lookups_.size() > kMaxKeptAnswers || lookups_.bytes() > kMaxKeptBytes) {
            lookups_.forget();
            addresses_.clear();
        }
    }

private:
    struct Spf {
        policy::SpfIdentity identity;
        std::chrono::steady_clock::time_point started;   // the check's lookups end by its deadline
        std::optional<policy::SpfAnswer> answer;
    };

    const LookupSettings& settings_;
    std::function<void()> wake_;
    dns::Lookups lookups_;
    std::map<std::string, policy::AddressAnswer> addresses_;
    std::optional<Spf> spf_;
};

}  // namespace

std::unique_ptr<milter::SessionChecks> LookupChecks::begin_session(std::function<void()> wake) {
    return std::make_unique<Session>(settings_, std::move(wake));
}

}  // namespace portcullis::daemon
