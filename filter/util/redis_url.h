/*
 * redis_url.h: the URL of a Redis server (store.url), and the servers of
 * a deployment, read by one parser for the configuration check and for
 * the store alike.
 *
 * parse_redis_url() takes either form of kRedisUrlForms:
 *   redis://[[user]:password@]host[:port][/db]
 *       host a name, an IPv4 address or an [IPv6] address in brackets;
 *       port 6379 and db 0 when not given; user and password may hold
 *       %XX escapes, so that they can contain ':', '@', '/' or '&'
 *   unix:///path[?db=N][&password=P]
 *       path absolute; the parameters in either order; P may hold %XX
 * and returns it as a RedisEndpoint, or throws RedisUrlError saying what
 * is wrong; rediss:// is refused with its own reason (no TLS here).  The message never repeats the URL, which may hold a password.
 * The parser only reads: it neither resolves the host nor opens the path.
 *
 * parse_redis_servers() reads the servers of a deployment from the store
 * settings: in RedisMode standalone one URL, whose credentials are the
 * server's (or USER and PASSWORD, when the URL has none); in sentinel
 * mode the sentinels (each URL's credentials its own) and MASTER, the
 * name they know the master by, whose credentials are USER and PASSWORD;
 * in cluster mode seed nodes over TCP, without credentials (every node
 * takes USER and PASSWORD).  Sentinel and cluster use database 0.  What
 * does not fit throws RedisServersError naming the key to blame.
 */
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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

/* URLS separated by commas; an error names the entry by its place ("URL
 * 2: ...", or nothing for one URL) and ends with the forms expected. */
std::vector<RedisEndpoint> parse_redis_url_list(std::string_view urls);

enum class RedisMode { standalone, sentinel, cluster };

struct RedisServers {
    RedisMode mode = RedisMode::standalone;
    std::vector<RedisEndpoint> urls;   // the server, the sentinels or the seed nodes
    std::string master;                // sentinel: the master's name
    std::string user;                  // AUTH of the master (sentinel) or of every node (cluster)
    std::string password;
};

/* KEY names the setting ("store.url"); what() is "KEY: why". */
class RedisServersError : public RedisUrlError {
public:
    RedisServersError(std::string key, const std::string& why) : RedisUrlError(key + ": " + why), key_(std::move(key)) {}
    const std::string& key() const { return key_; }

private:
    std::string key_;
};

/* URLS is store.url: one URL or several separated by commas. */
RedisServers parse_redis_servers(RedisMode mode, std::string_view urls, std::string master, std::string user,
                                 std::string password);

}  // namespace portcullis
