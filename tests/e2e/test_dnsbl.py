"""DNSBL and RHSBL rules through a real Postfix, with a private unbound
serving the lists as local data on 127.0.0.1 (dns.resolver names it as the
only forwarder; no test ever uses the machine's resolver).

Clients are posed with XCLIENT ADDR; a connect-stage refusal reaches the
client at MAIL FROM.  A resolver that never answers (a UDP socket the test
holds and never reads) makes every lookup a temperror: the rules do not
apply, and the filter neither crashes nor refuses.

A list in a zone libunbound answers itself (.test, .invalid, .localhost,
.onion, ...) is never consulted: `portcullis check` warns of each with its
FILE:LINE:COL and still exits 0, and start and reload log the same.
"""

import re
import socket
import time
import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, Filter, FilterTestCase, UnboundTestCase,
                     policy, portcullis, rule_line)

LISTED_IP = "198.51.100.7"
LISTED_V6 = "2001:db8::77"
CODE10_IP = "198.51.100.10"
RECORDS = {
    "7.100.51.198.bl.example": ["127.0.0.2"],
    "10.100.51.198.zen.example": ["127.0.0.2", "127.0.0.10"],
    "7.7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example": ["127.0.0.2"],
    "spam.example.dbl.example": ["127.0.1.2"],
}
POLICY = policy(BASE_POLICY, """\
on connect {
    accept if client.ip in trusted
    reject 554 5.7.1 "Client host [${client.ip}] blocked using bl.example" if client.ip in dnsbl "bl.example"
    reject 550 5.7.1 "Policy block: end user network" if dnsbl("zen.example") == 127.0.0.10
}
on mail {
    reject 550 5.7.1 "Sender domain ${sender.domain} is listed" if sender.domain in dnsbl "dbl.example"
}
on rcpt {
    reject 554 5.7.1 "Relay access denied" if not rcpt.domain in local_domains and not authenticated
}
""")
DNSBL_LINE = rule_line(POLICY, "blocked using bl.example")
ZEN_LINE = rule_line(POLICY, "end user network")


class DnsblTest(UnboundTestCase):
    RECORDS = RECORDS
    POLICY = POLICY

    def assertRefusedAtMail(self, transcript, code, text):
        self.assertReply(transcript.reply_to("MAIL"), code, text, transcript)
        self.assertFalse(transcript.delivered, transcript)

    def test_listed_client_is_refused_with_the_rules_reply(self):
        flt = self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", addr=LISTED_IP)
        self.assertRefusedAtMail(sent, 554, "5.7.1 Client host [%s] blocked using bl.example" % LISTED_IP)
        flt.wait_for_log(r"connect: reject client=%s .*rule=\S*test\.rules:%d" % (LISTED_IP, DNSBL_LINE))
        flt.wait_for_log(r"dns: 7\.100\.51\.198\.bl\.example A: found 127\.0\.0\.2 in \d+ms")

    def test_listed_ipv6_client_is_refused(self):
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", addr="IPV6:" + LISTED_V6)
        self.assertRefusedAtMail(sent, 554, "5.7.1 Client host [%s] blocked using bl.example" % LISTED_V6)

    def test_unlisted_client_is_accepted(self):
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", addr=EXTERNAL_IP)
        self.assertEqual(self.delivered_recipients(sent), ["user@example.com"])

    def test_return_code_picks_the_rule(self):
        flt = self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", addr=CODE10_IP)
        self.assertRefusedAtMail(sent, 550, "5.7.1 Policy block: end user network")
        flt.wait_for_log(r"connect: reject client=%s .*rule=\S*test\.rules:%d" % (CODE10_IP, ZEN_LINE))

    def test_rhsbl_on_the_sender_domain(self):
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="someone@spam.example")
        self.assertRefusedAtMail(sent, 550, "5.7.1 Sender domain spam.example is listed")

    def test_dead_resolver_times_out_and_refuses_nothing(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            flt = self.start("127.0.0.1@%d" % silent.getsockname()[1], timeout="500ms")
            started = time.monotonic()
            sent = self.send_external("user@example.com", addr=LISTED_IP,
                                      sender="someone@spam.example")
            self.assertEqual(self.delivered_recipients(sent), ["user@example.com"])
            self.assertLess(time.monotonic() - started, 20)
            flt.wait_for_log(r"dns: 7\.100\.51\.198\.bl\.example A: temperror \(timeout\) in \d+ms; "
                             r"taken as not listed")
            self.assertFilterAlive(flt)

    def test_check_names_dns_resolver_when_the_setting_is_refused(self):
        flt = self.start(self.unbound.forwarder)
        proc = portcullis("check", "-c", flt.config_file, "-o", "dns.resolver=not-an-address")
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("dns.resolver", proc.stdout)


UNCONSULTED_POLICY = policy(BASE_POLICY, """\
on connect {
    reject 554 5.7.1 "listed" if client.ip in dnsbl "bl.test"
    reject 550 5.7.1 "code 4" if dnsbl("zen.invalid") == 127.0.0.4
    accept if client.ip in dnsbl "bl.example"
}
on mail {
    reject 550 5.7.1 "${sender.domain}: ${dnsbl(\\"bl.onion\\")}" if sender.domain in dnsbl "Dbl.LOCALHOST."
}
""")


def position(text, needle, skip=0):
    """"LINE:COL" of the first `needle` in text, COL moved on by `skip`."""
    line = rule_line(text, needle)
    return "%d:%d" % (line, text.splitlines()[line - 1].index(needle) + 1 + skip)


# Where each list is named, its zone, and the local zone it lies in.
UNCONSULTED = [
    (position(UNCONSULTED_POLICY, '"bl.test"'), "bl.test", "test"),
    (position(UNCONSULTED_POLICY, 'dnsbl("zen.invalid")'), "zen.invalid", "invalid"),
    (position(UNCONSULTED_POLICY, '"Dbl.LOCALHOST."'), "Dbl.LOCALHOST.", "localhost"),
    (position(UNCONSULTED_POLICY, "${dnsbl", skip=2), "bl.onion", "onion"),
]


class UnconsultedListTest(FilterTestCase):
    """Lists in zones libunbound answers itself: warnings, not errors."""

    def setUp(self):
        super().setUp()
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(self.silent.close)
        self.silent.bind(("127.0.0.1", 0))
        self.resolver = {"dns": {"resolver": "127.0.0.1@%d" % self.silent.getsockname()[1]}}

    @staticmethod
    def warning(where, zone, local_zone, logged=False):
        """The warning as `check` prints it, or as the log has it."""
        head = r"warning: \S*test\.rules:%s: " if logged else r"test\.rules:%s: warning: "
        return (head % re.escape(where) + r"DNS list '%s' is never consulted: libunbound answers "
                r"every name under '%s' itself" % (re.escape(zone), local_zone))

    def test_check_warns_with_where_and_exits_zero(self):
        flt = Filter(self.tmp, UNCONSULTED_POLICY, settings=self.resolver, name="check")
        check = portcullis("check", "-c", flt.config_file)
        self.assertEqual(check.returncode, 0, check.stdout)
        self.assertIn("portcullis check: ok", check.stdout)
        for where, zone, local_zone in UNCONSULTED:
            self.assertRegex(check.stdout, self.warning(where, zone, local_zone))
        self.assertEqual(check.stdout.count("warning:"), len(UNCONSULTED), check.stdout)
        self.assertRegex(check.stdout, r"'Dbl\.LOCALHOST\.' .*\) with 127\.0\.0\.1, whatever dns\.resolver names")
        self.assertRegex(check.stdout, r"'bl\.test' .*\(RFC 6761 special-use name\) with no address")

    def test_start_and_reload_log_the_warnings(self):
        flt = self.start_filter(policy(BASE_POLICY, 'on connect { reject if client.ip in dnsbl "bl.example" }'),
                                settings=self.resolver)
        flt.wait_for_log(r"listening on")
        self.assertEqual(flt.find_log(r"warning: .*DNS list"), [], flt.log())
        mark = flt.mark()
        flt.write_policy(UNCONSULTED_POLICY)
        flt.reload()
        flt.wait_for_log(r"reloaded policy", since=mark)
        for where, zone, local_zone in UNCONSULTED:
            flt.wait_for_log(self.warning(where, zone, local_zone, logged=True), since=mark)
        self.assertEqual(flt.stop(), 0, flt.log())
        again = self.start_filter(UNCONSULTED_POLICY, settings=self.resolver)
        for where, zone, local_zone in UNCONSULTED:
            again.wait_for_log(self.warning(where, zone, local_zone, logged=True))


if __name__ == "__main__":
    unittest.main()
