#!/usr/bin/env python3
"""throughput.py: delivered messages per second through a private Postfix on
loopback, with and without the Portcullis milter, in one run.

One Postfix instance (tests/e2e/harness.py's, plus the limits below), one
smtp-sink as its next hop, one private unbound (the harness's) as every
filter's resolver, and three filter processes: one on the shipped
default policy (smtp-source connects from 127.0.0.1, which it trusts, so
every connection is accepted at connect) and one on a copy of that policy
whose trusted networks leave out 127.0.0.0/8, whose local domains list
the recipient's domain, whose greylist skip list holds 127.0.0.1 and whose
per-client flood guard allows more than a run sends (every rule runs, the
greylist rule's condition and the rate count included; the mail is still
delivered), and one on that copy with auth.authserv_id set, so that every
message gets SPF, DKIM and DMARC checked and our Authentication-Results
header.  smtp-source sends its own 5 KB message, or for the last filter
(and a second run of Postfix alone) a 5 KB message signed with RSA-2048 by
signed_messages.py, whose key, SPF record and DMARC record (p=reject) the
unbound serves; the filter's metrics must then count spf=pass, dkim=pass
and dmarc=pass for every message, or the run is invalid and stops.
Configurations differ only in smtpd_milters (changed with postfix reload)
and in that message, and are measured in turn, REPEATS times each.  For
each run: the wall time from starting smtp-source until smtp-sink has
counted every message, messages per second (and the ratio to Postfix
alone sending the same message), and CPU seconds per 1000 messages of the
filter (/proc/PID/stat), of the whole box (/proc/stat) and of the benchmark's own
processes (Postfix, sink, filter, smtp-source: the box is shared, so each run
first waits, up to --quiet-wait seconds, for it to be idle).  Then one
message per filter with Postfix's verbose milter logging, to show which
events it sends.  Prints a table of the medians and writes everything as
JSON with --json.  Needs root.
"""

import argparse
import datetime
import ipaddress
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import harness  # noqa: E402  (read-only: shared with the end-to-end tests)
from test_auth import DEBIAN_PYTHON, txt  # noqa: E402  (python3-dkim's python; a TXT record for unbound)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SENDER = "sender@example.net"   # also the signed message's From, and its d=
RECIPIENT = "rcpt@example.com"
SENDER_DOMAIN = SENDER.split("@", 1)[1]
AUTHSERV_ID = "mx.bench"
SIGNED_KEY = "rsa2048"   # which of signed_messages.py's messages smtp-source sends

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


# ------------------------------------------------------------- CPU counters

def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads, live and finished)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def box_cpu_seconds():
    """Busy CPU time of the whole machine: all of /proc/stat's cpu line but
    idle and iowait (guest time is already inside user)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def tree_cpu_seconds(roots, skip_own=()):
    """CPU time of the process trees under ROOTS: for every live process in
    them its own utime+stime plus its reaped children's (cutime+cstime), so
    a child that ended during the run still counts, once.  SKIP_OWN: roots
    whose own time is left out (this script's polling)."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = _stat_fields(int(name))
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
    return ticks / CLOCK_TICKS


def wait_for_quiet_box(max_wait, busy_limit=0.1, window=1.0):
    """Wait until the machine was busy less than BUSY_LIMIT CPU seconds per
    second over a WINDOW (other people's builds share it), at most MAX_WAIT
    seconds.  Returns (seconds waited, busy CPU seconds per second seen last)."""
    start = time.monotonic()
    while True:
        before = box_cpu_seconds()
        time.sleep(window)
        busy = (box_cpu_seconds() - before) / window
        waited = time.monotonic() - start
        if busy < busy_limit or waited >= max_wait:
            return round(waited, 1), round(busy, 2)


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


# ------------------------------------------------------- the signed message

class SignedMessage:
    """signed_messages.py's RSA-2048 message (5120 bytes) as a file for
    smtp-source -F, which sends each line with CRLF appended (so the file
    has bare LF ends), and the DNS records under which its SPF, DKIM and
    DMARC pass: the sender domain's SPF record (listing 127.0.0.1, although
    libspf2 passes a loopback client without looking), the key record and
    v=DMARC1; p=reject."""

    def __init__(self, tmp):
        directory = tmp.sub("signed")
        harness.run([DEBIAN_PYTHON, os.path.join(HERE, "signed_messages.py"), directory])
        with open(os.path.join(directory, SIGNED_KEY + ".eml"), "rb") as f:
            message = f.read()
        self.size = len(message)
        self.file = os.path.join(directory, SIGNED_KEY + ".lf")
        with open(self.file, "wb") as f:
            f.write(message.replace(b"\r\n", b"\n"))
        with open(os.path.join(directory, SIGNED_KEY + ".dns")) as f:
            key_name, key_record = f.read().strip().split(" ", 1)
        self.records = {
            SENDER_DOMAIN: ['TXT "v=spf1 ip4:127.0.0.1 -all"'],
            key_name: [txt(key_record)],
            "_dmarc." + SENDER_DOMAIN: ['TXT "v=DMARC1; p=reject"'],
        }


# ------------------------------------------------------------------- filter

# The default policy's inbound flood guard: all of a run's messages come
# from one address, and 300 a minute would defer most of them.
FLOOD_GUARD = re.compile(r"(?m)^(\s*ratelimit client\.ip )300/1m( if not authenticated)$")
FLOOD_GUARD_RATE = "1000000/1m"


def copy_untrusting_policy(source_policies, dest, domain, client="127.0.0.1"):
    """Copy the policy dir; drop every trusted network that covers CLIENT,
    add DOMAIN to the local domains and CLIENT to the greylist skip list
    (smtp-source never retries), and raise the flood guard's rate so that
    it counts every message and defers none.  Returns the rules file."""
    shutil.copytree(source_policies, dest)
    rules = os.path.join(dest, "default.rules")
    with open(rules) as f:
        text, raised = FLOOD_GUARD.subn(r"\g<1>%s\g<2>" % FLOOD_GUARD_RATE, f.read())
    if raised != 1:
        raise RuntimeError("%s: no flood guard rule like %r to raise" % (rules, FLOOD_GUARD.pattern))
    harness.write_file(rules, text)
    trusted = os.path.join(dest, "lists", "trusted-networks.txt")
    with open(trusted) as f:
        lines = f.read().splitlines()
    kept = [l for l in lines if not _covers(l, client)]
    harness.write_file(trusted, "\n".join(kept) + "\n")
    with open(os.path.join(dest, "lists", "local-domains.txt"), "a") as f:
        f.write(domain + "\n")
    with open(os.path.join(dest, "lists", "greylist-skip-networks.txt"), "a") as f:
        f.write(client + "\n")
    return rules


def _covers(line, address):
    entry = line.split("#", 1)[0].strip()
    try:
        return bool(entry) and ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


AUTH_RESULT_LINE = re.compile(r'(?m)^portcullis_auth_results_total\{method="(\w+)",result="(\w+)"\} (\S+)$')


class FilterProcess:
    """portcullis run -f on a policy file, milter socket on a free loopback
    port, its log (info, stderr) in a file.  SETTINGS: {section: {key:
    value}} added to the config."""

    def __init__(self, tmp, name, policy_file, binary, settings=None):
        self.name = name
        self.dir = tmp.sub(name)
        self.binary = binary
        self.policy_file = policy_file
        self.port = harness.free_port()
        self.log_file = os.path.join(self.dir, "stderr.log")
        self.config_file = os.path.join(self.dir, "portcullis.conf")
        config = {
            "milter": {"socket": "inet:%d@127.0.0.1" % self.port, "user": ""},
            "policy": {"file": policy_file},
            "log": {"target": "stderr", "level": "info"},
            "store": {"backend": "memory"},
        }
        for section, values in (settings or {}).items():
            config.setdefault(section, {}).update(values)
        self.metrics_listen = config.get("metrics", {}).get("listen")
        harness.write_file(self.config_file, "".join(
            "[%s]\n%s\n" % (section, "".join("%s = %s\n" % (k, harness.toml_value(v)) for k, v in values.items()))
            for section, values in config.items()))
        self.proc = None

    @property
    def postfix_socket(self):
        return "inet:127.0.0.1:%d" % self.port

    def check(self):
        proc = harness.run([self.binary, "check", "-c", self.config_file], check=False)
        if proc.returncode != 0:
            raise RuntimeError("portcullis check -c %s failed:\n%s" % (self.config_file, proc.stdout))

    def start(self):
        self.check()
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen([self.binary, "run", "-f", "-c", self.config_file],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        harness.wait_until(lambda: harness.can_connect(("inet", self.port)) or self.proc.poll() is not None,
                           20, "portcullis (%s) to listen" % self.name)
        if self.proc.poll() is not None:
            raise RuntimeError("portcullis (%s) exited %d:\n%s" % (self.name, self.proc.returncode, self.log()))
        return self

    def cpu_seconds(self):
        return process_cpu_seconds(self.proc.pid)

    def auth_results(self):
        """{(method, result): count} of portcullis_auth_results_total, from
        the filter's /metrics (metrics.listen must be set)."""
        with urllib.request.urlopen("http://%s/metrics" % self.metrics_listen, timeout=10) as response:
            text = response.read().decode()
        return {(method, result): float(value) for method, result, value in AUTH_RESULT_LINE.findall(text)}

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with open(self.log_file, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_lines(self):
        return self.log().count("\n")

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -------------------------------------------------------------- measurement

class Configuration:
    """What Postfix calls (no milter, or one of the filters), what
    smtp-source sends (its own message, or MESSAGE: a SignedMessage), and
    BASELINE: the configuration of Postfix alone sending the same (itself
    when not given).  VERIFY_AUTH: every message must pass SPF, DKIM and
    DMARC, as the filter's metrics count them."""

    def __init__(self, key, label, flt=None, message=None, baseline=None, verify_auth=False):
        self.key, self.label, self.filter, self.message = key, label, flt, message
        self.baseline = baseline or self
        self.verify_auth = verify_auth
        self.runs = []

    @property
    def milter(self):
        return self.filter.postfix_socket if self.filter else ""


class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.sink = CountingSink(tmp)
        self.postfix = None
        self.unbound = None
        self.filters = []

    # -- setup

    def start(self):
        self.sink.start()
        self.postfix = BenchPostfix(self.tmp, self.sink.port, **POSTFIX_LIMITS).start()

    def start_unbound(self, records):
        """The filters' resolver: no query leaves the box."""
        self.unbound = harness.Unbound(self.tmp, records).start()

    def add_filter(self, name, policy_file, authenticate=False):
        """A filter resolving through our unbound; AUTHENTICATE: with our
        Authentication-Results header (so every check runs on every
        message) and metrics, to count what they found."""
        settings = {"dns": {"resolver": self.unbound.forwarder}}
        if authenticate:
            settings["auth"] = {"authserv_id": AUTHSERV_ID}
            settings["metrics"] = {"listen": "127.0.0.1:%d" % harness.free_port()}
        flt = FilterProcess(self.tmp, name, policy_file, self.args.bin, settings).start()
        self.filters.append(flt)
        return flt

    def stop(self):
        for flt in self.filters:
            flt.stop()
        if self.unbound:
            self.unbound.stop()
        if self.postfix:
            self.postfix.stop()
        self.sink.stop()

    # -- one run

    def use(self, config):
        """Point smtpd at the configuration's milter; let the old smtpd
        processes go (postfix reload)."""
        self.postfix.set(smtpd_milters=config.milter)
        time.sleep(self.args.settle)
        self.wait_queue_empty()

    def wait_queue_empty(self, timeout=120):
        harness.wait_until(lambda: "Mail queue is empty" in self.postfix.queue(), timeout,
                           "the Postfix queue to empty", interval=0.5)

    def smtp_source(self, config, messages):
        content = ["-F", config.message.file] if config.message else ["-l", str(self.args.length)]
        argv = (["smtp-source", "-s", str(self.args.sessions), "-m", str(messages)] + content +
                ["-f", SENDER, "-t", RECIPIENT, "127.0.0.1:%d" % self.postfix.port])
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def bench_cpu_seconds(self):
        """CPU of everything the benchmark runs: this script's children
        (sink, filters, smtp-source) and Postfix's master and its children."""
        roots = [os.getpid()]
        master = self.postfix.master_pid()
        if master:
            roots.append(master)
        return tree_cpu_seconds(roots, skip_own={os.getpid()})

    def counters(self):
        return {"box": box_cpu_seconds(), "bench": self.bench_cpu_seconds(),
                "filters": {f.name: f.cpu_seconds() for f in self.filters},
                "filter_log_lines": {f.name: f.log_lines() for f in self.filters}}

    def run_once(self, config, messages):
        """Send MESSAGES; return the measurements once the sink has them all."""
        self.use(config)
        waited, busy_before = wait_for_quiet_box(self.args.quiet_wait)
        target = self.sink.count() + messages
        auth_before = config.filter.auth_results() if config.verify_auth else None
        before, start = self.counters(), time.monotonic()
        source = self.smtp_source(config, messages)
        source_done = None
        deadline = start + self.args.run_timeout
        while self.sink.count() < target:
            if source_done is None and source.poll() is not None:
                source_done = time.monotonic()
                if source.returncode != 0:
                    raise RuntimeError(self.failure(config, "smtp-source exited %d:\n%s" % (
                        source.returncode, source.stdout.read().decode(errors="replace"))))
            if time.monotonic() > deadline:
                source.kill()
                raise RuntimeError(self.failure(config, "only %d of %d messages reached the sink in %ss" % (
                    messages - (target - self.sink.count()), messages, self.args.run_timeout)))
            time.sleep(0.02)
        end, after = time.monotonic(), self.counters()
        source.wait(60)
        source_done = source_done or end
        self.wait_queue_empty()
        result = self.result(config, messages, end - start, source_done - start, before, after)
        result.update(quiet_wait_s=waited, box_busy_before=busy_before)
        if config.verify_auth:
            result["auth_results"] = self.passed_auth(config, messages, auth_before)
        return result

    def passed_auth(self, config, messages, before):
        """The filter's SPF, DKIM and DMARC results during the run, which
        must be one pass of each per message: a run that measured failing
        checks, or none, measured something else."""
        after = config.filter.auth_results()
        found = {"%s=%s" % key: round(value - before.get(key, 0)) for key, value in after.items()
                 if value != before.get(key, 0)}
        wanted = {"spf=pass": messages, "dkim=pass": messages, "dmarc=pass": messages}
        if found != wanted:
            raise RuntimeError(self.failure(config, "invalid run: the filter counted %s for %d messages, not %s"
                                            % (found, messages, wanted)))
        return found

    def result(self, config, messages, wall, accept_wall, before, after):
        per_1000 = 1000.0 / messages
        filter_cpu = {n: after["filters"][n] - before["filters"][n] for n in before["filters"]}
        own = config.filter.name if config.filter else None
        box, bench = after["box"] - before["box"], after["bench"] - before["bench"]
        return {
            "messages": messages,
            "wall_s": round(wall, 3),
            "delivered_per_s": round(messages / wall, 1),
            "accepted_per_s": round(messages / accept_wall, 1),
            "filter_cpu_s_per_1000": round(filter_cpu[own] * per_1000, 3) if own else None,
            "box_cpu_s_per_1000": round(box * per_1000, 3),
            "bench_cpu_s_per_1000": round(bench * per_1000, 3),
            "other_cpu_s": round(box - bench, 2),
            "idle_filters_cpu_s": round(sum(v for n, v in filter_cpu.items() if n != own), 3),
            "filter_log_lines": (after["filter_log_lines"][own] - before["filter_log_lines"][own]) if own else None,
        }

    def failure(self, config, what):
        text = "%s: %s\n--- Postfix log (tail):\n%s" % (config.label, what, harness.tail(self.postfix.log(), 4000))
        if config.filter:
            text += "\n--- portcullis log (tail):\n%s" % harness.tail(config.filter.log(), 4000)
        return text

    # -- what Postfix asks the milter

    def milter_conversation(self, config):
        """Send one message with Postfix's verbose logging (smtpd for
        127.0.0.1, cleanup, which sends the message and end of message) and
        return its milter lines: what was negotiated, which events went to
        the filter, which waited for a reply, and the replies."""
        self.postfix.verbose_cleanup = True
        self.postfix.set(debug_peer_list="127.0.0.1")
        try:
            offset = self.postfix.log_size()
            self.run_once(config, 1)
            text = self.postfix.log_since(offset)
        finally:
            self.postfix.verbose_cleanup = False
            self.postfix.set(debug_peer_list="")
        return milter_lines(text)


# ------------------------------------------------------------------ summary

METRICS = ("delivered_per_s", "accepted_per_s", "wall_s", "filter_cpu_s_per_1000", "box_cpu_s_per_1000",
           "bench_cpu_s_per_1000", "other_cpu_s")


def medians(runs):
    out = {}
    for metric in METRICS:
        values = [r[metric] for r in runs if r[metric] is not None]
        out[metric] = round(statistics.median(values), 3) if values else None
    return out


def summarise(configs):
    rows = []
    for config in configs:
        baseline = config.baseline
        row = {"key": config.key, "what_postfix_calls": config.label, "runs": config.runs,
               "median": medians(config.runs), "compared_with": baseline.key}
        row["ratio_to_postfix_alone"] = round(
            row["median"]["delivered_per_s"] / medians(baseline.runs)["delivered_per_s"], 3)
        # Runs are interleaved (alone, trusted, untrusted, alone, ...): each
        # repeat's ratio compares runs made a few seconds apart.
        row["ratio_per_repeat"] = [round(r["delivered_per_s"] / a["delivered_per_s"], 3)
                                   for r, a in zip(config.runs, baseline.runs)]
        row["message"] = ("signed_messages.py's %s, %d bytes" % (SIGNED_KEY, config.message.size)
                          if config.message else "smtp-source -l (generated)")
        row["policy_file"] = config.filter.policy_file if config.filter else None
        rows.append(row)
    return rows


def table(rows, sessions):
    def cell(value):
        return "-" if value is None else "%.2f" % value
    lines = ["| what Postfix calls | sessions | delivered/s | x Postfix alone | filter CPU | whole box CPU "
             "| bench processes CPU |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        m = row["median"]
        lines.append("| %s | %d | %.0f | %.2f | %s | %s | %s |" % (
            row["what_postfix_calls"], sessions, m["delivered_per_s"], row["ratio_to_postfix_alone"],
            cell(m["filter_cpu_s_per_1000"]), cell(m["box_cpu_s_per_1000"]), cell(m["bench_cpu_s_per_1000"])))
    return "\n".join(lines)


def contention_note(rows):
    """How much CPU processes outside the benchmark took during the runs
    (this machine is shared): the whole-box column includes it."""
    others = [r["other_cpu_s"] for row in rows for r in row["runs"]]
    return ("\nCPU outside the benchmark's processes during the runs (kernel work not charged to a "
            "process, and anything else running): median %.1f s, max %.1f s per run."
            % (statistics.median(others), max(others)))


def baseline_note(rows):
    """What each Postfix-alone row sent (the others are compared with the
    one that sent the same), and what the authenticating filter's metrics
    counted."""
    lines = ["\nx Postfix alone: against Postfix alone sending the same message: %s." % "; ".join(
        "%s: %s" % (row["what_postfix_calls"], row["message"]) for row in rows if row["compared_with"] == row["key"])]
    for row in rows:
        counted = [r["auth_results"] for r in row["runs"] if "auth_results" in r]
        if counted:
            lines.append("%s: the filter counted %s in %d runs of %d messages: every message passed." % (
                row["key"], ", ".join(sorted(counted[0])), len(counted), row["runs"][0]["messages"]))
    return "\n".join(lines)


def environment(args):
    version = harness.run([args.bin, "version"], check=False).stdout.strip() if os.access(args.bin, os.X_OK) else ""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "postfix": harness.run(["postconf", "-d", "-h", "mail_version"], check=False).stdout.strip(),
        "portcullis": version.splitlines()[0] if version else None, "portcullis_bin": args.bin,
        "smtp_source": "-s %d -m %d (-l %d, or -F the signed message) -f %s -t %s" % (
            args.sessions, args.messages, args.length, SENDER, RECIPIENT),
        "postfix_limits": POSTFIX_LIMITS,
    }


# --------------------------------------------------------------------- main

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--bin", default=harness.BIN, help="portcullis binary (default $PORTCULLIS_BIN or build/)")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--length", type=int, default=5120, help="message payload bytes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-postfix", action="store_true", help="measure Postfix alone (no filter)")
    parser.add_argument("--no-conversation", action="store_true",
                        help="skip logging which milter events Postfix sends")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait after postfix reload")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds one run may take")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="at most this many seconds to wait before a run for the box to be idle")
    return parser.parse_args()


def configurations(bench, args):
    alone = Configuration("postfix_alone", "nothing")
    configs = [alone]
    if args.only_postfix:
        return configs
    signed = SignedMessage(bench.tmp)
    bench.start_unbound(signed.records)
    shipped = os.path.join(harness.SOURCE_DIR, "policies", "default.rules")
    untrusting = copy_untrusting_policy(os.path.join(harness.SOURCE_DIR, "policies"),
                                        os.path.join(bench.tmp.path, "policy-untrusted"),
                                        RECIPIENT.split("@", 1)[1])
    configs.append(Configuration("trusted", "portcullis, default policy, trusted client (accepted at connect)",
                                 bench.add_filter("filter-trusted", shipped), baseline=alone))
    configs.append(Configuration("untrusted", "portcullis, default policy, untrusted client (every rule runs)",
                                 bench.add_filter("filter-untrusted", untrusting), baseline=alone))
    alone_signed = Configuration("postfix_alone_signed", "nothing, DKIM-signed message", message=signed)
    configs.append(alone_signed)
    configs.append(Configuration(
        "auth", "portcullis, as untrusted, with Authentication-Results (SPF, DKIM, DMARC pass); signed message",
        bench.add_filter("filter-auth", untrusting, authenticate=True), message=signed, baseline=alone_signed,
        verify_auth=True))
    return configs


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
    try:
        bench.start()
        configs = configurations(bench, args)
        for config in configs:   # a short smoke run each: fail before measuring anything
            progress("warm-up: %s" % config.label)
            bench.run_once(config, min(200, args.messages))
        for repeat in range(args.repeats):
            for config in configs:
                run = bench.run_once(config, args.messages)
                config.runs.append(run)
                progress("run %d/%d %-66s %6.1f/s  CPU s/1000: filter %s box %.2f bench %.2f"
                         "  (others %.1f s; waited %.0f s for a quiet box)" % (
                             repeat + 1, args.repeats, config.label, run["delivered_per_s"],
                             run["filter_cpu_s_per_1000"], run["box_cpu_s_per_1000"],
                             run["bench_cpu_s_per_1000"], run["other_cpu_s"], run["quiet_wait_s"]))
        conversations = {}
        if not args.no_conversation:
            for config in configs:
                if config.filter:
                    conversations[config.key] = bench.milter_conversation(config)
    finally:
        bench.stop()
        tmp.cleanup()
    rows = summarise(configs)
    print(table(rows, args.sessions))
    print(baseline_note(rows))
    print(contention_note(rows))
    for key, lines in conversations.items():
        print("\nmilter conversation for one message (%s), from Postfix's verbose log:" % key)
        print("\n".join("  " + l for l in lines) or "  (nothing logged)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": environment(args), "configurations": rows,
                       "milter_conversations": conversations}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
