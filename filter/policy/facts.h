/*
 * facts.h: what the policy engine knows about one SMTP session.
 *
 * The milter glue fills a Facts as the MTA reports each stage; `try`
 * fills one from the command line.  The engine reads it and never sees
 * where it came from.  Facts that cost a lookup (SPF, DKIM, DMARC, DNSBL)
 * are not here: the evaluator asks for them only when a rule that is
 * reached needs them, from the sources lookups.h describes.
 */
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/from_header.h"
#include "util/ip.h"

namespace portcullis::policy {

class AddressLookups;
class MessageAuthentication;
class SpfResults;

struct Header {
    std::string name;
    std::string value;   // unfolded as the MTA gave it, leading space kept
};

struct Facts {
    // connect
    std::optional<IpAddress> client_ip;   // absent for local submission
    std::string client_host = "unknown";
    uint16_t client_port = 0;
    // helo
    std::string helo;
    bool tls = false;
    // mail
    bool authenticated = false;
    std::string auth_user;
    std::string sender;                  // without angle brackets; "" for <>
    uint64_t size = 0;                   // SIZE= at mail, the real size at eom
    // rcpt
    std::string rcpt;
    uint64_t rcpt_count = 0;             // recipients accepted before this one
    std::optional<uint64_t> greylist_wait;   // set only to expand a greylist reply
    // eom
    std::vector<Header> headers;         // those header(NAME) reads (PolicyNeeds::header_names)
    FromHeader from;                     // every From field, parsed as it comes: from, from.domain, DMARC

    // Not policy fields, but named in logs.
    std::string queue_id;

    // Where DNSBL answers come from; null: no list is consulted.
    AddressLookups* lookups = nullptr;
    // Where SPF results come from; null: spf and spf.domain have no value.
    SpfResults* spf = nullptr;
    // Where DKIM and DMARC results come from; null: those fields have no value.
    MessageAuthentication* auth = nullptr;

    /* Forget the message-level facts (a new MAIL FROM or RSET). */
    void reset_message();
};

}  // namespace portcullis::policy
