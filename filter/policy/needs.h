/*
 * needs.h: what a loaded policy needs from the MTA.
 *
 * A milter costs the MTA a round trip for every stage it asks for and
 * every reply it must wait for.  analyse_needs() tells the glue, for each
 * stage, whether any rule runs there (else the stage can be skipped) and
 * whether a rule there can answer the client (else the MTA need not wait
 * for a reply), whether header or body data is needed at all, and whether
 * a rule keeps state between sessions (so the store must be there), and
 * whether a rule consults a DNS list or reads SPF, DKIM or DMARC (so
 * the resolver must be, and DKIM needs the header and body).  It is
 * computed once per loaded policy, so a reload recomputes it.
 *
 * header_names lists the fields header(NAME) reads, each name once: the
 * session keeps those fields and no other (a message's header fields
 * are most of what it holds while it waits).
 *
 * dns_lists names every DNS list the rules consult, each time it is
 * written (in dnsbl "ZONE", dnsbl("ZONE") in a condition, a ratelimit key
 * or a ${...} text), with where, in stage order: the daemon warns of a
 * zone its resolver would never ask about.
 */
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ast.h"

namespace portcullis::policy {

/* One DNS list as a rule names it. */
struct DnsListUse {
    std::string zone;        // as written
    SourceLocation where;    // of the zone's string, or of the dnsbl field
};

struct PolicyNeeds {
    std::array<bool, kStageCount> runs{};       // some rule runs at this stage
    std::array<bool, kStageCount> answers{};    // some rule here needs the MTA to wait for its reply
    std::array<bool, kStageCount> refuses{};    // some rule here can refuse (reject, tempfail, ...)
    std::array<bool, kStageCount> uses_fields_of{};   // a field of this stage is read somewhere
    bool headers = false;    // the MTA sends the header: header(), from or from.domain is read, or a check needs it
    bool body = false;       // the body is needed: size read at eom (the real size), or DKIM
    bool store = false;      // a greylist or ratelimit rule (monitored ones too: they record)
    bool spf = false;        // spf or spf.domain is read (DMARC reads it too)
    bool dkim = false;       // dkim or dkim.domain is read (DMARC reads it too)
    bool dmarc = false;      // dmarc, dmarc.policy or dmarc.domain is read
    std::vector<DnsListUse> dns_lists;   // `in dnsbl` and dnsbl(), every one
    std::vector<std::string> header_names;   // header(NAME), as first written

    bool consults_dns_lists() const { return !dns_lists.empty(); }
    /* Whether header(NAME) is read, in any case of NAME. */
    bool reads_header(std::string_view name) const;

    bool runs_at(Stage stage) const { return runs[static_cast<size_t>(stage)]; }
    bool answers_at(Stage stage) const { return answers[static_cast<size_t>(stage)]; }
    bool refuses_at(Stage stage) const { return refuses[static_cast<size_t>(stage)]; }
    bool reads_fields_of(Stage stage) const { return uses_fields_of[static_cast<size_t>(stage)]; }
};

PolicyNeeds analyse_needs(const Policy& policy, bool monitor_all);

}  // namespace portcullis::policy
