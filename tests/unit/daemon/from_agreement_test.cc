/*
 * from_agreement_test.cc: a property test that the policy's from and
 * from.domain and DMARC's author domains never differ.
 *
 * Each round makes one message's From fields at random from authors it
 * knows: mailboxes bare or in angle brackets, in groups or not, behind
 * display names of atoms, quoted strings, encoded words and obsolete dots,
 * with comments and folds wherever RFC 5322 allows them, and empty list
 * members; decoys that name decoy.example (an address in a quoted display
 * name, in a comment, in an encoded word) are never authors.  Some fields
 * are broken on purpose (an unbalanced quote, comment or bracket), some
 * authors have a domain that is not a host name.  The fields go through a
 * real milter::Session, whose Facts::from then feeds both the policy
 * fields (resolve_field) and a real dmarc::Checker, where every author
 * domain publishes p=reject and nothing aligns.  What must hold:
 *   - from.domain (and from) are what the known authors say;
 *   - DMARC evaluated the known author domains first, and saw a problem
 *     exactly when part of From gave none; only then did it evaluate more
 *     (the domains it read leniently from what does not parse);
 *   - from.domain has a value exactly when DMARC evaluated that one domain
 *     and nothing else, and then dmarc.domain is the same;
 *   - a message with an author under p=reject, in a broken field too,
 *     always fails with reject.
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "checks/dmarc.h"
#include "milter/session.h"
#include "policy/values.h"
#include "support/fake_checks.h"
#include "support/fake_txt_lookups.h"
#include "util/text.h"

namespace portcullis {
namespace {

constexpr int kRounds = 4000;

struct Author {
    std::string local;
    std::string domain;   // as written
    std::string address() const { return local + "@" + to_lower(domain); }
    bool has_host_name() const { return is_mail_domain(to_lower(domain)); }
};

/* One message's From fields, and what they are known to hold. */
struct Message {
    std::vector<std::string> fields;
    std::vector<Author> authors;          // of the fields that are not broken, in order
    std::vector<Author> broken_authors;   // of the fields that are
    bool broken = false;                  // a field was broken on purpose
};

class FromGenerator {
public:
    explicit FromGenerator(unsigned seed) : random_(seed) {}

    Message message() {
        Message made;
        const int fields = chance(85) ? 1 : pick(2, 3);
        for (int i = 0; i < fields; ++i) {
            std::vector<Author> authors;
            std::string value = " " + address_list(authors);
            if (chance(8)) {
                value += pick_of<std::string>({" \"unended", " (unended", " <", " <a@decoy.example"});
                made.broken = true;
                made.broken_authors.insert(made.broken_authors.end(), authors.begin(), authors.end());
            } else {
                made.authors.insert(made.authors.end(), authors.begin(), authors.end());
            }
            made.fields.push_back(value);
        }
        return made;
    }

private:
    bool chance(int percent) { return pick(0, 99) < percent; }
    int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }
    template <typename T>
    T pick_of(const std::vector<T>& items) {
        return items[static_cast<size_t>(pick(0, static_cast<int>(items.size()) - 1))];
    }

    /* Where RFC 5322 allows CFWS: nothing, blanks, a fold, a comment. */
    std::string cfws() {
        switch (pick(0, 5)) {
            case 0: return "";
            case 1: return "\r\n ";
            case 2: return "\n\t";
            case 3: return " " + comment() + " ";
            default: return " ";
        }
    }
    std::string comment() {
        return pick_of<std::string>({"(a@decoy.example)", "(x <a@decoy.example>, (nested b@decoy.example))",
                                     "(\\) a@decoy.example)", "(\"<a@decoy.example>\")", "(work)"});
    }
    std::string word() {
        return pick_of<std::string>({"Evil", "John", "Q.", "\"x <a@decoy.example>\"", "\"Evil, <a@decoy.example>\"",
                                     "\"a@decoy.example\"", "\"\\\"<a@decoy.example>\\\"\"",
                                     "=?utf-8?q?a=40decoy.example?=", "=?utf-8?b?YUBkZWNveS5leGFtcGxl?=",
                                     "=?iso-8859-1?q?J=F6rg_=3Ca=40decoy.example=3E?=", "J\xc3\xb6rg"});
    }
    /* A display name; "Q." never comes first (obs-phrase dots follow a word). */
    std::string phrase() {
        std::string text =
            pick_of<std::string>({"Evil", "\"Evil, <a@decoy.example>\"", "=?utf-8?q?a=40decoy.example?="});
        for (int n = pick(0, 3); n > 0; --n) text += (chance(50) ? " " : cfws()) + word();
        return text;
    }
    Author author() {
        return {pick_of<std::string>({"a", "b.c", "\"q u\"", "x+y", "Ceo"}),
                pick_of<std::string>({"good.example", "evil.example", "Sub.Good.Example", "relay.example",
                                      "good.example", "localhost", "[192.0.2.1]"})};
    }
    /* A mailbox: bare, or with a display name (perhaps none) in angle brackets. */
    std::string mailbox(std::vector<Author>& authors) {
        const Author made = author();
        authors.push_back(made);
        const std::string addr = made.local + "@" + made.domain;
        if (chance(40)) return cfws() + addr + cfws();
        const std::string name = chance(80) ? phrase() + cfws() : "";
        return name + "<" + addr + ">" + cfws();
    }
    std::string group(std::vector<Author>& authors) {
        std::string text = phrase() + ":";
        for (int n = pick(0, 2), i = 0; i < n; ++i) text += (i ? "," : "") + mailbox(authors);
        return text + ";" + cfws();
    }
    std::string address_list(std::vector<Author>& authors) {
        std::string text;
        for (int n = pick(1, 3), i = 0; i < n; ++i) {
            if (i) text += chance(10) ? ", ," : ",";
            text += chance(15) ? group(authors) : mailbox(authors);
        }
        return text;
    }

    std::mt19937 random_;
};

class FromAgreementTest : public ::testing::Test {
protected:
    class Quiet final : public milter::DecisionSink {
    public:
        bool wants_rule_checks() const override { return false; }
        void rule_checked(const milter::Session&, policy::Stage, const policy::Rule&, bool) override {}
        void decision(const milter::Session&, policy::Stage, std::string_view, const policy::Rule*,
                      std::string_view) override {}
    };

    FromAgreementTest() {
        for (const char* domain : {"good.example", "evil.example", "relay.example"}) {
            dns_.add(std::string("_dmarc.") + domain, {"v=DMARC1; p=reject"});
        }
    }

    std::unique_ptr<test_support::DrivenSession> session() {
        return std::make_unique<test_support::DrivenSession>(
            test_support::snapshot_with("on eom { log \"from ${from.domain}\" if from.domain == evil.example }\n"),
            quiet_);
    }

    Quiet quiet_;
    test_support::FakeTxtLookups dns_;
    const dmarc::Checker checker_{"/usr/share/publicsuffix/public_suffix_list.dat"};
};

/* The distinct lower-case host-name domains of AUTHORS, in order. */
std::vector<std::string> domains_of(const std::vector<Author>& authors) {
    std::vector<std::string> domains;
    for (const Author& author : authors) {
        const std::string domain = to_lower(author.domain);
        if (author.has_host_name() && std::find(domains.begin(), domains.end(), domain) == domains.end()) {
            domains.push_back(domain);
        }
    }
    return domains;
}

std::string shown(const policy::FieldValue& value) {
    return value.kind == policy::FieldValue::Kind::absent ? "(no value)" : value.text;
}

TEST_F(FromAgreementTest, FromDomainAndDmarcNeverDiffer) {
    FromGenerator generator(5322);
    auto filter = session();
    filter->connect(parse_ip("203.0.113.5"), "unknown", 1);
    const dmarc::Identifiers nothing_aligned{"fail", "bounce.other.example", {}};
    int single = 0, several = 0, problems = 0;
    for (int round = 0; round < kRounds; ++round) {
        const Message message = generator.message();
        filter->mail("<x@bounce.other.example>", "", 0);
        filter->rcpt("<user@example.com>");
        for (const auto& value : message.fields) filter->header("From", value);
        filter->end_of_message();
        const policy::Facts& facts = filter->facts();
        const std::optional<dmarc::Verdict> checked =
            checker_.check(facts.from, nothing_aligned, dns_, [] { return 0u; });
        ASSERT_TRUE(checked) << "the DMARC records are all answered at once";
        const dmarc::Verdict& verdict = *checked;
        const policy::FieldValue from_domain = policy::resolve_field(policy::FieldId::from_domain, "", facts);
        const policy::FieldValue from = policy::resolve_field(policy::FieldId::from, "", facts);

        std::string where = "round " + std::to_string(round) + ":";
        for (const auto& value : message.fields) where += "\nFrom:" + value;
        const std::vector<std::string> domains = domains_of(message.authors);
        const bool problem = message.broken || message.authors.empty() ||
                             std::any_of(message.authors.begin(), message.authors.end(),
                                         [](const Author& a) { return !a.has_host_name(); });

        // What the known authors say.
        ASSERT_GE(verdict.author_domains.size(), domains.size()) << where;
        ASSERT_TRUE(std::equal(domains.begin(), domains.end(), verdict.author_domains.begin())) << where;
        if (!problem) {
            ASSERT_EQ(verdict.author_domains.size(), domains.size()) << where;
        }
        ASSERT_EQ(verdict.from_problem.empty(), !problem) << where << "\n" << verdict.from_problem;
        const bool one_domain = !problem && domains.size() == 1;
        ASSERT_EQ(shown(from_domain), one_domain ? domains.front() : "(no value)") << where;
        const auto same_address = [&](const Author& a) { return a.address() == message.authors.front().address(); };
        const bool one_address =
            one_domain && std::all_of(message.authors.begin(), message.authors.end(), same_address);
        ASSERT_EQ(shown(from), one_address ? message.authors.front().address() : "(no value)") << where;

        // The two readings of the one parse agree.
        const bool dmarc_single = verdict.author_domains.size() == 1 && verdict.from_problem.empty();
        ASSERT_EQ(from_domain.kind != policy::FieldValue::Kind::absent, dmarc_single) << where;
        if (dmarc_single) {
            ASSERT_EQ(verdict.from_domain, from_domain.text) << where;
        }

        // An author under p=reject is never a way around it: every author
        // domain with a host name here publishes it (sub.good.example
        // through good.example), and decoy.example nothing.
        const bool broken_reject = std::any_of(message.broken_authors.begin(), message.broken_authors.end(),
                                               [](const Author& a) { return a.has_host_name(); });
        if (!domains.empty() || broken_reject) {
            ASSERT_EQ(dmarc::result_name(verdict.result), "fail") << where;
            ASSERT_EQ(verdict.policy, "reject") << where;
        } else {
            ASSERT_EQ(dmarc::result_name(verdict.result), "permerror") << where;
        }
        ++(dmarc_single ? single : problem ? problems : several);
    }
    // The generator must reach every kind of From, or the test proves little.
    EXPECT_GT(single, kRounds / 10);
    EXPECT_GT(several, kRounds / 10);
    EXPECT_GT(problems, kRounds / 10);
}

}  // namespace
}  // namespace portcullis
