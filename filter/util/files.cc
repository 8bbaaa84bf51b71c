/*
 * files.cc: bounded reads of regular files.
 */
#include "util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis {

namespace {

FileText failure(int error_number, std::string message) {
    FileText result;
    result.error_number = error_number;
    result.error = std::move(message);
    return result;
}

class Descriptor {
public:
    explicit Descriptor(int fd) : fd_(fd) {}
    ~Descriptor() {
        if (fd_ >= 0) close(fd_);
    }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

FileText read_text_file(const std::string& path, size_t max_bytes) {
    const Descriptor fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) return failure(errno, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat status {};
    if (fstat(fd.get(), &status) != 0) return failure(errno, "cannot read '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(status.st_mode)) return failure(0, "'" + path + "' is not a regular file");
    if (static_cast<uint64_t>(status.st_size) > max_bytes) {
        return failure(0, "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
    }

    FileText result;
    result.device = status.st_dev;
    result.inode = status.st_ino;
    char buffer[65536];
    for (;;) {
        const ssize_t count = read(fd.get(), buffer, sizeof buffer);
        if (count == 0) break;
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) return failure(errno, "cannot read '" + path + "': " + std::strerror(errno));
        // The file may grow while we read it.
        if (result.text.size() + static_cast<size_t>(count) > max_bytes) {
            return failure(0, "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
        }
        result.text.append(buffer, static_cast<size_t>(count));
    }
    result.ok = true;
    return result;
}

}  // namespace portcullis
