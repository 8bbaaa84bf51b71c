/*
 * digest.h: the hashes the store needs, from OpenSSL's libcrypto (the one
 * place that calls it outside DKIM).
 *
 * sha1_hex() names a Lua script for Redis EVALSHA; key_digest() turns the
 * parts of a greylist triplet or a rate-limit key into a short, fixed-size
 * store key: the first 10 bytes of SHA-256 in base64url (14 characters,
 * 80 bits: no accidental collision among billions of keys).
 */
#pragma once

#include <string>
#include <string_view>

namespace portcullis {

std::string sha1_hex(std::string_view data);
std::string key_digest(std::string_view data);

}  // namespace portcullis
