/*
 * config.cc: load_config(), Origins::of(), config_keys() and
 * log_level_name().
 *
 * Every key is one row of keys(): its name and a setter that turns a
 * value, from the TOML file or from an -o KEY=VALUE override, into its
 * field of Config, or throws BadValue saying what is wrong with it.  The
 * setters are made by one factory per kind of value (text, path, duration,
 * flag, choice, resolver list), so the rules for a kind live in one place.
 * A Loader walks the file, then the overrides, records in the Config's
 * Origins where each key was set, and collects every error; the checks
 * that involve two keys run last, once every key has its final value.
 */
#include "config/config.h"

#include <sys/un.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>

#include "util/files.h"
#include "util/ip.h"
#include "util/redis_url.h"
#include "util/text.h"

namespace portcullis::config {

namespace {

/* What is wrong with a value.  The thrower knows the rule that failed;
 * the catcher adds the key name and where the value came from. */
struct BadValue {
    std::string message;
};

/* One value for a key: a node of the TOML file, or the VALUE of an
 * override, which has no type of its own and takes the key's. */
struct Input {
    const toml::node* node = nullptr;   // from the file; null for an override
    std::string_view text;              // the override's VALUE
    std::filesystem::path base;         // directory of relative paths; empty: the working directory
};

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& word : words) out += (out.empty() ? "" : ", ") + word;
    return out;
}

/* " (did you mean 'x'?)" when WORD looks like a typo of a candidate. */
std::string suggestion(std::string_view word, const std::vector<std::string>& candidates) {
    const auto guess = closest_match(word, candidates);
    return guess.empty() ? std::string() : " (did you mean " + in_quotes(guess) + "?)";
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a floating-point number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

[[noreturn]] void wrong_type(const toml::node& node, std::string_view expected) {
    throw BadValue{"expected " + std::string(expected) + ", found " + std::string(type_name(node))};
}

/* The text of a string value; EXPECTED names the key's type for the error. */
std::string text_of(const Input& input, std::string_view expected) {
    if (!input.node) return std::string(input.text);
    if (const auto* text = input.node->as_string()) return text->get();
    wrong_type(*input.node, expected);
}

/* The index of TEXT among NAMES, ignoring ASCII case. */
size_t pick(std::string_view text, const std::vector<std::string>& names) {
    for (size_t i = 0; i < names.size(); ++i) {
        if (equals_nocase(text, names[i])) return i;
    }
    throw BadValue{in_quotes(text) + " is not one of " + join(names) + suggestion(text, names)};
}

bool is_port(std::string_view text) {
    if (!is_digits(text) || text.size() > 5) return false;
    const auto port = std::stoul(std::string(text));
    return port >= 1 && port <= 65535;
}

bool is_control_or_space(char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; }

/* A word: no white space or control characters, which no user name,
 * key prefix or host name contains and which would garble our logs. */
bool is_word(std::string_view text) {
    return std::none_of(text.begin(), text.end(), is_control_or_space);
}

bool is_host(std::string_view text) { return !text.empty() && is_word(text); }

/* HOST[:PORT] or [IPV6][:PORT]; the port is nullopt when not given. */
struct HostPort {
    std::string_view host;
    std::optional<std::string_view> port;
};

std::optional<HostPort> split_host_port(std::string_view text) {
    HostPort out;
    std::string_view rest;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        out.host = text.substr(1, close - 1);
        if (!parse_ip(out.host)) return std::nullopt;
        rest = text.substr(close + 1);
    } else {
        const auto colon = text.find(':');
        out.host = text.substr(0, colon);
        if (!is_host(out.host)) return std::nullopt;
        rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    }
    if (rest.empty()) return out;
    if (rest.front() != ':' || !is_port(rest.substr(1))) return std::nullopt;
    out.port = rest.substr(1);
    return out;
}

/* Checks of one string value: each returns the value to store (some
 * normalise it) or throws BadValue. */
using Check = std::string (*)(std::string);

std::string check_word(std::string text) {
    if (!is_word(text)) throw BadValue{in_quotes(text) + " contains white space or control characters"};
    return text;
}

/* A unix socket's path must fit the address the kernel takes
 * (sockaddr_un's sun_path, with its NUL); a longer one could not be
 * bound at start. */
std::string check_socket_path(std::string path) {
    constexpr size_t kMostBytes = sizeof(sockaddr_un{}.sun_path) - 1;
    if (path.size() > kMostBytes) {
        throw BadValue{"the path is longer than the " + std::to_string(kMostBytes) + " bytes a unix socket's may be"};
    }
    return path;
}

/* libmilter's socket syntax; the path of a unix socket must be absolute
 * because the daemon binds it after it may have changed directory. */
std::string check_milter_socket(std::string text) {
    const std::string_view socket = text;
    const auto colon = socket.find(':');
    const auto scheme = socket.substr(0, colon);
    const auto rest = colon == std::string_view::npos ? std::string_view() : socket.substr(colon + 1);
    if (scheme == "inet" || scheme == "inet6") {
        const auto at = rest.find('@');
        if (at != std::string_view::npos && is_port(rest.substr(0, at)) && is_host(rest.substr(at + 1))) return text;
    } else if (scheme == "unix" || scheme == "local") {
        if (rest.size() > 1 && rest.front() == '/') {
            check_socket_path(std::string(rest));
            return text;
        }
    }
    throw BadValue{in_quotes(text) + " is not inet:PORT@HOST, inet6:PORT@HOST, unix:/path or local:/path"};
}

/* A list is the sentinels or the cluster seeds; whether store.mode allows
 * a list, and what each entry may hold in that mode, is checked once
 * every key is set.  Here only the form: the store connects and reports
 * what it finds. */
std::string check_store_url(std::string text) {
    try {
        parse_redis_url_list(text);
    } catch (const RedisUrlError& bad) {
        throw BadValue{bad.what()};
    }
    return text;
}

/* A password: anything but control characters, and never repeated in a
 * message. */
std::string check_password(std::string text) {
    if (std::any_of(text.begin(), text.end(), [](char c) { return is_control_or_space(c) && c != ' '; })) {
        throw BadValue{"the password holds a control character"};
    }
    return text;
}

/* RFC 8601 lets an authserv-id be a token or a quoted-string; we take only
 * the token of RFC 2045, so the header never needs quoting. */
std::string check_authserv_id(std::string text) {
    if (!text.empty() && !is_mime_token(text)) {
        throw BadValue{in_quotes(text) + " is not a token: no spaces, control characters or any of " +
                       std::string(kMimeSpecials)};
    }
    return text;
}

std::string check_facility(std::string text) {
    static const std::vector<std::string> facilities = {"mail",   "daemon", "user",   "local0", "local1", "local2",
                                                        "local3", "local4", "local5", "local6", "local7"};
    return facilities[pick(text, facilities)];
}

std::string check_listen(std::string text) {
    if (text.empty()) return text;
    const auto address = split_host_port(text);
    if (!address || !address->port) throw BadValue{in_quotes(text) + " is not HOST:PORT or [IPV6]:PORT"};
    return text;
}

/* "IP" or "IP@PORT"; '@' cannot occur in an IPv6 address, so it splits
 * without brackets. */
bool is_forwarder(std::string_view text) {
    const auto at = text.find('@');
    return parse_ip(text.substr(0, at)) && (at == std::string_view::npos || is_port(text.substr(at + 1)));
}

template <typename E>
struct Named {
    std::string_view name;
    E value;
};

constexpr Named<MilterEngine> milter_engines[] = {{"native", MilterEngine::native},
                                                 {"libmilter", MilterEngine::libmilter}};
constexpr Named<PolicyMode> policy_modes[] = {{"enforce", PolicyMode::enforce}, {"monitor", PolicyMode::monitor}};
constexpr Named<StoreBackend> store_backends[] = {{"memory", StoreBackend::memory}, {"redis", StoreBackend::redis}};
constexpr Named<StoreMode> store_modes[] = {
    {"standalone", StoreMode::standalone}, {"sentinel", StoreMode::sentinel}, {"cluster", StoreMode::cluster}};
constexpr Named<OnError> on_errors[] = {{"tempfail", OnError::tempfail}, {"accept", OnError::accept}};
constexpr Named<LogTarget> log_targets[] = {{"syslog", LogTarget::syslog}, {"stderr", LogTarget::stderr_stream}};
constexpr Named<LogLevel> log_levels[] = {
    {"error", LogLevel::error}, {"warning", LogLevel::warning}, {"info", LogLevel::info}, {"debug", LogLevel::debug}};

/* A key: its "section.key" name and how to store a value in a Config. */
struct Key {
    std::string name;
    std::function<void(Config&, const Input&)> set;
};

/* The factories below take the field as two member pointers, the section
 * of Config and the member of that section. */

template <typename S>
Key text(std::string name, S Config::*section, std::string S::*field, Check check) {
    return {std::move(name), [=](Config& config, const Input& input) {
                (config.*section).*field = check(text_of(input, "a string"));
            }};
}

enum class Empty { allowed, refused };

/* Relative paths in the file start at the file's directory, so that a
 * configuration and its rules can move together.  CHECK, if any, takes
 * the path so completed. */
template <typename S>
Key path(std::string name, S Config::*section, std::string S::*field, Empty empty, Check check = nullptr) {
    return {std::move(name), [=](Config& config, const Input& input) {
                const std::filesystem::path value = text_of(input, "a path");
                if (value.empty() && empty == Empty::refused) throw BadValue{"the path must not be empty"};
                const bool anchored = value.empty() || value.is_absolute() || input.base.empty();
                std::string full = anchored ? value.string() : (input.base / value).lexically_normal().string();
                (config.*section).*field = check ? check(std::move(full)) : std::move(full);
            }};
}

/* A key of a value units.h reads: a TOML integer, written in decimal (a
 * bare number in the default unit), or a string.  NOUN and FORM say what
 * it must look like, as in EXAMPLE; PARSE reads it; REFUSE says why a
 * value it read is out of range, or "". */
template <typename S, typename T, typename Parse, typename Refuse>
Key units_key(std::string name, S Config::*section, T S::*field, std::string noun, std::string form,
              std::string example, Parse parse, Refuse refuse) {
    return {std::move(name), [=](Config& config, const Input& input) {
                const auto* integer = input.node ? input.node->as_integer() : nullptr;
                const std::string text =
                    integer ? std::to_string(integer->get()) : text_of(input, "a " + noun + " such as " + example);
                const auto value = parse(text);
                if (!value) throw BadValue{in_quotes(text) + " is not a " + noun + ": " + form + ", as in " + example};
                if (const std::string why = refuse(*value); !why.empty()) throw BadValue{why};
                (config.*section).*field = *value;
            }};
}

/* Every duration here is a timeout, and a zero timeout would fail every
 * operation, so zero is refused; so is one over kMaxTimeout, which no MTA
 * or server waits for and which, added to a clock's nanoseconds, would
 * overflow into a deadline in the past.  A TOML integer is seconds, as a
 * bare number is to parse_duration(). */
template <typename S>
Key duration(std::string name, S Config::*section, Millis S::*field) {
    return units_key(std::move(name), section, field, "duration", "a number and one of ms, s, m, h, d, w", "\"200ms\"",
                     parse_duration, [](Millis value) {
                         if (value <= Millis::zero()) return std::string("the timeout must be more than zero");
                         if (value > kMaxTimeout) return "the timeout must be at most " + format_duration(kMaxTimeout);
                         return std::string();
                     });
}

/* A whole number from 0 to MAX, written as a TOML integer or, in -o, as
 * digits. */
template <typename S, typename N>
Key count(std::string name, S Config::*section, N S::*field, uint64_t max) {
    return {std::move(name), [=](Config& config, const Input& input) {
                const auto* integer = input.node ? input.node->as_integer() : nullptr;
                if (input.node && !integer) wrong_type(*input.node, "a whole number");
                const std::optional<int64_t> value =
                    integer ? std::optional(integer->get()) : parse_decimal<int64_t>(input.text);
                if (!value || *value < 0 || static_cast<uint64_t>(*value) > max) {
                    throw BadValue{"expected a whole number from 0 to " + std::to_string(max)};
                }
                (config.*section).*field = static_cast<N>(*value);
            }};
}

/* A size in bytes, from MIN up: a TOML integer (bytes) or parse_size()'s
 * text ("256M"). */
template <typename S>
Key size(std::string name, S Config::*section, uint64_t S::*field, uint64_t min) {
    return units_key(std::move(name), section, field, "size", "a number and an optional k, M or G", "\"256M\"",
                     parse_size, [min](uint64_t value) {
                         return value < min ? "the size must be at least " + std::to_string(min) + " bytes" : "";
                     });
}

template <typename S>
Key flag(std::string name, S Config::*section, bool S::*field) {
    return {std::move(name), [=](Config& config, const Input& input) {
                if (input.node) {
                    const auto* boolean = input.node->as_boolean();
                    if (!boolean) wrong_type(*input.node, "true or false");
                    (config.*section).*field = boolean->get();
                    return;
                }
                // The words alternate between true and false.
                static const std::vector<std::string> words = {"true", "false", "yes", "no", "1", "0"};
                (config.*section).*field = pick(input.text, words) % 2 == 0;
            }};
}

template <typename S, typename E, size_t N>
Key choice(std::string name, S Config::*section, E S::*field, const Named<E> (&choices)[N]) {
    std::vector<std::string> names;
    for (const auto& named : choices) names.emplace_back(named.name);
    return {std::move(name), [=](Config& config, const Input& input) {
                (config.*section).*field = choices[pick(text_of(input, "one of " + join(names)), names)].value;
            }};
}

/* The entries of a list key (dns.resolver, store.url): one
 * comma-separated string or an array of strings; EXPECTED names the
 * key's type for the error. */
std::vector<std::string> list_entries(const Input& input, std::string_view expected) {
    const auto* array = input.node ? input.node->as_array() : nullptr;
    if (!array) return split_list(text_of(input, expected));
    std::vector<std::string> entries;
    for (const auto& element : *array) {
        const auto* entry = element.as_string();
        if (!entry) wrong_type(element, expected);
        entries.emplace_back(trim(entry->get()));
    }
    return entries;
}

/* "system" alone, or forwarders "IP[@PORT]". */
std::vector<std::string> check_resolver(std::vector<std::string> entries) {
    if (entries.empty()) throw BadValue{"needs \"system\" or at least one forwarder"};
    if (entries.size() == 1 && equals_nocase(entries.front(), "system")) return {"system"};
    for (const auto& entry : entries) {
        if (equals_nocase(entry, "system")) throw BadValue{"\"system\" cannot be mixed with forwarders"};
        if (!is_forwarder(entry)) throw BadValue{in_quotes(entry) + " is not an IP address with an optional @PORT"};
    }
    return entries;
}

template <typename S>
Key resolver(std::string name, S Config::*section, std::vector<std::string> S::*field) {
    return {std::move(name), [=](Config& config, const Input& input) {
                static constexpr std::string_view expected =
                    "\"system\", or forwarders \"IP[@PORT]\" in a string or an array";
                (config.*section).*field = check_resolver(list_entries(input, expected));
            }};
}

/* store.url: URLs in a comma-separated string, kept as given, or in an
 * array, kept joined by ", " (the string form); a comma inside an entry
 * would split it, so an array entry may not hold one. */
template <typename S>
Key url_list(std::string name, S Config::*section, std::string S::*field) {
    return {std::move(name), [=](Config& config, const Input& input) {
                static constexpr std::string_view expected = "a URL, or URLs in a string or an array";
                if (!input.node || !input.node->is_array()) {
                    (config.*section).*field = check_store_url(text_of(input, expected));
                    return;
                }
                const auto entries = list_entries(input, expected);
                std::string joined;
                for (size_t i = 0; i < entries.size(); ++i) {
                    if (entries[i].find(',') != std::string::npos) {
                        throw BadValue{"URL " + std::to_string(i + 1) + ": a ',' in a URL must be written %2C"};
                    }
                    joined += (i == 0 ? "" : ", ") + entries[i];
                }
                (config.*section).*field = check_store_url(std::move(joined));
            }};
}

const std::vector<Key>& keys() {
    using C = Config;
    static const std::vector<Key> table = {
        text("milter.socket", &C::milter, &C::Milter::socket, check_milter_socket),
        duration("milter.timeout", &C::milter, &C::Milter::timeout),
        duration("milter.idle_timeout", &C::milter, &C::Milter::idle_timeout),
        text("milter.user", &C::milter, &C::Milter::user, check_word),
        choice("milter.engine", &C::milter, &C::Milter::engine, milter_engines),
        count("milter.threads", &C::milter, &C::Milter::threads, 256),
        count("milter.max_connections", &C::milter, &C::Milter::max_connections, 1'000'000),
        path("policy.file", &C::policy, &C::Policy::file, Empty::refused),
        choice("policy.mode", &C::policy, &C::Policy::mode, policy_modes),
        choice("store.backend", &C::store, &C::Store::backend, store_backends),
        url_list("store.url", &C::store, &C::Store::url),
        choice("store.mode", &C::store, &C::Store::mode, store_modes),
        text("store.master", &C::store, &C::Store::master, check_word),
        text("store.user", &C::store, &C::Store::user, check_word),
        text("store.password", &C::store, &C::Store::password, check_password),
        text("store.prefix", &C::store, &C::Store::prefix, check_word),
        duration("store.timeout", &C::store, &C::Store::timeout),
        choice("store.on_error", &C::store, &C::Store::on_error, on_errors),
        path("store.snapshot", &C::store, &C::Store::snapshot, Empty::allowed),
        size("store.memory_limit", &C::store, &C::Store::memory_limit, 1024 * 1024),
        resolver("dns.resolver", &C::dns, &C::Dns::resolver),
        duration("dns.timeout", &C::dns, &C::Dns::timeout),
        text("auth.authserv_id", &C::auth, &C::Auth::authserv_id, check_authserv_id),
        flag("auth.add_header", &C::auth, &C::Auth::add_header),
        path("auth.public_suffix_list", &C::auth, &C::Auth::public_suffix_list, Empty::refused),
        choice("log.target", &C::log, &C::Log::target, log_targets),
        choice("log.level", &C::log, &C::Log::level, log_levels),
        text("log.facility", &C::log, &C::Log::facility, check_facility),
        text("metrics.listen", &C::metrics, &C::Metrics::listen, check_listen),
        path("control.socket", &C::control, &C::Control::socket, Empty::allowed, check_socket_path),
    };
    return table;
}

const std::vector<std::string>& section_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const auto& key : keys()) {
            auto section = key.name.substr(0, key.name.find('.'));
            if (std::find(out.begin(), out.end(), section) == out.end()) out.push_back(std::move(section));
        }
        return out;
    }();
    return names;
}

bool is_section(const std::string& name) {
    return std::find(section_names().begin(), section_names().end(), name) != section_names().end();
}

/* An entry of the file: a key of a known section, or anything else at the
 * top level, which can only be an error. */
struct Entry {
    std::string name;   // "section.key", or the top-level name
    const toml::key* key;
    const toml::node* value;
    bool top_level;
};

/* toml++ keeps a table's keys in name order; errors read best in the
 * order of the file. */
std::vector<Entry> entries_in_file_order(const toml::table& root) {
    std::vector<Entry> entries;
    for (const auto& [section, node] : root) {
        const std::string name(section.str());
        const auto* table = node.as_table();
        if (!table || !is_section(name)) {
            entries.push_back({name, &section, &node, true});
            continue;
        }
        for (const auto& [key, value] : *table) {
            entries.push_back({name + "." + std::string(key.str()), &key, &value, false});
        }
    }
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        const auto& x = a.key->source().begin;
        const auto& y = b.key->source().begin;
        return x.line != y.line ? x.line < y.line : x.column < y.column;
    });
    return entries;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

/* Reads the file and the overrides into one Config, collecting errors. */
class Loader {
public:
    explicit Loader(const std::string& path) : path_(path), base_(std::filesystem::path(path).parent_path()) {
        config_.origins.file = path;
    }

    void read_file(bool required);
    void apply_override(std::string_view assignment);
    void check_combinations();
    ConfigResult result();
    void apply(const toml::table& root);
    const Key* find(const std::string& name, const std::string& where);
    void assign(const Key& key, const Input& input, const std::string& where);
    std::string where(const toml::source_region& region) const;
    void error(std::string where, std::string message) { errors_.push_back({std::move(where), std::move(message)}); }

    std::string path_;
    std::filesystem::path base_;
    Config config_;
    std::vector<ConfigError> errors_;
    std::set<std::string> refused_;   // keys given a bad value
};

void Loader::read_file(bool required) {
    // A config file is a few kilobytes; the cap only stops /dev/zero.
    constexpr size_t kMaxConfigBytes = 4 * 1024 * 1024;
    FileText file = read_text_file(path_, kMaxConfigBytes);
    if (!file.ok) {
        if (file.error_number == ENOENT && !required) return;
        error(path_, file.error);
        return;
    }
    const std::string& text = file.text;
    try {
        apply(toml::parse(text, path_));
    } catch (const toml::parse_error& bad) {
        error(where(bad.source()), std::string(bad.description()));
    }
}

void Loader::apply(const toml::table& root) {
    for (const auto& entry : entries_in_file_order(root)) {
        const auto at_name = where(entry.key->source());
        const auto at_value = where(entry.value->source());
        if (!entry.top_level) {
            if (const Key* key = find(entry.name, at_name)) assign(*key, Input{entry.value, {}, base_}, at_value);
        } else if (is_section(entry.name)) {
            error(at_value, entry.name + ": expected a table [" + entry.name + "], found " +
                                std::string(type_name(*entry.value)));
        } else if (entry.value->is_table()) {
            error(at_name, "unknown section " + in_quotes(entry.name) + suggestion(entry.name, section_names()));
        } else {
            find(entry.name, at_name);   // a key outside any section: reported as unknown
        }
    }
}

void Loader::apply_override(std::string_view assignment) {
    const std::string where = "-o " + std::string(assignment);
    const auto equals = assignment.find('=');
    if (equals == std::string_view::npos) {
        error(where, "expected KEY=VALUE");
        return;
    }
    if (const Key* key = find(std::string(assignment.substr(0, equals)), where)) {
        assign(*key, Input{nullptr, assignment.substr(equals + 1), {}}, where);
    }
}

const Key* Loader::find(const std::string& name, const std::string& where) {
    for (const auto& key : keys()) {
        if (key.name == name) return &key;
    }
    error(where, "unknown key " + in_quotes(name) + suggestion(name, config_keys()));
    return nullptr;
}

void Loader::assign(const Key& key, const Input& input, const std::string& where) {
    try {
        key.set(config_, input);
        config_.origins.given[key.name] = where;
        refused_.erase(key.name);
    } catch (const BadValue& bad) {
        error(where, key.name + ": " + bad.message);
        refused_.insert(key.name);
    }
}

std::string Loader::where(const toml::source_region& region) const {
    return path_ + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

/* A key whose value was refused keeps its default, which would make the
 * checks below complain about a value nobody gave; they are skipped then. */
void Loader::check_combinations() {
    for (const char* key : {"store.mode", "store.url", "store.master", "store.user", "store.password"}) {
        if (refused_.contains(key)) return;
    }
    // The store reads its servers with the same parser, so the two agree.
    const auto& store = config_.store;
    try {
        parse_redis_servers(store.mode, store.url, store.master, store.user, store.password);
    } catch (const RedisServersError& bad) {
        error(config_.origins.of(bad.key()), bad.what());
    }
}

ConfigResult Loader::result() {
    if (!errors_.empty()) return {std::nullopt, std::move(errors_)};
    return {std::move(config_), {}};
}

}  // namespace

const std::string& Origins::of(std::string_view key) const {
    const auto found = given.find(key);
    return found == given.end() ? file : found->second;
}

ConfigResult load_config(const std::string& path, bool required, const std::vector<std::string>& overrides) {
    Loader loader(path);
    loader.read_file(required);
    for (const auto& assignment : overrides) loader.apply_override(assignment);
    loader.check_combinations();
    return loader.result();
}

const std::vector<std::string>& config_keys() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> out;
        for (const auto& key : keys()) out.push_back(key.name);
        return out;
    }();
    return names;
}

std::string_view log_level_name(LogLevel level) {
    for (const auto& named : log_levels) {
        if (named.value == level) return named.name;
    }
    return "unknown";
}

}  // namespace portcullis::config
