/*
 * milter_connection_fuzz.cc: the fuzz target for one milter connection
 * (milter/connection.h) fed any byte stream, as a peer of the milter
 * socket may send it.
 *
 * A Connection on an event loop, over a socketpair whose other end the
 * target plays (support/connection_driver.h), under a policy with a rule
 * that can answer at every stage, header fields and the body read, and
 * greylist and rate limit rules; the store (support/held_stateful.h)
 * answers during the call, later on the loop, or only after the peer
 * hung up.  The input's hash picks that, the connection's read buffer (7
 * bytes to 64 KiB; 4 KiB at least for an input over 8 KiB), and the one
 * to sixteen pieces the input is written in, each read before the next
 * is written; then the peer hangs up.  What must hold:
 *   - no crash, leak or sanitizer report, and no hang: the connection
 *     settles after every piece, closes once and is destroyed;
 *   - what it wrote is replies only, each in its place
 *     (support/milter_packets.h, reply_errors()): one option negotiation
 *     reply first, agreeing to nothing the peer did not offer; one final
 *     reply to each event that needs one, none to a no-reply event, header
 *     changes only before the reply to an end of message;
 *   - when it neither ended the connection itself nor waits for the store,
 *     every event it was sent has its reply.
 * Deadlines are an hour: no timer fires while it runs.
 */
#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_target.h"
#include "milter/connection.h"
#include "milter/engine.h"
#include "policy/loader.h"
#include "support/connection_driver.h"
#include "support/held_stateful.h"
#include "support/milter_packets.h"
#include "util/log.h"

namespace portcullis::fuzz {
namespace {

using test_support::HeldStateful;

constexpr const char* kPolicy =
    "list trusted ip { 192.0.2.0/24 }\n"
    "on connect {\n"
    "    accept if client.ip in trusted\n"
    "    reject 554 5.7.1 \"No mail from ${client.host}\" if client.host == \"blocked.example\"\n"
    "}\n"
    "on helo {\n"
    "    tempfail 450 4.7.1 \"Try later, ${helo}\\nSecond line\" if helo == \"slow.example\"\n"
    "    add-header X-Helo \"${helo}\"\n"
    "}\n"
    "on mail {\n"
    "    discard if sender.domain == \"discard.example\"\n"
    "    accept if sender.domain == \"accept.example\"\n"
    "    ratelimit sender.domain 5/1m if sender != \"\"\n"
    "}\n"
    "on rcpt {\n"
    "    greylist delay 5m window 2d expire 35d awl 5 if rcpt.domain == \"grey.example\"\n"
    "    ratelimit client.ip 3/1m\n"
    "    reject 550 5.1.1 \"No mail for ${rcpt}, 100% sure\" if rcpt.local == \"nobody\"\n"
    "}\n"
    "on eom {\n"
    "    quarantine \"Held: ${header(\\\"Subject\\\")}\" if header(\"Subject\") == \"hold\"\n"
    "    reject 552 5.3.4 \"Too big\" if size > 2000\n"
    "    add-header X-Size \"${size}\"\n"
    "}\n";

struct Fixed {
    EventLoop loop;
    std::shared_ptr<HeldStateful> stateful = std::make_shared<HeldStateful>(HeldStateful::Mode::now, answer);

    Fixed() {
        log::log_to_stderr(log::Level::error);   // every refusal logs a warning
        auto result = policy::parse_policy(kPolicy, "fuzz.rules", ".");
        fuzz_require(result.ok(), "the target's policy loads");
        auto snapshot = std::make_shared<milter::Snapshot>(*milter::make_snapshot(result.policy, false));
        snapshot->stateful = stateful;
        milter::publish(std::move(snapshot));
    }

    /* Mostly pass; some refusals, and a store that is down: by the count
     * of questions in the run, so that a run is the same every time. */
    static inline unsigned questions = 0;
    static policy::StatefulAnswer answer(bool greylist) {
        switch (++questions % 5) {
            case 0: return {policy::StatefulAnswer::Kind::refuse, greylist ? 300u : 0u, "fuzz"};
            case 1: return {policy::StatefulAnswer::Kind::unavailable, 0, "fuzz"};
            default: return HeldStateful::pass(greylist);
        }
    }
};

Fixed& fixed() {
    static Fixed instance;
    return instance;
}

void run(std::string_view input) {
    Fixed& f = fixed();
    std::mt19937_64 random(hash_of(input));
    const auto mode = static_cast<HeldStateful::Mode>(random() % 3);
    f.stateful->set_mode(mode);
    Fixed::questions = 0;
    // Tiny read buffers now and then, and only for small inputs: 150 KiB 7
    // bytes a read would take the replay test minutes.
    static constexpr size_t kReadBuffers[] = {4096, 65536, 4096, 65536, 4096, 65536, 7, 64};
    const size_t choices = input.size() > 8192 ? 6 : 8;
    const milter::EngineSettings settings{"fuzz", std::chrono::hours(1), std::chrono::hours(1), 1, 0};
    test_support::ConnectionDriver driver(f.loop, settings, kReadBuffers[random() % choices]);

    // One to four pieces (now and then sixteen), cut where the hash says.
    const size_t pieces = random() % 8 == 0 ? 16 : 1 + random() % 4;
    std::vector<size_t> cuts{0, input.size()};
    for (size_t i = 1; i < pieces; ++i) cuts.push_back(input.empty() ? 0 : random() % input.size());
    std::sort(cuts.begin(), cuts.end());
    for (size_t i = 0; i + 1 < cuts.size() && !driver.closed(); ++i) {
        driver.send_all(input.substr(cuts[i], cuts[i + 1] - cuts[i]));
        driver.settle();
    }
    const bool ended_itself = driver.closed();
    const bool waiting = f.stateful->waiting() > 0;
    const std::string replies = driver.output();
    driver.hang_up();
    driver.settle();
    // The store answers what the gone session asked.
    while (f.stateful->waiting() > 0) {
        f.loop.post([&f] { f.stateful->answer_oldest(); });
        driver.settle();
    }
    fuzz_require(driver.gone(), "the connection is destroyed once the peer hung up");
    fuzz_require(driver.faults().empty(), "the loop settles, the connection closes once");

    size_t used = 0;
    const auto sent = test_support::raw_packets(input, &used);
    const auto answered = test_support::raw_packets(replies, &used);
    fuzz_require(used == replies.size(), "the replies are whole packets");
    const std::string errors = test_support::reply_errors(sent, answered, !ended_itself && !waiting);
    if (!errors.empty()) std::fprintf(stderr, "%s", errors.c_str());
    fuzz_require(errors.empty(), "the replies are in their places");
}

}  // namespace
}  // namespace portcullis::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    portcullis::fuzz::run(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
