"""Reload (SIGHUP) and shutdown (SIGTERM) of a running filter behind Postfix.

A broken policy is refused with its FILE:LINE and the old one keeps working;
a good one takes effect for new sessions while a session in flight finishes
on the rules it started with; SIGTERM lets a session in flight finish and
exits 0.
"""

import time
import unittest

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, PostfixTestCase,
                     SMTPClient, policy, rule_line, wait_until)

POLICY = policy(BASE_POLICY, RELAY_RULES)
BROKEN = policy(BASE_POLICY, """\
on rcpt { reject 554 5.7.1 "Relay access denied" if not rcpt.domian in local_domains }
""")
BROKEN_LINE = rule_line(BROKEN, "rcpt.domian")
NEW_TEXT = "5.7.1 Relaying prohibited here"
NEW_POLICY = policy(BASE_POLICY, """\
on connect { accept if client.ip in trusted }
on rcpt { reject 554 5.7.1 "Relaying prohibited here" if not rcpt.domain in local_domains }
""")

RELAY_DENIED = (554, "5.7.1 Relay access denied")


class ReloadTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.filter = self.start_filter(POLICY)

    def relay_reply(self):
        """The RCPT reply an external client gets for a foreign recipient."""
        transcript = self.send_external("user@foreign.example")
        reply = transcript.reply_to("RCPT")
        self.assertIsNotNone(reply, transcript)
        return reply.code, reply.text

    def open_session(self):
        """An SMTP session as the external client, through MAIL FROM."""
        client = SMTPClient(self.postfix.port)
        self.addCleanup(client.close)
        self.assertEqual(client.hello(xclient={"addr": EXTERNAL_IP}).code, 250)
        self.assertEqual(client.command("MAIL FROM:<a@sender.example>").code, 250)
        return client

    def test_broken_policy_is_refused_and_old_one_kept(self):
        self.assertEqual(self.relay_reply(), RELAY_DENIED)
        mark = self.filter.mark()
        self.filter.write_policy(BROKEN)
        self.filter.reload()
        self.filter.wait_for_log(r"test\.rules:%d\b" % BROKEN_LINE, since=mark)
        self.filter.wait_for_log(r"(?i)reload", since=mark)
        self.assertFilterAlive(self.filter)
        self.assertEqual(self.relay_reply(), RELAY_DENIED)
        local = self.send_external("user@example.com")
        self.assertEqual(self.delivered_recipients(local), ["user@example.com"])

    def test_good_policy_takes_effect_for_new_sessions(self):
        self.assertEqual(self.relay_reply(), RELAY_DENIED)
        self.filter.write_policy(NEW_POLICY)
        self.filter.reload()
        wait_until(lambda: self.relay_reply() == (554, NEW_TEXT), 15, "the new policy to apply")
        self.assertFilterAlive(self.filter)

    def test_session_in_flight_keeps_its_rules(self):
        client = self.open_session()
        self.assertEqual(client.command("RCPT TO:<one@foreign.example>").text, RELAY_DENIED[1])
        self.filter.write_policy(NEW_POLICY)
        self.filter.reload()
        wait_until(lambda: self.relay_reply() == (554, NEW_TEXT), 15, "the new policy to apply")
        reply = client.command("RCPT TO:<two@foreign.example>")
        self.assertEqual((reply.code, reply.text), RELAY_DENIED)

    def test_sigterm_lets_session_finish_and_exits_zero(self):
        client = self.open_session()
        self.assertEqual(client.command("RCPT TO:<before@example.com>").code, 250)
        self.filter.terminate()
        time.sleep(0.5)
        self.assertEqual(client.command("RCPT TO:<after@example.com>").code, 250)
        self.assertEqual(client.command("RCPT TO:<x@foreign.example>").code, 554)
        _, end = client.data("Subject: drain\n\nstill here\n")
        self.assertEqual(end.code, 250, end)
        client.close()
        self.assertEqual(self.filter.wait_exit(timeout=30), 0, self.filter.log())


if __name__ == "__main__":
    unittest.main()
