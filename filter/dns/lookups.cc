/*
 * lookups.cc: one session's answers, the questions still out, and the
 * log line and metrics of each answer.
 */
#include "dns/lookups.h"

#include <atomic>
#include <mutex>

#include "metrics/metrics.h"
#include "util/log.h"
#include "util/units.h"

namespace portcullis::dns {

namespace {

/* "dns: 5.113.0.203.zen.example A: found 127.0.0.2 in 3ms" */
std::string answer_line(std::string_view name, RecordType type, const Answer& answer) {
    std::string line = "dns: ";
    line += name;
    line += ' ';
    line += type_name(type);
    line += ": ";
    line += status_name(answer.status);
    for (const auto& record : answer.records) {
        line += ' ';
        line += record;
    }
    if (!answer.error.empty()) {
        line += " (";
        line += answer.error;
        line += ')';
    }
    line += " in " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(answer.took).count()) + "ms";
    return line;
}

std::atomic<uint64_t> answered{0};
std::atomic<uint64_t> failures{0};
std::mutex last_failure_mutex;
std::string last_failure;

void note(std::string_view name, RecordType type, Purpose purpose, const Answer& answer) {
    const bool failed = answer.status == Answer::Status::temperror;
    metrics::observe_dns(answer.took, !failed);
    ++answered;
    if (failed) {
        ++failures;
        const std::lock_guard lock(last_failure_mutex);
        last_failure = std::string(name) + " " + std::string(type_name(type)) + ": " + answer.error + " at " +
                       utc_time(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
    }
    if (failed && purpose == Purpose::dns_list) log::info(answer_line(name, type, answer) + "; taken as not listed");
    else if (failed && purpose == Purpose::record) log::info(answer_line(name, type, answer));
    else if (log::enabled(log::Level::debug)) log::debug(answer_line(name, type, answer));
}

/* What an answer kept costs, about: its records and the map entry. */
size_t kept_bytes(const std::string& name, const Answer& answer) {
    constexpr size_t kPerEntry = 160;   // the map node, the key, the Answer
    constexpr size_t kPerRecord = 32;   // a std::string
    size_t bytes = kPerEntry + name.size() + answer.error.size();
    for (const auto& record : answer.records) bytes += kPerRecord + record.size();
    return bytes;
}

}  // namespace

struct Lookups::State {
    using Key = std::pair<std::string, RecordType>;
    struct Entry {
        bool answered = false;
        Answer answer;
    };
    std::function<void()> wake;
    std::map<Key, Entry> entries;
    size_t bytes = 0;          // of the answers kept
    uint64_t generation = 0;   // bumped by forget(): older answers are dropped
};

LookupTotals lookup_totals() {
    const std::lock_guard lock(last_failure_mutex);
    return {answered.load(), failures.load(), last_failure};
}

Lookups::Lookups(std::shared_ptr<Resolver> resolver, std::function<void()> wake)
    : resolver_(std::move(resolver)), state_(std::make_shared<State>()) {
    state_->wake = std::move(wake);
}

Lookups::~Lookups() = default;

const Answer* Lookups::find(std::string_view name, RecordType type, Purpose purpose) {
    State::Key key{lookup_key(name), type};
    auto [found, added] = state_->entries.try_emplace(key);
    if (found->second.answered) return &found->second.answer;
    if (!added) return nullptr;
    resolver_->lookup(key.first, type,
                      [state = std::weak_ptr(state_), key, purpose, generation = state_->generation](Answer answer) {
                          note(key.first, key.second, purpose, answer);
                          const auto alive = state.lock();
                          if (!alive || alive->generation != generation) return;
                          auto entry = alive->entries.find(key);
                          if (entry == alive->entries.end()) return;
                          alive->bytes += kept_bytes(key.first, answer);
                          entry->second.answer = std::move(answer);
                          entry->second.answered = true;
                          if (alive->wake) alive->wake();
                      });
    return nullptr;
}

size_t Lookups::size() const { return state_->entries.size(); }

size_t Lookups::bytes() const { return state_->bytes; }

void Lookups::forget() {
    state_->entries.clear();
    state_->bytes = 0;
    ++state_->generation;
}

}  // namespace portcullis::dns
