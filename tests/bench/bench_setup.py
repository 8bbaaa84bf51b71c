"""bench_setup.py: the filters that throughput.py (through Postfix) and
milter_load.py (bench_milter_load, no MTA) measure, set up the same way
for both.

- The messages: smtp-source's kind (plain_message() writes one for
  bench_milter_load) and signed_messages.py's RSA-2048 message
  (SignedMessage), with the DNS records under which its SPF, DKIM and
  DMARC pass, for the private unbound that every filter resolves through.
- Two filter configurations, each on either milter engine (Filters):
    untrusted  the shipped default policy with an untrusted client: a
               copy of policies/ whose trusted networks leave out
               127.0.0.1, whose local domains hold the recipient's domain,
               whose greylist skip list holds 127.0.0.1 (smtp-source never
               retries) and whose flood guard counts every message and
               defers none; the memory store.
    rspamd     the checks rspamd 3.4 does in the reference figures: that
               copy without 127.0.0.1 in the greylist skip list, the client
               network allowed in advance (`portcullis greylist allow`),
               so that every recipient is a greylist decision in Redis
               that passes; a second rate limit, per client and sender
               domain; SPF, DKIM, DMARC and the Authentication-Results
               header (auth.authserv_id); the store on a private Redis.
  Every filter serves its metrics.  expected_counts() says what one
  message must add to them: a run that counted anything else measured
  another path, and is refused.
- The box: the machine is shared, so each run first waits for it to be
  quiet (wait_for_quiet_box()); box_cpu_seconds() and
  process_cpu_seconds() are what the runs are charged by.
- negotiated_steps(): the protocol steps a running filter agrees to when
  offered what Postfix 3.7 offers; NoopFloor runs the no-op event-driven
  filter (noop_epoll.c, outside this repository) negotiating exactly
  those, the floor a filter with those steps is measured against.
"""

import ipaddress
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import harness  # noqa: E402  (read-only: shared with the end-to-end tests)
from test_auth import DEBIAN_PYTHON, txt  # noqa: E402  (python3-dkim's python; a TXT record for unbound)

SENDER = "sender@example.net"   # also the signed message's From, and its d=
RECIPIENT = "rcpt@example.com"
SENDER_DOMAIN = SENDER.split("@", 1)[1]
CLIENT = "127.0.0.1"             # smtp-source's and bench_milter_load's client
AUTHSERV_ID = "mx.bench"
SIGNED_KEY = "rsa2048"   # which of signed_messages.py's messages is sent
ENGINES = ("native", "libmilter")

# The no-op floor: outside the repository, next to it by default.
DEFAULT_NOOP_SOURCE = os.path.join(harness.SOURCE_DIR, "..", "shared", "bench", "noop_epoll.c")

# What Postfix 3.7 offers at option negotiation: protocol 6, every action,
# every step (milter8.c, MILTER8_V6_PROTO_MASK).
POSTFIX_OFFER = (6, 0x1FF, 0x1FFFFF)


# ---------------------------------------------------------------------- box

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads, live and finished)."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def box_cpu_seconds():
    """Busy CPU time of the whole machine: all of /proc/stat's cpu line but
    idle and iowait (guest time is already inside user)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


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


def load_average():
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(v, 2) for v in os.getloadavg()]


# ----------------------------------------------------------------- messages

def plain_message(path, length=5120):
    """A message like the one `smtp-source -l LENGTH` sends: its four
    header fields and LENGTH bytes of 80-byte lines.  Returns PATH."""
    lines = ["From: <%s>" % SENDER, "To: <%s>" % RECIPIENT, "Date: Mon, 23 Nov 2026 09:59:56 +0000",
             "Message-Id: <bench.4711@example.net>", ""]
    lines += ["%d%s" % (i % 10, "X" * 77) for i in range(length // 80)]
    harness.write_file(path, "\r\n".join(lines) + "\r\n")
    return path


class SignedMessage:
    """signed_messages.py's RSA-2048 message (5120 bytes): FILE as it was
    signed (CRLF), LF_FILE with bare LF ends for smtp-source -F (which
    sends each line with CRLF appended), and RECORDS, the DNS records
    under which its SPF, DKIM and DMARC pass: the sender domain's SPF
    record (listing 127.0.0.1, although libspf2 passes a loopback client
    without looking), the key record and v=DMARC1; p=reject."""

    def __init__(self, tmp):
        directory = tmp.sub("signed")
        harness.run([DEBIAN_PYTHON, os.path.join(HERE, "signed_messages.py"), directory])
        self.file = os.path.join(directory, SIGNED_KEY + ".eml")
        with open(self.file, "rb") as f:
            message = f.read()
        self.size = len(message)
        self.lf_file = os.path.join(directory, SIGNED_KEY + ".lf")
        with open(self.lf_file, "wb") as f:
            f.write(message.replace(b"\r\n", b"\n"))
        with open(os.path.join(directory, SIGNED_KEY + ".dns")) as f:
            key_name, key_record = f.read().strip().split(" ", 1)
        self.records = {
            SENDER_DOMAIN: ['TXT "v=spf1 ip4:127.0.0.1 -all"'],
            key_name: [txt(key_record)],
            "_dmarc." + SENDER_DOMAIN: ['TXT "v=DMARC1; p=reject"'],
        }


# ----------------------------------------------------------------- policies

# The default policy's inbound flood guard: all of a run's messages come
# from one address, and 300 a minute would defer most of them.
FLOOD_GUARD = re.compile(r"(?m)^(\s*ratelimit client\.ip )300/1m( if not authenticated)$")
RAISED_RATE = "1000000/1m"
# rspamd's second limit in the reference figures, here per client and
# sender domain; counted after the flood guard.
SECOND_RATE_LIMIT = "    ratelimit (client.ip, sender.domain) %s as inbound if not authenticated" % RAISED_RATE


def copy_untrusting_policy(source_policies, dest, domain, client=CLIENT, greylist_client=False,
                           second_rate_limit=False):
    """Copy the policy dir; drop every trusted network that covers CLIENT,
    add DOMAIN to the local domains, raise the flood guard's rate so that
    it counts every message and defers none, and unless GREYLIST_CLIENT
    add CLIENT to the greylist skip list; with SECOND_RATE_LIMIT, a
    second rate limit after the flood guard.  Returns the rules file."""
    shutil.copytree(source_policies, dest)
    rules = os.path.join(dest, "default.rules")
    with open(rules) as f:
        replacement = r"\g<1>%s\g<2>" % RAISED_RATE + ("\n" + SECOND_RATE_LIMIT if second_rate_limit else "")
        text, raised = FLOOD_GUARD.subn(replacement, f.read())
    if raised != 1:
        raise RuntimeError("%s: no flood guard rule like %r to raise" % (rules, FLOOD_GUARD.pattern))
    harness.write_file(rules, text)
    trusted = os.path.join(dest, "lists", "trusted-networks.txt")
    with open(trusted) as f:
        lines = f.read().splitlines()
    harness.write_file(trusted, "\n".join(l for l in lines if not _covers(l, client)) + "\n")
    with open(os.path.join(dest, "lists", "local-domains.txt"), "a") as f:
        f.write(domain + "\n")
    if not greylist_client:
        with open(os.path.join(dest, "lists", "greylist-skip-networks.txt"), "a") as f:
            f.write(client + "\n")
    return rules


def _covers(line, address):
    entry = line.split("#", 1)[0].strip()
    try:
        return bool(entry) and ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


# ------------------------------------------------------------------ filters

METRIC_LINE = re.compile(r"(?m)^(portcullis_(?:auth_results|greylist|ratelimit)_total\{[^}]*\}) (\S+)$")


class MilterProcess:
    """A milter process (PROC, once started) on PORT, a free loopback
    port; its output in LOG_FILE."""

    def __init__(self, name, log_file):
        self.name = name
        self.port = harness.free_port()
        self.log_file = log_file
        self.proc = None

    @property
    def postfix_socket(self):
        return "inet:127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def spawn(self, argv, env=None, timeout=20):
        """Starts ARGV and waits until it listens on PORT."""
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        harness.wait_until(lambda: harness.can_connect(("inet", self.port)) or self.proc.poll() is not None,
                           timeout, "%s to listen" % self.name)
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited %d:\n%s" % (self.name, self.proc.returncode, self.log()))

    def cpu_seconds(self):
        return process_cpu_seconds(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with open(self.log_file, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class FilterProcess(MilterProcess):
    """portcullis run -f on a policy file, milter socket on a free loopback
    port, its log (info, stderr) in a file, its metrics served.
    SETTINGS: {section: {key: value}} added to the config."""

    def __init__(self, tmp, name, policy_file, binary, settings=None):
        self.dir = tmp.sub(name)
        super().__init__(name, os.path.join(self.dir, "stderr.log"))
        self.binary = binary
        self.policy_file = policy_file
        self.metrics_listen = "127.0.0.1:%d" % harness.free_port()
        self.config_file = os.path.join(self.dir, "portcullis.conf")
        config = {
            "milter": {"socket": "inet:%d@127.0.0.1" % self.port, "user": ""},
            "policy": {"file": policy_file},
            "log": {"target": "stderr", "level": "info"},
            "store": {"backend": "memory", "snapshot": ""},
            "metrics": {"listen": self.metrics_listen},
            # Its own, not /run/portcullis/control: no other daemon on the box answers for it.
            "control": {"socket": os.path.join(self.dir, "control")},
        }
        for section, values in (settings or {}).items():
            config.setdefault(section, {}).update(values)
        if config["store"]["backend"] != "memory":
            del config["store"]["snapshot"]
        self.engine = config["milter"].get("engine", "native")
        harness.write_file(self.config_file, "".join(
            "[%s]\n%s\n" % (section, "".join("%s = %s\n" % (k, harness.toml_value(v)) for k, v in values.items()))
            for section, values in config.items()))

    def command(self, *args):
        """portcullis ARGS -c our config (check, greylist ...); raises with its output on failure."""
        proc = harness.run([self.binary] + list(args) + ["-c", self.config_file], check=False)
        if proc.returncode != 0:
            raise RuntimeError("portcullis %s -c %s failed:\n%s" % (" ".join(args), self.config_file, proc.stdout))
        return proc.stdout

    def start(self):
        self.command("check")
        self.spawn([self.binary, "run", "-f", "-c", self.config_file])
        return self

    def counters(self):
        """{'name{labels}': value} of the check counters on /metrics."""
        with urllib.request.urlopen("http://%s/metrics" % self.metrics_listen, timeout=10) as response:
            text = response.read().decode()
        return {key: float(value) for key, value in METRIC_LINE.findall(text)}


def counted(flt, before, messages, expected):
    """Checks that FLT's counters went up from BEFORE by EXPECTED (per
    message) times MESSAGES, and by nothing else; returns what they
    counted.  Raises RuntimeError saying what differs."""
    after = flt.counters()
    found = {key: round(value - before.get(key, 0)) for key, value in after.items() if value != before.get(key, 0)}
    wanted = {key: per_message * messages for key, per_message in expected.items()}
    if found != wanted:
        raise RuntimeError("invalid run: filter %s counted %s for %d messages, not %s"
                           % (flt.name, found, messages, wanted))
    return found


# ------------------------------------------------- the two configurations

class Configuration:
    """One filter configuration on both engines: its filters by engine,
    the message it is measured with, and what each message must add to
    the filter's counters."""

    def __init__(self, key, label, filters, message_file, expected, signed):
        self.key, self.label, self.filters = key, label, filters
        self.message_file = message_file   # CRLF, for bench_milter_load
        self.expected = expected
        self.signed = signed               # the SignedMessage, or None: smtp-source's own


class Filters:
    """unbound, Redis, and the untrusted and rspamd configurations, each
    on both engines: start() brings them up; stop() ends them.  EXTRA
    ({section: {key: value}}, from --set) goes into every filter's
    configuration last."""

    def __init__(self, tmp, binary, engines=ENGINES, extra=None):
        self.tmp, self.binary, self.engines = tmp, binary, engines
        self.extra = extra or {}
        self.unbound = self.redis = None
        self.processes = []
        self.configurations = []

    def start(self):
        signed = SignedMessage(self.tmp)
        self.unbound = harness.Unbound(self.tmp, signed.records).start()
        self.redis = harness.RedisServer(self.tmp).start()
        policies = os.path.join(harness.SOURCE_DIR, "policies")
        domain = RECIPIENT.split("@", 1)[1]
        untrusting = copy_untrusting_policy(policies, os.path.join(self.tmp.path, "policy-untrusted"), domain)
        rspamd_like = copy_untrusting_policy(policies, os.path.join(self.tmp.path, "policy-rspamd"), domain,
                                             greylist_client=True, second_rate_limit=True)
        dns = {"resolver": self.unbound.forwarder}
        untrusted = {engine: self._filter("untrusted-" + engine, untrusting, {
            "milter": {"engine": engine}, "dns": dns}) for engine in self.engines}
        rspamd = {engine: self._filter("rspamd-" + engine, rspamd_like, {
            "milter": {"engine": engine}, "dns": dns, "auth": {"authserv_id": AUTHSERV_ID},
            # The box is shared: a Redis kept off the CPU for store.timeout's
            # 200ms by other work would tempfail the message and stop the run.
            "store": {"backend": "redis", "url": self.redis.url, "timeout": "2s"}}) for engine in self.engines}
        # Greylisting passed in advance: the client's network is allowed.
        next(iter(rspamd.values())).command("greylist", "allow", "--client", CLIENT)
        self.configurations = [
            Configuration("untrusted", "default policy, untrusted client", untrusted,
                          plain_message(os.path.join(self.tmp.path, "plain.eml")),
                          # DMARC (the policy's eom rules) needs SPF and DKIM: the
                          # message is unsigned.
                          {'portcullis_ratelimit_total{result="pass"}': 1,
                           'portcullis_auth_results_total{method="spf",result="pass"}': 1,
                           'portcullis_auth_results_total{method="dkim",result="none"}': 1,
                           'portcullis_auth_results_total{method="dmarc",result="pass"}': 1}, None),
            Configuration("rspamd", "rspamd-equivalent: greylist (passed) + 2 rate limits in Redis, SPF, DKIM, "
                          "DMARC, header", rspamd, signed.file,
                          {'portcullis_greylist_total{result="awl"}': 1,
                           'portcullis_ratelimit_total{result="pass"}': 2,
                           'portcullis_auth_results_total{method="spf",result="pass"}': 1,
                           'portcullis_auth_results_total{method="dkim",result="pass"}': 1,
                           'portcullis_auth_results_total{method="dmarc",result="pass"}': 1}, signed),
        ]
        return self

    def _filter(self, name, policy_file, settings):
        for section, values in self.extra.items():
            settings = dict(settings, **{section: dict(settings.get(section, {}), **values)})
        flt = FilterProcess(self.tmp, name, policy_file, self.binary, settings).start()
        self.processes.append(flt)
        return flt

    def stop(self):
        for flt in self.processes:
            flt.stop()
        if self.redis:
            self.redis.kill()
        if self.unbound:
            self.unbound.stop()


# ---------------------------------------------------------- command line

def add_arguments(parser):
    """The options throughput.py and milter_load.py share."""
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--bin", default=harness.BIN, help="portcullis binary (default $PORTCULLIS_BIN or build/)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="milter engines to measure")
    parser.add_argument("--noop-source", default=DEFAULT_NOOP_SOURCE,
                        help="noop_epoll.c, the no-op floor (default ../shared/bench/noop_epoll.c next to the "
                             "repository); without it the floor rows are skipped")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting for every Portcullis filter, e.g. milter.threads=1 (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="at most this many seconds to wait before a run for the box to be idle")


def parse_arguments(parser):
    """PARSER's arguments, --engines as a tuple."""
    args = parser.parse_args()
    args.engines = tuple(e for e in args.engines.split(",") if e)
    if not args.engines or any(e not in ENGINES for e in args.engines):
        parser.error("--engines: a comma-separated list of %s" % ", ".join(ENGINES))
    args.extra = {}
    for setting in args.set:
        name, equals, value = setting.partition("=")
        section, dot, key = name.partition(".")
        if not equals or not dot or not section or not key:
            parser.error("--set %s: not SECTION.KEY=VALUE" % setting)
        # A number is a TOML integer, true/false a boolean; anything else a string.
        typed = int(value) if value.isdigit() else {"true": True, "false": False}.get(value, value)
        args.extra.setdefault(section, {})[key] = typed
    return args


# ---------------------------------------------------------------- the floor

def negotiated_steps(port, offer=POSTFIX_OFFER):
    """The protocol steps (SMFIP_*) the filter on 127.0.0.1:PORT agrees
    to when offered OFFER (version, actions, steps), read from its reply
    to a raw option negotiation."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">IcIII", 13, b"O", *offer))
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the filter on port %d closed the connection at option negotiation" % port)
            data += chunk
    if data[4:5] != b"O" or len(data) < 17:
        raise RuntimeError("the filter on port %d did not answer the option negotiation: %r" % (port, data[:32]))
    return struct.unpack(">I", data[13:17])[0]


class NoopFloor(MilterProcess):
    """noop_epoll (one thread, epoll, no libmilter) built at BINARY, on a
    free port, negotiating MODE ("nr", or "0x..." steps), with
    TCP_QUICKACK as the native engine has it."""

    def __init__(self, tmp, binary, name, mode):
        super().__init__(name, os.path.join(tmp.sub("noop"), name + ".log"))
        self.mode = mode
        self.spawn([binary, str(self.port)], env=dict(os.environ, NOOP_MODE=mode, NOOP_QUICKACK="1"))


def build_noop(source, tmp):
    """noop_epoll built from SOURCE (its header's build line) into TMP;
    None, with the reason on stderr, when SOURCE is absent."""
    if not os.path.exists(source):
        sys.stderr.write("no-op floor skipped: %s not found (give its path with --noop-source)\n" % source)
        return None
    binary = os.path.join(tmp.sub("noop"), "noop_epoll")
    harness.run(["gcc", "-O2", "-Wall", "-Wextra", "-o", binary, source])
    return binary
