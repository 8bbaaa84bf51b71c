"""Policy actions as an SMTP client sees them through a real Postfix.

reject/tempfail codes and texts reach the client exactly as the rule writes
them (a connect or helo verdict shows at the next command Postfix answers
with it: MAIL), accept at connect skips later rules, add-header reaches the
next hop expanded, and monitor mode or the monitor prefix logs without
enforcing.
"""

import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, TRUSTED_IP,
                     PostfixTestCase, decision, policy, rule_line)

TRUST_LOCAL = "on connect { accept if client.ip in { 127.0.0.0/8 } }\n"
OK = (250, None)


class ReplyTextTest(PostfixTestCase):
    """Codes and texts of reject and tempfail at every stage."""

    def assertRefusedAtMail(self, transcript, code, text):
        """Postfix answers a connect/helo/mail verdict at MAIL FROM; the
        greeting (here: the reply to XCLIENT) must still be 220, or a normal
        client hangs up on a generic 554 without ever seeing the rule's text."""
        xclient = transcript.reply_to("XCLIENT")
        self.assertReply(xclient, 220, context=transcript)
        self.assertReply(transcript.reply_to("MAIL"), code, text, transcript)
        self.assertFalse(transcript.delivered, transcript)

    def test_reject_at_connect_is_given_at_next_command(self):
        rules = policy(BASE_POLICY, """\
on connect {
    accept if client.ip in trusted
    reject 550 5.7.0 "No mail from ${client.ip} today"
}""")
        flt = self.start_filter(rules)
        transcript = self.send_external("user@example.com")
        self.assertRefusedAtMail(transcript, 550, "5.7.0 No mail from %s today" % EXTERNAL_IP)
        self.assertLogged(flt, *decision("connect", "reject", rule_line(rules, "No mail from")))
        trusted = self.send_external("user@example.com", addr=TRUSTED_IP)
        self.assertTrue(trusted.delivered, trusted)

    def test_tempfail_at_connect_is_given_at_next_command(self):
        self.start_filter(policy(TRUST_LOCAL, 'on connect { tempfail 451 4.3.2 "Busy, ${client.ip}" }'))
        transcript = self.send_external("user@example.com")
        self.assertRefusedAtMail(transcript, 451, "4.3.2 Busy, %s" % EXTERNAL_IP)

    def test_reject_at_helo_is_given_at_next_command(self):
        rules = policy(TRUST_LOCAL, 'on helo { reject 550 5.7.1 "Bad HELO ${helo}" if helo == "bad.example" }')
        self.start_filter(rules)
        transcript = self.send_external("user@example.com", helo="bad.example")
        self.assertRefusedAtMail(transcript, 550, "5.7.1 Bad HELO bad.example")
        good = self.send_external("user@example.com", helo="good.example")
        self.assertTrue(good.delivered, good)

    def test_reject_at_mail(self):
        rules = policy(TRUST_LOCAL, 'on mail { reject 550 5.7.0 "No mail from ${client.ip} today" }')
        flt = self.start_filter(rules)
        transcript = self.send_external("user@example.com")
        self.assertRefusedAtMail(transcript, 550, "5.7.0 No mail from %s today" % EXTERNAL_IP)
        self.assertLogged(flt, *decision("mail", "reject", rule_line(rules, "No mail from")))

    def test_default_reject_text(self):
        self.start_filter(policy(TRUST_LOCAL, "on mail { reject }"))
        transcript = self.send_external("user@example.com")
        self.assertRefusedAtMail(transcript, 550, "5.7.1 Rejected by policy")

    def test_tempfail_at_rcpt_refuses_that_recipient_only(self):
        rules = policy(TRUST_LOCAL, 'on rcpt { tempfail 452 4.3.1 "Come back later" if rcpt.local == "later" }')
        flt = self.start_filter(rules)
        transcript = self.send_external(["later@example.com", "now@example.com"])
        self.assertRcptReplies(transcript, [(452, "4.3.1 Come back later"), OK])
        self.assertEqual(self.delivered_recipients(transcript), ["now@example.com"])
        self.assertLogged(flt, *decision("rcpt", "tempfail", rule_line(rules, "Come back later")))

    def test_reject_at_eom(self):
        self.start_filter(policy(
            TRUST_LOCAL,
            'on eom { reject 550 5.7.1 "No ${from.domain} spam" if header("Subject") =~ /viagra/i }'))
        transcript = self.send_external("user@example.com",
                                        headers=["Subject: Cheap VIAGRA", "From: <boss@spam.example>"])
        self.assertReply(transcript.reply_to("."), 550, "5.7.1 No spam.example spam", transcript)
        clean = self.send_external("user@example.com", headers=["Subject: minutes"])
        self.assertTrue(clean.delivered, clean)


class AcceptTest(PostfixTestCase):

    def test_accept_at_connect_skips_later_rules(self):
        rules = policy(BASE_POLICY, """\
on connect { accept if client.ip in trusted }
on rcpt { reject 550 5.7.1 "Nobody gets in" }
""")
        self.start_filter(rules)
        refused = self.send_external("user@example.com")
        self.assertRcptReplies(refused, [(550, "5.7.1 Nobody gets in")])
        transcript = self.send_external("user@example.com", addr=TRUSTED_IP)
        self.assertRcptReplies(transcript, [OK])
        self.assertEqual(self.delivered_recipients(transcript), ["user@example.com"])

    def test_accept_at_rcpt_is_for_that_recipient_only(self):
        rules = policy(TRUST_LOCAL, """\
on rcpt {
    accept if rcpt.local == "postmaster"
    reject 550 5.7.1 "Only the postmaster"
}""")
        self.start_filter(rules)
        transcript = self.send_external(["postmaster@example.com", "user@example.com"])
        self.assertRcptReplies(transcript, [OK, (550, "5.7.1 Only the postmaster")])
        self.assertEqual(self.delivered_recipients(transcript), ["postmaster@example.com"])


class HeaderTest(PostfixTestCase):

    def test_add_header_reaches_next_hop_expanded(self):
        self.start_filter(policy(TRUST_LOCAL, 'on rcpt { add-header X-Portcullis "checked ${client.ip}" }'))
        transcript = self.send_external("user@example.com")
        messages = self.deliveries(transcript)
        self.assertEqual(len(messages), 1, messages)
        self.assertEqual(messages[0].header_all("X-Portcullis"), ["checked %s" % EXTERNAL_IP])

    def test_add_header_at_eom_with_message_fields(self):
        self.start_filter(policy(TRUST_LOCAL, 'on eom { add-header X-Portcullis-From "${from.domain} via ${helo}" }'))
        transcript = self.send_external("user@example.com", helo="mx.sender.example",
                                        headers=["From: Boss <boss@sender.example>"])
        messages = self.deliveries(transcript)
        self.assertEqual(messages[0].header_all("X-Portcullis-From"),
                         ["sender.example via mx.sender.example"])


class MonitorTest(PostfixTestCase):

    def test_monitor_mode_logs_and_delivers(self):
        rules = policy(BASE_POLICY, RELAY_RULES)
        flt = self.start_filter(rules, settings={"policy": {"mode": "monitor"}})
        transcript = self.send_external("user@foreign.example")
        self.assertRcptReplies(transcript, [OK])
        self.assertEqual(self.delivered_recipients(transcript), ["user@foreign.example"])
        self.assertLogged(flt, r"\bmonitor\b", *decision("rcpt", "reject", rule_line(rules, "Relay access")))

    def test_monitor_prefix_on_one_rule(self):
        rules = policy(TRUST_LOCAL, """\
on rcpt {
    monitor reject 550 5.7.1 "Watched" if rcpt.local == "watched"
    reject 550 5.7.1 "Blocked" if rcpt.local == "blocked"
}""")
        flt = self.start_filter(rules)
        transcript = self.send_external(["watched@example.com", "blocked@example.com"])
        self.assertRcptReplies(transcript, [OK, (550, "5.7.1 Blocked")])
        self.assertEqual(self.delivered_recipients(transcript), ["watched@example.com"])
        self.assertLogged(flt, r"\bmonitor\b", *decision("rcpt", "reject", rule_line(rules, "Watched")))


if __name__ == "__main__":
    unittest.main()
