/*
 * store_backends.h: the two store backends a check's tests run on.
 *
 * TestStore builds a MemoryStore on CLOCK, or a RedisStore on a
 * redis-server of its own (support/redis_server.h), so a test suite
 * parameterised on Backend holds the Lua and the C++ half of every
 * script to the same answers.  Its loop is where the test waits for an
 * answer (support/loop_answer.h): the Redis store answers only on the
 * loop that called it; the memory store answers at once on either.
 * backend_name() names the instances.  value_of() is what a check's
 * Outcome holds, or throws with the error it carries instead.
 */
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>

#include "store/memory_store.h"
#include "store/redis_store.h"
#include "support/memory_limit.h"
#include "support/redis_server.h"
#include "util/event_loop.h"

namespace portcullis::test_support {

enum class Backend { memory, redis };

inline std::string backend_name(const testing::TestParamInfo<Backend>& param) {
    return param.param == Backend::memory ? "memory" : "redis";
}

struct TestStore {
    TestStore(Backend backend, std::function<int64_t()> clock) {
        if (backend == Backend::memory) {
            store = std::make_unique<store::MemoryStore>("", kMemoryLimit, std::move(clock));
            return;
        }
        redis = std::make_unique<RedisServer>();
        config::Config::Store settings;
        settings.backend = config::StoreBackend::redis;
        settings.url = redis->url();
        store = std::make_unique<store::RedisStore>(settings);
    }

    std::unique_ptr<RedisServer> redis;   // null for the memory backend
    std::unique_ptr<store::Store> store;
    EventLoop loop;                       // goes first, with its connection
};

template <typename T>
T value_of(store::Outcome<T> outcome) {
    if (!outcome.value) throw std::runtime_error("no answer from the store: " + outcome.error);
    return std::move(*outcome.value);
}

}  // namespace portcullis::test_support
