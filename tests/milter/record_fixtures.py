#!/usr/bin/env python3
"""Record the milter protocol as real MTAs speak it: the fixtures of the
codec and connection unit tests (tests/unit/milter/data).

    PORTCULLIS_BIN=build/filter/portcullis python3 tests/milter/record_fixtures.py [NAME...]

For each scenario below, a real portcullis (the native engine) serves a
real MTA (Postfix 3.7, or Sendmail 8.17 from its unpacked .deb, see
tests/e2e/harness.py) through a recording proxy: the MTA connects to the
proxy, the proxy to the filter, and every byte passes unchanged.  When
the SMTP client is done, each milter connection the proxy saw is saved:

    NAME.mta.bin      the bytes the MTA sent
    NAME.filter.bin   the bytes the filter sent back

(Postfix ends its milter connection at XCLIENT and opens another for the
client it poses as: the first is NAME-pre-xclient), and README.md gets
how each was recorded: MTA and version, policy, the client, what was
negotiated, the SMTP dialogue, the date (the entries of fixtures not
recorded this time stay as they were).  The policies are the files beside
the fixtures (and policies/default.rules), so the unit tests run exactly
the policy each fixture was recorded with.

Needs root (Postfix), the e2e packages and a built portcullis; not run by
ctest.  Without NAME, every scenario is recorded.  Nothing it does
reaches beyond 127.0.0.0/8: DNS goes to a private unbound with no data.
"""

import datetime
import os
import re
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
DATA_DIR = os.path.join(SOURCE_DIR, "tests", "unit", "milter", "data")
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))

import harness  # noqa: E402  (after the path is set)
from harness import (BIN, EXTERNAL_IP, Postfix, SMTPClient, Sendmail, Sink, TempDir,  # noqa: E402
                     Unbound, Filter, free_port, wait_until)


# ------------------------------------------------------------------ proxy

class RecordingProxy:
    """Listens at LISTEN (("inet", port) or ("unix", path)), connects each
    client to TARGET the same way, and keeps what each side sent on every
    connection accepted after start_recording(), in the order they were
    accepted.  (Before, Postfix may still be serving the harness's probe
    of its SMTP port, with a milter connection of its own.)"""

    def __init__(self, listen, target):
        self.target = target
        self.connections = []          # [{"mta": bytearray, "filter": bytearray, "done": Event}]
        self.recording = False
        self._lock = threading.Lock()
        self.server = _listening_socket(listen)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                mta, _ = self.server.accept()
            except OSError:
                return   # closed
            record = {"mta": bytearray(), "filter": bytearray(), "done": threading.Event()}
            with self._lock:
                if self.recording:
                    self.connections.append(record)
            threading.Thread(target=self._serve, args=(mta, record), daemon=True).start()

    def _serve(self, mta, record):
        filt = _connected_socket(self.target)
        pumps = [threading.Thread(target=_pump, args=(mta, filt, record["mta"]), daemon=True),
                 threading.Thread(target=_pump, args=(filt, mta, record["filter"]), daemon=True)]
        for pump in pumps:
            pump.start()
        for pump in pumps:
            pump.join()
        mta.close()
        filt.close()
        record["done"].set()

    def start_recording(self, settle=1.0):
        """Record the connections from now on, after SETTLE seconds in
        which earlier ones may still come."""
        time.sleep(settle)
        with self._lock:
            self.recording = True

    def wait_closed(self, count, timeout=60):
        """Wait until COUNT connections were made and all are closed."""
        def closed():
            with self._lock:
                records = list(self.connections)
            return len(records) >= count and all(r["done"].is_set() for r in records)
        wait_until(closed, timeout, "%d milter connection(s) to end" % count)
        with self._lock:
            return list(self.connections)

    def close(self):
        self.server.close()


def _listening_socket(spec):
    kind, where = spec
    if kind == "unix":
        if os.path.exists(where):
            os.unlink(where)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(where)
        os.chmod(where, 0o777)
    else:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", where))
    server.listen(16)
    return server


def _connected_socket(spec):
    kind, where = spec
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(where)
    else:
        sock = socket.create_connection(("127.0.0.1", where))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _pump(source, sink, recorded):
    """Copy SOURCE to SINK, keeping a copy, until SOURCE ends; then end
    SINK's direction too."""
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        recorded.extend(data)
        try:
            sink.sendall(data)
        except OSError:
            break
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


# ----------------------------------------------------------- the messages

def long_body(size):
    """SIZE bytes or a little more of numbered lines: over 64 KiB, Postfix
    sends it as several BODY packets."""
    lines = []
    total = 0
    number = 0
    while total < size:
        line = "Line %05d of a body long enough for several BODY packets of the milter protocol.\r\n" % number
        lines.append(line)
        total += len(line)
        number += 1
    return "".join(lines)


FIRST_MESSAGE = (
    "From: Alice <alice@sender.example>\r\n"
    "To: user@example.com\r\n"
    "Subject: a subject folded\r\n"
    "\tover two lines\r\n"
    "X-Spaces:    leading spaces kept\r\n"
    "Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <fixture-1@sender.example>\r\n"
    "\r\n" + long_body(150 * 1024))

SECOND_MESSAGE = (
    "From: Bob <bob@sender.example>\r\n"
    "To: user@example.com\r\n"
    "Subject: refuse me\r\n"
    "Date: Sun, 06 Dec 2026 10:01:00 +0000\r\n"
    "Message-ID: <fixture-2@sender.example>\r\n"
    "\r\n"
    "A short body.\r\n")

SMALL_MESSAGE = (
    "From: Alice <alice@sender.example>\r\n"
    "To: user@example.com\r\n"
    "Subject: small\r\n"
    "Date: Sun, 06 Dec 2026 10:02:00 +0000\r\n"
    "Message-ID: <fixture-3@sender.example>\r\n"
    "\r\n"
    "Hello.\r\n")


# --------------------------------------------------------------- dialogues
#
# Each takes an object with command(line) and data(message) (an SMTP
# client already greeted) and returns the dialogue as text for the README.

class Transcript:
    def __init__(self, client):
        self.client = client
        self.lines = []

    def command(self, line, expect=None):
        reply = self.client.command(line)
        self._note(line, reply, expect)
        return reply

    def data(self, message, expect=None):
        first, end = self.client.data(message)
        self._note("DATA", first, 354)
        size = len(message.encode())
        self._note("(message, %d bytes) ." % size, end, expect)
        return end

    def _note(self, line, reply, expect):
        self.lines.append("C: %s" % line)
        self.lines.extend("S: %s" % text for text in (reply.lines if reply else ["(no reply)"]))
        if expect is not None and (reply is None or reply.code != expect):
            raise RuntimeError("%s: expected %s, got %r\n%s" % (line, expect, reply, "\n".join(self.lines)))

    def text(self):
        return "\n".join(self.lines)


def two_messages(smtp):
    """Two messages in one session (Postfix sends ABORT between them): the
    first with a folded header field and a body over 64 KiB, one
    recipient refused by the rcpt rule with a two-line reply; the second
    refused at eom with a three-line reply."""
    smtp.command("MAIL FROM:<alice@sender.example> SIZE=160000", 250)
    smtp.command("RCPT TO:<user@example.com>", 250)
    smtp.command("RCPT TO:<nobody@example.com>", 550)
    smtp.data(FIRST_MESSAGE, 250)
    smtp.command("MAIL FROM:<bob@sender.example>", 250)
    smtp.command("RCPT TO:<user@example.com>", 250)
    smtp.data(SECOND_MESSAGE, 550)


def refusals_then_message(smtp):
    """A refused sender (a reply text with '%'), then a message."""
    smtp.command("MAIL FROM:<someone@blocked.example>", 553)
    smtp.command("RSET", 250)
    smtp.command("MAIL FROM:<alice@sender.example>", 250)
    smtp.command("RCPT TO:<user@example.com>", 250)
    smtp.data(SMALL_MESSAGE, 250)


def default_untrusted(smtp):
    """An untrusted, unauthenticated client: relaying refused, greylisted."""
    smtp.command("MAIL FROM:<someone@sender.example>", 250)
    smtp.command("RCPT TO:<user@foreign.example>", 554)
    smtp.command("RCPT TO:<user@example.com>", 451)


def default_authenticated(smtp):
    """An authenticated client sending two messages (no greylisting; the
    rate limits count)."""
    smtp.command("MAIL FROM:<alice@sender.example>", 250)
    smtp.command("RCPT TO:<user@foreign.example>", 250)
    smtp.data(SMALL_MESSAGE, 250)
    smtp.command("MAIL FROM:<alice@sender.example>", 250)
    smtp.command("RCPT TO:<user@example.com>", 250)
    smtp.data(FIRST_MESSAGE, 250)


def one_message(smtp):
    smtp.command("MAIL FROM:<alice@sender.example>", 250)
    smtp.command("RCPT TO:<user@example.com>", 250)
    smtp.command("RCPT TO:<nobody@example.com>", 550)
    smtp.data(SMALL_MESSAGE, 250)


# --------------------------------------------------------------- scenarios

def shipped(relative):
    with open(os.path.join(SOURCE_DIR, "policies", relative)) as f:
        return f.read()


def read_data(name):
    with open(os.path.join(DATA_DIR, name)) as f:
        return f.read()


def default_lists():
    """The shipped lists with the lines data/default-policy-lists.txt adds
    (example.com local, alice owning the senders of sender.example), as
    the unit tests read them too."""
    files = {}
    for name in sorted(os.listdir(os.path.join(SOURCE_DIR, "policies", "lists"))):
        files["lists/" + name] = shipped("lists/" + name)
    for line in read_data("default-policy-lists.txt").splitlines():
        if line and not line.startswith("#"):
            relative, added = line.split("\t", 1)
            files[relative] += added + "\n"
    return files


class Scenario:
    def __init__(self, name, mta, policy_file, dialogue, about, xclient=None, postfix_params=None):
        self.name = name
        self.mta = mta                      # "postfix" or "sendmail"
        self.policy_file = policy_file      # relative to the source tree
        self.dialogue = dialogue
        self.about = about
        self.xclient = xclient or {}
        self.postfix_params = postfix_params or {}


EVERY_STAGE = "tests/unit/milter/data/every-stage.rules"
DEFAULT = "policies/default.rules"

SCENARIOS = [
    Scenario("postfix-every-stage", "postfix", EVERY_STAGE, two_messages,
             "milter_protocol = 6; every stage answered; two messages in one session"),
    Scenario("postfix-refusals", "postfix", EVERY_STAGE, refusals_then_message,
             "milter_protocol = 6; a refused MAIL, RSET, a message",
             xclient={"addr": EXTERNAL_IP, "name": "mail.example.net"}),
    Scenario("postfix-default-untrusted", "postfix", DEFAULT, default_untrusted,
             "milter_protocol = 6; the shipped policy: no-reply flags; relaying refused, greylisted",
             xclient={"addr": EXTERNAL_IP, "name": "mail.example.net"}),
    Scenario("postfix-default-authenticated", "postfix", DEFAULT, default_authenticated,
             "milter_protocol = 6; the shipped policy: no-reply flags; two messages from an authenticated client",
             xclient={"addr": EXTERNAL_IP, "name": "mail.example.net", "login": "alice"}),
    Scenario("postfix-protocol2", "postfix", EVERY_STAGE, one_message,
             "milter_protocol = 2: no no-reply flags, no macro lists, no leading space",
             postfix_params={"milter_protocol": "2"}),
    Scenario("postfix-protocol4", "postfix", EVERY_STAGE, one_message,
             "milter_protocol = 4, an IPv6 client",
             xclient={"addr": "IPV6:2001:db8::5", "name": "mail6.example.net"},
             postfix_params={"milter_protocol": "4"}),
    Scenario("sendmail", "sendmail", EVERY_STAGE, two_messages,
             "Sendmail 8.17 as `sendmail -bs` (local submission: no client address); two messages"),
]


# --------------------------------------------------------------- recording

def postfix_version():
    return harness.run(["postconf", "-d", "-h", "mail_version"]).stdout.strip()


def sendmail_version(root):
    binary = os.path.join(root, "usr/libexec/sendmail/sendmail")
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "usr/lib/x86_64-linux-gnu"))
    out = subprocess.run(["unshare", "-n", "-u", "sh", "-c",
                          "ip link set lo up && hostname %s && exec %s -d0.1 -bt < /dev/null"
                          % (Sendmail.HOSTNAME, binary)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=60).stdout
    match = re.search(r"Version (\S+)", out)
    return match.group(1) if match else "unknown"


def start_filter(tmp, scenario, unbound, address):
    policy_text = read_data(os.path.basename(scenario.policy_file)) if scenario.policy_file == EVERY_STAGE \
        else shipped("default.rules")
    files = default_lists() if scenario.policy_file == DEFAULT else {}
    settings = {"milter": {"engine": "native", "threads": 1},
                "dns": {"resolver": unbound.forwarder}}
    flt = Filter(tmp, policy_text, address=address, settings=settings, files=files,
                 name="filter-" + scenario.name)
    return flt.start()


def record_postfix(tmp, scenario, unbound):
    sink = Sink(tmp).start()
    proxy_port = free_port()
    filter_port = free_port()
    postfix = Postfix(tmp, sink.port, milter="inet:127.0.0.1:%d" % proxy_port, **scenario.postfix_params)
    flt = proxy = None
    try:
        postfix.start()
        flt = start_filter(tmp, scenario, unbound, ("inet", filter_port))
        proxy = RecordingProxy(("inet", proxy_port), ("inet", filter_port))
        proxy.start_recording()
        client = SMTPClient(postfix.port)
        client.hello(xclient=scenario.xclient or None)
        transcript = Transcript(client)
        if scenario.xclient:
            attributes = " ".join("%s=%s" % (k.upper(), v) for k, v in scenario.xclient.items())
            transcript.lines.append("C: EHLO client.test.invalid / XCLIENT %s / EHLO client.test.invalid"
                                    % attributes)
        scenario.dialogue(transcript)
        transcript.command("QUIT", 221)
        client.sock.close()
        connections = proxy.wait_closed(1)
        return connections, transcript.text(), "Postfix " + postfix_version(), flt.log()
    finally:
        if proxy:
            proxy.close()
        if flt:
            flt.stop()
        postfix.stop()
        sink.stop()


def record_sendmail(tmp, scenario, unbound):
    proxy_path = os.path.join(tmp.path, "proxy.sock")
    filter_path = os.path.join(tmp.path, "filter.sock")
    sendmail = Sendmail(tmp, milter_socket="unix:" + proxy_path)
    flt = start_filter(tmp, scenario, unbound, ("unix", filter_path))
    proxy = RecordingProxy(("unix", proxy_path), ("unix", filter_path))
    proxy.start_recording(settle=0)
    try:
        session = sendmail.session()
        transcript = Transcript(session)
        transcript.lines.append("S: %s" % session.greeting.line)
        transcript.command("EHLO client.test.invalid", 250)
        scenario.dialogue(transcript)
        transcript.command("QUIT", 221)
        session.close()
        connections = proxy.wait_closed(1)
        return connections, transcript.text(), "Sendmail " + sendmail_version(sendmail.root), flt.log()
    finally:
        proxy.close()
        flt.stop()


def negotiated(filter_bytes):
    """'version 6, actions 0x..., steps 0x...' from the filter's OPTNEG reply."""
    if len(filter_bytes) < 17 or filter_bytes[4:5] != b"O":
        return "no option negotiation reply"
    version, actions, steps = (int.from_bytes(filter_bytes[5 + 4 * i:9 + 4 * i], "big") for i in range(3))
    return "version %d, actions 0x%x, steps 0x%x" % (version, actions, steps)


def offered(mta_bytes):
    if len(mta_bytes) < 17 or mta_bytes[4:5] != b"O":
        return "no option negotiation"
    version, actions, steps = (int.from_bytes(mta_bytes[5 + 4 * i:9 + 4 * i], "big") for i in range(3))
    return "version %d, actions 0x%x, steps 0x%x" % (version, actions, steps)


def save(scenario, connections):
    """Postfix ends the milter connection at XCLIENT and opens another for
    the client it poses as: that first one is NAME-pre-xclient."""
    names = []
    for index, record in enumerate(connections):
        name = scenario.name
        if index + 1 < len(connections):
            name += "-pre-xclient" if scenario.xclient and index == 0 else "-%d" % (index + 1)
        for side in ("mta", "filter"):
            with open(os.path.join(DATA_DIR, "%s.%s.bin" % (name, side)), "wb") as f:
                f.write(bytes(record[side]))
        names.append((name, record))
    return names


README_HEAD = """\
# Milter protocol fixtures recorded from real MTAs

Each fixture is one milter connection as a real MTA spoke it to a real
portcullis (the native engine), recorded by `tests/milter/record_fixtures.py`
through a proxy that passes every byte unchanged:

- `NAME.mta.bin`: the bytes the MTA sent (option negotiation, macros,
  events, ABORT, QUIT), exactly as they came;
- `NAME.filter.bin`: the bytes the filter sent back.

The unit tests (`tests/unit/milter/protocol_test.cc`, `connection_test.cc`)
feed the MTA's bytes to the codec and to a Connection, whole, one byte at a
time and split at every position, and expect the filter's bytes back; the
milter fuzz targets (`tests/fuzz`) start from them.  The policies are
`every-stage.rules` here and the shipped `policies/default.rules`, with
its lists as shipped plus the lines `default-policy-lists.txt` adds.  No DNS data and no store state enter the
replies: the filter's resolver was a private unbound with no data, its
store the memory backend, empty at start.

To record them again (root, the e2e packages, a built daemon):

    PORTCULLIS_BIN=build/filter/portcullis python3 tests/milter/record_fixtures.py [NAME...]

The SMTP client poses as the client given (Postfix's XCLIENT); the
messages are in the tool.
"""


def write_readme(entries):
    """ENTRIES: {fixture name: text}, merged with those already listed."""
    path = os.path.join(DATA_DIR, "README.md")
    sections = {}
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        for match in re.finditer(r"(?ms)^## (\S+)\n.*?(?=^## |\Z)", text):
            sections[match.group(1)] = match.group(0).rstrip("\n") + "\n"
    sections.update(entries)
    with open(path, "w") as f:
        f.write(README_HEAD)
        for name in sorted(sections):
            f.write("\n" + sections[name])


def describe(scenario, name, record, transcript, mta_version):
    early = name != scenario.name
    about = scenario.about
    if early:
        about = ("the milter connection Postfix opened for the SMTP session before XCLIENT (as the client "
                 "really was, 127.0.0.1) and ended at XCLIENT; the session went on in `%s`" % scenario.name)
    lines = ["## %s" % name, "",
             "- Recorded: %s, %s, portcullis native engine." % (datetime.date.today().isoformat(), mta_version),
             "- Scenario: %s." % about,
             "- Policy: `%s`." % scenario.policy_file]
    if scenario.xclient and not early:
        lines.append("- Client (XCLIENT): %s." % ", ".join("%s=%s" % (k.upper(), v)
                                                          for k, v in scenario.xclient.items()))
    lines.append("- MTA offered: %s; filter agreed: %s." % (offered(record["mta"]), negotiated(record["filter"])))
    lines.append("- %d bytes from the MTA, %d from the filter." % (len(record["mta"]), len(record["filter"])))
    if not early:
        lines += ["", "SMTP dialogue:", "", "    " + transcript.replace("\n", "\n    ")]
    return "\n".join(lines) + "\n"


def main(argv):
    wanted = set(argv[1:])
    unknown = wanted - {s.name for s in SCENARIOS}
    if unknown:
        sys.exit("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    if not os.access(BIN, os.X_OK):
        sys.exit("no portcullis binary at %s (set PORTCULLIS_BIN)" % BIN)
    tmp = TempDir(prefix="portcullis-record-")
    unbound = Unbound(tmp, {}).start()
    entries = {}
    try:
        for scenario in SCENARIOS:
            if wanted and scenario.name not in wanted:
                continue
            record = record_sendmail if scenario.mta == "sendmail" else record_postfix
            own = TempDir(prefix="portcullis-record-%s-" % scenario.name)
            try:
                connections, transcript, mta_version, log = record(own, scenario, unbound)
            finally:
                own.cleanup()
            for name, connection in save(scenario, connections):
                entries[name] = describe(scenario, name, connection, transcript, mta_version)
                print("%s: %d bytes from the MTA, %d from the filter (%s)"
                      % (name, len(connection["mta"]), len(connection["filter"]), negotiated(connection["filter"])))
            if "warning" in log:
                print("--- filter log of %s:\n%s" % (scenario.name, log))
    finally:
        unbound.stop()
        tmp.cleanup()
    write_readme(entries)


if __name__ == "__main__":
    main(sys.argv)
