/*
 * config_test.cc: load_config() on files and -o overrides, every key's
 * type and checks, the error messages, and the shipped portcullis.conf.
 *
 * Each test writes its files into a fresh temporary directory that is
 * removed when the test ends.
 */
#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/temp_dir.h"
#include "util/text.h"

namespace portcullis::config {
namespace {

namespace fs = std::filesystem;

using test_support::TempDir;

std::vector<std::string> messages(const ConfigResult& result) {
    std::vector<std::string> out;
    for (const auto& error : result.errors) out.push_back(error.str());
    return out;
}

/* Loading a file with FILE_TEXT, then the overrides; must succeed. */
Config load_ok(const std::string& file_text, const std::vector<std::string>& overrides = {}) {
    const TempDir dir;
    const auto result = load_config(dir.write("portcullis.conf", file_text), true, overrides);
    EXPECT_EQ(messages(result), std::vector<std::string>{});
    return result.config.value_or(Config{});
}

/* The errors of a file holding FILE_TEXT, each as "portcullis.conf:L:C: ..." */
std::vector<std::string> file_errors(const std::string& file_text) {
    const TempDir dir;
    const auto result = load_config(dir.write("portcullis.conf", file_text), true, {});
    EXPECT_EQ(result.config.has_value(), result.errors.empty());
    auto out = messages(result);
    for (auto& message : out) message = message.substr(message.rfind('/') + 1);
    return out;
}

/* The errors of overrides on no file at all. */
template <typename... More>
std::vector<std::string> override_errors(const std::string& assignment, const More&... more) {
    const TempDir dir;
    const auto result = load_config(dir.path("absent.conf"), false, {assignment, std::string(more)...});
    EXPECT_EQ(result.config.has_value(), result.errors.empty());
    return messages(result);
}

Config override_ok(const std::string& assignment) {
    const TempDir dir;
    const auto result = load_config(dir.path("absent.conf"), false, {assignment});
    EXPECT_EQ(messages(result), std::vector<std::string>{}) << assignment;
    return result.config.value_or(Config{});
}

void expect_same(const Config& a, const Config& b) {
    EXPECT_EQ(a.milter.socket, b.milter.socket);
    EXPECT_EQ(a.milter.timeout, b.milter.timeout);
    EXPECT_EQ(a.milter.user, b.milter.user);
    EXPECT_EQ(a.policy.file, b.policy.file);
    EXPECT_EQ(a.policy.mode, b.policy.mode);
    EXPECT_EQ(a.store.backend, b.store.backend);
    EXPECT_EQ(a.store.url, b.store.url);
    EXPECT_EQ(a.store.mode, b.store.mode);
    EXPECT_EQ(a.store.master, b.store.master);
    EXPECT_EQ(a.store.user, b.store.user);
    EXPECT_EQ(a.store.password, b.store.password);
    EXPECT_EQ(a.store.prefix, b.store.prefix);
    EXPECT_EQ(a.store.timeout, b.store.timeout);
    EXPECT_EQ(a.store.on_error, b.store.on_error);
    EXPECT_EQ(a.store.snapshot, b.store.snapshot);
    EXPECT_EQ(a.store.memory_limit, b.store.memory_limit);
    EXPECT_EQ(a.dns.resolver, b.dns.resolver);
    EXPECT_EQ(a.dns.timeout, b.dns.timeout);
    EXPECT_EQ(a.auth.authserv_id, b.auth.authserv_id);
    EXPECT_EQ(a.auth.add_header, b.auth.add_header);
    EXPECT_EQ(a.log.target, b.log.target);
    EXPECT_EQ(a.log.level, b.log.level);
    EXPECT_EQ(a.log.facility, b.log.facility);
    EXPECT_EQ(a.metrics.listen, b.metrics.listen);
}

using Strings = std::vector<std::string>;

TEST(Defaults, EmptyFileGivesEveryDefault) {
    const auto config = load_ok("");
    expect_same(config, Config{});
    EXPECT_EQ(config.store.backend, StoreBackend::memory);
    EXPECT_EQ(config.dns.resolver, Strings{"system"});
}

TEST(Defaults, MissingFileNotRequiredIsAnEmptyFile) {
    const TempDir dir;
    const auto result = load_config(dir.path("absent.conf"), false, {});
    ASSERT_TRUE(result.config);
    expect_same(*result.config, Config{});
}

TEST(Defaults, MissingRequiredFileIsOneErrorNamingIt) {
    const TempDir dir;
    const auto path = dir.path("absent.conf");
    const auto result = load_config(path, true, {});
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].where, path);
    EXPECT_NE(result.errors[0].message.find(std::strerror(ENOENT)), std::string::npos);
}

TEST(Defaults, UnreadableFileIsAnErrorEvenWhenNotRequired) {
    const TempDir dir;
    dir.write("sub/portcullis.conf", "");
    const auto result = load_config(dir.path("sub"), false, {});   // a directory cannot be read as a file
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].where, dir.path("sub"));
    EXPECT_EQ(result.errors[0].message, in_quotes(dir.path("sub")) + " is not a regular file");
}

TEST(Defaults, DeviceFilesAreRefusedNotRead) {
    // /dev/zero would fill memory; a FIFO would block a reload for ever.
    const auto result = load_config("/dev/zero", true, {});
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.errors.size(), 1u);
    EXPECT_EQ(result.errors[0].message, "'/dev/zero' is not a regular file");
}

TEST(Keys, ConfigKeysNamesEveryKey) {
    const Strings expected = {
        "milter.socket",  "milter.timeout",   "milter.idle_timeout", "milter.user",
        "milter.engine",  "milter.threads",   "milter.max_connections", "policy.file",
        "policy.mode",    "store.backend",    "store.url",           "store.mode",
        "store.master",   "store.user",       "store.password",      "store.prefix",
        "store.timeout",  "store.on_error",   "store.snapshot",      "store.memory_limit",  "dns.resolver",
        "dns.timeout",    "auth.authserv_id", "auth.add_header",     "auth.public_suffix_list",
        "log.target",     "log.level",        "log.facility",        "metrics.listen",
        "control.socket"};
    EXPECT_EQ(config_keys(), expected);
}

TEST(Keys, EveryKeySetInTheFileIsReadBack) {
    const auto config = load_ok(R"(
[milter]
socket = "unix:/run/portcullis/milter.sock"
timeout = "1m"
user = "milter"
[policy]
file = "/srv/rules"
mode = "monitor"
[store]
backend = "redis"
url = "redis://:secret@10.0.0.1:6380,redis://10.0.0.2"
mode = "sentinel"
master = "mymaster"
user = "portcullis"
password = "s3cret pass"
prefix = "mx1:"
timeout = "1s"
on_error = "accept"
snapshot = "/var/lib/portcullis/state"
memory_limit = "64M"
[dns]
resolver = ["127.0.0.1@5353", "::1"]
timeout = 2
[auth]
authserv_id = "mx.example.com"
add_header = false
[log]
target = "stderr"
level = "debug"
facility = "local3"
[metrics]
listen = "[::1]:9155"
)");
    EXPECT_EQ(config.milter.socket, "unix:/run/portcullis/milter.sock");
    EXPECT_EQ(config.milter.timeout, std::chrono::minutes(1));
    EXPECT_EQ(config.milter.user, "milter");
    EXPECT_EQ(config.policy.file, "/srv/rules");
    EXPECT_EQ(config.policy.mode, PolicyMode::monitor);
    EXPECT_EQ(config.store.backend, StoreBackend::redis);
    EXPECT_EQ(config.store.url, "redis://:secret@10.0.0.1:6380,redis://10.0.0.2");
    EXPECT_EQ(config.store.mode, StoreMode::sentinel);
    EXPECT_EQ(config.store.master, "mymaster");
    EXPECT_EQ(config.store.user, "portcullis");
    EXPECT_EQ(config.store.password, "s3cret pass");
    EXPECT_EQ(config.store.prefix, "mx1:");
    EXPECT_EQ(config.store.timeout, std::chrono::seconds(1));
    EXPECT_EQ(config.store.on_error, OnError::accept);
    EXPECT_EQ(config.store.snapshot, "/var/lib/portcullis/state");
    EXPECT_EQ(config.store.memory_limit, 64u * 1024 * 1024);
    EXPECT_EQ(config.dns.resolver, (Strings{"127.0.0.1@5353", "::1"}));
    EXPECT_EQ(config.dns.timeout, std::chrono::seconds(2));
    EXPECT_EQ(config.auth.authserv_id, "mx.example.com");
    EXPECT_FALSE(config.auth.add_header);
    EXPECT_EQ(config.log.target, LogTarget::stderr_stream);
    EXPECT_EQ(config.log.level, LogLevel::debug);
    EXPECT_EQ(config.log.facility, "local3");
    EXPECT_EQ(config.metrics.listen, "[::1]:9155");
}

TEST(Keys, DottedKeysAtTheTopLevelAreTheSameAsSections) {
    EXPECT_EQ(load_ok("store.timeout = \"50ms\"\n").store.timeout, Millis(50));
}

/* Each NAME of KEY, given by -o, sets the field to its VALUE.  The master
 * name is there for store.mode = "sentinel", which needs it. */
template <typename S, typename E>
void expect_choices(const std::string& key, S Config::*section, E S::*field,
                    std::initializer_list<std::pair<const char*, E>> choices) {
    for (const auto& [name, value] : choices) {
        const TempDir dir;
        const auto result = load_config(dir.path("absent.conf"), false, {"store.master=m", key + "=" + name});
        ASSERT_TRUE(result.config) << key << "=" << name;
        EXPECT_EQ((*result.config).*section.*field, value) << key << "=" << name;
    }
}

TEST(Enums, EveryNameOfEveryEnumeration) {
    using C = Config;
    expect_choices("policy.mode", &C::policy, &C::Policy::mode,
                   {{"enforce", PolicyMode::enforce}, {"monitor", PolicyMode::monitor}});
    expect_choices("store.backend", &C::store, &C::Store::backend,
                   {{"memory", StoreBackend::memory}, {"redis", StoreBackend::redis}});
    expect_choices("store.mode", &C::store, &C::Store::mode,
                   {{"standalone", StoreMode::standalone},
                    {"sentinel", StoreMode::sentinel},
                    {"cluster", StoreMode::cluster}});
    expect_choices("store.on_error", &C::store, &C::Store::on_error,
                   {{"tempfail", OnError::tempfail}, {"accept", OnError::accept}});
    expect_choices("log.target", &C::log, &C::Log::target,
                   {{"syslog", LogTarget::syslog}, {"stderr", LogTarget::stderr_stream}});
    expect_choices("log.level", &C::log, &C::Log::level,
                   {{"error", LogLevel::error}, {"warning", LogLevel::warning}, {"info", LogLevel::info},
                    {"debug", LogLevel::debug}});
}

TEST(Enums, NamesIgnoreCase) {
    EXPECT_EQ(load_ok("[policy]\nmode = \"Monitor\"\n").policy.mode, PolicyMode::monitor);
    EXPECT_EQ(override_ok("log.level=DEBUG").log.level, LogLevel::debug);
}

TEST(Enums, UnknownNameListsTheChoicesAndSuggests) {
    EXPECT_EQ(file_errors("[policy]\nmode = \"enforse\"\n"),
              Strings{"portcullis.conf:2:8: error: policy.mode: 'enforse' is not one of enforce, monitor "
                      "(did you mean 'enforce'?)"});
    EXPECT_EQ(override_errors("log.level=verbose"),
              Strings{"-o log.level=verbose: error: log.level: 'verbose' is not one of error, warning, info, debug"});
}

TEST(Enums, WrongTypeNamesTheChoices) {
    EXPECT_EQ(file_errors("[store]\non_error = true\n"),
              Strings{"portcullis.conf:2:12: error: store.on_error: expected one of tempfail, accept, "
                      "found a boolean"});
}

TEST(Enums, LogLevelNames) {
    EXPECT_EQ(log_level_name(LogLevel::error), "error");
    EXPECT_EQ(log_level_name(LogLevel::warning), "warning");
    EXPECT_EQ(log_level_name(LogLevel::info), "info");
    EXPECT_EQ(log_level_name(LogLevel::debug), "debug");
}

TEST(Durations, IntegerIsSecondsAndStringsTakeUnits) {
    EXPECT_EQ(load_ok("[milter]\ntimeout = 45\n").milter.timeout, std::chrono::seconds(45));
    EXPECT_EQ(load_ok("[milter]\ntimeout = \"45\"\n").milter.timeout, std::chrono::seconds(45));
    EXPECT_EQ(load_ok("[store]\ntimeout = \"250ms\"\n").store.timeout, Millis(250));
    EXPECT_EQ(load_ok("[dns]\ntimeout = \"2m\"\n").dns.timeout, std::chrono::minutes(2));
    EXPECT_EQ(load_ok("[milter]\ntimeout = \"1h\"\n").milter.timeout, std::chrono::hours(1));
    EXPECT_EQ(load_ok("[milter]\ntimeout = \"1d\"\n").milter.timeout, std::chrono::hours(24));
}

TEST(Durations, BadUnitsAndTypesAreRefused) {
    EXPECT_EQ(file_errors("[store]\ntimeout = \"5y\"\n"),
              Strings{"portcullis.conf:2:11: error: store.timeout: '5y' is not a duration: a number and one of "
                      "ms, s, m, h, d, w, as in \"200ms\""});
    EXPECT_EQ(file_errors("[store]\ntimeout = 0.5\n"),
              Strings{"portcullis.conf:2:11: error: store.timeout: expected a duration such as \"200ms\", "
                      "found a floating-point number"});
    EXPECT_EQ(file_errors("[store]\ntimeout = false\n").size(), 1u);
    EXPECT_EQ(file_errors("[store]\ntimeout = -3\n"),
              Strings{"portcullis.conf:2:11: error: store.timeout: '-3' is not a duration: a number and one of "
                      "ms, s, m, h, d, w, as in \"200ms\""});
    EXPECT_EQ(file_errors("[dns]\ntimeout = \"0s\"\n"),
              Strings{"portcullis.conf:2:11: error: dns.timeout: the timeout must be more than zero"});
    EXPECT_EQ(file_errors("[dns]\ntimeout = \"99999999999999999w\"\n").size(), 1u);
}

TEST(Durations, TimeoutsOverADayAreRefused) {
    // A clock's deadline is now + timeout in nanoseconds: 1000000w would
    // overflow it into the past, and every connection would time out.
    EXPECT_EQ(load_ok("[milter]\nidle_timeout = \"1d\"\n").milter.idle_timeout, std::chrono::hours(24));
    EXPECT_EQ(file_errors("[milter]\nidle_timeout = \"1000000w\"\n"),
              Strings{"portcullis.conf:2:16: error: milter.idle_timeout: the timeout must be at most 1d"});
    EXPECT_EQ(file_errors("[store]\ntimeout = 86401\n"),
              Strings{"portcullis.conf:2:11: error: store.timeout: the timeout must be at most 1d"});
    EXPECT_EQ(override_errors("milter.timeout=25h"),
              Strings{"-o milter.timeout=25h: error: milter.timeout: the timeout must be at most 1d"});
}

TEST(Sizes, IntegerIsBytesAndStringsTakeSuffixes) {
    EXPECT_EQ(Config{}.store.memory_limit, 256u * 1024 * 1024);
    EXPECT_EQ(load_ok("[store]\nmemory_limit = 2097152\n").store.memory_limit, 2u * 1024 * 1024);
    EXPECT_EQ(load_ok("[store]\nmemory_limit = \"512M\"\n").store.memory_limit, 512u * 1024 * 1024);
    EXPECT_EQ(load_ok("[store]\nmemory_limit = \"2g\"\n").store.memory_limit, 2ull * 1024 * 1024 * 1024);
    EXPECT_EQ(load_ok("[store]\nmemory_limit = \"1024k\"\n").store.memory_limit, 1024u * 1024);
    EXPECT_EQ(override_ok("store.memory_limit=100M").store.memory_limit, 100u * 1024 * 1024);
}

TEST(Sizes, BadSizesAndTypesAreRefused) {
    EXPECT_EQ(file_errors("[store]\nmemory_limit = \"lots\"\n"),
              Strings{"portcullis.conf:2:16: error: store.memory_limit: 'lots' is not a size: a number and an "
                      "optional k, M or G, as in \"256M\""});
    EXPECT_EQ(file_errors("[store]\nmemory_limit = \"256MB\"\n"),
              Strings{"portcullis.conf:2:16: error: store.memory_limit: '256MB' is not a size: a number and an "
                      "optional k, M or G, as in \"256M\""});
    EXPECT_EQ(file_errors("[store]\nmemory_limit = -3\n"),
              Strings{"portcullis.conf:2:16: error: store.memory_limit: '-3' is not a size: a number and an "
                      "optional k, M or G, as in \"256M\""});
    EXPECT_EQ(file_errors("[store]\nmemory_limit = \"512k\"\n"),
              Strings{"portcullis.conf:2:16: error: store.memory_limit: the size must be at least 1048576 bytes"});
    EXPECT_EQ(file_errors("[store]\nmemory_limit = 1.5\n"),
              Strings{"portcullis.conf:2:16: error: store.memory_limit: expected a size such as \"256M\", found a "
                      "floating-point number"});
    EXPECT_EQ(file_errors("[store]\nmemory_limit = \"99999999999G\"\n").size(), 1u);
}

TEST(Errors, UnknownKeySuggestsTheClosest) {
    EXPECT_EQ(file_errors("[store]\nprefix = \"x:\"\ntiemout = \"1s\"\n"),
              Strings{"portcullis.conf:3:1: error: unknown key 'store.tiemout' (did you mean 'store.timeout'?)"});
}

TEST(Errors, UnknownKeyWithNothingCloseHasNoSuggestion) {
    EXPECT_EQ(file_errors("[store]\n  colour = \"blue\"\n"),
              Strings{"portcullis.conf:2:3: error: unknown key 'store.colour'"});
}

TEST(Errors, UnknownSectionSuggestsTheClosest) {
    EXPECT_EQ(file_errors("[stor]\ntimeout = \"1s\"\n"),
              Strings{"portcullis.conf:1:2: error: unknown section 'stor' (did you mean 'store'?)"});
    EXPECT_EQ(file_errors("[frobnicate]\n"), Strings{"portcullis.conf:1:2: error: unknown section 'frobnicate'"});
}

TEST(Errors, KeyOutsideAnySectionIsUnknown) {
    EXPECT_EQ(file_errors("timeout = \"1s\"\n"), Strings{"portcullis.conf:1:1: error: unknown key 'timeout'"});
}

TEST(Errors, NestedTableInASectionIsAnUnknownKey) {
    EXPECT_EQ(file_errors("[store.extra]\nx = 1\n"), Strings{"portcullis.conf:1:8: error: unknown key 'store.extra'"});
}

TEST(Errors, WrongTypeNamesKeyExpectedAndFound) {
    EXPECT_EQ(file_errors("[milter]\nsocket = 8891\n"),
              Strings{"portcullis.conf:2:10: error: milter.socket: expected a string, found an integer"});
    EXPECT_EQ(file_errors("[auth]\nadd_header = \"yes\"\n"),
              Strings{"portcullis.conf:2:14: error: auth.add_header: expected true or false, found a string"});
    EXPECT_EQ(file_errors("store = \"redis\"\n"),
              Strings{"portcullis.conf:1:9: error: store: expected a table [store], found a string"});
}

TEST(Errors, TomlSyntaxErrorHasLineAndColumn) {
    const auto errors = file_errors("[milter]\nsocket = \"inet:1@h\"\ntimeout = \n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(errors[0].starts_with("portcullis.conf:3:")) << errors[0];
    EXPECT_NE(errors[0].find(": error: "), std::string::npos);
}

TEST(Errors, DuplicateKeyIsASyntaxError) {
    const auto errors = file_errors("[dns]\ntimeout = 1\ntimeout = 2\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(errors[0].starts_with("portcullis.conf:3:")) << errors[0];
}

TEST(Errors, EveryErrorIsReportedAndNoConfigReturned) {
    const TempDir dir;
    const auto result = load_config(dir.write("c.conf", "[milter]\ntimeout = \"x\"\nsokcet = \"\"\n[log]\nlevel = 3\n"),
                                    true, {"dns.timeout=0", "nonsense"});
    EXPECT_FALSE(result.config);
    EXPECT_EQ(result.errors.size(), 5u);
}

TEST(Errors, ComeInTheOrderOfTheFile) {
    EXPECT_EQ(file_errors("[store]\ntimeout = 1.5\n[dns]\ntimeout = 0\n[auth]\nadd_header = 1\n"),
              (Strings{"portcullis.conf:2:11: error: store.timeout: expected a duration such as \"200ms\", found a "
                       "floating-point number",
                       "portcullis.conf:4:11: error: dns.timeout: the timeout must be more than zero",
                       "portcullis.conf:6:14: error: auth.add_header: expected true or false, found an integer"}));
}

TEST(Overrides, EachKindOfValue) {
    EXPECT_EQ(override_ok("store.url=redis://127.0.0.1:6380").store.url, "redis://127.0.0.1:6380");
    EXPECT_EQ(override_ok("milter.user=").milter.user, "");
    EXPECT_EQ(override_ok("store.timeout=2s").store.timeout, std::chrono::seconds(2));
    EXPECT_EQ(override_ok("store.timeout=3").store.timeout, std::chrono::seconds(3));
    EXPECT_EQ(override_ok("dns.resolver=127.0.0.1@5353, ::1").dns.resolver, (Strings{"127.0.0.1@5353", "::1"}));
    EXPECT_EQ(override_ok("dns.resolver=System").dns.resolver, Strings{"system"});
}

TEST(Overrides, BooleanWords) {
    const std::string key = "auth.add_header=";
    for (const auto* word : {"true", "yes", "1", "TRUE"}) EXPECT_TRUE(override_ok(key + word).auth.add_header) << word;
    for (const auto* word : {"false", "no", "0", "No"}) EXPECT_FALSE(override_ok(key + word).auth.add_header) << word;
    EXPECT_EQ(override_errors("auth.add_header=tru"),
              Strings{"-o auth.add_header=tru: error: auth.add_header: 'tru' is not one of true, false, yes, no, 1, 0 "
                      "(did you mean 'true'?)"});
}

TEST(Overrides, UnknownKeySuggests) {
    EXPECT_EQ(override_errors("store.tiemout=1s"),
              Strings{"-o store.tiemout=1s: error: unknown key 'store.tiemout' (did you mean 'store.timeout'?)"});
}

TEST(Overrides, MissingEqualsSign) {
    EXPECT_EQ(override_errors("store.timeout"), Strings{"-o store.timeout: error: expected KEY=VALUE"});
}

TEST(Overrides, ValueMayContainEqualsSigns) {
    EXPECT_EQ(override_ok("store.url=redis://:a=b@host").store.url, "redis://:a=b@host");
}

TEST(Overrides, AppliedInOrderAfterTheFile) {
    const auto config = load_ok("[store]\ntimeout = \"1s\"\nprefix = \"file:\"\n",
                                {"store.timeout=2s", "store.timeout=3s", "log.level=debug"});
    EXPECT_EQ(config.store.timeout, std::chrono::seconds(3));
    EXPECT_EQ(config.store.prefix, "file:");
    EXPECT_EQ(config.log.level, LogLevel::debug);
}

TEST(Overrides, CanRepairABadFileValueButTheErrorStands) {
    const TempDir dir;
    const auto result = load_config(dir.write("c.conf", "[store]\ntimeout = \"soon\"\n"), true, {"store.timeout=1s"});
    EXPECT_EQ(result.errors.size(), 1u);
}

TEST(Origins, NameTheFilePlaceTheLastOverrideOrTheFileForADefault) {
    const TempDir dir;
    const auto path = dir.write("c.conf", "[store]\nbackend = \"redis\"\nmode   = \"cluster\"\n");
    const auto result = load_config(path, true, {"store.mode=sentinel", "store.master=m", "store.mode=cluster"});
    ASSERT_EQ(messages(result), Strings{});
    const Origins& origins = result.config->origins;
    EXPECT_EQ(origins.of("store.backend"), path + ":2:11");
    EXPECT_EQ(origins.of("store.mode"), "-o store.mode=cluster");
    EXPECT_EQ(origins.of("store.master"), "-o store.master=m");
    EXPECT_EQ(origins.of("store.prefix"), path);
}

TEST(Paths, RelativePathsInTheFileStartAtItsDirectory) {
    const TempDir dir;
    const auto path = dir.write("etc/portcullis.conf", "[policy]\nfile = \"rules/policy.rules\"\n"
                                                       "[store]\nsnapshot = \"./state/snap\"\n");
    const auto result = load_config(path, true, {});
    ASSERT_TRUE(result.config);
    EXPECT_EQ(result.config->policy.file, dir.path("etc/rules/policy.rules"));
    EXPECT_EQ(result.config->store.snapshot, dir.path("etc/state/snap"));
}

TEST(Paths, AbsolutePathsAndOverridesAreKeptAsGiven) {
    EXPECT_EQ(load_ok("[policy]\nfile = \"/srv/p.rules\"\n").policy.file, "/srv/p.rules");
    EXPECT_EQ(override_ok("policy.file=rules/p.rules").policy.file, "rules/p.rules");
    EXPECT_EQ(override_ok("store.snapshot=").store.snapshot, "");
}

TEST(Paths, EmptyPolicyFileIsAnError) {
    EXPECT_EQ(file_errors("[policy]\nfile = \"\"\n"),
              Strings{"portcullis.conf:2:8: error: policy.file: the path must not be empty"});
    EXPECT_EQ(override_errors("policy.file=").size(), 1u);
}

TEST(Values, MilterSocket) {
    for (const auto* good : {"inet:8891@127.0.0.1", "inet:1@localhost", "inet6:65535@::1", "unix:/run/p.sock",
                             "local:/var/run/milter"}) {
        EXPECT_EQ(override_ok(std::string("milter.socket=") + good).milter.socket, good);
    }
    for (const auto* bad : {"inet:8891", "inet:0@h", "inet:65536@h", "inet:x@h", "inet:8891@", "unix:", "unix:rel",
                            "tcp:1@h", "8891", ""}) {
        EXPECT_EQ(override_errors(std::string("milter.socket=") + bad).size(), 1u) << bad;
    }
    EXPECT_EQ(override_errors("milter.socket=inet:99999@h"),
              Strings{"-o milter.socket=inet:99999@h: error: milter.socket: 'inet:99999@h' is not inet:PORT@HOST, "
                      "inet6:PORT@HOST, unix:/path or local:/path"});
}

TEST(Values, UnixSocketPathsFitASocketAddress) {
    // sun_path holds 108 bytes with the NUL: one byte over cannot be bound.
    const std::string longest = "/" + std::string(106, 's');
    EXPECT_EQ(override_ok("milter.socket=unix:" + longest).milter.socket, "unix:" + longest);
    EXPECT_EQ(override_ok("control.socket=" + longest).control.socket, longest);
    EXPECT_EQ(override_errors("milter.socket=local:" + longest + "s"),
              Strings{"-o milter.socket=local:" + longest + "s: error: milter.socket: the path is longer than the "
                      "107 bytes a unix socket's may be"});
    EXPECT_EQ(file_errors("[control]\nsocket = \"" + longest + "s\"\n"),
              Strings{"portcullis.conf:2:10: error: control.socket: the path is longer than the 107 bytes a unix "
                      "socket's may be"});
}

TEST(Values, StoreUrl) {
    for (const auto* good : {"redis://127.0.0.1", "redis://h:6379", "redis://h:6379/2", "redis://:pw@h",
                             "redis://:p@ss@h:1/0", "redis://[::1]:6379/0", "unix:///run/redis.sock",
                             "unix:///run/redis.sock?db=3"}) {
        EXPECT_EQ(override_ok(std::string("store.url=") + good).store.url, good);
    }
    for (const auto* bad : {"http://h", "redis://", "redis://h:0", "redis://h:65536", "redis://h:port",
                            "redis://h/db", "redis://user@h", "redis://[::1", "redis://[h]", "redis://::1:6379",
                            "redis://h st", "unix://run/r.sock", "unix:///r.sock?db=", "unix:///r.sock?x=1",
                            "unix:///"}) {
        EXPECT_EQ(override_errors(std::string("store.url=") + bad).size(), 1u) << bad;
    }
}

TEST(Values, StoreUrlWithUserAndPassword) {
    for (const auto* good : {"redis://alice:pw@h", "redis://alice:pw@[::1]:6380/2", "redis://al%69ce:p%40ss@h"}) {
        EXPECT_EQ(override_ok(std::string("store.url=") + good).store.url, good);
    }
    EXPECT_EQ(load_ok("[store]\nurl = \"redis://alice:secret@10.0.0.1:6380/1\"\n").store.url,
              "redis://alice:secret@10.0.0.1:6380/1");
}

TEST(Values, UnixStoreUrlWithPassword) {
    for (const auto* good : {"unix:///run/redis.sock?password=pw", "unix:///run/redis.sock?db=3&password=pw",
                             "unix:///run/redis.sock?password=p%26w&db=3"}) {
        EXPECT_EQ(override_ok(std::string("store.url=") + good).store.url, good);
    }
}

TEST(Values, StoreUrlErrorNamesTheFormsAndTheReason) {
    EXPECT_EQ(override_errors("store.url=unix:///r.sock?x=1"),
              Strings{"-o store.url=unix:///r.sock?x=1: error: store.url: unknown parameter 'x' (known: db, "
                      "password) (expected redis://[[user]:password@]host[:port][/db] or "
                      "unix:///path[?db=N][&password=P])"});
}

/* The URL of a file is not repeated, so its password stays out of the log. */
TEST(Values, StoreUrlErrorInAListNamesTheEntryByItsPlace) {
    const TempDir dir;
    const auto path = dir.write("c.conf", "[store]\nmode = \"cluster\"\nurl = \"redis://a, redis://:secret@b:0\"\n");
    EXPECT_EQ(messages(load_config(path, true, {})),
              Strings{path + ":3:7: error: store.url: URL 2: the port must be a number from 1 to 65535 (expected "
                             "redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N][&password=P])"});
}

TEST(Values, StoreUrlListNeedsSentinelOrCluster) {
    const std::string list = "store.url=redis://a:26379, redis://b:26379";
    EXPECT_EQ(override_errors(list),
              Strings{"-o " + list +
                      ": error: store.url: a list of servers needs store.mode \"sentinel\" or \"cluster\""});
    EXPECT_EQ(load_ok("", {list, "store.mode=cluster"}).store.mode, StoreMode::cluster);
    EXPECT_EQ(load_ok("", {list, "store.mode=sentinel", "store.master=m"}).store.master, "m");
    EXPECT_EQ(override_errors("store.url=redis://a,http://b").size(), 1u);
}

TEST(Values, StoreUrlTakesAnArrayAsDnsResolverDoes) {
    const auto config = load_ok("[store]\nmode = \"cluster\"\nurl = [\"redis://10.0.0.1:7000\", \" redis://[::1]:7001 \"]\n");
    EXPECT_EQ(config.store.url, "redis://10.0.0.1:7000, redis://[::1]:7001");
    EXPECT_EQ(file_errors("[store]\nmode = \"cluster\"\nurl = [\"redis://a:1\", 7]\n"),
              Strings{"portcullis.conf:3:7: error: store.url: expected a URL, or URLs in a string or an array, found "
                      "an integer"});
    const TempDir dir;
    const auto comma = dir.write("comma.conf", "[store]\nmode = \"cluster\"\nurl = [\"redis://a:1\", \"redis://b:1,redis://c:1\"]\n");
    EXPECT_EQ(messages(load_config(comma, true, {})),
              Strings{comma + ":3:7: error: store.url: URL 2: a ',' in a URL must be written %2C"});
    const auto port = dir.write("port.conf", "[store]\nmode = \"cluster\"\nurl = [\"redis://a:1\", \"redis://:secret@b:0\"]\n");
    EXPECT_EQ(messages(load_config(port, true, {})),
              Strings{port + ":3:7: error: store.url: URL 2: the port must be a number from 1 to 65535 (expected "
                             "redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N][&password=P])"});
}

/* TLS cannot be had: the error says what to do instead. */
TEST(Values, StoreUrlRefusesTls) {
    const auto errors = override_errors("store.url=rediss://:secret@redis.example:6380");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_TRUE(errors[0].starts_with("-o store.url=rediss://:secret@redis.example:6380: error: store.url: rediss:// "
                                      "(TLS) is not supported: the Redis client library (hiredis 0.14) has no TLS; "
                                      "reach a remote Redis through a local TLS tunnel (stunnel, spiped)"))
        << errors[0];
}

/* Whose credentials are whose: a standalone URL's or store.password, in
 * one place; a sentinel's URL its own; a cluster's nodes store.user and
 * store.password only.  Sentinel and cluster use database 0. */
TEST(Values, StoreCredentialsAndDatabasesByMode) {
    const std::string sentinels = "store.url=redis://:sentinelpw@a:26379, redis://b:26379";
    const auto sentinel = load_ok("", {"store.mode=sentinel", "store.master=m", sentinels, "store.user=pc",
                                       "store.password=pw"});
    EXPECT_EQ(sentinel.store.user, "pc");
    EXPECT_EQ(sentinel.store.password, "pw");
    EXPECT_EQ(load_ok("", {"store.password=pw"}).store.password, "pw");

    EXPECT_EQ(override_errors("store.user=pc"),
              Strings{"-o store.user=pc: error: store.user: needs store.password (Redis takes AUTH USER PASSWORD)"});
    EXPECT_EQ(file_errors("[store]\nurl = \"redis://:one@h\"\npassword = \"two\"\n"),
              Strings{"portcullis.conf:3:12: error: store.password: store.url holds a password already; give it in "
                      "one place"});
    EXPECT_EQ(override_errors("store.mode=cluster", "store.url=redis://a:7000, redis://:secret@b:7001"),
              Strings{"-o store.url=redis://a:7000, redis://:secret@b:7001: error: store.url: URL 2: every cluster "
                      "node authenticates with store.user and store.password; the URL may not hold credentials"});
    EXPECT_EQ(override_errors("store.mode=cluster", "store.url=unix:///run/redis.sock"),
              Strings{"-o store.url=unix:///run/redis.sock: error: store.url: cluster nodes are reached over TCP "
                      "(redis://HOST:PORT)"});
    EXPECT_EQ(override_errors("store.mode=sentinel", "store.master=m", "store.url=redis://a:26379/2"),
              Strings{"-o store.url=redis://a:26379/2: error: store.url: sentinel and cluster modes use database 0 "
                      "(store.prefix keeps installations apart)"});
    EXPECT_EQ(override_errors("store.password=a\nb"),
              Strings{"-o store.password=a\nb: error: store.password: the password holds a control character"});
}

TEST(Values, SentinelNeedsMaster) {
    EXPECT_EQ(file_errors("[store]\nmode = \"sentinel\"\n"),
              Strings{"portcullis.conf:2:8: error: store.mode: \"sentinel\" needs store.master, the name of the "
                      "master the sentinels watch"});
    EXPECT_EQ(load_ok("[store]\nmode = \"sentinel\"\n", {"store.master=mymaster"}).store.master, "mymaster");
}

TEST(Values, Resolver) {
    EXPECT_EQ(load_ok("[dns]\nresolver = \"127.0.0.1@5353\"\n").dns.resolver, Strings{"127.0.0.1@5353"});
    EXPECT_EQ(load_ok("[dns]\nresolver = \"192.0.2.1, 2001:db8::1@53\"\n").dns.resolver,
              (Strings{"192.0.2.1", "2001:db8::1@53"}));
    EXPECT_EQ(load_ok("[dns]\nresolver = [\" 192.0.2.1 \"]\n").dns.resolver, Strings{"192.0.2.1"});
    for (const auto* bad : {"dns.resolver=", "dns.resolver=localhost", "dns.resolver=127.0.0.1@0",
                            "dns.resolver=127.0.0.1@", "dns.resolver=127.0.0.1:53", "dns.resolver=system,127.0.0.1",
                            "dns.resolver=127.0.0.1,"}) {
        EXPECT_EQ(override_errors(bad).size(), 1u) << bad;
    }
    EXPECT_EQ(file_errors("[dns]\nresolver = []\n"),
              Strings{"portcullis.conf:2:12: error: dns.resolver: needs \"system\" or at least one forwarder"});
    EXPECT_EQ(file_errors("[dns]\nresolver = [\"::1\", 53]\n"),
              Strings{"portcullis.conf:2:12: error: dns.resolver: expected \"system\", or forwarders \"IP[@PORT]\" "
                      "in a string or an array, found an integer"});
}

TEST(Values, MetricsListen) {
    for (const auto* good : {"", "127.0.0.1:9155", "localhost:9155", "[::1]:9155", "[2001:db8::1]:1"}) {
        EXPECT_EQ(override_ok(std::string("metrics.listen=") + good).metrics.listen, good);
    }
    for (const auto* bad : {"127.0.0.1", ":9155", "::1:9155", "[::1]", "[::1]9155", "[nothost]:1", "h:0", "h:70000",
                            "h :1"}) {
        EXPECT_EQ(override_errors(std::string("metrics.listen=") + bad).size(), 1u) << bad;
    }
}

TEST(Values, AuthservIdIsAToken) {
    EXPECT_EQ(override_ok("auth.authserv_id=mx.example.com").auth.authserv_id, "mx.example.com");
    for (const auto* bad : {"mx example", "mx;x", "mx\tx", "a@b", "\"quoted\""}) {
        EXPECT_EQ(override_errors(std::string("auth.authserv_id=") + bad).size(), 1u) << bad;
    }
}

TEST(Values, Facility) {
    EXPECT_EQ(override_ok("log.facility=LOCAL7").log.facility, "local7");
    EXPECT_EQ(override_ok("log.facility=daemon").log.facility, "daemon");
    EXPECT_EQ(override_errors("log.facility=local8"),
              Strings{"-o log.facility=local8: error: log.facility: 'local8' is not one of mail, daemon, user, local0, "
                      "local1, local2, local3, local4, local5, local6, local7 (did you mean 'local0'?)"});
}

TEST(Values, WordsHaveNoWhiteSpace) {
    EXPECT_EQ(override_errors("milter.user=mail user").size(), 1u);
    EXPECT_EQ(override_errors("store.prefix=p c:").size(), 1u);
    EXPECT_EQ(override_errors("store.master=a\tb").size(), 1u);
}

/* The shipped file shows each key commented out as "#key = default", prose
 * comments as "# text".  Uncommenting the keys must give a file that sets
 * every key, to its default. */
std::string uncommented_shipped_config() {
    std::ifstream in(PORTCULLIS_SOURCE_DIR "/conf/portcullis.conf");
    std::stringstream out;
    for (std::string line; std::getline(in, line);) {
        const bool setting = line.size() > 1 && line[0] == '#' && line[1] >= 'a' && line[1] <= 'z';
        out << (setting ? line.substr(1) : line) << '\n';
    }
    return out.str();
}

TEST(ShippedConfig, LoadsCleanly) {
    const auto result = load_config(PORTCULLIS_SOURCE_DIR "/conf/portcullis.conf", true, {});
    EXPECT_EQ(messages(result), Strings{});
    ASSERT_TRUE(result.config);
    EXPECT_EQ(result.config->store.backend, StoreBackend::memory);
}

TEST(ShippedConfig, DocumentsEveryKeyWithItsDefault) {
    const auto text = uncommented_shipped_config();
    const auto root = toml::parse(text);
    for (const auto& key : config_keys()) EXPECT_TRUE(root.at_path(key)) << key << " is not in conf/portcullis.conf";
    expect_same(load_ok(text), Config{});
}

}  // namespace
}  // namespace portcullis::config
