"""The RFC 7208 test suite (python3-spf's rfc7208-tests.yml.gz) against
spf::check(), through rfc7208_driver.

Each scenario's zonedata becomes the driver's fake DNS: SPF (type 99)
records are served as TXT where a name has no TXT records of its own (the
suite's convention: RFC 7208 dropped type 99), "TXT: NONE" means none,
TIMEOUT makes the name's other lookups time out.  A test passes when the
result is one the suite accepts; explanations are not compared (the
policy does not read them).  The driver checks each test twice, the DNS
answering at once and one answer per round, and reports "replay-differs"
(a deviation) when the two verdicts differ.  Prints the pass rate and every deviation, and
fails on a deviation not in KNOWN below (each with its reason) or on a
pass rate under 98 %.

Usage: rfc7208_suite.py DRIVER [SUITE.yml.gz]
"""

import gzip
import subprocess
import sys

import yaml

SUITE = "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz"
MINIMUM_RATE = 0.98

# Deviations we accept, with why (none today: a deviation fails the test
# until it is fixed or listed here with its reason).
KNOWN = {
}


def hexed(text):
    if text is None or text == "":
        return "-"
    if isinstance(text, bytes):
        return text.hex()
    return str(text).encode("utf-8").hex()


def record_lines(zonedata):
    """The driver's rr lines for one scenario's zonedata."""
    lines = []
    for name, records in (zonedata or {}).items():
        txt = [r["TXT"] for r in records if isinstance(r, dict) and "TXT" in r]
        for record in records:
            if record == "TIMEOUT":
                lines.append("rr %s TIMEOUT -" % hexed(name))
                continue
            (kind, value), = record.items()
            if kind == "SPF":
                if txt or value == "NONE":
                    continue
                kind = "TXT"
            if value == "NONE":
                continue
            if kind == "TXT" and isinstance(value, list):
                value = "".join(value)
            if kind == "MX":
                value = value[1]
            lines.append("rr %s %s %s" % (hexed(name), kind, hexed(value)))
    return lines


def main():
    driver = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else SUITE
    with gzip.open(path, "rt", encoding="utf-8") as f:
        scenarios = list(yaml.safe_load_all(f))

    lines, expected = [], {}
    for scenario in scenarios:
        lines.append("scenario")
        lines += record_lines(scenario.get("zonedata"))
        for name, test in scenario["tests"].items():
            results = test["result"] if isinstance(test["result"], list) else [test["result"]]
            expected[name] = results
            lines.append("test %s %s %s %s" % (hexed(name), test["host"], hexed(test.get("helo")),
                                              hexed(test.get("mailfrom"))))

    out = subprocess.run([driver], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    got, why = {}, {}
    for line in out.stdout.splitlines():
        name, result, reason = line.split()
        name = bytes.fromhex(name).decode("utf-8")
        got[name] = result
        why[name] = "" if reason == "-" else bytes.fromhex(reason).decode("utf-8", "replace")

    deviations = {name: got.get(name, "(no answer)") for name, results in expected.items()
                  if got.get(name) not in results}
    passed = len(expected) - len(deviations)
    rate = passed / len(expected)
    print("RFC 7208 suite: %d of %d tests pass (%.1f %%)" % (passed, len(expected), 100 * rate))
    unexpected = False
    for name, result in sorted(deviations.items()):
        reason = KNOWN.get(name)
        print("  %-28s got %-9s want %-20s %s" % (name, result, "/".join(expected[name]),
                                                  reason or "UNEXPECTED (%s)" % why.get(name, "")))
        unexpected = unexpected or reason is None
    for name in sorted(set(KNOWN) - set(deviations)):
        print("  %-28s now passes: remove it from KNOWN" % name)
        unexpected = True
    return 1 if unexpected or rate < MINIMUM_RATE else 0


if __name__ == "__main__":
    sys.exit(main())
