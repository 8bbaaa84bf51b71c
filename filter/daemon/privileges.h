/*
 * privileges.h: giving up root after the milter socket is bound.
 *
 * drop_privileges(USER) does nothing unless we run as root and USER is
 * set; then it makes a unix socket (if any) owned by USER and writable by
 * its group, and switches group list, gid and uid to USER's, checking
 * that root cannot be regained.  Returns "" or what went wrong.
 */
#pragma once

#include <string>

namespace portcullis::daemon {

std::string drop_privileges(const std::string& user, const std::string& milter_socket);

}  // namespace portcullis::daemon
