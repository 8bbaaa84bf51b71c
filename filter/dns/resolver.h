/*
 * resolver.h: the daemon's one DNS resolver, on libunbound (the only code
 * that includes unbound.h).
 *
 * A Resolver holds settings checked once:
 *   - {"system"}: the servers of /etc/resolv.conf and the names of
 *     /etc/hosts, as the C library would use them;
 *   - forwarders "IP[@PORT]": those servers and nothing else (neither
 *     /etc/resolv.conf nor /etc/hosts is read).
 * A setting libunbound refuses throws ResolverError, naming dns.resolver.
 *
 * lookup() asks a question on the event loop it is called on and returns
 * at once; the answer goes to DONE on the same loop, within the timeout
 * (counted from lookup()): after it the query is cancelled and the answer
 * is a temperror "timeout".  DONE is never called from inside lookup().
 * One libunbound context (and one libunbound thread) serves every loop:
 * it is made with the Resolver, so a setting it refuses is an error
 * there.  Its socket is one more file descriptor on each loop that looks
 * up, the kernel wakes one of them when answers come, and each answer is
 * handed to the loop that asked; no thread ever waits for one.  A loop
 * that cannot watch the socket answers every lookup with a temperror
 * naming why.  A lookup of a name and type
 * already on its way on the loop waits for that answer (within its own
 * timeout) instead of asking again.  Each loop keeps the found and
 * not-found answers it got for their TTL (at most an hour, at most 1024
 * of them): asked again, such an answer comes (later, on the loop) with
 * took 0 and no query.  A temperror is never kept.
 */
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/event_loop.h"
#include "util/units.h"

namespace portcullis::dns {

enum class RecordType : int { a = 1, ptr = 12, mx = 15, txt = 16, aaaa = 28 };
std::string_view type_name(RecordType type);

struct Answer {
    enum class Status { found, not_found, temperror };
    Status status = Status::temperror;
    /* A, AAAA: the addresses as text; TXT: each record's strings joined;
     * MX (exchanges, preferences dropped), PTR: host names without the
     * final dot, only those made of letters, digits, '-' and '_'. */
    std::vector<std::string> records;
    /* temperror: "timeout", "SERVFAIL", "bogus (...)" or libunbound's error. */
    std::string error;
    /* From lookup() to the answer (or to the timeout). */
    std::chrono::steady_clock::duration took{};
};

std::string_view status_name(Answer::Status status);

/* "libunbound 1.17.1": the library linked, for `version`. */
std::string library_version();

/* The name as the resolver's cache and Lookups key it: lower case, no
 * final dot. */
std::string lookup_key(std::string_view name);

class ResolverError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Resolver {
public:
    using Done = std::function<void(Answer)>;

    Resolver(const std::vector<std::string>& servers, Millis timeout);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    /* On an event loop only (std::logic_error otherwise). */
    void lookup(std::string_view name, RecordType type, Done done);

    Millis timeout() const { return timeout_; }
    /* "forwarders 127.0.0.1@5353" or "system resolver", for the log. */
    const std::string& describe() const { return description_; }

private:
    class Shared;        // resolver.cc: the libunbound context
    class LoopContext;   // resolver.cc: one loop's lookups and answers

    Millis timeout_;
    std::string description_;   // before shared_, which fills it in
    std::shared_ptr<Shared> shared_;
    std::unique_ptr<PerLoop<LoopContext>> contexts_;
};

}  // namespace portcullis::dns
