/*
 * heap_use.h: how much of glibc's heap is in use, for tests that bound
 * what objects in flight hold.
 *
 * heap_in_use() is glibc's count of the bytes allocated (mallinfo2: the
 * arenas and the blocks mapped apart).  heap_measurable() says whether
 * that count sees this process's allocations: a sanitizer build has a
 * malloc of its own, and such a test is skipped there.
 */
#pragma once

#include <malloc.h>

#include <cstddef>
#include <memory>

namespace portcullis::test_support {

inline size_t heap_in_use() {
    const struct mallinfo2 heap = mallinfo2();
    return heap.uordblks + heap.hblkhd;
}

inline bool heap_measurable() {
    constexpr size_t kProbe = 1 << 20;
    const size_t before = heap_in_use();
    const auto probe = std::make_unique<char[]>(kProbe);
    probe[0] = 1;
    return heap_in_use() - before >= kProbe;
}

}  // namespace portcullis::test_support
