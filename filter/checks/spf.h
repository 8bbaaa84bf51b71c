/*
 * spf.h: SPF verification (RFC 7208) of the MAIL FROM identity, on
 * libspf2 (the only code that includes its headers).
 *
 * check() asks whether REQUEST's client may send for the sender's domain,
 * or for the HELO name when the sender is <> (as postmaster@HELO).  Every
 * DNS query libspf2 makes is answered by the SpfDns given, never by the
 * system resolver.  libspf2 asks its queries one at a time and waits for
 * each, so a check never waits here: a query whose answer SpfDns does not
 * have yet (it is asked, and the caller is woken when it comes) makes
 * check() return nullopt, and the caller calls it again with the same
 * SpfDns once the answer has come.  The check then starts over, every
 * earlier query answered at once from SpfDns, and goes one query further;
 * libspf2 makes at most a few dozen.  Between the answers and libspf2 sits
 * a screen that adds what libspf2 lacks or gets wrong:
 *   - a lookup that fails (timeout, SERVFAIL) makes the result temperror
 *     (libspf2 says "invalid");
 *   - the void-lookup limit: a third lookup with no answer is a permerror;
 *   - more than 10 MX names for one mx mechanism is a permerror (libspf2
 *     uses the first 10);
 *   - SPF records are checked against RFC 7208's grammar before libspf2
 *     compiles them, within bounds libspf2 can hold (spf_screen.h), and
 *     compiled once here to see that libspf2 kept every term (it drops
 *     what does not fit its buffer without a word).  One that fails is a
 *     permerror, so no answer reaches the code paths where libspf2
 *     aborts or overflows its buffers (CVE-2023-42118);
 *   - explanations (exp=) are never looked up: libspf2 gets SPF records
 *     only, without exp=, and nothing else a TXT answer holds;
 *   - all the lookups of one check end by a deadline, counted from
 *     Request::started; a question asked later fails.
 * A sender domain that is not a multi-label host name, and a check with
 * neither sender nor HELO name, give none without a lookup.  libspf2
 * passes loopback clients (127.0.0.0/8, ::1) without looking anything up.
 * Thread-safe: each check has its own libspf2 server.
 */
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "dns/resolver.h"
#include "util/ip.h"

namespace portcullis::spf {

enum class Result { pass, fail, softfail, neutral, none, temperror, permerror };

/* "pass", "fail", ... as RFC 7208 and the policy language spell them. */
std::string_view result_name(Result result);

/* "libspf2 1.2.10": the library this build uses, for `version`. */
std::string library_version();

/* Where a check's DNS answers come from: NAME's TYPE records, or null
 * when the answer has not come (the question is out). */
class SpfDns {
public:
    virtual ~SpfDns() = default;
    virtual const dns::Answer* lookup(const std::string& name, dns::RecordType type) = 0;
};

struct Request {
    IpAddress client;
    std::string helo;
    std::string sender;   // without angle brackets; "" for <>
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

struct Verdict {
    Result result = Result::none;
    std::string domain;   // the domain checked, lower case; "" if none could be
    std::string reason;   // why an error or none, for the log; "" otherwise
};

struct Limits {
    std::chrono::milliseconds deadline = std::chrono::seconds(20);   // RFC 7208 4.6.4 asks for at least 20 s
    int void_lookups = 2;
};

std::optional<Verdict> check(const Request& request, SpfDns& dns, const Limits& limits = {});

}  // namespace portcullis::spf
