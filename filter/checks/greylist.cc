/*
 * greylist.cc: triplets, their normalisation, and the store scripts that
 * decide and administer (each in Lua for Redis and in C++ for the memory
 * store), all on one hash per client network.
 */
#include "checks/greylist.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "util/digest.h"
#include "util/text.h"

namespace portcullis::checks {

namespace {

constexpr std::string_view kNetworkKeys = "g:";
constexpr std::string_view kMetaField = "m";
constexpr std::string_view kAwlField = "a";
// A triplet's field starts with this many characters of the digest of its
// sender and recipient: 48 bits, so two triplets of one network collide
// with a chance of about n^2 / 2^49 (1e-9 for a thousand of them).
constexpr size_t kTripletDigestChars = 8;
// How often, at most, a write sweeps a network's expired entries.
constexpr Millis kPruneEvery = std::chrono::hours(1);

std::string network_key(const std::string& network) { return std::string(kNetworkKeys) + key_digest(network); }

std::string triplet_field(const Triplet& triplet) {
    return key_digest(triplet.sender + "\n" + triplet.rcpt).substr(0, kTripletDigestChars) + triplet.rcpt;
}

std::string ms_arg(Millis duration) { return std::to_string(duration.count()); }

int64_t arg(std::span<const std::string> args, size_t index) { return parse_decimal<int64_t>(args[index]).value_or(0); }

/* Base 36, as Lua's tonumber(text, 36) reads it: the shortest text for a
 * time in ms (8 characters until 2059). */
std::string base36(int64_t number) {
    constexpr std::string_view kDigits = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string text;
    number = std::max<int64_t>(0, number);
    do {
        text.insert(text.begin(), kDigits[static_cast<size_t>(number % 36)]);
        number /= 36;
    } while (number > 0);
    return text;
}

std::optional<int64_t> from_base36(std::string_view text) {
    // 12 digits stay below 2^63.
    if (text.empty() || text.size() > 12) return std::nullopt;
    int64_t number = 0;
    for (const char c : text) {
        const unsigned char u = static_cast<unsigned char>(c);
        int digit = 0;
        if (std::isdigit(u)) digit = c - '0';
        else if (std::isalpha(u)) digit = std::tolower(u) - 'a' + 10;
        else return std::nullopt;
        number = number * 36 + digit;
    }
    return number;
}

/* Every value in a network's hash: "<kind><at>.<expires>.<text>", times
 * in base 36.  Triplet (kind f pending, p passed): first seen or last
 * pass, and the sender.  AWL record (kind '-' counting, 'w', 'a'): last
 * pass, and the count of passes.  Meta (kind m): when the next write
 * prunes, the key's expiry, and the network. */
struct Item {
    char kind = 0;
    int64_t at = 0;
    int64_t expires = 0;
    std::string text;
};

std::string item(char kind, int64_t at, int64_t expires, std::string_view text) {
    std::string value(1, kind);
    value += base36(at);
    value += '.';
    value += base36(expires);
    value += '.';
    value += text;
    return value;
}

const std::string* find_field(const store::Fields& fields, std::string_view field) {
    const auto found = fields.find(field);
    return found == fields.end() ? nullptr : &found->second;
}

std::optional<Item> parse_item(const std::string* value) {
    if (!value || value->empty()) return std::nullopt;
    const std::string_view text = *value;
    const size_t first = text.find('.', 1);
    const size_t second = first == std::string_view::npos ? first : text.find('.', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    const auto at = from_base36(text.substr(1, first - 1));
    const auto expires = from_base36(text.substr(first + 1, second - first - 1));
    if (!at || !expires) return std::nullopt;
    return Item{text[0], *at, *expires, std::string(text.substr(second + 1))};
}

/* What every script shares: ARGV[1] is now; max_triplets and
 * kept_triplets, which GreylistScript puts first; parse() and item() as
 * above; write() sets field/value pairs after which the key lives until
 * its latest entry expires, and prunes when the meta field says it is
 * time (or is missing: a new hash) or when the key holds more than
 * max_triplets triplets (and the meta and AWL fields); prune() drops the
 * expired entries (and the key, when none is left), then, given KEEP and
 * holding more triplets than that, the triplets nearest their expiry: all
 * those expiring no later than the (count - KEEP)th nearest, so that ties
 * leave no choice to the order of a sort; and computes the key's expiry
 * anew. */
constexpr std::string_view kPreludeLua = R"lua(
local now = tonumber(ARGV[1])
local function base36(n)
  local digits, text = '0123456789abcdefghijklmnopqrstuvwxyz', ''
  if n < 0 then n = 0 end
  repeat
    local d = n % 36
    text = string.sub(digits, d + 1, d + 1) .. text
    n = (n - d) / 36
  until n == 0
  return text
end
local function item(kind, at, expires, text)
  return kind .. base36(at) .. '.' .. base36(expires) .. '.' .. text
end
local function parse(value)
  if not value then return nil end
  local kind, at, expires, text = string.match(value, '^(.)(%w+)%.(%w+)%.(.*)$')
  if not kind or #at > 12 or #expires > 12 then return nil end
  return kind, tonumber(at, 36), tonumber(expires, 36), text
end
local function prune(network, every, keep)
  local fields, latest, triplets, expiries = redis.call('HGETALL', KEYS[1]), 0, {}, {}
  for i = 1, #fields, 2 do
    if fields[i] ~= 'm' then
      local _, _, expires = parse(fields[i + 1])
      if expires and expires > now then
        if expires > latest then latest = expires end
        if fields[i] ~= 'a' then
          triplets[#triplets + 1] = fields[i]
          expiries[#expiries + 1] = expires
        end
      else
        redis.call('HDEL', KEYS[1], fields[i])
      end
    end
  end
  if keep and #triplets > keep then
    local sorted = {}
    for i = 1, #expiries do sorted[i] = expiries[i] end
    table.sort(sorted)
    local cut = sorted[#triplets - keep]
    for i = 1, #triplets do
      if expiries[i] <= cut then redis.call('HDEL', KEYS[1], triplets[i]) end
    end
  end
  if latest == 0 then
    redis.call('DEL', KEYS[1])
    return
  end
  redis.call('HSET', KEYS[1], 'm', item('m', now + every, latest, network))
  redis.call('PEXPIREAT', KEYS[1], latest)
end
local function write(meta, network, expires, every, ...)
  local _, prune_at, latest = parse(meta)
  if prune_at and now < prune_at then
    if expires > latest then latest = expires end
    redis.call('HSET', KEYS[1], 'm', item('m', prune_at, latest, network), ...)
    redis.call('PEXPIREAT', KEYS[1], latest)
  else
    redis.call('HSET', KEYS[1], ...)
  end
  if redis.call('HLEN', KEYS[1]) > max_triplets + 2 then
    prune(network, every, kept_triplets)
  elseif not prune_at or now >= prune_at then
    prune(network, every)
  end
end
)lua";

/* When RECORD's live TRIPLETS (field, expiry) are more than KEEP, drops
 * those nearest their expiry as the Lua prune() does: every one expiring
 * no later than the (count - KEEP)th nearest. */
void trim(store::HashRecord& record, std::vector<std::pair<std::string, int64_t>> triplets, size_t keep) {
    if (triplets.size() <= keep) return;
    std::vector<int64_t> sorted;
    for (const auto& [field, expires] : triplets) sorted.push_back(expires);
    const auto cut = sorted.begin() + static_cast<ptrdiff_t>(triplets.size() - keep - 1);
    std::nth_element(sorted.begin(), cut, sorted.end());
    for (const auto& [field, expires] : triplets) {
        if (expires <= *cut) record.erase(field);
    }
}

/* KEEP: trim to that many triplets (the key is over kMaxNetworkTriplets);
 * nullopt: only drop the dead entries. */
void prune(store::HashRecord& record, int64_t now, std::string_view network, int64_t every,
           std::optional<size_t> keep = std::nullopt) {
    int64_t latest = 0;
    std::vector<std::string> expired;
    std::vector<std::pair<std::string, int64_t>> triplets;
    for (const auto& [field, value] : record.fields()) {
        if (field == kMetaField) continue;
        const auto entry = parse_item(&value);
        if (!entry || entry->expires <= now) {
            expired.push_back(field);
            continue;
        }
        latest = std::max(latest, entry->expires);
        // Copied only for a trim: the hourly sweep of a big hash needs none.
        if (keep && field != kAwlField) triplets.emplace_back(field, entry->expires);
    }
    for (const auto& field : expired) record.erase(field);
    if (keep) trim(record, std::move(triplets), *keep);
    if (latest == 0) {
        record.clear();
        return;
    }
    record.set(kMetaField, item('m', now + every, latest, network));
    record.expire_at(latest);
}

void write(store::HashRecord& record, int64_t now, std::string_view network, int64_t expires, int64_t every,
           std::initializer_list<std::pair<std::string_view, std::string>> entries) {
    const auto meta = parse_item(record.get(kMetaField));
    for (const auto& [field, value] : entries) record.set(field, value);
    const bool due = !meta || now >= meta->at;
    if (!due) {
        const int64_t latest = std::max(meta->expires, expires);
        record.set(kMetaField, item('m', meta->at, latest, network));
        record.expire_at(latest);
    }
    // The meta and AWL fields besides the triplets.
    if (record.fields().size() > kMaxNetworkTriplets + 2) {
        prune(record, now, network, every, kKeptNetworkTriplets);
    } else if (due) {
        prune(record, now, network, every);
    }
}

/* ARGV: now, delay, window, expire, awl, prune every, network, field,
 * sender.  Returns {verdict, wait ms}.  A passed triplet and the AWL
 * record live until their own expiry, whatever this rule's expire, so an
 * administrator's allow lasts as long as it says; the rule's awl decides
 * whether a counting or auto-whitelisted network skips greylisting (awl
 * 0: never), and an allowed one's passes keep its expiry. */
constexpr std::string_view kCheckLua = R"lua(
local delay, window, expire = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local awl, every, network, field, sender = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]
local got = redis.call('HMGET', KEYS[1], 'm', 'a', field)
local flag, _, until_, passes = parse(got[2])
passes = tonumber(passes)
local listed = flag and until_ > now and passes
local allowed = listed and flag == 'a'
if allowed or (listed and awl > 0 and passes >= awl) then
  if not allowed then flag, until_ = 'w', now + expire end
  write(got[1], network, until_, every, 'a', item(flag, now, until_, string.format('%d', passes)))
  return {'awl', 0}
end
local state, at, expires = parse(got[3])
if state and expires > now and (state == 'p' or (state == 'f' and now - at < window)) then
  if state == 'f' and now - at < delay then
    return {'early', at + delay - now}
  end
  if not listed then passes = 0 end
  passes = passes + 1
  flag = '-'
  if awl > 0 and passes >= awl then flag = 'w' end
  write(got[1], network, now + expire, every, field, item('p', now, now + expire, sender),
        'a', item(flag, now, now + expire, string.format('%d', passes)))
  return {'pass', 0}
end
write(got[1], network, now + window, every, field, item('f', now, now + window, sender))
return {'new', delay}
)lua";

std::vector<std::string> apply_check(store::HashRecord& record, int64_t now, std::span<const std::string> args) {
    const int64_t delay = arg(args, 0), window = arg(args, 1), expire = arg(args, 2);
    const int64_t awl = arg(args, 3), every = arg(args, 4);
    const std::string &network = args[5], &field = args[6], &sender = args[7];

    const auto whitelist = parse_item(record.get(kAwlField));
    const auto counted = whitelist ? parse_decimal<int64_t>(whitelist->text) : std::nullopt;
    const bool listed = whitelist && counted && whitelist->expires > now;
    int64_t passes = listed ? *counted : 0;
    const bool allowed = listed && whitelist->kind == 'a';
    if (allowed || (listed && awl > 0 && passes >= awl)) {
        const int64_t until = allowed ? whitelist->expires : now + expire;
        write(record, now, network, until, every,
              {{kAwlField, item(allowed ? 'a' : 'w', now, until, std::to_string(passes))}});
        return {"awl", "0"};
    }

    const auto triplet = parse_item(record.get(field));
    if (triplet && triplet->expires > now &&
        (triplet->kind == 'p' || (triplet->kind == 'f' && now - triplet->at < window))) {
        if (triplet->kind == 'f' && now - triplet->at < delay) return {"early", std::to_string(triplet->at + delay - now)};
        ++passes;
        const char flag = awl > 0 && passes >= awl ? 'w' : '-';
        write(record, now, network, now + expire, every,
              {{field, item('p', now, now + expire, sender)},
               {kAwlField, item(flag, now, now + expire, std::to_string(passes))}});
        return {"pass", "0"};
    }
    write(record, now, network, now + window, every, {{field, item('f', now, now + window, sender)}});
    return {"new", std::to_string(delay)};
}

/* ARGV: now, expire, prune every, network, field, sender. */
constexpr std::string_view kAllowTripletLua = R"lua(
local expire, every = tonumber(ARGV[2]), tonumber(ARGV[3])
write(redis.call('HGET', KEYS[1], 'm'), ARGV[4], now + expire, every, ARGV[5], item('p', now, now + expire, ARGV[6]))
return 1
)lua";

std::vector<std::string> apply_allow_triplet(store::HashRecord& record, int64_t now,
                                             std::span<const std::string> args) {
    const int64_t expire = arg(args, 0);
    write(record, now, args[2], now + expire, arg(args, 1), {{args[3], item('p', now, now + expire, args[4])}});
    return {"1"};
}

/* ARGV: now, expire, prune every, network.  Keeps the pass count. */
constexpr std::string_view kAllowNetworkLua = R"lua(
local expire, every = tonumber(ARGV[2]), tonumber(ARGV[3])
local got = redis.call('HMGET', KEYS[1], 'm', 'a')
local _, _, expires, passes = parse(got[2])
passes = tonumber(passes)
if not expires or expires <= now or not passes then passes = 0 end
write(got[1], ARGV[4], now + expire, every, 'a', item('a', now, now + expire, string.format('%d', passes)))
return 1
)lua";

std::vector<std::string> apply_allow_network(store::HashRecord& record, int64_t now,
                                             std::span<const std::string> args) {
    const int64_t expire = arg(args, 0);
    const auto whitelist = parse_item(record.get(kAwlField));
    const auto counted = whitelist ? parse_decimal<int64_t>(whitelist->text) : std::nullopt;
    const int64_t passes = whitelist && counted && whitelist->expires > now ? *counted : 0;
    write(record, now, args[2], now + expire, arg(args, 1),
          {{kAwlField, item('a', now, now + expire, std::to_string(passes))}});
    return {"1"};
}

/* ARGV: now, prune every, field.  Returns 1 if the triplet was live. */
constexpr std::string_view kDropTripletLua = R"lua(
local _, _, expires = parse(redis.call('HGET', KEYS[1], ARGV[3]))
if not expires then return 0 end
local _, _, _, network = parse(redis.call('HGET', KEYS[1], 'm'))
redis.call('HDEL', KEYS[1], ARGV[3])
prune(network or '', tonumber(ARGV[2]))
if expires > now then return 1 end
return 0
)lua";

std::vector<std::string> apply_drop_triplet(store::HashRecord& record, int64_t now, std::span<const std::string> args) {
    const auto triplet = parse_item(record.get(args[1]));
    if (!triplet) return {"0"};
    const auto meta = parse_item(record.get(kMetaField));
    record.erase(args[1]);
    prune(record, now, meta ? meta->text : "", arg(args, 0));
    return {triplet->expires > now ? "1" : "0"};
}

/* ARGV: now.  Returns how many live records (triplets and the AWL record)
 * the network had. */
constexpr std::string_view kDropNetworkLua = R"lua(
local fields, live = redis.call('HGETALL', KEYS[1]), 0
for i = 1, #fields, 2 do
  local _, _, expires = parse(fields[i + 1])
  if fields[i] ~= 'm' and expires and expires > now then live = live + 1 end
end
redis.call('DEL', KEYS[1])
return live
)lua";

std::vector<std::string> apply_drop_network(store::HashRecord& record, int64_t now, std::span<const std::string>) {
    int64_t live = 0;
    for (const auto& [field, value] : record.fields()) {
        const auto entry = parse_item(&value);
        if (field != kMetaField && entry && entry->expires > now) ++live;
    }
    record.clear();
    return {std::to_string(live)};
}

/* A script of the prelude and BODY, in C++ APPLY; the Lua gets the bound
 * on a network's triplets from the constants the C++ reads. */
struct GreylistScript {
    GreylistScript(std::string_view name, std::string_view body, decltype(store::HashScript::apply) apply)
        : lua("local max_triplets, kept_triplets = " + std::to_string(kMaxNetworkTriplets) + ", " +
              std::to_string(kKeptNetworkTriplets) + std::string(kPreludeLua) + std::string(body)),
          script{name, lua, apply} {}
    const std::string lua;
    const store::HashScript script;
};

const GreylistScript kCheck{"greylist-check", kCheckLua, apply_check};
const GreylistScript kAllowTriplet{"greylist-allow-triplet", kAllowTripletLua, apply_allow_triplet};
const GreylistScript kAllowNetwork{"greylist-allow-network", kAllowNetworkLua, apply_allow_network};
const GreylistScript kDropTriplet{"greylist-drop-triplet", kDropTripletLua, apply_drop_triplet};
const GreylistScript kDropNetwork{"greylist-drop-network", kDropNetworkLua, apply_drop_network};

/* Folds a run of digits to one '#'. */
std::string fold_digits(std::string_view local) {
    std::string out;
    for (const char c : local) {
        const bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
        if (!digit) out += c;
        else if (out.empty() || out.back() != '#') out += '#';
    }
    return out;
}

/* "prvs=TAG=user" (BATV) -> "user". */
std::string_view unwrap_batv(std::string_view local) {
    constexpr std::string_view kPrvs = "prvs=";
    if (!local.starts_with(kPrvs)) return local;
    const size_t second = local.find('=', kPrvs.size());
    if (second == std::string_view::npos || second + 1 >= local.size()) return local;
    return local.substr(second + 1);
}

}  // namespace

std::string normalize_sender(std::string_view sender) {
    const std::string lowered = to_lower(sender);
    const size_t at = lowered.rfind('@');
    std::string_view local = std::string_view(lowered).substr(0, at);
    const std::string_view domain = at == std::string::npos ? std::string_view() : std::string_view(lowered).substr(at);
    local = unwrap_batv(local);
    local = local.substr(0, local.find('+'));
    return fold_digits(local) + std::string(domain);
}

std::string client_network(const IpAddress& client, bool by_host) {
    if (by_host) return client.str();
    return network_of(client, client.is_v4() ? 24 : 64).str();
}

Triplet make_triplet(const IpAddress& client, std::string_view sender, std::string_view rcpt, bool by_host) {
    return Triplet{client_network(client, by_host), normalize_sender(sender), to_lower(rcpt)};
}

std::string_view reason_name(GreylistReason reason) {
    switch (reason) {
        case GreylistReason::new_triplet: return "new";
        case GreylistReason::early: return "early";
        case GreylistReason::pass: return "pass";
        case GreylistReason::awl: return "awl";
    }
    return "?";
}

Greylist::Greylist(store::Store& store, std::function<int64_t()> clock) : store_(store), clock_(std::move(clock)) {}

namespace {

/* The check script's reply as a decision; why not, when it is none. */
store::Outcome<GreylistDecision> decision_of(const store::StoreResult& result) {
    if (result.error) return {std::nullopt, *result.error};
    const auto& reply = result.values;
    if (reply.size() != 2) return {std::nullopt, "greylist-check: unexpected reply from the store"};
    const uint64_t wait_ms = static_cast<uint64_t>(std::max<int64_t>(0, parse_decimal<int64_t>(reply[1]).value_or(0)));
    const uint64_t wait_seconds = (wait_ms + 999) / 1000;
    if (reply[0] == "new") return {GreylistDecision{GreylistReason::new_triplet, wait_seconds}, ""};
    if (reply[0] == "early") return {GreylistDecision{GreylistReason::early, wait_seconds}, ""};
    if (reply[0] == "pass") return {GreylistDecision{GreylistReason::pass, 0}, ""};
    if (reply[0] == "awl") return {GreylistDecision{GreylistReason::awl, 0}, ""};
    return {std::nullopt, "greylist-check: unexpected reply " + in_quotes(reply[0])};
}

}  // namespace

void Greylist::check(const Triplet& triplet, const GreylistSettings& settings, CheckDone done) {
    const std::string args[] = {ms_arg(settings.delay), ms_arg(settings.window), ms_arg(settings.expire),
                                std::to_string(settings.awl), ms_arg(kPruneEvery), triplet.network,
                                triplet_field(triplet), triplet.sender};
    store_.run(kCheck.script, network_key(triplet.network), clock_(), args,
               [done = std::move(done)](store::StoreResult result) { done(decision_of(result)); });
}

void Greylist::allow(const Triplet& triplet, Millis expire) {
    const std::string args[] = {ms_arg(expire), ms_arg(kPruneEvery), triplet.network, triplet_field(triplet),
                                triplet.sender};
    store::run_blocking(store_, kAllowTriplet.script, network_key(triplet.network), clock_(), args);
}

void Greylist::allow_network(const std::string& network, Millis expire) {
    const std::string args[] = {ms_arg(expire), ms_arg(kPruneEvery), network};
    store::run_blocking(store_, kAllowNetwork.script, network_key(network), clock_(), args);
}

bool Greylist::drop(const Triplet& triplet) {
    const std::string args[] = {ms_arg(kPruneEvery), triplet_field(triplet)};
    const auto reply = store::run_blocking(store_, kDropTriplet.script, network_key(triplet.network), clock_(), args);
    return !reply.empty() && reply[0] == "1";
}

size_t Greylist::drop_network(const std::string& network) {
    const auto reply = store::run_blocking(store_, kDropNetwork.script, network_key(network), clock_(), {});
    return reply.empty() ? 0 : parse_decimal<size_t>(reply[0]).value_or(0);
}

void Greylist::for_each_network(const std::function<void(const std::string&, const store::Fields&, int64_t)>& visit) {
    const int64_t now = clock_();
    store_.scan_hashes(kNetworkKeys, [&](const store::HashEntry& hash) {
        const auto meta = parse_item(find_field(hash.fields, kMetaField));
        visit(meta ? meta->text : "", hash.fields, now);
    });
}

void Greylist::list(const std::function<void(const TripletState&)>& visit) {
    for_each_network([&](const std::string& network, const store::Fields& fields, int64_t now) {
        for (const auto& [field, value] : fields) {
            // The meta and AWL fields are one character long.
            if (field.size() < kTripletDigestChars) continue;
            const auto triplet = parse_item(&value);
            if (!triplet || triplet->expires <= now || (triplet->kind != 'f' && triplet->kind != 'p')) continue;
            visit(TripletState{{network, triplet->text, field.substr(kTripletDigestChars)},
                               triplet->kind == 'p', triplet->at, triplet->expires});
        }
    });
}

void Greylist::list_networks(const std::function<void(const NetworkState&)>& visit) {
    for_each_network([&](const std::string& network, const store::Fields& fields, int64_t now) {
        const auto whitelist = parse_item(find_field(fields, kAwlField));
        if (!whitelist || whitelist->expires <= now) return;
        const auto passes = parse_decimal<uint64_t>(whitelist->text);
        if (!passes) return;
        visit(NetworkState{network, *passes, whitelist->kind, whitelist->at, whitelist->expires});
    });
}

GreylistStats Greylist::stats() {
    GreylistStats stats;
    list([&](const TripletState& state) { ++(state.passed ? stats.passed : stats.pending); });
    list_networks([&](const NetworkState& state) {
        if (state.flag == 'w') ++stats.auto_whitelisted;
        if (state.flag == 'a') ++stats.allowed;
    });
    return stats;
}

}  // namespace portcullis::checks
