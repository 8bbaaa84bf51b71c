/*
 * message_auth.h: DKIM, DMARC and the Authentication-Results header for
 * one message, done by the daemon's checks over the session's lookups.
 *
 * A stream (milter::MessageStream) is begun for each message when the
 * rules read dkim or dmarc fields or the config asks for the
 * Authentication-Results header (auth.authserv_id set, auth.add_header
 * true).  It gives the header and body to the DKIM verifier as they
 * arrive, starts the key and DMARC record lookups once the header is in
 * (DMARC's author domains from the From header the session parsed,
 * policy::Facts::from), and notes the Authentication-Results
 * fields that carry our authserv-id (whenever one is set, header or not).
 * DKIM, DMARC and the header are worked out at end of message on first
 * use, without waiting: dkim() and dmarc() give null until what they need
 * has come, and WAKE is called when it has.  The signatures are checked
 * (the RSA and Ed25519 work) on a small pool of threads, off the event
 * loop (signature_workers()); a check whose stream is gone before a
 * thread takes it is dropped unchecked.  Each result is logged (debug; info for errors and DMARC
 * failures) and counted (portcullis_auth_results_total).
 */
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "checks/dmarc.h"
#include "dns/lookups.h"
#include "milter/snapshot.h"
#include "util/worker_pool.h"

namespace portcullis::daemon {

struct AuthSettings {
    std::string authserv_id;   // "" : no header, and nothing taken as forged
    bool add_header = false;   // our header (with authserv_id set)
    bool dkim = false;         // verify DKIM signatures
    bool dmarc = false;        // evaluate DMARC (needs DKIM and SPF)
};

/* The threads that check the signatures: for the tests, which hold them busy. */
WorkerPool& signature_workers();

/* LOOKUPS and FACTS outlive the stream; DMARC is null unless SETTINGS.dmarc. */
std::unique_ptr<milter::MessageStream> begin_message_stream(const policy::Facts& facts, dns::Lookups& lookups,
                                                            std::shared_ptr<const dmarc::Checker> dmarc,
                                                            const AuthSettings& settings,
                                                            std::function<void()> wake);

}  // namespace portcullis::daemon
