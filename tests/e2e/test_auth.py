"""DKIM, DMARC and the Authentication-Results header through a real
Postfix, with a private unbound serving the zones as local data.

The keys are made by opendkim-genkey (RSA 2048) and messages are signed by
dkimpy (python3-dkim, run by Debian's /usr/bin/python3 through
dkim_sign.py).  signed.example publishes its key, an SPF record listing
the test client and p=reject; reject.example and quarantine.example
publish only their DMARC policies; bounce.example lists the client in SPF
but is never a From domain, so mail with it as envelope sender passes SPF
unaligned.  The policy refuses DMARC failures under p=reject with 550
5.7.1 and quarantines those under p=quarantine (Postfix's hold queue);
auth.authserv_id is mx.test, so every message that is not refused gets
our Authentication-Results header, and fields a message brings with
mx.test are removed.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import BASE_POLICY, EXTERNAL_IP, RELAY_RULES, UnboundTestCase, policy

SIGNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dkim_sign.py")
DEBIAN_PYTHON = "/usr/bin/python3"   # has python3-dkim
AUTHSERV_ID = "mx.test"

POLICY = policy(BASE_POLICY, RELAY_RULES, """\
on eom {
    reject 550 5.7.1 "Rejected: DMARC policy of ${dmarc.domain} is reject"
        if dmarc == fail and dmarc.policy == reject
    quarantine "DMARC quarantine policy of ${dmarc.domain}"
        if dmarc == fail and dmarc.policy == quarantine
}
""")


def make_key(directory, selector, domain):
    """An RSA-2048 key by opendkim-genkey: (private key file, TXT record text)."""
    subprocess.run(["opendkim-genkey", "-b", "2048", "-s", selector, "-d", domain, "-D", directory],
                   check=True)
    with open(os.path.join(directory, selector + ".txt")) as f:
        record = "".join(re.findall(r'"([^"]*)"', f.read()))
    return os.path.join(directory, selector + ".private"), record


def txt(record):
    """An unbound local-data TXT value: the record in strings of at most 255."""
    return "TXT " + " ".join('"%s"' % record[i:i + 255] for i in range(0, len(record), 255))


def message(from_address, subject="Quarterly report", body="Figures attached.\r\n", extra_headers=()):
    lines = ["From: %s" % from_address, "To: user@example.com", "Subject: %s" % subject,
             "Date: Mon, 23 Nov 2026 10:00:00 +0000", "Message-ID: <%s@test>" % subject.replace(" ", ".")]
    lines += list(extra_headers)
    return "\r\n".join(lines) + "\r\n\r\n" + body


def sign(text, key_file, selector="sel", domain="signed.example"):
    signed = subprocess.run([DEBIAN_PYTHON, SIGNER, key_file, selector, domain], input=text.encode(),
                            stdout=subprocess.PIPE, check=True)
    return signed.stdout.decode()


class AuthenticationTest(UnboundTestCase):
    POLICY = POLICY

    @classmethod
    def setUpClass(cls):
        cls.keys = tempfile.mkdtemp(prefix="portcullis-dkim-")
        cls.key_file, record = make_key(cls.keys, "sel", "signed.example")
        cls.RECORDS = {
            "signed.example": ['TXT "v=spf1 ip4:%s -all"' % EXTERNAL_IP],
            "sel._domainkey.signed.example": [txt(record)],
            "_dmarc.signed.example": ['TXT "v=DMARC1; p=reject"'],
            "_dmarc.reject.example": ['TXT "v=DMARC1; p=reject"'],
            "_dmarc.quarantine.example": ['TXT "v=DMARC1; p=quarantine"'],
            "bounce.example": ['TXT "v=spf1 ip4:%s -all"' % EXTERNAL_IP],
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.keys, ignore_errors=True)

    def start(self, resolver, timeout="2s", add_header=True, rules=None):
        return self.start_filter(rules or self.POLICY,
                                 settings={"dns": {"resolver": resolver, "timeout": timeout},
                                           "auth": {"authserv_id": AUTHSERV_ID, "add_header": add_header}})

    def deliver(self, data, sender):
        sent = self.send_external("user@example.com", sender=sender, data=data)
        messages = self.deliveries(sent)
        self.assertEqual(len(messages), 1, sent)
        return messages[0]

    def results(self, delivered):
        return [" ".join(value.split()) for value in delivered.header_all("Authentication-Results")]

    def test_signed_message_passes_with_our_header_on_top(self):
        # header.b is quoted when its 8 characters hold a "/" (not a token).
        self.start(self.unbound.forwarder)
        data = sign(message("Alice <alice@signed.example>"), self.key_file)
        delivered = self.deliver(data, "alice@signed.example")
        self.assertRegex(self.results(delivered)[0],
                         r"^mx\.test; spf=pass smtp\.mailfrom=signed\.example; "
                         r"dkim=pass \(2048-bit key\) header\.d=signed\.example header\.i=@signed\.example header\.s=sel "
                         r"header\.a=rsa-sha256 header\.b=(?:[^\s;\"]{8}|\"[^\s\"]{8}\"); "
                         r"dmarc=pass \(p=reject dis=none\) header\.from=signed\.example$")
        # Ours is on top (above even Postfix's Received), folded with tabs,
        # with one space after the colon.
        self.assertRegex(delivered.raw, r"(?m)^Authentication-Results: mx\.test;\r?\n\tspf=pass .*\r?\n"
                                        r"(?:\t.*\r?\n)*Received: from client\.test\.invalid ")

    def test_dkim_alone_makes_dmarc_pass(self):
        self.start(self.unbound.forwarder)
        data = sign(message("alice@signed.example"), self.key_file)
        delivered = self.deliver(data, "bounces@bounce.example")
        self.assertRegex(self.results(delivered)[0],
                         r"spf=pass smtp\.mailfrom=bounce\.example; dkim=pass .* dmarc=pass ")

    def test_tampered_body_fails_and_p_reject_refuses(self):
        flt = self.start(self.unbound.forwarder)
        data = sign(message("alice@signed.example"), self.key_file).replace("Figures", "Invoices")
        sent = self.send_external("user@example.com", sender="bounces@bounce.example", data=data)
        self.assertReply(sent.reply_to("."), 550, "5.7.1 Rejected: DMARC policy of signed.example is reject", sent)
        flt.wait_for_log(r"dkim: d=signed\.example s=sel a=rsa-sha256 result=fail \(body hash")
        flt.wait_for_log(r"dmarc: from=signed\.example result=fail published=reject policy=reject")

    def test_tampered_header_fails(self):
        self.start(self.unbound.forwarder)
        data = sign(message("alice@signed.example"), self.key_file).replace("Quarterly", "Annual")
        delivered = self.deliver(data, "alice@signed.example")
        # SPF still passes aligned: DMARC passes, DKIM does not.
        self.assertRegex(self.results(delivered)[0], r"dkim=fail .* dmarc=pass ")

    def test_unsigned_mail_from_a_reject_domain_is_refused(self):
        sent_before = self.postfix.log_size()
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="bounces@bounce.example",
                                  data=message("bob@reject.example"))
        self.assertReply(sent.reply_to("."), 550, "5.7.1 Rejected: DMARC policy of reject.example is reject", sent)
        self.assertFalse(sent.delivered, sent)
        self.postfix.wait_for_log(r"milter-reject: END-OF-MESSAGE", since=sent_before)

    def test_p_quarantine_failure_goes_to_the_hold_queue(self):
        offset = self.postfix.log_size()
        self.start(self.unbound.forwarder)
        sent = self.send_external("user@example.com", sender="bounces@bounce.example",
                                  data=message("carol@quarantine.example"))
        self.assertReply(sent.reply_to("."), 250, None, sent)
        self.postfix.wait_for_log(r"%s: milter-hold: END-OF-MESSAGE .*milter triggers HOLD action"
                                  % re.escape(sent.queue_id), since=offset)

    def test_forged_results_are_removed_and_others_kept(self):
        self.start(self.unbound.forwarder)
        forged = ["Authentication-Results: mx.test; dkim=pass header.d=bank.example",
                  "Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=x.example",
                  "Authentication-Results: (comment) MX.TEST; dmarc=pass header.from=bank.example"]
        data = message("alice@signed.example", extra_headers=forged)
        delivered = self.deliver(data, "alice@signed.example")
        results = self.results(delivered)
        self.assertEqual(len(results), 2, results)
        self.assertTrue(results[0].startswith("mx.test; spf=pass"), results)
        self.assertEqual(results[1], "elsewhere.example; spf=pass smtp.mailfrom=x.example")

    def test_without_our_header_forged_ones_still_go(self):
        # No rule reads a result and no header is added: the filter asks
        # Postfix for the header only to find the forged fields.
        self.start(self.unbound.forwarder, add_header=False, rules=policy(BASE_POLICY, RELAY_RULES))
        data = message("alice@signed.example", extra_headers=[
            "Authentication-Results: mx.test; dkim=pass header.d=bank.example",
            "Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=x.example"])
        delivered = self.deliver(data, "alice@signed.example")
        self.assertEqual(self.results(delivered), ["elsewhere.example; spf=pass smtp.mailfrom=x.example"])

    def test_dead_resolver_gives_temperror_and_delivers(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            flt = self.start("127.0.0.1@%d" % silent.getsockname()[1], timeout="500ms")
            data = sign(message("alice@signed.example"), self.key_file)
            delivered = self.deliver(data, "alice@signed.example")
            self.assertRegex(self.results(delivered)[0],
                             r"spf=temperror .* dkim=temperror .* dmarc=temperror header\.from=signed\.example$")
            self.assertFilterAlive(flt)


if __name__ == "__main__":
    unittest.main()
