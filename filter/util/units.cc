/*
 * units.cc: duration and size literals.
 */
#include "util/units.h"

#include <charconv>
#include <ctime>
#include <limits>

namespace portcullis {

namespace {

/* Split "123abc" into the number and the suffix; nullopt without digits. */
std::optional<std::pair<uint64_t, std::string_view>> split_number(std::string_view text) {
    uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end == text.data()) return std::nullopt;
    return std::pair{value, text.substr(static_cast<size_t>(end - text.data()))};
}

std::optional<uint64_t> multiply(uint64_t value, uint64_t factor) {
    if (factor != 0 && value > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
    return value * factor;
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text) {
    const auto parts = split_number(text);
    if (!parts) return std::nullopt;
    const auto [value, suffix] = *parts;
    uint64_t factor = 0;
    if (suffix == "ms") factor = 1;
    else if (suffix.empty() || suffix == "s") factor = 1000;
    else if (suffix == "m") factor = 60'000;
    else if (suffix == "h") factor = 3'600'000;
    else if (suffix == "d") factor = 86'400'000;
    else if (suffix == "w") factor = 604'800'000;
    else return std::nullopt;
    const auto millis = multiply(value, factor);
    if (!millis || *millis > static_cast<uint64_t>(std::numeric_limits<Millis::rep>::max())) return std::nullopt;
    return Millis(static_cast<Millis::rep>(*millis));
}

std::optional<uint64_t> parse_size(std::string_view text) {
    const auto parts = split_number(text);
    if (!parts) return std::nullopt;
    const auto [value, suffix] = *parts;
    if (suffix.empty()) return value;
    if (suffix.size() != 1) return std::nullopt;
    switch (suffix[0]) {
        case 'k': case 'K': return multiply(value, 1024);
        case 'm': case 'M': return multiply(value, 1024 * 1024);
        case 'g': case 'G': return multiply(value, 1024 * 1024 * 1024);
        default: return std::nullopt;
    }
}

std::string format_duration(Millis duration) {
    const auto ms = duration.count();
    struct Unit { long long size; const char* name; };
    static constexpr Unit units[] = {{604'800'000, "w"}, {86'400'000, "d"}, {3'600'000, "h"},
                                     {60'000, "m"},      {1000, "s"}};
    for (const auto& unit : units) {
        if (ms != 0 && ms % unit.size == 0) return std::to_string(ms / unit.size) + unit.name;
    }
    return std::to_string(ms) + "ms";
}

std::string utc_time(int64_t ms_since_epoch) {
    if (ms_since_epoch == 0) return "never";
    const std::time_t seconds = static_cast<std::time_t>(ms_since_epoch / 1000);
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

}  // namespace portcullis
