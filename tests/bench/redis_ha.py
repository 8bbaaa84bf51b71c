"""The store on Redis standalone, Sentinel and Cluster: decisions per
second, and the time a failover costs, on loopback.

  contrib/as-root python3 tests/bench/redis_ha.py --build build-bench [--seconds 10] [--failovers 5]

Everything starts here, on 127.0.0.1 (tests/e2e/redis_topologies.py): one
redis-server; a Sentinel group of a master, two replicas and three
sentinels (down-after-milliseconds 1000); a Cluster of three masters and
three replicas (cluster-node-timeout 2000).

1. Decisions: BUILD's bench_greylist (phases "new" and "pass") and
   bench_ratelimit ("spread" and "hot"), 50 sessions on one loop per core,
   SECONDS per phase, against each of the three (store_bench.h: their
   decisions/s and p50/p99 latency).
2. Failover: BUILD's portcullis behind a private Postfix on the Sentinel
   group, then on the Cluster, 20 SMTP sessions (redis_topologies.Load,
   every transaction a new greylist triplet) and kill -9 of the master
   (Sentinel) or of a cluster master (each time the master of 10 of the
   sessions' networks), FAILOVERS times each: the time from the kill to
   the first good verdict after the last store error, each and their
   median.  The killed server starts again (as a replica) and the
   deployment settles before the next.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

SESSIONS = 20


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="the build directory (Release)")
    parser.add_argument("--seconds", type=int, default=10, help="per phase of the decision benchmarks")
    parser.add_argument("--failovers", type=int, default=5, help="failovers per mode")
    parser.add_argument("--skip-decisions", action="store_true")
    parser.add_argument("--skip-failovers", action="store_true")
    return parser.parse_args()


ARGS = parse_arguments()
os.environ["PORTCULLIS_BIN"] = os.path.abspath(os.path.join(ARGS.build, "filter", "portcullis"))

import harness  # noqa: E402  (read-only: shared with the end-to-end tests)
from redis_topologies import (Cluster, Load, RedisProcess, SentinelGroup, failover_report,  # noqa: E402
                              recovered)


def bench(name, mode_args, seconds):
    """One benchmark binary's output lines (its phases)."""
    binary = os.path.join(ARGS.build, "tests", "bench", name)
    count = ["--triplets", "50"] if name == "bench_greylist" else ["--buckets", "50"]
    proc = subprocess.run([binary, "--sessions", "50", "--seconds", str(seconds)] + count + mode_args,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (name, proc.stdout))
    return [line for line in proc.stdout.splitlines() if not line.startswith("portcullis[")]


def decisions(tmp, sentinels, cluster):
    server = RedisProcess(tmp, "standalone").start()
    try:
        targets = [
            ("standalone", ["--url", "redis://127.0.0.1:%d/0" % server.port]),
            ("sentinel", ["--mode", "sentinel", "--master", SentinelGroup.NAME, "--url", sentinels.urls]),
            ("cluster", ["--mode", "cluster", "--url", cluster.seeds]),
        ]
        for mode, mode_args in targets:
            for name in ("bench_greylist", "bench_ratelimit"):
                print("== %s, %s" % (name, mode), flush=True)
                for line in bench(name, mode_args, ARGS.seconds):
                    if not line.startswith("memory:"):
                        print("   " + line, flush=True)
    finally:
        server.kill()


POLICY = harness.policy(harness.BASE_POLICY, """\
on connect { accept if client.ip in trusted }
on rcpt {
    greylist delay 1s window 1h expire 1d awl 0 if not authenticated
}
""")


class Bench:
    """One Postfix, its sink, and a filter on the deployment at hand."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.milter_port = harness.free_port()
        self.sink = harness.Sink(tmp).start()
        self.postfix = harness.Postfix(tmp, self.sink.port, milter="inet:127.0.0.1:%d" % self.milter_port).start()

    def filter(self, name, store):
        return harness.Filter(self.tmp, POLICY, address=("inet", self.milter_port), name=name,
                              settings={"store": store, "log": {"level": "info"}}).start()

    def failover(self, addresses, kill, timed=None):
        """The failover_report() of KILL() under SESSIONS sessions from
        ADDRESSES, read from the verdicts of TIMED (all by default)."""
        timed = timed or addresses
        load = Load(self.postfix.port, addresses, sessions=SESSIONS, tag="bench").start()
        try:
            load.wait_for(SESSIONS * 2)
            killed_at = time.monotonic()
            kill()
            harness.wait_until(lambda: recovered(timed)(load, killed_at), 60, "the failover to end", interval=0.1)
        finally:
            load.stop()
        report = failover_report(load.verdicts(addresses=timed), killed_at)
        if report["other"]:
            raise RuntimeError("verdicts neither good nor on_error's: %s" % report["other"][:5])
        return report

    def stop(self):
        self.postfix.stop()
        self.sink.stop()


def print_runs(what, reports):
    times = [r["recovered_s"] for r in reports]
    for number, report in enumerate(reports, 1):
        print("   run %d: first good verdict %.2f s after the kill; %d store errors from %.2f s to %.2f s, "
              "%d verdicts" % (number, report["recovered_s"], report["store_errors"], report["first_error_s"],
                               report["last_error_s"], report["verdicts"]), flush=True)
    print("== %s: median %.2f s (min %.2f, max %.2f) over %d kills"
          % (what, statistics.median(times), min(times), max(times), len(times)), flush=True)


def sentinel_failovers(runner, group):
    flt = runner.filter("filter-sentinel", {"backend": "redis", "mode": "sentinel", "url": group.urls,
                                            "master": SentinelGroup.NAME, "timeout": "200ms"})
    addresses = ["198.18.%d.10" % i for i in range(SESSIONS)]
    reports = []
    try:
        for _ in range(ARGS.failovers):
            victim = group.server(group.master())
            reports.append(runner.failover(addresses, victim.kill))
            victim.start()
            group.wait_settled()
    finally:
        flt.stop()
    print_runs("sentinel, kill -9 of the master", reports)


def cluster_failovers(runner, cluster):
    flt = runner.filter("filter-cluster", {"backend": "redis", "mode": "cluster", "url": cluster.seeds,
                                           "timeout": "200ms"})
    reports = []
    try:
        for number in range(ARGS.failovers):
            masters = cluster.layout()["masters"]
            victim = masters[number % len(masters)]
            by_master = cluster.addresses_on(masters, 10, second_octet=18 + 32 * number)
            on_victim = by_master[victim]
            others = [a for port in masters if port != victim for a in by_master[port]][:SESSIONS - len(on_victim)]
            # Timed on the victim's networks: the others' master never stops.
            reports.append(runner.failover(on_victim + others, cluster.node(victim).kill, timed=on_victim))
            cluster.node(victim).start()
            cluster.wait_ok()
    finally:
        flt.stop()
    print_runs("cluster, kill -9 of a master", reports)


def main():
    harness.require_binary()
    tmp = harness.TempDir(prefix="portcullis-bench-ha-")
    sentinels = cluster = runner = None
    try:
        sentinels = SentinelGroup(tmp)
        cluster = Cluster(tmp)
        if not ARGS.skip_decisions:
            decisions(tmp, sentinels, cluster)
        if not ARGS.skip_failovers:
            runner = Bench(tmp)
            sentinel_failovers(runner, sentinels)
            cluster_failovers(runner, cluster)
    finally:
        if runner:
            runner.stop()
        for deployment in (sentinels, cluster):
            if deployment:
                deployment.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
