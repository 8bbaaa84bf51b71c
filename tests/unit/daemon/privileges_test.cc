/*
 * privileges_test.cc: drop_privileges() (privileges.h), run as root in a
 * child process, which it leaves as another user.
 */
#include "daemon/privileges.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "support/temp_dir.h"

namespace portcullis::daemon {
namespace {

using test_support::TempDir;

/* drop_privileges(USER, SOCKET) in a child: its exit status is 0 when it
 * gave "", 1 when an error. */
int drop_in_child(const std::string& user, const std::string& socket) {
    const pid_t child = fork();
    if (child == 0) _exit(drop_privileges(user, socket).empty() ? 0 : 1);
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

TEST(DropPrivileges, ASymlinkInTheMilterSocketsPlaceIsNotFollowed) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    const TempDir dir;
    const std::string precious = dir.write("precious", "root's\n");
    ::chmod(precious.c_str(), 0600);
    const std::string link = dir.path("milter.sock");
    std::filesystem::create_symlink(precious, link);
    EXPECT_EQ(drop_in_child("nobody", "unix:" + link), 1);
    struct stat after {};
    ASSERT_EQ(::stat(precious.c_str(), &after), 0);
    EXPECT_EQ(after.st_uid, 0u);
    EXPECT_EQ(after.st_mode & 07777, 0600u);
}

TEST(DropPrivileges, AnUnknownUserIsNamed) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    EXPECT_EQ(drop_privileges("no-such-user-here", ""),
              "milter.user 'no-such-user-here' does not exist (create it, or set milter.user = \"\")");
}

}  // namespace
}  // namespace portcullis::daemon
