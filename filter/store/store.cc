/*
 * store.cc: the wall clock and the choice of backend.
 */
#include "store/store.h"

#include <chrono>

#include "store/memory_store.h"
#include "store/redis_store.h"

namespace portcullis::store {

int64_t now_ms() {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::unique_ptr<Store> open_store(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) return std::make_unique<MemoryStore>(settings.snapshot);
    return std::make_unique<RedisStore>(settings);
}

std::unique_ptr<Store> open_store_view(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) return MemoryStore::open_read_only(settings.snapshot);
    return std::make_unique<RedisStore>(settings);
}

void check_store_settings(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::redis) RedisStore{settings};
}

void probe_store(const config::Config::Store& settings) {
    if (settings.backend == config::StoreBackend::memory) {
        check_snapshot_directory(settings.snapshot);
        return;
    }
    RedisStore(settings).ping();
}

}  // namespace portcullis::store
