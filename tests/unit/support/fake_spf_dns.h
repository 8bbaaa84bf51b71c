/*
 * fake_spf_dns.h: a DNS for spf::check() from a table, for the unit
 * tests, the RFC 7208 suite driver and the fuzz target.
 *
 * add(NAME, TYPE, RECORDS) gives NAME's records of TYPE; time_out(NAME)
 * makes every lookup of NAME whose type has no records a temperror
 * ("timeout"); alias(NAME, TARGET) is a CNAME, followed for the types
 * NAME has no records of.  Any other lookup is not_found.  Names are
 * compared without case and without a final dot.  queries lists every
 * lookup made, in order.
 *
 * Answers come at once, unless hold_answers() was called: then a
 * question gets no answer (null) until release_next() answers it, one
 * question a call, the oldest first, as answers come from the network.
 * out() counts the questions waiting.  checked() runs spf::check() again
 * after each answer, as a session does when it is woken, until it gives
 * a verdict; ROUNDS, if given, counts the calls that waited.
 */
#pragma once

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "checks/spf.h"
#include "util/text.h"

namespace portcullis::test_support {

class FakeSpfDns final : public spf::SpfDns {
public:
    using Type = dns::RecordType;

    void add(const std::string& name, Type type, std::vector<std::string> records) {
        auto& stored = table_[{key(name), type}];
        for (auto& record : records) stored.push_back(std::move(record));
    }
    void time_out(const std::string& name) { timeouts_.insert(key(name)); }
    void alias(const std::string& name, const std::string& target) { aliases_[key(name)] = key(target); }

    void hold_answers() { holding_ = true; }
    bool release_next() {
        if (out_.empty()) return false;
        released_.insert(out_.front());
        out_.pop_front();
        return true;
    }
    size_t out() const { return out_.size(); }

    const dns::Answer* lookup(const std::string& name, Type type) override {
        queries.emplace_back(name, type);
        const Question question{key(name), type};
        if (holding_ && released_.count(question) == 0) {
            if (std::find(out_.begin(), out_.end(), question) == out_.end()) out_.push_back(question);
            return nullptr;
        }
        const auto [at, added] = answers_.try_emplace(question);
        if (added) at->second = answer_of(question.first, type);
        return &at->second;
    }

    std::vector<std::pair<std::string, Type>> queries;

private:
    using Question = std::pair<std::string, Type>;

    static std::string key(std::string_view name) {
        if (name.ends_with('.')) name.remove_suffix(1);
        return to_lower(name);
    }

    dns::Answer answer_of(std::string at, Type type) const {
        // A CNAME chain longer than this is a loop.
        for (int hops = 0; hops < 8; ++hops) {
            const auto found = table_.find({at, type});
            if (found != table_.end()) return {dns::Answer::Status::found, found->second, "", {}};
            if (timeouts_.count(at) != 0) return {dns::Answer::Status::temperror, {}, "timeout", {}};
            const auto alias = aliases_.find(at);
            if (alias == aliases_.end()) break;
            at = alias->second;
        }
        return {dns::Answer::Status::not_found, {}, "", {}};
    }

    std::map<Question, std::vector<std::string>> table_;
    std::set<std::string> timeouts_;
    std::map<std::string, std::string> aliases_;
    bool holding_ = false;
    std::deque<Question> out_;           // asked, not yet answered, oldest first
    std::set<Question> released_;
    std::map<Question, dns::Answer> answers_;   // given out by address: never moved
};

inline spf::Verdict checked(const spf::Request& request, FakeSpfDns& dns, const spf::Limits& limits = {},
                            int* rounds = nullptr) {
    // A check asks a few dozen questions at most (spf.h).
    for (int waited = 0; waited < 1000; ++waited) {
        if (auto verdict = spf::check(request, dns, limits)) return *verdict;
        if (rounds) ++*rounds;
        if (!dns.release_next()) throw std::logic_error("spf::check() waits, but asked no question");
    }
    throw std::logic_error("spf::check() still waits after 1000 answers");
}

}  // namespace portcullis::test_support
