"""DNSBL and RHSBL rules through a real Postfix, with a private unbound
serving the lists as local data on 127.0.0.1 (dns.resolver names it as the
only forwarder; no test ever uses the machine's resolver).

Clients are posed with XCLIENT ADDR; a connect-stage refusal reaches the
client at MAIL FROM.  A resolver that never answers (a UDP socket the test
holds and never reads) makes every lookup a temperror: the rules do not
apply, and the filter neither crashes nor refuses.
"""

import socket
import time
import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, UnboundTestCase, policy, portcullis,
                     rule_line)

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


if __name__ == "__main__":
    unittest.main()
