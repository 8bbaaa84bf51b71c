/*
 * system_files_test.cc: with forwarders, the resolver never reads the
 * system's resolver settings (/etc/resolv.conf, /etc/hosts).
 *
 * This test binary interposes fopen(), which libunbound uses to read both
 * files (ub_ctx_resolvconf, ub_ctx_hosts), and records every path opened.
 * The "system" resolver must open them (so the recording works); a
 * resolver with a forwarder, set up and used for a lookup, must not.
 */
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "dns/resolver.h"
#include "support/loop_answer.h"
#include "support/unbound_server.h"

namespace {

std::mutex opened_mutex;
std::vector<std::string> opened_paths;

template <typename Open>
FILE* recorded_open(const char* name, const char* path, const char* mode) {
    {
        const std::lock_guard lock(opened_mutex);
        opened_paths.emplace_back(path ? path : "");
    }
    static const auto real = reinterpret_cast<Open>(dlsym(RTLD_NEXT, name));
    return real(path, mode);
}

}  // namespace

extern "C" FILE* fopen(const char* path, const char* mode) {
    return recorded_open<FILE* (*)(const char*, const char*)>("fopen", path, mode);
}
extern "C" FILE* fopen64(const char* path, const char* mode) {
    return recorded_open<FILE* (*)(const char*, const char*)>("fopen64", path, mode);
}

namespace portcullis::dns {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> system_files_opened() {
    const std::lock_guard lock(opened_mutex);
    std::vector<std::string> found;
    for (const auto& path : opened_paths) {
        if (path == "/etc/resolv.conf" || path == "/etc/hosts") found.push_back(path);
    }
    opened_paths.clear();
    return found;
}

TEST(SystemFiles, TheSystemResolverReadsThem) {
    system_files_opened();
    try {
        Resolver resolver({"system"}, 1s);
    } catch (const ResolverError&) {
        // A machine without /etc/resolv.conf: it was still opened.
    }
    EXPECT_NE(system_files_opened(), std::vector<std::string>{});
}

TEST(SystemFiles, AForwarderIsTheOnlyServer) {
    test_support::UnboundServer server({"2.0.0.127.bl.example. A 127.0.0.2"});
    system_files_opened();
    {
        Resolver resolver({server.forwarder()}, 2s);
        EventLoop loop;
        const Answer answer = test_support::answer_on<Answer>(
            loop, [&](Resolver::Done done) { resolver.lookup("2.0.0.127.bl.example", RecordType::a, done); });
        EXPECT_EQ(answer.records, std::vector<std::string>{"127.0.0.2"});
    }
    EXPECT_EQ(system_files_opened(), std::vector<std::string>{});
}

}  // namespace
}  // namespace portcullis::dns
