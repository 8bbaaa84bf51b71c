/*
 * engine.h: what the daemon asks of a milter engine, whichever speaks the
 * protocol: the native one (native_engine.cc, epoll loops, the default)
 * or libmilter's (libmilter_engine.cc, the reference).
 *
 *   open()     binds milter.socket (before privileges are dropped); ""
 *              or what went wrong;
 *   run()      serves until stop(); false when it could not;
 *   stop()     from any thread: run() returns once the engine is done;
 *   describe() "native, 2 threads" or "libmilter 8.17.1", for the log.
 *
 * What both share, and the daemon sees:
 *   publish(), current_snapshot()   the snapshot new sessions start under;
 *   begin_drain(), draining()       from the drain on, a new session is
 *                                   answered with a temporary failure at
 *                                   connect and not counted;
 *   active_sessions()               sessions in flight (SessionCount).
 */
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "config/config.h"
#include "milter/snapshot.h"
#include "util/units.h"

namespace portcullis::milter {

struct EngineSettings {
    std::string socket;              // inet:PORT@HOST, inet6:PORT@HOST, unix:PATH, local:PATH or PATH
    Millis timeout{};                // milter.timeout
    Millis idle_timeout{};           // milter.idle_timeout
    unsigned threads = 0;            // milter.threads; 0: one per core
    size_t max_connections = 0;      // milter.max_connections; 0: no limit
};

class Engine {
public:
    virtual ~Engine() = default;
    virtual std::string open(const EngineSettings& settings) = 0;
    virtual bool run() = 0;
    virtual void stop() = 0;
    virtual std::string describe() const = 0;
};

std::unique_ptr<Engine> make_engine(config::MilterEngine kind);

/* The path of a unix:PATH, local:PATH or PATH socket; "" for inet and
 * inet6. */
std::string unix_socket_path(const std::string& socket);
/* Room to bind SOCKET (clear_stale_socket() for a unix one): "" or why
 * not, naming milter.socket. */
std::string make_room_for(const std::string& socket);

/* "libmilter 8.17.1 (milter protocol 6)": the library linked, for `version`. */
std::string libmilter_version();

void publish(std::shared_ptr<const Snapshot> snapshot);
std::shared_ptr<const Snapshot> current_snapshot();

void begin_drain();
bool draining();
size_t active_sessions();

/* One session in flight while alive (none when made while draining). */
class SessionCount {
public:
    SessionCount();
    ~SessionCount();
    SessionCount(const SessionCount&) = delete;
    SessionCount& operator=(const SessionCount&) = delete;
    /* Made during the drain: the session is refused at connect. */
    bool refused() const { return refused_; }

private:
    bool refused_;
};

}  // namespace portcullis::milter
