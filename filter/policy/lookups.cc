/*
 * lookups.cc: one lookup per name per session, one SPF check per
 * message (see lookups.h).
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

const SpfAnswer& SpfCache::answer(const SpfIdentity& identity) {
    if (!last_ || last_->first != identity) last_.emplace(identity, checker_->check(identity));
    return last_->second;
}

}  // namespace portcullis::policy
