/*
 * memory_limit.h: kMemoryLimit, the default of store.memory_limit, for the
 * tests that build a MemoryStore but do not test its limit.
 */
#pragma once

#include <cstdint>

#include "config/config.h"

namespace portcullis::test_support {

inline const uint64_t kMemoryLimit = config::Config::Store{}.memory_limit;

}  // namespace portcullis::test_support
