"""Sign a message with DKIM, for the end-to-end tests.

Run by Debian's /usr/bin/python3, which has python3-dkim (dkimpy): the
tests may run under another Python.  Reads the message (CRLF line ends)
on stdin and writes it signed on stdout.

Usage: dkim_sign.py KEYFILE SELECTOR DOMAIN [HEADER...]
HEADERs are the fields to sign (default: From, To, Subject, Date).
"""

import sys

import dkim


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    key_file, selector, domain = sys.argv[1:4]
    signed_headers = [h.encode() for h in (sys.argv[4:] or ["From", "To", "Subject", "Date"])]
    with open(key_file, "rb") as f:
        key = f.read()
    message = sys.stdin.buffer.read()
    signature = dkim.sign(message, selector.encode(), domain.encode(), key,
                          include_headers=signed_headers, canonicalize=(b"relaxed", b"simple"))
    sys.stdout.buffer.write(signature + message)


if __name__ == "__main__":
    main()
