"""The shipped policy (policies/default.rules and its lists) behind Postfix.

The files are used as shipped, except that lists/local-domains.txt names
example.com and lists/sender-logins.txt gives alice the senders of
sender.example, as an administrator's would.  Trusted networks are
accepted, the open-relay guard refuses foreign recipients from untrusted,
unauthenticated clients, other mail from them is greylisted unless the
client is a large sender in the skip lists, authenticated clients may send
only as senders they own and within their rate limits, unauthenticated
ones at most 100 recipients a message, a declared size over 50 MB is
refused at MAIL, and DMARC failures are refused under p=reject and
quarantined under p=quarantine, also when the From header names several
authors.  The store is the memory backend, as shipped; DNS goes to a
private unbound (never the system resolver) that publishes the DMARC
policies of reject.example and quarantine.example, and drej.example's
p=reject with an SPF record that lists the Google client.  auth.authserv_id
is set, as an administrator's would be, so that delivered mail shows the
DMARC result in our Authentication-Results header.
"""

import os
import unittest

from harness import EXTERNAL_IP, SOURCE_DIR, SMTPClient, UnboundTestCase, rule_line


def shipped(relative):
    with open(os.path.join(SOURCE_DIR, "policies", relative)) as f:
        return f.read()


DEFAULT_POLICY = shipped("default.rules")
RELAY_LINE = rule_line(DEFAULT_POLICY, '"Relay access denied"')
SIZE_LINE = rule_line(DEFAULT_POLICY, '"Message size exceeds fixed limit"')
GREYLIST_LINE = rule_line(DEFAULT_POLICY, "greylist delay 5m")
LOGIN_LINE = rule_line(DEFAULT_POLICY, "is not owned by")
USER_LIMIT_LINE = rule_line(DEFAULT_POLICY, "ratelimit auth.user")
CAP_LINE = rule_line(DEFAULT_POLICY, '"Too many recipients"')
DMARC_REJECT_LINE = rule_line(DEFAULT_POLICY, '"Rejected: DMARC policy of')
GOOGLE_IP = "209.85.128.41"   # in lists/greylist-skip-networks.txt


def message(*from_fields):
    return ("".join("From: %s\r\n" % value for value in from_fields) + "To: user@example.com\r\nSubject: hello\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n")


class DefaultPolicyTest(UnboundTestCase):
    # Postfix's own size limit off, so that the policy's limit is what refuses.
    postfix_params = {"message_size_limit": "0"}
    RECORDS = {
        "_dmarc.reject.example": ['TXT "v=DMARC1; p=reject"'],
        "_dmarc.quarantine.example": ['TXT "v=DMARC1; p=quarantine"'],
        "_dmarc.drej.example": ['TXT "v=DMARC1; p=reject"'],
        "drej.example": ['TXT "v=spf1 ip4:%s -all"' % GOOGLE_IP],
    }

    def setUp(self):
        super().setUp()
        self.filter = self.start_filter(DEFAULT_POLICY, settings={
            "dns": {"resolver": self.unbound.forwarder}, "auth": {"authserv_id": "mx.test"}}, files={
            "lists/trusted-networks.txt": shipped("lists/trusted-networks.txt"),
            "lists/local-domains.txt": shipped("lists/local-domains.txt") + "example.com\n",
            "lists/greylist-skip-clients.txt": shipped("lists/greylist-skip-clients.txt"),
            "lists/greylist-skip-networks.txt": shipped("lists/greylist-skip-networks.txt"),
            "lists/sender-logins.txt": shipped("lists/sender-logins.txt") + "@sender.example alice\n",
        })

    def test_open_relay_guard(self):
        refused = self.send_external("user@foreign.example")
        reply = refused.reply_to("RCPT")
        self.assertEqual((reply.code, reply.text), (554, "5.7.1 Relay access denied"), refused)
        self.filter.wait_for_log(r"rcpt: reject .*rule=test\.rules:%d\b" % RELAY_LINE)

    def test_unknown_clients_are_greylisted(self):
        greylisted = self.send_external("user@example.com")
        reply = greylisted.reply_to("RCPT")
        self.assertEqual((reply.code, reply.text),
                         (451, "4.7.1 Greylisted, please try again in 300 seconds"), greylisted)
        self.filter.wait_for_log(r"rcpt: greylist defer .*rule=test\.rules:%d\b.*reason=new wait=300s"
                                 % GREYLIST_LINE)

    def test_large_senders_skip_greylisting(self):
        # Known by the host name the MTA verified...
        by_name = self.send_external("user@example.com", addr="198.18.20.1",
                                     xclient={"name": "mail-ej1-f41.google.com"})
        self.assertEqual(self.delivered_recipients(by_name), ["user@example.com"])
        # ... or by address, when reverse DNS fails.
        by_address = self.send_external("user@example.com", addr=GOOGLE_IP)
        self.assertEqual(self.delivered_recipients(by_address), ["user@example.com"])
        # A HELO claiming to be Google is not enough.
        helo_only = self.send_external("user@example.com", addr="198.18.20.2",
                                       helo="mail-ej1-f41.google.com")
        self.assertEqual(helo_only.reply_to("RCPT").code, 451, helo_only)

    def test_dmarc_reject_is_refused_and_quarantine_held(self):
        # A client that skips greylisting, so the message reaches eom.
        refused = self.send_external("user@example.com", addr=GOOGLE_IP, sender="x@bounce.example",
                                     data=message("boss@reject.example"))
        self.assertEqual((refused.reply_to(".").code, refused.reply_to(".").text),
                         (550, "5.7.1 Rejected: DMARC policy of reject.example is reject"), refused)
        self.filter.wait_for_log(r"eom: reject .*rule=test\.rules:%d\b" % DMARC_REJECT_LINE)
        offset = self.postfix.log_size()
        held = self.send_external("user@example.com", addr=GOOGLE_IP, sender="x@bounce.example",
                                  data=message("boss@quarantine.example"))
        self.assertEqual(held.reply_to(".").code, 250, held)
        self.postfix.wait_for_log(r"%s: milter-hold: END-OF-MESSAGE .*milter triggers HOLD action"
                                  % held.queue_id, since=offset)
        self.filter.wait_for_log(r"eom: quarantine .*reason=\"DMARC quarantine policy of quarantine\.example\"")
        # Without a DMARC record the message is delivered.
        plain = self.send_external("user@example.com", addr=GOOGLE_IP, sender="x@bounce.example",
                                   data=message("someone@nodmarc.example"))
        self.assertEqual(self.delivered_recipients(plain), ["user@example.com"])

    def test_a_second_author_is_no_way_around_p_reject(self):
        # RFC 7489 6.6.1: each author domain is evaluated and the strictest
        # policy among those that fail applies; relay.example publishes none.
        for from_fields in (["ceo@reject.example, me@relay.example"],
                            ["me@relay.example, Boss <ceo@reject.example>"],
                            ["me@relay.example", "ceo@reject.example"]):
            refused = self.send_external("user@example.com", addr=GOOGLE_IP, sender="x@bounce.example",
                                         data=message(*from_fields))
            self.assertReply(refused.reply_to("."), 550, "5.7.1 Rejected: DMARC policy of reject.example is reject",
                             refused)
        self.filter.wait_for_log(r"dmarc: from=reject\.example result=fail published=reject policy=reject "
                                 r".*authors=reject\.example,relay\.example")

    def test_several_authors_of_one_domain_are_one_evaluation(self):
        # SPF passes for drej.example, aligned with its one author domain.
        sent = self.send_external("user@example.com", addr=GOOGLE_IP, sender="x@drej.example",
                                  data=message("alice@drej.example, bob@drej.example"))
        messages = self.deliveries(sent)
        self.assertEqual(len(messages), 1, sent)
        results = " ".join(messages[0].header("Authentication-Results").split())
        self.assertRegex(results, r"^mx\.test; spf=pass smtp\.mailfrom=drej\.example; dkim=none; "
                                  r"dmarc=pass \(p=reject dis=none\) header\.from=drej\.example$")

    def test_authenticated_and_trusted_clients_may_relay(self):
        authenticated = self.send_external("user@foreign.example", xclient={"login": "alice"})
        self.assertEqual(self.delivered_recipients(authenticated), ["user@foreign.example"])
        trusted = self.send("user@foreign.example")   # from 127.0.0.1, in trusted-networks.txt
        self.assertEqual(self.delivered_recipients(trusted), ["user@foreign.example"])

    def test_authenticated_senders_must_be_owned(self):
        not_owned = self.send_external("user@foreign.example", sender="boss@elsewhere.example",
                                       xclient={"login": "alice"})
        reply = not_owned.reply_to("MAIL")
        self.assertEqual((reply.code, reply.text),
                         (553, "5.7.1 Sender boss@elsewhere.example is not owned by alice"), not_owned)
        self.filter.wait_for_log(r"mail: reject .*rule=test\.rules:%d\b" % LOGIN_LINE)
        # A login that is the sender address owns it, with no map entry.
        own = self.send_external("user@foreign.example", sender="bob@elsewhere.example",
                                 xclient={"login": "bob@elsewhere.example"})
        self.assertEqual(self.delivered_recipients(own), ["user@foreign.example"])

    def test_relay_guard_and_rate_limits_together(self):
        """An authenticated user may relay 100 recipients a minute; the 101st
        waits.  Unauthenticated relaying is still refused, and not counted."""
        client = SMTPClient(self.postfix.port)
        self.addCleanup(client.close)
        self.assertEqual(client.hello(xclient={"addr": "198.18.40.1", "login": "alice"}).code, 250)
        self.assertEqual(client.command("MAIL FROM:<alice@sender.example>").code, 250)
        replies = client.pipelined(["RCPT TO:<r%d@foreign.example>" % n for n in range(101)])
        self.assertEqual([r.code for r in replies], [250] * 100 + [450])
        self.assertEqual(replies[100].text, "4.7.1 Rate limit exceeded, try again later")
        self.filter.wait_for_log(r"rcpt: ratelimit defer .*rule=test\.rules:%d\b.*levels=100/100/1m"
                                 % USER_LIMIT_LINE)
        relay = self.send_external("user@foreign.example", addr="198.18.40.2")
        self.assertEqual(relay.reply_to("RCPT").code, 554, relay)

    def test_unauthenticated_clients_get_at_most_100_recipients(self):
        client = SMTPClient(self.postfix.port)
        self.addCleanup(client.close)
        self.assertEqual(client.hello(xclient={"addr": GOOGLE_IP}).code, 250)
        self.assertEqual(client.command("MAIL FROM:<list@sender.example>").code, 250)
        replies = client.pipelined(["RCPT TO:<m%d@example.com>" % n for n in range(102)])
        self.assertEqual([r.code for r in replies], [250] * 100 + [452, 452])
        self.assertEqual(replies[100].text, "4.5.3 Too many recipients")
        self.filter.wait_for_log(r"rcpt: tempfail .*rule=test\.rules:%d\b" % CAP_LINE)

    def test_declared_size_limit(self):
        client = SMTPClient(self.postfix.port)
        self.addCleanup(client.close)
        self.assertEqual(client.hello(xclient={"addr": EXTERNAL_IP}).code, 250)
        too_big = client.command("MAIL FROM:<a@sender.example> SIZE=%d" % (50 * 1024 * 1024 + 1))
        self.assertEqual((too_big.code, too_big.text), (552, "5.3.4 Message size exceeds fixed limit"))
        self.filter.wait_for_log(r"mail: reject .*rule=test\.rules:%d\b" % SIZE_LINE)
        fits = client.command("MAIL FROM:<a@sender.example> SIZE=%d" % (50 * 1024 * 1024))
        self.assertEqual(fits.code, 250)


if __name__ == "__main__":
    unittest.main()
