/*
 * engine.cc: the published snapshot, the drain and the session count both
 * engines share, and the choice of engine.
 */
#include "milter/engine.h"

#include <atomic>
#include <mutex>

#include "metrics/metrics.h"
#include "util/files.h"
#include "util/text.h"

namespace portcullis::milter {

std::unique_ptr<Engine> make_native_engine();
std::unique_ptr<Engine> make_libmilter_engine();

namespace {

std::mutex snapshot_mutex;
std::shared_ptr<const Snapshot> published_snapshot;
std::atomic<size_t> session_count{0};
std::atomic<bool> drain_begun{false};

}  // namespace

std::unique_ptr<Engine> make_engine(config::MilterEngine kind) {
    return kind == config::MilterEngine::libmilter ? make_libmilter_engine() : make_native_engine();
}

std::string unix_socket_path(const std::string& socket) {
    const auto colon = socket.find(':');
    if (colon == std::string::npos) return socket;
    const std::string kind = to_lower(socket.substr(0, colon));
    return kind == "unix" || kind == "local" ? socket.substr(colon + 1) : "";
}

std::string make_room_for(const std::string& socket) {
    const std::string path = unix_socket_path(socket);
    if (path.empty()) return "";
    const std::string refused = clear_stale_socket(path);
    return refused.empty() ? "" : "milter.socket: " + refused;
}

void publish(std::shared_ptr<const Snapshot> snapshot) {
    std::lock_guard lock(snapshot_mutex);
    published_snapshot = std::move(snapshot);
}

std::shared_ptr<const Snapshot> current_snapshot() {
    std::lock_guard lock(snapshot_mutex);
    return published_snapshot;
}

void begin_drain() { drain_begun = true; }
bool draining() { return drain_begun.load(); }
size_t active_sessions() { return session_count.load(); }

SessionCount::SessionCount() : refused_(drain_begun.load()) {
    if (refused_) return;
    metrics::set_sessions(++session_count);
}

SessionCount::~SessionCount() {
    if (refused_) return;
    metrics::set_sessions(--session_count);
}

}  // namespace portcullis::milter
