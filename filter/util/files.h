/*
 * files.h: reading a whole file that an administrator named.
 *
 * read_text_file() opens PATH without blocking (a FIFO or a terminal must
 * not hang a reload), refuses anything but a regular file (/dev/zero
 * would fill memory), refuses files larger than MAX_BYTES, and returns
 * the text with the file's identity (device and inode, to spot include
 * loops whatever the spelling of the path).  Errors read
 * "cannot open 'PATH': No such file or directory",
 * "'PATH' is not a regular file", "'PATH' is larger than N bytes".
 *
 * clear_stale_socket() makes room to bind a unix socket at PATH: nothing
 * there, or a socket nobody listens on (left by a daemon that died), now
 * removed, gives "".  Anything else is left alone and said: a file of
 * anyone's (a symlink too) or a socket a running daemon listens on, whose
 * path a second one must not take over.  unix_address() is PATH as a
 * socket address (the caller checks it fits).
 */
#pragma once

#include <sys/types.h>
#include <sys/un.h>

#include <string>

namespace portcullis {

struct FileText {
    bool ok = false;
    int error_number = 0;     // errno of a failed open or read, else 0
    std::string error;
    std::string text;
    dev_t device = 0;
    ino_t inode = 0;
};

FileText read_text_file(const std::string& path, size_t max_bytes);

std::string clear_stale_socket(const std::string& path);
sockaddr_un unix_address(const std::string& path);

}  // namespace portcullis
