/*
 * resolver.cc: one libunbound context for every event loop, lookups with
 * a deadline.
 *
 * Why one context: each costs about 2.4 MB (hash tables sized up front,
 * 100 preallocated 16 KB blocks) and a thread, and a host with many cores
 * runs as many loops.
 *
 * Ownership of a question in flight: Shared registers each question with
 * the loop and LoopContext that asked, and libunbound's callback argument
 * is that entry.  The callback runs on whichever loop read the answer
 * (ub_process()); it hands the answer to the asking loop, where it ends
 * the LoopContext's Query and goes to every lookup() waiting for it (its
 * Waiters).  The asking loop and LoopContext may be gone by then: the
 * answer is dropped.
 * One question per name and type is on its way at a time on a loop: a
 * lookup() of a name already asked becomes one more Waiter, so a burst
 * of sessions asking for one new name costs one query.  Each Waiter has
 * its own deadline; there it is answered "timeout" and leaves.  When
 * the last one leaves, the Query is cancelled: if libunbound cancelled
 * it, its callback will never run and the Query ends now; if not (a loop
 * read the answer already), the answer is on its way and ends the Query,
 * with no one left to give it to.  A callback that never comes
 * (libunbound does not always call back, e.g. for some bogus answers)
 * cannot hold up a session: the deadlines answer for it.
 *
 * Answers are kept per loop for their TTL.  libunbound has a cache of its
 * own, but in its threaded mode even a cached answer costs a hand-off to
 * its thread and back (two wake-ups, ~16 KB while out); the same few
 * names (a sender's SPF and DMARC records, a signer's key) are asked for
 * every message.  Only found and not-found answers are kept, never a
 * temperror, and a TTL of 0 keeps nothing.
 */
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <unbound.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "metrics/metrics.h"
#include "util/log.h"
#include "util/text.h"

namespace portcullis::dns {

using Clock = std::chrono::steady_clock;

namespace {

constexpr int kRcodeNxdomain = 3;
constexpr size_t kMaxCachedAnswers = 1024;              // per loop
// A domain's owner chooses its answers' size: up to 64 kB each, so 1024
// of them could hold 64 MB on every loop.  Real answers (SPF, DKIM keys,
// DMARC, DNS lists) are under 4 kB.
constexpr size_t kMaxCachedAnswerBytes = 8 * 1024;      // a bigger one is not kept
constexpr size_t kMaxCachedBytes = 1024 * 1024;         // per loop
constexpr std::chrono::seconds kMaxCacheTtl{3600};      // libunbound's own cap is a day

Answer temperror(std::string error) {
    Answer answer;
    answer.error = std::move(error);
    return answer;
}

std::string rcode_name(int rcode) {
    switch (rcode) {
        case 1: return "FORMERR";
        case 2: return "SERVFAIL";
        case 4: return "NOTIMP";
        case 5: return "REFUSED";
        default: return "rcode " + std::to_string(rcode);
    }
}

std::string address_text(int family, const char* data) {
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(family, data, text, sizeof text);
    return text;
}

/* TXT rdata: character-strings, each a length byte and that many bytes,
 * read as one text (RFC 7208 3.3); a string that runs past the end is cut. */
std::string txt_text(const char* data, int length) {
    std::string text;
    int at = 0;
    while (at < length) {
        const int size = static_cast<unsigned char>(data[at]);
        const int available = std::min(size, length - at - 1);
        text.append(data + at + 1, static_cast<size_t>(available));
        at += 1 + size;
    }
    return text;
}

bool is_host_label_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* An uncompressed domain name in wire format from DATA[AT] (libunbound
 * hands rdata names uncompressed), as "mx.example.com"; "" when it runs
 * past the end, or has a byte no host name has (a '.' inside a label
 * would change what the name means). */
std::string name_text(const char* data, int length, int at) {
    std::string name;
    while (at < length) {
        const int size = static_cast<unsigned char>(data[at]);
        if (size == 0) return name;
        if (size > 63 || at + 1 + size > length) return "";
        if (!name.empty()) name += '.';
        for (int i = at + 1; i <= at + size; ++i) {
            if (!is_host_label_byte(static_cast<unsigned char>(data[i]))) return "";
            name += data[i];
        }
        at += 1 + size;
    }
    return "";
}

void add_name(std::vector<std::string>& records, std::string name) {
    if (!name.empty()) records.push_back(std::move(name));
}

/* The records of RESULT whose data has the shape of its type. */
std::vector<std::string> records_of(const ub_result& result) {
    std::vector<std::string> records;
    for (int i = 0; result.data[i] != nullptr; ++i) {
        const int length = result.len[i];
        switch (static_cast<RecordType>(result.qtype)) {
            case RecordType::a:
                if (length == 4) records.push_back(address_text(AF_INET, result.data[i]));
                break;
            case RecordType::aaaa:
                if (length == 16) records.push_back(address_text(AF_INET6, result.data[i]));
                break;
            case RecordType::txt:
                records.push_back(txt_text(result.data[i], length));
                break;
            case RecordType::mx:
                add_name(records, name_text(result.data[i], length, 2));   // after the preference
                break;
            case RecordType::ptr:
                add_name(records, name_text(result.data[i], length, 0));
                break;
        }
    }
    return records;
}

Answer answer_of(int error, const ub_result* result) {
    if (error != 0) return temperror(ub_strerror(error));
    if (result->bogus) {
        return temperror(std::string("bogus (") + (result->why_bogus ? result->why_bogus : "DNSSEC failed") + ")");
    }
    Answer answer;
    if (result->rcode == kRcodeNxdomain) {
        answer.status = Answer::Status::not_found;
        return answer;
    }
    if (result->rcode != 0) return temperror(rcode_name(result->rcode));
    answer.records = records_of(*result);
    answer.status = answer.records.empty() ? Answer::Status::not_found : Answer::Status::found;
    return answer;
}

/* "UB_SYNTAX" and friends say little to an administrator. */
void check(int status, const std::string& what) {
    if (status != 0) throw ResolverError(what + ": " + ub_strerror(status));
}

using Context = std::unique_ptr<ub_ctx, void (*)(ub_ctx*)>;

/* A libunbound context with SERVERS; DESCRIPTION says which.  Threads,
 * not libunbound's default forked process, then the servers: all before
 * the first query, after which libunbound takes no settings. */
Context make_context(const std::vector<std::string>& servers, std::string* description) {
    Context context(ub_ctx_create(), ub_ctx_delete);
    if (!context) throw ResolverError("dns.resolver: cannot create a libunbound context");
    check(ub_ctx_async(context.get(), 1), "dns: ub_ctx_async");
    // One libunbound thread per context: a cache needs one slab (slabs
    // spread lock contention between threads), not the default four,
    // whose hash tables are allocated up front in every context.
    for (const char* option : {"msg-cache-slabs:", "rrset-cache-slabs:", "infra-cache-slabs:", "key-cache-slabs:"}) {
        check(ub_ctx_set_option(context.get(), option, "1"), std::string("dns: ") + option);
    }
    if (servers.size() == 1 && equals_nocase(servers.front(), "system")) {
        check(ub_ctx_resolvconf(context.get(), nullptr), "dns.resolver \"system\": /etc/resolv.conf");
        check(ub_ctx_hosts(context.get(), nullptr), "dns.resolver \"system\": /etc/hosts");
        if (description) *description = "system resolver";
        return context;
    }
    if (description) *description = "forwarders";
    // libunbound talks only to the forwarders: a family none of them has
    // is never used, and its table of source ports (0.25 MB) is left out.
    const auto is_ip6 = [](const std::string& server) { return server.find(':') != std::string::npos; };
    if (!servers.empty() && std::ranges::none_of(servers, is_ip6)) {
        check(ub_ctx_set_option(context.get(), "do-ip6:", "no"), "dns: do-ip6");
    }
    if (!servers.empty() && std::ranges::all_of(servers, is_ip6)) {
        check(ub_ctx_set_option(context.get(), "do-ip4:", "no"), "dns: do-ip4");
    }
    for (const auto& server : servers) {
        check(ub_ctx_set_fwd(context.get(), server.c_str()), "dns.resolver " + in_quotes(server));
        if (description) *description += ' ' + server;
    }
    return context;
}

}  // namespace

std::string_view status_name(Answer::Status status) {
    switch (status) {
        case Answer::Status::found: return "found";
        case Answer::Status::not_found: return "not-found";
        case Answer::Status::temperror: return "temperror";
    }
    return "?";
}

std::string_view type_name(RecordType type) {
    switch (type) {
        case RecordType::a: return "A";
        case RecordType::aaaa: return "AAAA";
        case RecordType::mx: return "MX";
        case RecordType::ptr: return "PTR";
        case RecordType::txt: return "TXT";
    }
    return "?";
}

/* The one libunbound context, shared by every loop.  libunbound's calls
 * may come from any thread, and its callback runs on whichever loop
 * called ub_process(); so each question is registered here with the loop
 * and the LoopContext that asked, and its answer is handed to them. */
class Resolver::Shared {
public:
    /* Who asked a question: a LoopContext on a loop. */
    struct Asker {
        EventLoop* loop = nullptr;   // compared with EventLoop::current(), never followed
        LoopHandle handle;
        std::weak_ptr<LoopContext> context;
    };

    Shared(const std::vector<std::string>& servers, std::string* description)
        : context_(make_context(servers, description)), fd_(ub_fd(context_.get())) {
        if (fd_ < 0) throw ResolverError("dns: libunbound gives no file descriptor");
    }

    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;

    /* libunbound's answers are read from here. */
    int fd() const { return fd_; }

    /* Asks NAME's TYPE for ASKER: 0 and the question's number in SERIAL,
     * or libunbound's error. */
    int ask(const std::string& name, RecordType type, Asker asker, uint64_t& serial) {
        std::unique_lock lock(mutex_);
        serial = ++last_serial_;
        Question& question = questions_.try_emplace(serial, *this, serial, std::move(asker)).first->second;
        lock.unlock();
        // libunbound sets the id before the question can be answered.
        const int status = ub_resolve_async(context_.get(), name.c_str(), static_cast<int>(type), 1 /* IN */,
                                            &question, on_answer, &question.id);
        if (status != 0) {
            lock.lock();
            questions_.erase(serial);
        }
        return status;
    }

    /* Gives question SERIAL up: true when no answer will come for it;
     * false when its answer was read already and is on its way. */
    bool cancel(uint64_t serial) {
        int id;
        {
            const std::lock_guard lock(mutex_);
            const auto found = questions_.find(serial);
            if (found == questions_.end()) return false;
            id = found->second.id;
        }
        // Not there for libunbound: another loop has just read its answer.
        if (ub_cancel(context_.get(), id) != 0) return false;
        const std::lock_guard lock(mutex_);
        questions_.erase(serial);
        return true;
    }

    /* Reads the answers that came, on the loop calling it: libunbound's
     * status, 0 when they could be read. */
    int process() { return ub_process(context_.get()); }

private:
    struct Question {
        Question(Shared& owner, uint64_t number, Asker who) : shared(owner), serial(number), asker(std::move(who)) {}
        Shared& shared;
        uint64_t serial;
        Asker asker;
        int id = 0;   // libunbound's
    };

    static void on_answer(void* argument, int error, ub_result* result) {
        Question& question = *static_cast<Question*>(argument);
        Answer answer = answer_of(error, result);
        const int ttl = error == 0 ? result->ttl : 0;
        ub_resolve_free(result);
        Shared& shared = question.shared;
        const uint64_t serial = question.serial;
        Asker asker;
        {
            const std::lock_guard lock(shared.mutex_);
            asker = std::move(question.asker);
            shared.questions_.erase(serial);
        }
        deliver(asker, serial, std::move(answer), ttl);
    }

    static void deliver(const Asker& asker, uint64_t serial, Answer answer, int ttl);

    std::mutex mutex_;   // guards the two below
    uint64_t last_serial_ = 0;
    std::unordered_map<uint64_t, Question> questions_;   // asked, not answered, not cancelled
    // After questions_, so it goes first: no callback runs once it is gone.
    Context context_;
    int fd_;
};

/* The lookups of one loop: their deadlines, the questions they wait for,
 * and the answers kept. */
class Resolver::LoopContext final : public Watcher, public std::enable_shared_from_this<LoopContext> {
public:
    LoopContext(EventLoop& loop, std::shared_ptr<Shared> shared, Millis timeout)
        : loop_(loop), timeout_(timeout), shared_(std::move(shared)) {
        try {
            // Every loop watches the one socket; the kernel wakes one of them.
            loop_.watch(shared_->fd(), EPOLLIN | EPOLLEXCLUSIVE, *this);
            watching_ = true;
        } catch (const std::exception& error) {
            broken_ = error.what();
        }
    }

    ~LoopContext() {
        for (auto& [serial, query] : queries_) {
            // A question no one waits for was cancelled already, or could not be.
            if (!query->waiters.empty()) shared_->cancel(serial);
        }
        queries_.clear();
        if (watching_) loop_.unwatch(shared_->fd(), *this);
    }

    LoopContext(const LoopContext&) = delete;
    LoopContext& operator=(const LoopContext&) = delete;

    void lookup(std::string_view name, RecordType type, Done done) {
        if (!watching_) return fail_later(std::move(done), broken_);
        std::string key = cache_key(name, type);
        if (const Answer* cached = cached_answer(key)) {
            loop_.defer([done = std::move(done), answer = *cached]() mutable { done(std::move(answer)); });
            return;
        }
        // The same question already on its way: wait for its answer.
        if (const auto asked = in_flight_.find(key); asked != in_flight_.end()) {
            return add_waiter(*asked->second, std::move(done));
        }
        uint64_t serial = 0;
        const int status =
            shared_->ask(std::string(name), type, Shared::Asker{&loop_, loop_.handle(), weak_from_this()}, serial);
        if (status != 0) return fail_later(std::move(done), ub_strerror(status));
        metrics::count_dns_query();
        Query& query = *queries_.emplace(serial, std::make_unique<Query>(*this, key, serial)).first->second;
        in_flight_.emplace(std::move(key), &query);
        add_waiter(query, std::move(done));
    }

    void ready(uint32_t events) override {
        const int status = shared_->process();
        if (status == 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) return;
        // Past a failed read libunbound's stream of answers is out of
        // step for good, and a socket that stays readable would wake this
        // loop for ever: it stops reading, and its lookups fail at once.
        broken_ = std::string("DNS answers can no longer be read: ") +
                  (status != 0 ? ub_strerror(status) : "libunbound's socket closed");
        log::error(broken_ + "; DNS lookups fail until portcullis is restarted");
        loop_.unwatch(shared_->fd(), *this);
        watching_ = false;
    }

    /* Question SERIAL's answer, on this loop: kept, and given to every
     * lookup still waiting for it. */
    void answered(uint64_t serial, Answer answer, int ttl) {
        const auto found = queries_.find(serial);
        if (found == queries_.end()) return;
        std::unique_ptr<Query> query = std::move(found->second);
        queries_.erase(found);
        keep(query->key, answer, ttl);
        finish(*query, std::move(answer));
    }

private:
    struct Query;

    /* One lookup() waiting for a Query, with its own deadline. */
    struct Waiter {
        Waiter(Query& query, Done callback)
            : done(std::move(callback)), started(Clock::now()),
              deadline(query.owner.loop_, [this, &query] { query.owner.expire(query, *this); }) {}
        Done done;
        Clock::time_point started;
        Timer deadline;
    };

    /* One question to libunbound, and every lookup() waiting for it. */
    struct Query {
        Query(LoopContext& context, std::string cache_key, uint64_t number)
            : owner(context), key(std::move(cache_key)), serial(number) {}
        LoopContext& owner;
        std::string key;   // in the answer cache and in_flight_
        uint64_t serial;   // Shared's
        // Empty once every waiter was answered "timeout": libunbound still
        // has the question, and its answer ends the Query.
        std::vector<std::unique_ptr<Waiter>> waiters;
    };

    void add_waiter(Query& query, Done done) {
        auto waiter = std::make_unique<Waiter>(query, std::move(done));
        waiter->deadline.arm_after(timeout_);
        query.waiters.push_back(std::move(waiter));
    }

    /* NAME's TYPE in the cache: the type, then the name's lookup_key(). */
    static std::string cache_key(std::string_view name, RecordType type) {
        return static_cast<char>(type) + lookup_key(name);
    }

    /* The answer kept under KEY, if it has not expired. */
    const Answer* cached_answer(const std::string& key) {
        const auto found = cache_.find(key);
        if (found == cache_.end()) return nullptr;
        if (found->second.expires > Clock::now()) return &found->second.answer;
        forget(found);
        return nullptr;
    }

    void keep(const std::string& key, const Answer& answer, int ttl) {
        if (ttl <= 0 || answer.status == Answer::Status::temperror) return;
        size_t bytes = key.size();
        for (const auto& record : answer.records) bytes += record.size();
        if (bytes > kMaxCachedAnswerBytes) return;
        const auto now = Clock::now();
        if (const auto old = cache_.find(key); old != cache_.end()) forget(old);
        if (!has_room(bytes)) {
            for (auto at = cache_.begin(); at != cache_.end();) {
                at = at->second.expires <= now ? forget(at) : std::next(at);
            }
            // Still full of live answers: start over rather than track use.
            if (!has_room(bytes)) {
                cache_.clear();
                cached_bytes_ = 0;
            }
        }
        Cached& cached = cache_[key];
        cached.answer = answer;
        cached.answer.took = {};
        cached.expires = now + std::min<std::chrono::seconds>(std::chrono::seconds(ttl), kMaxCacheTtl);
        cached.bytes = bytes;
        cached_bytes_ += bytes;
    }

    /* QUERY, out of queries_ already, is answered: every waiter left gets
     * ANSWER.  A waiter may start lookups: QUERY is out of in_flight_
     * before the first one runs. */
    void finish(Query& query, Answer answer) {
        forget_in_flight(query);
        const auto now = Clock::now();
        for (auto& waiter : query.waiters) {
            waiter->deadline.disarm();
            Answer copy = answer;
            copy.took = now - waiter->started;
            waiter->done(std::move(copy));
        }
    }

    /* WAITER's deadline: it is answered "timeout".  The last waiter of
     * QUERY gives the question up. */
    void expire(Query& query, Waiter& waiter) {
        Answer answer = temperror("timeout");
        answer.took = Clock::now() - waiter.started;
        Done done = std::move(waiter.done);
        std::erase_if(query.waiters, [&waiter](const auto& kept) { return kept.get() == &waiter; });
        if (query.waiters.empty()) {
            forget_in_flight(query);
            // Not cancelled: the answer comes and ends it.
            if (shared_->cancel(query.serial)) queries_.erase(query.serial);
        }
        done(std::move(answer));
    }

    void forget_in_flight(const Query& query) {
        const auto asked = in_flight_.find(query.key);
        if (asked != in_flight_.end() && asked->second == &query) in_flight_.erase(asked);
    }

    void fail_later(Done done, std::string error) {
        loop_.defer([done = std::move(done), error = std::move(error)] { done(temperror(error)); });
    }

    EventLoop& loop_;
    Millis timeout_;
    std::shared_ptr<Shared> shared_;
    bool watching_ = false;
    std::string broken_;   // why the loop cannot watch libunbound's socket
    std::unordered_map<uint64_t, std::unique_ptr<Query>> queries_;   // by Shared's serial
    std::unordered_map<std::string, Query*> in_flight_;              // by cache key, while a waiter waits
    struct Cached {
        Answer answer;
        Clock::time_point expires;
        size_t bytes = 0;   // of its key and records
    };
    using Cache = std::unordered_map<std::string, Cached>;
    Cache cache_;
    size_t cached_bytes_ = 0;   // in cache_, at most kMaxCachedBytes

    /* Whether an answer of BYTES fits beside those kept. */
    bool has_room(size_t bytes) const {
        return cache_.size() < kMaxCachedAnswers && cached_bytes_ + bytes <= kMaxCachedBytes;
    }

    /* The answer kept at AT goes; the next one. */
    Cache::iterator forget(Cache::iterator at) {
        cached_bytes_ -= at->second.bytes;
        return cache_.erase(at);
    }
};

/* The answer goes to the asking LoopContext on its own loop: at once when
 * that is this loop, else posted; dropped when the loop or the context is
 * gone (its lookups went with it). */
void Resolver::Shared::deliver(const Asker& asker, uint64_t serial, Answer answer, int ttl) {
    if (EventLoop::current() == asker.loop) {
        if (const auto context = asker.context.lock()) context->answered(serial, std::move(answer), ttl);
        return;
    }
    asker.handle.post([context = asker.context, serial, answer = std::move(answer), ttl]() mutable {
        if (const auto alive = context.lock()) alive->answered(serial, std::move(answer), ttl);
    });
}

Resolver::Resolver(const std::vector<std::string>& servers, Millis timeout)
    : timeout_(timeout), shared_(std::make_shared<Shared>(servers, &description_)) {
    contexts_ = std::make_unique<PerLoop<LoopContext>>(
        [this](EventLoop& loop) { return std::make_shared<LoopContext>(loop, shared_, timeout_); });
}

Resolver::~Resolver() = default;

void Resolver::lookup(std::string_view name, RecordType type, Done done) {
    contexts_->here().lookup(name, type, std::move(done));
}

std::string library_version() { return std::string("libunbound ") + ub_version(); }

std::string lookup_key(std::string_view name) {
    std::string key = to_lower(name);
    if (key.ends_with('.')) key.pop_back();
    return key;
}

}  // namespace portcullis::dns
