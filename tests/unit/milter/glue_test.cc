/*
 * glue_test.cc: reply text as libmilter takes it.
 */
#include "milter/glue.h"

#include <gtest/gtest.h>

namespace portcullis::milter {
namespace {

TEST(MilterText, PercentIsDoubled) { EXPECT_EQ(milter_text("100% sure, 5%s"), "100%% sure, 5%%s"); }

TEST(MilterText, TextEndingInAMultiByteCharacterIsKept) {
    EXPECT_EQ(milter_text("caf\xc3\xa9"), "caf\xc3\xa9");
    EXPECT_EQ(milter_text("\xe2\x82\xac"), "\xe2\x82\xac");
}

TEST(MilterText, CutAt980BytesAfterEscaping) {
    EXPECT_EQ(milter_text(std::string(2000, 'a')).size(), 980u);
    // 600 '%' become 1200 bytes: 490 of them fit.
    EXPECT_EQ(milter_text(std::string(600, '%')), std::string(980, '%'));
}

TEST(MilterText, CutNeverSplitsACharacter) {
    const std::string text = std::string(979, 'a') + "\xc3\xa9";
    EXPECT_EQ(milter_text(text), std::string(979, 'a'));
    const std::string euro = std::string(978, 'a') + "\xe2\x82\xac";
    EXPECT_EQ(milter_text(euro), std::string(978, 'a'));
}

}  // namespace
}  // namespace portcullis::milter
