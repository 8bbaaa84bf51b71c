/*
 * memory_store.cc: the sharded in-process store of strings and hashes,
 * its sweeping and saving thread, and the snapshot file's encoding.
 */
#include "store/memory_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <variant>

#include "metrics/metrics.h"
#include "util/files.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::store {

namespace {

constexpr std::string_view snapshot_magic = "pcstore\n";
constexpr uint32_t snapshot_version = 2;
constexpr uint32_t oldest_snapshot_version = 1;   // no hash records
constexpr char entry_tag = 'E';
constexpr char hash_tag = 'H';
constexpr char end_tag = 'Z';

bool is_live(int64_t expires_at_ms, int64_t now) { return expires_at_ms == 0 || expires_at_ms > now; }

/* A key's place in the order of eviction: the nearest expiry first, and a
 * key that never expires last. */
int64_t eviction_rank(int64_t expires_at_ms) {
    return expires_at_ms == 0 ? std::numeric_limits<int64_t>::max() : expires_at_ms;
}

// What a key and a field of a hash take besides the bytes of their names
// and values, on glibc x86-64: a key, the hash table's node (the name's
// std::string, the Value, the cached hash, 128 bytes with malloc's
// header), its bucket, its node in the expiry index (64), and the heap
// blocks of its name and string value (16 each beyond their bytes); a
// field, the tree's node (112) and the heap blocks of its name and value.
// memory_store_test holds the count to what the heap grows by.
constexpr uint64_t key_overhead = 240;
constexpr uint64_t field_overhead = 144;

// What one lock of a shard covers, at most, in a sweep, a save or scan().
constexpr size_t batch_keys = 256;
constexpr uint64_t batch_bytes = 64 * 1024;

// CRC-32 as in zlib and Ethernet: enough to catch a torn or scribbled
// entry, which is all the snapshot needs (it guards against accidents, not
// against someone forging a file).
constexpr std::array<uint32_t, 256> make_crc_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t index = 0; index < table.size(); ++index) {
        uint32_t crc = index;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        table[index] = crc;
    }
    return table;
}

constexpr std::array<uint32_t, 256> crc_table = make_crc_table();

uint32_t crc32(std::string_view bytes) {
    uint32_t crc = 0xFFFFFFFFu;
    for (const unsigned char byte : bytes) crc = crc_table[(crc ^ byte) & 0xFFu] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

void put_u32(std::string& out, uint32_t number) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((number >> shift) & 0xFFu);
}

void put_u64(std::string& out, uint64_t number) {
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((number >> shift) & 0xFFu);
}

void put_header(std::string& out) {
    out += snapshot_magic;
    put_u32(out, snapshot_version);
}

// Lengths are 32-bit: keys are short and values are counters and lists of
// timestamps, nowhere near 4 GiB.
void put_entry(std::string& out, const Entry& entry) {
    const size_t start = out.size();
    out += entry_tag;
    put_u32(out, static_cast<uint32_t>(entry.key.size()));
    put_u32(out, static_cast<uint32_t>(entry.value.size()));
    put_u64(out, static_cast<uint64_t>(entry.expires_at_ms));
    out += entry.key;
    out += entry.value;
    put_u32(out, crc32(std::string_view(out).substr(start)));
}

void put_hash(std::string& out, const HashEntry& hash) {
    const size_t start = out.size();
    out += hash_tag;
    put_u32(out, static_cast<uint32_t>(hash.key.size()));
    put_u32(out, static_cast<uint32_t>(hash.fields.size()));
    put_u64(out, static_cast<uint64_t>(hash.expires_at_ms));
    out += hash.key;
    for (const auto& [field, value] : hash.fields) {
        put_u32(out, static_cast<uint32_t>(field.size()));
        put_u32(out, static_cast<uint32_t>(value.size()));
        out += field;
        out += value;
    }
    put_u32(out, crc32(std::string_view(out).substr(start)));
}

void put_end(std::string& out, uint64_t entry_count) {
    const size_t start = out.size();
    out += end_tag;
    put_u64(out, entry_count);
    put_u32(out, crc32(std::string_view(out).substr(start)));
}

/* Reads a snapshot front to back; every read fails, taking nothing, when
 * the bytes asked for run past the end. */
class Reader {
public:
    explicit Reader(std::string_view bytes) : bytes_(bytes) {}

    size_t offset() const { return offset_; }
    bool at_end() const { return offset_ == bytes_.size(); }

    bool take(size_t count, std::string_view& out) {
        if (count > bytes_.size() - offset_) return false;
        out = bytes_.substr(offset_, count);
        offset_ += count;
        return true;
    }

    bool u32(uint32_t& out) {
        std::string_view bytes;
        if (!take(4, bytes)) return false;
        out = 0;
        for (const unsigned char byte : bytes) out = (out << 8) | byte;
        return true;
    }

    bool u64(uint64_t& out) {
        std::string_view bytes;
        if (!take(8, bytes)) return false;
        out = 0;
        for (const unsigned char byte : bytes) out = (out << 8) | byte;
        return true;
    }

private:
    std::string_view bytes_;
    size_t offset_ = 0;
};

struct Decoded {
    std::vector<Entry> entries;         // every intact record before any damage
    std::vector<HashEntry> hashes;
    std::string problem;                // "" when the file is whole
    size_t problem_offset = 0;
};

Decoded decode(std::string_view bytes) {
    Decoded decoded;
    Reader in(bytes);
    const auto damaged = [&decoded](size_t offset, std::string problem) {
        decoded.problem = std::move(problem);
        decoded.problem_offset = offset;
        return std::move(decoded);
    };

    std::string_view magic;
    if (!in.take(snapshot_magic.size(), magic) || magic != snapshot_magic) {
        return damaged(0, "not a Portcullis memory store snapshot");
    }
    uint32_t version = 0;
    if (!in.u32(version)) return damaged(magic.size(), "the header is cut short");
    if (version < oldest_snapshot_version || version > snapshot_version) {
        return damaged(magic.size(), "snapshot version " + std::to_string(version) + " is not supported");
    }

    for (;;) {
        const size_t start = in.offset();
        std::string_view tag;
        if (!in.take(1, tag)) return damaged(start, "the file ends without its end record");
        if (tag[0] == end_tag) {
            uint64_t count = 0;
            uint32_t crc = 0;
            if (!in.u64(count) || !in.u32(crc)) return damaged(start, "the end record is cut short");
            if (crc != crc32(bytes.substr(start, in.offset() - 4 - start))) {
                return damaged(start, "the end record's checksum does not match");
            }
            const size_t held = decoded.entries.size() + decoded.hashes.size();
            if (count != held) {
                return damaged(start, "the end record counts " + std::to_string(count) + " entries, the file holds " +
                                          std::to_string(held));
            }
            if (!in.at_end()) return damaged(in.offset(), "bytes follow the end record");
            return decoded;
        }
        if (tag[0] == hash_tag && version >= 2) {
            uint32_t key_size = 0;
            uint32_t field_count = 0;
            uint64_t expires_at_ms = 0;
            std::string_view key;
            if (!in.u32(key_size) || !in.u32(field_count) || !in.u64(expires_at_ms) || !in.take(key_size, key)) {
                return damaged(start, "a hash runs past the end of the file");
            }
            HashEntry hash{std::string(key), {}, static_cast<int64_t>(expires_at_ms)};
            for (uint32_t index = 0; index < field_count; ++index) {
                uint32_t field_size = 0;
                uint32_t value_size = 0;
                std::string_view field;
                std::string_view value;
                if (!in.u32(field_size) || !in.u32(value_size) || !in.take(field_size, field) ||
                    !in.take(value_size, value)) {
                    return damaged(start, "a hash runs past the end of the file");
                }
                hash.fields.insert_or_assign(std::string(field), std::string(value));
            }
            uint32_t crc = 0;
            if (!in.u32(crc)) return damaged(start, "a hash runs past the end of the file");
            if (crc != crc32(bytes.substr(start, in.offset() - 4 - start))) {
                return damaged(start, "a hash's checksum does not match");
            }
            decoded.hashes.push_back(std::move(hash));
            continue;
        }
        if (tag[0] != entry_tag) return damaged(start, "unknown record type");

        uint32_t key_size = 0;
        uint32_t value_size = 0;
        uint64_t expires_at_ms = 0;
        std::string_view key;
        std::string_view value;
        uint32_t crc = 0;
        if (!in.u32(key_size) || !in.u32(value_size) || !in.u64(expires_at_ms) || !in.take(key_size, key) ||
            !in.take(value_size, value) || !in.u32(crc)) {
            return damaged(start, "an entry runs past the end of the file");
        }
        if (crc != crc32(bytes.substr(start, in.offset() - 4 - start))) {
            return damaged(start, "an entry's checksum does not match");
        }
        decoded.entries.push_back({std::string(key), std::string(value), static_cast<int64_t>(expires_at_ms)});
    }
}

std::string directory_of(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

/* An open file descriptor, closed when it goes out of scope unless
 * close() already did (and reported how that went). */
class Descriptor {
public:
    explicit Descriptor(int fd) : fd_(fd) {}
    ~Descriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;

    int get() const { return fd_; }
    bool close() {
        const int fd = fd_;
        fd_ = -1;
        return ::close(fd) == 0;
    }

private:
    int fd_;
};

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t count = ::write(fd, bytes.data(), bytes.size());
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) return false;
        bytes.remove_prefix(static_cast<size_t>(count));
    }
    return true;
}

/* Puts BYTES at PATH so that a crash at any point leaves either the old
 * file or the new one, mode 0600.  Returns "" or what went wrong. */
std::string replace_file(const std::string& path, std::string_view bytes) {
    const std::string directory = directory_of(path);
    std::string temporary = path + ".tmp.XXXXXX";
    Descriptor file(mkostemp(temporary.data(), O_CLOEXEC));
    if (file.get() < 0) return errno_message("cannot create a temporary file in " + in_quotes(directory));

    // Until the rename, a failure leaves nothing behind.
    const auto abandon = [&temporary](const std::string& step) {
        const int error_number = errno;
        ::unlink(temporary.c_str());
        return errno_message(step + " " + in_quotes(temporary), error_number);
    };
    // mkostemp's mode is subject to the umask; the state is nobody else's.
    if (fchmod(file.get(), S_IRUSR | S_IWUSR) != 0) return abandon("cannot set the mode of");
    if (!write_all(file.get(), bytes)) return abandon("cannot write");
    if (fsync(file.get()) != 0) return abandon("cannot sync");
    if (!file.close()) return abandon("cannot close");
    if (std::rename(temporary.c_str(), path.c_str()) != 0) return abandon("cannot rename");

    // The rename itself is durable only once the directory is synced.
    Descriptor parent(open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent.get() < 0 || fsync(parent.get()) != 0) {
        return errno_message("cannot sync the directory " + in_quotes(directory));
    }
    return "";
}

}  // namespace

MemoryStore::MemoryStore(std::string snapshot_path, uint64_t memory_limit, std::function<int64_t()> clock,
                         bool read_only)
    : path_(std::move(snapshot_path)), memory_limit_(memory_limit), clock_(std::move(clock)), read_only_(read_only) {
    if (path_.empty()) return;
    load();
    // A snapshot saved under a larger limit.
    make_room();
}

MemoryStore::MemoryStore(std::string snapshot_path, uint64_t memory_limit, std::function<int64_t()> clock,
                         Millis snapshot_interval)
    : MemoryStore(std::move(snapshot_path), memory_limit, std::move(clock), false) {
    // A zero interval would spin.
    const Millis interval = std::max(snapshot_interval, Millis(1));
    maintainer_ = std::thread([this, interval] { maintain(interval); });
}

std::unique_ptr<MemoryStore> MemoryStore::open_read_only(std::string snapshot_path,
                                                         std::function<int64_t()> clock) {
    // Not make_unique: this constructor is private.  It holds what the
    // daemon's store held, so it needs no limit of its own.
    return std::unique_ptr<MemoryStore>(new MemoryStore(std::move(snapshot_path),
                                                        std::numeric_limits<uint64_t>::max(), std::move(clock), true));
}

MemoryStore::~MemoryStore() {
    if (maintainer_.joinable()) {
        {
            const std::lock_guard lock(stop_mutex_);
            stopping_ = true;
        }
        stop_signal_.notify_one();
        maintainer_.join();
    }
    report_evictions();
    write_if_changed();
}

MemoryStore::Shard& MemoryStore::shard_for(std::string_view key) {
    // Each shard's map hashes its keys with the same std::hash, so the
    // shard comes from the top bits of a remixed hash: were it the hash's
    // low bits, all keys of a shard would share them and crowd the map's
    // buckets.
    static_assert(std::has_single_bit(shard_count));
    constexpr int shard_bits = std::bit_width(shard_count - 1);
    const uint64_t hash = static_cast<uint64_t>(std::hash<std::string_view>{}(key)) * 0x9E3779B97F4A7C15u;
    return shards_[hash >> (64 - shard_bits)];
}

namespace {

/* As a failing Lua script is an error reply from Redis. */
StoreError script_failed(std::string_view name, std::string_view why) {
    return StoreError("memory store: script " + std::string(name) + " failed: " + std::string(why));
}

}  // namespace

void MemoryStore::run(const Script& script, std::string_view key, int64_t now_ms, std::span<const std::string> args,
                      Done done) {
    answer(done, [&] { return apply(script, key, now_ms, args); });
}

void MemoryStore::run(const HashScript& script, std::string_view key, int64_t now_ms,
                      std::span<const std::string> args, Done done) {
    answer(done, [&] { return apply(script, key, now_ms, args); });
}

/* DONE with what APPLY gives or why it threw, once the key's lock is let
 * go and the store is back within its limit. */
template <typename Apply>
void MemoryStore::answer(const Done& done, Apply apply) {
    StoreResult result;
    try {
        result.values = apply();
    } catch (const StoreError& error) {
        result.error = error.what();
        metrics::count_store_error(error_kind::script);
    }
    make_room();
    done(std::move(result));
}

void MemoryStore::place(Shard& shard, Entries::iterator found, std::string name, Value value) {
    if (found == shard.entries.end()) {
        found = shard.entries.emplace(std::move(name), std::move(value)).first;
    } else {
        unindex(shard, found);
        found->second = std::move(value);
    }
    index(shard, found);
}

void MemoryStore::remove(Shard& shard, Entries::iterator found) {
    unindex(shard, found);
    shard.entries.erase(found);
}

void MemoryStore::index(Shard& shard, Entries::iterator found) {
    Value& value = found->second;
    if (const auto* fields = std::get_if<Fields>(&value.data)) {
        value.footprint = value.hash_bytes + fields->size() * field_overhead;
    } else {
        value.footprint = std::get<std::string>(value.data).size();
    }
    value.footprint += found->first.size() + key_overhead;
    memory_used_ += value.footprint;
    shard.by_expiry.emplace(eviction_rank(value.expires_at_ms), found->first);
}

void MemoryStore::unindex(Shard& shard, Entries::iterator found) {
    memory_used_ -= found->second.footprint;
    shard.by_expiry.erase({eviction_rank(found->second.expires_at_ms), found->first});
}

void MemoryStore::make_room() {
    if (memory_used_.load() <= memory_limit_) return;
    const std::unique_lock evicting(eviction_mutex_, std::try_to_lock);
    if (!evicting.owns_lock()) return;
    while (memory_used_.load() > memory_limit_ && evict_nearest()) {
    }
}

/* Removes the key nearest its expiry of all shards; false when there is
 * none.  No two locks are held at once: a key that changes between the
 * look and the removal makes the one removed one of the nearest, no worse. */
bool MemoryStore::evict_nearest() {
    Shard* nearest = nullptr;
    int64_t nearest_rank = 0;
    for (Shard& shard : shards_) {
        const std::lock_guard lock(shard.mutex);
        if (shard.by_expiry.empty()) continue;
        const int64_t rank = shard.by_expiry.begin()->first;
        if (!nearest || rank < nearest_rank) {
            nearest = &shard;
            nearest_rank = rank;
        }
    }
    if (!nearest) return false;
    const std::lock_guard lock(nearest->mutex);
    if (nearest->by_expiry.empty()) return true;   // emptied meanwhile: look again
    const auto found = nearest->entries.find(std::string(nearest->by_expiry.begin()->second));
    // An expired key was absent already: dropping it is no eviction.
    if (is_live(found->second.expires_at_ms, clock_())) {
        ++evicted_;
        ++changes_;
        metrics::count_store_eviction();
    }
    remove(*nearest, found);
    return true;
}

std::vector<std::string> MemoryStore::apply(const Script& script, std::string_view key, int64_t now_ms,
                                            std::span<const std::string> args) {
    Shard& shard = shard_for(key);
    std::string name(key);
    const std::lock_guard lock(shard.mutex);
    const auto found = shard.entries.find(name);
    const bool live = found != shard.entries.end() && is_live(found->second.expires_at_ms, now_ms);

    Record record;
    if (live) {
        const auto* value = std::get_if<std::string>(&found->second.data);
        if (!value) throw script_failed(script.name, "WRONGTYPE the key holds a hash");
        record.value = *value;
        record.expires_at_ms = found->second.expires_at_ms;
    }
    std::vector<std::string> result;
    try {
        result = script.apply(record, now_ms, args);
    } catch (const std::exception& error) {
        // The key is left as it was.
        throw script_failed(script.name, error.what());
    }

    if (!record.value) {
        if (found != shard.entries.end()) remove(shard, found);
        if (live) ++changes_;
    } else if (!live || std::get<std::string>(found->second.data) != *record.value ||
               found->second.expires_at_ms != record.expires_at_ms) {
        place(shard, found, std::move(name), Value{std::move(*record.value), record.expires_at_ms});
        ++changes_;
    }
    return result;
}

std::vector<std::string> MemoryStore::apply(const HashScript& script, std::string_view key, int64_t now_ms,
                                            std::span<const std::string> args) {
    Shard& shard = shard_for(key);
    std::string name(key);
    const std::lock_guard lock(shard.mutex);
    auto found = shard.entries.find(name);
    HashRecord record;
    if (found != shard.entries.end() && is_live(found->second.expires_at_ms, now_ms)) {
        auto* fields = std::get_if<Fields>(&found->second.data);
        if (!fields) throw script_failed(script.name, "WRONGTYPE the key holds a string");
        // Moved, not copied: a network's hash may hold thousands of fields.
        record = HashRecord(std::move(*fields), found->second.expires_at_ms, found->second.hash_bytes);
    }
    std::vector<std::string> result;
    std::string failure;
    try {
        result = script.apply(record, now_ms, args);
    } catch (const std::exception& error) {
        failure = error.what();
    }

    const bool changed = record.changed();
    if (changed) ++changes_;
    const int64_t expires_at_ms = record.expires_at_ms();
    const size_t bytes = record.bytes();
    Fields fields = std::move(record).release();
    if (fields.empty()) {
        if (found != shard.entries.end()) remove(shard, found);
    } else if (!changed) {
        // Only read: its expiry and its count stand.
        std::get<Fields>(found->second.data) = std::move(fields);
    } else {
        place(shard, found, std::move(name), Value{std::move(fields), expires_at_ms, bytes});
    }
    if (!failure.empty()) throw script_failed(script.name, failure);
    return result;
}

MemoryStore::Live MemoryStore::next_batch(Shard& shard, std::string_view key_prefix, int64_t now, Cursor& cursor) {
    Live live;
    const std::lock_guard lock(shard.mutex);
    auto at = cursor.next ? shard.by_expiry.lower_bound({cursor.next->first, cursor.next->second})
                          : shard.by_expiry.begin();
    uint64_t bytes = 0;
    for (size_t looked = 0; at != shard.by_expiry.end() && looked < batch_keys && bytes < batch_bytes;
         ++at, ++looked) {
        const auto& [key, value] = *shard.entries.find(std::string(at->second));
        if (!key.starts_with(key_prefix) || !is_live(value.expires_at_ms, now)) continue;
        bytes += value.footprint;
        if (const auto* text = std::get_if<std::string>(&value.data)) {
            live.strings.push_back({key, *text, value.expires_at_ms});
        } else {
            live.hashes.push_back({key, std::get<Fields>(value.data), value.expires_at_ms});
        }
    }
    if (at == shard.by_expiry.end()) cursor.done = true;
    else cursor.next = std::pair(at->first, std::string(at->second));
    return live;
}

/* VISIT with every batch of live keys starting with KEY_PREFIX, each
 * copied under its shard's lock and visited after it is let go (VISIT
 * may be slow, or call back into the store). */
template <typename Visit>
void MemoryStore::walk(std::string_view key_prefix, int64_t now, Visit visit) {
    for (Shard& shard : shards_) {
        for (Cursor cursor; !cursor.done;) visit(next_batch(shard, key_prefix, now, cursor));
    }
}

void MemoryStore::scan(std::string_view key_prefix, const std::function<void(const Entry&)>& visit) {
    walk(key_prefix, clock_(), [&visit](const Live& live) {
        for (const Entry& entry : live.strings) visit(entry);
    });
}

void MemoryStore::scan_hashes(std::string_view key_prefix, const std::function<void(const HashEntry&)>& visit) {
    walk(key_prefix, clock_(), [&visit](const Live& live) {
        for (const HashEntry& hash : live.hashes) visit(hash);
    });
}

bool MemoryStore::erase(std::string_view key) {
    Shard& shard = shard_for(key);
    const std::lock_guard lock(shard.mutex);
    const auto found = shard.entries.find(std::string(key));
    if (found == shard.entries.end()) return false;
    // Like Redis DEL, an expired key did not exist.
    const bool live = is_live(found->second.expires_at_ms, clock_());
    remove(shard, found);
    if (live) ++changes_;
    return live;
}

void MemoryStore::ping() {
    if (!read_only_) check_snapshot_directory(path_);
}

std::string MemoryStore::describe() const {
    return path_.empty() ? "memory (no snapshot)" : "memory (snapshot " + path_ + ")";
}

void MemoryStore::load() {
    // No size limit: the file is ours, and its size is the state's.
    const FileText file = read_text_file(path_, std::numeric_limits<size_t>::max());
    if (!file.ok) {
        if (file.error_number == ENOENT) {
            log::info("memory store: no snapshot " + in_quotes(path_) + " yet; starting empty");
        } else {
            log::error("memory store: " + file.error + "; starting empty");
        }
        return;
    }

    const Decoded decoded = decode(file.text);
    const int64_t now = clock_();
    size_t expired = 0;
    // No locks: the constructor runs before any other thread sees the store.
    const auto keep = [&](const std::string& key, Value value) {
        if (!is_live(value.expires_at_ms, now)) {
            ++expired;
            return;
        }
        Shard& shard = shard_for(key);
        place(shard, shard.entries.find(key), key, std::move(value));
    };
    for (const Entry& entry : decoded.entries) keep(entry.key, Value{entry.value, entry.expires_at_ms});
    for (const HashEntry& hash : decoded.hashes) {
        keep(hash.key, Value{hash.fields, hash.expires_at_ms, HashRecord::bytes_of(hash.fields)});
    }
    const size_t read = decoded.entries.size() + decoded.hashes.size();
    const size_t kept = read - expired;
    if (!decoded.problem.empty()) {
        log::error("memory store: snapshot " + in_quotes(path_) + " is damaged at byte " +
                   std::to_string(decoded.problem_offset) + " (" + decoded.problem + "); read the " +
                   std::to_string(read) + " entries before it");
    }
    log::info("memory store: loaded snapshot " + in_quotes(path_) + " (keys: " + std::to_string(kept) + " live, " +
              std::to_string(expired) + " expired)");
}

void MemoryStore::maintain(Millis interval) {
    std::unique_lock lock(stop_mutex_);
    while (!stop_signal_.wait_for(lock, interval, [this] { return stopping_; })) {
        lock.unlock();
        sweep();
        report_evictions();
        write_if_changed();
        lock.lock();
    }
}

void MemoryStore::sweep() {
    // Not a change: the snapshot holds only live keys, and loading drops
    // any that expired since.  The expired keys are the first of each
    // shard's index.
    const int64_t now = clock_();
    for (Shard& shard : shards_) {
        for (bool more = true; more;) {
            const std::lock_guard lock(shard.mutex);
            size_t dropped = 0;
            for (; dropped < batch_keys && !shard.by_expiry.empty(); ++dropped) {
                const auto found = shard.entries.find(std::string(shard.by_expiry.begin()->second));
                if (is_live(found->second.expires_at_ms, now)) break;
                remove(shard, found);
            }
            more = dropped == batch_keys;
        }
    }
}

void MemoryStore::report_evictions() {
    const uint64_t used = memory_used_.load();
    metrics::set_store_memory(used);
    const uint64_t evicted = evicted_.exchange(0);
    if (evicted == 0) return;
    log::warning("memory store: store.memory_limit (" + std::to_string(memory_limit_) + " bytes) reached: evicted " +
                 std::to_string(evicted) + " keys nearest their expiry since the last report; " +
                 std::to_string(used) + " bytes in use");
}

bool MemoryStore::write_snapshot() {
    if (path_.empty() || read_only_) return false;
    const std::lock_guard lock(write_mutex_);
    return write_locked();
}

void MemoryStore::write_if_changed() {
    if (path_.empty() || read_only_) return;
    const std::lock_guard lock(write_mutex_);
    if (changes_.load() != saved_changes_) write_locked();
}

bool MemoryStore::write_locked() {
    // Read first: a change made while we copy bumps it past what we record,
    // so the next interval saves again.
    const uint64_t changes = changes_.load();
    const int64_t now = clock_();
    std::string image;
    put_header(image);
    uint64_t count = 0;
    walk("", now, [&](const Live& live) {
        for (const Entry& entry : live.strings) put_entry(image, entry);
        for (const HashEntry& hash : live.hashes) put_hash(image, hash);
        count += live.strings.size() + live.hashes.size();
    });
    put_end(image, count);

    const std::string problem = replace_file(path_, image);
    if (problem.empty()) {
        saved_changes_ = changes;
        if (!last_failure_.empty()) log::info("memory store: snapshot " + in_quotes(path_) + " saved again");
        last_failure_.clear();
        return true;
    }
    const std::string message = "memory store: cannot save snapshot " + in_quotes(path_) + ": " + problem;
    if (message != last_failure_) log::error(message);
    last_failure_ = message;
    return false;
}

void check_snapshot_directory(const std::string& snapshot_path) {
    if (snapshot_path.empty()) return;
    const std::string directory = directory_of(snapshot_path);
    const std::string problem =
        "cannot save snapshot " + in_quotes(snapshot_path) + ": directory " + in_quotes(directory);
    struct stat status {};
    if (stat(directory.c_str(), &status) != 0) throw StoreError(errno_message(problem));
    if (!S_ISDIR(status.st_mode)) throw StoreError(problem + " is not a directory");
    // Creating the temporary file takes write and search permission.
    if (access(directory.c_str(), W_OK | X_OK) != 0) throw StoreError(errno_message(problem));
}

}  // namespace portcullis::store
