/*
 * ratelimit.h: rolling-window rate limits kept in the store.
 *
 * A bucket is one store key ("r:" + digest of the bucket name and the
 * key's normalised parts).  For every period a rule names, the bucket
 * keeps the event counts of the last 61 slots of PERIOD/60 each.  An
 * event is allowed when, for every rate COUNT/PERIOD, the events in the
 * slots that overlap the last PERIOD, plus this one, are at most COUNT.
 * Counting whole slots never lets more than COUNT through in any window
 * of length PERIOD, and frees capacity at most one slot (PERIOD/60)
 * after an exact rolling window would.  A refused event is not counted;
 * an allowed one is counted once in every period of the rule.
 *
 * The bucket's value is binary: per period, varints for the period
 * (ms), the newest slot number and the slot counts newest first, so a
 * bucket stays a few hundred bytes whatever COUNT is.  Slot numbers are
 * floor(now * 60 / PERIOD): exact in integers, so PERIOD/60 need not be
 * a whole millisecond.  Every take() is one atomic script on one key,
 * judged against the caller's clock; the key expires when its newest
 * slot leaves the window.
 *
 * Interface:
 *   normalize_key_part()  lowercase; an address loses its +extension.
 *   bucket_key()          the store key of a bucket and its key's values.
 *   Ratelimit::take()     count one event if every rate allows it; the
 *                         decision goes to its callback as the store's
 *                         run() gives it (store.h), or why there is none.
 *   Ratelimit::show()     each period's level and when capacity frees.
 *   Ratelimit::reset()    forget a bucket.
 * show() and reset() block, and throw store::StoreError when the store
 * cannot answer.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"
#include "util/units.h"

namespace portcullis::checks {

struct RateLimit {
    uint64_t count = 0;
    Millis period{0};
};

/* "Alice+News@Example.COM" -> "alice@example.com"; "User" -> "user". */
std::string normalize_key_part(std::string_view part);

/* "r:" + digest of BUCKET and the VALUES, each normalised by
 * normalize_key_part(), so every caller names a bucket alike. */
std::string bucket_key(std::string_view bucket, std::span<const std::string> values);

struct RateLevel {
    Millis period{0};
    uint64_t level = 0;          // events counted in the window now
    int64_t frees_in_ms = 0;     // until the oldest counted slot leaves it; 0 when empty
};

struct RatelimitDecision {
    bool allowed = false;
    size_t over = 0;              // refused: the index of the first rate over its limit
    int64_t retry_in_ms = 0;      // refused: until every rate has room again
    std::vector<uint64_t> levels; // per rate, after counting (or as found when refused)
};

class Ratelimit {
public:
    using TakeDone = std::function<void(store::Outcome<RatelimitDecision>)>;

    explicit Ratelimit(store::Store& store, std::function<int64_t()> clock = store::now_ms);

    /* One event on KEY (from bucket_key()) against RATES. */
    void take(const std::string& key, std::span<const RateLimit> rates, TakeDone done);

    /* Every period the bucket holds, shortest first; empty if unknown. */
    std::vector<RateLevel> show(const std::string& key);

    /* Whether the bucket existed. */
    bool reset(const std::string& key);

private:
    store::Store& store_;
    std::function<int64_t()> clock_;
};

/* The bucket script, for the tests that run it on both backends. */
const store::Script& ratelimit_script();

}  // namespace portcullis::checks
