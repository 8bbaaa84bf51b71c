/*
 * digest.h: the hashes the store needs, from OpenSSL's libcrypto (the one
 * place that calls it outside DKIM).
 *
 * sha1_hex() names a Lua script for Redis EVALSHA; Sha256 is the digest of
 * the files a policy was loaded from, which `status` shows; key_digest()
 * turns the
 * parts of a greylist triplet or a rate-limit key into a short, fixed-size
 * store key: the first 10 bytes of SHA-256 in base64url (14 characters,
 * 80 bits: no accidental collision among billions of keys).
 */
#pragma once

#include <string>
#include <string_view>

struct evp_md_ctx_st;   // OpenSSL's EVP_MD_CTX

namespace portcullis {

std::string sha1_hex(std::string_view data);

/* SHA-256 fed piece by piece; hex_digest() may be asked at any point. */
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::string_view data);
    std::string hex_digest() const;

private:
    ::evp_md_ctx_st* context_;
};
std::string key_digest(std::string_view data);

/* "OpenSSL 3.0.19 ...": the libcrypto linked, for `version`. */
std::string openssl_version();

}  // namespace portcullis
