/*
 * txt_lookups.h: one message's TXT lookups (DKIM keys, DMARC records), as
 * the checks ask for them, without knowing who answers.
 *
 * A check calls start() for every name it will need as soon as it knows
 * the name (DKIM keys once the headers are in, the DMARC record once From
 * is known), so the lookups run in parallel while the body arrives;
 * answer() then waits for one.  A name is asked once per TxtLookups: a
 * second start() or answer() of it gives the first answer.  Names are
 * compared without case and without a final dot.
 *
 * The daemon implements it over its resolver (every query goes through
 * dns.resolver, counted and logged); the unit tests over a table.  One
 * TxtLookups serves one message, from one thread at a time.
 */
#pragma once

#include <string>

#include "dns/resolver.h"

namespace portcullis::dns {

class TxtLookups {
public:
    virtual ~TxtLookups() = default;
    /* Send the question for NAME's TXT records; return at once. */
    virtual void start(const std::string& name) = 0;
    /* NAME's TXT records (each record's strings joined), waiting for the
     * answer within the resolver's timeout; started now if it was not. */
    virtual Answer answer(const std::string& name) = 0;
};

}  // namespace portcullis::dns
