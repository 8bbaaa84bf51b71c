"""signed_messages.py: DKIM-signed 5 KB messages and their key records,
made afresh, for bench_auth and throughput.py.

Run by Debian's /usr/bin/python3 (python3-dkim, python3-nacl).  Writes into
OUTDIR, for each key (rsa2048: opendkim-genkey, as the end-to-end tests
make theirs; ed25519: PyNaCl):
  KEY.eml  the message, CRLF line ends, signed by dkimpy with a=KEY's
           algorithm, c=relaxed/relaxed, d=example.net, s=KEY, over
           dkimpy's default header set; SIZE bytes in all, signature
           included;
  KEY.dns  one line: the key record's name, a space, the record
(and opendkim-genkey's own rsa2048.private and rsa2048.txt).
The message is what a bulk sender's newsletter looks like on arrival: two
Received fields, the usual header, a text/plain body of 72-character
lines.  Each message is checked with dkimpy before it is written.

Usage: signed_messages.py OUTDIR [SIZE]   (SIZE: 5120 by default)
"""

import os
import sys

import dkim

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dkim"))
from signed_suite import ed25519_key, genkey  # noqa: E402  (the DKIM suite's key makers)

DOMAIN = "example.net"
SENDER = "sender@" + DOMAIN
RECIPIENT = "rcpt@example.com"
ALGORITHMS = {"rsa2048": b"rsa-sha256", "ed25519": b"ed25519-sha256"}

HEADER = (
    "Received: from relay.example.net (relay.example.net [198.51.100.20])\r\n"
    "\tby out.example.net with ESMTPS id 4Xq9; Mon, 23 Nov 2026 09:59:58 +0000\r\n"
    "Received: from app1.example.net (app1.example.net [198.51.100.7])\r\n"
    "\tby relay.example.net with ESMTP id 8Kd2; Mon, 23 Nov 2026 09:59:57 +0000\r\n"
    "From: Example Newsletter <%s>\r\n"
    "To: <%s>\r\n"
    "Subject: Your November newsletter\r\n"
    "Date: Mon, 23 Nov 2026 09:59:56 +0000\r\n"
    "Message-ID: <newsletter.20261123.4711@example.net>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n" % (SENDER, RECIPIENT))

LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"


def unsigned(body_bytes):
    """HEADER and a body of about BODY_BYTES: whole LINEs, then a shorter one."""
    lines, rest = divmod(max(body_bytes, 2), len(LINE))
    return (HEADER + LINE * lines + LINE[:max(rest - 2, 0)] + "\r\n").encode()


def signature(message, key_name, private_key):
    return dkim.sign(message, key_name.encode(), DOMAIN.encode(), private_key,
                     canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=ALGORITHMS[key_name])


def signed_message(key_name, private_key, size):
    """A signed message of SIZE bytes: the signature's length does not
    depend on the body, so one trial signature tells the body's size."""
    trial = signature(unsigned(size - len(HEADER)), key_name, private_key)
    message = unsigned(size - len(HEADER) - len(trial))
    signed = signature(message, key_name, private_key) + message
    assert len(signed) == size, (key_name, len(signed), size)
    return signed


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    outdir = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) == 3 else 5120
    os.makedirs(outdir, exist_ok=True)
    keys = {"rsa2048": genkey(outdir, "rsa2048", 2048), "ed25519": ed25519_key()}
    for key_name, (private_key, record) in keys.items():
        message = signed_message(key_name, private_key, size)
        assert dkim.verify(message, dnsfunc=lambda name, timeout=5, r=record: r.encode()), key_name
        with open(os.path.join(outdir, key_name + ".eml"), "wb") as f:
            f.write(message)
        with open(os.path.join(outdir, key_name + ".dns"), "w") as f:
            f.write("%s._domainkey.%s %s\n" % (key_name, DOMAIN, record))


if __name__ == "__main__":
    main()
