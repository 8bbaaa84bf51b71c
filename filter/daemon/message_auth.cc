/*
 * message_auth.cc: one message's DKIM, DMARC and Authentication-Results
 * (see message_auth.h).
 */
#include "daemon/message_auth.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "checks/auth_results.h"
#include "checks/dkim.h"
#include "dns/txt_lookups.h"
#include "metrics/metrics.h"
#include "util/event_loop.h"
#include "util/log.h"
#include "util/text.h"
#include "util/worker_pool.h"

namespace portcullis::daemon {

/* Made at the first signed message, after libopendkim's library, so the
 * threads end before it at exit. */
WorkerPool& signature_workers() {
    static WorkerPool pool(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
    return pool;
}

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

/* DMARC's record lookups, through the session's. */
class SessionTxtLookups final : public dns::TxtLookups {
public:
    explicit SessionTxtLookups(dns::Lookups& lookups) : lookups_(lookups) {}
    void start(const std::string& name) override { answer(name); }
    const dns::Answer* answer(const std::string& name) override {
        return lookups_.find(name, dns::RecordType::txt, dns::Purpose::record);
    }

private:
    dns::Lookups& lookups_;
};

/* The signature check, shared with the worker that runs it: the stream
 * may be gone when the verdict comes. */
struct SignatureCheck {
    std::optional<dkim::Verdict> verdict;
    std::function<void()> wake;
};

class Stream final : public milter::MessageStream {
public:
    Stream(const policy::Facts& facts, dns::Lookups& lookups, std::shared_ptr<const dmarc::Checker> dmarc,
           const AuthSettings& settings, std::function<void()> wake)
        : facts_(facts), lookups_(lookups), txt_(lookups), dmarc_checker_(std::move(dmarc)), settings_(settings),
          check_(std::make_shared<SignatureCheck>()) {
        check_->wake = std::move(wake);
        if (settings_.dkim) verifier_ = std::make_shared<dkim::Verifier>();
    }

    void header(std::string_view name, std::string_view value) override {
        if (equals_nocase(name, "Authentication-Results")) {
            ++results_seen_;
            if (auth_results::is_ours(value, settings_.authserv_id)) forged_.push_back(results_seen_);
        }
        if (verifier_) verifier_->header(name, value);
    }

    void end_of_headers() override {
        if (verifier_) {
            verifier_->end_of_headers();
            for (const auto& name : verifier_->key_names()) key_answer(name);
        }
        if (dmarc_checker_) dmarc_checker_->start_lookups(facts_.from, txt_);
    }

    void body(std::string_view chunk) override {
        if (verifier_) verifier_->body(chunk);
    }

    const policy::DkimAnswer* dkim() override {
        if (!dkim_answer_) {
            const dkim::Verdict* verdict = dkim_verdict();
            if (!verdict) return nullptr;
            dkim_answer_ = policy::DkimAnswer{std::string(verdict->summary()), verdict->passing_domain()};
        }
        return &*dkim_answer_;
    }

    const policy::DmarcAnswer* dmarc() override {
        if (!dmarc_answer_) {
            const dmarc::Verdict* verdict = dmarc_verdict();
            if (!verdict) return nullptr;
            dmarc_answer_ = policy::DmarcAnswer{std::string(dmarc::result_name(verdict->result)), verdict->policy,
                                                verdict->from_domain};
        }
        return &*dmarc_answer_;
    }

    std::vector<int> forged_results() const override { return forged_; }

    std::optional<std::string> results_header(std::string_view disposition) override {
        if (!settings_.add_header || settings_.authserv_id.empty()) return "";
        auth_results::Results results;
        if (facts_.spf) {
            const policy::SpfAnswer* spf = spf_answer();
            if (!spf) return std::nullopt;
            results.spf = auth_results::Spf{spf->result, spf->domain, facts_.sender.empty()};
        }
        if (verifier_) {
            results.dkim = dkim_verdict();
            if (!results.dkim) return std::nullopt;
        }
        if (dmarc_checker_) {
            const dmarc::Verdict* verdict = dmarc_verdict();
            if (!verdict) return std::nullopt;
            results.dmarc = auth_results::Dmarc{*verdict, std::string(disposition)};
        }
        return auth_results::header_value(settings_.authserv_id, results);
    }

private:
    /* The signatures' verdict once checked; null meanwhile (the keys'
     * answers, then the workers, wake the session). */
    const dkim::Verdict* dkim_verdict() {
        if (!verifier_) {
            static const dkim::Verdict kUnsigned;
            return &kUnsigned;
        }
        if (!check_->verdict) {
            if (!checking_) start_signature_check();
            if (!check_->verdict) return nullptr;
        }
        if (!noted_) {
            noted_ = true;
            for (const auto& signature : check_->verdict->signatures) {
                log_signature(facts_, signature);
                metrics::count_auth_result("dkim", dkim::result_name(signature.result));
            }
            if (check_->verdict->signatures.empty()) metrics::count_auth_result("dkim", "none");
        }
        return &*check_->verdict;
    }

    /* Once every key has its answer: the check on a worker, or here when
     * there is no loop to come back to (tests) or nothing to verify. */
    void start_signature_check() {
        dkim::KeyAnswers keys;
        for (const auto& name : verifier_->key_names()) {
            const dns::Answer* answer = key_answer(name);
            if (!answer) return;
            keys.emplace(name, *answer);
        }
        checking_ = true;
        EventLoop* loop = EventLoop::current();
        if (!loop || keys.empty()) {
            check_->verdict = verifier_->finish(keys);
            return;
        }
        signature_workers().submit([verifier = verifier_, keys = std::move(keys), home = loop->handle(),
                                    check = std::weak_ptr(check_)] {
            // A session gone before a worker took its check (the MTA aborted, the client left) reads no
            // verdict: the RSA work is skipped.  Nothing else is lost: a verdict is logged and counted
            // only when the session reads it.  One ending just after this test costs the work, no more.
            if (check.expired()) return;
            dkim::Verdict verdict = verifier->finish(keys);
            home.post([check, verdict = std::move(verdict)]() mutable {
                const auto waiting = check.lock();
                if (!waiting) return;
                waiting->verdict = std::move(verdict);
                if (waiting->wake) waiting->wake();
            });
        });
    }

    const dns::Answer* key_answer(const std::string& name) {
        return lookups_.find(name, dns::RecordType::txt, dns::Purpose::record);
    }

    const dmarc::Verdict* dmarc_verdict() {
        if (!dmarc_verdict_) {
            if (!dmarc_checker_) {
                dmarc_verdict_.emplace();
                return &*dmarc_verdict_;
            }
            dmarc::Identifiers ids;
            if (facts_.spf) {
                const policy::SpfAnswer* spf = spf_answer();
                if (!spf) return nullptr;
                ids.spf_result = spf->result;
                ids.spf_domain = spf->domain;
            }
            const dkim::Verdict* signatures = dkim_verdict();
            if (!signatures) return nullptr;
            for (const auto& signature : signatures->signatures) {
                if (signature.result == dkim::Result::pass) ids.dkim_passing.push_back(signature.domain);
            }
            std::optional<dmarc::Verdict> verdict = dmarc_checker_->check(facts_.from, ids, txt_, dmarc_decided_);
            if (!verdict) return nullptr;
            dmarc_verdict_ = std::move(verdict);
            log_dmarc(facts_, *dmarc_verdict_);
            metrics::count_auth_result("dmarc", dmarc::result_name(dmarc_verdict_->result));
        }
        return &*dmarc_verdict_;
    }

    const policy::SpfAnswer* spf_answer() const {
        return facts_.spf->spf({facts_.client_ip, facts_.helo, facts_.sender});
    }

    const policy::Facts& facts_;
    dns::Lookups& lookups_;
    SessionTxtLookups txt_;
    std::shared_ptr<const dmarc::Checker> dmarc_checker_;
    AuthSettings settings_;
    std::shared_ptr<dkim::Verifier> verifier_;   // shared with the worker that checks it
    std::shared_ptr<SignatureCheck> check_;
    bool checking_ = false;
    bool noted_ = false;
    int results_seen_ = 0;
    std::vector<int> forged_;
    dmarc::Decided dmarc_decided_;   // the author domains decided while others' records were awaited
    std::optional<dmarc::Verdict> dmarc_verdict_;
    std::optional<policy::DkimAnswer> dkim_answer_;
    std::optional<policy::DmarcAnswer> dmarc_answer_;
};

}  // namespace

std::unique_ptr<milter::MessageStream> begin_message_stream(const policy::Facts& facts, dns::Lookups& lookups,
                                                            std::shared_ptr<const dmarc::Checker> dmarc,
                                                            const AuthSettings& settings,
                                                            std::function<void()> wake) {
    return std::make_unique<Stream>(facts, lookups, settings.dmarc ? std::move(dmarc) : nullptr, settings,
                                    std::move(wake));
}

}  // namespace portcullis::daemon
