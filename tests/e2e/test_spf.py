"""SPF at MAIL FROM through a real Postfix, with a private unbound serving
the senders' SPF records (dns.resolver names it as the only forwarder).

Clients are posed with XCLIENT ADDR.  A sender whose domain's record does
not list the client is refused by `reject ... if spf == fail`, with the
result and domain in the reply; one it lists is delivered; for <> the
HELO name is checked.  A resolver that never answers makes the result
temperror: the fail rule does not apply and the filter survives.
"""

import socket
import unittest

from harness import BASE_POLICY, EXTERNAL_IP, UnboundTestCase, policy

RECORDS = {
    "strict.example.net": ['TXT "v=spf1 ip4:%s -all"' % EXTERNAL_IP],
    "other.example.net": ['TXT "v=spf1 ip4:198.51.100.0/24 -all"'],
    "helo.example.net": ['TXT "v=spf1 a -all"', "198.51.100.25"],
}
POLICY = policy(BASE_POLICY, """\
on mail {
    reject 550 5.7.23 "SPF ${spf} for ${spf.domain}" if spf == fail
}
on rcpt {
    reject 554 5.7.1 "Relay access denied" if not rcpt.domain in local_domains and not authenticated
}
""")


class SpfTest(UnboundTestCase):
    RECORDS = RECORDS
    POLICY = POLICY

    def test_fail_is_refused_with_result_and_domain(self):
        flt = self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="someone@other.example.net")
        self.assertReply(sent.reply_to("MAIL"), 550, "5.7.23 SPF fail for other.example.net", sent)
        self.assertFalse(sent.delivered, sent)
        flt.wait_for_log(r"mail: reject client=%s .*from=<someone@other\.example\.net>" % EXTERNAL_IP)

    def test_pass_is_delivered(self):
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="someone@strict.example.net")
        self.assertEqual(self.delivered_recipients(sent), ["user@example.com"])

    def test_null_sender_checks_the_helo_name(self):
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="<>", helo="helo.example.net")
        self.assertReply(sent.reply_to("MAIL"), 550, "5.7.23 SPF fail for helo.example.net", sent)
        sent = self.send_external("user@example.com", addr="198.51.100.25", sender="<>", helo="helo.example.net")
        self.assertEqual(self.delivered_recipients(sent), ["user@example.com"])

    def test_dead_resolver_is_temperror_and_refuses_nothing(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            flt = self.start("127.0.0.1@%d" % silent.getsockname()[1], timeout="500ms")
            sent = self.send_external("user@example.com", sender="someone@other.example.net")
            self.assertEqual(self.delivered_recipients(sent), ["user@example.com"])
            flt.wait_for_log(r"spf: client=%s .*domain=other\.example\.net result=temperror" % EXTERNAL_IP)
            self.assertFilterAlive(flt)


if __name__ == "__main__":
    unittest.main()
