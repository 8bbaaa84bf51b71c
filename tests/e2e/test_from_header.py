"""The From header through a real Postfix: the policy's `from` and
`from.domain` come from the one RFC 5322 parser that DMARC uses, so a
display name or a comment holding an address is never the author, and a
From with several authors gives no single `from.domain` that a rule could
trust.

The policy refuses mail whose from.domain is evil.example and stamps what
`from` and `from.domain` were on everything else (in brackets: a field
without a value expands to nothing).  The DMARC side of several authors is
in test_default_policy.py, under the shipped policy.
"""

import unittest

from harness import BASE_POLICY, RELAY_RULES, PostfixTestCase, policy

POLICY = policy(BASE_POLICY, RELAY_RULES, """\
on eom {
    reject 550 5.7.1 "No mail from ${from.domain}" if from.domain == "evil.example"
    add-header X-From "[${from}] [${from.domain}]"
}
""")


def message(*from_fields):
    lines = ["From: %s" % value for value in from_fields]
    lines += ["To: user@example.com", "Subject: hello", "Date: Mon, 23 Nov 2026 10:00:00 +0000"]
    return "\r\n".join(lines) + "\r\n\r\nHello.\r\n"


class FromHeaderTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.start_filter(POLICY)

    def stamp(self, *from_fields):
        """The X-From stamp of the message with these From fields, which
        must be delivered."""
        sent = self.send_external("user@example.com", data=message(*from_fields))
        self.assertReply(sent.reply_to("."), 250, None, sent)
        messages = self.deliveries(sent)
        self.assertEqual(len(messages), 1, sent)
        return messages[0].header_all("X-From")

    def test_an_address_in_a_display_name_is_not_the_author(self):
        # The naive parser took the first "<" (evil.example), and refused these.
        self.assertEqual(self.stamp('"x <a@evil.example>" <b@good.example>'),
                         ["[b@good.example] [good.example]"])
        self.assertEqual(self.stamp('"Evil, <a@evil.example>" <b@good.example>'),
                         ["[b@good.example] [good.example]"])

    def test_an_address_in_a_comment_is_not_the_author(self):
        # The naive parser gave "evil.example)".
        self.assertEqual(self.stamp("(a@evil.example) b@good.example"), ["[b@good.example] [good.example]"])

    def test_an_encoded_word_is_not_an_address(self):
        self.assertEqual(self.stamp("=?utf-8?q?a=40evil.example?= <b@good.example>"),
                         ["[b@good.example] [good.example]"])

    def test_folded_group_with_comments(self):
        # Postfix hands the fold on as it came; the parser unfolds it.
        self.assertEqual(self.stamp("Friends (a@evil.example):\r\n\tAnn <ann@good.example>\r\n (a@evil.example);"),
                         ["[ann@good.example] [good.example]"])

    def test_the_real_author_is_still_refused(self):
        sent = self.send_external("user@example.com", data=message('"b@good.example" <a@evil.example>'))
        self.assertReply(sent.reply_to("."), 550, "5.7.1 No mail from evil.example", sent)

    def test_several_authors_give_no_from(self):
        # Neither address is the author: a rule on from.domain cannot be
        # met by adding one.
        self.assertEqual(self.stamp("b@good.example, a@evil.example"), ["[] []"])
        self.assertEqual(self.stamp("b@good.example", "a@evil.example"), ["[] []"])

    def test_one_domain_several_addresses_give_the_domain(self):
        self.assertEqual(self.stamp("alice@good.example, Bob <bob@good.example>"), ["[] [good.example]"])
        self.assertEqual(self.stamp("Friends: alice@good.example;"), ["[alice@good.example] [good.example]"])


if __name__ == "__main__":
    unittest.main()
