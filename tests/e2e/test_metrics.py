"""Prometheus metrics (daemon.md, "Metrics") of a filter behind Postfix.

With metrics.listen set, /metrics counts sessions, messages, decisions by
stage and action, hits by rule (file:line), and reloads by result.
"""

import re
import unittest
import urllib.request

from harness import (BASE_POLICY, RELAY_RULES, PostfixTestCase, free_port,
                     policy, rule_line)

POLICY = policy(BASE_POLICY, RELAY_RULES)
RELAY_LINE = rule_line(POLICY, "Relay access denied")


class MetricsTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.metrics_port = free_port()
        self.filter = self.start_filter(
            POLICY, settings={"metrics": {"listen": "127.0.0.1:%d" % self.metrics_port}})

    def scrape(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    def value(self, text, name, **labels):
        """The value of the sample NAME{labels...}, or 0 when absent."""
        for line in text.splitlines():
            if not line.startswith(name + "{") and line.split(" ")[0] != name:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def test_counts_sessions_decisions_and_rule_hits(self):
        before = self.scrape()
        refused = self.send_external("user@foreign.example")
        self.assertEqual(refused.reply_to("RCPT").code, 554, refused)
        delivered = self.send_external("user@example.com")
        self.assertEqual(delivered.reply_to("RCPT").code, 250, delivered)
        after = self.scrape()

        self.assertGreaterEqual(self.value(after, "portcullis_connections_total")
                                - self.value(before, "portcullis_connections_total"), 2)
        self.assertEqual(self.value(after, "portcullis_messages_total")
                         - self.value(before, "portcullis_messages_total"), 1)
        self.assertEqual(self.value(after, "portcullis_verdicts_total",
                                    stage="rcpt", action="reject", monitor="false"), 1)
        self.assertEqual(self.value(after, "portcullis_rule_hits_total",
                                    rule="test.rules:%d" % RELAY_LINE), 1)

    def test_counts_reloads_by_result(self):
        self.filter.reload()
        self.filter.wait_for_log(r"reloaded policy")
        self.filter.write_policy("on rcpt { rejcet }\n")
        self.filter.reload()
        self.filter.wait_for_log(r"reload refused: keeping")
        text = self.scrape()
        self.assertEqual(self.value(text, "portcullis_policy_reloads_total", result="ok"), 1)
        self.assertEqual(self.value(text, "portcullis_policy_reloads_total", result="failed"), 1)


if __name__ == "__main__":
    unittest.main()
