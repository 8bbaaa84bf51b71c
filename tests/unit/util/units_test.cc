/*
 * units_test.cc: duration and size literals.
 */
#include "util/units.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

TEST(ParseDuration, AcceptsEveryUnit) {
    EXPECT_EQ(parse_duration("200ms"), Millis(200));
    EXPECT_EQ(parse_duration("30s"), Millis(30'000));
    EXPECT_EQ(parse_duration("30"), Millis(30'000));
    EXPECT_EQ(parse_duration("5m"), Millis(300'000));
    EXPECT_EQ(parse_duration("2h"), Millis(7'200'000));
    EXPECT_EQ(parse_duration("3d"), Millis(259'200'000));
    EXPECT_EQ(parse_duration("1w"), Millis(604'800'000));
}

TEST(ParseDuration, RejectsGarbageAndOverflow) {
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("s"));
    EXPECT_FALSE(parse_duration("5 m"));
    EXPECT_FALSE(parse_duration("5y"));
    EXPECT_FALSE(parse_duration("-5s"));
    EXPECT_FALSE(parse_duration("99999999999999999999w"));
    EXPECT_FALSE(parse_duration("9999999999999999w"));
}

TEST(ParseSize, PowersOf1024) {
    EXPECT_EQ(parse_size("512"), 512u);
    EXPECT_EQ(parse_size("10k"), 10u * 1024);
    EXPECT_EQ(parse_size("25M"), 25u * 1024 * 1024);
    EXPECT_EQ(parse_size("1G"), 1024u * 1024 * 1024);
    EXPECT_FALSE(parse_size("1T"));
    EXPECT_FALSE(parse_size("1kb"));
    EXPECT_FALSE(parse_size("99999999999999999G"));
}

TEST(FormatDuration, ShortestExactUnit) {
    EXPECT_EQ(format_duration(Millis(300'000)), "5m");
    EXPECT_EQ(format_duration(Millis(90'000)), "90s");
    EXPECT_EQ(format_duration(Millis(250)), "250ms");
    EXPECT_EQ(format_duration(Millis(0)), "0ms");
}

}  // namespace
}  // namespace portcullis
