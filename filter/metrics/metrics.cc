/*
 * metrics.cc: prometheus-cpp counters and the /metrics endpoint.
 */
#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace portcullis::metrics {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

struct Registry {
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    Counter& connections = counter_family("portcullis_connections_total", "SMTP sessions the MTA passed to the filter").Add({});
    Counter& messages = counter_family("portcullis_messages_total", "Messages that reached end of message").Add({});
    Family<Counter>& verdicts =
        counter_family("portcullis_verdicts_total", "Decisions by stage and action; monitor=\"true\" when only logged");
    Family<Counter>& rule_hits = counter_family("portcullis_rule_hits_total", "Decisions by the rule (file:line) that made them");
    Gauge& sessions = gauge("portcullis_sessions_in_flight", "SMTP sessions the filter is serving now");
    Family<Counter>& reloads = counter_family("portcullis_policy_reloads_total", "Reloads of config and policy by result");
    // The daemon starts only with a config and policy that load.
    Gauge& last_reload = gauge("portcullis_policy_last_reload_successful",
                               "1 when the last load of config and policy succeeded, 0 when it was refused", 1);
    Family<Counter>& greylist = counter_family("portcullis_greylist_total", "Greylist outcomes: new, early, pass, awl, store-error");
    Family<Counter>& ratelimit = counter_family("portcullis_ratelimit_total", "Rate-limit outcomes: pass, over, store-error");
    Family<Counter>& authentication =
        counter_family("portcullis_auth_results_total", "SPF, DKIM (per signature) and DMARC results by method and result");
    Family<Counter>& store_errors = counter_family(
        "portcullis_store_errors_total",
        "Store calls that failed, by kind: connect, timeout, connection, no-master, readonly, loading, clusterdown, "
        "redirects, script");
    Family<Counter>& store_redirects =
        counter_family("portcullis_store_redirects_total", "Redis Cluster redirects followed: moved, ask");
    Counter& store_failovers =
        counter_family("portcullis_store_failovers_total", "Failovers the store saw (a new master took over)").Add({});
    Counter& store_evictions =
        counter_family("portcullis_store_evictions_total",
                       "Keys the memory store evicted, nearest their expiry first, to stay within store.memory_limit")
            .Add({});
    Gauge& store_memory = gauge("portcullis_store_memory_bytes",
                                "Bytes the memory store's keys take as it counts them (store.memory_limit)");
    prometheus::Gauge& store_topology_version =
        prometheus::BuildGauge()
            .Name("portcullis_store_topology_version")
            .Help("Changes of the Redis topology (Sentinel master, Cluster slot map) seen since start")
            .Register(*registry)
            .Add({});
    Family<prometheus::Gauge>& store_masters = prometheus::BuildGauge()
                                                  .Name("portcullis_store_master")
                                                  .Help("1 for each Redis master the store writes to, by address")
                                                  .Register(*registry);
    std::mutex masters_mutex;
    std::vector<prometheus::Gauge*> masters_shown;   // under masters_mutex
    Histogram& store_seconds = prometheus::BuildHistogram()
                                   .Name("portcullis_store_seconds")
                                   .Help("Latency of the store's answers to greylist and rate-limit checks")
                                   .Register(*registry)
                                   .Add({}, Histogram::BucketBoundaries{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                                        0.05, 0.1, 0.2, 0.5, 1});
    Counter& dns_errors =
        counter_family("portcullis_dns_errors_total", "DNS lookups that failed: timeout, SERVFAIL, bogus").Add({});
    Counter& dns_queries =
        counter_family("portcullis_dns_queries_total",
                       "DNS questions sent: lookups neither answered from an event loop's cache nor joined to one "
                       "on its way")
            .Add({});
    Histogram& dns_seconds = prometheus::BuildHistogram()
                                 .Name("portcullis_dns_seconds")
                                 .Help("Latency of DNS lookups, to the answer or to dns.timeout")
                                 .Register(*registry)
                                 .Add({}, Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                                      0.1, 0.2, 0.5, 1, 2, 5});
    Gauge& store_up = gauge("portcullis_store_up", "1 while the store answers, 0 after a failure until it answers again", 1);
    std::unique_ptr<prometheus::Exposer> exposer;

    Family<Counter>& counter_family(const std::string& name, const std::string& help) {
        return prometheus::BuildCounter().Name(name).Help(help).Register(*registry);
    }
    Gauge& gauge(const std::string& name, const std::string& help, double initial = 0) {
        return prometheus::BuildGauge().Name(name).Help(help).Register(*registry).Add({}, initial);
    }
};

Registry& metrics() {
    static Registry instance;
    return instance;
}

/* FAMILY's counter for the labels NAMES[i]=VALUES[i], found once per
 * thread.  Family::Add builds a map of the labels and takes the family's
 * lock on each call, and the loops count several times a message.  No
 * counter is ever removed from its family, so its address stays good;
 * each thread's table is as large as the families it counts in. */
template <size_t N>
Counter& labelled(Family<Counter>& family, const std::array<const char*, N>& names,
                  const std::array<std::string_view, N>& values) {
    thread_local std::unordered_map<std::string, Counter*> known;
    thread_local std::string key;
    const Family<Counter>* const address = &family;
    key.assign(reinterpret_cast<const char*>(&address), sizeof address);
    for (const std::string_view value : values) {
        key += value;
        key += '\0';
    }
    if (const auto found = known.find(key); found != known.end()) return *found->second;
    prometheus::Labels labels;
    for (size_t i = 0; i < N; ++i) labels.emplace(names[i], std::string(values[i]));
    Counter& counter = family.Add(labels);
    known.emplace(key, &counter);
    return counter;
}

Counter& labelled(Family<Counter>& family, const char* name, std::string_view value) {
    return labelled<1>(family, {name}, {value});
}

/* The web server's threads, and how long a request may take to arrive:
 * a client that connects and sends nothing (a port scanner, a stalled
 * proxy) holds a thread that long, and Prometheus gives a scrape 10 s.
 * civetweb's 30 s let two such clients fail every scrape behind them. */
constexpr std::string_view kServerThreads = "2";
constexpr std::string_view kRequestTimeoutMs = "5000";

}  // namespace

std::string serve(const std::string& listen) {
    if (listen.empty()) return "";
    try {
        auto exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
            "listening_ports", listen, "num_threads", std::string(kServerThreads), "request_timeout_ms",
            std::string(kRequestTimeoutMs)});
        exposer->RegisterCollectable(metrics().registry);
        metrics().exposer = std::move(exposer);
        return "";
    } catch (const std::exception& error) {
        return "metrics.listen " + listen + ": " + error.what();
    }
}

std::map<std::string, double> totals() {
    std::map<std::string, double> sums;
    for (const prometheus::MetricFamily& family : metrics().registry->Collect()) {
        for (const prometheus::ClientMetric& metric : family.metric) {
            double value = 0;
            if (family.type == prometheus::MetricType::Counter) value = metric.counter.value;
            else if (family.type == prometheus::MetricType::Gauge) value = metric.gauge.value;
            else if (family.type == prometheus::MetricType::Histogram) value = static_cast<double>(metric.histogram.sample_count);
            else continue;
            sums[family.name] += value;
            for (const prometheus::ClientMetric::Label& label : metric.label) {
                sums[family.name + "{" + label.name + "=" + label.value + "}"] += value;
            }
        }
    }
    return sums;
}

void count_connection() { metrics().connections.Increment(); }

void set_sessions(size_t count) { metrics().sessions.Set(static_cast<double>(count)); }

void set_store_up(bool up) { metrics().store_up.Set(up ? 1 : 0); }

void count_message() { metrics().messages.Increment(); }

void count_decision(std::string_view stage, std::string_view action, bool monitored, const std::string& rule) {
    auto& registry = metrics();
    labelled<3>(registry.verdicts, {"stage", "action", "monitor"}, {stage, action, monitored ? "true" : "false"})
        .Increment();
    if (!rule.empty()) labelled(registry.rule_hits, "rule", rule).Increment();
}

void count_reload(bool ok) {
    auto& registry = metrics();
    labelled(registry.reloads, "result", ok ? "ok" : "failed").Increment();
    registry.last_reload.Set(ok ? 1 : 0);
}

void count_auth_result(std::string_view method, std::string_view result) {
    labelled<2>(metrics().authentication, {"method", "result"}, {method, result}).Increment();
}

void count_greylist(std::string_view result) { labelled(metrics().greylist, "result", result).Increment(); }

void count_ratelimit(std::string_view result) { labelled(metrics().ratelimit, "result", result).Increment(); }

void observe_store(std::chrono::steady_clock::duration took) {
    metrics().store_seconds.Observe(std::chrono::duration<double>(took).count());
}

void count_store_error(std::string_view kind) {
    labelled(metrics().store_errors, "kind", kind).Increment();
}

void count_store_redirect(std::string_view kind) {
    labelled(metrics().store_redirects, "kind", kind).Increment();
}

void count_store_failover() { metrics().store_failovers.Increment(); }

void count_store_eviction() { metrics().store_evictions.Increment(); }

void set_store_memory(uint64_t bytes) { metrics().store_memory.Set(static_cast<double>(bytes)); }

void set_store_topology(uint64_t version, const std::vector<std::string>& masters) {
    auto& registry = metrics();
    registry.store_topology_version.Set(static_cast<double>(version));
    const std::lock_guard lock(registry.masters_mutex);
    for (auto* gauge : registry.masters_shown) registry.store_masters.Remove(gauge);
    registry.masters_shown.clear();
    for (const auto& address : masters) {
        auto& gauge = registry.store_masters.Add({{"address", address}});
        gauge.Set(1);
        registry.masters_shown.push_back(&gauge);
    }
}

void count_dns_query() { metrics().dns_queries.Increment(); }

void observe_dns(std::chrono::steady_clock::duration took, bool ok) {
    auto& registry = metrics();
    registry.dns_seconds.Observe(std::chrono::duration<double>(took).count());
    if (!ok) registry.dns_errors.Increment();
}

}  // namespace portcullis::metrics
