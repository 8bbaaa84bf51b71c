/*
 * ratelimit.cc: the bucket script (Lua for Redis, C++ for the memory
 * store) and the calls that run it.  See ratelimit.h for the model.
 *
 * Script ARGV: now, mode, then for "take" COUNT PERIOD pairs.
 *   take: {1 allowed | 0 refused, index of the first rate over, ms until
 *          every rate has room, level of each rate}
 *   show: {period, level, ms until the oldest slot leaves} per period
 *          with events; writes nothing.
 * A value that does not decode (another program wrote the key) counts
 * as an empty bucket and is overwritten at the next allowed event.
 */
#include "checks/ratelimit.h"

#include <algorithm>
#include <array>

#include "util/digest.h"
#include "util/text.h"

namespace portcullis::checks {

namespace {

constexpr std::string_view kBucketKeys = "r:";
constexpr int64_t kSlots = 61;              // slots that overlap one window
constexpr size_t kMaxVarintBytes = 8;       // 56 bits: no real count or time needs more

constexpr std::string_view kRatelimitLua = R"lua(
local now, mode = tonumber(ARGV[1]), ARGV[2]
local SLOTS = 61

local function read_varint(s, pos)
  local value, scale = 0, 1
  for _ = 1, 8 do
    local byte = string.byte(s, pos)
    if not byte then return nil, pos end
    pos = pos + 1
    if byte < 128 then return value + byte * scale, pos end
    value = value + (byte - 128) * scale
    scale = scale * 128
  end
  return nil, pos
end

local function write_varint(out, value)
  while value >= 128 do
    out[#out + 1] = string.char(value % 128 + 128)
    value = math.floor(value / 128)
  end
  out[#out + 1] = string.char(value)
end

local function slot_at(period) return math.floor(now * 60 / period) end
local function leaves_at(slot, period) return math.ceil((slot + SLOTS) * period / 60) end

local function empty_record(period)
  local counts = {}
  for i = 1, SLOTS do counts[i] = 0 end
  return {period = period, newest = slot_at(period), counts = counts}
end

-- Each period's counts, aged to now: counts[1] is the current slot.
local function decode(value)
  local records, pos = {}, 1
  while value and pos <= #value do
    local period, newest, n
    period, pos = read_varint(value, pos)
    if period then newest, pos = read_varint(value, pos) end
    if newest then n, pos = read_varint(value, pos) end
    if not n or period == 0 or n > SLOTS then return {} end
    local stored = {}
    for i = 1, n do
      stored[i], pos = read_varint(value, pos)
      if not stored[i] then return {} end
    end
    local record = empty_record(period)
    record.newest = math.max(record.newest, newest)
    local shift = record.newest - newest
    for i = 1, SLOTS do record.counts[i] = stored[i - shift] or 0 end
    records[#records + 1] = record
  end
  return records
end

local function level_of(record)
  local sum = 0
  for i = 1, SLOTS do sum = sum + record.counts[i] end
  return sum
end

-- ms until LEVEL + 1 <= COUNT, as the oldest slots leave the window.
local function room_in(record, level, count)
  local freed = 0
  for i = SLOTS, 1, -1 do
    freed = freed + record.counts[i]
    if record.counts[i] > 0 and level - freed + 1 <= count then
      return leaves_at(record.newest - i + 1, record.period) - now
    end
  end
  return 0
end

local records = decode(redis.call('GET', KEYS[1]))

if mode == 'show' then
  local out = {}
  for _, record in ipairs(records) do
    local level = level_of(record)
    if level > 0 then
      out[#out + 1] = record.period
      out[#out + 1] = level
      out[#out + 1] = room_in(record, level, level)
    end
  end
  return out
end

local function find(period)
  for _, record in ipairs(records) do
    if record.period == period then return record end
  end
  records[#records + 1] = empty_record(period)
  return records[#records]
end

local rates, levels, over, retry = {}, {}, -1, 0
for i = 3, #ARGV, 2 do
  rates[#rates + 1] = {count = tonumber(ARGV[i]), record = find(tonumber(ARGV[i + 1]))}
end
for i, rate in ipairs(rates) do
  levels[i] = level_of(rate.record)
  if levels[i] + 1 > rate.count then
    if over < 0 then over = i - 1 end
    retry = math.max(retry, room_in(rate.record, levels[i], rate.count))
  end
end
if over >= 0 then return {0, over, retry, unpack(levels)} end

for i, rate in ipairs(rates) do
  if not rate.record.counted then
    rate.record.counts[1] = rate.record.counts[1] + 1
    rate.record.counted = true
  end
  levels[i] = level_of(rate.record)
end

local out, expires = {}, 0
for _, record in ipairs(records) do
  local n = 0
  for i = 1, SLOTS do
    if record.counts[i] > 0 then n = i end
  end
  if n > 0 then
    write_varint(out, record.period)
    write_varint(out, record.newest)
    write_varint(out, n)
    for i = 1, n do write_varint(out, record.counts[i]) end
    expires = math.max(expires, leaves_at(record.newest, record.period))
  end
end
redis.call('SET', KEYS[1], table.concat(out))
redis.call('PEXPIREAT', KEYS[1], expires)
return {1, 0, 0, unpack(levels)}
)lua";

/* One period of a bucket, aged to now: counts[0] is the current slot. */
struct PeriodCounts {
    int64_t period = 0;
    int64_t newest = 0;
    std::array<uint64_t, kSlots> counts{};
    bool counted = false;
};

int64_t slot_at(int64_t now, int64_t period) { return now * 60 / period; }

/* The first time at which SLOT no longer overlaps the window. */
int64_t leaves_at(int64_t slot, int64_t period) { return ((slot + kSlots) * period + 59) / 60; }

std::optional<uint64_t> read_varint(std::string_view bytes, size_t& pos) {
    uint64_t value = 0;
    for (size_t i = 0; i < kMaxVarintBytes && pos < bytes.size(); ++i) {
        const auto byte = static_cast<unsigned char>(bytes[pos++]);
        value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
        if (byte < 0x80) return value;
    }
    return std::nullopt;
}

void write_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out += static_cast<char>(0x80 | (value & 0x7f));
        value >>= 7;
    }
    out += static_cast<char>(value);
}

PeriodCounts empty_period(int64_t period, int64_t now) { return {period, slot_at(now, period), {}, false}; }

/* The bucket's periods aged to NOW; empty when VALUE does not decode. */
std::vector<PeriodCounts> decode(const std::optional<std::string>& value, int64_t now) {
    std::vector<PeriodCounts> periods;
    if (!value) return periods;
    size_t pos = 0;
    while (pos < value->size()) {
        const auto period = read_varint(*value, pos);
        const auto newest = period ? read_varint(*value, pos) : std::nullopt;
        const auto n = newest ? read_varint(*value, pos) : std::nullopt;
        if (!n || *period == 0 || *n > static_cast<uint64_t>(kSlots)) return {};
        PeriodCounts counts = empty_period(static_cast<int64_t>(*period), now);
        counts.newest = std::max(counts.newest, static_cast<int64_t>(*newest));
        const int64_t shift = counts.newest - static_cast<int64_t>(*newest);
        for (int64_t i = 0; i < static_cast<int64_t>(*n); ++i) {
            const auto count = read_varint(*value, pos);
            if (!count) return {};
            if (i + shift < kSlots) counts.counts[static_cast<size_t>(i + shift)] = *count;
        }
        periods.push_back(counts);
    }
    return periods;
}

uint64_t level_of(const PeriodCounts& counts) {
    uint64_t sum = 0;
    for (const uint64_t count : counts.counts) sum += count;
    return sum;
}

/* ms until LEVEL + 1 <= COUNT, as the oldest slots leave the window. */
int64_t room_in(const PeriodCounts& counts, uint64_t level, uint64_t count, int64_t now) {
    uint64_t freed = 0;
    for (int64_t i = kSlots - 1; i >= 0; --i) {
        const uint64_t in_slot = counts.counts[static_cast<size_t>(i)];
        freed += in_slot;
        if (in_slot > 0 && level - freed + 1 <= count) return leaves_at(counts.newest - i, counts.period) - now;
    }
    return 0;
}

/* The index of PERIOD in PERIODS, added empty if missing. */
size_t find_period(std::vector<PeriodCounts>& periods, int64_t period, int64_t now) {
    const auto found =
        std::find_if(periods.begin(), periods.end(), [&](const PeriodCounts& counts) { return counts.period == period; });
    if (found != periods.end()) return static_cast<size_t>(found - periods.begin());
    periods.push_back(empty_period(period, now));
    return periods.size() - 1;
}

void encode(const std::vector<PeriodCounts>& periods, store::Record& record) {
    std::string out;
    int64_t expires = 0;
    for (const PeriodCounts& counts : periods) {
        size_t used = 0;
        for (size_t i = 0; i < counts.counts.size(); ++i) {
            if (counts.counts[i] > 0) used = i + 1;
        }
        if (used == 0) continue;
        write_varint(out, static_cast<uint64_t>(counts.period));
        write_varint(out, static_cast<uint64_t>(counts.newest));
        write_varint(out, used);
        for (size_t i = 0; i < used; ++i) write_varint(out, counts.counts[i]);
        expires = std::max(expires, leaves_at(counts.newest, counts.period));
    }
    record.value = std::move(out);
    record.expires_at_ms = expires;
}

std::vector<std::string> apply_show(const std::vector<PeriodCounts>& periods, int64_t now) {
    std::vector<std::string> reply;
    for (const PeriodCounts& counts : periods) {
        const uint64_t level = level_of(counts);
        if (level == 0) continue;
        reply.push_back(std::to_string(counts.period));
        reply.push_back(std::to_string(level));
        reply.push_back(std::to_string(room_in(counts, level, level, now)));
    }
    return reply;
}

std::vector<std::string> apply_take(std::vector<PeriodCounts>& periods, store::Record& record, int64_t now,
                                    std::span<const std::string> rates) {
    struct Wanted {
        uint64_t count;
        size_t period;     // index in PERIODS
    };
    std::vector<Wanted> wanted;
    for (size_t i = 0; i + 1 < rates.size(); i += 2) {
        const int64_t period = std::max<int64_t>(1, parse_decimal<int64_t>(rates[i + 1]).value_or(1));
        wanted.push_back({parse_decimal<uint64_t>(rates[i]).value_or(0), find_period(periods, period, now)});
    }
    std::vector<uint64_t> levels;
    int64_t over = -1, retry = 0;
    for (size_t i = 0; i < wanted.size(); ++i) {
        const PeriodCounts& counts = periods[wanted[i].period];
        levels.push_back(level_of(counts));
        if (levels[i] + 1 > wanted[i].count) {
            if (over < 0) over = static_cast<int64_t>(i);
            retry = std::max(retry, room_in(counts, levels[i], wanted[i].count, now));
        }
    }
    std::vector<std::string> reply{over < 0 ? "1" : "0", std::to_string(std::max<int64_t>(over, 0)),
                                   std::to_string(retry)};
    if (over < 0) {
        for (size_t i = 0; i < wanted.size(); ++i) {
            PeriodCounts& counts = periods[wanted[i].period];
            if (!counts.counted) ++counts.counts[0];
            counts.counted = true;
            levels[i] = level_of(counts);
        }
        encode(periods, record);
    }
    for (const uint64_t level : levels) reply.push_back(std::to_string(level));
    return reply;
}

std::vector<std::string> apply_ratelimit(store::Record& record, int64_t now, std::span<const std::string> args) {
    if (args.empty()) return {};
    std::vector<PeriodCounts> periods = decode(record.value, now);
    if (args[0] == "show") return apply_show(periods, now);
    return apply_take(periods, record, now, args.subspan(1));
}

uint64_t reply_number(const std::vector<std::string>& reply, size_t index) {
    const auto number = parse_decimal<uint64_t>(reply[index]);
    if (!number) throw store::StoreError("ratelimit: unexpected reply " + in_quotes(reply[index]) + " from the store");
    return *number;
}

}  // namespace

std::string normalize_key_part(std::string_view part) {
    std::string lowered = to_lower(part);
    const size_t at = lowered.rfind('@');
    if (at == std::string::npos) return lowered;
    const size_t plus = lowered.find('+');
    if (plus < at) lowered.erase(plus, at - plus);
    return lowered;
}

std::string bucket_key(std::string_view bucket, std::span<const std::string> values) {
    // NUL cannot occur in a field value, so no two keys join alike.
    std::string joined(bucket);
    for (const std::string& value : values) {
        joined += '\0';
        joined += normalize_key_part(value);
    }
    return std::string(kBucketKeys) + key_digest(joined);
}

Ratelimit::Ratelimit(store::Store& store, std::function<int64_t()> clock) : store_(store), clock_(std::move(clock)) {}

namespace {

store::Outcome<RatelimitDecision> decided(const std::vector<std::string>& values, size_t rate_count);

/* The take script's reply for RATE_COUNT rates as a decision; why not,
 * when it is none. */
store::Outcome<RatelimitDecision> decision_of(const store::StoreResult& result, size_t rate_count) {
    if (result.error) return {std::nullopt, *result.error};
    // Called back by the store: a reply that is not ours is an outcome,
    // never an exception through the store's loop.
    try {
        return decided(result.values, rate_count);
    } catch (const store::StoreError& error) {
        return {std::nullopt, error.what()};
    }
}

store::Outcome<RatelimitDecision> decided(const std::vector<std::string>& values, size_t rate_count) {
    const auto& reply = values;
    if (reply.size() != 3 + rate_count) return {std::nullopt, "ratelimit: unexpected reply from the store"};
    RatelimitDecision decision;
    decision.allowed = reply_number(reply, 0) == 1;
    decision.over = static_cast<size_t>(reply_number(reply, 1));
    if (decision.over >= rate_count) return {std::nullopt, "ratelimit: the store named a rate the rule has not"};
    decision.retry_in_ms = static_cast<int64_t>(reply_number(reply, 2));
    for (size_t i = 0; i < rate_count; ++i) decision.levels.push_back(reply_number(reply, 3 + i));
    return {std::move(decision), ""};
}

}  // namespace

void Ratelimit::take(const std::string& key, std::span<const RateLimit> rates, TakeDone done) {
    // Nothing limits the event.
    if (rates.empty()) return done({RatelimitDecision{true, 0, 0, {}}, ""});
    std::vector<std::string> args{"take"};
    for (const RateLimit& rate : rates) {
        args.push_back(std::to_string(rate.count));
        args.push_back(std::to_string(rate.period.count()));
    }
    store_.run(ratelimit_script(), key, clock_(), args,
               [done = std::move(done), count = rates.size()](store::StoreResult result) {
                   done(decision_of(result, count));
               });
}

std::vector<RateLevel> Ratelimit::show(const std::string& key) {
    const std::string args[] = {"show"};
    const auto reply = store::run_blocking(store_, ratelimit_script(), key, clock_(), args);
    if (reply.size() % 3 != 0) throw store::StoreError("ratelimit: unexpected reply from the store");
    std::vector<RateLevel> levels;
    for (size_t i = 0; i < reply.size(); i += 3) {
        levels.push_back({Millis(static_cast<int64_t>(reply_number(reply, i))), reply_number(reply, i + 1),
                          static_cast<int64_t>(reply_number(reply, i + 2))});
    }
    std::sort(levels.begin(), levels.end(),
              [](const RateLevel& a, const RateLevel& b) { return a.period < b.period; });
    return levels;
}

bool Ratelimit::reset(const std::string& key) { return store_.erase(key); }

const store::Script& ratelimit_script() {
    static const store::Script script{"ratelimit", kRatelimitLua, apply_ratelimit};
    return script;
}

}  // namespace portcullis::checks
