"""contrib/monitoring against the metrics the daemon exports.

The names and label names exported are read from filter/metrics/metrics.cc
(the only code that registers metrics).  The Grafana dashboard must parse,
be well formed (unique panel ids and query refIds, a data source and an
expression on every query, panels inside the 24-column grid), query only
exported metrics and labels, and show every exported metric; the alert
rules must query only exported metrics and labels.  `promtool check
rules` and `promtool test rules` run as tests of their own
(tests/CMakeLists.txt).
"""

import json
import os
import re
import unittest

import yaml

SOURCE_DIR = os.environ.get("PORTCULLIS_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRICS_CC = os.path.join(SOURCE_DIR, "filter", "metrics", "metrics.cc")
MONITORING = os.path.join(SOURCE_DIR, "contrib", "monitoring")
DASHBOARD = os.path.join(MONITORING, "grafana-dashboard.json")
RULES = os.path.join(MONITORING, "portcullis.rules.yml")

# What Prometheus adds to every series, and a histogram bucket's bound.
PROMETHEUS_LABELS = {"job", "instance", "le"}
PROMETHEUS_METRICS = {"up"}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "rate", "irate", "increase", "delta",
    "histogram_quantile", "vector", "scalar", "label_values", "offset", "bool",
}


def exported_metrics(source):
    """Every series name metrics.cc registers: counters and gauges as
    named, histograms as NAME_bucket, NAME_sum and NAME_count."""
    names = set(re.findall(r'"(portcullis_[a-z_]+)"', source))
    histograms = set(re.findall(r'BuildHistogram\(\)\s*\.Name\("(portcullis_[a-z_]+)"\)', source))
    if not names or not histograms:
        raise AssertionError("found no metric names in %s: has the registration changed?" % METRICS_CC)
    for name in histograms:
        names.discard(name)
        names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def exported_labels(source):
    """Every label name metrics.cc gives a series: {"NAME", value} pairs,
    and the names labelled() takes, a list {"NAME", ...} or one "NAME"."""
    names = set(re.findall(r'\{"([a-z_]+)",', source))
    for listed in re.findall(r'labelled<\d+>\([^,]+,\s*\{([^}]*)\}', source):
        names.update(re.findall(r'"([a-z_]+)"', listed))
    names.update(re.findall(r'labelled\([^,]+,\s*"([a-z_]+)",', source))
    return names


def metric_names(expr):
    """The series names an expression selects: identifiers that are not
    PromQL words, label names (before a matcher) or grouping labels."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_groupings = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', " ",
                               without_strings)
    without_matchers = re.sub(r"\{[^}]*\}", " ", without_groupings)
    without_ranges = re.sub(r"\[[^\]]*\]", " ", without_matchers)
    without_ranges = re.sub(r"(label_values\([^,()]+),[^)]*\)", r"\1)", without_ranges)
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_ranges)
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def label_names(expr):
    """Label names in matchers ({name="..."}), in groupings (by (a, b)) and in label_values(m, name)."""
    names = set()
    for matchers in re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in grouping.split(",") if n.strip())
    names.update(re.findall(r"label_values\([^,()]+,\s*([A-Za-z_][A-Za-z0-9_]*)\)", expr))
    return names


def dashboard_queries(node, found=None):
    """Every PromQL expression in the dashboard: panel targets' expr and
    the query variables' queries."""
    found = [] if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                found.append(value["query"])
            else:
                dashboard_queries(value, found)
    elif isinstance(node, list):
        for item in node:
            dashboard_queries(item, found)
    return found


class ExpressionReaderTest(unittest.TestCase):
    """The readers above on expressions whose answer is known, so a
    reader that finds nothing cannot pass the checks below by accident."""

    EXPR = ('sum by (job, instance) (rate(portcullis_verdicts_total{monitor="false", '
            'action=~"tempfail|greylist defer"}[10m])) / on (instance) portcullis_x_count > 0.2')

    def test_metric_names(self):
        self.assertEqual(metric_names(self.EXPR), {"portcullis_verdicts_total", "portcullis_x_count"})
        self.assertEqual(metric_names('histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance"}[$__rate_interval])))'),
                         {"a_bucket"})

    def test_label_names(self):
        self.assertEqual(label_names(self.EXPR), {"job", "instance", "monitor", "action"})
        self.assertEqual(label_names("label_values(portcullis_connections_total, instance)"), {"instance"})
        self.assertEqual(metric_names("label_values(portcullis_connections_total, instance)"),
                         {"portcullis_connections_total"})

    def test_exported_metrics(self):
        source = ('BuildCounter().Name("portcullis_a_total"); gauge("portcullis_b", "help"); '
                  'BuildHistogram()\n  .Name("portcullis_c_seconds")')
        self.assertEqual(exported_metrics(source), {"portcullis_a_total", "portcullis_b", "portcullis_c_seconds_bucket",
                                                    "portcullis_c_seconds_sum", "portcullis_c_seconds_count"})


class MonitoringTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(METRICS_CC, encoding="utf-8") as f:
            source = f.read()
        cls.metrics = exported_metrics(source)
        cls.labels = exported_labels(source) | PROMETHEUS_LABELS
        with open(DASHBOARD, encoding="utf-8") as f:
            cls.dashboard = json.load(f)
        with open(RULES, encoding="utf-8") as f:
            cls.rules = [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]

    def assertQueriesExported(self, where, expr):
        names = metric_names(expr)
        self.assertTrue(names, "%s: %r selects no metric" % (where, expr))
        unknown = names - self.metrics - PROMETHEUS_METRICS
        self.assertFalse(unknown, "%s: %r queries metrics metrics.cc does not export: %s"
                         % (where, expr, sorted(unknown)))
        unknown = label_names(expr) - self.labels
        self.assertFalse(unknown, "%s: %r uses labels no exported metric has: %s" % (where, expr, sorted(unknown)))

    def panels(self):
        for panel in self.dashboard["panels"]:
            yield panel
            yield from panel.get("panels", [])

    def test_dashboard_is_well_formed(self):
        for key in ("title", "uid", "panels", "templating", "schemaVersion"):
            self.assertIn(key, self.dashboard)
        ids = [panel["id"] for panel in self.panels()]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat: %s" % ids)
        for panel in self.panels():
            where = "panel %r" % panel.get("title")
            grid = panel["gridPos"]
            self.assertLessEqual(grid["x"] + grid["w"], 24, where)
            if panel["type"] == "row":
                continue
            self.assertTrue(panel.get("datasource"), where)
            targets = panel.get("targets", [])
            self.assertTrue(targets, "%s has no query" % where)
            ref_ids = [target["refId"] for target in targets]
            self.assertEqual(len(ref_ids), len(set(ref_ids)), "%s: refIds repeat" % where)
            for target in targets:
                self.assertTrue(target.get("expr", "").strip(), "%s: empty query" % where)
                self.assertTrue(target.get("datasource"), where)

    def test_dashboard_queries_only_exported_metrics(self):
        queries = dashboard_queries(self.dashboard)
        self.assertGreater(len(queries), 10)
        for expr in queries:
            self.assertQueriesExported("dashboard", expr)

    def test_dashboard_shows_every_exported_metric(self):
        shown = set().union(*(metric_names(e) for e in dashboard_queries(self.dashboard)))
        for name in sorted(self.metrics):
            if name.endswith("_sum"):
                continue   # a histogram is shown by its buckets and count
            self.assertIn(name, shown, "the dashboard shows nothing of %s" % name)

    def test_alert_rules_query_only_exported_metrics(self):
        self.assertTrue(self.rules)
        for rule in self.rules:
            self.assertQueriesExported("alert %s" % (rule.get("alert") or rule.get("record")), rule["expr"])

    def test_alerts_the_issue_asks_for_exist(self):
        alerts = {rule.get("alert") for rule in self.rules}
        for name in ("PortcullisStoreUnreachable", "PortcullisReloadFailed", "PortcullisDnsFailing",
                     "PortcullisTempfailRateHigh"):
            self.assertIn(name, alerts)


if __name__ == "__main__":
    unittest.main()
