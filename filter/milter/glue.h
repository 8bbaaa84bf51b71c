/*
 * glue.h: the one place that speaks libmilter.
 *
 * open_listener() registers the filter and binds its socket (before
 * privileges are dropped); run() hands the thread to libmilter until
 * stop() is called.  publish() installs the snapshot that new sessions
 * start under.
 *
 * Once stop() is called libmilter serves no session, not even one in
 * flight, so a graceful stop first calls begin_drain(): sessions that
 * start from then on get a temporary failure at connect, and those in
 * flight go on; when active_sessions() reaches 0, stop().
 *
 * libmilter's smfi_main() starts a thread that sigwait()s for SIGHUP,
 * SIGTERM and SIGINT and stops the filter on any of them, so a SIGHUP
 * reload is impossible through it.  We link libmilter statically with
 * --wrap=sigwait: its signal thread then waits forever, and the daemon's
 * own signal thread (which uses sigwaitinfo) decides what a signal means.
 */
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "milter/snapshot.h"
#include "util/units.h"

namespace portcullis::milter {

/* Returns "" on success, else what went wrong. */
std::string open_listener(const std::string& socket, Millis timeout);
/* Blocks until stop(); false when libmilter could not run. */
bool run();
void stop();

void publish(std::shared_ptr<const Snapshot> snapshot);
std::shared_ptr<const Snapshot> current_snapshot();

void begin_drain();
size_t active_sessions();

/* A reply line as libmilter takes it: '%' doubled, at most 980 bytes,
 * never ending inside a UTF-8 character. */
std::string milter_text(std::string_view line);

/* "libmilter X.Y.Z (milter protocol N)" */
std::string library_version();

}  // namespace portcullis::milter
