"""Prometheus metrics (daemon.md, "Metrics") of a filter behind Postfix.

With metrics.listen set, /metrics counts sessions, messages, decisions by
stage and action, hits by rule (file:line), and reloads by result; it
shows the sessions in flight and whether the last reload succeeded.
"""

import re
import unittest
import urllib.request

from harness import (BASE_POLICY, EXTERNAL_IP, RELAY_RULES, PostfixTestCase, SMTPClient,
                     can_connect, free_port, policy, rule_line, wait_until)

POLICY = policy(BASE_POLICY, RELAY_RULES)
RELAY_LINE = rule_line(POLICY, "Relay access denied")


class MetricsTest(PostfixTestCase):

    def setUp(self):
        super().setUp()
        self.metrics_port = free_port()
        self.filter = self.start_filter(
            POLICY, settings={"metrics": {"listen": "127.0.0.1:%d" % self.metrics_port}})
        # The milter socket is bound first; /metrics a moment later.
        wait_until(lambda: can_connect(("inet", self.metrics_port)), 20, "/metrics to listen")

    def scrape(self):
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=30) as response:
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
        last_ok = "portcullis_policy_last_reload_successful"
        self.assertEqual(self.value(self.scrape(), last_ok), 1)
        self.filter.reload()
        self.filter.wait_for_log(r"reloaded policy")
        self.filter.write_policy("on rcpt { rejcet }\n")
        mark = self.filter.mark()
        self.filter.reload()
        self.filter.wait_for_log(r"reload refused: keeping", since=mark)
        text = self.scrape()
        self.assertEqual(self.value(text, "portcullis_policy_reloads_total", result="ok"), 1)
        self.assertEqual(self.value(text, "portcullis_policy_reloads_total", result="failed"), 1)
        self.assertEqual(self.value(text, last_ok), 0)

        self.filter.write_policy(POLICY)
        mark = self.filter.mark()
        self.filter.reload()
        self.filter.wait_for_log(r"reloaded policy", since=mark)
        self.assertEqual(self.value(self.scrape(), last_ok), 1)

    def test_shows_sessions_in_flight(self):
        in_flight = "portcullis_sessions_in_flight"
        self.assertEqual(self.value(self.scrape(), in_flight), 0)
        # Postfix opens the milter session as the client connects.
        clients = [SMTPClient(self.postfix.port) for _ in range(2)]
        try:
            for client in clients:
                client.hello(xclient={"addr": EXTERNAL_IP})
            wait_until(lambda: self.value(self.scrape(), in_flight) == 2, 30, "2 sessions in flight")
        finally:
            for client in clients:
                client.close()
        wait_until(lambda: self.value(self.scrape(), in_flight) == 0, 30, "no session in flight")


if __name__ == "__main__":
    unittest.main()
