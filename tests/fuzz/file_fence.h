/*
 * file_fence.h: keep a fuzzed loader's file access inside one directory.
 *
 * The policy loader opens any path a policy names, and a fuzzer soon
 * writes "/dev/zero" (read for ever), "/dev/stdin" (wait for ever) or a
 * glob of stars over the whole disk.  The policy fuzz executables are
 * linked with -Wl,--wrap=open,--wrap=glob, so that the calls to open(2)
 * and glob(3) in the statically linked project code come here first.
 * While a FileFence lives, a path outside its directory, or with ".." or
 * a backslash in it, fails as a file that cannot be read (open: EACCES;
 * glob: no match).  Without a fence both calls pass straight through.
 */
#pragma once

#include <string>

namespace portcullis::fuzz {

class FileFence {
public:
    explicit FileFence(const std::string& directory);   // an absolute path without a trailing '/'
    ~FileFence();
    FileFence(const FileFence&) = delete;
    FileFence& operator=(const FileFence&) = delete;
};

}  // namespace portcullis::fuzz
