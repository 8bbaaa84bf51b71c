#!/usr/bin/env python3
"""throughput.py: delivered messages per second through a private Postfix on
loopback, with and without a milter, in one run; then the latency from the
end of DATA to the 250, one message at a time.

One Postfix instance (tests/e2e/harness.py's, plus the limits below), one
smtp-sink as its next hop, and what bench_setup.py sets up: a private
unbound, a private Redis, and Portcullis in two configurations (the
default policy with an untrusted client; the rspamd-equivalent checks),
each on both milter engines.  Side by side, in one run:

  - Postfix alone, sending smtp-source's own 5 KB message, and again
    sending the DKIM-signed one (the rspamd configuration's);
  - the no-op floor (noop_epoll.c: one thread, epoll, no libmilter),
    negotiating exactly the protocol steps each configuration's filter
    agrees to with Postfix (read from the running filter), and with
    NOOP_MODE=nr;
  - Portcullis, each configuration on each engine.

Configurations differ only in smtpd_milters (changed with postfix reload)
and in the message, and are measured in turn, REPEATS times each.  For
each run: the wall time from starting smtp-source until smtp-sink has
counted every message, messages per second (and the ratio to Postfix
alone sending the same message, and to the floor with the same steps),
CPU seconds per 1000 messages of the milter and of Redis (/proc/PID/stat),
of the whole box (/proc/stat) and of the benchmark's own processes
(Postfix, sink, milters, Redis, unbound, smtp-source); the box is shared,
so each run first waits, up to --quiet-wait seconds, for it to be idle,
and records the load average.  A Portcullis run whose metrics did not
count exactly what its configuration's messages must add (a pass of each
check per message) measured another path, and stops the script.

Then, on the idle box, one SMTP session per configuration sending
--latency-messages messages one after the other, timing each from the
final "." to Postfix's 250.  Then one message per milter with Postfix's
verbose milter logging, to show which events it sends.  Prints tables of
the medians and writes everything as JSON with --json.  Needs root.
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time

import bench_setup as setup
from bench_setup import harness

# Everything that could throttle 100 parallel sessions from one address,
# identical in every configuration (only smtpd_milters changes).
POSTFIX_LIMITS = {
    "default_process_limit": "150",
    "smtpd_client_connection_count_limit": "0",
    "smtpd_client_connection_rate_limit": "0",
    "smtpd_client_message_rate_limit": "0",
    "smtpd_client_recipient_rate_limit": "0",
    "smtpd_client_event_limit_exceptions": "127.0.0.0/8",
    "message_size_limit": "10240000",
}

TARGETS = (   # (row, what, compared with, at least / at most, bound)
    ("untrusted_native", "delivered/s", "floor_untrusted", "min", 0.95),
    ("rspamd_native", "delivered/s", "floor_rspamd", "min", 0.90),
    ("rspamd_native", "filter CPU s/1000", None, "max", 0.35),
)
LATENCY_TARGET_MS = 3.0


def tree_cpu_seconds(roots, skip_own=()):
    """CPU time of the process trees under ROOTS: for every live process in
    them its own utime+stime plus its reaped children's (cutime+cstime), so
    a child that ended during the run still counts, once.  SKIP_OWN: roots
    whose own time is left out (this script's polling)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = setup.stat_fields(int(name))
            except OSError:
                continue   # ended while we looked
            table[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks, todo = 0, [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        _, own, reaped = table[pid]
        ticks += reaped + (0 if pid in skip_own else own)
        todo.extend(children.get(pid, []))
    return ticks / setup.CLOCK_TICKS


# --------------------------------------------------------------------- sink

class CountingSink:
    """smtp-sink that keeps nothing, only its running counters (-c) in a
    file; count() is the number of messages received so far."""

    def __init__(self, tmp):
        self.port = harness.free_port()
        self.counter_file = os.path.join(tmp.sub("sink"), "counters")
        self.proc = None

    def start(self):
        with open(self.counter_file, "wb") as out:
            self.proc = subprocess.Popen(
                ["smtp-sink", "-u", "postfix", "-c", "-m", "500", "127.0.0.1:%d" % self.port, "1000"],
                stdout=out, stderr=subprocess.STDOUT)
        harness.wait_until(lambda: harness.can_connect(("inet", self.port)), 10, "smtp-sink to listen")
        return self

    def count(self):
        with open(self.counter_file, "rb") as f:
            f.seek(max(0, os.path.getsize(self.counter_file) - 200))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# ------------------------------------------------------------------ postfix

MILTER_LINE = re.compile(r"postfix/(smtpd|cleanup)\[\d+\]: "
                         r"((?:milter8_\w+|event|reply|skipping)\b.*)")


def milter_lines(log_text):
    """"smtpd: milter8_connect: ..." for each milter line of a verbose log."""
    lines = []
    for line in log_text.splitlines():
        match = MILTER_LINE.search(line)
        if match and "non-protocol event" not in match.group(2):
            lines.append("%s: %s" % match.groups())
    return lines


class BenchPostfix(harness.Postfix):
    """The harness's Postfix, whose cleanup service can be made verbose
    (-v) for the milter conversation: cleanup talks to the milter from
    DATA on, and debug_peer_list does not reach it."""

    verbose_cleanup = False

    def master_pid(self):
        try:
            with open(os.path.join(self.params["queue_directory"], "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def write_config(self):
        super().write_config()
        if self.verbose_cleanup:
            master_cf = os.path.join(self.dir, "master.cf")
            with open(master_cf) as f:
                text = f.read()
            harness.write_file(master_cf, re.sub(r"(?m)^(cleanup\s.*\bcleanup)$", r"\1 -v", text))


# -------------------------------------------------------------- measurement

class Row:
    """What Postfix calls (MILTER: a FilterProcess or NoopFloor, or
    nothing) and what smtp-source sends (SIGNED: the SignedMessage, or its
    own); BASELINE: Postfix alone sending the same (itself when not
    given); FLOOR: the no-op floor with the milter's protocol steps;
    EXPECTED: what each message must add to the filter's counters."""

    def __init__(self, key, label, milter=None, signed=None, baseline=None, floor=None, expected=None):
        self.key, self.label, self.milter, self.signed = key, label, milter, signed
        self.baseline = baseline or self
        self.floor = floor
        self.expected = expected
        self.runs = []
        self.latency_ms = []

    @property
    def milter_socket(self):
        return self.milter.postfix_socket if self.milter else ""


class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.sink = CountingSink(tmp)
        self.postfix = None
        self.filters = None
        self.floors = []
        self.steps = {}

    # -- setup

    def start(self):
        self.sink.start()
        self.postfix = BenchPostfix(self.tmp, self.sink.port, **POSTFIX_LIMITS).start()

    def rows(self):
        """Starts the milters; the rows in the order they are run."""
        alone = Row("postfix_alone", "nothing")
        rows = [alone]
        if self.args.only_postfix:
            return rows
        self.filters = setup.Filters(self.tmp, self.args.bin, self.args.engines, self.args.extra).start()
        noop = setup.build_noop(self.args.noop_source, self.tmp)
        untrusted, rspamd = self.filters.configurations
        alone_signed = Row("postfix_alone_signed", "nothing, DKIM-signed message", signed=rspamd.signed)
        for config, baseline in ((untrusted, alone), (rspamd, alone_signed)):
            if config is rspamd:
                if noop:
                    rows.append(Row("floor_nr", "no-op floor, NOOP_MODE=nr",
                                    self.floor(noop, "nr", "nr"), baseline=alone))
                rows.append(alone_signed)
            steps = {engine: setup.negotiated_steps(flt.port) for engine, flt in config.filters.items()}
            self.steps[config.key] = {engine: "0x%x" % value for engine, value in steps.items()}
            mode = "0x%x" % next(iter(steps.values()))
            floor = None
            if noop:
                floor = Row("floor_" + config.key, "no-op floor, %s's steps (NOOP_MODE=%s)" % (config.key, mode),
                            self.floor(noop, config.key, mode), signed=config.signed, baseline=baseline)
                rows.append(floor)
            for engine, flt in config.filters.items():
                rows.append(Row("%s_%s" % (config.key, engine), "portcullis %s, %s" % (engine, config.label),
                                flt, signed=config.signed, baseline=baseline, floor=floor,
                                expected=config.expected))
        return rows

    def floor(self, binary, name, mode):
        floor = setup.NoopFloor(self.tmp, binary, name, mode)
        self.floors.append(floor)
        return floor

    def milters(self):
        return (self.filters.processes if self.filters else []) + self.floors

    def stop(self):
        for floor in self.floors:
            floor.stop()
        if self.filters:
            self.filters.stop()
        if self.postfix:
            self.postfix.stop()
        self.sink.stop()

    # -- one run

    def use(self, row):
        """Point smtpd at the row's milter; let the old smtpd processes go
        (postfix reload)."""
        self.postfix.set(smtpd_milters=row.milter_socket)
        time.sleep(self.args.settle)
        self.wait_queue_empty()

    def wait_queue_empty(self, timeout=120):
        try:
            harness.wait_until(lambda: "Mail queue is empty" in self.postfix.queue(), timeout,
                               "the Postfix queue to empty", interval=0.5)
        except TimeoutError as error:
            raise TimeoutError("%s; it holds:\n%s" % (error, harness.tail(self.postfix.queue(), 3000))) from None

    def smtp_source(self, row, messages):
        content = ["-F", row.signed.lf_file] if row.signed else ["-l", str(self.args.length)]
        argv = (["smtp-source", "-s", str(self.args.sessions), "-m", str(messages)] + content +
                ["-f", setup.SENDER, "-t", setup.RECIPIENT, "127.0.0.1:%d" % self.postfix.port])
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def bench_cpu_seconds(self):
        """CPU of everything the benchmark runs: this script's children
        (sink, milters, Redis, unbound, smtp-source) and Postfix's master
        and its children."""
        roots = [os.getpid()]
        master = self.postfix.master_pid()
        if master:
            roots.append(master)
        return tree_cpu_seconds(roots, skip_own={os.getpid()})

    def counters(self):
        redis = self.filters.redis.proc.pid if self.filters else None
        return {"box": setup.box_cpu_seconds(), "bench": self.bench_cpu_seconds(),
                "milters": {id(m): m.cpu_seconds() for m in self.milters()},
                "redis": setup.process_cpu_seconds(redis) if redis else 0.0}

    def run_once(self, row, messages):
        """Send MESSAGES; return the measurements once the sink has them all."""
        self.use(row)
        waited, busy_before = setup.wait_for_quiet_box(self.args.quiet_wait)
        load = setup.load_average()
        target = self.sink.count() + messages
        checked_before = row.milter.counters() if row.expected else None
        before, start = self.counters(), time.monotonic()
        source = self.smtp_source(row, messages)
        source_done = None
        deadline = start + self.args.run_timeout
        while self.sink.count() < target:
            if source_done is None and source.poll() is not None:
                source_done = time.monotonic()
                if source.returncode != 0:
                    raise RuntimeError(self.failure(row, "smtp-source exited %d:\n%s" % (
                        source.returncode, source.stdout.read().decode(errors="replace"))))
            if time.monotonic() > deadline:
                source.kill()
                raise RuntimeError(self.failure(row, "only %d of %d messages reached the sink in %ss" % (
                    messages - (target - self.sink.count()), messages, self.args.run_timeout)))
            time.sleep(0.02)
        end, after = time.monotonic(), self.counters()
        source.wait(60)
        source_done = source_done or end
        self.wait_queue_empty()
        result = self.result(row, messages, end - start, source_done - start, before, after)
        result.update(quiet_wait_s=waited, box_busy_before=busy_before, load_before=load)
        if row.expected:
            result["counted"] = self.checked(row, checked_before, messages)
        return result

    def checked(self, row, before, messages):
        try:
            return setup.counted(row.milter, before, messages, row.expected)
        except RuntimeError as error:
            raise RuntimeError(self.failure(row, str(error))) from None

    def result(self, row, messages, wall, accept_wall, before, after):
        per_1000 = 1000.0 / messages
        milter_cpu = {k: after["milters"][k] - before["milters"][k] for k in before["milters"]}
        own = id(row.milter) if row.milter else None
        box, bench = after["box"] - before["box"], after["bench"] - before["bench"]
        return {
            "messages": messages,
            "wall_s": round(wall, 3),
            "delivered_per_s": round(messages / wall, 1),
            "accepted_per_s": round(messages / accept_wall, 1),
            "filter_cpu_s_per_1000": round(milter_cpu[own] * per_1000, 3) if own else None,
            "redis_cpu_s_per_1000": round((after["redis"] - before["redis"]) * per_1000, 3),
            "box_cpu_s_per_1000": round(box * per_1000, 3),
            "bench_cpu_s_per_1000": round(bench * per_1000, 3),
            "other_cpu_s": round(box - bench, 2),
            "idle_milters_cpu_s": round(sum(v for k, v in milter_cpu.items() if k != own), 3),
        }

    def failure(self, row, what):
        text = "%s: %s\n--- Postfix log (tail):\n%s" % (row.label, what, harness.tail(self.postfix.log(), 4000))
        if row.milter:
            text += "\n--- %s log (tail):\n%s" % (row.milter.name, harness.tail(row.milter.log(), 4000))
        return text

    # -- latency

    def latency(self, row, count):
        """One SMTP session of COUNT messages, one after the other, on the
        idle box: the milliseconds from sending each message's final "."
        to reading Postfix's 250."""
        self.use(row)
        setup.wait_for_quiet_box(self.args.quiet_wait)
        checked_before = row.milter.counters() if row.expected else None
        with open(row.signed.file if row.signed else self.plain_file, encoding="utf-8", newline="") as f:
            text = f.read().replace("\r\n", "\n").replace("\n", "\r\n")
        content = re.sub(r"(?m)^\.", "..", text).encode()
        client = harness.SMTPClient(self.postfix.port)
        # Our own Nagle must not hold the "." back until Postfix acknowledges the message.
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        try:
            client.hello("client.bench.example")
            for _ in range(count):
                for command, code in (("MAIL FROM:<%s>" % setup.SENDER, 250), ("RCPT TO:<%s>" % setup.RECIPIENT, 250),
                                      ("DATA", 354)):
                    reply = client.command(command)
                    if reply.code != code:
                        raise RuntimeError(self.failure(row, "latency: %s answered %s" % (command, reply.line)))
                client._send(content)
                start = time.monotonic()
                client._send(b".\r\n")
                reply = client.read_reply(".")
                times.append(round((time.monotonic() - start) * 1000, 3))
                if reply.code != 250:
                    raise RuntimeError(self.failure(row, "latency: the message got %s" % reply.line))
        finally:
            client.close()
        if row.expected:
            self.checked(row, checked_before, count)
        return times

    # -- what Postfix asks the milter

    def milter_conversation(self, row):
        """Send one message with Postfix's verbose logging (smtpd for
        127.0.0.1, cleanup, which sends the message and end of message) and
        return its milter lines: what was negotiated, which events went to
        the milter, which waited for a reply, and the replies."""
        self.postfix.verbose_cleanup = True
        self.postfix.set(debug_peer_list="127.0.0.1")
        try:
            offset = self.postfix.log_size()
            self.run_once(row, 1)
            text = self.postfix.log_since(offset)
        finally:
            self.postfix.verbose_cleanup = False
            self.postfix.set(debug_peer_list="")
        return milter_lines(text)


# ------------------------------------------------------------------ summary

METRICS = ("delivered_per_s", "accepted_per_s", "wall_s", "filter_cpu_s_per_1000", "redis_cpu_s_per_1000",
           "box_cpu_s_per_1000", "bench_cpu_s_per_1000", "other_cpu_s")


def medians(runs):
    out = {}
    for metric in METRICS:
        values = [r[metric] for r in runs if r[metric] is not None]
        out[metric] = round(statistics.median(values), 3) if values else None
    return out


def ratio(row, other):
    """ROW's median delivered/s over OTHER's, and the same within each
    repeat (runs are interleaved: a repeat's runs are minutes apart at most)."""
    median = round(medians(row.runs)["delivered_per_s"] / medians(other.runs)["delivered_per_s"], 3)
    per_repeat = [round(r["delivered_per_s"] / o["delivered_per_s"], 3) for r, o in zip(row.runs, other.runs)]
    return median, per_repeat


def summarise(rows):
    out = []
    for row in rows:
        entry = {"key": row.key, "what_postfix_calls": row.label, "runs": row.runs, "median": medians(row.runs),
                 "compared_with": row.baseline.key, "latency_ms": row.latency_ms,
                 "message": ("signed_messages.py's %s, %d bytes" % (setup.SIGNED_KEY, row.signed.size)
                             if row.signed else "smtp-source -l (generated)")}
        entry["ratio_to_postfix_alone"], entry["ratio_to_postfix_alone_per_repeat"] = ratio(row, row.baseline)
        if row.floor:
            entry["floor"] = row.floor.key
            entry["ratio_to_floor"], entry["ratio_to_floor_per_repeat"] = ratio(row, row.floor)
        if row.latency_ms:
            entry["latency_median_ms"] = round(statistics.median(row.latency_ms), 3)
        out.append(entry)
    return out


def cell(value, digits=2):
    return "-" if value is None else "%.*f" % (digits, value)


def table(entries, sessions):
    lines = ["| what Postfix calls (%d sessions) | delivered/s | x Postfix alone | x same-steps floor | filter CPU "
             "| Redis CPU | whole box CPU | bench processes CPU |" % sessions,
             "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        m = e["median"]
        lines.append("| %s | %.0f | %.2f | %s | %s | %s | %s | %s |" % (
            e["what_postfix_calls"], m["delivered_per_s"], e["ratio_to_postfix_alone"], cell(e.get("ratio_to_floor")),
            cell(m["filter_cpu_s_per_1000"]), cell(m["redis_cpu_s_per_1000"] or None), cell(m["box_cpu_s_per_1000"]),
            cell(m["bench_cpu_s_per_1000"])))
    return "\n".join(lines)


def latency_table(entries, count):
    lines = ["| what Postfix calls | median ms, end of DATA to 250 | min | max |", "|---|---|---|---|"]
    for e in entries:
        if e["latency_ms"]:
            lines.append("| %s | %.2f | %.2f | %.2f |" % (e["what_postfix_calls"], e["latency_median_ms"],
                                                         min(e["latency_ms"]), max(e["latency_ms"])))
    return "\n".join(lines) + "\n(one SMTP session of %d messages for each)" % count


def notes(entries, steps):
    """The baselines, the steps the floors negotiate, what the filters
    counted, the other CPU and the load during the runs."""
    by_key = {e["key"]: e for e in entries}
    lines = ["\nx Postfix alone: against Postfix alone sending the same message: %s." % "; ".join(
        "%s: %s" % (e["what_postfix_calls"], e["message"]) for e in entries if e["compared_with"] == e["key"])]
    for e in entries:
        if "ratio_to_floor" in e:
            lines.append("%s: x Postfix alone per repeat %s; x floor per repeat %s" % (
                e["key"], e["ratio_to_postfix_alone_per_repeat"], e["ratio_to_floor_per_repeat"]))
    for key, by_engine in steps.items():
        lines.append("protocol steps %s agrees to with Postfix's offer: %s" % (
            key, ", ".join("%s %s" % item for item in by_engine.items())))
    for e in entries:
        counted = [r["counted"] for r in e["runs"] if "counted" in r]
        if counted:
            lines.append("%s: every run counted %s" % (e["key"], counted[0]))
    others = [r["other_cpu_s"] for e in entries for r in e["runs"]]
    loads = [r["load_before"][0] for e in entries for r in e["runs"]]
    lines.append("CPU outside the benchmark's processes: median %.1f s, max %.1f s per run. "
                 "1-minute load average before the runs: %.2f to %.2f." % (
                     statistics.median(others), max(others), min(loads), max(loads)))
    for key, what, against, kind, bound in TARGETS:
        if key not in by_key:
            continue
        e = by_key[key]
        if against:
            if against not in by_key:
                continue
            value, label = e["ratio_to_floor"], "%s x %s" % (what, against)
        else:
            value, label = e["median"]["filter_cpu_s_per_1000"], what
        met = value >= bound if kind == "min" else value <= bound
        lines.append("target %s %s %s %.2f: %.3f, %s" % (key, label, ">=" if kind == "min" else "<=", bound, value,
                                                         "met" if met else "MISSED"))
    for e in entries:
        if e["key"].endswith("_native") and e["latency_ms"]:
            value = e["latency_median_ms"]
            lines.append("target %s latency <= %.0f ms: %.2f, %s" % (
                e["key"], LATENCY_TARGET_MS, value, "met" if value <= LATENCY_TARGET_MS else "MISSED"))
    return "\n".join(lines)


def environment(args):
    version = harness.run([args.bin, "version"], check=False).stdout.strip() if os.access(args.bin, os.X_OK) else ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "postfix": harness.run(["postconf", "-d", "-h", "mail_version"], check=False).stdout.strip(),
        "portcullis": version.splitlines()[0] if version else None, "portcullis_bin": args.bin,
        "smtp_source": "-s %d -m %d (-l %d, or -F the signed message) -f %s -t %s" % (
            args.sessions, args.messages, args.length, setup.SENDER, setup.RECIPIENT),
        "postfix_limits": POSTFIX_LIMITS, "noop_source": args.noop_source,
    }


# --------------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    setup.add_arguments(parser)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--length", type=int, default=5120, help="message payload bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-messages", type=int, default=20,
                        help="messages of the latency session (0: no latency measurement)")
    parser.add_argument("--only-postfix", action="store_true", help="measure Postfix alone (no filter)")
    parser.add_argument("--no-conversation", action="store_true",
                        help="skip logging which milter events Postfix sends")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait after postfix reload")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds one run may take")
    args = setup.parse_arguments(parser)
    return args


def progress(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("throughput.py: run as root (it starts Postfix)")
    if not args.only_postfix and not os.access(args.bin, os.X_OK):
        sys.exit("throughput.py: no portcullis binary at %s (set PORTCULLIS_BIN or --bin)" % args.bin)
    tmp = harness.TempDir(prefix="portcullis-bench-")
    bench = Bench(args, tmp)
    load_at_start = setup.load_average()
    try:
        bench.start()
        rows = bench.rows()
        bench.plain_file = setup.plain_message(os.path.join(tmp.path, "latency.eml"), args.length)
        for row in rows:   # a short smoke run each: fail before measuring anything
            progress("warm-up: %s" % row.label)
            bench.run_once(row, min(200, args.messages))
        for repeat in range(args.repeats):
            for row in rows:
                run = bench.run_once(row, args.messages)
                row.runs.append(run)
                progress("run %d/%d %-70s %6.1f/s  CPU s/1000: filter %s box %.2f bench %.2f"
                         "  (others %.1f s; load %.2f; waited %.0f s for a quiet box)" % (
                             repeat + 1, args.repeats, row.label, run["delivered_per_s"],
                             run["filter_cpu_s_per_1000"], run["box_cpu_s_per_1000"],
                             run["bench_cpu_s_per_1000"], run["other_cpu_s"], run["load_before"][0],
                             run["quiet_wait_s"]))
        if args.latency_messages > 0:
            for row in rows:
                row.latency_ms = bench.latency(row, args.latency_messages)
                progress("latency %-70s median %.2f ms" % (row.label, statistics.median(row.latency_ms)))
        conversations = {}
        if not args.no_conversation:
            for row in rows:
                if row.milter:
                    conversations[row.key] = bench.milter_conversation(row)
    finally:
        bench.stop()
        tmp.cleanup()
    load_at_end = setup.load_average()
    entries = summarise(rows)
    print(table(entries, args.sessions))
    if args.latency_messages > 0:
        print()
        print(latency_table(entries, args.latency_messages))
    print(notes(entries, bench.steps))
    print("Load average (1, 5, 15 min): %s at the start, %s at the end." % (load_at_start, load_at_end))
    for key, lines in conversations.items():
        print("\nmilter conversation for one message (%s), from Postfix's verbose log:" % key)
        print("\n".join("  " + l for l in lines) or "  (nothing logged)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(args), "load_average": {"start": load_at_start, "end": load_at_end},
                       "protocol_steps": bench.steps, "configurations": entries,
                       "milter_conversations": conversations}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
