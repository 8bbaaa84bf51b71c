/*
 * glue.h: the one place that speaks libmilter.
 *
 * open_listener() registers the filter and binds its socket (before
 * privileges are dropped); run() hands the thread to libmilter until
 * stop() is called; stop() closes the listener, and the sessions in
 * flight go on until they end (active_sessions() counts them).  publish()
 * installs the snapshot that new sessions start under.
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

size_t active_sessions();

/* "libmilter X.Y.Z (milter protocol N)" */
std::string library_version();

}  // namespace portcullis::milter
