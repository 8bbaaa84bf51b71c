/*
 * later_answers.h: the sources of policy/lookups.h and policy/stateful.h
 * as fakes that answer at once or later, for the unit tests and the
 * policy fuzz target.
 *
 * LaterAnswers<KEY, ANSWER> keeps the answers by key as lookups.h says a
 * source does: the first ask of a key starts its work (the key goes into
 * `started`); with `later` unset the answer is there at once, with it
 * set the ask gives null until arrive(), which gives every started key
 * its answer and calls on_arrival (a session's wake).  on_start, when
 * set, is called as a key is started whose answer is to come later (to
 * have it come by itself).  forget() drops what is kept (a new
 * message).
 *
 *   FakeAddressLookups  DNS list answers from `table` (list() fills it);
 *                       a name not in it is not_found.  Names are
 *                       compared without case, as DNS compares them, and
 *                       kept in lower case.
 *   FakeSpfResults      `answer` for every identity; started lists the
 *                       identities checked.
 *   FakeAuthentication  `dkim_answer` and `dmarc_answer`, from dkim_checks
 *                       and dmarc_checks (each keyed "dkim", "dmarc").
 *   FakeStatefulChecks  `answer` to every greylist() and ratelimit() call,
 *                       counted in `calls`, with what was asked; with
 *                       `later` set the Done callbacks are kept until
 *                       answer_all(), and on_question is called as one
 *                       is kept.
 */
#pragma once

#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/lookups.h"
#include "policy/stateful.h"
#include "util/text.h"

namespace portcullis::test_support {

template <typename Key, typename Answer>
class LaterAnswers {
public:
    explicit LaterAnswers(std::function<Answer(const Key&)> answer_for) : answer_for_(std::move(answer_for)) {}

    bool later = false;
    std::function<void()> on_arrival;
    std::function<void()> on_start;
    std::vector<Key> started;

    const Answer* ask(const Key& key) {
        for (const Entry& entry : entries_) {
            if (entry.key == key) return entry.answer ? &*entry.answer : nullptr;
        }
        started.push_back(key);
        Entry& entry = entries_.emplace_back(Entry{key, std::nullopt});
        if (!later) return &entry.answer.emplace(answer_for_(key));
        if (on_start) on_start();
        return nullptr;
    }

    /* Whether a started key has no answer yet. */
    bool waiting() const {
        for (const Entry& entry : entries_) {
            if (!entry.answer) return true;
        }
        return false;
    }

    void arrive() {
        if (!waiting()) return;
        for (Entry& entry : entries_) {
            if (!entry.answer) entry.answer = answer_for_(entry.key);
        }
        if (on_arrival) on_arrival();
    }

    void forget() { entries_.clear(); }

private:
    struct Entry {
        Key key;
        std::optional<Answer> answer;
    };
    std::function<Answer(const Key&)> answer_for_;
    std::list<Entry> entries_;   // a list: the answers handed out stay where they are
};

class FakeAddressLookups final : public policy::AddressLookups {
public:
    using Kind = policy::AddressAnswer::Kind;

    void list(const std::string& name, const std::vector<std::string>& codes) {
        policy::AddressAnswer& answer = table[name];
        answer.kind = Kind::found;
        for (const auto& code : codes) answer.addresses.push_back(*parse_ip(code));
    }

    const policy::AddressAnswer* addresses(const std::string& name) override { return answers.ask(to_lower(name)); }

    std::map<std::string, policy::AddressAnswer> table;
    LaterAnswers<std::string, policy::AddressAnswer> answers{[this](const std::string& name) {
        const auto found = table.find(name);
        return found == table.end() ? policy::AddressAnswer{Kind::not_found, {}} : found->second;
    }};
};

class FakeSpfResults final : public policy::SpfResults {
public:
    const policy::SpfAnswer* spf(const policy::SpfIdentity& identity) override { return checks.ask(identity); }

    policy::SpfAnswer answer{"fail", "example.com"};
    LaterAnswers<policy::SpfIdentity, policy::SpfAnswer> checks{[this](const policy::SpfIdentity&) { return answer; }};
};

class FakeAuthentication : public policy::MessageAuthentication {
public:
    const policy::DkimAnswer* dkim() override { return dkim_checks.ask("dkim"); }
    const policy::DmarcAnswer* dmarc() override { return dmarc_checks.ask("dmarc"); }

    /* Both answers later, or both at once. */
    void set_later(bool later) { dkim_checks.later = dmarc_checks.later = later; }
    void arrive() {
        dkim_checks.arrive();
        dmarc_checks.arrive();
    }

    policy::DkimAnswer dkim_answer{"pass", "example.org"};
    policy::DmarcAnswer dmarc_answer{"fail", "reject", "example.org"};
    LaterAnswers<std::string, policy::DkimAnswer> dkim_checks{[this](const std::string&) { return dkim_answer; }};
    LaterAnswers<std::string, policy::DmarcAnswer> dmarc_checks{[this](const std::string&) { return dmarc_answer; }};
};

class FakeStatefulChecks final : public policy::StatefulChecks {
public:
    explicit FakeStatefulChecks(policy::StatefulAnswer given = {}) : answer(std::move(given)) {}

    void greylist(const policy::GreylistParams& params, const policy::Facts& facts, Done done) override {
        seen_params = params;
        seen_rcpt = facts.rcpt;
        take(std::move(done));
    }
    void ratelimit(const policy::RatelimitParams& params, std::span<const std::string> key, Done done) override {
        seen_bucket = params.bucket;
        seen_key.assign(key.begin(), key.end());
        take(std::move(done));
    }

    /* Every question still unanswered gets `answer`. */
    void answer_all() {
        auto waiting = std::move(unanswered);
        unanswered.clear();
        for (auto& done : waiting) done(answer);
    }

    policy::StatefulAnswer answer;
    bool later = false;
    std::function<void()> on_question;
    int calls = 0;
    std::vector<Done> unanswered;
    policy::GreylistParams seen_params;
    std::string seen_rcpt;
    std::string seen_bucket;
    std::vector<std::string> seen_key;

private:
    void take(Done done) {
        ++calls;
        if (!later) {
            done(answer);
            return;
        }
        unanswered.push_back(std::move(done));
        if (on_question) on_question();
    }
};

}  // namespace portcullis::test_support
