/*
 * resolver.cc: libunbound set up once, asynchronous lookups with a
 * deadline, and the poller thread.
 *
 * Ownership of a question in flight: the Lookup holds the Query, and so
 * does the ticket given to libunbound as the callback's argument.  The
 * callback deletes its ticket.  When a waiter gives up (timeout, or the
 * Lookup dropped), it cancels the query: if libunbound cancelled it, the
 * callback will never run and the waiter deletes the ticket; if not, the
 * callback runs (or ran) and its late answer is dropped.  A callback that
 * never comes (libunbound does not always call back, e.g. for some bogus
 * answers) cannot hang a waiter: waiters wait until a deadline, never
 * for the callback alone.
 */
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unbound.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/text.h"

namespace portcullis::dns {

using Clock = std::chrono::steady_clock;

struct Query {
    Resolver* resolver = nullptr;
    Clock::time_point started;
    int id = 0;
    std::shared_ptr<Query>* ticket = nullptr;   // libunbound's callback argument
    bool done = false;                          // under the resolver's mutex
    Answer answer;
};

/* The answer to QUERY, unless its waiter gave up; wakes the waiters. */
void deliver(Query& query, Answer answer);

namespace {

constexpr int kRcodeNxdomain = 3;

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

/* libunbound's callback, run by the poller thread inside ub_process(). */
void on_answer(void* argument, int error, ub_result* result) {
    const std::unique_ptr<std::shared_ptr<Query>> ticket(static_cast<std::shared_ptr<Query>*>(argument));
    Answer answer = answer_of(error, result);
    ub_resolve_free(result);
    deliver(**ticket, std::move(answer));
}

/* "UB_SYNTAX" and friends say little to an administrator. */
void check(int status, const std::string& what) {
    if (status != 0) throw ResolverError(what + ": " + ub_strerror(status));
}

}  // namespace

void deliver(Query& query, Answer answer) {
    Resolver& resolver = *query.resolver;
    {
        const std::lock_guard lock(resolver.mutex_);
        if (query.done) return;   // its waiter gave up already
        query.answer = std::move(answer);
        query.answer.took = Clock::now() - query.started;
        query.done = true;
    }
    resolver.answered_.notify_all();
}

std::string_view status_name(Answer::Status status) {
    switch (status) {
        case Answer::Status::found: return "found";
        case Answer::Status::not_found: return "not-found";
        case Answer::Status::temperror: return "temperror";
    }
    return "?";
}

Resolver::Resolver(const std::vector<std::string>& servers, Millis timeout)
    : context_(ub_ctx_create(), ub_ctx_delete), timeout_(timeout) {
    if (!context_) throw ResolverError("dns.resolver: cannot create a libunbound context");
    configure(servers);
    wake_fd_ = eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) throw ResolverError(std::string("dns: eventfd: ") + std::strerror(errno));
    poller_ = std::thread([this] { poll_answers(); });
}

Resolver::~Resolver() {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) != sizeof one) std::terminate();   // the poller would never end
    poller_.join();
    close(wake_fd_);
}

/* Threads, not libunbound's default forked process; then the servers.  All
 * before the first query, after which libunbound takes no settings. */
void Resolver::configure(const std::vector<std::string>& servers) {
    check(ub_ctx_async(context_.get(), 1), "dns: ub_ctx_async");
    if (servers.size() == 1 && equals_nocase(servers.front(), "system")) {
        check(ub_ctx_resolvconf(context_.get(), nullptr), "dns.resolver \"system\": /etc/resolv.conf");
        check(ub_ctx_hosts(context_.get(), nullptr), "dns.resolver \"system\": /etc/hosts");
        description_ = "system resolver";
        return;
    }
    description_ = "forwarders";
    for (const auto& server : servers) {
        check(ub_ctx_set_fwd(context_.get(), server.c_str()), "dns.resolver " + in_quotes(server));
        description_ += ' ';
        description_ += server;
    }
}

void Resolver::poll_answers() {
    pollfd fds[2] = {{ub_fd(context_.get()), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            std::terminate();   // only a programming error gets here; waiters would all time out
        }
        if (fds[1].revents != 0) return;
        if (fds[0].revents != 0) ub_process(context_.get());
    }
}

Resolver::Lookup Resolver::start(std::string_view name, RecordType type) {
    auto query = std::make_shared<Query>();
    query->resolver = this;
    query->started = Clock::now();
    query->ticket = new std::shared_ptr<Query>(query);
    const std::string text(name);
    const int status = ub_resolve_async(context_.get(), text.c_str(), static_cast<int>(type), 1 /* IN */,
                                        query->ticket, on_answer, &query->id);
    if (status != 0) {
        delete query->ticket;   // no callback comes for a query not sent
        deliver(*query, temperror(ub_strerror(status)));
    }
    return Lookup(*this, std::move(query));
}

Answer Resolver::lookup(std::string_view name, RecordType type) { return start(name, type).wait(); }

Answer Resolver::wait_for(Query& query) {
    {
        std::unique_lock lock(mutex_);
        if (answered_.wait_until(lock, query.started + timeout_, [&] { return query.done; })) return query.answer;
    }
    give_up(query);
    const std::lock_guard lock(mutex_);
    return query.answer;
}

void Resolver::give_up(Query& query) {
    {
        const std::lock_guard lock(mutex_);
        if (query.done) return;
        query.answer = temperror("timeout");
        query.answer.took = Clock::now() - query.started;
        query.done = true;
    }
    // Cancelled: the callback will never run, so its ticket is ours to
    // delete.  Not cancelled: the callback has run or will, and drops it.
    if (ub_cancel(context_.get(), query.id) == 0) delete query.ticket;
}

Resolver::Lookup::Lookup(Resolver& resolver, std::shared_ptr<Query> query)
    : resolver_(&resolver), query_(std::move(query)) {}

Resolver::Lookup::Lookup(Lookup&& other) noexcept : resolver_(other.resolver_), query_(std::move(other.query_)) {}

Resolver::Lookup::~Lookup() {
    if (query_) resolver_->give_up(*query_);
}

Answer Resolver::Lookup::wait() { return resolver_->wait_for(*query_); }

}  // namespace portcullis::dns
