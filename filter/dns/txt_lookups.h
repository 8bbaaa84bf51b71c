/*
 * txt_lookups.h: one message's TXT lookups (DMARC records), as the
 * checks ask for them, without knowing who answers.
 *
 * A check calls start() for every name it will need as soon as it knows
 * the name (the DMARC records once From is known), so the lookups run in
 * parallel while the body arrives; answer() then gives one, or null while
 * it has not come (the owner of the TxtLookups is woken when it does, and
 * asks again).  A name is asked once per TxtLookups.  Names are compared
 * without case and without a final dot.
 *
 * The daemon implements it over the session's dns::Lookups (every query
 * goes through dns.resolver, counted and logged); the unit tests over a
 * table.  One TxtLookups serves one message, on one thread.
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
    /* NAME's TXT records (each record's strings joined), or null while
     * the answer has not come; asked now if it was not. */
    virtual const Answer* answer(const std::string& name) = 0;
};

}  // namespace portcullis::dns
