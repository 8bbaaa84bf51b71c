/*
 * dmarc.cc: libopendmarc wrapped once, the discovery of the DMARC record
 * through TxtLookups, alignment and the policy to apply (see dmarc.h).
 *
 * libopendmarc does one thing here: it parses the policy tags of a record
 * (opendmarc_policy_store_dmarc, then fetch_p, fetch_sp, fetch_pct,
 * fetch_adkim and fetch_aspf), in a context of its own for each reading,
 * so that checks running in parallel share nothing.  The records it sees
 * are screened first (dmarc_record.h): it gets only values RFC 7489
 * allows, since it takes any prefix of a word for the word.  Never
 * called: its DNS functions (query_dmarc; fetch_rua and fetch_ruf with a
 * buffer, the latter with CVE-2024-25768), store_spf (it leaks when
 * called twice), its alignment (strict alignment passes a subdomain, and a
 * one-letter first label is dropped), its Public Suffix List reader
 * (public_suffix.cc says what it gets wrong).
 *
 * opendmarc_policy_library_init() copies its settings into a static of the
 * library, unguarded: it is called once per process, with no Public Suffix
 * List and no name servers, however many Checkers are made (one a reload),
 * and the library is never shut down (a Checker of the configuration
 * before a reload may still be checking).  The parser reads and writes
 * only the context it is given.
 */
#include "checks/dmarc.h"

// libopendmarc's dmarc.h wants these included before it, outside its
// extern "C".
#include <sys/param.h>
#include <netinet/in.h>
#include <resolv.h>

#include <opendmarc/dmarc.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "checks/dmarc_record.h"
#include "checks/public_suffix.h"
#include "util/text.h"

namespace portcullis::dmarc {

namespace {

constexpr size_t kMaxDnsName = 253;

void initialize_libopendmarc() {
    static std::once_flag once;
    std::call_once(once, [] {
        OPENDMARC_LIB_T settings{};
        settings.tld_type = OPENDMARC_TLD_TYPE_NONE;
        const int status = opendmarc_policy_library_init(&settings);
        if (status != DMARC_PARSE_OKAY) {
            throw CheckerError(std::string("libopendmarc: ") + opendmarc_policy_status_to_str(status));
        }
    });
}

struct ContextFree {
    void operator()(DMARC_POLICY_T* context) const { opendmarc_policy_connect_shutdown(context); }
};
using PolicyContext = std::unique_ptr<DMARC_POLICY_T, ContextFree>;

PolicyContext new_context() {
    // The client address serves libopendmarc's reports, which it never makes here.
    u_char no_client[] = "0.0.0.0";
    PolicyContext context(opendmarc_policy_connect_init(no_client, 0));
    if (!context) throw std::bad_alloc();
    return context;
}

/* libopendmarc takes text as non-const unsigned char, though it only
 * reads it. */
u_char* c_text(std::string& text) { return reinterpret_cast<u_char*>(text.data()); }

/* A record's policy, as libopendmarc reads it. */
struct Policy {
    std::string p = "none";   // "none", "quarantine", "reject"
    std::string sp;           // the same, or "" when the record has no sp=
    unsigned pct = 100;
    bool strict_spf = false;    // aspf=s
    bool strict_dkim = false;   // adkim=s
};

struct ReadRecord {
    Policy policy;
    std::string problem;   // why the record gives no policy; "" when it does
    std::string note;      // how it was read, when that is worth a log line
};

std::string policy_name(int tag) {
    switch (tag) {
        case DMARC_RECORD_P_NONE: return "none";
        case DMARC_RECORD_P_QUARANTINE: return "quarantine";
        case DMARC_RECORD_P_REJECT: return "reject";
        default: return "";
    }
}

/* libopendmarc's reading of TAGS (screened policy tags), published by
 * DOMAIN. */
ReadRecord parse_policy(std::string tags, std::string domain) {
    const PolicyContext context = new_context();
    const int status = opendmarc_policy_store_dmarc(context.get(), c_text(tags), c_text(domain), nullptr);
    if (status != DMARC_PARSE_OKAY) return {{}, std::string("libopendmarc: ") + opendmarc_policy_status_to_str(status), ""};
    int p = DMARC_RECORD_P_UNSPECIFIED;
    int sp = DMARC_RECORD_P_UNSPECIFIED;
    int pct = 100;
    int adkim = DMARC_RECORD_A_RELAXED;
    int aspf = DMARC_RECORD_A_RELAXED;
    opendmarc_policy_fetch_p(context.get(), &p);
    opendmarc_policy_fetch_sp(context.get(), &sp);
    opendmarc_policy_fetch_pct(context.get(), &pct);
    opendmarc_policy_fetch_adkim(context.get(), &adkim);
    opendmarc_policy_fetch_aspf(context.get(), &aspf);
    Policy policy{policy_name(p), policy_name(sp), static_cast<unsigned>(std::clamp(pct, 0, 100)),
                  aspf == DMARC_RECORD_A_STRICT, adkim == DMARC_RECORD_A_STRICT};
    if (policy.p.empty()) return {{}, "libopendmarc reads no p=", ""};
    return {policy, "", ""};
}

/* RECORD, DOMAIN's DMARC record, read.  One without a valid p=, or with a
 * bad sp=, is read as "v=DMARC1; p=none" when its rua= names a valid URI
 * (RFC 7489 6.6.3); bad optional tags are read as their defaults. */
ReadRecord read_record(std::string_view record, const std::string& domain) {
    const ScreenedRecord screened = screen_record(record);
    if (screened.policy_invalid && screened.reporting_uri) {
        ReadRecord read = parse_policy("v=DMARC1; p=none", domain);
        read.note = "no valid p= or sp=, read as p=none for its rua= (RFC 7489 6.6.3)";
        return read;
    }
    if (!screened.problem.empty()) return {{}, screened.problem, ""};
    ReadRecord read = parse_policy(screened.policy_tags, domain);
    if (read.problem.empty() && !screened.ignored.empty()) {
        read.note = screened.ignored + " not valid: defaults used (RFC 7489 6.3)";
    }
    return read;
}

/* _dmarc.DOMAIN, or nullopt when that is too long for the DNS. */
std::optional<std::string> record_name(const std::string& domain) {
    std::string name = "_dmarc." + domain;
    if (name.size() > kMaxDnsName) return std::nullopt;
    return name;
}

struct Discovery {
    enum class Outcome { record, absent, several, temperror };
    Outcome outcome = Outcome::absent;
    std::string domain;   // whose _dmarc name gave the outcome
    std::string record;   // the DMARC record, for Outcome::record
    std::string reason;   // for the others
};

/* DOMAIN's one DMARC record (RFC 7489 6.6.3 steps 1 to 3, 5 and 6);
 * nullopt while the answer has not come. */
std::optional<Discovery> look_up(const std::string& domain, dns::TxtLookups& dns) {
    using Outcome = Discovery::Outcome;
    const auto name = record_name(domain);
    if (!name) return Discovery{Outcome::absent, domain, "", "_dmarc." + domain + " is too long a name"};
    const dns::Answer* awaited = dns.answer(*name);
    if (!awaited) return std::nullopt;
    const dns::Answer& answer = *awaited;
    if (answer.status == dns::Answer::Status::temperror) {
        return Discovery{Outcome::temperror, domain, "",
                         *name + ": " + (answer.error.empty() ? "lookup failed" : answer.error)};
    }
    std::vector<std::string> found;
    std::copy_if(answer.records.begin(), answer.records.end(), std::back_inserter(found), is_dmarc_record);
    if (found.empty()) return Discovery{Outcome::absent, domain, "", "no DMARC record at " + *name};
    if (found.size() > 1) return Discovery{Outcome::several, domain, "", "several DMARC records at " + *name};
    return Discovery{Outcome::record, domain, std::move(found.front()), ""};
}

/* The From domain's record, else its organizational domain's (step 4);
 * nullopt while an answer it needs has not come. */
std::optional<Discovery> discover(const std::string& from_domain, const std::string& org_domain,
                                  dns::TxtLookups& dns) {
    std::optional<Discovery> at_from = look_up(from_domain, dns);
    if (!at_from || at_from->outcome != Discovery::Outcome::absent || org_domain == from_domain) return at_from;
    std::optional<Discovery> at_org = look_up(org_domain, dns);
    if (at_org && at_org->outcome == Discovery::Outcome::absent) {
        at_org->reason = at_from->reason + " nor at _dmarc." + org_domain;
    }
    return at_org;
}

/* The two domains of the From address that alignment compares with. */
struct Author {
    const std::string& domain;
    const std::string& org_domain;
};

/* RFC 7489 3.1: IDENTITY (the SPF or a DKIM domain) is aligned with the
 * From domain when it is the same name (STRICT), or has the same
 * organizational domain (relaxed).  Case and a final dot do not count. */
bool aligned(std::string_view identity, const Author& author, bool strict, const PublicSuffixList& suffixes) {
    if (identity.ends_with('.')) identity.remove_suffix(1);
    const std::string name = to_lower(identity);
    return strict ? name == author.domain : suffixes.organizational_domain(name) == author.org_domain;
}

void set_alignment(Verdict& verdict, const Identifiers& ids, const Author& author, const Policy& policy,
                   const PublicSuffixList& suffixes) {
    verdict.spf_aligned = equals_nocase(ids.spf_result, "pass") &&
                          aligned(ids.spf_domain, author, policy.strict_spf, suffixes);
    verdict.dkim_aligned = std::any_of(ids.dkim_passing.begin(), ids.dkim_passing.end(), [&](const std::string& d) {
        return aligned(d, author, policy.strict_dkim, suffixes);
    });
}

/* A fresh seed for each thread's generator: the system's entropy, else
 * the clock and the thread. */
unsigned random_seed() {
    try {
        return std::random_device{}();
    } catch (const std::exception&) {
        const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
        return static_cast<unsigned>(ticks) ^ static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
    }
}

/* Uniform in 0..99, from a generator of the calling thread's own. */
unsigned random_percent() {
    thread_local std::mt19937 generator(random_seed());
    return std::uniform_int_distribution<unsigned>(0, 99)(generator);
}

/* RFC 7489 6.6.4: a failing message outside the pct= sample gets the
 * next milder policy than PUBLISHED. */
std::string sampled_policy(const std::string& published, unsigned pct, const PercentRoll& roll) {
    if (pct >= 100) return published;
    const unsigned rolled = roll ? std::min(roll(), 99u) : random_percent();
    if (rolled < pct) return published;
    return published == "reject" ? "quarantine" : "none";
}

/* The verdict on a record that gives a policy. */
void apply_policy(Verdict& verdict, const Discovery& found, const ReadRecord& read, const PercentRoll& roll) {
    verdict.result = verdict.spf_aligned || verdict.dkim_aligned ? Result::pass : Result::fail;
    // sp= is for the subdomains of the organizational domain that
    // publish nothing themselves (RFC 7489 6.3).
    const bool for_subdomain = found.domain != verdict.from_domain && !read.policy.sp.empty();
    verdict.published = for_subdomain ? read.policy.sp : read.policy.p;
    verdict.policy = verdict.result == Result::fail ? sampled_policy(verdict.published, read.policy.pct, roll)
                                                    : verdict.published;
    verdict.reason = read.note;
}

/* The author domains that are evaluated: the first kMaxAuthorDomains of
 * those parsed, then of those read leniently, each once. */
std::vector<std::string> evaluated_domains(const FromHeader& from) {
    std::vector<std::string> evaluated;
    for (const auto* domains : {&from.domains(), &from.lenient_domains()}) {
        for (const std::string& domain : *domains) {
            if (evaluated.size() == kMaxAuthorDomains) return evaluated;
            if (std::find(evaluated.begin(), evaluated.end(), domain) == evaluated.end()) evaluated.push_back(domain);
        }
    }
    return evaluated;
}

/* Why part of FROM is not evaluated; "" when all of it is. */
std::string from_problem(const FromHeader& from) {
    std::string problem = from.problem();
    if (problem.empty() && from.domains().size() > kMaxAuthorDomains) {
        problem = "more than " + std::to_string(kMaxAuthorDomains) + " author domains";
    }
    return problem;
}

/* How strict POLICY is: none 0, quarantine 1, reject 2. */
int strictness(const std::string& policy) { return policy == "reject" ? 2 : policy == "quarantine" ? 1 : 0; }

/* The verdict of the first of VERDICTS whose result is RESULT; for fail,
 * of the first with the strictest policy to apply. */
const Verdict* first_with(const std::vector<Verdict>& verdicts, Result result) {
    const Verdict* found = nullptr;
    for (const Verdict& verdict : verdicts) {
        if (verdict.result != result) continue;
        if (!found || (result == Result::fail && strictness(verdict.policy) > strictness(found->policy))) {
            found = &verdict;
        }
    }
    return found;
}

/* RFC 7489 6.6.1 over the verdicts of every author domain and PROBLEM,
 * what stopped part of From from being evaluated (see dmarc.h). */
Verdict combined(const std::vector<Verdict>& verdicts, const std::string& problem) {
    for (const Result result : {Result::fail, Result::temperror}) {
        if (const Verdict* found = first_with(verdicts, result)) return *found;
    }
    if (!problem.empty() || verdicts.empty()) {
        Verdict verdict;
        verdict.result = Result::permerror;
        verdict.policy = "none";
        verdict.reason = problem;
        return verdict;
    }
    if (const Verdict* found = first_with(verdicts, Result::none)) return *found;
    return verdicts.front();
}

}  // namespace

struct Checker::Suffixes {
    explicit Suffixes(const std::string& path) : list(path) {}
    PublicSuffixList list;
};

std::string_view result_name(Result result) {
    switch (result) {
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::none: return "none";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "?";
}

Checker::Checker(const std::string& public_suffix_list) : suffixes_(std::make_unique<Suffixes>(public_suffix_list)) {
    initialize_libopendmarc();
}

Checker::~Checker() = default;

std::string Checker::organizational_domain(std::string_view domain) const {
    return suffixes_->list.organizational_domain(domain);
}

void Checker::start_lookups(const FromHeader& from, dns::TxtLookups& dns) const {
    for (const std::string& domain : evaluated_domains(from)) {
        const std::string org_domain = organizational_domain(domain);
        if (const auto name = record_name(domain)) dns.start(*name);
        if (const auto name = record_name(org_domain); name && org_domain != domain) dns.start(*name);
    }
}

std::optional<Verdict> Checker::check(const FromHeader& from, const Identifiers& ids, dns::TxtLookups& dns,
                                      const PercentRoll& roll) const {
    Decided nothing_yet;
    return check(from, ids, dns, nothing_yet, roll);
}

std::optional<Verdict> Checker::check(const FromHeader& from, const Identifiers& ids, dns::TxtLookups& dns,
                                      Decided& decided, const PercentRoll& roll) const {
    const std::vector<std::string> domains = evaluated_domains(from);
    const std::string problem = from_problem(from);
    std::vector<Verdict> verdicts;
    bool waiting = false;
    // Every domain not yet decided is asked, so the lookups still out all
    // go on together.
    for (const std::string& domain : domains) {
        auto known = decided.find(domain);
        if (known == decided.end()) {
            std::optional<Verdict> one = check_domain(domain, ids, dns, roll);
            if (!one) {
                waiting = true;
                continue;
            }
            known = decided.emplace(domain, std::move(*one)).first;
        }
        verdicts.push_back(known->second);
    }
    if (waiting) return std::nullopt;
    Verdict verdict = combined(verdicts, problem);
    verdict.author_domains = domains;
    verdict.from_problem = problem;
    return verdict;
}

/* The verdict for one author domain; nullopt while its record has not
 * come. */
std::optional<Verdict> Checker::check_domain(const std::string& domain, const Identifiers& ids, dns::TxtLookups& dns,
                                             const PercentRoll& roll) const {
    Verdict verdict;
    verdict.policy = "none";
    verdict.from_domain = domain;
    const std::string org_domain = organizational_domain(domain);
    const std::optional<Discovery> discovered = discover(domain, org_domain, dns);
    if (!discovered) return std::nullopt;
    const Discovery& found = *discovered;
    const ReadRecord read = found.outcome == Discovery::Outcome::record ? read_record(found.record, found.domain)
                                                                        : ReadRecord{};
    set_alignment(verdict, ids, {domain, org_domain}, read.policy, suffixes_->list);
    if (found.outcome == Discovery::Outcome::temperror) {
        verdict.result = Result::temperror;
        verdict.reason = found.reason;
    } else if (found.outcome != Discovery::Outcome::record) {
        verdict.reason = found.reason;
    } else if (!read.problem.empty()) {
        verdict.reason = "DMARC record at _dmarc." + found.domain + " gives no policy: " + read.problem;
    } else {
        apply_policy(verdict, found, read, roll);
    }
    return verdict;
}

}  // namespace portcullis::dmarc
