"""Open-relay guard through a real Postfix.

Postfix itself relays anything (relay_domains = static:ALL); only the filter's
policy stops a foreign client from relaying.  Clients are posed with XCLIENT:
203.0.113.5 is external, 192.0.2.10 trusted, LOGIN=alice authenticated.
"""

import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, TRUSTED_IP,
                     PostfixTestCase, decision, policy, rule_line)

POLICY = policy(BASE_POLICY, RELAY_RULES)
RELAY_LINE = rule_line(POLICY, "Relay access denied")
TRUSTED_LINE = rule_line(POLICY, "accept if client.ip in trusted")

RELAY_DENIED = (554, "5.7.1 Relay access denied")
OK = (250, None)


class RelayTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.filter = self.start_filter(POLICY)

    def assertRelayRefused(self, transcript):
        self.assertRcptReplies(transcript, [RELAY_DENIED])
        self.assertFalse(transcript.delivered, transcript)

    def test_external_client_cannot_relay(self):
        mark = self.filter.mark()
        transcript = self.send_external("user@foreign.example")
        self.assertRelayRefused(transcript)
        line = self.assertLogged(self.filter, *decision("rcpt", "reject", RELAY_LINE), since=mark)
        self.assertIn("client=%s" % EXTERNAL_IP, line)
        self.assertIn("user@foreign.example", line)

    def test_external_client_reaches_local_domains(self):
        refused = self.send_external("user@foreign.example")
        self.assertRelayRefused(refused)
        transcript = self.send_external(["user@example.com", "user@sub.example.com"])
        self.assertRcptReplies(transcript, [OK, OK])
        self.assertEqual(self.delivered_recipients(transcript),
                         ["user@example.com", "user@sub.example.com"])

    def test_one_refused_recipient_does_not_stop_the_others(self):
        transcript = self.send_external(
            ["a@example.com", "b@foreign.example", "c@example.com", "d@elsewhere.example"])
        self.assertRcptReplies(transcript, [OK, RELAY_DENIED, OK, RELAY_DENIED])
        self.assertTrue(transcript.delivered, transcript)
        self.assertEqual(self.delivered_recipients(transcript), ["a@example.com", "c@example.com"])

    def test_authenticated_client_may_relay(self):
        self.assertRelayRefused(self.send_external("user@foreign.example"))
        transcript = self.send_external("user@foreign.example", xclient={"login": "alice"})
        self.assertRcptReplies(transcript, [OK])
        self.assertEqual(self.delivered_recipients(transcript), ["user@foreign.example"])

    def test_trusted_client_may_relay(self):
        self.assertRelayRefused(self.send_external("user@foreign.example"))
        mark = self.filter.mark()
        transcript = self.send_external("user@foreign.example", addr=TRUSTED_IP)
        self.assertRcptReplies(transcript, [OK])
        self.assertEqual(self.delivered_recipients(transcript), ["user@foreign.example"])
        self.assertLogged(self.filter, *decision("connect", "accept", TRUSTED_LINE), since=mark)

    def test_ipv6_clients(self):
        external = "IPV6:2001:db8::5"
        self.assertRelayRefused(self.send_external("user@foreign.example", addr=external))
        local = self.send_external("user@example.com", addr=external)
        self.assertEqual(self.delivered_recipients(local), ["user@example.com"])
        trusted = self.send_external("user@foreign.example", addr="IPV6:::1")
        self.assertRcptReplies(trusted, [OK])
        self.assertEqual(self.delivered_recipients(trusted), ["user@foreign.example"])


class NoFilterTest(PostfixTestCase):
    """Guards the harness itself: with the milter down, Postfix must not
    relay (milter_default_action = tempfail), so relay tests above cannot
    pass by the filter being bypassed."""

    def test_postfix_tempfails_without_filter(self):
        transcript = self.send_external("user@example.com")
        self.assertFalse(transcript.delivered, transcript)
        codes = [r.code for r in transcript.replies if r.code and r.code >= 400]
        self.assertTrue(codes and all(400 <= c < 500 for c in codes), transcript)


if __name__ == "__main__":
    unittest.main()
