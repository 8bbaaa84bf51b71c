/*
 * units.h: the duration and size literals shared by the config file and
 * the policy language.
 *
 * parse_duration() takes a number followed by one of ms, s, m, h, d, w
 * ("30s", "200ms", "2d"); a bare number is seconds.  parse_size() takes a
 * number with an optional k, M, G suffix (powers of 1024, case of the
 * suffix ignored).  Both return nullopt on anything else, including
 * overflow.  format_duration() writes the shortest exact form back.
 * utc_time() writes a time (ms since the epoch) as "2026-12-06T16:00:00Z",
 * and 0 as "never".
 *
 * kMaxStoredDuration bounds the durations that become store records (a
 * greylist rule's delay, window and expire, `greylist allow --expire`, a
 * rate's period): longer ones overflowed the arithmetic on times in the
 * store's scripts and their C++ twins, and no record is worth 10 years.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

using Millis = std::chrono::milliseconds;

inline constexpr Millis kMaxStoredDuration = std::chrono::hours(24 * 3650);

std::optional<Millis> parse_duration(std::string_view text);
std::optional<uint64_t> parse_size(std::string_view text);
std::string format_duration(Millis duration);
std::string utc_time(int64_t ms_since_epoch);

}  // namespace portcullis
