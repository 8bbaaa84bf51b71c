/*
 * counter_script.h: a store script the store tests run on every backend,
 * with its C++ twin for the memory store.
 *
 * kCounterScript adds ARGV[2] to the string at KEYS[1], which then
 * expires ARGV[3] ms after ARGV[1] (now, in ms), and returns the new
 * count and that expiry; the twin does the same to a Record (ARGS are
 * the increment and the lifetime: the store passes now itself).
 */
#pragma once

#include <span>
#include <string>
#include <vector>

#include "store/store.h"

namespace portcullis::test_support {

inline std::vector<std::string> counter_apply(store::Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t count = (record.value ? std::stoll(*record.value) : 0) + std::stoll(args[0]);
    record.value = std::to_string(count);
    record.expires_at_ms = now + std::stoll(args[1]);
    return {*record.value, std::to_string(record.expires_at_ms)};
}

inline const store::Script kCounterScript{"counter", R"lua(
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local expires_at = tonumber(ARGV[1]) + tonumber(ARGV[3])
redis.call('PEXPIREAT', KEYS[1], expires_at)
return {count, expires_at}
)lua",
                                          counter_apply};

}  // namespace portcullis::test_support
