"""End-to-end test harness for Portcullis.

Runs the real pieces on loopback: a private Postfix instance (smtpd with the
filter as its milter, everything relayed on to an smtp-sink), swaks as the
SMTP client, Sendmail 8.17 from its unpacked .deb in its own network
namespace, miltertest, and the portcullis binary itself.  Standard library
only.  Everything lives in a temp dir that is removed afterwards unless
PORTCULLIS_KEEP_TMP=1; a failing test's message carries the filter's stderr
and the Postfix log.
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PORTCULLIS_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PORTCULLIS_BIN") or os.path.join(SOURCE_DIR, "build", "filter", "portcullis")
KEEP_TMP = os.environ.get("PORTCULLIS_KEEP_TMP") == "1"
# The milter engine every Filter runs on unless a test says: "native" (the
# default) or "libmilter" (test_libmilter_engine.py runs the core
# scenarios on it).
ENGINE = os.environ.get("PORTCULLIS_ENGINE", "native")
CACHE_DIR = os.environ.get("PORTCULLIS_E2E_CACHE", "/var/tmp/portcullis-e2e-cache")

# Addresses the tests pose as (documentation ranges; XCLIENT makes Postfix
# and the filter believe them, no packet ever goes there).
EXTERNAL_IP = "203.0.113.5"
TRUSTED_IP = "192.0.2.10"

BASE_POLICY = """\
list trusted ip { 127.0.0.0/8 ::1 192.0.2.0/24 }
list local_domains domain { example.com }
"""
RELAY_RULES = """\
on connect { accept if client.ip in trusted }
on rcpt {
    reject 554 5.7.1 "Relay access denied" if not rcpt.domain in local_domains and not authenticated
}
"""


# ---------------------------------------------------------------- utilities

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns something truthy; return that.
    Raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def can_connect(spec):
    """True when a stream socket given as ("inet", port) or ("unix", path) accepts."""
    kind, where = spec
    family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
    address = where if kind == "unix" else ("127.0.0.1", where)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(address)
            return True
        except OSError:
            return False


def run(argv, timeout=60, check=True, **kwargs):
    """subprocess.run with text output captured; raises with the output on failure."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(argv), proc.returncode, proc.stdout))
    return proc


def write_file(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def tail(text, max_chars=6000):
    return text if len(text) <= max_chars else "[...]\n" + text[-max_chars:]


class TempDir:
    """A temp dir, readable by the postfix user, removed by cleanup()
    unless PORTCULLIS_KEEP_TMP=1."""

    def __init__(self, prefix="portcullis-e2e-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)

    def sub(self, name, mode=0o755):
        path = os.path.join(self.path, name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        return path

    def cleanup(self):
        if KEEP_TMP:
            sys.stderr.write("e2e: keeping %s\n" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------- sink

SINK_MARKER = "=== portcullis-e2e sink message ==="


class Message:
    """One transaction as smtp-sink dumped it."""

    def __init__(self, chunk):
        self.raw = chunk           # as dumped, for checks of exact bytes
        lines = chunk.replace("\r\n", "\n").split("\n")
        self.headers = []          # [(name, value)], sink's X-* records included
        index = 0
        while index < len(lines) and lines[index] != "":
            line = lines[index]
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + "\n" + line)
            elif ":" in line:
                name, value = line.split(":", 1)
                self.headers.append((name, value.strip()))
            index += 1
        body = lines[index + 1:]
        while body and body[-1] == "":
            body.pop()
        self.body = "\n".join(body)
        mail_args = self.header("X-Mail-Args") or ""
        self.sender = _angle_address(mail_args, "FROM")
        self.recipients = [_angle_address(v, "TO") for v in self.header_all("X-Rcpt-Args")]
        self.client_addr = self.header("X-Client-Addr")

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        values = self.header_all(name)
        return values[0] if values else None

    def __repr__(self):
        return "<Message from=<%s> to=%s headers=%s>" % (
            self.sender, self.recipients, [n for n, _ in self.headers])


def _angle_address(args, keyword):
    match = re.match(r"\s*(?:%s:)?\s*<([^>]*)>" % keyword, args, re.I)
    return match.group(1) if match else None


class Sink:
    """smtp-sink on a free port, dumping every transaction to one file."""

    def __init__(self, tmp):
        self.dir = tmp.sub("sink", 0o777)
        self.dump = os.path.join(self.dir, "dump")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "postfix", "-h", "sink.test.invalid",
             "-S", SINK_MARKER + "\\n", "-D", self.dump,
             "127.0.0.1:%d" % self.port, "100"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: can_connect(("inet", self.port)), 10, "smtp-sink to listen")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def raw(self):
        try:
            with open(self.dump, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def messages(self):
        """Every message so far, read once the dump has stopped growing for a
        moment, so a half-written transaction is not taken for a whole one."""
        while True:
            before = len(self.raw())
            time.sleep(0.1)
            text = self.raw()
            if len(text) == before:
                return [Message(c) for c in text.split(SINK_MARKER + "\n")[1:]]

    def wait_for(self, count, timeout=30):
        """Wait until at least `count` messages were received; return them all."""
        def enough():
            messages = self.messages()
            return messages if len(messages) >= count else None
        return wait_until(enough, timeout, "%d message(s) at the sink" % count, interval=0.1)

    def messages_for(self, queue_id):
        """The deliveries of one Postfix queue file (its Received: names the id)."""
        pattern = re.compile(r"\bid %s\b" % re.escape(queue_id))
        return [m for m in self.messages()
                if any(pattern.search(v) for v in m.header_all("Received"))]


# ------------------------------------------------------------------ postfix

MASTER_CF = """\
{smtpd_listen} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
local     unix  - n n -    - local
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A private Postfix instance: smtpd on 127.0.0.1:PORT, relaying
    everything (relay control is the filter's job) to the sink."""

    def __init__(self, tmp, sink_port, milter=None, name="postfix", **params):
        self.dir = tmp.sub(name)
        self.port = free_port()
        self.maillog = os.path.join(self.dir, "maillog")
        nexthop = "smtp:[127.0.0.1]:%d" % sink_port
        self.params = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.dir,
            "myhostname": "mx.test.invalid",
            "mydomain": "test.invalid",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "all",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "append_dot_mydomain": "no",
            "biff": "no",
            # Postfix's own checks must not stop relaying: the filter does.
            "relay_domains": "static:ALL",
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "default_transport": nexthop,
            "relay_transport": nexthop,
            # No DNS, ever.
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            # Tests send many recipients and provoke many errors quickly.
            "smtpd_recipient_limit": "20000",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "10000",
            "smtpd_hard_error_limit": "20000",
            "smtpd_timeout": "60s",
            "default_destination_recipient_limit": "1000",
            # Short queue life: nothing should wait long.
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "maximal_queue_lifetime": "5m",
            "bounce_queue_lifetime": "5m",
            "delay_warning_time": "0",
            "notify_classes": "",
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "20s",
            "milter_content_timeout": "30s",
            "smtpd_milters": milter or "",
        }
        self.params.update(params)

    # -- lifecycle

    def _postfix(self, *args, timeout=60, check=True):
        return run(["postfix", "-c", self.dir] + list(args), timeout=timeout, check=check)

    def write_config(self):
        os.makedirs(self.params["queue_directory"], mode=0o755, exist_ok=True)
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            for key, value in self.params.items():
                f.write("%s = %s\n" % (key, value))
        write_file(os.path.join(self.dir, "master.cf"),
                   MASTER_CF.format(smtpd_listen="127.0.0.1:%d" % self.port))

    def start(self):
        self.write_config()
        proc = self._postfix("start", check=False)
        if proc.returncode != 0:
            raise RuntimeError("postfix start failed (%d): %s\n--- maillog:\n%s"
                               % (proc.returncode, proc.stdout, tail(self.log())))
        wait_until(lambda: can_connect(("inet", self.port)), 20, "Postfix smtpd to listen")
        return self

    def stop(self):
        self._postfix("stop", check=False)
        pid_file = os.path.join(self.params["queue_directory"], "pid", "master.pid")
        try:
            wait_until(lambda: not _pid_file_alive(pid_file), 20, "Postfix master to exit")
        except TimeoutError:
            self._postfix("abort", check=False)

    def set(self, **params):
        """Change main.cf parameters and reload the running instance."""
        self.params.update(params)
        self.write_config()
        self._postfix("reload")

    def flush(self):
        run(["postqueue", "-c", self.dir, "-f"], check=False)

    def queue(self):
        """The output of postqueue -p (mailq)."""
        return run(["postqueue", "-c", self.dir, "-p"], check=False).stdout

    # -- the log

    def log(self):
        try:
            with open(self.maillog, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.maillog)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.maillog, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def wait_for_log(self, regex, timeout=20, since=0):
        pattern = re.compile(regex)
        return wait_until(lambda: pattern.search(self.log_since(since)), timeout,
                          "/%s/ in the Postfix log" % regex, interval=0.1)

    def wait_removed(self, queue_id, timeout=30):
        """Wait until the queue manager is done with a message (delivered,
        bounced or expired)."""
        return self.wait_for_log(r"\b%s: removed\b" % re.escape(queue_id), timeout)


def _pid_file_alive(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


# -------------------------------------------------------------------- redis

class RedisServer:
    """A private redis-server on 127.0.0.1:PORT (no persistence), which a
    test may kill, restart on the same port, or pause (SIGSTOP) to play a
    Redis that stopped answering."""

    def __init__(self, tmp, name="redis"):
        self.dir = tmp.sub(name)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: self.cli("PING", check=False).stdout.strip() == "PONG", 20,
                   "redis-server to answer on port %d" % self.port)
        return self

    def kill(self):
        """SIGKILL: the state goes too, as with a crashed Redis without persistence."""
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(10)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cli(self, *args, check=True):
        return run(["redis-cli", "-p", str(self.port), "--no-raw"] + list(args), timeout=20, check=check)

    def keys(self, pattern="*"):
        out = run(["redis-cli", "-p", str(self.port), "--raw", "KEYS", pattern], timeout=20).stdout
        return sorted(line for line in out.splitlines() if line)


class WithRedis:
    """Mix into a FilterTestCase (first among the bases) for one
    redis-server, cls.redis, for the whole class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = RedisServer(cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.kill()
        super().tearDownClass()


# ------------------------------------------------------------------ unbound

class Unbound:
    """A private unbound on 127.0.0.1:PORT answering from local data only:
    under `local-zone: "." static` every name not given is NXDOMAIN, and
    no other server is ever asked.  records: {name: [values]}, each an A
    record's address or "TYPE DATA" as a zone file writes it, e.g.
    {"5.113.0.203.bl.example": ["127.0.0.2"], "example.net": ['TXT "v=spf1 -all"']}.  (libunbound answers
    names under test., invalid., onion. and localhost. itself: use
    example. zones.)"""

    def __init__(self, tmp, records, name="unbound"):
        self.dir = tmp.sub(name)
        self.port = free_port()
        self.records = records
        self.proc = None

    @property
    def forwarder(self):
        """What dns.resolver takes."""
        return "127.0.0.1@%d" % self.port

    def start(self):
        lines = ["server:", "  interface: 127.0.0.1@%d" % self.port, "  do-daemonize: no",
                 '  username: ""', '  chroot: ""', '  directory: "%s"' % self.dir,
                 '  pidfile: "%s"' % os.path.join(self.dir, "pid"), "  use-syslog: no",
                 '  logfile: "%s"' % os.path.join(self.dir, "log"), "  do-ip6: no",
                 '  local-zone: "." static']
        for name, values in self.records.items():
            lines += ["  local-data: '%s. %s'" % (name, value if " " in value else "A " + value)
                      for value in values]
        lines += ["remote-control:", "  control-enable: no"]
        config = write_file(os.path.join(self.dir, "unbound.conf"), "\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._answers, 10, "unbound to answer on port %d" % self.port)
        return self

    def _answers(self):
        """A query for the root comes back (any answer will do)."""
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            try:
                s.sendto(query, ("127.0.0.1", self.port))
                return bool(s.recv(512))
            except OSError:
                return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# ------------------------------------------------------------------- filter

def policy(*parts):
    """Join policy fragments, each ending in a newline."""
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


class Filter:
    """The portcullis daemon under test, in the foreground, with a config
    and policy written into its own directory."""

    def __init__(self, tmp, policy_text, address=None, settings=None, files=None,
                 overrides=(), name="filter"):
        """address: ("inet", PORT) or ("unix", PATH); default a free port.
        settings: {section: {key: value}} merged into the config.
        files: {relative path: text} written beside the policy (lists)."""
        self.dir = tmp.sub(name)
        self.policy_file = write_file(os.path.join(self.dir, "test.rules"), policy_text)
        for relative, text in (files or {}).items():
            path = os.path.join(self.dir, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_file(path, text)
        self.address = address or ("inet", free_port())
        kind, where = self.address
        if kind == "unix":
            self.milter_socket = self.postfix_socket = "unix:" + where
        else:
            self.milter_socket = "inet:%d@127.0.0.1" % where
            self.postfix_socket = "inet:127.0.0.1:%d" % where
        # Short: a unix socket's path has room for 107 bytes.
        self.control_socket = os.path.join(tmp.path, "ctl-%s" % os.path.basename(self.dir)[-40:])
        self.config = {
            "milter": {"socket": self.milter_socket, "user": "", "engine": ENGINE},
            "control": {"socket": self.control_socket},
            "policy": {"file": self.policy_file},
            "log": {"target": "stderr", "level": "debug"},
            "store": {"backend": "memory", "snapshot": os.path.join(self.dir, "state.snapshot")},
        }
        for section, values in (settings or {}).items():
            self.config.setdefault(section, {}).update(values)
        self.config_file = os.path.join(self.dir, "portcullis.conf")
        self.write_config()
        self.overrides = list(overrides)
        self.proc = None
        self.lines = []
        self._cond = threading.Condition()
        self._reader = None

    def write_config(self):
        text = ""
        for section, values in self.config.items():
            text += "[%s]\n" % section
            text += "".join("%s = %s\n" % (k, toml_value(v)) for k, v in values.items())
            text += "\n"
        write_file(self.config_file, text)

    def write_policy(self, text):
        write_file(self.policy_file, text)

    # -- lifecycle

    def argv(self, command="run"):
        argv = [BIN, command]
        if command == "run":
            argv.append("-f")
        argv += ["-c", self.config_file]
        for override in self.overrides:
            argv += ["-o", override]
        return argv

    def start(self, timeout=20):
        """Start the daemon and wait until its milter socket accepts."""
        if self.address[0] == "unix" and os.path.exists(self.address[1]):
            os.unlink(self.address[1])
        self.lines = []
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not can_connect(self.address):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise RuntimeError("portcullis exited %d at start:\n%s"
                                   % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise TimeoutError("portcullis did not listen on %s within %ss:\n%s"
                                   % (self.milter_socket, timeout, self.log()))
            time.sleep(0.05)
        return self

    def _read(self):
        with self.proc.stdout:
            for raw in self.proc.stdout:
                with self._cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def terminate(self):
        """SIGTERM without waiting (see wait_exit)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout=30):
        """Wait for the process to end by itself; its exit code (None if it
        is still running after `timeout`, and then it is killed)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            code = None
        self._reader.join(5)
        return code

    def stop(self, timeout=45):
        """SIGTERM; return the exit code (killing it after `timeout`, which
        leaves room for the daemon's own 30 s limit on draining sessions)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._reader.join(5)
                raise AssertionError("portcullis did not exit within %ss of SIGTERM" % timeout)
        self._reader.join(5)
        return self.proc.returncode

    # -- the log

    def log(self):
        with self._cond:
            return "\n".join(self.lines)

    def mark(self):
        """A position in the log for wait_for_log(since=...)."""
        with self._cond:
            return len(self.lines)

    def find_log(self, *regexes, since=0):
        """Log lines (after position `since`) matching every regex."""
        patterns = [re.compile(r) for r in regexes]
        with self._cond:
            return [l for l in self.lines[since:] if all(p.search(l) for p in patterns)]

    def wait_for_log(self, *regexes, timeout=10, since=0):
        """The first log line after position `since` that matches every regex;
        AssertionError with the log when none comes within `timeout`."""
        patterns = [re.compile(r) for r in regexes]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    if all(p.search(line) for p in patterns):
                        return line
                since = max(since, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line matching %s within %ss; log:\n%s"
                                         % (" and ".join("/%s/" % r for r in regexes), timeout,
                                            tail("\n".join(self.lines))))
                self._cond.wait(left)


def rule_line(policy_text, needle):
    """The 1-based line number of the first policy line containing needle."""
    for number, line in enumerate(policy_text.splitlines(), 1):
        if needle in line:
            return number
    raise ValueError("%r not in policy" % needle)


def decision(stage, action, line=None):
    """Regexes for a decision log line: `STAGE: ACTION ... rule=FILE:LINE`."""
    regexes = [r"\b%s: .*\b%s\b" % (stage, action)]
    if line is not None:
        regexes.append(r"\brule=\S*test\.rules:%d\b" % line)
    return regexes


def portcullis(*args, timeout=30):
    """Run a one-shot portcullis subcommand (check, version, ...)."""
    return run([BIN] + list(args), timeout=timeout, check=False)


# -------------------------------------------------------------------- swaks

class Reply:
    """One SMTP reply: code, the text after the code (every line joined by
    newlines, without the code), and the command it answers."""

    def __init__(self, command, lines):
        self.command = command
        self.lines = lines
        self.code = int(lines[0][:3]) if lines and lines[0][:3].isdigit() else None
        self.text = "\n".join(l[4:] for l in lines)

    @property
    def line(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "%s -> %s" % (self.command, " | ".join(self.lines))


class Transcript:
    """swaks' output, split into (command, reply) pairs."""

    def __init__(self, argv, returncode, output):
        self.argv = argv
        self.returncode = returncode
        self.output = output
        self.replies = _parse_swaks(output)

    def replies_to(self, verb):
        verb = verb.upper()
        return [r for r in self.replies if r.command.upper().split(" ", 1)[0].split(":", 1)[0] == verb]

    def reply_to(self, verb, index=0):
        replies = self.replies_to(verb)
        return replies[index] if index < len(replies) else None

    @property
    def queue_id(self):
        for reply in self.replies_to("."):
            match = re.search(r"queued as (\S+)", reply.text)
            if match:
                return match.group(1)
        return None

    @property
    def delivered(self):
        reply = self.reply_to(".")
        return reply is not None and reply.code == 250

    def __str__(self):
        return "$ %s\n%s" % (" ".join(self.argv), self.output)


def _parse_swaks(output):
    """swaks prints `-> ` for what it sends and `<- `/`<** ` for replies.
    The message content after DATA is sent as many `-> ` lines: it counts as
    one command named `.`."""
    replies = []
    command, reply_lines, in_data = "CONNECT", [], False
    for line in output.splitlines():
        sent = re.match(r"\s*-> (.*)$", line)
        got = re.match(r"\s*<(?:-|\*\*) +(.*)$", line)
        if sent:
            if reply_lines:
                replies.append(Reply(command, reply_lines))
                reply_lines = []
                if command and command.upper() == "DATA" and replies[-1].code == 354:
                    in_data = True
                    command = None
            if in_data:
                command = "."
            else:
                command = sent.group(1)
        elif got:
            reply_lines.append(got.group(1))
            if command == ".":
                in_data = False
    if reply_lines:
        replies.append(Reply(command, reply_lines))
    return replies


def swaks(port, to, sender="sender@sender.example", helo="client.test.invalid",
          xclient=None, headers=(), body=None, data=None, quit_after=None,
          workdir=None, timeout=60, extra=()):
    """Run swaks against 127.0.0.1:port.  `to` is one address or a list;
    `xclient` a dict of XCLIENT attributes (addr, name, helo, login, port...);
    `headers` a list of "Name: value"; `body`/`data` text (passed via files).
    Returns a Transcript."""
    recipients = [to] if isinstance(to, str) else list(to)
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", helo,
            "--from", sender, "--to", ",".join(recipients), "--timeout", "30s"]
    for key, value in (xclient or {}).items():
        argv += ["--xclient-%s" % key.replace("_", "-"), value]
    for header in headers:
        argv += ["--header", header]
    workdir = workdir or tempfile.gettempdir()
    for option, text in (("--body", body), ("--data", data)):
        if text is not None:
            fd, path = tempfile.mkstemp(prefix="swaks-", dir=workdir)
            with os.fdopen(fd, "w", newline="") as f:
                f.write(text)
            argv += [option, "@" + path]
    if quit_after:
        argv += ["--quit-after", quit_after]
    argv += list(extra)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", timeout=timeout)
    return Transcript(argv, proc.returncode, proc.stdout)


class SMTPConversation:
    """Client side of an SMTP dialogue over some byte transport: subclasses
    give _send(bytes) and _readline(deadline).  Every command waits for its
    reply (Sendmail answers a command sent early with 554)."""

    timeout = 60

    def read_reply(self, command):
        deadline = time.monotonic() + self.timeout
        lines = []
        while True:
            line = self._readline(deadline)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(command, lines)

    def command(self, line):
        self._send(line.encode() + b"\r\n")
        return self.read_reply(line)

    def data(self, message):
        """DATA, the message (dot-stuffed here), the final dot: both replies
        (the second None when DATA itself was refused)."""
        first = self.command("DATA")
        if first.code != 354:
            return first, None
        text = message.replace("\r\n", "\n").replace("\n", "\r\n")
        if not text.endswith("\r\n"):
            text += "\r\n"
        self._send(re.sub(r"(?m)^\.", "..", text).encode() + b".\r\n")
        return first, self.read_reply(".")


class SMTPClient(SMTPConversation):
    """A bare SMTP client on 127.0.0.1:port, for what swaks does awkwardly
    (thousands of pipelined recipients, a session kept open across events)."""

    def __init__(self, port, timeout=60):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.read_reply("CONNECT")

    def _send(self, data):
        self.sock.sendall(data)

    def _readline(self, deadline):
        raw = self.file.readline()
        if not raw:
            raise ConnectionError("connection closed while waiting for a reply")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def hello(self, helo="client.test.invalid", xclient=None):
        """EHLO; with xclient={"addr": ..., ...} also XCLIENT and EHLO again.
        Returns the last reply."""
        reply = self.command("EHLO " + helo)
        if xclient:
            attributes = " ".join("%s=%s" % (k.upper(), v) for k, v in xclient.items())
            self.command("XCLIENT " + attributes)
            reply = self.command("EHLO " + helo)
        return reply

    def pipelined(self, lines):
        """Send many commands at once (the server must offer PIPELINING);
        return their replies in order.  A thread writes while this one reads,
        so neither side blocks on a full socket buffer."""
        payload = "".join(l + "\r\n" for l in lines).encode()
        writer = threading.Thread(target=self.sock.sendall, args=(payload,), daemon=True)
        writer.start()
        replies = [self.read_reply(l) for l in lines]
        writer.join()
        return replies

    def close(self):
        """QUIT and close; harmless when already closed."""
        if self.sock.fileno() < 0:
            return
        try:
            self.command("QUIT")
        except (OSError, ConnectionError):
            pass
        self.file.close()
        self.sock.close()


# ----------------------------------------------------------------- sendmail

SENDMAIL_MC = """\
divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`QUEUE_DIR', `{dir}/mqueue')dnl
define(`ALIAS_FILE', `')dnl
define(`STATUS_FILE', `{dir}/statistics')dnl
define(`confPID_FILE', `{dir}/sendmail.pid')dnl
define(`HELP_FILE', `{dir}/helpfile')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confDELIVERY_MODE', `queueonly')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confDONT_BLAME_SENDMAIL', `GroupWritableDirPathSafe,TrustStickyBit')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`nocanonify')dnl
{milter}MAILER(`local')dnl
MAILER(`smtp')dnl
"""


def fetch_sendmail():
    """The unpacked sendmail root (downloaded once into CACHE_DIR)."""
    cache = os.path.join(CACHE_DIR, "sendmail")
    run(["sh", os.path.join(HERE, "fetch-sendmail.sh"), cache], timeout=300)
    return os.path.join(cache, "root")


class Sendmail:
    """Sendmail 8.17 as `sendmail -bs` (SMTP on stdin/stdout) in its own
    network and UTS namespace, calling the milter at a unix socket."""

    HOSTNAME = "mx.test.invalid"

    def __init__(self, tmp, milter_socket=None, name="sendmail"):
        self.root = fetch_sendmail()
        self.dir = tmp.sub(name)
        os.makedirs(os.path.join(self.dir, "mqueue"), mode=0o700, exist_ok=True)
        write_file(os.path.join(self.dir, "helpfile"), "")
        milter = ""
        if milter_socket:
            milter = ("INPUT_MAIL_FILTER(`portcullis', `S=%s, F=T, T=C:5s;S:10s;R:20s;E:1m')dnl\n"
                      % milter_socket)
        mc = write_file(os.path.join(self.dir, "test.mc"),
                        SENDMAIL_MC.replace("{dir}", self.dir).replace("{milter}", milter))
        cf_dir = os.path.join(self.root, "usr/share/sendmail/cf")
        cf = run([os.path.join(self.root, "usr/bin/m4"), "-D_CF_DIR_=%s/" % cf_dir,
                  os.path.join(cf_dir, "m4/cf.m4"), mc]).stdout
        self.cf = write_file(os.path.join(self.dir, "test.cf"), cf)

    def session(self, timeout=30):
        return SendmailSession(self, timeout)

    def queue_files(self):
        return sorted(os.listdir(os.path.join(self.dir, "mqueue")))


class SendmailSession(SMTPConversation):
    """One `sendmail -bs` process, spoken to over its stdin and stdout."""

    def __init__(self, sendmail, timeout):
        self.timeout = timeout
        binary = os.path.join(sendmail.root, "usr/libexec/sendmail/sendmail")
        script = "ip link set lo up && hostname %s && exec %s -C %s -bs" % (
            Sendmail.HOSTNAME, binary, sendmail.cf)
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(sendmail.root, "usr/lib/x86_64-linux-gnu"))
        self.proc = subprocess.Popen(["unshare", "-n", "-u", "sh", "-c", script],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self._buffer = b""
        self.greeting = self.read_reply("CONNECT")

    def _send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _readline(self, deadline):
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from sendmail within %ss" % self.timeout)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise ConnectionError("sendmail closed its output; stderr: %s"
                                          % self.proc.stderr.read().decode(errors="replace"))
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")

    def close(self):
        """QUIT (if it still listens) and wait for the process; its exit code."""
        try:
            if self.proc.poll() is None:
                self.command("QUIT")
        except (OSError, ConnectionError, TimeoutError):
            pass
        try:
            code = self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return code


# --------------------------------------------------------------- miltertest

MILTERTEST_PRELUDE = """\
-- Put in front of every test script by harness.miltertest().  miltertest
-- prints no Lua error message, so the script runs under pcall and the
-- error is echoed before failing.
function expect(conn, what, err, want)
    if err ~= nil then
        error(what .. " failed: " .. tostring(err))
    end
    local got = mt.getreply(conn)
    if got ~= want then
        error(string.format("%s: reply '%s', expected '%s'", what,
              string.char(got), string.char(want)))
    end
end

function open(sock)
    local conn = mt.connect(sock, 40, 0.25)
    if conn == nil then
        error("cannot connect to " .. sock)
    end
    return conn
end

-- A filter may negotiate away the steps its policy does not need (SMFIP_NO*)
-- or take them without a reply (SMFIP_NR_*).  step() sends such a step only
-- when negotiated, and checks for "continue" only when a reply comes.
local steps = {
    helo = {SMFIP_NOHELO, SMFIP_NR_HELO, mt.helo},
    rcpt = {SMFIP_NORCPT, SMFIP_NR_RCPT, mt.rcptto},
    header = {SMFIP_NOHDRS, SMFIP_NR_HDR, mt.header},
    eoh = {SMFIP_NOEOH, SMFIP_NR_EOH, mt.eoh},
    body = {SMFIP_NOBODY, SMFIP_NR_BODY, mt.bodystring},
}
function step(conn, name, ...)
    local skip, noreply, send = table.unpack(steps[name])
    if mt.test_option(conn, skip) then
        return
    end
    local err = send(conn, ...)
    if err ~= nil then
        error(name .. " failed: " .. tostring(err))
    end
    if not mt.test_option(conn, noreply) then
        expect(conn, name, nil, SMFIR_CONTINUE)
    end
end

local function main()
"""

MILTERTEST_EPILOGUE = """
end

local ok, err = pcall(main)
if not ok then
    mt.echo("ERROR: " .. tostring(err))
    error(err)
end
mt.echo("OK")
"""


def miltertest(script, workdir, defines=None, timeout=120):
    """Run a Lua script with miltertest -s, wrapped in MILTERTEST_PRELUDE
    (helpers expect(), open() and step()) and an error reporter; -D NAME=VALUE for
    each entry of `defines`.  Returns (exit code, output); the output ends
    in "OK" or has an "ERROR: ..." line."""
    fd, path = tempfile.mkstemp(prefix="mt-", suffix=".lua", dir=workdir)
    with os.fdopen(fd, "w") as f:
        f.write(MILTERTEST_PRELUDE + script + MILTERTEST_EPILOGUE)
    argv = ["miltertest"]
    for key, value in (defines or {}).items():
        argv += ["-D", "%s=%s" % (key, value)]
    argv += ["-s", path]
    proc = run(argv, timeout=timeout, check=False)
    return proc.returncode, proc.stdout


# ---------------------------------------------------------------- test base

def require_binary():
    """Skip when there is no daemon to test, unless PORTCULLIS_BIN named one."""
    if os.path.isfile(BIN) and os.access(BIN, os.X_OK):
        return
    if os.environ.get("PORTCULLIS_BIN"):
        raise RuntimeError("PORTCULLIS_BIN=%s is not an executable" % BIN)
    raise unittest.SkipTest("no portcullis binary at %s (set PORTCULLIS_BIN)" % BIN)


class FilterTestCase(unittest.TestCase):
    """One temp dir per class; each test starts its own Filter(s).  A failing
    test's message gets the filter's stderr (and whatever extra_diagnostics()
    adds); the temp dir is kept with PORTCULLIS_KEEP_TMP=1."""

    @classmethod
    def setUpClass(cls):
        require_binary()
        cls.tmp = TempDir()
        cls.failed = False

    @classmethod
    def tearDownClass(cls):
        if cls.failed and not KEEP_TMP:
            sys.stderr.write("e2e: %s failed; rerun with PORTCULLIS_KEEP_TMP=1 to keep %s\n"
                             % (cls.__name__, cls.tmp.path))
        cls.tmp.cleanup()

    def setUp(self):
        self.filters = []
        self.transcripts = []

    def start_filter(self, policy_text, **kwargs):
        """Start a Filter (stopped again after the test)."""
        kwargs.setdefault("name", "filter-%s-%d" % (self._testMethodName, len(self.filters)))
        flt = Filter(self.tmp, policy_text, **kwargs)
        self.filters.append(flt)
        self.addCleanup(self._stop_filter, flt)
        return flt.start()

    @staticmethod
    def _stop_filter(flt):
        if flt.alive():
            flt.stop()

    def assertFilterAlive(self, flt):
        self.assertTrue(flt.alive(), "portcullis died (exit %s):\n%s"
                        % (flt.proc.poll(), tail(flt.log())))

    def assertReply(self, reply, code, text=None, context=""):
        """The reply has this code and (if given) exactly this text after it."""
        context = "\n%s" % context if context else ""
        self.assertIsNotNone(reply, "no such reply" + context)
        self.assertEqual(reply.code, code, "reply %r%s" % (reply, context))
        if text is not None:
            self.assertEqual(reply.text, text, "reply %r%s" % (reply, context))

    def assertLogged(self, flt, *regexes, timeout=10, since=0):
        return flt.wait_for_log(*regexes, timeout=timeout, since=since)

    # -- failure diagnostics

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        super().run(result)
        if len(result.failures) + len(result.errors) > before:
            type(self).failed = True
            extra = "\n" + "\n".join(self.diagnostics())
            for bucket in (result.failures, result.errors):
                for index, (test, text) in enumerate(bucket):
                    if test is self:
                        bucket[index] = (test, text + extra)
        return result

    def diagnostics(self):
        notes = []
        for flt in getattr(self, "filters", []):
            notes.append("--- portcullis stderr (%s):\n%s" % (flt.dir, tail(flt.log(), 8000)))
        for transcript in getattr(self, "transcripts", [])[-3:]:
            notes.append("--- swaks:\n%s" % tail(str(transcript), 3000))
        notes.extend(self.extra_diagnostics())
        tmp = getattr(self, "tmp", None)
        if tmp is not None:
            notes.append("--- temp dir: %s%s" % (tmp.path, "" if KEEP_TMP else
                                                 " (removed; PORTCULLIS_KEEP_TMP=1 keeps it)"))
        return notes

    def extra_diagnostics(self):
        return []


class PostfixTestCase(FilterTestCase):
    """Adds one sink and one Postfix per class; Postfix's milter is
    cls.milter_port, where each test starts its Filter with start_filter().
    The Postfix log lines written during a failing test are in its message."""

    postfix_params = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.milter_port = free_port()
        cls.sink = cls.postfix = None
        try:
            cls.sink = Sink(cls.tmp).start()
            cls.postfix = Postfix(cls.tmp, cls.sink.port,
                                  milter="inet:127.0.0.1:%d" % cls.milter_port,
                                  **cls.postfix_params).start()
        except BaseException:
            cls._stop_services()
            cls.tmp.cleanup()
            raise

    @classmethod
    def _stop_services(cls):
        for service in (cls.postfix, cls.sink):
            if service is not None:
                service.stop()

    @classmethod
    def tearDownClass(cls):
        cls._stop_services()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.maillog_offset = self.postfix.log_size()

    def start_filter(self, policy_text, **kwargs):
        kwargs.setdefault("address", ("inet", self.milter_port))
        return super().start_filter(policy_text, **kwargs)

    def send(self, to, **kwargs):
        """swaks against this class's Postfix (kept for the failure message)."""
        kwargs.setdefault("workdir", self.tmp.path)
        transcript = swaks(self.postfix.port, to, **kwargs)
        self.transcripts.append(transcript)
        return transcript

    def send_external(self, to, addr=EXTERNAL_IP, **kwargs):
        """swaks as an untrusted client: XCLIENT ADDR=addr (plus any other
        XCLIENT attributes given as xclient={...})."""
        xclient = dict(kwargs.pop("xclient", {}))
        xclient.setdefault("addr", addr)
        return self.send(to, xclient=xclient, **kwargs)

    def deliveries(self, transcript, timeout=30):
        """Wait until Postfix is done with the message swaks queued; return
        what the sink got for it."""
        queue_id = transcript.queue_id
        self.assertIsNotNone(queue_id, "message was not queued:\n%s" % transcript)
        self.postfix.wait_removed(queue_id, timeout)
        return self.sink.messages_for(queue_id)

    def delivered_recipients(self, transcript, timeout=30):
        return sorted(r for m in self.deliveries(transcript, timeout) for r in m.recipients)

    def assertRcptReplies(self, transcript, expected):
        """expected: [(code, text or None)] for the RCPT commands in order."""
        got = [(r.code, r.text) for r in transcript.replies_to("RCPT")]
        want = [(code, text if text is not None else got[i][1] if i < len(got) else None)
                for i, (code, text) in enumerate(expected)]
        self.assertEqual(got, want, "RCPT replies\n%s" % transcript)

    def extra_diagnostics(self):
        if getattr(self, "postfix", None) is None or not hasattr(self, "maillog_offset"):
            return []
        return ["--- Postfix log during the test (%s):\n%s"
                % (self.postfix.maillog, tail(self.postfix.log_since(self.maillog_offset), 8000))]


class UnboundTestCase(PostfixTestCase):
    """A PostfixTestCase with a private Unbound serving the class's RECORDS
    for all its tests; start(resolver) starts a filter with the class's
    POLICY and that resolver (self.unbound.forwarder, or another)."""

    RECORDS = {}
    POLICY = ""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.unbound = Unbound(cls.tmp, cls.RECORDS).start()

    @classmethod
    def tearDownClass(cls):
        cls.unbound.stop()
        super().tearDownClass()

    def start(self, resolver, timeout="2s"):
        return self.start_filter(self.POLICY, settings={"dns": {"resolver": resolver, "timeout": timeout}})
