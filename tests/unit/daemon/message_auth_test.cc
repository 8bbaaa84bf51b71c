/*
 * message_auth_test.cc: a message's signature check on the worker pool
 * (daemon/message_auth.h) is dropped, not run, when its stream is gone
 * before a worker takes it (the MTA aborted, the client left): the
 * test holds every worker busy, queues the check of dkimpy's RSA-signed
 * message, drops the stream, lets the workers go, and sees that the key
 * was never parsed (dkim::keys_parsed()).  The same message checked with
 * its stream kept then parses the key and passes, so the count could
 * have moved (so the test runs once a process, as ctest runs it: a
 * repeat finds the key parsed).  The key comes from a test unbound
 * through the session's dns::Lookups, as in the daemon.
 */
#include "daemon/message_auth.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <latch>
#include <mutex>

#include "checks/dkim.h"
#include "support/mail_message.h"
#include "support/unbound_server.h"
#include "util/event_loop.h"
#include "util/worker_pool.h"

namespace portcullis::daemon {
namespace {

using namespace std::chrono_literals;

/* dkimpy's file NAME without its last line end. */
std::string dkimpy_file(const std::string& name) {
    std::string content = test_support::dkimpy_data(name);
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
    return content;
}

/* Every thread of POOL kept in a job of ours until release() (or the
 * end of the test), so what is submitted meanwhile waits in the queue. */
class HeldPool {
public:
    explicit HeldPool(WorkerPool& pool) : held_(std::make_shared<Held>()) {
        for (unsigned i = 0; i < pool.size(); ++i) {
            pool.submit([held = held_] {
                std::unique_lock lock(held->mutex);
                ++held->running;
                held->changed.notify_all();
                held->changed.wait(lock, [&] { return held->released; });
            });
        }
        std::unique_lock lock(held_->mutex);
        held_->changed.wait(lock, [&] { return held_->running == pool.size(); });
    }
    ~HeldPool() { release(); }
    HeldPool(const HeldPool&) = delete;
    HeldPool& operator=(const HeldPool&) = delete;

    void release() {
        const std::lock_guard lock(held_->mutex);
        held_->released = true;
        held_->changed.notify_all();
    }

private:
    struct Held {
        std::mutex mutex;
        std::condition_variable changed;
        unsigned running = 0;
        bool released = false;
    };
    std::shared_ptr<Held> held_;
};

/* Returns once every job POOL had queued has run: a job on each thread
 * at once, queued after them, can only start when those are done. */
void drain(WorkerPool& pool) {
    const auto all = std::make_shared<std::latch>(pool.size() + 1);
    for (unsigned i = 0; i < pool.size(); ++i) pool.submit([all] { all->arrive_and_wait(); });
    all->arrive_and_wait();
}

class SignatureCheck : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new test_support::UnboundServer({kKey + ". TXT \"" + dkimpy_file("test.txt") + "\""});
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }

    /* A stream of the signed message, fed whole on the loop, its key's
     * answer come. */
    std::unique_ptr<milter::MessageStream> fed_stream() {
        AuthSettings settings;
        settings.dkim = true;
        auto stream = begin_message_stream(facts_, lookups_, nullptr, settings, [this] { woken_ = true; });
        on_loop([&] {
            for (const auto& [name, value] : message_.fields) stream->header(name, value);
            stream->end_of_headers();
            stream->body(message_.body);
        });
        serve_until([&] { return lookups_.find(kKey, dns::RecordType::txt, dns::Purpose::record) != nullptr; });
        return stream;
    }

    /* STREAM's dkim(), asked on the loop (which the check needs, to come back to). */
    const policy::DkimAnswer* dkim(milter::MessageStream& stream) {
        const policy::DkimAnswer* answer = nullptr;
        on_loop([&] { answer = stream.dkim(); });
        return answer;
    }

    void on_loop(const std::function<void()>& work) {
        bool done = false;
        loop_.defer([&] {
            work();
            done = true;
        });
        loop_.run_until([&] { return done; });
    }

    /* Serves the loop until DONE holds, asked after each wake (at most 5 s). */
    void serve_until(const std::function<bool()>& done) {
        bool expired = false;
        Timer watchdog(loop_, [&expired] { expired = true; });
        watchdog.arm_after(5s);
        for (;;) {
            bool holds = false;
            on_loop([&] { holds = done(); });
            if (holds || expired) break;
            woken_ = false;
            loop_.run_until([&] { return woken_ || expired; });
        }
        ASSERT_FALSE(expired) << "no answer within 5 s";
    }

    static inline const std::string kKey = "test._domainkey.football.example.com";
    static test_support::UnboundServer* server_;
    const test_support::MailMessage message_ = test_support::split_message(dkimpy_file("rfc6376.signed.rsa.msg"));
    EventLoop loop_;
    bool woken_ = false;
    dns::Lookups lookups_{std::make_shared<dns::Resolver>(std::vector<std::string>{server_->forwarder()}, 2s),
                          [this] { woken_ = true; }};
    policy::Facts facts_;
};

test_support::UnboundServer* SignatureCheck::server_ = nullptr;

TEST_F(SignatureCheck, OneWhoseStreamIsGoneIsNeverRun) {
    // As in the daemon, libopendkim (and OpenSSL) start before the pool:
    // at exit its threads then end, and free OpenSSL's state for each,
    // before OpenSSL's own cleanup (LeakSanitizer saw 904 bytes otherwise).
    dkim::Verifier starts_the_library;
    const uint64_t parsed_before = dkim::keys_parsed();
    {
        HeldPool held(signature_workers());
        auto stream = fed_stream();
        EXPECT_EQ(dkim(*stream), nullptr) << "the check did not wait for a worker";
        stream.reset();
        held.release();
        drain(signature_workers());
    }
    EXPECT_EQ(dkim::keys_parsed(), parsed_before) << "the check ran with no one to read its verdict";

    // Kept, the same check parses the key: the count above could move.
    auto stream = fed_stream();
    serve_until([&] { return dkim(*stream) != nullptr; });
    ASSERT_NE(dkim(*stream), nullptr);
    EXPECT_EQ(dkim(*stream)->result, "pass");
    EXPECT_EQ(dkim::keys_parsed(), parsed_before + 1) << "the key was parsed before this test: it cannot tell";
}

}  // namespace
}  // namespace portcullis::daemon
