/*
 * store.cc: the wall clock, the choice of backend, waiting for a run,
 * and HashRecord.
 */
#include "store/store.h"

#include <chrono>

#include "store/memory_store.h"
#include "util/event_loop.h"
#include "store/redis_store.h"
#include "store/topology.h"
#include "util/log.h"

namespace portcullis::store {

const std::string* HashRecord::get(std::string_view field) const {
    const auto found = fields_.find(field);
    return found == fields_.end() ? nullptr : &found->second;
}

void HashRecord::set(std::string_view field, std::string value) {
    const auto found = fields_.find(field);
    if (found == fields_.end()) {
        bytes_ += field.size() + value.size();
        fields_.emplace(std::string(field), std::move(value));
    } else {
        bytes_ = bytes_ - found->second.size() + value.size();
        found->second = std::move(value);
    }
    changed_ = true;
}

size_t HashRecord::bytes_of(const Fields& fields) {
    size_t bytes = 0;
    for (const auto& [field, value] : fields) bytes += field.size() + value.size();
    return bytes;
}

void HashRecord::erase(std::string_view field) {
    const auto found = fields_.find(field);
    if (found == fields_.end()) return;
    bytes_ -= found->first.size() + found->second.size();
    fields_.erase(found);
    changed_ = true;
}

void HashRecord::clear() {
    if (!fields_.empty()) changed_ = true;
    fields_.clear();
    bytes_ = 0;
}

void HashRecord::expire_at(int64_t expires_at_ms) {
    if (expires_at_ms != expires_at_ms_) changed_ = true;
    expires_at_ms_ = expires_at_ms;
}

int64_t now_ms() {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

/* STORE's run() of SCRIPT, on a loop of this call's own. */
template <typename AnyScript>
std::vector<std::string> wait_for_run(Store& store, const AnyScript& script, std::string_view key, int64_t now,
                                      std::span<const std::string> args) {
    EventLoop loop;
    std::optional<StoreResult> result;
    loop.post([&] { store.run(script, key, now, args, [&result](StoreResult got) { result = std::move(got); }); });
    loop.run_until([&result] { return result.has_value(); });
    if (result->error) throw StoreError(*result->error);
    return std::move(result->values);
}

}  // namespace

std::vector<std::string> run_blocking(Store& store, const Script& script, std::string_view key, int64_t now_ms,
                                      std::span<const std::string> args) {
    return wait_for_run(store, script, key, now_ms, args);
}

std::vector<std::string> run_blocking(Store& store, const HashScript& script, std::string_view key, int64_t now_ms,
                                      std::span<const std::string> args) {
    return wait_for_run(store, script, key, now_ms, args);
}

std::unique_ptr<Store> open_store(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) {
        return std::make_unique<MemoryStore>(settings.snapshot, settings.memory_limit);
    }
    return std::make_unique<RedisStore>(settings);
}

std::unique_ptr<Store> open_store_view(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) return MemoryStore::open_read_only(settings.snapshot);
    return std::make_unique<RedisStore>(settings);
}

void check_store_settings(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::redis) redis_servers(settings);
}

void probe_store(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) {
        // The store itself is always there; only saving it may not work.
        try {
            check_snapshot_directory(settings.snapshot);
        } catch (const StoreError& error) {
            log::warning(std::string(error.what()) + "; greylisting state will not survive a restart");
        }
        return;
    }
    RedisStore(settings).ping();
}

}  // namespace portcullis::store
