"""Hostile and broken input: the filter stays up and keeps deciding.

Garbage on the milter socket, 10,000 recipients in one message, a 1 MB
header line (all through a real Postfix), and broken configuration, policy
and list files, which `portcullis check` and `portcullis run` refuse with
exit 1 and FILE:LINE[:COL] errors.
"""

import os
import random
import socket
import struct
import time
import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, Filter,
                     FilterTestCase, PostfixTestCase, SMTPClient, policy,
                     portcullis, write_file)

POLICY = policy(BASE_POLICY, RELAY_RULES)
RELAY_DENIED = (554, "5.7.1 Relay access denied")


def milter_packet(command, data=b""):
    return struct.pack("!I", len(data) + 1) + command + data


def garbage_payloads():
    """Byte strings no MTA would send, each on its own connection."""
    rng = random.Random(1234)
    negotiate = milter_packet(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF))
    return [
        bytes(rng.getrandbits(8) for _ in range(65536)),             # noise
        b"EHLO this is not the milter protocol\r\n" * 50,            # SMTP at a milter
        struct.pack("!I", 0x7FFFFFFF) + b"C" + b"x" * 100,           # absurd length
        struct.pack("!I", 0) * 16,                                   # empty packets
        negotiate + milter_packet(b"C", b"\x00\x00\x00"),            # truncated connect
        negotiate + milter_packet(b"C", b"host\x004\x00\x19999.1.2.3\x00"),  # bad address
        negotiate + milter_packet(b"M") + milter_packet(b"R"),       # mail/rcpt before connect
        negotiate + milter_packet(b"Z", b"unknown command"),         # unknown command
        negotiate + milter_packet(b"D", b"C" + b"j\x00" * 2000),      # unpaired macros
        negotiate + milter_packet(b"C", b"h\x004\x00\x19203.0.113.5\x00") + milter_packet(b"E"),
        negotiate[:7],                                               # cut mid-packet
    ]


class BadInputTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.filter = self.start_filter(POLICY)

    def assertStillFiltering(self):
        """The filter lives and decides: relay refused, local mail delivered."""
        self.assertFilterAlive(self.filter)
        refused = self.send_external("user@foreign.example")
        self.assertRcptReplies(refused, [RELAY_DENIED])
        local = self.send_external("user@example.com")
        self.assertEqual(self.delivered_recipients(local), ["user@example.com"])

    def send_garbage(self, payload):
        with socket.create_connection(("127.0.0.1", self.milter_port), timeout=5) as s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass   # the filter may well hang up on us

    def test_garbage_on_milter_socket(self):
        for payload in garbage_payloads():
            self.send_garbage(payload)
            self.assertFilterAlive(self.filter)
        self.assertStillFiltering()

    def test_ten_thousand_recipients(self):
        started = time.monotonic()
        client = SMTPClient(self.postfix.port, timeout=120)
        self.addCleanup(client.close)
        self.assertEqual(client.hello(xclient={"addr": EXTERNAL_IP}).code, 250)
        self.assertEqual(client.command("MAIL FROM:<bulk@sender.example>").code, 250)
        local = ["u%05d@example.com" % i for i in range(10000)]
        foreign = ["f%d@foreign.example" % i for i in range(5)]
        replies = client.pipelined(["RCPT TO:<%s>" % r for r in local + foreign])
        codes = [r.code for r in replies]
        self.assertEqual(codes[:10000], [250] * 10000,
                         "first refusals: %s" % [r for r in replies[:10000] if r.code != 250][:5])
        self.assertEqual([(r.code, r.text) for r in replies[10000:]], [RELAY_DENIED] * 5)
        _, end = client.data("Subject: bulk\n\nten thousand\n")
        self.assertEqual(end.code, 250, end)
        client.close()
        queue_id = end.text.rsplit(" ", 1)[-1]
        self.postfix.wait_removed(queue_id, timeout=120)
        delivered = sum(len(m.recipients) for m in self.sink.messages_for(queue_id))
        self.assertEqual(delivered, 10000)
        self.assertLess(time.monotonic() - started, 150)
        self.assertStillFiltering()

    def test_megabyte_header_line(self):
        data = "Subject: big\nX-Big: %s\n\nbody\n" % ("a" * (1024 * 1024))
        transcript = self.send_external("user@example.com", data=data, timeout=120)
        end = transcript.reply_to(".")
        self.assertIsNotNone(end, transcript)
        self.assertTrue(end.code == 250 or 500 <= end.code < 600,
                        "neither accepted nor refused cleanly: %r" % end)
        if end.code == 250:
            self.deliveries(transcript)
        self.assertStillFiltering()


class CheckCommandTest(FilterTestCase):
    """`portcullis check` and start-up refusals, no MTA needed."""

    def write_setup(self, config_text, policy_text, name):
        directory = self.tmp.sub(name)
        rules = write_file(os.path.join(directory, "test.rules"), policy_text)
        config = write_file(os.path.join(directory, "portcullis.conf"),
                            config_text.replace("POLICY", rules))
        return directory, config

    GOOD_CONFIG = """\
[milter]
socket = "inet:10025@127.0.0.1"
user = ""

[policy]
file = "POLICY"

[log]
target = "stderr"

[store]
backend = "memory"
"""

    def assertCheckFails(self, config, *locations):
        """check exits 1 and names every FILE:LINE[:COL] regex given."""
        result = portcullis("check", "-c", config)
        self.assertEqual(result.returncode, 1, result.stdout)
        for location in locations:
            self.assertRegex(result.stdout, location)
        return result

    def test_check_tells_good_setup_from_bad(self):
        _, config = self.write_setup(self.GOOD_CONFIG, POLICY, "good")
        result = portcullis("check", "-c", config)
        self.assertEqual(result.returncode, 0, result.stdout)
        _, config = self.write_setup(self.GOOD_CONFIG, POLICY + "on rcpt { frobnicate }\n", "bad")
        self.assertCheckFails(config, r"test\.rules:%d:\d+: error" % (POLICY.count("\n") + 1))

    def test_check_reports_bad_config_keys_and_types(self):
        broken = self.GOOD_CONFIG.replace('user = ""', 'usr = ""').replace(
            'backend = "memory"', "backend = 42")
        _, config = self.write_setup(broken, POLICY, "badconfig")
        self.assertCheckFails(config, r"portcullis\.conf:3\b", r"portcullis\.conf:12\b")

    def test_check_reports_config_syntax_error(self):
        broken = self.GOOD_CONFIG.replace('backend = "memory"', "backend = memory")
        _, config = self.write_setup(broken, POLICY, "syntaxconfig")
        self.assertCheckFails(config, r"portcullis\.conf:12\b")

    def test_check_reports_malformed_policy(self):
        broken = policy(BASE_POLICY, """\
on connect { accept if client.ip in trusted }
on rcpt { reject 554 5.7.1 "Relay access denied" if not rcpt.domian in local_domains }
on mail { reject 999 "bad code" }
on rcpt { reject 550 5.7.1 "unterminated }
""")
        _, config = self.write_setup(self.GOOD_CONFIG, broken, "badpolicy")
        self.assertCheckFails(config, *[r"test\.rules:%d:\d+: error" % n for n in (4, 5, 6)])

    def test_missing_list_file_refused_at_start(self):
        rules = policy('list local_domains domain file "lists/missing-domains.txt"',
                       'on rcpt { reject if not rcpt.domain in local_domains }')
        flt = Filter(self.tmp, rules, name="missing-list")
        self.filters.append(flt)
        self.addCleanup(self._stop_filter, flt)
        check = portcullis("check", "-c", flt.config_file)
        self.assertEqual(check.returncode, 1, check.stdout)
        self.assertIn("missing-domains.txt", check.stdout)
        with self.assertRaises(RuntimeError) as refused:
            flt.start(timeout=20)
        self.assertEqual(flt.proc.returncode, 1, flt.log())
        self.assertIn("missing-domains.txt", str(refused.exception))

    def test_bad_usage_exits_2(self):
        result = portcullis("frobnicate")
        self.assertEqual(result.returncode, 2, result.stdout)


if __name__ == "__main__":
    unittest.main()
