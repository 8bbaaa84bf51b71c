/*
 * digest.cc: SHA-1 and SHA-256 from libcrypto.
 *
 * SHA-256 is fetched from libcrypto's provider once: OpenSSL 3's
 * SHA256() and EVP_sha256() look the algorithm up, under a lock, on
 * every call, which was half the cost of a store key (three a message).
 * key_digest() also keeps one digest context per thread.
 */
#include "util/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <memory>
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

const EVP_MD* sha256_method() {
    static EVP_MD* const method = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (method == nullptr) throw std::bad_alloc();
    return method;
}

struct ContextFree {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

}  // namespace

std::string sha1_hex(std::string_view data) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    return hex(digest, sizeof digest);
}

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
    if (!context_ || EVP_DigestInit_ex2(context_, sha256_method(), nullptr) != 1) throw std::bad_alloc();
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
    thread_local const std::unique_ptr<EVP_MD_CTX, ContextFree> context(EVP_MD_CTX_new());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!context || EVP_DigestInit_ex2(context.get(), sha256_method(), nullptr) != 1 ||
        EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 ||
        EVP_DigestFinal_ex(context.get(), digest, &length) != 1) {
        throw std::bad_alloc();
    }
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
