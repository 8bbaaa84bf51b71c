/*
 * greylist_admin_test.cc: `portcullis greylist` as the daemon runs it on
 * its store: an allow's --expire is checked before anything is stored.
 */
#include <gtest/gtest.h>

#include "daemon/commands.h"
#include "daemon/output.h"
#include "store/memory_store.h"
#include "support/memory_limit.h"

namespace portcullis::daemon {
namespace {

int allow_for(store::Store& store, const std::string& expire, TextOutput& out) {
    return greylist_admin(store, GreylistOptions{"allow", "192.0.2.1", "", "", false, expire}, out);
}

TEST(GreylistAdmin, AnAllowLongerThanARecordIsKeptIsRefused) {
    store::MemoryStore store("", test_support::kMemoryLimit);
    TextOutput refused;
    EXPECT_EQ(allow_for(store, "3651d", refused), kExitUsage);
    EXPECT_NE(refused.text().find("--expire '3651d' is longer than 3650d, the longest a record is kept"),
              std::string::npos)
        << refused.text();
    TextOutput listed;
    EXPECT_EQ(greylist_admin(store, GreylistOptions{"list", "", "", "", false, ""}, listed), kExitOk);
    EXPECT_EQ(listed.text().find("192.0.2."), std::string::npos) << listed.text();

    TextOutput allowed;
    EXPECT_EQ(allow_for(store, "3650d", allowed), kExitOk) << allowed.text();
}

}  // namespace
}  // namespace portcullis::daemon
