/*
 * file_fence.cc: the --wrap'ed open() and glob() behind FileFence (see
 * file_fence.h).  One fence at a time; the fuzz targets are single
 * threaded.
 */
#include "file_fence.h"

#include <fcntl.h>
#include <glob.h>

#include <cerrno>
#include <cstdarg>
#include <string_view>

#include "fuzz_target.h"

namespace portcullis::fuzz {

namespace {

std::string g_directory;   // the fence; empty when there is none

bool allowed(const char* path) {
    if (g_directory.empty()) return true;
    const std::string_view text(path);
    const bool below = text.size() > g_directory.size() + 1 && text.starts_with(g_directory) &&
                       text[g_directory.size()] == '/';
    return below && text.find("..") == std::string_view::npos && text.find('\\') == std::string_view::npos;
}

}  // namespace

FileFence::FileFence(const std::string& directory) {
    fuzz_require(g_directory.empty(), "one FileFence at a time");
    fuzz_require(!directory.empty() && directory.front() == '/' && directory.back() != '/',
                 "a FileFence takes an absolute directory without a trailing '/'");
    g_directory = directory;
}

FileFence::~FileFence() { g_directory.clear(); }

}  // namespace portcullis::fuzz

extern "C" {

int __real_open(const char* path, int flags, ...);
int __real_glob(const char* pattern, int flags, int (*on_error)(const char*, int), glob_t* matches);

int __wrap_open(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list arguments;
        va_start(arguments, flags);
        mode = static_cast<mode_t>(va_arg(arguments, int));
        va_end(arguments);
    }
    if (!portcullis::fuzz::allowed(path)) {
        errno = EACCES;
        return -1;
    }
    return __real_open(path, flags, mode);
}

int __wrap_glob(const char* pattern, int flags, int (*on_error)(const char*, int), glob_t* matches) {
    if (portcullis::fuzz::allowed(pattern)) return __real_glob(pattern, flags, on_error, matches);
    matches->gl_pathc = 0;
    matches->gl_pathv = nullptr;
    return GLOB_NOMATCH;
}

}  // extern "C"
