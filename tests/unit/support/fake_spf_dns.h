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
 */
#pragma once

#include <map>
#include <set>
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

    dns::Answer lookup(const std::string& name, Type type) override {
        queries.emplace_back(name, type);
        std::string at = key(name);
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

    std::vector<std::pair<std::string, Type>> queries;

private:
    static std::string key(std::string_view name) {
        if (name.ends_with('.')) name.remove_suffix(1);
        return to_lower(name);
    }

    std::map<std::pair<std::string, Type>, std::vector<std::string>> table_;
    std::set<std::string> timeouts_;
    std::map<std::string, std::string> aliases_;
};

}  // namespace portcullis::test_support
