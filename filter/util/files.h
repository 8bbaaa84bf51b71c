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
 */
#pragma once

#include <sys/types.h>

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

}  // namespace portcullis
