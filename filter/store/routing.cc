/*
 * routing.cc: parked calls and their one timer.
 */
#include "store/routing.h"

#include <iterator>

namespace portcullis::store {

void RetiredLinks::retire(std::shared_ptr<RedisLink> link) {
    if (!link) return;
    links_->push_back(std::move(link));
    // After the current event: the links idle by then go.
    loop_.defer([links = links_] { std::erase_if(*links, [](const auto& old) { return !old->busy(); }); });
}

Parking::Parking(EventLoop& loop, std::function<void()> wake)
    : wake_(std::move(wake)), timer_(loop, [this] { fire(); }) {}

void Parking::park(std::shared_ptr<Call> call) {
    // The timer is at the earliest deadline or wake-up already: only an
    // earlier one moves it (a retried call keeps its first deadline).
    if (!timer_.armed() || call->deadline < timer_.at()) timer_.arm(call->deadline);
    calls_.push_back(std::move(call));
}

void Parking::wake_at(RouterClock::time_point at) {
    if (wake_at_ && *wake_at_ <= at) return;
    wake_at_ = at;
    if (!timer_.armed() || at < timer_.at()) timer_.arm(at);
}

std::vector<std::shared_ptr<Call>> Parking::release() {
    std::vector<std::shared_ptr<Call>> calls(std::make_move_iterator(calls_.begin()),
                                             std::make_move_iterator(calls_.end()));
    calls_.clear();
    arm();
    return calls;
}

void Parking::arm() {
    std::optional<RouterClock::time_point> next = wake_at_;
    for (const auto& call : calls_) {
        if (!next || call->deadline < *next) next = call->deadline;
    }
    if (next) timer_.arm(*next);
    else timer_.disarm();
}

/* Fails the calls out of time, then wakes the router if it asked to be
 * woken by now.  Both after the parking is consistent again, as either
 * may park more. */
void Parking::fire() {
    const auto now = RouterClock::now();
    std::vector<std::shared_ptr<Call>> expired;
    for (auto it = calls_.begin(); it != calls_.end();) {
        if ((*it)->deadline <= now) {
            expired.push_back(std::move(*it));
            it = calls_.erase(it);
        } else {
            ++it;
        }
    }
    const bool wake = wake_at_ && *wake_at_ <= now;
    if (wake) wake_at_.reset();
    arm();
    for (const auto& call : expired) call->fail();
    if (wake) wake_();
}

StaggeredAsk::StaggeredAsk(EventLoop& loop, size_t count, Ask ask, Heard heard, Failed failed)
    : count_(count), ask_(std::move(ask)), heard_(std::move(heard)), failed_(std::move(failed)),
      stagger_(loop, [this] { ask_sooner(); }) {}

/* Asks the next server that can be asked, with the stagger timer for the
 * one after; FAILED when none is left and none is waited for.  Whatever
 * the callbacks do to the owner's pointer, this round lives to the end
 * of the call. */
void StaggeredAsk::ask_next() {
    const auto self = shared_from_this();
    while (next_ < count_) {
        const size_t position = next_++;
        std::string why;
        // The round, not the router, is what the reply checks first.
        auto reply = [round = weak_from_this(), position](LinkResult result) {
            if (const auto current = round.lock()) current->answered(position, std::move(result));
        };
        if (!ask_(position, std::move(reply), why)) {
            add_error(why);
            continue;
        }
        ++unanswered_;
        if (next_ < count_) stagger_.arm(RouterClock::now() + kAskStagger);
        return;
    }
    if (unanswered_ == 0) failed_(errors_);
}

/* The stagger passed: one more server is asked, unless kAsksAtOnce wait
 * already (the next failure asks it). */
void StaggeredAsk::ask_sooner() {
    if (unanswered_ < kAsksAtOnce) ask_next();
}

void StaggeredAsk::answered(size_t position, LinkResult result) {
    --unanswered_;
    std::string why;
    if (heard_(position, std::move(result), why)) return;
    add_error(why);
    ask_next();
}

void StaggeredAsk::add_error(const std::string& why) { errors_ += (errors_.empty() ? "" : "; ") + why; }

}  // namespace portcullis::store
