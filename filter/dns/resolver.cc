/*
 * resolver.cc: libunbound set up per event loop, lookups with a deadline.
 *
 * Ownership of a question in flight: the LoopContext owns every Query
 * until it is answered or given up.  libunbound's callback argument is
 * the Query.  An answer (the callback, inside ub_process()) ends the
 * Query, and goes to every lookup() waiting for it (its Waiters).
 * One question per name and type is on its way at a time on a loop: a
 * lookup() of a name already asked becomes one more Waiter, so a burst
 * of sessions asking for one new name costs one query.  Each Waiter has
 * its own deadline; there it is answered "timeout" and leaves.  When
 * the last one leaves, the Query is cancelled: if libunbound cancelled
 * it, its callback will never run and the Query ends now; if not, the
 * answer is on its way and the callback ends the Query, dropping the
 * answer.  A callback that never comes (libunbound does not always call
 * back, e.g. for some bogus answers) cannot hold up a session: the
 * deadlines answer for it.
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
#include <unordered_map>

#include "metrics/metrics.h"
#include "util/text.h"

namespace portcullis::dns {

using Clock = std::chrono::steady_clock;

namespace {

constexpr int kRcodeNxdomain = 3;
constexpr size_t kMaxCachedAnswers = 1024;              // per loop
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

class Resolver::LoopContext final : public Watcher {
public:
    LoopContext(EventLoop& loop, const std::vector<std::string>& servers, Millis timeout)
        : loop_(loop), timeout_(timeout), context_(nullptr, ub_ctx_delete) {
        try {
            context_ = make_context(servers, nullptr);
            fd_ = ub_fd(context_.get());
            if (fd_ < 0) throw ResolverError("dns: libunbound gives no file descriptor");
            loop_.watch(fd_, EPOLLIN, *this);
        } catch (const std::exception& error) {
            context_.reset();
            broken_ = error.what();
        }
    }

    ~LoopContext() {
        for (auto& [query, owned] : queries_) {
            // A question no one waits for was cancelled already, or could not be.
            if (!owned->waiters.empty()) ub_cancel(context_.get(), owned->id);
        }
        queries_.clear();
        if (context_) loop_.unwatch(fd_, *this);
    }

    LoopContext(const LoopContext&) = delete;
    LoopContext& operator=(const LoopContext&) = delete;

    void lookup(std::string_view name, RecordType type, Done done) {
        if (!context_) return fail_later(std::move(done), broken_);
        std::string key = cache_key(name, type);
        if (const Answer* cached = cached_answer(key)) {
            loop_.defer([done = std::move(done), answer = *cached]() mutable { done(std::move(answer)); });
            return;
        }
        // The same question already on its way: wait for its answer.
        if (const auto asked = in_flight_.find(key); asked != in_flight_.end()) {
            return add_waiter(*asked->second, std::move(done));
        }
        auto owned = std::make_unique<Query>(*this, key);
        Query* query = owned.get();
        const std::string text(name);
        const int status = ub_resolve_async(context_.get(), text.c_str(), static_cast<int>(type), 1 /* IN */, query,
                                            on_answer, &query->id);
        if (status != 0) return fail_later(std::move(done), ub_strerror(status));
        metrics::count_dns_query();
        queries_.emplace(query, std::move(owned));
        in_flight_.emplace(std::move(key), query);
        add_waiter(*query, std::move(done));
    }

    void ready(uint32_t) override { ub_process(context_.get()); }

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
        Query(LoopContext& context, std::string cache_key) : owner(context), key(std::move(cache_key)) {}
        LoopContext& owner;
        std::string key;   // in the answer cache and in_flight_
        int id = 0;
        // Empty once every waiter was answered "timeout": libunbound still
        // has the question, and its callback ends the Query.
        std::vector<std::unique_ptr<Waiter>> waiters;
    };

    void add_waiter(Query& query, Done done) {
        auto waiter = std::make_unique<Waiter>(query, std::move(done));
        waiter->deadline.arm_after(timeout_);
        query.waiters.push_back(std::move(waiter));
    }

    static void on_answer(void* argument, int error, ub_result* result) {
        Query& query = *static_cast<Query*>(argument);
        Answer answer = answer_of(error, result);
        const int ttl = error == 0 ? result->ttl : 0;
        ub_resolve_free(result);
        query.owner.keep(query.key, answer, ttl);
        query.owner.finish(query, std::move(answer));
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
        cache_.erase(found);
        return nullptr;
    }

    void keep(const std::string& key, const Answer& answer, int ttl) {
        if (ttl <= 0 || answer.status == Answer::Status::temperror) return;
        const auto now = Clock::now();
        if (cache_.size() >= kMaxCachedAnswers) {
            std::erase_if(cache_, [now](const auto& entry) { return entry.second.expires <= now; });
            // Still full of live answers: start over rather than track use.
            if (cache_.size() >= kMaxCachedAnswers) cache_.clear();
        }
        Cached& cached = cache_[key];
        cached.answer = answer;
        cached.answer.took = {};
        cached.expires = now + std::min<std::chrono::seconds>(std::chrono::seconds(ttl), kMaxCacheTtl);
    }

    /* QUERY is answered: every waiter left gets ANSWER; then QUERY is
     * gone.  A callback may start lookups: QUERY is out of the maps
     * before the first one runs. */
    void finish(Query& query, Answer answer) {
        auto found = queries_.find(&query);
        if (found == queries_.end()) return;
        std::unique_ptr<Query> owned = std::move(found->second);
        queries_.erase(found);
        forget_in_flight(query);
        const auto now = Clock::now();
        for (auto& waiter : owned->waiters) {
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
            // Not cancelled: the callback comes and ends it.
            if (ub_cancel(context_.get(), query.id) == 0) queries_.erase(&query);
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
    Context context_;
    int fd_ = -1;
    std::string broken_;   // why there is no context
    std::unordered_map<Query*, std::unique_ptr<Query>> queries_;
    std::unordered_map<std::string, Query*> in_flight_;   // by cache key, while a waiter waits
    struct Cached {
        Answer answer;
        Clock::time_point expires;
    };
    std::unordered_map<std::string, Cached> cache_;
};

Resolver::Resolver(const std::vector<std::string>& servers, Millis timeout)
    : servers_(servers), timeout_(timeout) {
    // The settings are tried here, so a bad one is an error at load, not
    // a temperror on every lookup.
    make_context(servers_, &description_);
    contexts_ = std::make_unique<PerLoop<LoopContext>>(
        [this](EventLoop& loop) { return std::make_shared<LoopContext>(loop, servers_, timeout_); });
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
