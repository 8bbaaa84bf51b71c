/*
 * digest.cc: SHA-1 and SHA-256 through libcrypto's one-shot calls.
 */
#include "util/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <new>

namespace portcullis {

namespace {

std::string hex(const unsigned char* bytes, size_t count) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * count);
    for (size_t i = 0; i < count; ++i) {
        out += kHex[bytes[i] >> 4];
        out += kHex[bytes[i] & 0xf];
    }
    return out;
}

}  // namespace

std::string sha1_hex(std::string_view data) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    return hex(digest, sizeof digest);
}

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
    if (!context_ || EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

void Sha256::update(std::string_view data) { EVP_DigestUpdate(context_, data.data(), data.size()); }

std::string Sha256::hex_digest() const {
    EVP_MD_CTX* copy = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    const bool ok = copy && EVP_MD_CTX_copy_ex(copy, context_) == 1 && EVP_DigestFinal_ex(copy, digest, &length) == 1;
    EVP_MD_CTX_free(copy);
    return ok ? hex(digest, length) : "";
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

std::string openssl_version() { return OpenSSL_version(OPENSSL_VERSION); }

}  // namespace portcullis
