/*
 * scratch_directory.cc: see scratch_directory.h.
 */
#include "scratch_directory.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "fuzz_target.h"

namespace portcullis::fuzz {

namespace {

std::filesystem::path parent_directory() {
    if (const char* tmpdir = std::getenv("TMPDIR"); tmpdir && *tmpdir) return tmpdir;
    if (access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    return std::filesystem::temp_directory_path();
}

}  // namespace

ScratchDirectory::ScratchDirectory(const std::string& prefix) {
    std::string pattern = (parent_directory() / (prefix + ".XXXXXX")).string();
    fuzz_require(mkdtemp(pattern.data()) != nullptr, "mkdtemp for a scratch directory");
    path_ = pattern;
}

ScratchDirectory::~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

void ScratchDirectory::write(const std::string& relative, std::string_view text) const {
    const std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    fuzz_require(out.good(), "writing a file in the scratch directory");
}

}  // namespace portcullis::fuzz
