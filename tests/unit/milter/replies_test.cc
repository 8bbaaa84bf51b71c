/*
 * replies_test.cc: reply text as the MTA takes it, and an end of
 * message's changes made in the order that keeps positions right.
 */
#include "milter/replies.h"

#include <gtest/gtest.h>

#include "milter/protocol.h"
#include "policy/template.h"

namespace portcullis::milter {
namespace {

TEST(MilterText, PercentIsDoubled) { EXPECT_EQ(milter_text("100% sure, 5%s"), "100%% sure, 5%%s"); }

TEST(MilterText, TextEndingInAMultiByteCharacterIsKept) {
    EXPECT_EQ(milter_text("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(milter_text("\xe2\x82\xac"), "\xe2\x82\xac");
}

TEST(MilterText, CutToTheReplyLineLimitAfterEscaping) {
    EXPECT_EQ(milter_text(std::string(2000, 'a')).size(), policy::kMaxReplyLine);
    // 600 '%' become 1200 bytes: 248 of them fit.
    EXPECT_EQ(milter_text(std::string(600, '%')), std::string(policy::kMaxReplyLine, '%'));
}

TEST(MilterText, AReplyLineKeepsToRfc5321) {
    // RFC 5321 4.5.3.1.5: 512 octets with the code and CRLF.  The MTA
    // passes the line on as it is (Postfix's smtpd cuts none), so the
    // longest line the filter can give, with the longest enhanced code,
    // must fit.
    const std::string text = wire::reply_text("550", "5.999.999", {milter_text(std::string(2000, 'a')), "two"});
    const std::string first_line = text.substr(0, text.find("\r\n")) + "\r\n";
    EXPECT_EQ(first_line.size(), 512u);
}

TEST(MilterText, CutNeverSplitsACharacter) {
    const std::string text = std::string(policy::kMaxReplyLine - 1, 'a') + "\xc3\xa9";
    EXPECT_EQ(milter_text(text), std::string(policy::kMaxReplyLine - 1, 'a'));
    const std::string euro = std::string(policy::kMaxReplyLine - 2, 'a') + "\xe2\x82\xac";
    EXPECT_EQ(milter_text(euro), std::string(policy::kMaxReplyLine - 2, 'a'));
}

/* Records each change as "remove NAME POSITION", "insert NAME:VALUE",
 * "add NAME:VALUE", "quarantine REASON"; refuses those it is told to. */
class RecordingEditor final : public MessageEditor {
public:
    bool remove_header(std::string_view name, int position) override {
        return note("remove " + std::string(name) + " " + std::to_string(position));
    }
    bool insert_header(std::string_view name, const std::string& value) override {
        return note("insert " + std::string(name) + ":" + value);
    }
    bool add_header(std::string_view name, const std::string& value) override {
        return note("add " + std::string(name) + ":" + value);
    }
    bool quarantine(const std::string& reason) override { return note("quarantine " + reason); }

    std::vector<std::string> changes;
    std::string refuse;   // a change that starts so is refused

private:
    bool note(std::string change) {
        const bool refused = !refuse.empty() && change.starts_with(refuse);
        changes.push_back(std::move(change));
        return !refused;
    }
};

Reply changed_message() {
    Reply reply;
    reply.remove_results = {1, 3};
    reply.results_header = "mx.example; spf=pass";
    reply.add_headers = {{"X-A", "1"}, {"X-B", "\ttabbed"}};
    reply.quarantine = "held 100%";
    return reply;
}

TEST(ApplyChanges, RemovalsLastToFirstThenOursOnTopThenTheRules) {
    RecordingEditor editor;
    apply_changes(changed_message(), false, editor);
    EXPECT_EQ(editor.changes, (std::vector<std::string>{
                                  "remove Authentication-Results 3", "remove Authentication-Results 1",
                                  "insert Authentication-Results:mx.example; spf=pass", "add X-A:1",
                                  "add X-B:\ttabbed", "quarantine held 100%"}));
}

TEST(ApplyChanges, AQuarantineReasonIsNotAFormat) {
    // Sendmail keeps the reason as it comes: a '%' doubled would stay so.
    RecordingEditor editor;
    Reply reply;
    reply.quarantine = "100% spam";
    apply_changes(reply, false, editor);
    EXPECT_EQ(editor.changes, std::vector<std::string>{"quarantine 100% spam"});
}

TEST(ApplyChanges, TheLeadingSpaceWhenAgreed) {
    RecordingEditor editor;
    apply_changes(changed_message(), true, editor);
    EXPECT_EQ(editor.changes.at(2), "insert Authentication-Results: mx.example; spf=pass");
    EXPECT_EQ(editor.changes.at(3), "add X-A: 1");
    EXPECT_EQ(editor.changes.at(4), "add X-B:\ttabbed");   // already spaced
}

TEST(ApplyChanges, ARefusedChangeDoesNotStopTheRest) {
    RecordingEditor editor;
    editor.refuse = "remove";
    apply_changes(changed_message(), false, editor);
    EXPECT_EQ(editor.changes.size(), 6u);
}

TEST(ApplyChanges, NothingForAMessageWithoutChanges) {
    RecordingEditor editor;
    apply_changes(Reply{}, true, editor);
    EXPECT_EQ(editor.changes, std::vector<std::string>{});
}

}  // namespace
}  // namespace portcullis::milter
