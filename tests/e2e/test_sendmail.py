"""The core scenarios through Sendmail 8.17 (`sendmail -bs`, local submission),
and DKIM with our Authentication-Results through its header handling.

Sendmail runs in its own network namespace (see harness.Sendmail) and calls
the filter at a unix socket.  Local submission gives the filter host name
"localhost" and no address: client.ip is absent, so `client.ip in trusted`
is false and the relay rule applies.  Sendmail prefixes a MAIL-stage reply
text with "<sender>... "; RCPT and connect/helo verdicts (given at MAIL)
come through verbatim.
"""

import os
import re
import unittest

from harness import (BASE_POLICY, RELAY_RULES, FilterTestCase, Sendmail, Unbound,
                     decision, policy, rule_line)
from test_auth import make_key, message, sign, txt

POLICY = policy(BASE_POLICY, RELAY_RULES)
HELO = "client.test.invalid"


class SendmailTest(FilterTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.socket_path = os.path.join(cls.tmp.path, "milter.sock")
        cls.sendmail = Sendmail(cls.tmp, milter_socket="unix:" + cls.socket_path)

    def start_filter(self, policy_text, **kwargs):
        kwargs.setdefault("address", ("unix", self.socket_path))
        return super().start_filter(policy_text, **kwargs)

    def session(self):
        """A `sendmail -bs` session, greeted and past EHLO."""
        session = self.sendmail.session()
        self.addCleanup(session.close)
        self.assertEqual(session.greeting.code, 220, session.greeting)
        self.assertEqual(session.command("EHLO " + HELO).code, 250)
        return session

    def new_queue_files(self, before):
        return [f for f in self.sendmail.queue_files() if f not in before]

    def queued_headers(self, before):
        """The header lines of the one message queued since `before`."""
        qf = [f for f in self.new_queue_files(before) if f.startswith("qf")]
        self.assertEqual(len(qf), 1, self.sendmail.queue_files())
        with open(os.path.join(self.sendmail.dir, "mqueue", qf[0]), errors="replace") as f:
            text = f.read()
        # qf header lines look like "H??Name: value" or "H?F?From: ...",
        # folded ones go on in lines that start with a tab.
        return re.findall(r"(?m)^H(?:\?[^?\n]*\?)?(.*(?:\n\t.*)*)$", text)

    def test_relay_refused_local_accepted(self):
        flt = self.start_filter(POLICY)
        before = self.sendmail.queue_files()
        session = self.session()
        self.assertEqual(session.command("MAIL FROM:<someone@sender.example>").code, 250)
        self.assertReply(session.command("RCPT TO:<user@foreign.example>"), 554, "5.7.1 Relay access denied")
        self.assertReply(session.command("RCPT TO:<user@example.com>"), 250)
        _, end = session.data("Subject: local\n\nhello\n")
        self.assertReply(end, 250)
        self.assertEqual(len(self.new_queue_files(before)), 2, self.sendmail.queue_files())
        self.assertLogged(flt, *decision("rcpt", "reject", rule_line(POLICY, "Relay access denied")))
        self.assertFilterAlive(flt)

    def test_reject_text_at_mail(self):
        rules = policy(BASE_POLICY, """\
on mail { reject 550 5.7.0 "No mail from ${sender.domain} today" if sender.domain == "spam.example" }
""")
        self.start_filter(rules)
        session = self.session()
        reply = session.command("MAIL FROM:<a@spam.example>")
        self.assertReply(reply, 550, "5.7.0 <a@spam.example>... No mail from spam.example today")
        self.assertReply(session.command("MAIL FROM:<a@ham.example>"), 250)

    def test_reject_at_connect_is_given_at_next_command(self):
        self.start_filter(policy(BASE_POLICY, 'on connect { reject 550 5.7.0 "Local submission closed" }'))
        session = self.sendmail.session()
        self.addCleanup(session.close)
        self.assertEqual(session.greeting.code, 220, session.greeting)
        session.command("EHLO " + HELO)
        self.assertReply(session.command("MAIL FROM:<someone@sender.example>"), 550,
                         "5.7.0 Local submission closed")

    def test_add_header(self):
        self.start_filter(policy(BASE_POLICY, 'on eom { add-header X-Portcullis "checked via ${helo}" }'))
        before = self.sendmail.queue_files()
        session = self.session()
        self.assertEqual(session.command("MAIL FROM:<someone@sender.example>").code, 250)
        self.assertEqual(session.command("RCPT TO:<user@example.com>").code, 250)
        _, end = session.data("Subject: header\n\nhello\n")
        self.assertReply(end, 250)
        headers = self.queued_headers(before)
        self.assertIn("X-Portcullis: checked via %s" % HELO, headers)

    def test_dkim_and_authentication_results(self):
        """A signed message verifies through Sendmail's header bytes; our
        Authentication-Results goes in and a forged one goes out."""
        key_file, record = make_key(self.tmp.sub("dkim-keys"), "sel", "signed.example")
        unbound = Unbound(self.tmp, {"sel._domainkey.signed.example": [txt(record)],
                                     "_dmarc.signed.example": ['TXT "v=DMARC1; p=reject"']}, name="unbound-dkim")
        unbound.start()
        self.addCleanup(unbound.stop)
        self.start_filter(policy(BASE_POLICY, RELAY_RULES), settings={
            "dns": {"resolver": unbound.forwarder}, "auth": {"authserv_id": "mx.test"}})
        data = sign(message("alice@signed.example",
                            extra_headers=["Authentication-Results: mx.test; dkim=pass header.d=bank.example"]),
                    key_file)
        before = self.sendmail.queue_files()
        session = self.session()
        self.assertEqual(session.command("MAIL FROM:<alice@signed.example>").code, 250)
        self.assertEqual(session.command("RCPT TO:<user@example.com>").code, 250)
        _, end = session.data(data.replace("\r\n", "\n"))
        self.assertReply(end, 250)
        results = [h for h in self.queued_headers(before) if h.startswith("Authentication-Results:")]
        self.assertEqual(len(results), 1, self.queued_headers(before))
        # Local submission: no client address, so SPF is none.
        self.assertRegex(results[0], r"(?s)^Authentication-Results: mx\.test;\s+spf=none;"
                                     r"\s+dkim=pass \(2048-bit key\) header\.d=signed\.example .*"
                                     r"dmarc=pass \(p=reject dis=none\) header\.from=signed\.example")

    def test_no_client_address_is_handled(self):
        rules = policy(BASE_POLICY, """\
on connect {
    reject 554 5.7.1 "Blocked ${client.ip}" if client.ip in { 203.0.113.0/24 }
    log "local submission from [${client.ip}] ${client.host}"
}
on eom { add-header X-Portcullis-Client "[${client.ip}] ${client.host}" }
""")
        flt = self.start_filter(rules)
        before = self.sendmail.queue_files()
        session = self.session()
        self.assertEqual(session.command("MAIL FROM:<someone@sender.example>").code, 250)
        self.assertEqual(session.command("RCPT TO:<user@example.com>").code, 250)
        _, end = session.data("Subject: local\n\nhello\n")
        self.assertReply(end, 250)
        self.assertFilterAlive(flt)
        added = [h for h in self.queued_headers(before) if h.startswith("X-Portcullis-Client:")]
        self.assertEqual(len(added), 1, self.queued_headers(before))
        self.assertTrue(added[0].endswith("] localhost"), added)

    def test_filter_down_tempfails(self):
        """Harness guard: Sendmail really consults the milter (F=T)."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        session = self.sendmail.session()
        self.addCleanup(session.close)
        replies = [session.greeting, session.command("EHLO " + HELO),
                   session.command("MAIL FROM:<someone@sender.example>")]
        self.assertTrue(any(400 <= r.code < 500 for r in replies), replies)


if __name__ == "__main__":
    unittest.main()
