/*
 * session_checks.h: the checks that look things up, for each session:
 * DNS lists, SPF, and each message's DKIM, DMARC and Authentication-
 * Results, every query through the daemon's one resolver.
 *
 * LookupChecks is a snapshot's milter::Checks.  Each session it begins
 * has one dns::Lookups, so every name is asked once per session, whatever
 * asks it:
 *   addresses()      the A records of a DNS list name (a temperror, which
 *                    the policy takes as "not listed", is logged at info);
 *   spf()            the SPF check (checks/spf) of an identity, worked out
 *                    again from the answers it has each time one comes;
 *                    the verdict is logged (debug; info for temperror and
 *                    permerror, with why) and counted; a client without an
 *                    address (local submission) is none without a lookup;
 *   begin_message()  the message's stream (message_auth.h), when DKIM,
 *                    DMARC or our header is wanted.
 * next_message() forgets the SPF verdict, and the answers once a long
 * session has gathered many.
 */
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "checks/dmarc.h"
#include "daemon/message_auth.h"
#include "dns/resolver.h"
#include "milter/snapshot.h"

namespace portcullis::daemon {

struct LookupSettings {
    std::shared_ptr<dns::Resolver> resolver;
    std::shared_ptr<const dmarc::Checker> dmarc;     // null: no DMARC
    AuthSettings auth;                               // DKIM, and our header
};

class LookupChecks final : public milter::Checks {
public:
    explicit LookupChecks(LookupSettings settings) : settings_(std::move(settings)) {}
    std::unique_ptr<milter::SessionChecks> begin_session(std::function<void()> wake) override;

private:
    LookupSettings settings_;
};

}  // namespace portcullis::daemon
