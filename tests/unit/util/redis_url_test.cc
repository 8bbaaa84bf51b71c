/*
 * redis_url_test.cc: both forms of a Redis URL, their defaults, IPv6
 * hosts and %-escapes, and the reasons nonsense is refused, none of which
 * may show the password.
 */
#include "util/redis_url.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

RedisEndpoint parse_ok(std::string_view url) {
    try {
        return parse_redis_url(url);
    } catch (const RedisUrlError& bad) {
        ADD_FAILURE() << url << ": " << bad.what();
        return {};
    }
}

/* Why URL is refused; "" if it is not. */
std::string reason(std::string_view url) {
    try {
        parse_redis_url(url);
    } catch (const RedisUrlError& bad) {
        return bad.what();
    }
    return "";
}

TEST(RedisUrl, DefaultsAreLocalPortAndDatabaseZeroWithoutAuth) {
    const auto endpoint = parse_ok("redis://localhost");
    EXPECT_EQ(endpoint.host, "localhost");
    EXPECT_EQ(endpoint.port, 6379);
    EXPECT_EQ(endpoint.db, 0);
    EXPECT_EQ(endpoint.user, "");
    EXPECT_EQ(endpoint.password, "");
    EXPECT_EQ(endpoint.socket_path, "");
}

TEST(RedisUrl, TcpWithEveryPart) {
    const auto endpoint = parse_ok("redis://alice:secret@redis.example:6380/2");
    EXPECT_EQ(endpoint.user, "alice");
    EXPECT_EQ(endpoint.password, "secret");
    EXPECT_EQ(endpoint.host, "redis.example");
    EXPECT_EQ(endpoint.port, 6380);
    EXPECT_EQ(endpoint.db, 2);
}

TEST(RedisUrl, PasswordWithoutUser) {
    const auto endpoint = parse_ok("redis://:secret@10.0.0.1");
    EXPECT_EQ(endpoint.user, "");
    EXPECT_EQ(endpoint.password, "secret");
    EXPECT_EQ(endpoint.host, "10.0.0.1");
}

TEST(RedisUrl, CredentialsEndAtTheLastAt) {
    const auto endpoint = parse_ok("redis://:p@ss@h:1/0");
    EXPECT_EQ(endpoint.password, "p@ss");
    EXPECT_EQ(endpoint.host, "h");
    EXPECT_EQ(endpoint.port, 1);
}

TEST(RedisUrl, PortAndDatabaseBounds) {
    EXPECT_EQ(parse_ok("redis://h:1").port, 1);
    EXPECT_EQ(parse_ok("redis://h:65535").port, 65535);
    EXPECT_EQ(parse_ok("redis://h/2147483647").db, 2147483647);
}

TEST(RedisUrl, Ipv6InBrackets) {
    const auto loopback = parse_ok("redis://[::1]");
    EXPECT_EQ(loopback.host, "::1");
    EXPECT_EQ(loopback.port, 6379);
    const auto full = parse_ok("redis://alice:pw@[2001:db8::7]:7000/5");
    EXPECT_EQ(full.host, "2001:db8::7");
    EXPECT_EQ(full.port, 7000);
    EXPECT_EQ(full.db, 5);
    EXPECT_EQ(full.user, "alice");
}

TEST(RedisUrl, PercentEscapesInUserAndPassword) {
    const auto endpoint = parse_ok("redis://al%69ce:s3%3Acr%40t%2f%26@host/1");
    EXPECT_EQ(endpoint.user, "alice");
    EXPECT_EQ(endpoint.password, "s3:cr@t/&");
    EXPECT_EQ(endpoint.host, "host");
    EXPECT_EQ(endpoint.db, 1);
}

TEST(RedisUrl, UnixSocket) {
    const auto endpoint = parse_ok("unix:///run/redis/redis.sock");
    EXPECT_EQ(endpoint.socket_path, "/run/redis/redis.sock");
    EXPECT_EQ(endpoint.db, 0);
    EXPECT_EQ(endpoint.password, "");
    EXPECT_EQ(endpoint.host, "");
}

TEST(RedisUrl, UnixSocketParametersInEitherOrder) {
    const auto db_first = parse_ok("unix:///run/redis.sock?db=3&password=p%26w");
    EXPECT_EQ(db_first.socket_path, "/run/redis.sock");
    EXPECT_EQ(db_first.db, 3);
    EXPECT_EQ(db_first.password, "p&w");
    const auto password_first = parse_ok("unix:///run/redis.sock?password=pw&db=4");
    EXPECT_EQ(password_first.db, 4);
    EXPECT_EQ(password_first.password, "pw");
    EXPECT_EQ(parse_ok("unix:///s?db=7").db, 7);
}

TEST(RedisUrl, EachKindOfNonsenseSaysWhatIsWrong) {
    const std::string scheme = "the scheme is neither redis:// nor unix://";
    const std::string port = "the port must be a number from 1 to 65535";
    const std::string db = "the database after '/' must be a number";
    const std::string no_host = "no host (an IPv6 address goes in brackets)";
    const std::string absolute = "unix:// needs an absolute path, as in unix:///run/redis/redis.sock";
    const std::string lacks_equals = "a parameter after '?' lacks its '=' (known: db=N, password=P)";
    const std::pair<const char*, std::string> cases[] = {
        {"", scheme},
        {"http://host", scheme},
        {"REDIS://host", scheme},
        {"redis:/host", scheme},
        {"redis://", no_host},
        {"redis://:6379", no_host},
        {"redis://::1", no_host},
        {"redis://:secret@", no_host},
        {"redis://host:0", port},
        {"redis://host:65536", port},
        {"redis://host:99999999999", port},
        {"redis://host:-1", port},
        {"redis://host:+1", port},
        {"redis://host:", port},
        {"redis://host:port", port},
        {"redis://fe80::1", port},
        {"redis://host/", db},
        {"redis://host/x", db},
        {"redis://host/-1", db},
        {"redis://host/1/2", db},
        {"redis://host/99999999999", db},
        {"redis://ho st", "the host may hold only letters, digits, '.', '-' and '_'"},
        {"redis://host?db=1", "the host may hold only letters, digits, '.', '-' and '_'"},
        {"redis://[::1", "'[' without ']' around the host"},
        {"redis://[::1]x", "only ':PORT' may follow ']'"},
        {"redis://[::1]:0", port},
        {"redis://[]", "the host in brackets is not an IPv6 address"},
        {"redis://[localhost]", "the host in brackets is not an IPv6 address"},
        {"redis://[10.0.0.1]", "the host in brackets is not an IPv6 address"},
        {"redis://secret@host", "credentials must read user:password@ or :password@"},
        {"redis://:@host", "the password before '@' is empty"},
        {"redis://alice:@host", "the password before '@' is empty"},
        {"redis://:secret%4@host", "a '%' in the user or password is not followed by two hex digits"},
        {"redis://:secret%zz@host", "a '%' in the user or password is not followed by two hex digits"},
        {"unix://", absolute},
        {"unix:///", absolute},
        {"unix://relative.sock", absolute},
        {"unix://run/redis.sock", absolute},
        {"unix:///s?db=", "db= must be a number"},
        {"unix:///s?db=x", "db= must be a number"},
        {"unix:///s?password=secret%g1", "a '%' in the user or password is not followed by two hex digits"},
        {"unix:///s?user=secret", "unknown parameter 'user' (known: db, password)"},
        {"unix:///s?=1", "unknown parameter '' (known: db, password)"},
        {"unix:///s?", lacks_equals},
        {"unix:///s?db=1&", lacks_equals},
        {"unix:///s?secret", lacks_equals},
    };
    for (const auto& [url, expected] : cases) EXPECT_EQ(reason(url), expected) << url;
}

TEST(RedisUrl, NoReasonShowsThePassword) {
    for (const auto* url : {"redis://alice:secret@host:0", "redis://:secret@host/x", "redis://:secret@[::1",
                            "redis://:secret@ho st", "redis://secret@host", "redis://:secret%4@host",
                            "unix:///s?password=secret&db=x", "unix:///s?pasword=secret", "unix:///s?secret"}) {
        const auto why = reason(url);
        EXPECT_FALSE(why.empty()) << url;
        EXPECT_EQ(why.find("secret"), std::string::npos) << url << ": " << why;
    }
}

TEST(RedisUrl, TlsIsRefusedWithTheTunnelToUseInstead) {
    for (const auto* url : {"rediss://host", "rediss://:secret@redis.example:6380/1"}) {
        const auto why = reason(url);
        EXPECT_TRUE(why.starts_with("rediss:// (TLS) is not supported: the Redis client library (hiredis 0.14) has "
                                    "no TLS; reach a remote Redis through a local TLS tunnel (stunnel, spiped)"))
            << url << ": " << why;
        EXPECT_EQ(why.find("secret"), std::string::npos) << why;
    }
}

TEST(RedisUrl, FormsNameBothSchemes) {
    EXPECT_EQ(kRedisUrlForms, "redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N][&password=P]");
}

}  // namespace
}  // namespace portcullis
