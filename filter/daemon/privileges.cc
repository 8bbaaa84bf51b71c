/*
 * privileges.cc: setgroups/setgid/setuid to the configured user.
 */
#include "daemon/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "milter/engine.h"
#include "util/text.h"

namespace portcullis::daemon {

namespace {


}  // namespace

std::string drop_privileges(const std::string& user, const std::string& milter_socket) {
    if (geteuid() != 0 || user.empty()) return "";
    errno = 0;
    const passwd* account = getpwnam(user.c_str());
    if (!account) return "milter.user '" + user + "' does not exist (create it, or set milter.user = \"\")";
    const uid_t uid = account->pw_uid;
    const gid_t gid = account->pw_gid;

    const std::string path = milter::unix_socket_path(milter_socket);
    if (!path.empty()) {
        // The MTA's user joins our group to reach the socket.  Never
        // through a symlink: whoever may write to the directory could have
        // put one to a file of root's in the socket's place.
        struct stat status {};
        if (lstat(path.c_str(), &status) != 0) return errno_message("stat " + path);
        if (!S_ISSOCK(status.st_mode)) return path + " is no longer the milter socket: something else took its place";
        if (lchown(path.c_str(), uid, gid) != 0) return errno_message("chown " + path);
        if (chmod(path.c_str(), 0660) != 0) return errno_message("chmod " + path);
    }
    if (initgroups(user.c_str(), gid) != 0) return errno_message("initgroups " + user);
    if (setgid(gid) != 0) return errno_message("setgid");
    if (setuid(uid) != 0) return errno_message("setuid");
    if (uid != 0 && setuid(0) == 0) return "could still regain root after dropping privileges";
    return "";
}

}  // namespace portcullis::daemon
