/*
 * fake_txt_lookups.h: TXT answers from a table, for the DKIM and DMARC
 * unit tests.
 *
 * add(NAME, RECORDS) gives NAME's TXT records; time_out(NAME) makes NAME
 * a temperror ("timeout"); any other name is not_found.  Names are
 * compared without case and without a final dot.  started and answered
 * list the names as they were asked, in order.
 */
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dns/txt_lookups.h"
#include "util/text.h"

namespace portcullis::test_support {

class FakeTxtLookups final : public dns::TxtLookups {
public:
    void add(const std::string& name, std::vector<std::string> records) {
        auto& stored = table_[key(name)];
        for (auto& record : records) stored.push_back(std::move(record));
    }
    void time_out(const std::string& name) { timeouts_.insert(key(name)); }

    void start(const std::string& name) override { started.push_back(key(name)); }

    dns::Answer answer(const std::string& name) override {
        answered.push_back(key(name));
        const auto found = table_.find(key(name));
        if (found != table_.end()) return {dns::Answer::Status::found, found->second, "", {}};
        if (timeouts_.count(key(name)) != 0) return {dns::Answer::Status::temperror, {}, "timeout", {}};
        return {dns::Answer::Status::not_found, {}, "", {}};
    }

    std::vector<std::string> started, answered;

private:
    static std::string key(std::string_view name) {
        if (name.ends_with('.')) name.remove_suffix(1);
        return to_lower(name);
    }

    std::map<std::string, std::vector<std::string>> table_;
    std::set<std::string> timeouts_;
};

}  // namespace portcullis::test_support
