/*
 * files.cc: bounded reads of regular files; the path of a unix socket
 * made ready to bind.
 */
#include "util/files.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/text.h"

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
    if (fd.get() < 0) return failure(errno, errno_message("cannot open '" + path + "'"));
    struct stat status {};
    if (fstat(fd.get(), &status) != 0) return failure(errno, errno_message("cannot read '" + path + "'"));
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
        if (count < 0) return failure(errno, errno_message("cannot read '" + path + "'"));
        // The file may grow while we read it.
        if (result.text.size() + static_cast<size_t>(count) > max_bytes) {
            return failure(0, "'" + path + "' is larger than " + std::to_string(max_bytes) + " bytes");
        }
        result.text.append(buffer, static_cast<size_t>(count));
    }
    result.ok = true;
    return result;
}

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), std::min(path.size() + 1, sizeof address.sun_path));
    return address;
}

std::string clear_stale_socket(const std::string& path) {
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) != 0) return "";
    if (!S_ISSOCK(existing.st_mode)) return "'" + path + "' exists and is not a socket";
    const Descriptor probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (probe.get() < 0) return errno_message("socket");
    const sockaddr_un address = unix_address(path);
    const int error =
        ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
    // EAGAIN: a listener whose queue is full.
    if (error == 0 || error == EAGAIN) return "'" + path + "' answers: is another portcullis running with it?";
    if (error != ECONNREFUSED) return errno_message("'" + path + "'", error);
    ::unlink(path.c_str());
    return "";
}

}  // namespace portcullis
