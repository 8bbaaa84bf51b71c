/*
 * digest_test.cc: the hashes of util/digest.h against known values.  The
 * store keys of greylisting and rate limits are key_digest()s, so a
 * change of its value would lose every record a store holds.
 */
#include "util/digest.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace portcullis {
namespace {

TEST(KeyDigest, IsTheFirstTenBytesOfSha256InBase64Url) {
    EXPECT_EQ(key_digest(""), "47DEQpj8HBSa-w");
    EXPECT_EQ(key_digest("192.0.2.0/24"), "4zaRX_F59TbI6A");
    EXPECT_EQ(key_digest("sender@example.org\nrcpt@example.com"), "taVVqTYQ7_syww");
}

TEST(KeyDigest, GivesTheSameOnEveryThread) {
    std::vector<std::string> digests(4);
    std::vector<std::thread> threads;
    for (std::string& digest : digests) {
        threads.emplace_back([&digest] {
            for (int i = 0; i < 100; ++i) digest = key_digest("192.0.2.0/24");
        });
    }
    for (std::thread& thread : threads) thread.join();
    for (const std::string& digest : digests) EXPECT_EQ(digest, "4zaRX_F59TbI6A");
}

TEST(Sha256, HexDigestOfPiecesIsTheWhole) {
    Sha256 hash;
    EXPECT_EQ(hash.hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hash.update("a");
    hash.update("bc");
    EXPECT_EQ(hash.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha1Hex, NamesAScriptAsRedisDoes) { EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d"); }

}  // namespace
}  // namespace portcullis
