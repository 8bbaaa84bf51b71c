/*
 * checks.h: the one place a loaded state gets its checks.
 *
 * attach_checks() goes through the table of checks (checks.cc).  Each
 * entry says whether the loaded policy and config want the check and sets
 * it up: the Authentication-Results header (which turns on SPF, DKIM and
 * DMARC and asks the MTA for the HELO name, the header and the body),
 * greylisting and rate limits (on RESOURCES.store), DNS lists, SPF, DKIM,
 * DMARC (with the Public Suffix List of auth.public_suffix_list).  The
 * checks that look things up share one resolver (dns.resolver,
 * dns.timeout), made here when one of them is wanted.  The policy stays
 * as loaded; the snapshot gets the checks and what they ask of the MTA.
 *
 * Without a store, greylist and ratelimit rules act as with the store
 * down; with RESOURCES.lookups false (`try --dry`) no lookup check is
 * made: DNS lists are never listed, SPF, DKIM and DMARC have no value.
 * It returns "" or why a check cannot be set up, as a config error at
 * the place the key to blame was set ("-o dns.resolver=...: error:
 * dns.resolver: ...").  It starts no thread, so the
 * daemon can try a state's checks before it forks; a resolver that does
 * not answer is no error here (its lookups time out).
 */
#pragma once

#include <memory>
#include <string>

#include "daemon/loading.h"
#include "store/store.h"

namespace portcullis::daemon {

struct Resources {
    std::shared_ptr<store::Store> store;
    bool lookups = true;
};

std::string attach_checks(State& state, const Resources& resources);

}  // namespace portcullis::daemon
