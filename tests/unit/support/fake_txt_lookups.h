/*
 * fake_txt_lookups.h: TXT answers from a table, for the DKIM and DMARC
 * tests, the DKIM driver and the benchmark of the checks.
 *
 * add(NAME, RECORDS) gives NAME's TXT records; time_out(NAME) makes NAME
 * a temperror ("timeout"); any other name is not_found.  Names are
 * compared without case and without a final dot.  started and answered
 * list the names as they were started and asked for, in order.
 *
 * Answers come at once, unless hold_answers() was called: then answer()
 * gives null for a name until release_all() has answered every question
 * out (started, or asked for without an answer), or release(NAME) that
 * one.
 */
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dns/lookups.h"
#include "dns/txt_lookups.h"

namespace portcullis::test_support {

class FakeTxtLookups final : public dns::TxtLookups {
public:
    void add(const std::string& name, std::vector<std::string> records) {
        auto& stored = table_[dns::lookup_key(name)];
        for (auto& record : records) stored.push_back(std::move(record));
    }
    void time_out(const std::string& name) { timeouts_.insert(dns::lookup_key(name)); }

    void hold_answers() { holding_ = true; }
    /* Whether there was a question to answer. */
    bool release_all() {
        const bool any = !out_.empty();
        released_.insert(out_.begin(), out_.end());
        out_.clear();
        return any;
    }
    void release(const std::string& name) {
        const std::string key = dns::lookup_key(name);
        out_.erase(key);
        released_.insert(key);
    }
    size_t out() const { return out_.size(); }

    void start(const std::string& name) override {
        started.push_back(dns::lookup_key(name));
        if (holding_ && released_.count(started.back()) == 0) out_.insert(started.back());
    }

    const dns::Answer* answer(const std::string& name) override {
        const std::string key = dns::lookup_key(name);
        answered.push_back(key);
        if (holding_ && released_.count(key) == 0) {
            out_.insert(key);
            return nullptr;
        }
        const auto [at, added] = answers_.try_emplace(key);
        if (added) at->second = answer_of(key);
        return &at->second;
    }

    std::vector<std::string> started, answered;

private:
    dns::Answer answer_of(const std::string& key) const {
        const auto found = table_.find(key);
        if (found != table_.end()) return {dns::Answer::Status::found, found->second, "", {}};
        if (timeouts_.count(key) != 0) return {dns::Answer::Status::temperror, {}, "timeout", {}};
        return {dns::Answer::Status::not_found, {}, "", {}};
    }

    std::map<std::string, std::vector<std::string>> table_;
    std::set<std::string> timeouts_;
    bool holding_ = false;
    std::set<std::string> out_;
    std::set<std::string> released_;
    std::map<std::string, dns::Answer> answers_;   // given out by address: never moved
};

}  // namespace portcullis::test_support
