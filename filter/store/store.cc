/*
 * store.cc: the wall clock and the choice of backend.
 */
#include "store/store.h"

#include <chrono>

#include "store/memory_store.h"
#include "store/redis_store.h"
#include "util/log.h"

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
