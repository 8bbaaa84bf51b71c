/*
 * fuzz_target.h: what every fuzz target here defines and the replay
 * main calls, and the check both targets use for the spec's promises.
 *
 * A target is one LLVMFuzzerTestOneInput(); libFuzzer brings its own
 * main(), replay_main.cc is the one used without it.  fuzz_require()
 * aborts with a message when a promise is broken, so a wrong result
 * is reported as a crash, with the input that caused it.  hash_of()
 * (FNV-1a) seeds what a run draws from its input, so that the same input
 * is always run the same way.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace portcullis::fuzz {

inline uint64_t hash_of(std::string_view bytes) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return hash;
}

/* Abort with "fuzz: broken promise: WHAT" when HOLDS is false. */
inline void fuzz_require(bool holds, std::string_view what) {
    if (holds) return;
    std::fprintf(stderr, "fuzz: broken promise: %.*s\n", static_cast<int>(what.size()), what.data());
    std::abort();
}

}  // namespace portcullis::fuzz
