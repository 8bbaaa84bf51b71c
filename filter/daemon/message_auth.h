/*
 * message_auth.h: DKIM, DMARC and the Authentication-Results header for
 * each message, done by the daemon's checks and resolver.
 *
 * An Authenticator is made per loaded state when the rules read dkim or
 * dmarc fields or the config asks for the Authentication-Results header
 * (auth.authserv_id set, auth.add_header true).  Its streams (one per
 * message, milter::MessageStream) give the header and body to the DKIM
 * verifier as they arrive, start the key and DMARC record lookups once
 * the header is in (DMARC's author domains from the From header the
 * session parsed, policy::Facts::from), and note the
 * Authentication-Results fields that carry our authserv-id (whenever one
 * is set, header or not).  DKIM, DMARC and the header are worked out at
 * end of message on first use, every lookup through the resolver; each
 * result is logged (debug; info for errors and DMARC failures) and
 * counted (portcullis_auth_results_total).
 */
#pragma once

#include <memory>
#include <string>

#include "checks/dkim.h"
#include "checks/dmarc.h"
#include "dns/resolver.h"
#include "milter/snapshot.h"

namespace portcullis::daemon {

struct AuthSettings {
    std::string authserv_id;   // "" : no header, and nothing taken as forged
    bool add_header = false;   // our header (with authserv_id set)
    bool dkim = false;         // verify DKIM signatures
    bool dmarc = false;        // evaluate DMARC (needs DKIM and SPF)
};

class Authenticator final : public milter::MessageAuthenticator {
public:
    Authenticator(std::shared_ptr<dns::Resolver> resolver, std::shared_ptr<const dmarc::Checker> dmarc,
                  AuthSettings settings);
    std::unique_ptr<milter::MessageStream> begin(const policy::Facts& facts) override;

private:
    std::shared_ptr<dns::Resolver> resolver_;
    std::shared_ptr<const dmarc::Checker> dmarc_;   // null unless settings_.dmarc
    AuthSettings settings_;
};

}  // namespace portcullis::daemon
