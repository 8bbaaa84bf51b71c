/*
 * greylist.cc: triplets, their normalisation, and the store scripts that
 * decide (each in Lua for Redis and in C++ for the memory store).
 */
#include "checks/greylist.h"

#include <cctype>

#include "util/digest.h"
#include "util/text.h"

namespace portcullis::checks {

namespace {

constexpr std::string_view kTripletKeys = "g:";
constexpr std::string_view kNetworkKeys = "a:";

std::string triplet_parts(const Triplet& triplet) {
    return triplet.network + "\n" + triplet.sender + "\n" + triplet.rcpt;
}

std::string triplet_key(const Triplet& triplet) {
    return std::string(kTripletKeys) + key_digest(triplet_parts(triplet));
}

std::string network_key(const std::string& network) {
    return std::string(kNetworkKeys) + key_digest(network);
}

std::string ms_arg(Millis duration) { return std::to_string(duration.count()); }

/* "f<ms>\n<parts>" or "p<ms>\n<parts>". */
struct TripletValue {
    char state = 0;
    int64_t at = 0;
    std::string parts;
};

std::string triplet_value(char state, int64_t at, std::string_view parts) {
    std::string value(1, state);
    value += std::to_string(at);
    value += '\n';
    value += parts;
    return value;
}

std::optional<TripletValue> parse_triplet_value(std::string_view value) {
    const size_t newline = value.find('\n');
    if (value.size() < 2 || newline == std::string_view::npos || (value[0] != 'f' && value[0] != 'p')) {
        return std::nullopt;
    }
    const auto at = parse_decimal<int64_t>(value.substr(1, newline - 1));
    if (!at) return std::nullopt;
    return TripletValue{value[0], *at, std::string(value.substr(newline + 1))};
}

/* "<passes> <flag> <last ms>\n<network>". */
struct NetworkValue {
    int64_t passes = 0;
    char flag = '-';
    int64_t last = 0;
    std::string network;
};

std::optional<NetworkValue> parse_network_value(std::string_view value) {
    const size_t newline = value.find('\n');
    if (newline == std::string_view::npos) return std::nullopt;
    const std::string_view head = value.substr(0, newline);
    const size_t first_space = head.find(' ');
    if (first_space == std::string_view::npos || first_space + 3 >= head.size() || head[first_space + 2] != ' ') {
        return std::nullopt;
    }
    const auto passes = parse_decimal<int64_t>(head.substr(0, first_space));
    const auto last = parse_decimal<int64_t>(head.substr(first_space + 3));
    const char flag = head[first_space + 1];
    if (!passes || !last || (flag != '-' && flag != 'w' && flag != 'a')) return std::nullopt;
    return NetworkValue{*passes, flag, *last, std::string(value.substr(newline + 1))};
}

std::string network_value(int64_t passes, char flag, int64_t now, std::string_view network) {
    return std::to_string(passes) + " " + flag + " " + std::to_string(now) + "\n" + std::string(network);
}

int64_t arg(std::span<const std::string> args, size_t index) { return parse_decimal<int64_t>(args[index]).value_or(0); }

/* ARGV: now, delay, window, expire, parts.  Returns {verdict, wait ms}. */
constexpr std::string_view kTripletLua = R"lua(
local now = tonumber(ARGV[1])
local delay, window, expire = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local value = redis.call('GET', KEYS[1])
if value then
  local state, at = string.match(value, '^([fp])(%d+)\n')
  if state then
    at = tonumber(at)
    if (state == 'p' and now - at < expire) or (state == 'f' and now - at < window) then
      if state == 'f' and now - at < delay then
        return {'early', at + delay - now}
      end
      redis.call('SET', KEYS[1], 'p' .. ARGV[1] .. '\n' .. ARGV[5])
      redis.call('PEXPIREAT', KEYS[1], now + expire)
      return {'pass', 0}
    end
  end
end
redis.call('SET', KEYS[1], 'f' .. ARGV[1] .. '\n' .. ARGV[5])
redis.call('PEXPIREAT', KEYS[1], now + window)
return {'new', delay}
)lua";

std::vector<std::string> apply_triplet(store::Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t delay = arg(args, 0), window = arg(args, 1), expire = arg(args, 2);
    const std::string& parts = args[3];
    if (record.value) {
        if (const auto value = parse_triplet_value(*record.value)) {
            const bool live = (value->state == 'p' && now - value->at < expire) ||
                              (value->state == 'f' && now - value->at < window);
            if (live) {
                if (value->state == 'f' && now - value->at < delay) {
                    return {"early", std::to_string(value->at + delay - now)};
                }
                record.value = triplet_value('p', now, parts);
                record.expires_at_ms = now + expire;
                return {"pass", "0"};
            }
        }
    }
    record.value = triplet_value('f', now, parts);
    record.expires_at_ms = now + window;
    return {"new", std::to_string(delay)};
}

/* ARGV: now, expire, awl.  Returns 1 (and refreshes) when whitelisted. */
constexpr std::string_view kAwlCheckLua = R"lua(
local now, expire, awl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local passes, flag, last, network = string.match(value, '^(%d+) ([-wa]) (%d+)\n(.*)$')
if not passes or now - tonumber(last) >= expire then return 0 end
if flag == '-' and (awl == 0 or tonumber(passes) < awl) then return 0 end
redis.call('SET', KEYS[1], passes .. ' ' .. flag .. ' ' .. ARGV[1] .. '\n' .. network)
redis.call('PEXPIREAT', KEYS[1], now + expire)
return 1
)lua";

std::vector<std::string> apply_awl_check(store::Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t expire = arg(args, 0), awl = arg(args, 1);
    if (!record.value) return {"0"};
    const auto value = parse_network_value(*record.value);
    if (!value || now - value->last >= expire) return {"0"};
    if (value->flag == '-' && (awl == 0 || value->passes < awl)) return {"0"};
    record.value = network_value(value->passes, value->flag, now, value->network);
    record.expires_at_ms = now + expire;
    return {"1"};
}

/* ARGV: now, expire, awl, network.  Returns {passes, flag}. */
constexpr std::string_view kAwlCountLua = R"lua(
local now, expire, awl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local passes, flag = 0, '-'
local value = redis.call('GET', KEYS[1])
if value then
  local p, f, last = string.match(value, '^(%d+) ([-wa]) (%d+)\n')
  if p and now - tonumber(last) < expire then
    passes, flag = tonumber(p), f
  end
end
passes = passes + 1
if flag == '-' and awl > 0 and passes >= awl then flag = 'w' end
redis.call('SET', KEYS[1], string.format('%d', passes) .. ' ' .. flag .. ' ' .. ARGV[1] .. '\n' .. ARGV[4])
redis.call('PEXPIREAT', KEYS[1], now + expire)
return {passes, flag}
)lua";

std::vector<std::string> apply_awl_count(store::Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t expire = arg(args, 0), awl = arg(args, 1);
    int64_t passes = 0;
    char flag = '-';
    if (record.value) {
        const auto value = parse_network_value(*record.value);
        if (value && now - value->last < expire) {
            passes = value->passes;
            flag = value->flag;
        }
    }
    ++passes;
    if (flag == '-' && awl > 0 && passes >= awl) flag = 'w';
    record.value = network_value(passes, flag, now, args[2]);
    record.expires_at_ms = now + expire;
    return {std::to_string(passes), std::string(1, flag)};
}

/* ARGV: now, expire, parts. */
constexpr std::string_view kAllowTripletLua = R"lua(
redis.call('SET', KEYS[1], 'p' .. ARGV[1] .. '\n' .. ARGV[3])
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
)lua";

std::vector<std::string> apply_allow_triplet(store::Record& record, int64_t now, std::span<const std::string> args) {
    record.value = triplet_value('p', now, args[1]);
    record.expires_at_ms = now + arg(args, 0);
    return {"1"};
}

/* ARGV: now, expire, network.  Keeps the pass count. */
constexpr std::string_view kAllowNetworkLua = R"lua(
local passes = 0
local value = redis.call('GET', KEYS[1])
if value then passes = tonumber(string.match(value, '^(%d+) ')) or 0 end
redis.call('SET', KEYS[1], string.format('%d', passes) .. ' a ' .. ARGV[1] .. '\n' .. ARGV[3])
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
)lua";

std::vector<std::string> apply_allow_network(store::Record& record, int64_t now, std::span<const std::string> args) {
    int64_t passes = 0;
    if (record.value) {
        if (const auto value = parse_network_value(*record.value)) passes = value->passes;
    }
    record.value = network_value(passes, 'a', now, args[1]);
    record.expires_at_ms = now + arg(args, 0);
    return {"1"};
}

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

const store::Script& triplet_script() {
    static const store::Script script{"greylist-triplet", kTripletLua, apply_triplet};
    return script;
}

const store::Script& awl_check_script() {
    static const store::Script script{"greylist-awl-check", kAwlCheckLua, apply_awl_check};
    return script;
}

const store::Script& awl_count_script() {
    static const store::Script script{"greylist-awl-count", kAwlCountLua, apply_awl_count};
    return script;
}

const store::Script& allow_triplet_script() {
    static const store::Script script{"greylist-allow-triplet", kAllowTripletLua, apply_allow_triplet};
    return script;
}

const store::Script& allow_network_script() {
    static const store::Script script{"greylist-allow-network", kAllowNetworkLua, apply_allow_network};
    return script;
}

Greylist::Greylist(store::Store& store, std::function<int64_t()> clock) : store_(store), clock_(std::move(clock)) {}

GreylistDecision Greylist::check(const Triplet& triplet, const GreylistSettings& settings) {
    const int64_t now = clock_();
    if (whitelisted(triplet.network, settings, now)) return {GreylistReason::awl, 0};

    const std::string args[] = {ms_arg(settings.delay), ms_arg(settings.window), ms_arg(settings.expire),
                                triplet_parts(triplet)};
    const auto reply = store_.run(triplet_script(), triplet_key(triplet), now, args);
    if (reply.size() != 2) throw store::StoreError("greylist-triplet: unexpected reply from the store");
    const uint64_t wait_ms = static_cast<uint64_t>(std::max<int64_t>(0, parse_decimal<int64_t>(reply[1]).value_or(0)));
    const uint64_t wait_seconds = (wait_ms + 999) / 1000;
    if (reply[0] == "new") return {GreylistReason::new_triplet, wait_seconds};
    if (reply[0] == "early") return {GreylistReason::early, wait_seconds};
    if (reply[0] != "pass") throw store::StoreError("greylist-triplet: unexpected reply " + in_quotes(reply[0]));
    count_pass(triplet.network, settings, now);
    return {GreylistReason::pass, 0};
}

bool Greylist::whitelisted(const std::string& network, const GreylistSettings& settings, int64_t now) {
    const std::string args[] = {ms_arg(settings.expire), std::to_string(settings.awl)};
    const auto reply = store_.run(awl_check_script(), network_key(network), now, args);
    return !reply.empty() && reply[0] == "1";
}

void Greylist::count_pass(const std::string& network, const GreylistSettings& settings, int64_t now) {
    const std::string args[] = {ms_arg(settings.expire), std::to_string(settings.awl), network};
    store_.run(awl_count_script(), network_key(network), now, args);
}

void Greylist::allow(const Triplet& triplet, Millis expire) {
    const std::string args[] = {ms_arg(expire), triplet_parts(triplet)};
    store_.run(allow_triplet_script(), triplet_key(triplet), clock_(), args);
}

void Greylist::allow_network(const std::string& network, Millis expire) {
    const std::string args[] = {ms_arg(expire), network};
    store_.run(allow_network_script(), network_key(network), clock_(), args);
}

bool Greylist::drop(const Triplet& triplet) { return store_.erase(triplet_key(triplet)); }

size_t Greylist::drop_network(const std::string& network) {
    std::vector<Triplet> doomed;
    list([&](const TripletState& state) {
        if (state.triplet.network == network) doomed.push_back(state.triplet);
    });
    size_t dropped = store_.erase(network_key(network)) ? 1 : 0;
    for (const auto& triplet : doomed) dropped += drop(triplet) ? 1 : 0;
    return dropped;
}

void Greylist::list(const std::function<void(const TripletState&)>& visit) {
    store_.scan(kTripletKeys, [&](const store::Entry& entry) {
        const auto value = parse_triplet_value(entry.value);
        if (!value) return;
        const size_t first = value->parts.find('\n');
        const size_t second = value->parts.find('\n', first == std::string::npos ? first : first + 1);
        if (second == std::string::npos) return;
        TripletState state;
        state.triplet = {value->parts.substr(0, first), value->parts.substr(first + 1, second - first - 1),
                         value->parts.substr(second + 1)};
        state.passed = value->state == 'p';
        state.since_ms = value->at;
        state.expires_at_ms = entry.expires_at_ms;
        visit(state);
    });
}

void Greylist::list_networks(const std::function<void(const NetworkState&)>& visit) {
    store_.scan(kNetworkKeys, [&](const store::Entry& entry) {
        const auto value = parse_network_value(entry.value);
        if (!value) return;
        visit(NetworkState{value->network, static_cast<uint64_t>(value->passes), value->flag, value->last,
                           entry.expires_at_ms});
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
