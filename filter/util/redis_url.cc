/*
 * redis_url.cc: the redis:// and unix:// forms of a Redis URL.
 */
#include "util/redis_url.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>

#include "util/text.h"

namespace portcullis {

namespace {

/* The URL itself stays out of every message: it may hold a password. */
[[noreturn]] void bad_url(const std::string& why) { throw RedisUrlError(why); }

/* Decimal digits alone, no sign, from 0 to MAX. */
std::optional<int> parse_number(std::string_view text, int max) {
    const auto value = parse_decimal<unsigned>(text);
    if (!value || *value > static_cast<unsigned>(max)) return std::nullopt;
    return static_cast<int>(*value);
}

/* %XX escapes let a user name or password hold ':', '@', '/' or '&'. */
std::string percent_decode(std::string_view text) {
    std::string decoded;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            decoded += text[i];
            continue;
        }
        unsigned char byte = 0;
        const char* hex = text.data() + i + 1;
        if (i + 3 > text.size() || std::from_chars(hex, hex + 2, byte, 16).ptr != hex + 2) {
            bad_url("a '%' in the user or password is not followed by two hex digits");
        }
        decoded += static_cast<char>(byte);
        i += 2;
    }
    return decoded;
}

/* The characters of host names and IPv4 addresses: anything else is a
 * typo, and white space or control characters would garble the logs
 * that name the server. */
bool has_host_name_characters(std::string_view host) {
    return std::all_of(host.begin(), host.end(), [](char c) {
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        return letter || digit || c == '.' || c == '-' || c == '_';
    });
}

bool is_ipv6(const std::string& address) {
    in6_addr parsed{};
    return inet_pton(AF_INET6, address.c_str(), &parsed) == 1;
}

/* user:password or :password, before the '@' of a redis:// URL. */
void parse_credentials(std::string_view credentials, RedisEndpoint& endpoint) {
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) bad_url("credentials must read user:password@ or :password@");
    endpoint.user = percent_decode(credentials.substr(0, colon));
    endpoint.password = percent_decode(credentials.substr(colon + 1));
    if (endpoint.password.empty()) bad_url("the password before '@' is empty");
}

/* host[:port] or [IPv6][:port]. */
void parse_host_port(std::string_view authority, RedisEndpoint& endpoint) {
    std::optional<std::string_view> port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) bad_url("'[' without ']' around the host");
        endpoint.host = authority.substr(1, close - 1);
        if (!is_ipv6(endpoint.host)) bad_url("the host in brackets is not an IPv6 address");
        const auto after = authority.substr(close + 1);
        if (!after.empty() && !after.starts_with(':')) bad_url("only ':PORT' may follow ']'");
        if (!after.empty()) port = after.substr(1);
    } else {
        const auto colon = authority.find(':');
        endpoint.host = authority.substr(0, colon);
        if (endpoint.host.empty()) bad_url("no host (an IPv6 address goes in brackets)");
        if (!has_host_name_characters(endpoint.host)) {
            bad_url("the host may hold only letters, digits, '.', '-' and '_'");
        }
        if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    }
    if (port) {
        const auto number = parse_number(*port, 65535);
        if (!number || *number == 0) bad_url("the port must be a number from 1 to 65535");
        endpoint.port = *number;
    }
}

/* redis://[[user]:password@]host[:port][/db], without the scheme. */
RedisEndpoint parse_tcp_url(std::string_view rest) {
    RedisEndpoint endpoint;
    // The credentials end at the last '@', whatever they hold.
    const auto at = rest.rfind('@');
    if (at != std::string_view::npos) {
        parse_credentials(rest.substr(0, at), endpoint);
        rest.remove_prefix(at + 1);
    }

    const auto slash = rest.find('/');
    if (slash != std::string_view::npos) {
        const auto db = parse_number(rest.substr(slash + 1), std::numeric_limits<int>::max());
        if (!db) bad_url("the database after '/' must be a number");
        endpoint.db = *db;
    }
    parse_host_port(rest.substr(0, slash), endpoint);
    return endpoint;
}

/* One NAME=VALUE of a unix:// URL's query.  A bad one is named by its
 * NAME alone: the rest may be a misspelt password. */
void parse_unix_parameter(std::string_view parameter, RedisEndpoint& endpoint) {
    const auto equals = parameter.find('=');
    if (equals == std::string_view::npos) bad_url("a parameter after '?' lacks its '=' (known: db=N, password=P)");
    const auto name = parameter.substr(0, equals);
    const auto value = parameter.substr(equals + 1);
    if (name == "db") {
        const auto db = parse_number(value, std::numeric_limits<int>::max());
        if (!db) bad_url("db= must be a number");
        endpoint.db = *db;
    } else if (name == "password") {
        endpoint.password = percent_decode(value);
    } else {
        bad_url("unknown parameter '" + std::string(name) + "' (known: db, password)");
    }
}

/* unix:///path[?db=N][&password=P], without the scheme. */
RedisEndpoint parse_unix_url(std::string_view rest) {
    RedisEndpoint endpoint;
    const auto question = rest.find('?');
    endpoint.socket_path = rest.substr(0, question);
    if (endpoint.socket_path.size() < 2 || endpoint.socket_path.front() != '/') {
        bad_url("unix:// needs an absolute path, as in unix:///run/redis/redis.sock");
    }
    if (question == std::string_view::npos) return endpoint;

    auto query = rest.substr(question + 1);
    for (;;) {
        const auto ampersand = query.find('&');
        parse_unix_parameter(query.substr(0, ampersand), endpoint);
        if (ampersand == std::string_view::npos) return endpoint;
        query.remove_prefix(ampersand + 1);
    }
}

/* "URL 2: " for an entry of a list, "" for a URL alone: an entry is
 * named by its place, never quoted, as it may hold a password. */
std::string url_entry(size_t index, size_t count) {
    return count > 1 ? "URL " + std::to_string(index + 1) + ": " : "";
}

/* What an entry of a sentinel or cluster list may not hold. */
void check_list_entry(RedisMode mode, const RedisEndpoint& endpoint, const std::string& entry) {
    if (endpoint.db != 0) {
        throw RedisServersError("store.url", entry + "sentinel and cluster modes use database 0 (store.prefix keeps "
                                                     "installations apart)");
    }
    if (mode != RedisMode::cluster) return;
    if (!endpoint.socket_path.empty()) {
        throw RedisServersError("store.url", entry + "cluster nodes are reached over TCP (redis://HOST:PORT)");
    }
    if (!endpoint.password.empty()) {
        throw RedisServersError("store.url", entry +
                                                 "every cluster node authenticates with store.user and "
                                                 "store.password; the URL may not hold credentials");
    }
}

}  // namespace

std::vector<RedisEndpoint> parse_redis_url_list(std::string_view urls) {
    std::vector<RedisEndpoint> endpoints;
    const auto entries = split_list(urls);
    for (size_t i = 0; i < entries.size(); ++i) {
        try {
            endpoints.push_back(parse_redis_url(entries[i]));
        } catch (const RedisUrlError& bad) {
            throw RedisUrlError(url_entry(i, entries.size()) + bad.what() + " (expected " +
                                std::string(kRedisUrlForms) + ")");
        }
    }
    return endpoints;
}

RedisServers parse_redis_servers(RedisMode mode, std::string_view urls, std::string master, std::string user,
                                 std::string password) {
    RedisServers servers{mode, {}, std::move(master), std::move(user), std::move(password)};
    try {
        servers.urls = parse_redis_url_list(urls);
    } catch (const RedisUrlError& bad) {
        throw RedisServersError("store.url", bad.what());
    }
    if (mode != RedisMode::standalone) {
        for (size_t i = 0; i < servers.urls.size(); ++i) {
            check_list_entry(mode, servers.urls[i], url_entry(i, servers.urls.size()));
        }
    }
    if (!servers.user.empty() && servers.password.empty()) {
        throw RedisServersError("store.user", "needs store.password (Redis takes AUTH USER PASSWORD)");
    }
    if (mode == RedisMode::sentinel && servers.master.empty()) {
        throw RedisServersError("store.mode", "\"sentinel\" needs store.master, the name of the master the "
                                              "sentinels watch");
    }
    if (mode != RedisMode::standalone) return servers;
    if (servers.urls.size() > 1) {
        throw RedisServersError("store.url", "a list of servers needs store.mode \"sentinel\" or \"cluster\"");
    }
    RedisEndpoint& server = servers.urls.front();
    if (!servers.password.empty()) {
        if (!server.password.empty()) {
            throw RedisServersError("store.password", "store.url holds a password already; give it in one place");
        }
        server.user = std::move(servers.user);
        server.password = std::move(servers.password);
        servers.user.clear();
        servers.password.clear();
    }
    return servers;
}

RedisEndpoint parse_redis_url(std::string_view url) {
    if (url.starts_with("redis://")) return parse_tcp_url(url.substr(8));
    if (url.starts_with("unix://")) return parse_unix_url(url.substr(7));
    if (url.starts_with("rediss://")) {
        bad_url("rediss:// (TLS) is not supported: the Redis client library (hiredis 0.14) has no TLS; reach a "
                "remote Redis through a local TLS tunnel (stunnel, spiped) and name the tunnel's local end here "
                "with redis://");
    }
    bad_url("the scheme is neither redis:// nor unix://");
}

}  // namespace portcullis
