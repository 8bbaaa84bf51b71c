/*
 * scratch_directory.h: a private directory for a fuzz target's files.
 *
 * Made with mkdtemp(3) under $TMPDIR when it is set, else under /dev/shm
 * when there is one (a target rewrites its files for every input, which
 * on a disk file system can cost a flush each time), else under /tmp;
 * removed with everything in it when the object is destroyed.
 */
#pragma once

#include <filesystem>
#include <string>

namespace portcullis::fuzz {

class ScratchDirectory {
public:
    /* PREFIX names the directory: "PREFIX.XXXXXX". */
    explicit ScratchDirectory(const std::string& prefix);
    ~ScratchDirectory();
    ScratchDirectory(const ScratchDirectory&) = delete;
    ScratchDirectory& operator=(const ScratchDirectory&) = delete;

    const std::filesystem::path& path() const { return path_; }
    /* Write TEXT to the file at RELATIVE inside, making its directories. */
    void write(const std::string& relative, std::string_view text) const;

private:
    std::filesystem::path path_;
};

}  // namespace portcullis::fuzz
