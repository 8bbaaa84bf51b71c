/*
 * memory_store_test.cc: MemoryStore's scripts on strings and hashes,
 * expiry, scan and erase, its snapshot file (round trip, atomic save,
 * damage, failures, version 1, the read-only open), its threads and its
 * background saving.
 *
 * Each test works in a fresh temporary directory removed when it ends,
 * and drives expiry with a clock it advances by hand.  run() gives its
 * reply to the callback during the call: most tests take it so
 * (answered_now()); run_blocking() waits for it as the admin commands do.
 */
#include "store/memory_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "support/memory_limit.h"
#include "support/temp_dir.h"

namespace portcullis::store {
namespace {

namespace fs = std::filesystem;

using test_support::TempDir;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

/* ARGS: a TTL in ms ("0": no expiry).  Adds one to the value; returns it. */
std::vector<std::string> increment(Record& record, int64_t now, std::span<const std::string> args) {
    const int64_t total = record.value ? std::stoll(*record.value) + 1 : 1;
    const int64_t ttl = std::stoll(args[0]);
    record.value = std::to_string(total);
    record.expires_at_ms = ttl > 0 ? now + ttl : 0;
    return {std::to_string(total)};
}

/* ARGS: a value and an absolute expiry.  Returns nothing. */
std::vector<std::string> set_value(Record& record, int64_t, std::span<const std::string> args) {
    record.value = args[0];
    record.expires_at_ms = std::stoll(args[1]);
    return {};
}

/* Returns the value and expiry, or "absent"; changes nothing. */
std::vector<std::string> peek(Record& record, int64_t, std::span<const std::string>) {
    if (!record.value) return {"absent"};
    return {*record.value, std::to_string(record.expires_at_ms)};
}

/* Deletes the key; returns whether it was there. */
std::vector<std::string> delete_key(Record& record, int64_t, std::span<const std::string>) {
    const bool existed = record.value.has_value();
    record.value.reset();
    return {existed ? "1" : "0"};
}

std::vector<std::string> fail(Record& record, int64_t, std::span<const std::string>) {
    record.value = "half-done";
    throw std::runtime_error("boom");
}

/* ARGS: field, value, TTL in ms.  Sets the field; returns the field count. */
std::vector<std::string> hash_set(HashRecord& record, int64_t now, std::span<const std::string> args) {
    record.set(args[0], args[1]);
    record.expire_at(now + std::stoll(args[2]));
    return {std::to_string(record.fields().size())};
}

/* ARGS: a field.  Removes it; returns the fields left. */
std::vector<std::string> hash_delete(HashRecord& record, int64_t, std::span<const std::string> args) {
    record.erase(args[0]);
    return {std::to_string(record.fields().size())};
}

/* Returns each field and value; changes nothing. */
std::vector<std::string> hash_peek(HashRecord& record, int64_t, std::span<const std::string>) {
    std::vector<std::string> out;
    for (const auto& [field, value] : record.fields()) {
        out.push_back(field);
        out.push_back(value);
    }
    return out;
}

std::vector<std::string> hash_fail(HashRecord& record, int64_t, std::span<const std::string>) {
    record.set("half", "done");
    throw std::runtime_error("boom");
}

const HashScript hash_setter{"hash-setter", "", hash_set};
const HashScript hash_remover{"hash-remover", "", hash_delete};
const HashScript hash_peeker{"hash-peeker", "", hash_peek};
const HashScript hash_failer{"hash-failer", "", hash_fail};

const Script counter{"counter", "", increment};
const Script setter{"setter", "", set_value};
const Script peeker{"peeker", "", peek};
const Script remover{"remover", "", delete_key};
const Script failer{"failer", "", fail};

/* SCRIPT's reply, which the memory store gives during run(); a failure
 * is thrown as the StoreError it carries. */
template <typename AnyScript>
std::vector<std::string> answered_now(Store& store, const AnyScript& script, std::string_view key, int64_t now,
                                      std::span<const std::string> args) {
    std::optional<StoreResult> result;
    int calls = 0;
    store.run(script, key, now, args, [&](StoreResult got) {
        ++calls;
        result = std::move(got);
    });
    EXPECT_EQ(calls, 1) << "the memory store answers once, during run()";
    if (!result) throw std::logic_error("no answer during run()");
    if (result->error) throw StoreError(*result->error);
    return std::move(result->values);
}

class MemoryStoreTest : public ::testing::Test {
protected:
    std::function<int64_t()> clock() {
        return [this] { return now.load(); };
    }

    template <typename AnyScript>
    std::vector<std::string> run(Store& store, const AnyScript& script, std::string_view key,
                                 std::vector<std::string> args = {}) {
        return answered_now(store, script, key, now.load(), args);
    }

    void put(Store& store, std::string_view key, const std::string& value, int64_t expires_at_ms) {
        run(store, setter, key, {value, std::to_string(expires_at_ms)});
    }

    static std::map<std::string, std::pair<std::string, int64_t>> contents(Store& store,
                                                                           std::string_view prefix = "") {
        std::map<std::string, std::pair<std::string, int64_t>> out;
        store.scan(prefix, [&out](const Entry& entry) { out[entry.key] = {entry.value, entry.expires_at_ms}; });
        return out;
    }

    std::atomic<int64_t> now{1'000'000};
    TempDir dir;
};

TEST_F(MemoryStoreTest, CounterRunsAndExpires) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    EXPECT_EQ(run(store, counter, "c", {"100"}), std::vector<std::string>{"1"});
    now += 50;
    EXPECT_EQ(run(store, counter, "c", {"100"}), std::vector<std::string>{"2"});
    EXPECT_EQ(run(store, peeker, "c"), (std::vector<std::string>{"2", std::to_string(now.load() + 100)}));
    // Expiry is inclusive: at expires_at_ms the key is gone.
    now += 100;
    EXPECT_EQ(run(store, peeker, "c"), std::vector<std::string>{"absent"});
    EXPECT_EQ(run(store, counter, "c", {"0"}), std::vector<std::string>{"1"});
    EXPECT_EQ(run(store, peeker, "c"), (std::vector<std::string>{"1", "0"}));
}

TEST_F(MemoryStoreTest, HashScriptsRunExpireAndDeleteEmptyHashes) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    EXPECT_EQ(run(store, hash_setter, "h", {"f1", "v1", "100"}), std::vector<std::string>{"1"});
    EXPECT_EQ(run(store, hash_setter, "h", {"f2", "v2", "100"}), std::vector<std::string>{"2"});
    EXPECT_EQ(run(store, hash_peeker, "h"), (std::vector<std::string>{"f1", "v1", "f2", "v2"}));
    std::vector<HashEntry> hashes;
    store.scan_hashes("", [&](const HashEntry& hash) { hashes.push_back(hash); });
    ASSERT_EQ(hashes.size(), 1u);
    EXPECT_EQ(hashes[0].key, "h");
    EXPECT_EQ(hashes[0].fields, (Fields{{"f1", "v1"}, {"f2", "v2"}}));
    EXPECT_EQ(hashes[0].expires_at_ms, now + 100);
    EXPECT_TRUE(contents(store).empty()) << "scan() lists strings only";

    EXPECT_EQ(run(store, hash_remover, "h", {"f1"}), std::vector<std::string>{"1"});
    EXPECT_EQ(run(store, hash_remover, "h", {"f2"}), std::vector<std::string>{"0"});
    EXPECT_FALSE(store.erase("h")) << "the last field took the key with it";

    run(store, hash_setter, "h", {"f", "v", "100"});
    now += 100;
    EXPECT_TRUE(run(store, hash_peeker, "h").empty());
    EXPECT_FALSE(store.erase("h"));
}

TEST_F(MemoryStoreTest, ScriptOfTheWrongKindIsAStoreError) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "s", "v", 0);
    run(store, hash_setter, "h", {"f", "v", "1000"});
    EXPECT_THROW(run(store, hash_peeker, "s"), StoreError);
    EXPECT_THROW(run(store, peeker, "h"), StoreError);
    EXPECT_EQ(run(store, peeker, "s"), (std::vector<std::string>{"v", "0"}));
    EXPECT_EQ(run(store, hash_peeker, "h"), (std::vector<std::string>{"f", "v"}));
}

TEST_F(MemoryStoreTest, ThrowingHashScriptKeepsWhatItWroteAsRedisDoes) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    run(store, hash_setter, "h", {"f", "v", "1000"});
    EXPECT_THROW(run(store, hash_failer, "h"), StoreError);
    EXPECT_EQ(run(store, hash_peeker, "h"), (std::vector<std::string>{"f", "v", "half", "done"}));
}

TEST_F(MemoryStoreTest, ExpiredKeyIsAbsentToScanAndErase) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "short", "x", now + 10);
    put(store, "long", "y", now + 1000);
    put(store, "forever", "z", 0);
    now += 10;
    EXPECT_EQ(contents(store),
              (std::map<std::string, std::pair<std::string, int64_t>>{{"long", {"y", now + 990}},
                                                                      {"forever", {"z", 0}}}));
    EXPECT_FALSE(store.erase("short"));
    EXPECT_TRUE(store.erase("long"));
}

TEST_F(MemoryStoreTest, NoValueDeletesTheKey) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "k", "v", 0);
    EXPECT_EQ(run(store, remover, "k"), std::vector<std::string>{"1"});
    EXPECT_EQ(run(store, peeker, "k"), std::vector<std::string>{"absent"});
    EXPECT_EQ(run(store, remover, "k"), std::vector<std::string>{"0"});
    EXPECT_TRUE(contents(store).empty());
}

TEST_F(MemoryStoreTest, ScanSelectsByPrefix) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "g:one", "1", 0);
    put(store, "g:two", "2", now + 500);
    put(store, "a:one", "3", 0);
    put(store, "g", "4", 0);
    EXPECT_EQ(contents(store, "g:"),
              (std::map<std::string, std::pair<std::string, int64_t>>{{"g:one", {"1", 0}},
                                                                      {"g:two", {"2", now + 500}}}));
    EXPECT_EQ(contents(store).size(), 4u);
    EXPECT_TRUE(contents(store, "x:").empty());
}

TEST_F(MemoryStoreTest, ScanMayCallBackIntoTheStore) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    for (int index = 0; index < 100; ++index) put(store, std::string("k").append(std::to_string(index)), "v", 0);
    // The visitor erases what it sees: it would deadlock if scan held a lock.
    store.scan("k", [&store](const Entry& entry) { EXPECT_TRUE(store.erase(entry.key)); });
    EXPECT_TRUE(contents(store).empty());
}

TEST_F(MemoryStoreTest, EraseSaysWhetherTheKeyExisted) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "k", "v", 0);
    EXPECT_TRUE(store.erase("k"));
    EXPECT_FALSE(store.erase("k"));
    EXPECT_FALSE(store.erase("never"));
    EXPECT_EQ(run(store, peeker, "k"), std::vector<std::string>{"absent"});
}

TEST_F(MemoryStoreTest, ThrowingScriptIsAStoreErrorAndChangesNothing) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "k", "v", 0);
    EXPECT_THROW(run(store, failer, "k"), StoreError);
    EXPECT_EQ(run(store, peeker, "k"), (std::vector<std::string>{"v", "0"}));
}

TEST_F(MemoryStoreTest, AFailingScriptIsTheResultsErrorNotAThrow) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    put(store, "k", "v", 0);
    std::optional<StoreResult> result;
    const std::vector<std::string> none;
    EXPECT_NO_THROW(store.run(failer, "k", now.load(), none, [&](StoreResult got) { result = std::move(got); }));
    ASSERT_TRUE(result);
    ASSERT_TRUE(result->error);
    EXPECT_EQ(*result->error, "memory store: script failer failed: boom");
    EXPECT_TRUE(result->values.empty());
    EXPECT_EQ(run(store, peeker, "k"), (std::vector<std::string>{"v", "0"}));
}

TEST_F(MemoryStoreTest, TheCallbackMayRunAScriptOnTheSameKey) {
    // The reply comes once the key's lock is let go: this would deadlock otherwise.
    MemoryStore store("", test_support::kMemoryLimit, clock());
    const std::vector<std::string> ttl{"0"};
    std::vector<std::string> inner;
    store.run(counter, "k", now.load(), ttl,
              [&](StoreResult) { inner = answered_now(store, counter, "k", now.load(), ttl); });
    EXPECT_EQ(inner, std::vector<std::string>{"2"});
    store.run(hash_setter, "h", now.load(), std::vector<std::string>{"f", "v", "100"},
              [&](StoreResult) { inner = answered_now(store, hash_peeker, "h", now.load(), {}); });
    EXPECT_EQ(inner, (std::vector<std::string>{"f", "v"}));
}

TEST_F(MemoryStoreTest, RunBlockingGivesTheReplyOrThrows) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    const std::vector<std::string> ttl{"0"};
    EXPECT_EQ(run_blocking(store, counter, "c", now.load(), ttl), std::vector<std::string>{"1"});
    EXPECT_EQ(run_blocking(store, counter, "c", now.load(), ttl), std::vector<std::string>{"2"});
    const std::vector<std::string> field{"f", "v", "100"};
    EXPECT_EQ(run_blocking(store, hash_setter, "h", now.load(), field), std::vector<std::string>{"1"});
    try {
        run_blocking(store, failer, "c", now.load(), {});
        ADD_FAILURE() << "no StoreError";
    } catch (const StoreError& error) {
        EXPECT_EQ(std::string(error.what()), "memory store: script failer failed: boom");
    }
    EXPECT_THROW(run_blocking(store, hash_peeker, "c", now.load(), {}), StoreError);
}

TEST_F(MemoryStoreTest, DescribeNamesTheSnapshot) {
    EXPECT_EQ(MemoryStore("", test_support::kMemoryLimit, clock()).describe(), "memory (no snapshot)");
    const std::string path = dir.path("state");
    EXPECT_EQ(MemoryStore(path, test_support::kMemoryLimit, clock()).describe(), "memory (snapshot " + path + ")");
}

TEST_F(MemoryStoreTest, SnapshotRoundTripKeepsBinaryValuesAndExpiry) {
    const std::string path = dir.path("state");
    const std::string with_nul("a\0b\0", 4);
    std::string every_byte;
    for (int byte = 0; byte < 256; ++byte) every_byte += static_cast<char>(byte);
    const std::string binary_key = std::string("k\0\n", 3) + every_byte;
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "lines", "one\ntwo\n", 0);
        put(store, "nul", with_nul, now + 5000);
        put(store, binary_key, every_byte, now + 100);
        put(store, "empty", "", 0);
        put(store, "", "empty key", 0);
        EXPECT_TRUE(store.write_snapshot());
    }
    MemoryStore loaded(path, test_support::kMemoryLimit, clock());
    EXPECT_EQ(contents(loaded), (std::map<std::string, std::pair<std::string, int64_t>>{
                                    {"lines", {"one\ntwo\n", 0}},
                                    {"nul", {with_nul, now + 5000}},
                                    {binary_key, {every_byte, now + 100}},
                                    {"empty", {"", 0}},
                                    {"", {"empty key", 0}}}));
}

TEST_F(MemoryStoreTest, SnapshotRoundTripKeepsHashes) {
    const std::string path = dir.path("state");
    std::string every_byte;
    for (int byte = 0; byte < 256; ++byte) every_byte += static_cast<char>(byte);
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        run(store, hash_setter, "h", {"f", "v", "5000"});
        run(store, hash_setter, "h", {every_byte, "", "5000"});
        run(store, hash_setter, "h", {"", every_byte, "5000"});
        run(store, hash_setter, "gone", {"f", "v", "10"});
        put(store, "s", "string", 0);
        EXPECT_TRUE(store.write_snapshot());
    }
    now += 10;
    MemoryStore loaded(path, test_support::kMemoryLimit, clock());
    std::vector<HashEntry> hashes;
    loaded.scan_hashes("", [&](const HashEntry& hash) { hashes.push_back(hash); });
    ASSERT_EQ(hashes.size(), 1u);
    EXPECT_EQ(hashes[0].key, "h");
    EXPECT_EQ(hashes[0].fields, (Fields{{"f", "v"}, {every_byte, ""}, {"", every_byte}}));
    EXPECT_EQ(hashes[0].expires_at_ms, now + 4990);
    EXPECT_EQ(contents(loaded), (std::map<std::string, std::pair<std::string, int64_t>>{{"s", {"string", 0}}}));
}

TEST_F(MemoryStoreTest, HashReadsAreNoChangeToSave) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        run(store, hash_setter, "h", {"f", "v", "5000"});
    }
    struct stat before {};
    ASSERT_EQ(stat(path.c_str(), &before), 0);
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        run(store, hash_peeker, "h");
        run(store, hash_remover, "h", {"absent"});
    }
    struct stat after {};
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(MemoryStoreTest, KeysExpiredAtLoadAreDropped) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "soon", "x", now + 100);
        put(store, "later", "y", now + 10'000);
    }
    now += 100;
    MemoryStore loaded(path, test_support::kMemoryLimit, clock());
    EXPECT_EQ(contents(loaded),
              (std::map<std::string, std::pair<std::string, int64_t>>{{"later", {"y", now + 9900}}}));
    // Even once the clock is back before its expiry: it was never loaded.
    now -= 50;
    EXPECT_EQ(run(loaded, peeker, "soon"), std::vector<std::string>{"absent"});
}

TEST_F(MemoryStoreTest, MissingSnapshotIsAnEmptyStore) {
    const std::string path = dir.path("state");
    ::testing::internal::CaptureStderr();
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        EXPECT_TRUE(contents(store).empty());
    }
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find(path), std::string::npos) << log;
    EXPECT_EQ(log.find("error"), std::string::npos) << log;
    // Nothing changed, so nothing was saved.
    EXPECT_FALSE(fs::exists(path));
}

TEST_F(MemoryStoreTest, DestructorSavesWithModeOwnerOnlyAndNoTemporaryFile) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "k", "v", 0);
        EXPECT_FALSE(fs::exists(path));
    }
    ASSERT_TRUE(fs::exists(path));
    struct stat status {};
    ASSERT_EQ(stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    EXPECT_EQ(dir.names(), std::vector<std::string>{"state"});
}

TEST_F(MemoryStoreTest, WriteSnapshotSavesNow) {
    const std::string path = dir.path("state");
    MemoryStore store(path, test_support::kMemoryLimit, clock());
    put(store, "k", "v", 0);
    ASSERT_TRUE(store.write_snapshot());
    EXPECT_EQ(dir.names(), std::vector<std::string>{"state"});
    struct stat status {};
    ASSERT_EQ(stat(path.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    const auto copy = MemoryStore::open_read_only(path, clock());
    EXPECT_EQ(contents(*copy), (std::map<std::string, std::pair<std::string, int64_t>>{{"k", {"v", 0}}}));
}

TEST_F(MemoryStoreTest, DestructorSavesOnlyWhatChanged) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "k", "v", 0);
    }
    struct stat before {};
    ASSERT_EQ(stat(path.c_str(), &before), 0);
    {
        // Reading, and writing back the same value, change nothing.
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        run(store, peeker, "k");
        put(store, "k", "v", 0);
    }
    struct stat after {};
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    // Every save renames a new file into place: the same inode is the same file.
    EXPECT_EQ(before.st_ino, after.st_ino);
}

/* A snapshot of three keys; returns its bytes. */
std::string three_key_snapshot(const std::string& path, const std::function<int64_t()>& clock) {
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock);
        for (const std::string name : {"a", "b", "c"}) {
            const std::vector<std::string> args{"value of " + name, "0"};
            answered_now(store, setter, name, clock(), args);
        }
    }
    return read_file(path);
}

TEST_F(MemoryStoreTest, TruncatedSnapshotKeepsTheEntriesBeforeTheCut) {
    const std::string path = dir.path("state");
    const std::string whole = three_key_snapshot(path, clock());
    const std::map<std::string, std::pair<std::string, int64_t>> all{
        {"a", {"value of a", 0}}, {"b", {"value of b", 0}}, {"c", {"value of c", 0}}};
    const size_t end_record = 1 + 8 + 4;

    size_t previous = 0;
    for (size_t size = 0; size < whole.size(); ++size) {
        const std::string cut = dir.path("cut");
        write_file(cut, whole.substr(0, size));
        ::testing::internal::CaptureStderr();
        std::map<std::string, std::pair<std::string, int64_t>> loaded;
        EXPECT_NO_THROW(loaded = contents(*MemoryStore::open_read_only(cut, clock()))) << size;
        const std::string log = ::testing::internal::GetCapturedStderr();

        // What loads is intact, and more of the file never loads less.
        for (const auto& [key, value] : loaded) EXPECT_EQ(all.at(key), value) << size;
        EXPECT_GE(loaded.size(), previous) << size;
        previous = loaded.size();
        if (size >= whole.size() - end_record) {
            EXPECT_EQ(loaded, all) << size;
        }
        EXPECT_NE(log.find("error: memory store: snapshot '" + cut + "' is damaged at byte "), std::string::npos)
            << size << ": " << log;
    }
    // The cut at the very end of an entry is reported there.
    const std::string cut = dir.path("cut");
    write_file(cut, whole.substr(0, whole.size() - end_record));
    ::testing::internal::CaptureStderr();
    MemoryStore::open_read_only(cut, clock());
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("damaged at byte " + std::to_string(whole.size() - end_record)), std::string::npos) << log;
}

TEST_F(MemoryStoreTest, CorruptEntryKeepsTheEntriesBeforeIt) {
    const std::string path = dir.path("state");
    std::string bytes = three_key_snapshot(path, clock());
    // Damage the value of whichever entry comes last in the file.
    size_t last = 0;
    std::string last_key;
    for (const std::string name : {"a", "b", "c"}) {
        const size_t at = bytes.find("value of " + name);
        if (at > last) {
            last = at;
            last_key = name;
        }
    }
    bytes[last] ^= 0x20;
    write_file(path, bytes);

    ::testing::internal::CaptureStderr();
    std::unique_ptr<MemoryStore> store;
    ASSERT_NO_THROW(store = std::make_unique<MemoryStore>(path, test_support::kMemoryLimit, clock()));
    const std::string log = ::testing::internal::GetCapturedStderr();
    const auto loaded = contents(*store);
    EXPECT_EQ(loaded.size(), 2u);
    EXPECT_FALSE(loaded.contains(last_key));
    // The entry starts with its tag, two lengths, the expiry and the key.
    const size_t entry_start = last - (1 + 4 + 4 + 8 + 1);
    EXPECT_NE(log.find("'" + path + "' is damaged at byte " + std::to_string(entry_start) +
                       " (an entry's checksum does not match)"),
              std::string::npos)
        << log;
}

TEST_F(MemoryStoreTest, ForeignOrNewerFileLoadsNothing) {
    const std::string path = dir.path("state");
    write_file(path, "key value\nanother line\n");
    ::testing::internal::CaptureStderr();
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        EXPECT_TRUE(contents(store).empty());
    }
    std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("damaged at byte 0 (not a Portcullis memory store snapshot)"), std::string::npos) << log;

    write_file(path, std::string("pcstore\n\0\0\0\x03", 12));
    ::testing::internal::CaptureStderr();
    EXPECT_TRUE(contents(*MemoryStore::open_read_only(path, clock())).empty());
    log = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("damaged at byte 8 (snapshot version 3 is not supported)"), std::string::npos) << log;
}

TEST_F(MemoryStoreTest, Version1SnapshotLoads) {
    // Version 1 is version 2 without hash records; the header has no checksum.
    const std::string path = dir.path("state");
    std::string bytes = three_key_snapshot(path, clock());
    ASSERT_EQ(bytes[11], '\x02');
    bytes[11] = '\x01';
    write_file(path, bytes);
    ::testing::internal::CaptureStderr();
    const auto loaded = contents(*MemoryStore::open_read_only(path, clock()));
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(loaded.size(), 3u);
    EXPECT_EQ(log.find("error"), std::string::npos) << log;

    // A hash record has no place in version 1.
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        run(store, hash_setter, "h", {"f", "v", "5000"});
    }
    bytes = read_file(path);
    bytes[11] = '\x01';
    write_file(path, bytes);
    ::testing::internal::CaptureStderr();
    MemoryStore::open_read_only(path, clock());
    EXPECT_NE(::testing::internal::GetCapturedStderr().find("(unknown record type)"), std::string::npos);
}

TEST_F(MemoryStoreTest, UnwritableDirectoryIsLoggedOnceAndNeverFatal) {
    // A directory that does not exist: unwritable even for root.
    const std::string path = dir.path("missing/state");
    ::testing::internal::CaptureStderr();
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "k", "v", 0);
        EXPECT_FALSE(store.write_snapshot());
        EXPECT_FALSE(store.write_snapshot());
        EXPECT_EQ(run(store, peeker, "k"), (std::vector<std::string>{"v", "0"}));
    }
    const std::string log = ::testing::internal::GetCapturedStderr();
    const std::string failure = "error: memory store: cannot save snapshot '" + path + "'";
    const size_t first = log.find(failure);
    ASSERT_NE(first, std::string::npos) << log;
    EXPECT_NE(log.find("No such file or directory", first), std::string::npos) << log;
    // Two writes and the destructor's: one message.
    EXPECT_EQ(log.find(failure, first + 1), std::string::npos) << log;
}

TEST_F(MemoryStoreTest, FailureIsLoggedAgainAfterASuccess) {
    const std::string directory = dir.path("sub");
    const std::string path = directory + "/state";
    ::testing::internal::CaptureStderr();
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "k", "v", 0);
        EXPECT_FALSE(store.write_snapshot());
        fs::create_directory(directory);
        EXPECT_TRUE(store.write_snapshot());
        fs::remove_all(directory);
        EXPECT_FALSE(store.write_snapshot());
    }
    const std::string log = ::testing::internal::GetCapturedStderr();
    const std::string failure = "cannot save snapshot '" + path + "'";
    const size_t first = log.find(failure);
    ASSERT_NE(first, std::string::npos) << log;
    const size_t again = log.find("saved again", first);
    ASSERT_NE(again, std::string::npos) << log;
    EXPECT_NE(log.find(failure, again), std::string::npos) << log;
}

TEST_F(MemoryStoreTest, PingChecksTheSnapshotDirectory) {
    EXPECT_NO_THROW(MemoryStore("", test_support::kMemoryLimit, clock()).ping());
    EXPECT_NO_THROW(MemoryStore(dir.path("state"), test_support::kMemoryLimit, clock()).ping());

    const std::string missing = dir.path("missing/state");
    try {
        MemoryStore(missing, test_support::kMemoryLimit, clock()).ping();
        ADD_FAILURE() << "ping() accepted " << missing;
    } catch (const StoreError& error) {
        EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("No such file or directory"), std::string::npos) << error.what();
    }

    EXPECT_THROW(check_snapshot_directory(missing), StoreError);
    EXPECT_NO_THROW(check_snapshot_directory(dir.path("state")));
    EXPECT_NO_THROW(check_snapshot_directory(""));

    write_file(dir.path("file"), "");
    const std::string under_file = dir.path("file/state");
    try {
        MemoryStore(under_file, test_support::kMemoryLimit, clock()).ping();
        ADD_FAILURE() << "ping() accepted " << under_file;
    } catch (const StoreError& error) {
        EXPECT_NE(std::string(error.what()).find(under_file), std::string::npos) << error.what();
    }
}

TEST_F(MemoryStoreTest, ReadOnlyOpenNeverWrites) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        put(store, "k", "v", 0);
    }
    const std::string bytes = read_file(path);
    struct stat before {};
    ASSERT_EQ(stat(path.c_str(), &before), 0);
    {
        const auto store = MemoryStore::open_read_only(path, clock());
        EXPECT_EQ(contents(*store), (std::map<std::string, std::pair<std::string, int64_t>>{{"k", {"v", 0}}}));
        put(*store, "k", "changed", 0);
        put(*store, "new", "x", 0);
        EXPECT_TRUE(store->erase("k"));
        EXPECT_FALSE(store->write_snapshot());
    }
    struct stat after {};
    ASSERT_EQ(stat(path.c_str(), &after), 0);
    EXPECT_EQ(before.st_ino, after.st_ino);
    EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    EXPECT_EQ(read_file(path), bytes);
    EXPECT_EQ(dir.names(), std::vector<std::string>{"state"});

    // Nor does it create a missing file.
    const std::string missing = dir.path("missing");
    {
        const auto store = MemoryStore::open_read_only(missing, clock());
        put(*store, "k", "v", 0);
    }
    EXPECT_FALSE(fs::exists(missing));
}

TEST_F(MemoryStoreTest, ConcurrentIncrementsAreExact) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    constexpr int threads = 8;
    constexpr int increments = 10'000;
    constexpr int keys = 4;
    std::vector<std::thread> workers;
    for (int worker = 0; worker < threads; ++worker) {
        workers.emplace_back([&store, worker] {
            const std::vector<std::string> args{"0"};
            for (int step = 0; step < increments; ++step) {
                answered_now(store, counter, "key" + std::to_string((worker + step) % keys), 1, args);
            }
        });
    }
    for (auto& thread : workers) thread.join();
    const auto totals = contents(store);
    ASSERT_EQ(totals.size(), static_cast<size_t>(keys));
    for (const auto& [key, value] : totals) EXPECT_EQ(value.first, std::to_string(threads * increments / keys)) << key;
}

TEST_F(MemoryStoreTest, BackgroundThreadSavesAfterTheInterval) {
    const std::string path = dir.path("state");
    MemoryStore store(path, test_support::kMemoryLimit, clock(), std::chrono::milliseconds(50));
    put(store, "k", "v", 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!fs::exists(path) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(fs::exists(path));
    EXPECT_EQ(contents(*MemoryStore::open_read_only(path, clock())),
              (std::map<std::string, std::pair<std::string, int64_t>>{{"k", {"v", 0}}}));
}

TEST_F(MemoryStoreTest, DestructorDoesNotWaitForTheInterval) {
    const auto start = std::chrono::steady_clock::now();
    {
        MemoryStore store(dir.path("state"), test_support::kMemoryLimit, clock(), std::chrono::hours(1));
        put(store, "k", "v", 0);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    EXPECT_TRUE(fs::exists(dir.path("state")));
}

/* key_count keys of 40-byte values, each expiring 10 ms after the one
 * before, written in an order that is neither that nor its reverse. */
class EvictionTest : public MemoryStoreTest {
protected:
    static constexpr int key_count = 2000;
    static std::string name(int index) { return "k" + std::to_string(index); }
    int64_t expiry(int index) const { return 2'000'000 + static_cast<int64_t>(index) * 10; }

    /* Puts every key, in a scrambled order; whether the store stayed
     * within LIMIT after every write. */
    bool fill(MemoryStore& store, uint64_t limit) {
        bool within = true;
        for (int step = 0; step < key_count; ++step) {
            const int index = (step * 7919) % key_count;   // 7919 is prime: every index once
            put(store, name(index), std::string(40, 'v'), expiry(index));
            within = within && store.memory_used() <= limit;
        }
        return within;
    }
};

TEST_F(EvictionTest, ManyKeysStayWithinTheLimitAndTheNearestExpiryGoesFirst) {
    constexpr uint64_t limit = 64 * 1024;
    MemoryStore store("", limit, clock());
    EXPECT_TRUE(fill(store, limit));

    const auto kept = contents(store);
    ASSERT_GT(kept.size(), 50u);
    ASSERT_LT(kept.size(), static_cast<size_t>(key_count));
    // The keys kept are the ones that expire last, without a gap.
    const int first_kept = key_count - static_cast<int>(kept.size());
    for (int index = 0; index < key_count; ++index) {
        EXPECT_EQ(kept.contains(name(index)), index >= first_kept) << name(index);
    }
    // An evicted key is absent to scripts, as an expired one.
    EXPECT_EQ(run(store, peeker, name(0)), std::vector<std::string>{"absent"});
    EXPECT_EQ(run(store, peeker, name(first_kept - 1)), std::vector<std::string>{"absent"});
    EXPECT_EQ(run(store, peeker, name(key_count - 1)),
              (std::vector<std::string>{std::string(40, 'v'), std::to_string(expiry(key_count - 1))}));
}

TEST_F(EvictionTest, AKeyWithoutExpiryGoesLastAndEvictionsAreLoggedOnce) {
    constexpr uint64_t limit = 64 * 1024;
    size_t kept = 0;
    ::testing::internal::CaptureStderr();
    {
        MemoryStore store("", limit, clock(), std::chrono::hours(1));
        put(store, "forever", "v", 0);
        put(store, "dead", "v", now.load() - 1);
        fill(store, limit);
        const auto contained = contents(store);
        EXPECT_TRUE(contained.contains("forever"));
        EXPECT_EQ(run(store, peeker, "dead"), std::vector<std::string>{"absent"});
        kept = contained.size();
    }
    const std::string log = ::testing::internal::GetCapturedStderr();
    // One line for all of them (here at the end: the interval is an hour),
    // and the expired key is no eviction.
    const std::string line = "memory store: store.memory_limit (65536 bytes) reached: evicted ";
    const size_t at = log.find(line);
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;
    EXPECT_EQ(std::stoul(log.substr(at + line.size())), key_count + 1 - kept) << log;
}

TEST_F(MemoryStoreTest, HashesCountTheirFieldsAndErasingEverythingCountsZero) {
    MemoryStore store("", test_support::kMemoryLimit, clock());
    EXPECT_EQ(store.memory_used(), 0u);
    run(store, hash_setter, "h", {"field", "value", "1000"});
    const uint64_t one = store.memory_used();
    EXPECT_GT(one, std::string("h" "field" "value").size());
    run(store, hash_setter, "h", {"field", "a longer value than before", "1000"});
    EXPECT_EQ(store.memory_used(), one + std::string("a longer value than before").size() - 5);
    run(store, hash_setter, "h", {"second", "value", "1000"});
    const uint64_t two = store.memory_used();
    EXPECT_GT(two, one + std::string("second" "value").size());
    run(store, hash_peeker, "h");
    EXPECT_EQ(store.memory_used(), two);
    run(store, hash_remover, "h", {"second"});
    put(store, "s", "text", 0);
    put(store, "s", "longer text", now.load() + 5);
    EXPECT_TRUE(store.erase("s"));
    run(store, hash_remover, "h", {"field"});
    EXPECT_EQ(store.memory_used(), 0u);
}

TEST_F(MemoryStoreTest, AHashThatOutgrowsTheLimitIsEvictedWhole) {
    constexpr uint64_t limit = 16 * 1024;
    MemoryStore store("", limit, clock());
    for (int field = 0; field < 200; ++field) {
        run(store, hash_setter, "h", {"f" + std::to_string(field), std::string(100, 'x'), "1000"});
        EXPECT_LE(store.memory_used(), limit);
    }
    // The hash went whole when it outgrew the limit, and grew again.
    const auto fields = run(store, hash_peeker, "h");
    EXPECT_EQ(std::count(fields.begin(), fields.end(), "f199"), 1);
    EXPECT_EQ(std::count(fields.begin(), fields.end(), "f0"), 0);
}

TEST_F(MemoryStoreTest, ASnapshotOverTheLimitLoadsTheKeysThatExpireLast) {
    const std::string path = dir.path("state");
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        for (int index = 0; index < 2000; ++index) put(store, "k" + std::to_string(index), "v", 2'000'000 + index);
    }
    MemoryStore loaded(path, 32 * 1024, clock());
    EXPECT_LE(loaded.memory_used(), 32u * 1024);
    const auto kept = contents(loaded);
    ASSERT_FALSE(kept.empty());
    EXPECT_TRUE(kept.contains("k1999"));
    EXPECT_FALSE(kept.contains("k0"));
}

TEST_F(MemoryStoreTest, SavesAndScansShardsLargerThanOneBatch) {
    // 20,000 keys: about 300 per shard, more than one lock's batch.
    const std::string path = dir.path("state");
    std::map<std::string, std::pair<std::string, int64_t>> written;
    {
        MemoryStore store(path, test_support::kMemoryLimit, clock());
        for (int index = 0; index < 20'000; ++index) {
            const std::string key = "k" + std::to_string(index);
            const int64_t expires = index % 3 == 0 ? 0 : 2'000'000 + index % 97;
            put(store, key, std::to_string(index), expires);
            written[key] = {std::to_string(index), expires};
        }
        EXPECT_EQ(contents(store), written);
    }
    EXPECT_EQ(contents(*MemoryStore::open_read_only(path, clock())), written);
}

TEST_F(MemoryStoreTest, TheSweepDropsEveryExpiredKeyBatchAfterBatch) {
    MemoryStore store("", test_support::kMemoryLimit, clock(), std::chrono::milliseconds(20));
    for (int index = 0; index < 20'000; ++index) put(store, "k" + std::to_string(index), "v", now.load() + 5);
    put(store, "kept", "v", 0);
    const uint64_t one = std::string("kept" "v").size();
    now += 10;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (store.memory_used() > 1000 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GT(store.memory_used(), one);
    EXPECT_LT(store.memory_used(), 1000u);
    EXPECT_EQ(contents(store).size(), 1u);
}

}  // namespace
}  // namespace portcullis::store
