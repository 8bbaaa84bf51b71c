/*
 * greylist.h: greylisting of (client network, sender, recipient) triplets
 * in the store, and the admin operations on that state.
 *
 * make_triplet() builds the triplet: the client's /24 or /64 (or the
 * exact address "by host"), the sender normalised by normalize_sender(),
 * the recipient lowercased.  Greylist::check() decides for one triplet:
 *   - the client network is allowed (until its allow's expiry), or has
 *     this rule's awl passes, each within expire of the one before:
 *     pass, reason awl;
 *   - unknown triplet, or its window or expiry ran out: record it, defer
 *     (new) for `delay`;
 *   - retried before delay: defer (early) for the rest of it;
 *   - retried after delay and before window ends: pass, keep for expire,
 *     refreshed on every later pass; each pass counts towards the
 *     network's awl.
 * Every decision is one atomic script on one key, the client network's;
 * times are judged against the clock given here, never the server's, so
 * two MX hosts (and tests with an injected clock) agree.  check() returns
 * at once and gives the decision to its callback as the store's run()
 * does (store.h), or why the store could not answer: what to do then is
 * the caller's choice.  The admin calls block (store::run_blocking()).
 *
 * Store layout: one hash per client network, key "g:" + digest of the
 * network, so a network's triplets cost a Redis key once, not each (see
 * docs/daemon.md for the bytes).  Every value is
 * "<kind><at>.<expires>.<text>", times in ms in base 36:
 *   "m"  kind m: when the next write prunes, the key's expiry, the network
 *   "a"  the AWL record: kind '-' (counting), 'w' (auto-whitelisted) or
 *        'a' (allowed by an administrator), last pass, passes (decimal)
 *   8 characters of the digest of sender and recipient, then the
 *        recipient: a triplet, kind f (first seen at) or p (last pass at),
 *        and the sender
 * An entry is dead from its own expiry on, whatever the key's TTL, which
 * is its latest entry's expiry, raised by every write.  At most once an
 * hour (kPruneEvery) a write drops the dead entries and sets the TTL
 * exactly, so a busy network costs a sweep of its fields an hour, not
 * one per decision.  A network's hash holds at most kMaxNetworkTriplets
 * + 2 fields (the meta and AWL fields, and the triplets): a write that
 * would pass that sweeps at once, and drops, after the dead entries, the
 * live triplets nearest their expiry (pending ones before passed ones, as
 * their expiry is nearer), down to kKeptNetworkTriplets, so the sweep
 * that costs a walk of the fields comes at most once per (max - kept) new
 * triplets.  The Lua and the C++
 * of each script do this alike, so Redis and the memory store keep the
 * same triplets.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "checks/greylist_settings.h"
#include "store/store.h"
#include "util/ip.h"
#include "util/units.h"

namespace portcullis::checks {

// The fields of a network's hash: these, and the meta and AWL fields.
inline constexpr size_t kMaxNetworkTriplets = 10'000;
inline constexpr size_t kKeptNetworkTriplets = 9'000;

struct Triplet {
    std::string network;        // "203.0.113.0/24", "2001:db8::/64", or an address
    std::string sender;         // normalised; "" for the null sender
    std::string rcpt;           // lowercased
};

/* Lowercase; BATV prvs=TAG= unwrapped; +extension removed; runs of digits
 * in the local part folded to '#'.  "" (the null sender) stays "". */
std::string normalize_sender(std::string_view sender);

std::string client_network(const IpAddress& client, bool by_host);

Triplet make_triplet(const IpAddress& client, std::string_view sender, std::string_view rcpt, bool by_host);

enum class GreylistReason { new_triplet, early, pass, awl };
std::string_view reason_name(GreylistReason reason);   // "new", "early", "pass", "awl"

struct GreylistDecision {
    GreylistReason reason = GreylistReason::new_triplet;
    uint64_t wait_seconds = 0;  // new and early: until a retry passes
    bool passes() const { return reason == GreylistReason::pass || reason == GreylistReason::awl; }
};

/* One triplet as `greylist list` shows it. */
struct TripletState {
    Triplet triplet;
    bool passed = false;
    int64_t since_ms = 0;       // first seen (pending) or last pass (passed)
    int64_t expires_at_ms = 0;
};

/* One client network's auto-whitelist record. */
struct NetworkState {
    std::string network;
    uint64_t passes = 0;
    char flag = '-';            // '-', 'w' auto-whitelisted, 'a' allowed
    int64_t last_ms = 0;
    int64_t expires_at_ms = 0;
};

struct GreylistStats {
    uint64_t pending = 0;
    uint64_t passed = 0;
    uint64_t auto_whitelisted = 0;   // networks
    uint64_t allowed = 0;            // networks an administrator allowed
};

class Greylist {
public:
    using CheckDone = std::function<void(store::Outcome<GreylistDecision>)>;

    explicit Greylist(store::Store& store, std::function<int64_t()> clock = store::now_ms);

    void check(const Triplet& triplet, const GreylistSettings& settings, CheckDone done);

    /* The admin side (`portcullis greylist ...`); all throw StoreError. */
    void allow(const Triplet& triplet, Millis expire);
    void allow_network(const std::string& network, Millis expire);
    bool drop(const Triplet& triplet);
    /* The network's whitelist record and every triplet from it. */
    size_t drop_network(const std::string& network);
    void list(const std::function<void(const TripletState&)>& visit);
    void list_networks(const std::function<void(const NetworkState&)>& visit);
    GreylistStats stats();

private:
    /* VISIT gets each network's name, its fields, and the time they are
     * judged live at. */
    void for_each_network(const std::function<void(const std::string&, const store::Fields&, int64_t)>& visit);

    store::Store& store_;
    std::function<int64_t()> clock_;
};

}  // namespace portcullis::checks
