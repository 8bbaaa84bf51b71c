/*
 * memory_store.h: the store inside the filter process, optionally saved
 * to a snapshot file.
 *
 * MemoryStore keeps the keys of one filter process with the semantics of
 * the Redis backend: each key holds a string value or a hash, and an
 * absolute expiry in ms (0: none); an expired key is absent to scripts,
 * scan(), scan_hashes() and erase().  run() applies a script's C++ half
 * under the lock of the key's shard and gives the reply during the call;
 * the keys are spread over 64 shards so the event loops' threads rarely
 * wait for each other.  A hash
 * script that throws leaves what it wrote before, as a Lua script that
 * fails half-way does in Redis; a string script that throws leaves the
 * key as it was.
 *
 * Memory is bounded by MEMORY_LIMIT, in bytes as the store counts them
 * (memory_used()): for each key its name, its string value or its hash's
 * fields and values, and a fixed overhead per key and per field for what
 * the containers and the allocator take besides (measured on glibc, x86-64;
 * the unit test holds the count to the heap's growth).  When a write takes
 * the count over the limit, the keys nearest their expiry (a key without
 * one last) are evicted until it is under again, as Redis's maxmemory
 * with volatile-ttl: each shard keeps its keys ordered by expiry, so one
 * eviction looks at the first key of each shard and removes the nearest,
 * a cost that does not grow with the number of keys (but for the log n of
 * the ordered index).  An evicted key is absent afterwards, as if it had
 * expired.  The evictions are counted (portcullis_store_evictions_total)
 * and logged once per interval, not per key.
 *
 * A background thread wakes every SNAPSHOT_INTERVAL to drop expired keys
 * (by CLOCK), so a store without a snapshot does not grow with keys nobody
 * reads again, and, when a snapshot path is set, to save the store if it
 * changed since the last save.  The destructor stops the thread at once,
 * logs the evictions not yet logged and saves what changed one last time.  write_snapshot() saves now.
 * Neither the sweep nor a save nor scan() holds a shard's lock for more
 * than a batch of keys (256, or 64 kB of data): a save copies a shard a
 * batch at a time, in the order of the expiry index, so a key written
 * while the save runs may be saved as it was or as it is (or, when its
 * expiry moved, twice or not at all); it is saved again at the next
 * interval, as any change is.
 *
 * The snapshot is read at construction.  A missing file is an empty
 * store; keys already expired are dropped; a damaged or truncated file is
 * logged with the byte offset of the damage and the keys before it are
 * kept.  The constructor never throws because of the file.  A save that
 * fails is logged (path and reason) once, not at every interval, until a
 * save works again; the daemon goes on with the state in memory.
 *
 * check_snapshot_directory() is ping()'s check on its own, for the
 * daemon to call before it forks, when no store exists yet.
 *
 * open_read_only() reads a snapshot for the admin commands: no thread,
 * and neither write_snapshot() nor the destructor ever writes, so a
 * running daemon's file is safe from them.  Its changes stay in memory.
 *
 * Snapshot format, version 2 (all integers big-endian):
 *   header  "pcstore\n", then the version (u32)
 *   entry   'E', key length (u32), value length (u32), expires_at_ms
 *           (i64), the key, the value, CRC-32 of the entry's bytes so far
 *   hash    'H', key length (u32), field count (u32), expires_at_ms (i64),
 *           the key, then per field its length (u32), its value's length
 *           (u32), the field and the value; CRC-32 of the record so far
 *   end     'Z', the number of records (u64), CRC-32 of 'Z' and the count
 * Keys, fields and values are raw bytes; the end record tells a complete
 * file from one cut at a record boundary.  Version 1 is version 2 without
 * hash records: such a file loads as it is (greylisting kept its state
 * in string keys then, which the greylist no longer reads; they expire).  A save writes a temporary file in
 * the snapshot's directory with mode 0600, syncs it, renames it over the
 * snapshot and syncs the directory, so a crash leaves the old file or
 * the new one, never a mix.
 */
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "store/store.h"
#include "util/units.h"

namespace portcullis::store {

class MemoryStore final : public Store {
public:
    /* SNAPSHOT_PATH "" keeps no file.  MEMORY_LIMIT is store.memory_limit.
     * CLOCK (ms since the epoch) decides expiry at load, in scan(), erase(),
     * evictions and the sweeps; run() uses the time its caller passes. */
    MemoryStore(std::string snapshot_path, uint64_t memory_limit, std::function<int64_t()> clock = now_ms,
                Millis snapshot_interval = std::chrono::minutes(1));
    ~MemoryStore() override;
    MemoryStore(const MemoryStore&) = delete;
    MemoryStore& operator=(const MemoryStore&) = delete;

    /* The snapshot at SNAPSHOT_PATH, loaded as the constructor would, in a
     * store that never writes it, runs no thread and evicts nothing. */
    static std::unique_ptr<MemoryStore> open_read_only(std::string snapshot_path,
                                                       std::function<int64_t()> clock = now_ms);

    void run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void run(const HashScript& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
             Done done) override;
    void scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) override;
    void scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) override;
    bool erase(std::string_view key) override;
    /* With a snapshot path (and not read-only): throws StoreError unless
     * the snapshot's directory exists and this process may create files in
     * it. */
    void ping() override;
    std::string describe() const override;

    /* Saves the live keys now, changed or not; whether the file was
     * written.  Failures are logged, never thrown.  Without a path, or
     * read-only, writes nothing and returns false. */
    bool write_snapshot();

    /* The bytes the keys take, as the store counts them (see above). */
    uint64_t memory_used() const { return memory_used_.load(); }

private:
    struct Value {
        std::variant<std::string, Fields> data;
        int64_t expires_at_ms = 0;
        size_t hash_bytes = 0;          // a hash's fields and values, as HashRecord::bytes() counts them
        uint64_t footprint = 0;         // what the key adds to memory_used_, set when it is indexed
    };
    using Entries = std::unordered_map<std::string, Value>;
    /* The keys in the order eviction takes them: (expiry, or the largest
     * number for none; the key, a view of its name in Entries, whose nodes
     * never move). */
    using ExpiryIndex = std::set<std::pair<int64_t, std::string_view>>;
    struct Shard {
        std::mutex mutex;
        Entries entries;
        ExpiryIndex by_expiry;
    };
    /* Copies of the live keys of one batch, by kind. */
    struct Live {
        std::vector<Entry> strings;
        std::vector<HashEntry> hashes;
    };
    /* Where a walk through a shard's expiry index goes on: the next key
     * to look at, by its place in the index. */
    struct Cursor {
        std::optional<std::pair<int64_t, std::string>> next;
        bool done = false;
    };
    static constexpr size_t shard_count = 64;

    /* Loads the snapshot; starts no thread. */
    MemoryStore(std::string snapshot_path, uint64_t memory_limit, std::function<int64_t()> clock, bool read_only);

    std::vector<std::string> apply(const Script& script, std::string_view key, int64_t now_ms,
                                   std::span<const std::string> args);
    std::vector<std::string> apply(const HashScript& script, std::string_view key, int64_t now_ms,
                                   std::span<const std::string> args);
    template <typename Apply>
    void answer(const Done& done, Apply apply);
    Shard& shard_for(std::string_view key);
    // Under the shard's lock: every change of a key goes through these.
    void place(Shard& shard, Entries::iterator found, std::string name, Value value);
    void remove(Shard& shard, Entries::iterator found);
    void index(Shard& shard, Entries::iterator found);
    void unindex(Shard& shard, Entries::iterator found);
    void make_room();
    bool evict_nearest();
    void load();
    void maintain(Millis interval);
    void sweep();
    void report_evictions();
    void write_if_changed();
    bool write_locked();
    static Live next_batch(Shard& shard, std::string_view key_prefix, int64_t now, Cursor& cursor);
    template <typename Visit>
    void walk(std::string_view key_prefix, int64_t now, Visit visit);

    const std::string path_;
    const uint64_t memory_limit_;
    const std::function<int64_t()> clock_;
    const bool read_only_;
    std::array<Shard, shard_count> shards_;

    std::atomic<uint64_t> memory_used_{0};
    // One thread evicts at a time; the others go on (the bound may be
    // passed by the writes of a moment, never for longer).
    std::mutex eviction_mutex_;
    std::atomic<uint64_t> evicted_{0};  // live keys evicted since the last report

    // Bumped by every change to a live key, so a save knows whether the
    // file is current (dropping expired keys changes nothing it holds).
    std::atomic<uint64_t> changes_{0};

    // Saves run one at a time, so an older image never replaces a newer one.
    std::mutex write_mutex_;
    uint64_t saved_changes_ = 0;        // changes_ as of the last good save
    std::string last_failure_;          // the last save error logged, until a save works

    std::mutex stop_mutex_;
    std::condition_variable stop_signal_;
    bool stopping_ = false;
    std::thread maintainer_;            // started last, once the snapshot is loaded
};

/* Throws StoreError, naming SNAPSHOT_PATH, unless its directory exists and
 * this process may create files in it; "" passes.  What ping() checks,
 * without a store: no thread, nothing read or written. */
void check_snapshot_directory(const std::string& snapshot_path);

}  // namespace portcullis::store
