/*
 * lookups.h: the DNS answers of one SMTP session, each question asked
 * once: DNS lists, SPF's queries, DKIM keys and DMARC records all go
 * through one Lookups.
 *
 * find() returns the answer to NAME's TYPE records if it has come, or
 * null: then the question is out (asked by this call if it was not), and
 * WAKE is called on the session's loop when its answer comes (never
 * during find()).  Names are compared without case and without a final
 * dot.  Every answer is counted in the metrics and logged at debug; a
 * temperror at info, as its Purpose (given by the first find() of the
 * name) says: a DNS list's as "taken as not listed", a DKIM key's or
 * DMARC record's as it is, an SPF query's only at debug (the SPF verdict
 * says what it did).  A Lookups dropped with questions out drops their
 * answers when they come.  size() counts the questions, bytes() about
 * what the answers kept cost (a hostile domain's can be 64 kB each);
 * forget() empties it, for a long session whose messages ask about many
 * names or were given large answers; the answers still out are dropped.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "dns/resolver.h"

namespace portcullis::dns {

enum class Purpose { dns_list, spf, record };

class Lookups {
public:
    Lookups(std::shared_ptr<Resolver> resolver, std::function<void()> wake);
    ~Lookups();
    Lookups(const Lookups&) = delete;
    Lookups& operator=(const Lookups&) = delete;

    const Answer* find(std::string_view name, RecordType type, Purpose purpose);
    size_t size() const;
    size_t bytes() const;
    void forget();

private:
    struct State;
    std::shared_ptr<Resolver> resolver_;
    std::shared_ptr<State> state_;
};

/* Every session's lookups together since the daemon started, for
 * `portcullis status`. */
struct LookupTotals {
    uint64_t answered = 0;
    uint64_t failed = 0;            // temperror: timeout, SERVFAIL, bogus
    std::string last_failure;       // "NAME TYPE: timeout at TIME", "" if none
};
LookupTotals lookup_totals();

}  // namespace portcullis::dns
