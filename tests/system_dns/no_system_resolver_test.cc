/*
 * no_system_resolver_test.cc: with a forwarder set, SPF, DKIM and DMARC
 * ask only it: neither the C library's resolver (res_*, getaddrinfo,
 * gethostbyname) nor the system's resolver files are ever used.
 *
 * This binary interposes the C library's resolver entry points that
 * libspf2, libopendkim and libopendmarc link (res_ninit, res_nquery: see
 * nm -D) or could (res_*, getaddrinfo, gethostbyname), and records each
 * call.  (That libunbound itself reads neither /etc/resolv.conf nor
 * /etc/hosts with a forwarder is tests/unit/dns/system_files_test.cc.)
 * A first test calls two of them itself, so the recording is seen to
 * work; the second runs SPF, a DKIM verification and a DMARC check
 * through the daemon's own checks (daemon/session_checks.h: one session's
 * lookups and its message's stream, on an event loop) over a Resolver
 * whose only server is a test unbound, and checks that the answers came
 * from it and that nothing was recorded but the one res_init()
 * libopendkim's dkim_init() makes (it reads /etc/resolv.conf into the C
 * library's settings; no query follows).
 */
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <resolv.h>

#include <mutex>
#include <string>
#include <vector>

#include "checks/dmarc.h"
#include "daemon/session_checks.h"
#include "support/mail_message.h"
#include "support/unbound_server.h"
#include "util/event_loop.h"

namespace {

std::mutex calls_mutex;
std::vector<std::string> calls;

void record(const std::string& call) {
    const std::lock_guard lock(calls_mutex);
    calls.push_back(call);
}

std::vector<std::string> take_calls() {
    const std::lock_guard lock(calls_mutex);
    return std::exchange(calls, {});
}

template <typename Function>
Function real(const char* name) {
    return reinterpret_cast<Function>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

// <resolv.h> makes res_ninit and res_init __res_ninit and __res_init, the
// names the libraries link (nm -D); the query functions keep their names.
int res_ninit(res_state state) {
    record("res_ninit");
    return real<int (*)(res_state)>("__res_ninit")(state);
}
int res_init() {
    record("res_init");
    return real<int (*)()>("__res_init")();
}
int res_nquery(res_state state, const char* name, int klass, int type, unsigned char* answer, int length) {
    record("res_nquery");
    return real<int (*)(res_state, const char*, int, int, unsigned char*, int)>("res_nquery")(state, name, klass, type,
                                                                                             answer, length);
}
int res_nsearch(res_state state, const char* name, int klass, int type, unsigned char* answer, int length) {
    record("res_nsearch");
    return real<int (*)(res_state, const char*, int, int, unsigned char*, int)>("res_nsearch")(state, name, klass,
                                                                                              type, answer, length);
}
int res_query(const char* name, int klass, int type, unsigned char* answer, int length) {
    record("res_query");
    return real<int (*)(const char*, int, int, unsigned char*, int)>("res_query")(name, klass, type, answer, length);
}
int res_search(const char* name, int klass, int type, unsigned char* answer, int length) {
    record("res_search");
    return real<int (*)(const char*, int, int, unsigned char*, int)>("res_search")(name, klass, type, answer, length);
}
int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints, struct addrinfo** result) {
    record("getaddrinfo");
    return real<int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**)>("getaddrinfo")(
        node, service, hints, result);
}
struct hostent* gethostbyname(const char* name) {
    record("gethostbyname");
    return real<struct hostent* (*)(const char*)>("gethostbyname")(name);
}
}  // extern "C"

namespace portcullis {
namespace {

using namespace std::chrono_literals;

TEST(NoSystemResolver, TheRecordingSeesTheCLibrary) {
    take_calls();
    struct __res_state state {};
    res_ninit(&state);
    res_nclose(&state);
    struct addrinfo* found = nullptr;
    if (getaddrinfo("127.0.0.1", nullptr, nullptr, &found) == 0) freeaddrinfo(found);
    const auto seen = take_calls();
    EXPECT_NE(std::find(seen.begin(), seen.end(), "res_ninit"), seen.end());
    EXPECT_NE(std::find(seen.begin(), seen.end(), "getaddrinfo"), seen.end());
}

/* GET's answer, asked on LOOP again each time WOKEN is set (by the
 * checks' wake), until it has one; null after kMaxRounds. */
template <typename T>
const T* when_known(EventLoop& loop, bool& woken, const std::function<const T*()>& get) {
    constexpr int kMaxRounds = 20;
    for (int round = 0; round < kMaxRounds; ++round) {
        const T* known = nullptr;
        bool asked = false;
        woken = false;
        loop.post([&] {
            known = get();
            asked = true;
        });
        loop.run_until([&] { return asked; });
        if (known) return known;
        loop.run_until([&] { return woken; });   // the resolver's timeout ends every wait
    }
    return nullptr;
}

TEST(NoSystemResolver, SpfDkimAndDmarcAskOnlyTheForwarder) {
    // dkimpy's Exim-signed Ed25519 message: d=test.ex, From nobody@example.com.
    std::string key = test_support::dkimpy_data("eximtest.dns");
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    const auto message = test_support::split_message(test_support::dkimpy_data("ed25519test2.msg"));
    test_support::UnboundServer server({
        "sed._domainkey.test.ex. TXT \"" + key + "\"",
        "_dmarc.example.com. TXT \"v=DMARC1; p=reject\"",
        "elsewhere.example. TXT \"v=spf1 ip4:192.0.2.7 -all\"",
    });
    take_calls();
    EventLoop loop;
    daemon::LookupSettings settings;
    settings.resolver = std::make_shared<dns::Resolver>(std::vector<std::string>{server.forwarder()}, 2s);
    settings.dmarc = std::make_shared<const dmarc::Checker>("/usr/share/publicsuffix/public_suffix_list.dat");
    settings.auth.dkim = settings.auth.dmarc = true;
    daemon::LookupChecks checks(settings);
    bool woken = false;
    const auto session = checks.begin_session([&woken] { woken = true; });

    // The envelope sender's domain passes SPF, but it is not the author's.
    policy::Facts facts;
    facts.client_ip = parse_ip("192.0.2.7");
    facts.helo = "mx.example.com";
    facts.sender = "a@elsewhere.example";
    facts.spf = session.get();
    for (const auto& [name, value] : message.fields) {
        if (name == "From") facts.from.add_field(value);
    }
    const policy::SpfAnswer* spf = when_known<policy::SpfAnswer>(
        loop, woken, [&] { return session->spf({facts.client_ip, facts.helo, facts.sender}); });
    ASSERT_TRUE(spf);
    EXPECT_EQ(spf->result, "pass");
    EXPECT_EQ(spf->domain, "elsewhere.example");

    std::unique_ptr<milter::MessageStream> stream;
    bool fed = false;
    loop.post([&] {
        stream = session->begin_message(facts);
        for (const auto& [name, value] : message.fields) stream->header(name, value);
        stream->end_of_headers();
        stream->body(message.body);
        fed = true;
    });
    loop.run_until([&] { return fed; });
    ASSERT_TRUE(stream);
    const policy::DkimAnswer* dkim = when_known<policy::DkimAnswer>(loop, woken, [&] { return stream->dkim(); });
    ASSERT_TRUE(dkim);
    EXPECT_EQ(dkim->result, "pass");   // the key came from the forwarder
    EXPECT_EQ(dkim->domain, "test.ex");

    // DKIM passed for test.ex, SPF for elsewhere.example: neither aligns.
    const policy::DmarcAnswer* dmarc = when_known<policy::DmarcAnswer>(loop, woken, [&] { return stream->dmarc(); });
    ASSERT_TRUE(dmarc);
    EXPECT_EQ(dmarc->result, "fail");
    EXPECT_EQ(dmarc->domain, "example.com");
    EXPECT_EQ(dmarc->policy, "reject");   // the record came from the forwarder

    // libopendkim's dkim_init() calls res_init() once per process (it fills
    // the C library's global resolver settings from /etc/resolv.conf).
    // That sends nothing; every query went to the forwarder.
    std::vector<std::string> seen = take_calls();
    std::erase(seen, "res_init");
    EXPECT_EQ(seen, std::vector<std::string>{});
}

}  // namespace
}  // namespace portcullis
