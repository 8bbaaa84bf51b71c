/*
 * redis_link_test.cc: one RedisLink on the test's own event loop, against
 * a Redis the test plays (support/fake_redis.h) for the edges, and a real
 * redis-server for a long pipeline: commands pipelined and answered in
 * order, AUTH and SELECT first on every connection, replies in pieces,
 * each command's own deadline, a server that stops answering, refused
 * connects and the second without retries, a server that closes the
 * connection, garbled and unasked-for replies, replies past the parser's
 * limits (and a loop that keeps working while one streams in), the
 * health reports, and the callbacks: never inside command(), never after
 * the link is gone.
 *
 * Every fixture test ends by checking that no callback came from inside
 * command().  Deadlines are judged on the steady clock the link uses:
 * never before the timeout, and within kMargin (the scheduler's share on
 * a loaded machine) after it.
 */
#include "store/redis_link.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/fake_redis.h"
#include "support/loop_answer.h"
#include "store/store.h"
#include "support/redis_server.h"

namespace portcullis::store {
namespace {

using namespace std::chrono_literals;
using test_support::FakeRedis;
using Clock = std::chrono::steady_clock;
using Command = std::vector<std::string>;

constexpr Millis kTimeout = 200ms;
constexpr Millis kMargin = 100ms;

Millis since(Clock::time_point start) { return std::chrono::duration_cast<Millis>(Clock::now() - start); }

/* A reply or a failure as one line: "status:OK", "integer:3", "error:...". */
std::string shown(const LinkResult& result) {
    if (!result.ok) return "failed:" + result.error;
    const RedisReply& reply = result.reply;
    switch (reply.type) {
        case RedisReply::Type::string: return "string:" + reply.text;
        case RedisReply::Type::status: return "status:" + reply.text;
        case RedisReply::Type::error: return "error:" + reply.text;
        case RedisReply::Type::integer: return "integer:" + std::to_string(reply.integer);
        case RedisReply::Type::nil: return "nil";
        case RedisReply::Type::array: return "array of " + std::to_string(reply.elements.size());
    }
    return "?";
}

/* What the callbacks of a test's commands got, in the order they came. */
struct Answer {
    std::string tag;
    std::string result;            // shown()
    Clock::time_point at;
};

/* A server on a thread of its own, for more than the fake's socket takes
 * at once: it takes one connection, reads the command, and answers with
 * a bulk string announced as 1 GB, streamed until the client hangs up
 * (or 2 * kMaxReplyBytes are out). */
class StreamingServer {
public:
    StreamingServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address = test_support::loopback(0);
        socklen_t length = sizeof address;
        if (listener_ < 0 || bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0 || listen(listener_, 1) != 0) {
            throw std::runtime_error("streaming server: cannot listen");
        }
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] {
            const int fd = accept(listener_, nullptr, nullptr);
            if (fd < 0) return;
            char command[4096];
            (void)recv(fd, command, sizeof command, 0);
            const std::string header = "$1000000000\r\n";
            (void)send(fd, header.data(), header.size(), MSG_NOSIGNAL);
            const std::string block(1 << 20, 'b');
            for (size_t out = 0; out < 2 * kMaxReplyBytes; out += block.size()) {
                if (send(fd, block.data(), block.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(block.size())) break;
            }
            ::close(fd);
        });
    }
    ~StreamingServer() {
        ::shutdown(listener_, SHUT_RDWR);   // an accept() still waiting returns
        thread_.join();
        ::close(listener_);
    }
    LinkAddress address() const { return *numeric_address("127.0.0.1", port_); }

private:
    int listener_ = -1;
    int port_ = 0;
    std::thread thread_;
};

class RedisLinkTest : public ::testing::Test {
protected:
    void TearDown() override { EXPECT_EQ(called_inside_, 0) << "a callback came from inside command()"; }

    std::unique_ptr<RedisLink> link(LinkAddress address, Millis timeout = kTimeout) {
        return std::make_unique<RedisLink>(loop_, std::move(address), timeout,
                                           [this](bool ok, const std::string& error) {
                                               health_.emplace_back(ok, error);
                                           });
    }

    /* Sends ARGS on LINK; its answer goes to answers_ under TAG. */
    void send(RedisLink& link, const std::string& tag, const Command& args) {
        const std::vector<std::string_view> views(args.begin(), args.end());
        inside_command_ = true;
        link.command(views, [this, tag](LinkResult result) {
            if (inside_command_) ++called_inside_;
            answers_.push_back({tag, shown(result), Clock::now()});
        });
        inside_command_ = false;
    }

    /* Serves the loop until CONDITION holds (false after 5 s). */
    bool serve_until(const std::function<bool()>& condition) {
        bool expired = false;
        Timer watchdog(loop_, [&expired] { expired = true; });
        watchdog.arm_after(5s);
        loop_.run_until([&] { return expired || condition(); });
        return condition();
    }
    bool serve_until_answered(size_t count) {
        return serve_until([this, count] { return answers_.size() >= count; });
    }

    /* Sends ARGS on LINK as a command sent again for a call that began
     * SPENT ago. */
    void send_again(RedisLink& link, const std::string& tag, const Command& args, Millis spent) {
        const std::vector<std::string_view> views(args.begin(), args.end());
        link.command(views, [this, tag](LinkResult result) { answers_.push_back({tag, shown(result), Clock::now()}); },
                     Clock::now() - spent);
    }

    /* The fake answers each command with its key, DELAY after it came. */
    void answer_keys_after(Millis delay) {
        fake_.on_command([this, delay](FakeRedis::Peer& peer, const Command& command) {
            later_.push_back(
                std::make_unique<Timer>(loop_, [&peer, key = command[1]] { peer.send("+" + key + "\r\n"); }));
            later_.back()->arm_after(delay);
        });
    }

    /* The fake's handler that answers every command but HOLD. */
    static void answer_all_but_hold(FakeRedis::Peer& peer, const Command& command) {
        if (command[0] != "HOLD") FakeRedis::answer_ok(peer, command);
    }

    /* A command on LINK now is answered, on the fake's connection number
     * CONNECTIONS (counted from 1). */
    void expect_answered_on_connection(RedisLink& link, size_t connections) {
        const size_t before = answers_.size();
        send(link, "next", {"GET", "k"});
        ASSERT_TRUE(serve_until_answered(before + 1));
        EXPECT_EQ(answers_.back().result, "status:OK");
        EXPECT_EQ(fake_.accepted(), connections);
    }

    /* A command on LINK fails with WHY, the link's only health report. */
    void expect_a_command_fails_the_link(RedisLink& link, const std::string& why) {
        send(link, "get", {"GET", "k"});
        ASSERT_TRUE(serve_until_answered(1));
        EXPECT_EQ(answers_[0].result, "failed:" + why);
        EXPECT_EQ(health_, (std::vector<std::pair<bool, std::string>>{{false, why}}));
    }

    /* The results of the answers, in the order they came. */
    std::vector<std::string> results() const {
        std::vector<std::string> all;
        for (const auto& answer : answers_) all.push_back(answer.result);
        return all;
    }
    /* The tags of the answers, in the order they came. */
    std::vector<std::string> tags() const {
        std::vector<std::string> all;
        for (const auto& answer : answers_) all.push_back(answer.tag);
        return all;
    }

    EventLoop loop_;
    FakeRedis fake_{loop_};
    std::vector<std::unique_ptr<Timer>> later_;   // the fake's answers to come
    std::vector<Answer> answers_;
    std::vector<std::pair<bool, std::string>> health_;
    bool inside_command_ = false;
    int called_inside_ = 0;
};

TEST_F(RedisLinkTest, CommandsArePipelinedAndAnsweredInOrder) {
    constexpr int kCommands = 50;
    // The fake answers nothing until every command is in, then all at once.
    fake_.on_command([&](FakeRedis::Peer& peer, const Command&) {
        if (fake_.commands()[peer.number()].size() < kCommands) return;
        std::string replies;
        for (const auto& command : fake_.commands()[peer.number()]) replies += ":" + command[2] + "\r\n";
        peer.send(replies);
    });
    auto redis = link(fake_.address());
    for (int i = 0; i < kCommands; ++i) send(*redis, std::to_string(i), {"INCRBY", "k", std::to_string(i * 7)});
    ASSERT_TRUE(serve_until_answered(kCommands));
    ASSERT_EQ(fake_.accepted(), 1u);
    ASSERT_EQ(fake_.commands()[0].size(), static_cast<size_t>(kCommands));
    for (int i = 0; i < kCommands; ++i) {
        EXPECT_EQ(fake_.commands()[0][i], (Command{"INCRBY", "k", std::to_string(i * 7)}));
        EXPECT_EQ(answers_[i].tag, std::to_string(i));
        EXPECT_EQ(answers_[i].result, "integer:" + std::to_string(i * 7));
    }
}

TEST_F(RedisLinkTest, AuthAndSelectGoFirstOnEveryConnection) {
    fake_.on_command(answer_all_but_hold);
    auto redis = link(fake_.address("alice", "pw", 3));
    send(*redis, "get", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    EXPECT_EQ(answers_[0].result, "status:OK");
    EXPECT_EQ(fake_.commands()[0], (std::vector<Command>{{"AUTH", "alice", "pw"}, {"SELECT", "3"}, {"GET", "k"}}));

    // A new connection says them again.
    send(*redis, "hold", {"HOLD"});
    ASSERT_TRUE(serve_until([&] { return fake_.commands()[0].size() == 4; }));
    fake_.close_all(false);
    ASSERT_TRUE(serve_until_answered(2));
    EXPECT_EQ(answers_[1].result, "failed:connection closed by the server");
    send(*redis, "again", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(3));
    EXPECT_EQ(answers_[2].result, "status:OK");
    ASSERT_EQ(fake_.accepted(), 2u);
    EXPECT_EQ(fake_.commands()[1], (std::vector<Command>{{"AUTH", "alice", "pw"}, {"SELECT", "3"}, {"GET", "k"}}));
}

TEST_F(RedisLinkTest, APasswordAloneAndDatabaseZero) {
    auto redis = link(fake_.address("", "secret", 0));
    send(*redis, "get", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    EXPECT_EQ(fake_.commands()[0], (std::vector<Command>{{"AUTH", "secret"}, {"GET", "k"}}));

    auto plain = link(fake_.address());
    send(*plain, "plain", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(2));
    EXPECT_EQ(fake_.commands()[1], (std::vector<Command>{{"GET", "k"}}));
}

TEST_F(RedisLinkTest, ARefusedAuthFailsTheCommandsBehindItAndHoldsOffRetries) {
    fake_.on_command([](FakeRedis::Peer& peer, const Command& command) {
        if (command[0] == "AUTH") peer.send("-WRONGPASS invalid username-password pair\r\n");
        else FakeRedis::answer_ok(peer, command);
    });
    auto redis = link(fake_.address("", "wrong"));
    send(*redis, "first", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    const std::string refused = "failed:AUTH refused: WRONGPASS invalid username-password pair";
    EXPECT_EQ(answers_[0].result, refused);
    const auto failed_at = answers_[0].at;
    send(*redis, "second", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(2));
    if (answers_[1].at - failed_at < 800ms) {   // within the second without retries
        EXPECT_EQ(answers_[1].result, refused);
        EXPECT_EQ(fake_.accepted(), 1u);
    }
    ASSERT_FALSE(health_.empty());
    EXPECT_EQ(health_.back(), std::make_pair(false, refused.substr(7)));
}

// A server that refuses the password, or the database, is down each time
// the link tries it, never up in between (the log would say "reachable
// again" and "unreachable" every second).
TEST_F(RedisLinkTest, ARefusedAuthOrSelectNeverReportsTheServerUp) {
    const std::string wrong_password = "AUTH refused: WRONGPASS invalid username-password pair";
    const std::string no_database = "SELECT 99 refused: ERR DB index is out of range";
    fake_.on_command([](FakeRedis::Peer& peer, const Command& command) {
        if (command[0] == "AUTH" && command[1] == "wrong") peer.send("-WRONGPASS invalid username-password pair\r\n");
        else if (command[0] == "SELECT") peer.send("-ERR DB index is out of range\r\n");
        else FakeRedis::answer_ok(peer, command);
    });
    auto refused_auth = link(fake_.address("", "wrong"));
    auto refused_select = link(fake_.address("", "right", 99));
    for (int attempt = 0; attempt < 2; ++attempt) {
        const size_t before = answers_.size();
        send(*refused_auth, "auth", {"GET", "k"});
        send(*refused_select, "select", {"GET", "k"});
        ASSERT_TRUE(serve_until_answered(before + 2));
        // Past the second without retries: the next command connects again.
        test_support::serve_for(loop_, 1050ms);
    }
    EXPECT_EQ(fake_.accepted(), 4u) << "each link tried twice";
    // The two links' reports, in either order.
    std::sort(health_.begin(), health_.end());
    const std::vector<std::pair<bool, std::string>> expected{
        {false, wrong_password}, {false, wrong_password}, {false, no_database}, {false, no_database}};
    EXPECT_EQ(health_, expected);
}

TEST_F(RedisLinkTest, ASilentServerFailsEveryWaitingCommandAtTheFirstOnesDeadline) {
    fake_.on_command([](FakeRedis::Peer&, const Command&) {});
    auto redis = link(fake_.address());
    const auto start = Clock::now();
    send(*redis, "a", {"GET", "a"});
    test_support::serve_for(loop_, 50ms);
    send(*redis, "b", {"GET", "b"});
    ASSERT_TRUE(serve_until_answered(2));
    const std::string timed_out = "failed:no reply within 200ms";
    EXPECT_EQ(results(), (std::vector<std::string>{timed_out, timed_out}));
    EXPECT_GE(answers_[0].at - start, kTimeout);
    EXPECT_LE(answers_[0].at - start, kTimeout + kMargin);
    EXPECT_LE(answers_[1].at - answers_[0].at, 10ms) << "the link fails as a whole";
    EXPECT_EQ(health_, (std::vector<std::pair<bool, std::string>>{{false, "no reply within 200ms"}}));

    // The next command connects again, and that server answers.
    fake_.on_command(FakeRedis::answer_ok);
    expect_answered_on_connection(*redis, 2);
    EXPECT_EQ(health_.back(), std::make_pair(true, std::string()));
}

TEST_F(RedisLinkTest, EachCommandHasItsOwnDeadlineFromWhenItWasSent) {
    // A 1 s timeout: A is sent at 0 and answered at 600 ms, B sent at 500 ms
    // and answered at 1200 ms, after A's deadline, before its own.
    std::vector<FakeRedis::Peer*> held;
    fake_.on_command([&](FakeRedis::Peer& peer, const Command&) { held.push_back(&peer); });
    auto redis = link(fake_.address(), 1s);
    Timer answer_a(loop_, [&] { held.at(0)->send("+A\r\n"); });
    Timer answer_b(loop_, [&] { held.at(1)->send("+B\r\n"); });
    const auto start = Clock::now();
    answer_a.arm(start + 600ms);
    answer_b.arm(start + 1200ms);
    send(*redis, "a", {"GET", "a"});
    test_support::serve_for(loop_, 500ms);
    send(*redis, "b", {"GET", "b"});
    ASSERT_TRUE(serve_until_answered(2));
    EXPECT_EQ(results(), (std::vector<std::string>{"status:A", "status:B"}));
    EXPECT_GE(answers_[1].at - start, 1200ms);
}

TEST_F(RedisLinkTest, ACommandShortOfTimeFailsAloneAndTheFreshOnesBehindItAreAnswered) {
    answer_keys_after(40ms);
    auto redis = link(fake_.address());
    // An EVAL after NOSCRIPT, a cluster's retry: 180 ms of the call's 200
    // spent; and one whose time was up before it was sent.
    send_again(*redis, "retried", {"EVAL", "retried"}, 180ms);
    send_again(*redis, "spent", {"EVAL", "spent"}, 250ms);
    send(*redis, "fresh", {"EVALSHA", "fresh"});
    ASSERT_TRUE(serve_until_answered(3));
    const std::string timed_out = "failed:no reply within 200ms";
    EXPECT_EQ(tags(), (std::vector<std::string>{"spent", "retried", "fresh"}));
    EXPECT_EQ(results(), (std::vector<std::string>{timed_out, timed_out, "status:fresh"}));
    // The late replies were dropped in their turn: the next command gets its own.
    send(*redis, "next", {"GET", "next"});
    ASSERT_TRUE(serve_until_answered(4));
    EXPECT_EQ(answers_[3].result, "status:next");
    EXPECT_EQ(fake_.accepted(), 1u) << "the connection was closed";
    for (const auto& report : health_) EXPECT_EQ(report, std::make_pair(true, std::string())) << "nothing failed";
}

TEST_F(RedisLinkTest, ASilentServerFailsACommandShortOfTimeFirstThenTheLink) {
    fake_.on_command([](FakeRedis::Peer&, const Command&) {});
    auto redis = link(fake_.address());
    send(*redis, "fresh", {"GET", "fresh"});
    send_again(*redis, "retried", {"GET", "retried"}, 150ms);
    send(*redis, "fresh too", {"GET", "fresh too"});
    ASSERT_TRUE(serve_until_answered(3));
    const std::string timed_out = "failed:no reply within 200ms";
    EXPECT_EQ(tags(), (std::vector<std::string>{"retried", "fresh", "fresh too"}));
    EXPECT_EQ(results(), (std::vector<std::string>{timed_out, timed_out, timed_out}));
    EXPECT_EQ(health_, (std::vector<std::pair<bool, std::string>>{{false, "no reply within 200ms"}}))
        << "one failure: the link's";
}

TEST_F(RedisLinkTest, ARefusedConnectFailsAtOnceForASecondThenTheLinkConnectsAgain) {
    fake_.stop_listening();
    auto redis = link(fake_.address());
    const auto start = Clock::now();
    send(*redis, "refused", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    const std::string refused = "failed:connect: Connection refused";
    EXPECT_EQ(answers_[0].result, refused);
    EXPECT_LT(answers_[0].at - start, kTimeout) << "a refused connect waits for no timeout";
    EXPECT_EQ(health_, (std::vector<std::pair<bool, std::string>>{{false, "connect: Connection refused"}}));

    // The server is back, but for a second the link does not try.
    fake_.listen_again();
    const auto again = Clock::now();
    send(*redis, "held off", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(2));
    if (again - answers_[0].at < 800ms) {
        EXPECT_EQ(answers_[1].result, refused);
        EXPECT_LT(answers_[1].at - again, 50ms);
        EXPECT_EQ(fake_.accepted(), 0u);
    }
    EXPECT_EQ(health_.size(), 1u) << "still failing is no news";

    test_support::serve_for(loop_, std::max(Millis(0), 1050ms - since(answers_[0].at)));
    expect_answered_on_connection(*redis, 1);
    EXPECT_EQ(health_.back(), std::make_pair(true, std::string()));
}

TEST_F(RedisLinkTest, AServerThatClosesFailsWhatWaitsAndTheNextCommandReconnects) {
    fake_.on_command(answer_all_but_hold);
    auto redis = link(fake_.address());
    send(*redis, "hold", {"HOLD"});
    ASSERT_TRUE(serve_until([&] { return fake_.accepted() == 1 && !fake_.commands()[0].empty(); }));
    fake_.close_all(false);
    ASSERT_TRUE(serve_until_answered(1));
    EXPECT_EQ(answers_[0].result, "failed:connection closed by the server");
    expect_answered_on_connection(*redis, 2);
}

TEST_F(RedisLinkTest, AnIdleConnectionClosedByTheServerIsQuietlyReplaced) {
    auto redis = link(fake_.address());
    send(*redis, "first", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    EXPECT_EQ(answers_[0].result, "status:OK");
    // As Redis closing an idle client, or restarting: the link closes its end.
    fake_.peer(0).hang_up();
    ASSERT_TRUE(serve_until([&] { return !fake_.peer(0).open(); }));
    expect_answered_on_connection(*redis, 2);
    ASSERT_FALSE(health_.empty());
    for (const auto& report : health_) EXPECT_EQ(report, std::make_pair(true, std::string())) << "nothing failed";
}

TEST_F(RedisLinkTest, AReplyIsGivenOnlyOnceItsLastByteCame) {
    // Three pipelined replies, written a byte per loop turn.
    const std::string replies = "$12\r\nhello\r\nworld\r\n*2\r\n:1\r\n$-1\r\n-ERR no\r\n";
    const std::vector<size_t> ends{19, 32, 41};
    ASSERT_EQ(ends.back(), replies.size());
    FakeRedis::Peer* peer = nullptr;
    fake_.on_command([&](FakeRedis::Peer& from, const Command&) { peer = &from; });
    auto redis = link(fake_.address());
    size_t written = 0;
    std::vector<size_t> written_at_answer;
    for (const char* key : {"a", "b", "c"}) {
        send(*redis, key, {"GET", key});
        written_at_answer.push_back(0);
    }
    std::unique_ptr<Timer> drip;
    drip = std::make_unique<Timer>(loop_, [&] {
        for (size_t i = 0; i < answers_.size(); ++i) {
            if (written_at_answer[i] == 0) written_at_answer[i] = written;
        }
        if (written == replies.size()) return;
        peer->send(replies.substr(written++, 1));
        drip->arm_after(0ms);
    });
    ASSERT_TRUE(serve_until([&] { return fake_.commands().size() == 1 && fake_.commands()[0].size() == 3; }));
    drip->arm_after(0ms);
    ASSERT_TRUE(serve_until_answered(3));
    EXPECT_EQ(results(), (std::vector<std::string>{"string:hello\r\nworld", "array of 2", "error:ERR no"}));
    for (size_t i = 0; i < ends.size(); ++i) {
        // Seen by the drip after the answer: at least the reply's bytes were out.
        if (written_at_answer[i] != 0) {
            EXPECT_GE(written_at_answer[i], ends[i]) << "reply " << i;
        }
    }
}

TEST_F(RedisLinkTest, AGarbledReplyFailsEveryWaitingCommand) {
    fake_.on_command([&](FakeRedis::Peer& peer, const Command& command) {
        if (command[1] == "b") peer.send("+OK\r\n!garbage\r\n");
    });
    auto redis = link(fake_.address());
    send(*redis, "a", {"GET", "a"});
    send(*redis, "b", {"GET", "b"});
    send(*redis, "c", {"GET", "c"});
    ASSERT_TRUE(serve_until_answered(3));
    EXPECT_EQ(answers_[0].result, "status:OK");
    for (size_t i = 1; i < 3; ++i) {
        EXPECT_TRUE(answers_[i].result.starts_with("failed:garbled reply: ")) << answers_[i].result;
    }
    fake_.on_command(FakeRedis::answer_ok);
    expect_answered_on_connection(*redis, 2);
}

TEST_F(RedisLinkTest, AReplyNobodyAskedForEndsTheConnection) {
    auto redis = link(fake_.address());
    send(*redis, "first", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    fake_.peer(0).send("+SURPRISE\r\n");
    ASSERT_TRUE(serve_until([&] { return health_.size() == 2; }));
    EXPECT_EQ(health_.back(), std::make_pair(false, std::string("a reply nobody asked for")));
    expect_answered_on_connection(*redis, 2);
}

TEST_F(RedisLinkTest, AReplyPastTheLimitFailsTheLinkAsItComesIn) {
    StreamingServer server;
    auto redis = link(server.address(), 30s);
    expect_a_command_fails_the_link(*redis, "a reply longer than " + std::to_string(kMaxReplyBytes) + " bytes");
}

TEST_F(RedisLinkTest, TheLoopRunsItsTimersWhileALongReplyComesIn) {
    // Two replies in the socket at once: a short one, then 256 KiB that
    // take many reads.  The first one's callback arms a timer due at once.
    const std::string value(256 * 1024, 'v');
    fake_.on_command([&](FakeRedis::Peer& peer, const Command&) {
        if (fake_.commands()[peer.number()].size() == 2) {
            peer.send("+first\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n");
        }
    });
    auto redis = link(fake_.address());
    std::vector<std::string> order;
    Timer other_work(loop_, [&] { order.push_back("timer"); });
    const std::string_view first[] = {"GET", "a"};
    redis->command(first, [&](LinkResult) {
        order.push_back("first");
        other_work.arm_after(0ms);
    });
    const std::string_view second[] = {"GET", "b"};
    redis->command(second, [&](LinkResult result) { order.push_back(result.ok ? "long" : result.error); });
    ASSERT_TRUE(serve_until([&] { return order.size() == 3; }));
    EXPECT_EQ(order, (std::vector<std::string>{"first", "timer", "long"}));
}

TEST_F(RedisLinkTest, AnArrayOfTooManyElementsFailsTheLink) {
    fake_.on_command([](FakeRedis::Peer& peer, const Command&) { peer.send("*2000000000\r\n"); });
    auto redis = link(fake_.address());
    expect_a_command_fails_the_link(*redis, "a reply of more than " + std::to_string(kMaxReplyElements) + " elements");
}

// Every reply and every failure is reported (the store's ServerHealth
// makes one log line of each change, whichever loop's link saw it).
TEST_F(RedisLinkTest, HealthHearsEveryReplyAndEveryFailure) {
    fake_.on_command(answer_all_but_hold);
    auto redis = link(fake_.address());
    for (int i = 0; i < 3; ++i) send(*redis, "ok", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(3));
    send(*redis, "hold", {"HOLD"});
    ASSERT_TRUE(serve_until([&] { return fake_.commands()[0].size() == 4; }));
    fake_.close_all(true);
    ASSERT_TRUE(serve_until_answered(4));
    fake_.stop_listening();
    send(*redis, "refused", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(5));
    EXPECT_EQ(answers_[4].result, "failed:connect: Connection refused");
    fake_.listen_again();
    test_support::serve_for(loop_, std::max(Millis(0), 1050ms - since(answers_[4].at)));
    for (int i = 0; i < 3; ++i) send(*redis, "back", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(8));
    const auto ups = std::count(health_.begin(), health_.end(), std::make_pair(true, std::string()));
    EXPECT_EQ(ups, 6) << "a report per reply";
    std::vector<std::pair<bool, std::string>> changes;
    for (const auto& report : health_) {
        if (changes.empty() || changes.back().first != report.first) changes.push_back(report);
    }
    ASSERT_EQ(changes.size(), 3u) << "up, down, up again";
    EXPECT_TRUE(changes[0].first);
    EXPECT_FALSE(changes[1].first);
    EXPECT_EQ(changes[1].second, answers_[3].result.substr(7));
    EXPECT_TRUE(changes[2].first);
}

TEST_F(RedisLinkTest, ACommandOnAConnectionTheServerResetIsAnsweredLaterNotInside) {
    auto redis = link(fake_.address());
    send(*redis, "first", {"GET", "k"});
    ASSERT_TRUE(serve_until_answered(1));
    // The server is gone with an RST before the loop hears of it: the
    // commands that follow find the socket broken when they write.
    fake_.close_all(true);
    std::this_thread::sleep_for(20ms);
    send(*redis, "second", {"GET", "k"});
    send(*redis, "third", {"GET", "k"});
    EXPECT_EQ(answers_.size(), 1u) << "answered inside command()";
    ASSERT_TRUE(serve_until_answered(3));
    // Whatever the link makes of it, it answers each command once.
    EXPECT_EQ(answers_.size(), 3u);
}

TEST_F(RedisLinkTest, ADestroyedLinkCallsNothingBack) {
    fake_.on_command([](FakeRedis::Peer&, const Command&) {});
    auto redis = link(fake_.address());
    send(*redis, "waiting", {"GET", "k"});
    send(*redis, "waiting too", {"GET", "k"});
    ASSERT_TRUE(serve_until([&] { return fake_.accepted() == 1 && fake_.commands()[0].size() == 2; }));
    redis.reset();
    test_support::serve_for(loop_, kTimeout + kMargin);
    EXPECT_TRUE(answers_.empty());

    // Nor does one whose answer was due at once (a refused connect).
    fake_.stop_listening();
    auto refused = link(fake_.address());
    send(*refused, "refused", {"GET", "k"});
    refused.reset();
    test_support::serve_for(loop_, 50ms);
    EXPECT_TRUE(answers_.empty());
}

TEST_F(RedisLinkTest, ACallbackMayDestroyItsLink) {
    fake_.on_command([&](FakeRedis::Peer& peer, const Command&) {
        if (fake_.commands()[peer.number()].size() == 3) peer.send("+1\r\n+2\r\n+3\r\n");
    });
    auto redis = std::make_unique<RedisLink>(loop_, fake_.address(), kTimeout);
    std::vector<std::string> got;
    for (const char* key : {"a", "b", "c"}) {
        const std::string_view args[] = {"GET", key};
        redis->command(args, [&](LinkResult result) {
            got.push_back(shown(result));
            redis.reset();
        });
    }
    ASSERT_TRUE(serve_until([&] { return !redis; }));
    test_support::serve_for(loop_, 20ms);
    EXPECT_EQ(got, std::vector<std::string>{"status:1"});
}

TEST(RedisLinkOnARealServer, AThousandPipelinedCommandsAreAnsweredInOrder) {
    test_support::RedisServer server;
    EventLoop loop;
    RedisEndpoint endpoint;
    endpoint.host = "127.0.0.1";
    endpoint.port = server.port();
    RedisLink redis(loop, resolve_endpoint(endpoint), 5s);
    std::vector<long long> counts;
    for (int i = 0; i < 1000; ++i) {
        const std::string_view args[] = {"INCR", "pipelined"};
        redis.command(args, [&counts](LinkResult result) {
            counts.push_back(result.ok && result.reply.type == RedisReply::Type::integer ? result.reply.integer : -1);
        });
    }
    bool expired = false;
    Timer watchdog(loop, [&expired] { expired = true; });
    watchdog.arm_after(10s);
    loop.run_until([&] { return expired || counts.size() == 1000; });
    ASSERT_EQ(counts.size(), 1000u);
    for (size_t i = 0; i < counts.size(); ++i) ASSERT_EQ(counts[i], static_cast<long long>(i + 1)) << i;
    EXPECT_EQ(server.cli({"GET", "pipelined"}), "1000");
}

TEST(RedisLinkEndpoint, AUnixSocketPathTooLongIsRefused) {
    RedisEndpoint endpoint;
    endpoint.socket_path = "/" + std::string(200, 's');
    try {
        resolve_endpoint(endpoint);
        ADD_FAILURE() << "accepted";
    } catch (const StoreError& error) {
        EXPECT_EQ(std::string(error.what()), "store.url: the socket path is longer than 107 bytes");
    }
}

TEST(RedisLinkEndpoint, NamesTheServerForMessages) {
    RedisEndpoint endpoint;
    endpoint.host = "127.0.0.1";
    endpoint.port = 6390;
    endpoint.user = "alice";
    endpoint.password = "pw";
    endpoint.db = 2;
    const LinkAddress address = resolve_endpoint(endpoint);
    EXPECT_EQ(address.name, "127.0.0.1:6390");
    EXPECT_EQ(address.user, "alice");
    EXPECT_EQ(address.password, "pw");
    EXPECT_EQ(address.db, 2);
    endpoint.host = "::1";
    EXPECT_EQ(resolve_endpoint(endpoint).name, "[::1]:6390");
    RedisEndpoint local;
    local.socket_path = "/run/redis/redis.sock";
    EXPECT_EQ(resolve_endpoint(local).name, "unix:/run/redis/redis.sock");
}

}  // namespace
}  // namespace portcullis::store
