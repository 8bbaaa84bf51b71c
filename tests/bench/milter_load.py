#!/usr/bin/env python3
"""milter_load.py: bench_milter_load (milter_load.cc: the MTA's side of the
milter protocol as Postfix 3.7 speaks it, no MTA) against the filters of
bench_setup.py, at several numbers of concurrent sessions.

bench_setup.py starts the private unbound, the private Redis and Portcullis
in its two configurations (the default policy with an untrusted client,
sent smtp-source's kind of message; the rspamd-equivalent checks, sent the
DKIM-signed message) on each engine, and this script the no-op floor
(noop_epoll.c) negotiating each configuration's steps.  For each
configuration, each of those milters and each --sessions value, one run of
bench_milter_load: --messages measured messages after a warm-up of twice
the sessions, one message per connection, the milter's CPU, RSS and
threads read from /proc.  The box is shared: each run first waits, up to
--quiet-wait seconds, for it to be idle, and records the load average.
A Portcullis run must deliver every message and its metrics must count
exactly what its configuration's messages add, or the script stops.
Prints a table and writes everything as JSON with --json.  Needs root
(the filters run as root with milter.user = "", as in throughput.py).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import bench_setup as setup
from bench_setup import harness

RSS_TARGET_MB = 22.0
RSS_TARGET_SESSIONS = 500


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    setup.add_arguments(parser)
    parser.add_argument("--load", help="bench_milter_load (default: tests/bench/ of --bin's build directory)")
    parser.add_argument("--sessions", default="50,500", help="concurrent sessions, one run each")
    parser.add_argument("--messages", type=int, default=20000, help="measured messages per run")
    parser.add_argument("--threads", type=int, default=1, help="bench_milter_load's event loops")
    args = setup.parse_arguments(parser)
    try:
        args.sessions = [int(s) for s in args.sessions.split(",")]
    except ValueError:
        parser.error("--sessions: a comma-separated list of numbers")
    if not args.load:
        args.load = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.bin))),
                                 "tests", "bench", "bench_milter_load")
    return args


def run_load(args, tmp, config, milter, sessions):
    """One run of bench_milter_load against MILTER; its JSON report, with
    what the filter counted and the load average before it."""
    waited, busy = setup.wait_for_quiet_box(args.quiet_wait)
    load = setup.load_average()
    warmup = 2 * sessions
    counters = milter.counters() if hasattr(milter, "counters") else None
    report_file = os.path.join(tmp.path, "load.json")
    argv = [args.load, "--filter", milter.postfix_socket, "--message", config.message_file,
            "--sessions", str(sessions), "--messages", str(args.messages), "--warmup", str(warmup),
            "--threads", str(args.threads), "--client-ip", setup.CLIENT, "--sender", setup.SENDER,
            "--rcpt", setup.RECIPIENT, "--pid", str(milter.pid), "--json", report_file]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    sys.stderr.write(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError("%s exited %d" % (" ".join(argv), proc.returncode))
    with open(report_file) as f:
        report = json.load(f)
    if report["outcomes"]["delivered"] != warmup + args.messages:
        raise RuntimeError("invalid run: %s delivered %s" % (milter.name, report["outcomes"]))
    if counters is not None:
        report["counted"] = setup.counted(milter, counters, warmup + args.messages, config.expected)
    report.update(load_before=load, quiet_wait_s=waited, box_busy_before=busy)
    return report


def table(results):
    lines = ["| configuration | milter | sessions | messages/s | message p50 / p99 ms | EOM p50 / p99 ms "
             "| filter CPU s/1000 | RSS max MB (connections open) | threads |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        report = r["report"]
        latency, flt = report["latency_ms"], report["filter"]
        lines.append("| %s | %s | %d | %.0f | %.2f / %.2f | %.2f / %.2f | %.3f | %.1f (%d) | %d |" % (
            r["configuration"], r["milter"], r["sessions"], report["messages_per_s"], latency["message"]["p50"],
            latency["message"]["p99"], latency["EOM"]["p50"], latency["EOM"]["p99"], flt["cpu_s_per_1000"],
            flt["max_rss_kb"] / 1024.0, flt["connections_at_max_rss"], flt["max_threads"]))
    return "\n".join(lines)


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("milter_load.py: run as root (the filters are started as the e2e tests start them)")
    for binary in (args.bin, args.load):
        if not os.access(binary, os.X_OK):
            sys.exit("milter_load.py: no binary at %s (build it: see tests/bench/README.md)" % binary)
    tmp = harness.TempDir(prefix="portcullis-load-")
    filters = setup.Filters(tmp, args.bin, args.engines, args.extra)
    floors, results, steps = [], [], {}
    load_at_start = setup.load_average()
    try:
        filters.start()
        noop = setup.build_noop(args.noop_source, tmp)
        for config in filters.configurations:
            milters = []
            steps[config.key] = "0x%x" % setup.negotiated_steps(next(iter(config.filters.values())).port)
            if noop:
                floor = setup.NoopFloor(tmp, noop, "floor-" + config.key, steps[config.key])
                floor.name = "no-op floor (NOOP_MODE=%s)" % steps[config.key]
                floors.append(floor)
                milters.append(floor)
            milters += [config.filters[engine] for engine in args.engines]
            for milter in milters:
                for sessions in args.sessions:
                    report = run_load(args, tmp, config, milter, sessions)
                    results.append({"configuration": config.key, "milter": milter.name, "sessions": sessions,
                                    "report": report})
    finally:
        for floor in floors:
            floor.stop()
        filters.stop()
        tmp.cleanup()
    load_at_end = setup.load_average()
    print(table(results))
    print("\nprotocol steps agreed with Postfix's offer: %s" % ", ".join("%s %s" % i for i in steps.items()))
    loads = [r["report"]["load_before"][0] for r in results]
    print("1-minute load average before the runs: %.2f to %.2f (median %.2f); "
          "(1, 5, 15 min) %s at the start, %s at the end." % (
              min(loads), max(loads), statistics.median(loads), load_at_start, load_at_end))
    for r in results:
        if r["milter"].endswith("-native") and r["sessions"] == RSS_TARGET_SESSIONS:
            rss = r["report"]["filter"]["max_rss_kb"] / 1024.0
            print("target %s RSS at %d sessions <= %.0f MB: %.1f MB, %s" % (
                r["milter"], RSS_TARGET_SESSIONS, RSS_TARGET_MB, rss, "met" if rss <= RSS_TARGET_MB else "MISSED"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_average": {"start": load_at_start, "end": load_at_end}, "protocol_steps": steps,
                       "runs": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
