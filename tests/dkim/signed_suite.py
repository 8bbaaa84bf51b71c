"""DKIM verification of messages signed here, now, through verify_driver.

Keys are made with opendkim-genkey (RSA of 2048, 1024 and 512 bits) and
PyNaCl (Ed25519); messages are signed with dkimpy (python3-dkim), with
rsa-sha256, ed25519-sha256 and rsa-sha1, simple and relaxed
canonicalizations, one signature or two.  Each case's DNS (the key
records, or a timeout) goes to the driver with the message, which it
verifies four ways: with CRLF line ends and with bare LF ones (so every
folded header field is folded with a bare LF), the body whole, in pieces
of 1 byte and of 7 bytes.  Every way must give the case's results.

Needs Debian's python3 (/usr/bin/python3: python3-dkim, python3-nacl) and
opendkim-tools.  Prints one line per case and way, then the counts; exits
non-zero if any differs.

Usage: signed_suite.py DRIVER
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

import dkim
import nacl.signing

DOMAIN = b"example.com"
RSA_SHA1_REASON = "rsa-sha1 is not accepted (RFC 8301)"
MIN_BITS = 1024
# (line ends, size of the body's pieces): 0 is the whole body.
WAYS = [("crlf", 0), ("lf", 0), ("crlf", 1), ("lf", 7)]

MESSAGE = (
    b"Received: from client.example.org (client.example.org [192.0.2.1])\r\n"
    b"\tby mx.example.com with ESMTP id 4Xyz; Mon, 3 Mar 2025 10:00:00 +0000\r\n"
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: A subject long enough to be folded over\r\n"
    b"\t two lines,   with   runs of  white space \r\n"
    b"Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n"
    b"Message-ID: <signed-suite@example.com>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"\r\n"
    b"A line with trailing white space   \r\n"
    b"\tand one that starts with a tab.\r\n"
    b"A long line: " + b"0123456789" * 30 + b"\r\n"
    b"\r\n"
    b"\r\n"
)


# The verifier holds a body of up to 16 KiB until the end of the message,
# and hashes a longer one as it comes (dkim.cc's kMaxHeldBody): bodies at
# the bound, one byte over it, and well past it, whose last line differs.
HELD_BODY_BOUND = 16 * 1024


def with_body(message, body):
    """MESSAGE's header with BODY."""
    return message.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + body


def body_of(size, last=b"The end.\r\n"):
    """A body of exactly SIZE bytes (CRLF line ends) that ends with LAST."""
    line = b"A line of a body long enough to be hashed as it comes.\r\n"
    filler = (line * (size // len(line) + 1))[:size - len(last) - 2] + b"\r\n"
    body = filler + last
    assert len(body) == size
    return body


def genkey(directory, selector, bits):
    """An opendkim-genkey RSA key: (private key PEM, TXT record)."""
    tool = shutil.which("opendkim-genkey", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
    if tool is None:
        sys.exit("opendkim-genkey not found: install opendkim-tools")
    subprocess.run([tool, "-b", str(bits), "-d", DOMAIN.decode(), "-s", selector, "-D", directory],
                   check=True, capture_output=True)
    with open(os.path.join(directory, selector + ".private"), "rb") as f:
        private = f.read()
    with open(os.path.join(directory, selector + ".txt")) as f:
        record = "".join(re.findall(r'"([^"]*)"', f.read()))
    return private, record


def ed25519_key():
    """An Ed25519 key: (dkimpy's private key, TXT record)."""
    key = nacl.signing.SigningKey.generate()
    record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode()
    return base64.b64encode(bytes(key)), record


def key_name(selector):
    return selector + "._domainkey." + DOMAIN.decode()


def sign(message, selector, key, algorithm=b"rsa-sha256", canonicalize=(b"relaxed", b"relaxed")):
    return dkim.sign(message, selector.encode(), DOMAIN, key, canonicalize=canonicalize,
                     signature_algorithm=algorithm) + message


class Case:
    """A message, its DNS, and the results (in header order) and summary
    every way of feeding it must give; reasons, where given, too."""

    def __init__(self, name, message, records, results, summary, reasons=None, timeouts=(), min_bits=MIN_BITS):
        self.name = name
        self.message = message
        self.records = records
        self.results = results
        self.summary = summary
        self.reasons = reasons or {}
        self.timeouts = timeouts
        self.min_bits = min_bits


def cases(keys):
    """Every case, with KEYS: selector -> (private key, record)."""
    def records(*selectors):
        return {key_name(s): keys[s][1] for s in selectors}

    def signed(selector, **options):
        return sign(MESSAGE, selector, keys[selector][0], **options)

    def signed_body(size):
        return sign(with_body(MESSAGE, body_of(size)), "rsa2048", keys["rsa2048"][0])

    good_rsa = signed("rsa2048")
    # The key published at "other" is not the one that signed.
    other = {key_name("other"): keys["rsa1024"][1]}
    mismatched = sign(MESSAGE, "other", keys["rsa2048"][0])
    rsa_sha1 = signed("rsa2048", algorithm=b"rsa-sha1")
    # A key record that allows SHA-1 (opendkim-genkey's says h=sha256).
    sha1_record = keys["rsa2048"][1].replace("h=sha256; ", "")
    assert dkim.verify(rsa_sha1, dnsfunc=lambda name, timeout=5: sha1_record.encode()), \
        "dkimpy should find the rsa-sha1 signature valid"
    return [
        Case("pass_rsa2048_relaxed", good_rsa, records("rsa2048"), ["pass"], "pass"),
        Case("pass_rsa2048_simple", signed("rsa2048", canonicalize=(b"simple", b"simple")), records("rsa2048"),
             ["pass"], "pass"),
        Case("pass_rsa2048_relaxed_simple", signed("rsa2048", canonicalize=(b"relaxed", b"simple")),
             records("rsa2048"), ["pass"], "pass"),
        Case("pass_ed25519", signed("ed25519", algorithm=b"ed25519-sha256"), records("ed25519"), ["pass"], "pass"),
        Case("pass_ed25519_simple", signed("ed25519", algorithm=b"ed25519-sha256",
                                           canonicalize=(b"simple", b"simple")),
             records("ed25519"), ["pass"], "pass"),
        Case("tampered_body", good_rsa.replace(b"Hello Bob", b"Hello Eve"), records("rsa2048"), ["fail"], "fail",
             {0: "body hash does not match"}),
        Case("tampered_signed_header", good_rsa.replace(b"To: Bob", b"To: Eve"), records("rsa2048"), ["fail"],
             "fail", {0: "signature does not verify"}),
        Case("missing_key", good_rsa, {}, ["permerror"], "permerror", {0: "no key at " + key_name("rsa2048")}),
        Case("revoked_key", good_rsa, {key_name("rsa2048"): "v=DKIM1; k=rsa; p="}, ["permerror"], "permerror",
             {0: "key at %s is revoked (empty p=)" % key_name("rsa2048")}),
        Case("dns_timeout", good_rsa, {}, ["temperror"], "temperror",
             {0: "key lookup of %s: timeout" % key_name("rsa2048")}, timeouts=[key_name("rsa2048")]),
        Case("rsa_sha1", rsa_sha1, {key_name("rsa2048"): sha1_record}, ["permerror"], "permerror",
             {0: RSA_SHA1_REASON}),
        Case("rsa512", signed("rsa512"), records("rsa512"), ["permerror"], "permerror",
             {0: "RSA key of 512 bits, under the 1024 required (RFC 8301)"}),
        Case("rsa1024", signed("rsa1024"), records("rsa1024"), ["pass"], "pass"),
        Case("rsa1024_over_2048_minimum", signed("rsa1024"), records("rsa1024"), ["permerror"], "permerror",
             min_bits=2048),
        # dkimpy puts each new signature on top: the bad one is first.
        Case("two_signatures_one_bad", sign(good_rsa, "other", keys["rsa2048"][0], algorithm=b"rsa-sha256"),
             dict(records("rsa2048"), **other), ["fail", "pass"], "pass"),
        Case("ed25519_and_rsa", sign(good_rsa, "ed25519", keys["ed25519"][0], algorithm=b"ed25519-sha256"),
             records("rsa2048", "ed25519"), ["pass", "pass"], "pass"),
        Case("wrong_key", mismatched, other, ["fail"], "fail"),
        Case("unsigned", MESSAGE, records("rsa2048"), [], "none"),
        Case("pass_body_at_held_bound", signed_body(HELD_BODY_BOUND), records("rsa2048"), ["pass"], "pass"),
        Case("pass_body_over_held_bound", signed_body(HELD_BODY_BOUND + 1), records("rsa2048"), ["pass"], "pass"),
        Case("pass_long_body", signed_body(100 * 1024), records("rsa2048"), ["pass"], "pass"),
        Case("tampered_long_body_end", signed_body(100 * 1024).replace(b"The end.", b"The END."),
             records("rsa2048"), ["fail"], "fail", {0: "body hash does not match"}),
    ]


def in_way(message, line_ends):
    return message if line_ends == "crlf" else message.replace(b"\r\n", b"\n")


def run(driver, all_cases, directory):
    """The driver's verdicts: (case name, way) -> (summary, [(result, reason)])."""
    lines, ids = [], {}
    for number, case in enumerate(all_cases):
        for way in WAYS:
            path = os.path.join(directory, "%d-%s-%d.eml" % (number, way[0], way[1]))
            with open(path, "wb") as f:
                f.write(in_way(case.message, way[0]))
            run_id = "r%d" % len(ids)
            ids[run_id] = (case.name, way)
            lines.append("dns")
            lines += ["txt %s %s" % (name, record) for name, record in case.records.items()]
            lines += ["timeout %s" % name for name in case.timeouts]
            lines.append("verify %s %s %d %d" % (run_id, path, way[1], case.min_bits))
    out = subprocess.run([driver], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    verdicts = {key: None for key in ids.values()}
    for line in out.stdout.splitlines():
        run_id, kind, rest = line.split(" ", 2)
        key = ids[run_id]
        if kind == "summary":
            verdicts[key] = (rest.split(" ")[0], [])
        else:
            result, _bits, _domain, _selector, _algorithm, reason = rest.split(" ", 5)
            verdicts[key][1].append((result, "" if reason == "-" else reason))
    return verdicts


def problems(case, verdict):
    """How VERDICT differs from what CASE wants; empty if it does not."""
    if verdict is None:
        return ["no verdict"]
    summary, signatures = verdict
    found = []
    if summary != case.summary:
        found.append("summary %s, want %s" % (summary, case.summary))
    results = [result for result, _ in signatures]
    if results != case.results:
        found.append("results %s, want %s (%s)" % (results, case.results, [r for _, r in signatures]))
    for index, reason in case.reasons.items():
        got = signatures[index][1] if index < len(signatures) else None
        if got != reason:
            found.append("reason %r, want %r" % (got, reason))
    return found


def main():
    driver = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        keys = {"ed25519": ed25519_key()}
        for selector, bits in (("rsa2048", 2048), ("rsa1024", 1024), ("rsa512", 512)):
            keys[selector] = genkey(directory, selector, bits)
        all_cases = cases(keys)
        verdicts = run(driver, all_cases, directory)
    passed = failed = 0
    for case in all_cases:
        for way in WAYS:
            found = problems(case, verdicts[(case.name, way)])
            label = "%s (%s, pieces of %s)" % (case.name, way[0], way[1] or "all")
            print("%-4s %s%s" % ("ok" if not found else "FAIL", label, "" if not found else ": " + "; ".join(found)))
            passed += not found
            failed += bool(found)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
