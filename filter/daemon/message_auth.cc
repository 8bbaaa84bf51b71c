/*
 * message_auth.cc: one message's DKIM, DMARC and Authentication-Results
 * (see message_auth.h).
 */
#include "daemon/message_auth.h"

#include <optional>

#include "checks/auth_results.h"
#include "daemon/dns_lists.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {

std::string log_prefix(const policy::Facts& facts) {
    return (facts.queue_id.empty() ? std::string("NOQUEUE") : facts.queue_id) + ": ";
}

/* "QUEUEID: dkim: d=example.com s=sel a=rsa-sha256 result=fail (body hash did not verify)" */
void log_signature(const policy::Facts& facts, const dkim::Signature& signature) {
    std::string line = log_prefix(facts) + "dkim: d=" + signature.domain + " s=" + signature.selector +
                       " a=" + signature.algorithm + " result=";
    line += dkim::result_name(signature.result);
    if (!signature.reason.empty()) line += " (" + signature.reason + ")";
    if (signature.result == dkim::Result::pass) log::debug(line);
    else log::info(line);
}

/* "QUEUEID: dmarc: from=example.com result=fail published=reject policy=reject spf=unaligned dkim=unaligned";
 * with several author domains "authors=a.example,b.example" too, and why part of From was not evaluated. */
void log_dmarc(const policy::Facts& facts, const dmarc::Verdict& verdict) {
    std::string line = log_prefix(facts) + "dmarc: from=" + verdict.from_domain + " result=";
    line += dmarc::result_name(verdict.result);
    if (!verdict.published.empty()) line += " published=" + verdict.published + " policy=" + verdict.policy;
    line += verdict.spf_aligned ? " spf=aligned" : " spf=unaligned";
    line += verdict.dkim_aligned ? " dkim=aligned" : " dkim=unaligned";
    for (size_t i = 0; verdict.author_domains.size() > 1 && i < verdict.author_domains.size(); ++i) {
        line += i == 0 ? " authors=" : ",";
        line += verdict.author_domains[i];
    }
    if (!verdict.reason.empty()) line += " (" + verdict.reason + ")";
    if (!verdict.from_problem.empty() && verdict.from_problem != verdict.reason) {
        line += " (part of From not evaluated: " + verdict.from_problem + ")";
    }
    if (verdict.result == dmarc::Result::pass || verdict.result == dmarc::Result::none) log::debug(line);
    else log::info(line);
}

class Stream final : public milter::MessageStream {
public:
    Stream(const policy::Facts& facts, std::shared_ptr<dns::Resolver> resolver,
           std::shared_ptr<const dmarc::Checker> dmarc, AuthSettings settings)
        : facts_(facts), lookups_(std::move(resolver)), dmarc_checker_(std::move(dmarc)),
          settings_(std::move(settings)) {
        if (settings_.dkim) verifier_.emplace(lookups_);
    }

    void header(std::string_view name, std::string_view value) override {
        if (equals_nocase(name, "Authentication-Results")) {
            ++results_seen_;
            if (auth_results::is_ours(value, settings_.authserv_id)) forged_.push_back(results_seen_);
        }
        if (verifier_) verifier_->header(name, value);
    }

    void end_of_headers() override {
        if (verifier_) verifier_->end_of_headers();
        if (dmarc_checker_) dmarc_checker_->start_lookups(facts_.from, lookups_);
    }

    void body(std::string_view chunk) override {
        if (verifier_) verifier_->body(chunk);
    }

    const policy::DkimAnswer& dkim() override {
        if (!dkim_answer_) {
            const dkim::Verdict& verdict = dkim_verdict();
            dkim_answer_ = policy::DkimAnswer{std::string(verdict.summary()), verdict.passing_domain()};
        }
        return *dkim_answer_;
    }

    const policy::DmarcAnswer& dmarc() override {
        if (!dmarc_answer_) {
            const dmarc::Verdict& verdict = dmarc_verdict();
            dmarc_answer_ =
                policy::DmarcAnswer{std::string(dmarc::result_name(verdict.result)), verdict.policy, verdict.from_domain};
        }
        return *dmarc_answer_;
    }

    std::vector<int> forged_results() const override { return forged_; }

    std::string results_header(std::string_view disposition) override {
        if (!settings_.add_header || settings_.authserv_id.empty()) return "";
        auth_results::Results results;
        if (facts_.spf) {
            const policy::SpfAnswer& spf = spf_answer();
            results.spf = auth_results::Spf{spf.result, spf.domain, facts_.sender.empty()};
        }
        if (verifier_) results.dkim = &dkim_verdict();
        if (dmarc_checker_) results.dmarc = auth_results::Dmarc{dmarc_verdict(), std::string(disposition)};
        return auth_results::header_value(settings_.authserv_id, results);
    }

private:
    const dkim::Verdict& dkim_verdict() {
        if (!dkim_verdict_) {
            dkim_verdict_ = verifier_ ? verifier_->finish() : dkim::Verdict{};
            for (const auto& signature : dkim_verdict_->signatures) {
                log_signature(facts_, signature);
                metrics::count_auth_result("dkim", dkim::result_name(signature.result));
            }
            if (dkim_verdict_->signatures.empty()) metrics::count_auth_result("dkim", "none");
        }
        return *dkim_verdict_;
    }

    const dmarc::Verdict& dmarc_verdict() {
        if (!dmarc_verdict_) {
            if (!dmarc_checker_) {
                dmarc_verdict_.emplace();
                return *dmarc_verdict_;
            }
            dmarc::Identifiers ids;
            if (facts_.spf) {
                const policy::SpfAnswer& spf = spf_answer();
                ids.spf_result = spf.result;
                ids.spf_domain = spf.domain;
            }
            for (const auto& signature : dkim_verdict().signatures) {
                if (signature.result == dkim::Result::pass) ids.dkim_passing.push_back(signature.domain);
            }
            dmarc_verdict_ = dmarc_checker_->check(facts_.from, ids, lookups_);
            log_dmarc(facts_, *dmarc_verdict_);
            metrics::count_auth_result("dmarc", dmarc::result_name(dmarc_verdict_->result));
        }
        return *dmarc_verdict_;
    }

    const policy::SpfAnswer& spf_answer() const {
        return facts_.spf->answer({facts_.client_ip, facts_.helo, facts_.sender});
    }

    const policy::Facts& facts_;
    MessageTxtLookups lookups_;   // before verifier_, which holds on to it
    std::shared_ptr<const dmarc::Checker> dmarc_checker_;
    AuthSettings settings_;
    std::optional<dkim::Verifier> verifier_;
    int results_seen_ = 0;
    std::vector<int> forged_;
    std::optional<dkim::Verdict> dkim_verdict_;
    std::optional<dmarc::Verdict> dmarc_verdict_;
    std::optional<policy::DkimAnswer> dkim_answer_;
    std::optional<policy::DmarcAnswer> dmarc_answer_;
};

}  // namespace

Authenticator::Authenticator(std::shared_ptr<dns::Resolver> resolver, std::shared_ptr<const dmarc::Checker> dmarc,
                             AuthSettings settings)
    : resolver_(std::move(resolver)), dmarc_(std::move(dmarc)), settings_(std::move(settings)) {}

std::unique_ptr<milter::MessageStream> Authenticator::begin(const policy::Facts& facts) {
    return std::make_unique<Stream>(facts, resolver_, settings_.dmarc ? dmarc_ : nullptr, settings_);
}

}  // namespace portcullis::daemon
