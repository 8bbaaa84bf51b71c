/*
 * spf_fuzz.cc: the fuzz target for the SPF check, with the DNS answers
 * as the input.
 *
 * The input is the DNS, one record a line: "NAME TYPE DATA", TYPE one of
 * A AAAA MX PTR TXT CNAME TIMEOUT, DATA the rest of the line (any bytes
 * but a newline: TXT data reaches the screen as it is).  The check is
 * run for a@example.com from 192.0.2.7, and for <> with HELO
 * mx.example.com from 2001:db8::7.  What must hold: check() returns
 * (libspf2 neither aborts nor overflows), gives the domain it checked,
 * a reason with every error, and looks up a bounded number of names;
 * and the same verdict comes when the DNS answers one question per round
 * and check() is called again after each answer, as a session does.
 */
#include <optional>
#include <string>
#include <string_view>

#include "checks/spf.h"
#include "fuzz_target.h"
#include "support/fake_spf_dns.h"

namespace portcullis::fuzz {
namespace {

using test_support::FakeSpfDns;
using Type = dns::RecordType;

/* 1 record, then at most 10 terms each with at most 10 names to look up
 * (A and AAAA), and PTR lookups for %{p}; far below this. */
constexpr size_t kMaxQueries = 500;

void add_line(FakeSpfDns& dns, std::string_view line) {
    const size_t name_end = line.find(' ');
    if (name_end == std::string_view::npos) return;
    const std::string name(line.substr(0, name_end));
    const std::string_view rest = line.substr(name_end + 1);
    const size_t type_end = std::min(rest.find(' '), rest.size());
    const std::string_view type = rest.substr(0, type_end);
    const std::string data(type_end < rest.size() ? rest.substr(type_end + 1) : std::string_view());
    if (type == "A") dns.add(name, Type::a, {data});
    else if (type == "AAAA") dns.add(name, Type::aaaa, {data});
    else if (type == "MX") dns.add(name, Type::mx, {data});
    else if (type == "PTR") dns.add(name, Type::ptr, {data});
    else if (type == "TXT") dns.add(name, Type::txt, {data});
    else if (type == "CNAME") dns.alias(name, data);
    else if (type == "TIMEOUT") dns.time_out(name);
}

FakeSpfDns dns_of(std::string_view input) {
    FakeSpfDns dns;
    size_t start = 0;
    while (start <= input.size()) {
        const size_t end = std::min(input.find('\n', start), input.size());
        add_line(dns, input.substr(start, end - start));
        start = end + 1;
    }
    return dns;
}

void check_one(std::string_view input, const spf::Request& request, std::string_view domain) {
    FakeSpfDns dns = dns_of(input);
    FakeSpfDns one_by_one = dns;
    const std::optional<spf::Verdict> at_once = spf::check(request, dns);
    fuzz_require(at_once.has_value(), "no waiting when every answer is in");
    const spf::Verdict& verdict = *at_once;
    fuzz_require(verdict.domain == domain, "the domain checked is the identity's");
    const bool error = verdict.result == spf::Result::temperror || verdict.result == spf::Result::permerror;
    fuzz_require(!error || !verdict.reason.empty(), "an error says why");
    fuzz_require(dns.queries.size() <= kMaxQueries, "a bounded number of lookups");

    one_by_one.hold_answers();
    const spf::Verdict replayed = test_support::checked(request, one_by_one);
    fuzz_require(replayed.result == verdict.result && replayed.reason == verdict.reason,
                 "one answer per round gives the verdict of all at once");
}

}  // namespace
}  // namespace portcullis::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace portcullis;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    fuzz::check_one(input, {*parse_ip("192.0.2.7"), "mx.example.com", "a@example.com"}, "example.com");
    fuzz::check_one(input, {*parse_ip("2001:db8::7"), "mx.example.com", ""}, "mx.example.com");
    return 0;
}
