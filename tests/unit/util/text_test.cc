/*
 * text_test.cc: parse_decimal, the one whole-text number reader,
 * without_outer_dots, and errno_message (errno's own when not given).
 */
#include "util/text.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace portcullis {
namespace {

TEST(WithoutOuterDots, LeadingAndFinalDotsOnly) {
    EXPECT_EQ(without_outer_dots("..bl.example."), "bl.example");
    EXPECT_EQ(without_outer_dots("bl.example"), "bl.example");
    EXPECT_EQ(without_outer_dots("..."), "");
    EXPECT_EQ(without_outer_dots(""), "");
}

TEST(ParseDecimal, WholeTextOnly) {
    EXPECT_EQ(parse_decimal<uint64_t>("25"), 25u);
    EXPECT_EQ(parse_decimal<uint64_t>("0"), 0u);
    EXPECT_FALSE(parse_decimal<uint64_t>(""));
    EXPECT_FALSE(parse_decimal<uint64_t>("25x"));
    EXPECT_FALSE(parse_decimal<uint64_t>(" 25"));
    EXPECT_FALSE(parse_decimal<uint64_t>("+25"));
}

TEST(ParseDecimal, SignOnlyForSignedTypes) {
    EXPECT_FALSE(parse_decimal<unsigned>("-0"));
    EXPECT_EQ(parse_decimal<int64_t>("-5"), -5);
    EXPECT_EQ(parse_decimal<int64_t>("1800000000000"), 1'800'000'000'000);
}

TEST(ParseDecimal, OverflowIsRefused) {
    EXPECT_EQ(parse_decimal<uint64_t>("18446744073709551615"), UINT64_MAX);
    EXPECT_FALSE(parse_decimal<uint64_t>("18446744073709551616"));
    EXPECT_FALSE(parse_decimal<unsigned>("4294967296"));
}

TEST(ErrnoMessage, WhatThenTheSystemsText) {
    EXPECT_EQ(errno_message("open 'x'", ENOENT), std::string("open 'x': ") + std::strerror(ENOENT));
    errno = EACCES;
    EXPECT_EQ(errno_message("bind"), std::string("bind: ") + std::strerror(EACCES));
}

TEST(Digits, OnlyAsciiDigitsWithinTheLengthsGiven) {
    EXPECT_TRUE(is_digits("0"));
    EXPECT_TRUE(is_digits("65535"));
    EXPECT_TRUE(is_digits("550", 3, 3));
    EXPECT_FALSE(is_digits(""));
    EXPECT_FALSE(is_digits("55", 3, 3));
    EXPECT_FALSE(is_digits("5500", 3, 3));
    EXPECT_FALSE(is_digits("5a0"));
    EXPECT_FALSE(is_digits("-1"));
    EXPECT_FALSE(is_digits(" 1"));
    EXPECT_TRUE(is_digits("", 0, 3));
}

TEST(EnhancedCode, ClassThenOneToThreeDigitsTwice) {
    for (const char* code : {"5.7.1", "4.3.0", "2.0.0", "5.123.456", "4.1.99"}) {
        EXPECT_TRUE(is_enhanced_code(code)) << code;
    }
    for (const char* code : {"", "5.7", "5.7.", "5..1", "3.7.1", "55.7.1", "5.7.1.", "5.1234.1", "5.7.1234", "5.7.1 ",
                             "5.a.1", "5,7,1", ".5.7.1"}) {
        EXPECT_FALSE(is_enhanced_code(code)) << code;
    }
}

}  // namespace
}  // namespace portcullis
