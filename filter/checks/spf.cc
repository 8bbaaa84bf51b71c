/*
 * spf.cc: libspf2 wrapped once, and the DNS layer that answers its
 * queries through SpfDns and screens the answers (see spf.h).
 *
 * libspf2 asks its DNS layer synchronously, through a C function in an
 * SPF_dns_server_t.  Each check builds its own layer and server, with a
 * Screen as the layer's hook: the Screen does the lookups, counts them,
 * keeps what went wrong, and hands libspf2 only answers it can take.
 * When the Screen decides the check has failed (a DNS failure, the void
 * limit, a bad record), it answers TRY_AGAIN so libspf2 stops, and the
 * Screen's verdict then replaces libspf2's.
 */
#include "checks/spf.h"

#include <arpa/inet.h>

extern "C" {
#include <spf2/spf.h>
}

#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "checks/spf_screen.h"
#include "util/text.h"

namespace portcullis::spf {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxMxNames = 10;       // RFC 7208 4.6.4
constexpr int kMaxTermLookups = 10;   // RFC 7208 4.6.4
constexpr size_t kMaxPtrNames = 10;   // RFC 7208 4.6.4
/* Each answer that comes starts the check over with every answer before
 * it (libspf2 asks synchronously), so the records one check goes
 * through are bounded: an SPF check needs a few hundred at most, and a
 * domain that answers its 111 possible lookups with thousands of
 * addresses each would cost seconds on the event loop. */
constexpr size_t kMaxRecords = 2000;

struct ServerFree {
    void operator()(SPF_server_t* server) const { SPF_server_free(server); }
};
struct RequestFree {
    void operator()(SPF_request_t* request) const { SPF_request_free(request); }
};
struct ResponseFree {
    void operator()(SPF_response_t* response) const { SPF_response_free(response); }
};
struct RecordFree {
    void operator()(SPF_record_t* record) const { SPF_record_free(record); }
};

/* What went wrong, if anything, seen from the DNS layer. */
struct Failure {
    Result result;
    std::string reason;
};

class Screen {
public:
    Screen(SpfDns& dns, const Limits& limits, const IpAddress& client, Clock::time_point started)
        : dns_(dns), limits_(limits), client_(client), deadline_(started + limits.deadline) {}
    /* The libspf2 server whose queries this screens. */
    void serve(SPF_server_t* server) { server_ = server; }

    /* libspf2's answer to (DOMAIN, TYPE), allocated for it to free. */
    SPF_dns_rr_t* answer(SPF_dns_server_t* layer, const char* domain, ns_type type);
    const std::optional<Failure>& failure() const { return failure_; }
    /* Whether an answer it needed has not come yet. */
    bool waiting() const { return waiting_; }

private:
    SPF_dns_rr_t* fail(SPF_dns_server_t* layer, const char* domain, ns_type type, Result result, std::string reason);
    std::optional<std::string> void_problem(const dns::Answer& answer, bool for_ptr);
    std::optional<std::string> count_problem(const std::string& name, ns_type type);
    void remember_names(ns_type type, const std::vector<std::string>& names);
    std::vector<std::string> any_address_records(ns_type type, const std::vector<std::string>& records) const;
    std::vector<std::string> screened_txt(const std::string& name, const std::vector<std::string>& records);

    bool compiles_whole(std::string_view record) const;

    SpfDns& dns_;
    SPF_server_t* server_ = nullptr;
    const Limits& limits_;
    const IpAddress& client_;
    Clock::time_point deadline_;
    int voids_ = 0;
    int term_lookups_ = 0;
    size_t records_ = 0;   // in the answers given to libspf2
    bool first_lookup_ = true;
    std::set<std::string> mx_names_;    // their address lookups belong to an mx term
    std::set<std::string> ptr_names_;   // their address lookups belong to a ptr term
    std::optional<Failure> failure_;   // the first one
    bool waiting_ = false;
};

std::optional<dns::RecordType> record_type(ns_type type) {
    switch (type) {
        case ns_t_a: return dns::RecordType::a;
        case ns_t_aaaa: return dns::RecordType::aaaa;
        case ns_t_mx: return dns::RecordType::mx;
        case ns_t_ptr: return dns::RecordType::ptr;
        case ns_t_txt: return dns::RecordType::txt;
        default: return std::nullopt;   // type 99 (SPF) is obsolete: as if there were none
    }
}

/* Record DATA copied into slot INDEX of RR in libspf2's layout for TYPE. */
bool store_record(SPF_dns_rr_t* rr, int index, ns_type type, const std::string& data) {
    const bool address = type == ns_t_a || type == ns_t_aaaa;
    const size_t size = type == ns_t_a ? sizeof(in_addr) : type == ns_t_aaaa ? sizeof(in6_addr) : data.size() + 1;
    if (SPF_dns_rr_buf_realloc(rr, index, size) != SPF_E_SUCCESS) return false;
    if (address) return inet_pton(type == ns_t_a ? AF_INET : AF_INET6, data.c_str(), rr->rr[index]) == 1;
    std::copy(data.c_str(), data.c_str() + size, rr->rr[index]->txt);
    return true;
}

SPF_dns_rr_t* make_answer(SPF_dns_server_t* layer, const char* domain, ns_type type,
                          const std::vector<std::string>& records) {
    SPF_dns_rr_t* rr = SPF_dns_rr_new_init(layer, domain, type, 0, records.empty() ? NO_DATA : NETDB_SUCCESS);
    if (rr == nullptr) return nullptr;
    int stored = 0;
    for (const auto& record : records) {
        if (store_record(rr, stored, type, record)) ++stored;
    }
    rr->num_rr = stored;
    if (stored == 0 && !records.empty()) rr->herrno = NO_DATA;
    return rr;
}

SPF_dns_rr_t* Screen::fail(SPF_dns_server_t* layer, const char* domain, ns_type type, Result result,
                           std::string reason) {
    if (!failure_) failure_ = Failure{result, std::move(reason)};
    return SPF_dns_rr_new_init(layer, domain, type, 0, TRY_AGAIN);
}

/* The limit is on lookups that find nothing (RFC 7208 4.6.4): the third
 * one ends the check. */
std::optional<std::string> Screen::void_problem(const dns::Answer& answer, bool for_ptr) {
    // A ptr term checks up to 10 names and skips those without an address.
    if (for_ptr || answer.status != dns::Answer::Status::not_found || ++voids_ <= limits_.void_lookups) {
        return std::nullopt;
    }
    return "more than " + std::to_string(limits_.void_lookups) + " lookups found nothing";
}

/* The limit of 10 terms that look something up is for the whole check,
 * includes and redirects too (RFC 7208 4.6.4); libspf2 counts each
 * record apart.  The lookups of one term: its own, and those of the
 * addresses of the names its MX or PTR answer gave. */
std::optional<std::string> Screen::count_problem(const std::string& name, ns_type type) {
    const bool first = std::exchange(first_lookup_, false);
    const bool address = type == ns_t_a || type == ns_t_aaaa;
    if (first || (address && (mx_names_.count(name) != 0 || ptr_names_.count(name) != 0))) return std::nullopt;
    if (++term_lookups_ <= kMaxTermLookups) return std::nullopt;
    return "more than " + std::to_string(kMaxTermLookups) + " terms look something up";
}

void Screen::remember_names(ns_type type, const std::vector<std::string>& names) {
    if (type != ns_t_mx && type != ns_t_ptr) return;
    for (const auto& found : names) (type == ns_t_mx ? mx_names_ : ptr_names_).insert(to_lower(found));
}

/* The answer for a marked name: the client's own address if it has any
 * address (so "a/0" matches), its MX names marked in turn (for "mx/0"). */
std::vector<std::string> Screen::any_address_records(ns_type type, const std::vector<std::string>& records) const {
    if (records.empty()) return {};
    if (type == ns_t_a || type == ns_t_aaaa) return {client_.str()};
    std::vector<std::string> marked;
    for (const auto& record : records) marked.push_back(type == ns_t_mx ? record + "." + std::string(kAnyAddress) : record);
    return marked;
}

/* libspf2 compiles a record into a buffer of about 512 bytes and drops,
 * without a word, the terms that do not fit (some 26 ip6 terms): the
 * record is compiled here and its terms counted. */
bool Screen::compiles_whole(std::string_view record) const {
    const std::unique_ptr<SPF_response_t, ResponseFree> response(SPF_response_new(nullptr));
    SPF_record_t* compiled = nullptr;
    const std::string text(record);
    const SPF_errcode_t error = SPF_record_compile(server_, response.get(), &compiled, text.c_str());
    const std::unique_ptr<SPF_record_t, RecordFree> owned(compiled);
    // A record libspf2 refuses is its permerror to give.
    if (error != SPF_E_SUCCESS || !owned) return true;
    return size_t{owned->num_mech} + owned->num_mod >= record_terms(record).size();
}

/* The SPF records of a TXT answer, screened; the other records are left
 * out, as libspf2 has no use for them once it looks up no explanation.
 * A bad SPF record ends the check. */
std::vector<std::string> Screen::screened_txt(const std::string& name, const std::vector<std::string>& records) {
    std::vector<std::string> kept;
    for (const auto& record : records) {
        if (!is_spf_record(record)) continue;
        ScreenedRecord screened = screen_record(record, client_.is_v4());
        if (screened.problem.empty() && !compiles_whole(screened.text)) screened.problem = "more than libspf2 can hold";
        if (!screened.problem.empty()) {
            if (!failure_) failure_ = Failure{Result::permerror, "SPF record of " + name + ": " + screened.problem};
            return {};
        }
        kept.push_back(std::move(screened.text));
    }
    return kept;
}

SPF_dns_rr_t* Screen::answer(SPF_dns_server_t* layer, const char* domain, ns_type type) {
    const auto wanted = record_type(type);
    if (failure_) return fail(layer, domain, type, failure_->result, "");
    if (!wanted) return make_answer(layer, domain, type, {});
    const std::string name = to_lower(domain);
    if (auto problem = count_problem(name, type)) return fail(layer, domain, type, Result::permerror, *problem);
    // A marked name (spf_screen.h) is looked up without its mark.
    const bool marked = name.ends_with(std::string(".").append(kAnyAddress));
    const dns::Answer* answer = dns_.lookup(marked ? name.substr(0, name.size() - kAnyAddress.size() - 1) : name, *wanted);
    if (!answer) {
        if (Clock::now() >= deadline_) {
            return fail(layer, domain, type, Result::temperror,
                        "lookups took longer than " + std::to_string(limits_.deadline.count()) + "ms");
        }
        // Stop libspf2 here; the check starts over once the answer is in.
        waiting_ = true;
        return SPF_dns_rr_new_init(layer, domain, type, 0, TRY_AGAIN);
    }
    const dns::Answer& found = *answer;
    if (found.status == dns::Answer::Status::temperror) {
        return fail(layer, domain, type, Result::temperror, name + ": " + found.error);
    }
    const bool for_ptr = (type == ns_t_a || type == ns_t_aaaa) && ptr_names_.count(name) != 0;
    if (auto problem = void_problem(found, for_ptr)) return fail(layer, domain, type, Result::permerror, *problem);
    if (type == ns_t_mx && found.records.size() > kMaxMxNames) {
        return fail(layer, domain, type, Result::permerror, name + " has more than 10 MX records");
    }
    records_ += found.records.size();
    if (records_ > kMaxRecords) {
        return fail(layer, domain, type, Result::permerror,
                    "the answers hold more than " + std::to_string(kMaxRecords) + " records");
    }
    std::vector<std::string> records = marked ? any_address_records(type, found.records) : found.records;
    // A ptr term checks the first 10 names and ignores the rest (RFC 7208
    // 4.6.4); libspf2 makes the check a permerror.
    if (type == ns_t_ptr && records.size() > kMaxPtrNames) records.resize(kMaxPtrNames);
    remember_names(type, records);
    if (type != ns_t_txt) return make_answer(layer, domain, type, records);
    std::vector<std::string> kept = screened_txt(name, records);
    if (failure_) return fail(layer, domain, type, failure_->result, "");
    return make_answer(layer, domain, type, kept);
}

/* libspf2's entry into the layer; nothing may be thrown through C. */
SPF_dns_rr_t* lookup_through_screen(SPF_dns_server_t* layer, const char* domain, ns_type type, int /*cache*/) {
    auto& screen = *static_cast<Screen*>(layer->hook);
    try {
        return screen.answer(layer, domain, type);
    } catch (const std::exception&) {
        return SPF_dns_rr_new_init(layer, domain, type, 0, TRY_AGAIN);
    }
}

/* libspf2 warns on stderr; the daemon logs the verdict instead. */
void quiet(const char*, int, const char*) {}

void silence_libspf2() {
    static const bool silenced = [] {
        SPF_warning_handler = quiet;
        SPF_info_handler = quiet;
        SPF_debug_handler = quiet;
        return true;
    }();
    (void)silenced;
}


Result from_libspf2(SPF_result_t result) {
    switch (result) {
        case SPF_RESULT_PASS: return Result::pass;
        case SPF_RESULT_FAIL: return Result::fail;
        case SPF_RESULT_SOFTFAIL: return Result::softfail;
        case SPF_RESULT_NEUTRAL: return Result::neutral;
        case SPF_RESULT_NONE: return Result::none;
        case SPF_RESULT_PERMERROR: return Result::permerror;
        case SPF_RESULT_TEMPERROR: return Result::temperror;
        // A DNS failure, which the Screen reports, or a record libspf2
        // cannot compile.
        case SPF_RESULT_INVALID: break;
    }
    return Result::permerror;
}

/* Why libspf2 gave an error, for the log: its first error message, else
 * its error code's text (it gives some results with neither). */
std::string error_reason(SPF_response_t* response) {
    for (int i = 0; i < SPF_response_messages(response); ++i) {
        SPF_error_t* message = SPF_response_message(response, i);
        if (SPF_error_errorp(message) && SPF_error_message(message) != nullptr) return SPF_error_message(message);
    }
    const SPF_errcode_t code = SPF_response_errcode(response);
    if (code != SPF_E_SUCCESS) return std::string("libspf2: ") + SPF_strerror(code);
    return "libspf2 gives no reason";
}

/* libspf2 asked about REQUEST, its queries answered by SCREEN. */
Verdict ask_libspf2(const Request& request, Screen& screen) {
    SPF_dns_server_t layer{};
    layer.lookup = lookup_through_screen;
    layer.name = "portcullis";
    layer.hook = &screen;   // destroy stays null: the layer is ours, not libspf2's
    const std::unique_ptr<SPF_server_t, ServerFree> server(SPF_server_new_dns(&layer, 0));
    const std::unique_ptr<SPF_request_t, RequestFree> spf_request(server ? SPF_request_new(server.get()) : nullptr);
    if (!spf_request) return {Result::temperror, "", "libspf2: out of memory"};
    screen.serve(server.get());

    const std::string client = request.client.str();
    const SPF_errcode_t set = request.client.is_v4() ? SPF_request_set_ipv4_str(spf_request.get(), client.c_str())
                                                     : SPF_request_set_ipv6_str(spf_request.get(), client.c_str());
    // The HELO name first: libspf2 reads it when the sender is "".
    if (set != SPF_E_SUCCESS || SPF_request_set_helo_dom(spf_request.get(), request.helo.c_str()) != SPF_E_SUCCESS ||
        SPF_request_set_env_from(spf_request.get(), request.sender.c_str()) != 0) {
        return {Result::permerror, "", "libspf2 refuses the identity"};
    }
    SPF_response_t* raw = nullptr;
    SPF_request_query_mailfrom(spf_request.get(), &raw);
    const std::unique_ptr<SPF_response_t, ResponseFree> response(raw);
    if (!response) return {Result::temperror, "", "libspf2: no response"};
    const Result result = from_libspf2(SPF_response_result(response.get()));
    const bool error = result == Result::temperror || result == Result::permerror;
    return {result, "", error ? error_reason(response.get()) : ""};
}

}  // namespace

std::string_view result_name(Result result) {
    switch (result) {
        case Result::pass: return "pass";
        case Result::fail: return "fail";
        case Result::softfail: return "softfail";
        case Result::neutral: return "neutral";
        case Result::none: return "none";
        case Result::temperror: return "temperror";
        case Result::permerror: return "permerror";
    }
    return "?";
}

std::optional<Verdict> check(const Request& request, SpfDns& dns, const Limits& limits) {
    const std::string_view domain = request.sender.empty() ? std::string_view(request.helo)
                                                            : split_address(request.sender).domain;
    if (domain.empty()) return Verdict{Result::none, "", "no sender domain and no HELO name"};
    std::string checked = to_lower(domain);
    if (checked.ends_with('.')) checked.pop_back();
    if (!is_host_name(checked)) return Verdict{Result::none, checked, in_quotes(domain) + " is not a domain name"};

    silence_libspf2();
    Screen screen(dns, limits, request.client, request.started);
    Verdict verdict = ask_libspf2(request, screen);
    if (screen.waiting()) return std::nullopt;
    verdict.domain = std::move(checked);
    if (const auto& failure = screen.failure()) {
        // The Screen made libspf2 stop; its cause is the verdict.
        verdict.result = failure->result;
        verdict.reason = failure->reason;
    }
    return verdict;
}

std::string library_version() {
    return "libspf2 " + std::to_string(SPF_LIB_VERSION_MAJOR) + "." + std::to_string(SPF_LIB_VERSION_MINOR) + "." +
           std::to_string(SPF_LIB_VERSION_PATCH);
}

}  // namespace portcullis::spf
