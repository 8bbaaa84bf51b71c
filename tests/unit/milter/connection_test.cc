/*
 * connection_test.cc: one milter::Connection on an event loop over a
 * socketpair, the test playing the MTA (support/connection_driver.h):
 *   - the connections recorded from Postfix and Sendmail (data/) replayed
 *     whole, one byte at a time and split, with stateful checks that
 *     answer at once or later: the filter's replies exactly as the real
 *     daemon gave them, one per event that needs one, none for no-reply
 *     events;
 *   - pipelined commands, answered in order; a stage that waits holds
 *     back the commands after it;
 *   - every protocol error ends the connection with a log line, and no
 *     out-of-order command is ever evaluated (issue 12, section 5);
 *   - the deadlines: handshake, a packet begun and not finished, content,
 *     idle, replies left unread, between the sessions of a reused
 *     connection, none while a stage waits;
 *   - an MTA that does not read its replies, one that reads them slowly
 *     and never catches up, one that streams while a stage waits, one
 *     that hangs up while a check is out;
 *   - a connection reused (SMFIC_QUIT_NC): no macro kept, the policy
 *     reloaded since, the drain (in a child process).
 */
#include "milter/connection.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "milter/engine.h"
#include "policy/loader.h"
#include "support/connection_driver.h"
#include "support/held_stateful.h"
#include "support/milter_fixtures.h"
#include "support/milter_packets.h"
#include "support/temp_dir.h"

namespace portcullis::milter {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using test_support::big_endian_bytes;
using test_support::ConnectionDriver;
using test_support::HeldStateful;
using test_support::raw_packet;
using test_support::raw_packets;

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/* ---- packets an MTA sends ---- */

std::string optneg(uint32_t version = 6, uint32_t actions = 0x1ff, uint32_t steps = 0x1fffff) {
    return raw_packet('O', big_endian_bytes(version) + big_endian_bytes(actions) + big_endian_bytes(steps));
}
std::string connect(std::string_view host = "mail.example.net", std::string_view address = "203.0.113.5") {
    return raw_packet('C', std::string(host) + "\0"s + "4\x12\x34"s + std::string(address) + "\0"s);
}
std::string helo(std::string_view name = "client.example.net") { return raw_packet('H', std::string(name) + "\0"s); }
std::string mail(std::string_view sender = "<alice@sender.example>") {
    return raw_packet('M', std::string(sender) + "\0"s);
}
std::string rcpt(std::string_view recipient = "<user@example.com>") {
    return raw_packet('R', std::string(recipient) + "\0"s);
}
std::string header(std::string_view name, std::string_view value) {
    return raw_packet('L', std::string(name) + "\0"s + std::string(value) + "\0"s);
}
std::string macros(char command, std::string_view pairs) {
    return raw_packet('D', std::string(1, command) + std::string(pairs));
}

/* "Occy": the commands of the replies in BYTES. */
std::string reply_commands(std::string_view bytes) {
    std::string out;
    for (const auto& packet : raw_packets(bytes)) out += packet.command;
    return out;
}

/* The defaults' deadlines, and some short enough for a test to see them
 * pass. */
const EngineSettings kDefaultDeadlines{"test", 30s, 2h, 1, 0};
constexpr auto kTimeout = 150ms;
constexpr auto kIdle = 400ms;
const EngineSettings kShortDeadlines{"test", kTimeout, kIdle, 1, 0};

/* Only RCPT (a rate limit: it asks the store) and the end of message
 * need a reply. */
constexpr const char* kWaitingPolicy =
    "on rcpt { ratelimit client.ip 10/1m }\n"
    "on eom { add-header X-Count \"${rcpt.count}\" }\n";

/* ---- the test's loop, policy and connection ---- */

class ConnectionTest : public ::testing::Test {
protected:
    void TearDown() override {
        if (driver_) {
            EXPECT_EQ(driver_->faults(), "");
        }
        driver_.reset();
        publish(nullptr);
    }

    /* Publishes RULES (from BASE_DIR) with the test's stateful checks. */
    void use_policy(const std::string& rules, const std::string& base_dir = ".") {
        auto result = policy::parse_policy(rules, "test.rules", base_dir);
        std::string errors;
        for (const auto& error : result.errors) errors += error.str() + "\n";
        ASSERT_TRUE(result.ok()) << errors;
        auto snapshot = std::make_shared<Snapshot>(*make_snapshot(result.policy, false));
        snapshot->stateful = stateful_;
        publish(std::move(snapshot));
    }

    ConnectionDriver& start(EngineSettings settings = kDefaultDeadlines, size_t read_buffer = 64 * 1024) {
        driver_ = std::make_unique<ConnectionDriver>(loop_, std::move(settings), read_buffer);
        return *driver_;
    }

    /* A connection whose RCPT waits for the store (kWaitingPolicy). */
    ConnectionDriver& start_waiting_at_rcpt(EngineSettings settings = kDefaultDeadlines) {
        stateful_->set_mode(HeldStateful::Mode::held);
        use_policy(kWaitingPolicy);
        ConnectionDriver& driver = start(std::move(settings));
        driver.send_all(optneg() + connect() + mail() + rcpt());
        driver.settle();
        EXPECT_EQ(stateful_->waiting(), 1u);
        return driver;
    }

    /* A connection (kShortDeadlines) whose socket holds a few kB of
     * replies, given HELOS HELOs (7 bytes each, 5 of reply) by an MTA that
     * does not read. */
    ConnectionDriver& start_with_unread_replies(size_t helos, EngineSettings settings = kShortDeadlines) {
        use_policy("on helo { reject 550 5.7.1 \"helo evaluated\" if helo == \"probe.example\" }\n");
        ConnectionDriver& driver = start(std::move(settings));
        driver.small_socket();
        driver.reading(false);
        std::string session = optneg() + connect();
        for (size_t i = 0; i < helos; ++i) session += helo("h");
        EXPECT_EQ(driver.send_all(session), session.size());
        return driver;
    }

    /* The store answers the oldest question, on the loop. */
    void answer(std::optional<policy::StatefulAnswer> given = std::nullopt) {
        loop_.post([this, given] { stateful_->answer_oldest(given); });
        driver_->settle();
    }

    EventLoop loop_;
    std::shared_ptr<HeldStateful> stateful_ = std::make_shared<HeldStateful>(HeldStateful::Mode::now);
    std::unique_ptr<ConnectionDriver> driver_;
};

/* ---- the recorded connections ---- */

/* Each fixture's policy: the shipped one, with the lists as recorded
 * (data/default-policy-lists.txt), or data/every-stage.rules. */
class RecordedPolicy {
public:
    explicit RecordedPolicy(const std::string& fixture) {
        if (!fixture.starts_with("postfix-default")) {
            rules = read_text(test_support::milter_fixture_file("every-stage.rules"));
            return;
        }
        const std::filesystem::path shipped = std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "policies";
        rules = read_text(shipped / "default.rules");
        for (const auto& entry : std::filesystem::directory_iterator(shipped / "lists")) {
            lists_.write("lists/" + entry.path().filename().string(), read_text(entry.path()));
        }
        std::istringstream additions(read_text(test_support::milter_fixture_file("default-policy-lists.txt")));
        for (std::string line; std::getline(additions, line);) {
            if (line.empty() || line[0] == '#') continue;
            const size_t tab = line.find('\t');
            const std::string file = line.substr(0, tab);
            lists_.write(file, read_text(lists_.path(file)) + line.substr(tab + 1) + "\n");
        }
        base_dir = lists_.path("");
    }
    std::string rules;
    std::string base_dir = ".";

private:
    test_support::TempDir lists_;
};

/* As the memory store answered when the fixtures were recorded: a new
 * triplet is greylisted for 300 s, no rate limit is reached. */
policy::StatefulAnswer as_recorded(bool greylist) {
    if (greylist) return {policy::StatefulAnswer::Kind::refuse, 300, "reason=new wait=300s"};
    return HeldStateful::pass(false);
}

enum class Feed { whole, byte_by_byte, split };

struct Replay {
    std::string fixture;
    HeldStateful::Mode answers;
};

void PrintTo(const Replay& replay, std::ostream* out) { *out << replay.fixture; }

class RecordedConnection : public ConnectionTest, public ::testing::WithParamInterface<Replay> {
protected:
    void SetUp() override {
        const Replay& replay = GetParam();
        mta_ = test_support::read_milter_fixture(replay.fixture, "mta");
        filter_ = test_support::read_milter_fixture(replay.fixture, "filter");
        stateful_ = std::make_shared<HeldStateful>(replay.answers, as_recorded);
        const RecordedPolicy recorded(replay.fixture);
        use_policy(recorded.rules, recorded.base_dir);
    }

    /* Replays the fixture fed by FEED (split at AT), and checks that the
     * replies are the recorded ones, byte for byte.  The ABORTs and the
     * QUIT that end it go last, after the replies came, as every MTA
     * sends them: RepliesBeforeAQuitInTheSameReadAreSent is the test of a
     * QUIT pipelined behind commands. */
    void replay(Feed feed, size_t at = 0) {
        const std::string_view all = mta_;
        const std::string_view body = all.substr(0, quit_tail_start());
        ConnectionDriver& driver = start();
        switch (feed) {
            case Feed::whole: driver.send_all(body); break;
            case Feed::split:
                driver.send_all(all.substr(0, at));
                driver.settle();
                if (at < body.size()) driver.send_all(body.substr(at));
                break;
            case Feed::byte_by_byte:
                for (size_t i = 0; i < body.size();) {
                    const size_t piece = byte_piece(i);
                    ASSERT_EQ(driver.send_all(body.substr(i, piece)), piece);
                    driver.settle();
                    i += piece;
                }
                break;
        }
        driver.settle();
        driver.send_all(all.substr(std::max(body.size(), at)));
        driver.settle();
        if (!driver.closed()) driver.hang_up();   // as the MTA did, where it sent no QUIT
        driver.settle();
        ASSERT_EQ(driver.output(), filter_) << "at " << at << ": replies " << reply_commands(driver.output())
                                            << ", recorded " << reply_commands(filter_);
        ASSERT_TRUE(driver.gone());
        EXPECT_EQ(driver.faults(), "");
    }

    /* Where the ABORTs and QUIT at the end begin. */
    size_t quit_tail_start() const {
        size_t start = 0, tail = 0;
        for (const auto& packet : raw_packets(mta_)) {
            const bool ending = packet.command == 'A' || packet.command == 'Q';
            if (!ending) tail = start + 5 + packet.data.size();
            start += 5 + packet.data.size();
        }
        return tail;
    }

    /* One byte at a time, but the middle of a packet over 4 KiB (a body
     * chunk) in one piece: 150 KiB one byte at a time take a minute under
     * ASan, and protocol_test.cc feeds them to the codec so. */
    size_t byte_piece(size_t at) {
        for (size_t start = 0; start < mta_.size();) {
            const size_t length = 4 + test_support::big_endian32(std::string_view(mta_).substr(start, 4));
            if (at < start + length) {
                const size_t middle_end = start + length - 64;
                return (length > 4096 && at >= start + 64 && at < middle_end) ? middle_end - at : 1;
            }
            start += length;
        }
        return 1;
    }

    std::string mta_, filter_;
};

TEST_P(RecordedConnection, RepliesAsTheMtaGotThem) {
    // The replies the real daemon gave, and, checked apart from that
    // recording, one for every event that needs one and none for the rest.
    const auto mta = raw_packets(mta_);
    const auto filter = raw_packets(filter_);
    EXPECT_EQ(test_support::reply_errors(mta, filter, true), "");
    replay(Feed::whole);
}

TEST_P(RecordedConnection, FedOneByteAtATime) { replay(Feed::byte_by_byte); }

TEST_P(RecordedConnection, SplitInTwo) {
    // Every position but the middle of a packet over 4 KiB (a body
    // chunk: there a split is framed as at any other byte of it, and
    // protocol_test.cc splits the codec's input there too).
    std::vector<size_t> splits;
    size_t start = 0;
    for (const auto& packet : raw_packets(mta_)) {
        const size_t length = 5 + packet.data.size();
        for (size_t into = 0; into < length; ++into) {
            if (length <= 4096 || into < 64 || length - into <= 64) splits.push_back(start + into);
        }
        start += length;
    }
    for (const size_t at : splits) {
        replay(Feed::split, at);
        if (HasFatalFailure()) return;
    }
}

std::vector<Replay> replays() {
    std::vector<Replay> all;
    for (const auto& name : test_support::milter_fixture_names()) {
        all.push_back({name, HeldStateful::Mode::now});
        all.push_back({name, HeldStateful::Mode::later});
    }
    return all;
}

INSTANTIATE_TEST_SUITE_P(Recorded, RecordedConnection, ::testing::ValuesIn(replays()), [](const auto& test) {
    std::string name = test.param.fixture + (test.param.answers == HeldStateful::Mode::now ? "_now" : "_later");
    for (char& c : name) {
        if (c == '-') c = '_';
    }
    return name;
});

/* ---- pipelining and waiting ---- */

constexpr const char* kProbePolicy =
    "on connect { reject 554 5.7.1 \"connect evaluated\" if client.host == \"probe.example\" }\n"
    "on helo { reject 550 5.7.1 \"helo evaluated\" if helo == \"probe.example\" }\n"
    "on mail { reject 550 5.7.1 \"mail evaluated\" if sender.domain == \"probe.example\" }\n"
    "on rcpt { reject 550 5.7.1 \"rcpt evaluated\" if rcpt.domain == \"probe.example\" }\n"
    "on eom {\n"
    "    reject 550 5.7.1 \"eom evaluated\" if header(\"Subject\") == \"probe\"\n"
    "    add-header X-Seen \"${rcpt.count}\"\n"
    "}\n";

TEST_F(ConnectionTest, PipelinedCommandsAreAnsweredInOrder) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    const std::string session = optneg() + connect() + helo() + mail() + rcpt() + rcpt("<x@probe.example>") +
                                rcpt("<y@example.com>") + header("Subject", " hi") + raw_packet('E') + raw_packet('A') +
                                mail("<b@probe.example>") + raw_packet('A') + mail() + rcpt() +
                                header("Subject", " probe") + raw_packet('E');
    ASSERT_EQ(driver.send(session), session.size());   // one write
    driver.settle();
    // connect, helo, mail, rcpt, rcpt (refused), rcpt, eom (a header
    // field, continue), mail (refused), mail, rcpt, eom (refused).
    EXPECT_EQ(reply_commands(driver.output()), "Occccychcyccy");
    EXPECT_EQ(test_support::reply_errors(raw_packets(session), raw_packets(driver.output()), true), "");
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, EveryKindOfReply) {
    use_policy("list trusted ip { 192.0.2.0/24 }\n"
               "on connect { accept if client.ip in trusted }\n"
               "on mail { discard if sender.domain == \"discard.example\" }\n"
               "on eom { quarantine \"held for review\" if header(\"Subject\") == \"hold\" }\n");
    ConnectionDriver& driver = start();
    // Accepted at connect; a new session: discarded at MAIL; the next
    // message quarantined.  HELO, RCPT and the header need no reply here.
    driver.send_all(optneg() + connect("trusted.example", "192.0.2.9") + raw_packet('K') + connect() + helo() +
                    mail("<a@discard.example>") + raw_packet('A') + mail() + rcpt() + header("Subject", " hold") +
                    raw_packet('E'));
    driver.settle();
    const auto replies = raw_packets(driver.output());
    ASSERT_EQ(reply_commands(driver.output()), "Oacdcqc");
    EXPECT_EQ(replies[5].data, "held for review\0"s);
}

TEST_F(ConnectionTest, DataAndEndOfHeaderAreAnsweredWhenTheMtaCannotSkipThem) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    // Version 1's steps: no SMFIP_NODATA, SMFIP_NOEOH or no-reply steps.
    driver.send_all(optneg(6, 0x1ff, 0x3f) + connect() + mail() + rcpt() + raw_packet('T') +
                    header("Subject", "x") + raw_packet('N') + raw_packet('B', "body") + raw_packet('E'));
    driver.settle();
    // connect, mail, rcpt, DATA, the header, end of header, body, end of
    // message (its header field, continue).
    EXPECT_EQ(reply_commands(driver.output()), "Occccccchc");
}

TEST_F(ConnectionTest, AStageThatWaitsHoldsBackTheCommandsAfterIt) {
    stateful_->set_mode(HeldStateful::Mode::held);
    use_policy(kWaitingPolicy);
    ConnectionDriver& driver = start();
    driver.send_all(optneg() + connect() + helo() + mail() + rcpt() + rcpt("<other@example.com>") +
                    header("Subject", " hi") + raw_packet('B', "body") + raw_packet('E'));
    driver.settle();
    // Only RCPT and end of message need a reply under this policy; the
    // first RCPT waits, and the second is not even evaluated.
    EXPECT_EQ(reply_commands(driver.output()), "O");
    EXPECT_EQ(stateful_->calls(), 1u);
    EXPECT_EQ(driver.unread(), 0) << "reading goes on while a stage waits";

    answer();
    EXPECT_EQ(reply_commands(driver.output()), "Oc");
    EXPECT_EQ(stateful_->calls(), 2u);   // now the second waits
    answer(policy::StatefulAnswer{policy::StatefulAnswer::Kind::refuse, 0, "test"});
    // The second recipient refused (450), then the message: one recipient.
    const auto replies = raw_packets(driver.output());
    ASSERT_EQ(reply_commands(driver.output()), "Ocyhc");
    EXPECT_EQ(replies[2].data, "450 4.7.1 Rate limit exceeded, try again later\0"s);
    EXPECT_EQ(replies[3].data, "X-Count\0" "1\0"s);
    EXPECT_EQ(stateful_->waiting(), 0u);
}

TEST_F(ConnectionTest, AnswersThatComeLaterOnTheLoop) {
    stateful_->set_mode(HeldStateful::Mode::later);
    use_policy(kWaitingPolicy);
    ConnectionDriver& driver = start();
    driver.send_all(optneg() + connect() + mail() + rcpt() + rcpt() + rcpt() + raw_packet('E'));
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Occchc");
    EXPECT_EQ(stateful_->calls(), 3u);
}

TEST_F(ConnectionTest, AnMtaThatStreamsWhileAStageWaitsIsHeldUpBySocketNotMemory) {
    ConnectionDriver& driver = start_waiting_at_rcpt();
    // 8 MiB of body while the RCPT waits: the connection keeps at most
    // kMaxHeldInput and leaves the rest to the socket.
    std::string stream;
    while (stream.size() < 8 * 1024 * 1024) stream += raw_packet('B', std::string(65535, 'b'));
    stream += raw_packet('E');
    const size_t written = driver.send_all(stream);
    EXPECT_LT(written, stream.size()) << "the connection took 8 MiB while waiting";
    EXPECT_LT(written, kMaxHeldInput + 4 * 1024 * 1024);
    answer();
    const std::string_view rest = std::string_view(stream).substr(written);
    ASSERT_EQ(driver.send_all(rest), rest.size());
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Ochc");   // the RCPT, then the end of message
}

TEST_F(ConnectionTest, APacketLongerThanTheHeldInputLimitStillComesIn) {
    // kMaxPacket allows a header field of up to 1 MiB (Postfix's
    // header_size_limit may be raised that far); its packet must be read
    // whole, though it is more than kMaxHeldInput.
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start(kShortDeadlines);
    driver.send_all(optneg() + connect() + helo() + mail() + rcpt());
    driver.settle();
    const std::string big = header("X-Big", " " + std::string(3 * kMaxHeldInput, 'v')) + raw_packet('E');
    ASSERT_LT(big.size(), kMaxPacket);
    EXPECT_EQ(driver.send_all(big), big.size());
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Occcchc");
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, AnMtaThatHangsUpWhileACheckIsOut) {
    ConnectionDriver& driver = start_waiting_at_rcpt();
    driver.send_all(rcpt());   // read, held back
    driver.hang_up();
    driver.settle();
    EXPECT_TRUE(driver.gone());
    // The answer comes to a session that is gone (ASan sees any use of it).
    answer();
    EXPECT_EQ(stateful_->calls(), 1u);
}

/* ---- the MTA reads its replies late, or never ---- */

TEST_F(ConnectionTest, RepliesWaitForAnMtaThatReadsLate) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    driver.reading(false);
    constexpr size_t kHelos = 100000;   // 700 KB in, 500 KB of replies: more than the sockets hold
    std::string session = optneg() + connect();
    for (size_t i = 0; i < kHelos; ++i) session += helo("h");
    const size_t written = driver.send_all(session);
    driver.reading(true);
    const std::string_view rest = std::string_view(session).substr(written);
    ASSERT_EQ(driver.send_all(rest), rest.size());
    driver.settle();
    const auto replies = raw_packets(driver.output());
    ASSERT_EQ(replies.size(), kHelos + 2);
    for (size_t i = 1; i < replies.size(); ++i) ASSERT_EQ(replies[i].command, 'c') << i;
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, AnMtaThatNeverReadsIsHeldUpBySocketNotMemory) {
    // Every HELO needs a reply; an MTA (or anyone who can connect) that
    // sends them without reading any must be stopped by the socket, as one
    // that streams while a stage waits is: the replies the connection
    // holds must be bounded, so it must stop reading.
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    driver.reading(false);
    const std::string helos = [] {
        std::string out;
        for (int i = 0; i < 64 * 1024; ++i) out += helo("h");   // 448 KiB in, 320 KiB of replies
        return out;
    }();
    driver.send_all(optneg() + connect());
    size_t written = 0;
    while (written < 6 * 1024 * 1024) {
        const size_t sent = driver.send_all(helos);
        written += sent;
        if (sent < helos.size()) break;   // it stopped reading
    }
    EXPECT_LT(written, 3u * 1024 * 1024) << "the connection kept reading, holding the replies it could not send";
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, AnMtaThatDoesNotReadItsRepliesHasMilterTimeout) {
    // Its commands all handled and its replies left in the socket, it
    // holds the connection for milter.timeout, not milter.idle_timeout
    // (two hours by default): an MTA reads each reply before it sends on.
    testing::internal::CaptureStderr();
    ConnectionDriver& driver = start_with_unread_replies(4000);   // 20 kB of replies
    const auto took = driver.run_until_closed(kIdle + 3s);
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_LT(took, kIdle);
    EXPECT_NE(log.find("closed: its replies unread for milter.timeout"), std::string::npos) << log;
}

TEST_F(ConnectionTest, AnMtaThatReadsSlowlyKeepsItsConnection) {
    // Each reply it reads gives it milter.timeout again.
    ConnectionDriver& driver = start_with_unread_replies(8000);   // 40 kB of replies
    for (int i = 0; i < 4 && !driver.closed(); ++i) {   // within milter.idle_timeout
        driver.run_for(kTimeout / 2);
        driver.discard_some(16384);   // what the socket holds: it takes more
    }
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, AnMtaThatNeverCatchesUpWithItsRepliesDoesNotGrowThem) {
    // It reads as much as it is sent, but always 20 kB behind: the
    // replies sent must not stay in memory until it has read them all,
    // which it never does.  2 MB of replies go through.
    ConnectionDriver& driver = start_with_unread_replies(4000, kDefaultDeadlines);   // 20 kB behind
    const std::string helos = [] {
        std::string out;
        for (int i = 0; i < 2000; ++i) out += helo("h");   // 10 kB of replies
        return out;
    }();
    auto heap = [] {
        const struct mallinfo2 info = mallinfo2();
        return info.uordblks + info.hblkhd;   // large blocks are mapped apart
    };
    const size_t heap_before = heap();
    for (int round = 0; round < 200; ++round) {
        ASSERT_EQ(driver.send_all(helos), helos.size()) << round;
        size_t read = 0;
        for (int turns = 0; read < 10000 && turns < 100; ++turns) {
            read += driver.discard_some(10000 - read);
            driver.settle();
        }
        ASSERT_EQ(read, 10000u) << round;
    }
    const size_t heap_after = heap();
    EXPECT_LT(heap_after, heap_before + 1024 * 1024) << "the connection keeps the replies it sent";
    EXPECT_FALSE(driver.closed());
}

/* ---- protocol errors ---- */

struct ProtocolError {
    const char* name;
    std::string before;    // sent first, and answered, as an MTA waits for its replies
    std::string error;
    std::string replies;   // the reply commands to BEFORE
    std::string why;       // in the log line
};

void PrintTo(const ProtocolError& error, std::ostream* out) { *out << error.name; }

std::vector<ProtocolError> protocol_errors() {
    const std::string start = optneg() + connect() + helo();
    const std::string too_many_macros = [] {
        std::string pairs;
        for (size_t i = 0; i <= kMaxMacroPairs; ++i) pairs += "m" + std::to_string(i) + "\0v\0"s;
        return macros('C', pairs);
    }();
    return {
        {"no_option_negotiation", "", connect() + mail(), "", "command C before option negotiation"},
        {"mail_first", "", mail("<a@probe.example>"), "", "command M before option negotiation"},
        {"second_option_negotiation", optneg(), optneg(), "O", "a second option negotiation"},
        {"option_negotiation_later", start + mail(), optneg(), "Occc", "a second option negotiation"},
        {"short_option_negotiation", "", raw_packet('O', std::string(11, '\0')), "",
         "option negotiation shorter than 12 bytes"},
        {"protocol_version_1", "", optneg(1), "", "milter protocol version 1 is older than 2"},
        {"mail_before_connect", optneg(), mail("<a@probe.example>"), "O", "command M before CONNECT"},
        {"rcpt_before_connect", optneg(), rcpt("<a@probe.example>"), "O", "command R before CONNECT"},
        {"helo_before_connect", optneg(), helo("probe.example"), "O", "command H before CONNECT"},
        {"eom_before_connect", optneg(), raw_packet('E'), "O", "command E before CONNECT"},
        {"header_before_connect", optneg(), header("Subject", "probe"), "O", "command L before CONNECT"},
        {"rcpt_before_mail", start, rcpt("<a@probe.example>"), "Occ", "command R before MAIL"},
        {"header_before_mail", start, header("Subject", "probe"), "Occ", "command L before MAIL"},
        {"end_of_header_before_mail", start, raw_packet('N'), "Occ", "command N before MAIL"},
        {"body_before_mail", start, raw_packet('B', "body"), "Occ", "command B before MAIL"},
        {"data_before_mail", start, raw_packet('T'), "Occ", "command T before MAIL"},
        {"eom_before_mail", start, raw_packet('E'), "Occ", "command E before MAIL"},
        {"rcpt_after_abort", start + mail() + raw_packet('A'), rcpt("<a@probe.example>"), "Occc",
         "command R before MAIL"},
        {"rcpt_after_eom", start + mail() + rcpt() + raw_packet('E'), rcpt("<a@probe.example>"), "Occcchc",
         "command R before MAIL"},
        {"mail_after_quit_new_connection", start + raw_packet('K'), mail("<a@probe.example>"), "Occ",
         "command M before CONNECT"},
        {"second_connect", start, connect("probe.example"), "Occ", "a second CONNECT in one SMTP session"},
        {"unknown_command_in_message", start + mail(), raw_packet('Z'), "Occc", "unknown command Z"},
        {"unknown_command_before_mail", start, raw_packet('\x07'), "Occ", "unknown command 0x07"},
        {"unknown_command_before_connect", optneg(), raw_packet('z'), "O", "unknown command z"},
        {"length_zero", optneg(), big_endian_bytes(0), "O", "a packet of length 0"},
        {"length_over_the_limit", optneg(), big_endian_bytes(kMaxPacket + 1), "O",
         "a packet of " + std::to_string(kMaxPacket + 1) + " bytes, over the limit of " + std::to_string(kMaxPacket)},
        {"too_many_macros", optneg(), too_many_macros, "O",
         "macros not as the protocol has them, or more than " + std::to_string(kMaxMacroPairs)},
        {"macro_without_value", optneg(), macros('C', "j\0"s + "x"), "O", "macros not as the protocol has them"},
        {"connect_without_family", optneg(), raw_packet('C', "probe.example\0"s), "O",
         "CONNECT not as the protocol has it"},
        {"connect_bad_family", optneg(), raw_packet('C', "probe.example\0X\0\0" "1.2.3.4\0"s), "O",
         "CONNECT not as the protocol has it"},
        {"helo_without_nul", optneg() + connect(), raw_packet('H', "probe.example"), "Oc", "HELO without its name"},
        {"mail_without_nul", start, raw_packet('M', "<a@probe.example>"), "Occ", "MAIL without its address"},
        {"rcpt_without_nul", start + mail(), raw_packet('R', "<a@probe.example>"), "Occc",
         "RCPT without its address"},
        {"header_without_value", start + mail(), raw_packet('L', "Subject\0probe"s), "Occc",
         "a header field not as the protocol has it"},
    };
}

class ProtocolErrors : public ConnectionTest, public ::testing::WithParamInterface<ProtocolError> {};

TEST_P(ProtocolErrors, EndTheConnectionWithALogLineAndRunNothing) {
    const ProtocolError& error = GetParam();
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    testing::internal::CaptureStderr();
    driver.send_all(error.before);
    driver.settle();
    driver.send_all(error.error + optneg() + connect() + mail("<late@probe.example>"));
    driver.settle();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_EQ(reply_commands(driver.output()), error.replies);
    EXPECT_NE(log.find("warning: milter connection from test closed: " + error.why), std::string::npos) << log;
    // Nothing after the error, and nothing out of order, was evaluated.
    EXPECT_EQ(log.find("evaluated"), std::string::npos) << log;
    EXPECT_EQ(log.find("late@"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(All, ProtocolErrors, ::testing::ValuesIn(protocol_errors()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST_F(ConnectionTest, NoPolicyLoadedYet) {
    publish(nullptr);
    ConnectionDriver& driver = start();
    testing::internal::CaptureStderr();
    driver.send_all(optneg());
    driver.settle();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_EQ(driver.output(), "");
    EXPECT_NE(log.find("closed: no policy loaded yet"), std::string::npos) << log;
}

TEST_F(ConnectionTest, QuitIsAQuietEnd) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    testing::internal::CaptureStderr();
    driver.send_all(optneg() + connect());
    driver.settle();
    driver.send_all(raw_packet('A') + raw_packet('Q'));
    driver.settle();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_EQ(reply_commands(driver.output()), "Oc");
    EXPECT_EQ(log.find("closed"), std::string::npos) << log;
}

TEST_F(ConnectionTest, RepliesBeforeAQuitInTheSameReadAreSent) {
    // libmilter answers each command before it reads the next, so an MTA
    // that pipelines (none of the recorded ones does before QUIT) gets
    // every reply; so must it here, and before a protocol error too.
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    driver.send_all(optneg() + connect() + helo() + raw_packet('Q'));
    driver.settle();
    EXPECT_TRUE(driver.gone());
    EXPECT_EQ(reply_commands(driver.output()), "Occ");
}

TEST_F(ConnectionTest, RepliesBeforeAProtocolErrorInTheSameReadAreSent) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    driver.send_all(optneg() + connect() + helo() + rcpt());
    driver.settle();
    EXPECT_TRUE(driver.gone());
    EXPECT_EQ(reply_commands(driver.output()), "Occ");
}

TEST_F(ConnectionTest, QuitNewConnectionStartsAFreshSession) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    // The first session's connect refusal is given at its HELO; after K a
    // new CONNECT on the same connection starts clean (no option
    // negotiation again).
    driver.send_all(optneg() + connect("probe.example") + helo() + raw_packet('K') + connect() + helo() + mail());
    driver.settle();
    const auto replies = raw_packets(driver.output());
    ASSERT_EQ(reply_commands(driver.output()), "Ocyccc");
    EXPECT_EQ(replies[2].data, "554 5.7.1 connect evaluated\0"s);
}

TEST_F(ConnectionTest, QuitNewConnectionForgetsTheMacrosOfTheSessionBefore) {
    use_policy("on mail { reject 550 5.7.1 \"from ${client.ip}\" if client.ip == 192.0.2.7 }\n");
    ConnectionDriver& driver = start();
    const std::string local = raw_packet('C', "localhost\0U"s);
    driver.send_all(optneg() + macros('C', "{client_addr}\0" "192.0.2.7\0"s) + local + mail() + raw_packet('K') +
                    local + mail());
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Oyc");   // the second session's client is unknown
}

/* A reload between two sessions of one connection (SMFIC_QUIT_NC). */
class ReloadBetweenSessions : public ConnectionTest {
protected:
    /* The replies to the second session's HELO probe.example, under
     * RELOADED published after the first (under kProbePolicy) ended. */
    test_support::RawPacket second_helo_under(const std::string& reloaded) {
        use_policy(kProbePolicy);
        ConnectionDriver& driver = start();
        driver.send_all(optneg() + connect() + raw_packet('K'));
        driver.settle();
        use_policy(reloaded);
        driver.send_all(connect() + helo("probe.example"));
        driver.settle();
        const auto replies = raw_packets(driver.output());
        EXPECT_EQ(reply_commands(driver.output()), "Occy");
        return replies.size() == 4 ? replies[3] : test_support::RawPacket{};
    }
};

TEST_F(ReloadBetweenSessions, TheSecondRunsUnderTheNewPolicy) {
    // As on a new connection (and as libmilter's engine does).
    std::string reloaded = kProbePolicy;
    reloaded.replace(reloaded.find("helo evaluated"), 14, "helo reloaded");
    EXPECT_EQ(second_helo_under(reloaded).data, "550 5.7.1 helo reloaded\0"s);
}

TEST_F(ReloadBetweenSessions, UnlessTheNewPolicyNeedsOtherSteps) {
    // Not the steps negotiated (here it needs fewer; one that needs more
    // could not be served): the connection keeps its policy.
    EXPECT_EQ(second_helo_under("on connect { reject 554 5.7.1 \"other\" }\n").data, "550 5.7.1 helo evaluated\0"s);
}

/* A drain cannot be undone in a process: these run in a child. */
TEST_F(ConnectionTest, InADrainASessionAfterQuitNewConnectionIsRefused) {
    use_policy(kProbePolicy);
    EXPECT_EXIT(
        {
            ConnectionDriver& driver = start();
            driver.send_all(optneg() + connect() + raw_packet('K'));
            driver.settle();
            begin_drain();
            driver.send_all(connect());
            driver.settle();
            std::exit(reply_commands(driver.output()) == "Oct" ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST_F(ConnectionTest, InADrainASessionWithoutAReplyAtConnectIsClosed) {
    use_policy("on mail { reject 550 5.7.1 \"mail evaluated\" }\n");
    EXPECT_EXIT(
        {
            ConnectionDriver& driver = start();
            driver.send_all(optneg() + connect() + raw_packet('K'));
            driver.settle();
            begin_drain();
            driver.send_all(connect() + mail());
            driver.settle();
            std::exit(driver.gone() && reply_commands(driver.output()) == "O" ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "closed: stopping: a new session refused");
}

TEST_F(ConnectionTest, AnUnknownClientFamilyTakesTheAddressFromTheMacro) {
    // Sendmail's local submission: family 'U' and {client_addr}.
    use_policy("on mail { reject 550 5.7.1 \"from ${client.ip}\" if client.ip == 192.0.2.7 }\n");
    ConnectionDriver& driver = start();
    driver.send_all(optneg() + macros('C', "{client_addr}\0" "192.0.2.7\0"s) + raw_packet('C', "localhost\0U"s) +
                    mail());
    driver.settle();
    const auto replies = raw_packets(driver.output());
    ASSERT_EQ(reply_commands(driver.output()), "Oy");   // no rule at connect: no reply there
    EXPECT_EQ(replies[1].data, "550 5.7.1 from 192.0.2.7\0"s);
}

TEST_F(ConnectionTest, UnknownSmtpCommandsAreAnsweredWhenTheMtaWantsAReply) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    // Version 2's steps: no SMFIP_NR_UNKN to agree to.
    driver.send_all(optneg(2, 0x3f, 0x7f) + connect() + raw_packet('U', "XYZZY\0"s));
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Occ");
    EXPECT_FALSE(driver.closed());
}

TEST_F(ConnectionTest, TheQueueIdFromTheMacrosNamesTheDecision) {
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start();
    testing::internal::CaptureStderr();
    driver.send_all(optneg() + connect() + mail() + macros('R', "i\0" "4ABC123\0"s) + rcpt("<a@probe.example>"));
    driver.settle();
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("4ABC123: rcpt: reject"), std::string::npos) << log;
}

/* ---- deadlines ---- */


struct Deadline {
    const char* name;
    std::string bytes;
    std::chrono::milliseconds after;
    std::string why;
};

std::vector<Deadline> deadlines() {
    const std::string helo_packet = helo();
    return {
        {"nothing_at_all", "", kTimeout, "no CONNECT within milter.timeout"},
        {"nothing_after_option_negotiation", optneg(), kTimeout, "no CONNECT within milter.timeout"},
        {"half_a_packet", optneg() + connect() + helo_packet.substr(0, 9), kTimeout,
         "stalled in the middle of a packet (9 bytes) for milter.timeout"},
        {"half_a_length", optneg() + connect() + helo_packet.substr(0, 2), kTimeout,
         "stalled in the middle of a packet (2 bytes) for milter.timeout"},
        {"idle_between_commands", optneg() + connect() + helo(), kIdle, "idle for milter.idle_timeout"},
        {"idle_between_messages", optneg() + connect() + mail() + rcpt() + raw_packet('E'), kIdle,
         "idle for milter.idle_timeout"},
        {"quiet_within_content", optneg() + connect() + mail() + rcpt() + header("Subject", " x"), kTimeout,
         "no event within a message's content for milter.timeout"},
    };
}

void PrintTo(const Deadline& deadline, std::ostream* out) { *out << deadline.name; }

class Deadlines : public ConnectionTest, public ::testing::WithParamInterface<Deadline> {};

TEST_P(Deadlines, CloseTheConnectionWithALogLine) {
    const Deadline& deadline = GetParam();
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start(kShortDeadlines);
    testing::internal::CaptureStderr();
    driver.send_all(deadline.bytes);
    const auto took = driver.run_until_closed(deadline.after + 3s);
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_GE(took, deadline.after - 20ms);
    EXPECT_LT(took, deadline.after + 2s);
    EXPECT_NE(log.find("closed: " + deadline.why), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(All, Deadlines, ::testing::ValuesIn(deadlines()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST_F(ConnectionTest, APacketTrickledByteByByteStillHasItsDeadline) {
    // The deadline runs from the packet's first byte, not its last read.
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start(kShortDeadlines);
    driver.send_all(optneg() + connect());
    driver.settle();
    const std::string slow = helo(std::string(40, 'h'));
    testing::internal::CaptureStderr();
    const auto start_time = std::chrono::steady_clock::now();
    for (size_t i = 0; i < slow.size() && !driver.closed(); ++i) {
        driver.send(slow.substr(i, 1));
        driver.run_for(kTimeout / 5);
    }
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.closed());
    EXPECT_LT(std::chrono::steady_clock::now() - start_time, kTimeout + 1s);
    EXPECT_NE(log.find("stalled in the middle of a packet"), std::string::npos) << log;
}

TEST_F(ConnectionTest, BetweenSessionsOfAReusedConnectionTheIdleDeadline) {
    // After SMFIC_QUIT_NC the MTA sends the next CONNECT when its next
    // client comes: the connection waits milter.idle_timeout for it, not
    // what is left of the milter.timeout it had to its first CONNECT.
    use_policy(kProbePolicy);
    ConnectionDriver& driver = start(kShortDeadlines);
    driver.send_all(optneg() + connect() + raw_packet('K'));
    driver.run_for(kTimeout * 2);
    EXPECT_FALSE(driver.closed());
    driver.send_all(connect() + helo());
    driver.settle();
    EXPECT_EQ(reply_commands(driver.output()), "Occc");
    testing::internal::CaptureStderr();
    driver.send_all(raw_packet('K'));
    const auto took = driver.run_until_closed(kIdle + 3s);
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_GE(took, kIdle - 20ms);
    EXPECT_NE(log.find("idle for milter.idle_timeout"), std::string::npos) << log;
}

TEST_F(ConnectionTest, NoDeadlineWhileAStageWaits) {
    ConnectionDriver& driver = start_waiting_at_rcpt(kShortDeadlines);
    driver.run_for(kIdle + kTimeout * 2);
    EXPECT_FALSE(driver.closed()) << "closed while its check was out";
    answer();
    EXPECT_EQ(reply_commands(driver.output()), "Oc");
    // Then the idle deadline runs again.
    testing::internal::CaptureStderr();
    const auto took = driver.run_until_closed(kIdle + 3s);
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(driver.gone());
    EXPECT_GE(took, kIdle - 20ms);
    EXPECT_NE(log.find("idle for milter.idle_timeout"), std::string::npos) << log;
}

}  // namespace
}  // namespace portcullis::milter
