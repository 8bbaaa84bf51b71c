/*
 * rfc7208_driver.cc: runs spf::check() over scenarios read from stdin,
 * for rfc7208_suite.py (which turns the RFC 7208 test suite into them).
 *
 * Each test is checked twice: with every answer at once, and with one
 * answer per round, check() called again after each as a session does
 * when its lookups wake it.  The verdict printed is the first; when the
 * second differs (result or reason), the result printed is
 * "replay-differs" and the reason names both, which the suite counts as
 * a deviation.
 *
 * Input, one command a line, every string in hex ("-" for empty):
 *   scenario                      start a new, empty DNS
 *   rr NAME TYPE DATA             TYPE A, AAAA, MX, PTR or TXT: a record;
 *                                 CNAME: NAME is an alias of DATA;
 *                                 TIMEOUT (DATA "-"): NAME times out
 *   test ID IP HELO SENDER        check, and print "ID RESULT REASON" (ID
 *                                 and REASON in hex)
 */
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "checks/spf.h"
#include "support/fake_spf_dns.h"

namespace {

using portcullis::dns::RecordType;

std::string unhex(const std::string& hex) {
    std::string text;
    if (hex == "-") return text;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return text;
}

std::string hex(const std::string& text) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hexed = text.empty() ? "-" : "";
    for (const unsigned char c : text) {
        hexed += kDigits[c >> 4];
        hexed += kDigits[c & 0xf];
    }
    return hexed;
}

void add_record(portcullis::test_support::FakeSpfDns& dns, const std::string& name, const std::string& type,
                const std::string& data) {
    if (type == "TIMEOUT") dns.time_out(name);
    else if (type == "CNAME") dns.alias(name, data);
    else if (type == "A") dns.add(name, RecordType::a, {data});
    else if (type == "AAAA") dns.add(name, RecordType::aaaa, {data});
    else if (type == "MX") dns.add(name, RecordType::mx, {data});
    else if (type == "PTR") dns.add(name, RecordType::ptr, {data});
    else if (type == "TXT") dns.add(name, RecordType::txt, {data});
    else throw std::runtime_error("unknown record type " + type);
}

}  // namespace

/* What REQUEST's two checks over DNS say, as the line's result and reason. */
std::pair<std::string, std::string> outcome(const portcullis::spf::Request& request,
                                            const portcullis::test_support::FakeSpfDns& dns) {
    using portcullis::spf::result_name;
    portcullis::test_support::FakeSpfDns at_once = dns, one_by_one = dns;
    one_by_one.hold_answers();
    const auto verdict = portcullis::test_support::checked(request, at_once);
    const auto replayed = portcullis::test_support::checked(request, one_by_one);
    if (replayed.result == verdict.result && replayed.reason == verdict.reason) {
        return {std::string(result_name(verdict.result)), verdict.reason};
    }
    return {"replay-differs", std::string(result_name(verdict.result)) + " (" + verdict.reason + ") at once, " +
                                  std::string(result_name(replayed.result)) + " (" + replayed.reason + ") replayed"};
}

int main() {
    auto dns = std::make_unique<portcullis::test_support::FakeSpfDns>();
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream words(line);
        std::string command, a, b, c, d;
        words >> command >> a >> b >> c >> d;
        if (command == "scenario") {
            dns = std::make_unique<portcullis::test_support::FakeSpfDns>();
        } else if (command == "rr") {
            add_record(*dns, unhex(a), b, unhex(c));
        } else if (command == "test") {
            const auto client = portcullis::parse_ip(b);
            if (!client) throw std::runtime_error("bad address " + b);
            const auto [result, reason] = outcome({*client, unhex(c), unhex(d)}, *dns);
            std::cout << a << ' ' << result << ' ' << hex(reason) << '\n';
        }
    }
    return 0;
}
