/*
 * metrics.h: the daemon's Prometheus metrics (docs/daemon.md, "Metrics").
 *
 * The counters always count (an atomic add, or a label lookup for the
 * labelled ones); serve() exposes them as Prometheus text on
 * http://LISTEN/metrics.  This is the only code that includes
 * prometheus-cpp.
 */
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::metrics {

/* LISTEN is "host:port"; "" serves nothing.  Returns "" or the error. */
std::string serve(const std::string& listen);

/* What the counters say now, for `portcullis status`: each counter's
 * total, by "NAME" or, for a labelled one, "NAME{LABEL=VALUE}" for each
 * value of each label (summed over the other labels). */
std::map<std::string, double> totals();

void count_connection();
/* SMTP sessions the filter serves now. */
void set_sessions(size_t count);
/* Whether the store answers: false after a failure, true once it answers. */
void set_store_up(bool up);
void count_message();
/* A decision: STAGE and ACTION as logged ("rcpt", "reject"); MONITORED
 * when a monitor rule only logged it.  RULE is "file:line", or "". */
void count_decision(std::string_view stage, std::string_view action, bool monitored, const std::string& rule);
/* A reload of config and policy: counted by result, and the last
 * result kept (the one loaded at start counts as a success). */
void count_reload(bool ok);
/* A greylist outcome: "new", "early", "pass", "awl" or "store-error". */
void count_greylist(std::string_view result);
/* One SPF, DKIM or DMARC result: METHOD "spf", "dkim" (each signature;
 * "none" for an unsigned message) or "dmarc", RESULT as RFC 8601 spells it. */
void count_auth_result(std::string_view method, std::string_view result);
/* A rate-limit outcome: "pass", "over" or "store-error". */
void count_ratelimit(std::string_view result);
/* How long one store operation took (to its answer or its failure). */
void observe_store(std::chrono::steady_clock::duration took);
/* A store call that failed, by KIND: "connect", "timeout", "connection",
 * "no-master", "readonly", "loading", "clusterdown", "redirects" or
 * "script". */
void count_store_error(std::string_view kind);
/* A redirect a Redis Cluster answered and the store followed: KIND
 * "moved" or "ask". */
void count_store_redirect(std::string_view kind);
/* A failover the store saw: the sentinels named another master, or a
 * cluster replica took over its master's slots. */
void count_store_failover();
/* A live key the memory store evicted to stay within store.memory_limit. */
void count_store_eviction();
/* The bytes the memory store's keys take, as it counts them. */
void set_store_memory(uint64_t bytes);
/* The Redis topology now: VERSION counts its changes since start (1 is
 * the first seen), MASTERS are the masters' addresses ("127.0.0.1:7000"). */
void set_store_topology(uint64_t version, const std::vector<std::string>& masters);
/* A question sent to libunbound (a lookup the loop's answer cache or a
 * question on its way could not answer). */
void count_dns_query();
/* How long one DNS lookup took (to its answer or its timeout), and
 * whether it failed (temperror: timeout, SERVFAIL, bogus). */
void observe_dns(std::chrono::steady_clock::duration took, bool ok);

}  // namespace portcullis::metrics
