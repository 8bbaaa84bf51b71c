/*
 * digest.cc: SHA-1 and SHA-256 through libcrypto's one-shot calls.
 */
#include "util/digest.h"

#include <openssl/sha.h>

namespace portcullis {

std::string sha1_hex(std::string_view data) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * sizeof digest);
    for (const unsigned char byte : digest) {
        out += kHex[byte >> 4];
        out += kHex[byte & 0xf];
    }
    return out;
}

std::string key_digest(std::string_view data) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    static constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // 10 bytes = 80 bits = 13 full sextets and 2 bits: 14 characters.
    std::string out;
    unsigned bits = 0;
    unsigned buffer = 0;
    for (size_t i = 0; i < 10; ++i) {
        buffer = (buffer << 8) | digest[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kBase64Url[(buffer >> bits) & 0x3f];
        }
    }
    if (bits > 0) out += kBase64Url[(buffer << (6 - bits)) & 0x3f];
    return out;
}

}  // namespace portcullis
