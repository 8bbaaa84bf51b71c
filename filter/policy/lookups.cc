/*
 * lookups.cc: one lookup per name per session (see lookups.h).
 */
#include "policy/lookups.h"

#include "util/text.h"

namespace portcullis::policy {

LookupCache::Entry& LookupCache::entry(const std::string& name) {
    auto [found, added] = entries_.try_emplace(to_lower(name));
    if (added) found->second.pending = resolver_->start(found->first);
    return found->second;
}

void LookupCache::prefetch(const std::string& name) { entry(name); }

const AddressAnswer& LookupCache::answer(const std::string& name) {
    Entry& found = entry(name);
    if (!found.answer) {
        found.answer = found.pending->wait();
        found.pending.reset();
    }
    return *found.answer;
}

}  // namespace portcullis::policy
