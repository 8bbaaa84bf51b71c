/*
 * redis_url.h: the URL of a Redis server (store.url), read by one parser
 * for the configuration check and for the store alike.
 *
 * parse_redis_url() takes either form of kRedisUrlForms:
 *   redis://[[user]:password@]host[:port][/db]
 *       host a name, an IPv4 address or an [IPv6] address in brackets;
 *       port 6379 and db 0 when not given; user and password may hold
 *       %XX escapes, so that they can contain ':', '@', '/' or '&'
 *   unix:///path[?db=N][&password=P]
 *       path absolute; the parameters in either order; P may hold %XX
 * and returns it as a RedisEndpoint, or throws RedisUrlError saying what
 * is wrong.  The message never repeats the URL, which may hold a password.
 * The parser only reads: it neither resolves the host nor opens the path.
 */
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace portcullis {

struct RedisEndpoint {
    std::string host;          // a name or an address; IPv6 without brackets
    int port = 6379;
    std::string socket_path;   // not empty: a unix socket, host and port unused
    std::string user;          // "": AUTH with the password alone
    std::string password;      // "": no AUTH
    int db = 0;                // 0: no SELECT
};

class RedisUrlError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/* For messages that tell an administrator what to write. */
inline constexpr std::string_view kRedisUrlForms =
    "redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N][&password=P]";

RedisEndpoint parse_redis_url(std::string_view url);

}  // namespace portcullis
