"""The control socket: `portcullis reload`, `status`, and the admin
commands on the running daemon's live state, through Postfix.

- reload: ok with the new policy's size; a broken policy is refused with
  every error as FILE:LINE:COL, exit 1, and the old policy keeps serving;
- status: version, engine, policy and its digest, store, resolver,
  sessions, counters;
- greylist allow on the memory backend (the default) lets a new triplet
  through at once;
- only root and the socket's group may ask: a user outside it is refused,
  by the socket's mode and, were it open, by the daemon itself;
- garbage and a 10 MB request are refused with a clear line, and the
  daemon goes on.
"""

import os
import socket
import stat
import subprocess
import unittest

from harness import PostfixTestCase, portcullis, run

GREYLIST_POLICY = """\
on rcpt { greylist delay 1h window 2d 451 4.7.1 "Greylisted, try again later" }
"""


def as_nobody(*args):
    """A portcullis command run as user nobody, group nogroup."""
    return run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + list(args),
               check=False, timeout=30)


def raw_request(path, data):
    """DATA written to the control socket as it is; the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(15)
        s.connect(path)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the daemon refused before the end: its reply is waiting
        reply = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
        return reply.decode(errors="replace")


class ControlTest(PostfixTestCase):

    def ctl(self, flt, *args):
        return portcullis(*args, "-c", flt.config_file)

    def test_reload_ok_and_refused(self):
        flt = self.start_filter('on rcpt { reject 550 5.7.1 "first policy" }\n')
        self.assertEqual(self.send_external("a@example.com").reply_to("RCPT").code, 550)
        flt.write_policy('on rcpt { reject 554 5.7.1 "second policy" }\non eom { add-header X-Two "2" }\n')
        done = self.ctl(flt, "reload")
        self.assertEqual(done.returncode, 0, done.stdout)
        self.assertRegex(done.stdout, r"reloaded policy .*test\.rules: 2 rules, 0 lists, 0 maps, 1 files")
        self.assertEqual(self.send_external("b@example.com").reply_to("RCPT").code, 554)

        flt.write_policy('on rcpt { reject 550 5.7.1 "broken" if sender.domain ==\n'
                         'on nowhere { accept }\n')
        refused = self.ctl(flt, "reload")
        self.assertEqual(refused.returncode, 1, refused.stdout)
        self.assertRegex(refused.stdout, r"test\.rules:\d+:\d+: error: ")
        self.assertIn("reload refused: keeping the running policy", refused.stdout)
        # The second policy still serves.
        self.assertEqual(self.send_external("c@example.com").reply_to("RCPT").code, 554)
        flt.wait_for_log(r"reload refused: keeping the running policy")

    def test_status_reports_the_daemon(self):
        flt = self.start_filter('on rcpt { log "x" }\n')
        self.send_external("a@example.com")
        status = self.ctl(flt, "status")
        self.assertEqual(status.returncode, 0, status.stdout)
        for pattern in [r"^portcullis \d+\.\d+\.\d+, up \S+ \(since \d{4}-\d\d-\d\dT",
                        r"(?m)^engine: (native engine|libmilter \S+ engine), \d+ ",
                        r"(?m)^policy: .*test\.rules: 1 rules, .*; loaded \d{4}-.*; sha256 [0-9a-f]{64}$",
                        r"(?m)^store: memory \(snapshot .*\): ok$",
                        r"(?m)^dns: not used",
                        r"(?m)^sessions in flight: \d+$",
                        r"(?m)^since start: [1-9]\d* connections, \d+ messages$",
                        r"(?m)^decisions: accept \d+, reject \d+",
                        r"(?m)^reloads: 0 ok, 0 refused$"]:
            self.assertRegex(status.stdout, pattern)

    def test_greylist_allow_on_the_memory_backend_lets_a_new_triplet_through(self):
        flt = self.start_filter(GREYLIST_POLICY)
        self.assertEqual(self.send_external("a@example.com").reply_to("RCPT").code, 451)
        allowed = self.ctl(flt, "greylist", "allow", "--client", "203.0.113.5", "--sender", "<new@sender.example>",
                           "--rcpt", "b@example.com")
        self.assertEqual(allowed.returncode, 0, allowed.stdout)
        self.assertIn("allowed 203.0.113.0/24 <new@sender.example> <b@example.com>", allowed.stdout)
        passed = self.send_external("b@example.com", sender="new@sender.example")
        self.assertEqual(passed.reply_to("RCPT").code, 250, str(passed))
        listed = self.ctl(flt, "greylist", "list", "--client", "203.0.113.5")
        self.assertIn("passed", listed.stdout)
        self.assertEqual(self.ctl(flt, "greylist", "stats").returncode, 0)

    def test_without_the_daemon_edits_on_memory_are_refused(self):
        flt = self.start_filter(GREYLIST_POLICY)
        flt.stop()
        refused = self.ctl(flt, "greylist", "allow", "--client", "203.0.113.5")
        self.assertEqual(refused.returncode, 2, refused.stdout)
        self.assertIn("needs the running daemon", refused.stdout)
        gone = self.ctl(flt, "status")
        self.assertEqual(gone.returncode, 3, gone.stdout)
        self.assertIn("no daemon answers on", gone.stdout)

    def test_a_user_outside_the_group_is_refused(self):
        flt = self.start_filter('on rcpt { log "x" }\n')
        mode = stat.S_IMODE(os.stat(flt.control_socket).st_mode)
        self.assertEqual(mode, 0o660)
        # The socket's mode keeps nobody out...
        os.chmod(os.path.dirname(flt.control_socket), 0o755)
        by_mode = as_nobody(flt.argv("status")[0], "status", "-c", flt.config_file)
        self.assertEqual(by_mode.returncode, 4, by_mode.stdout)
        # ...and were the socket open to all, the daemon itself would.
        os.chmod(flt.control_socket, 0o666)
        by_daemon = as_nobody(flt.argv("status")[0], "status", "-c", flt.config_file)
        self.assertEqual(by_daemon.returncode, 4, by_daemon.stdout)
        self.assertIn("not allowed", by_daemon.stdout)
        flt.wait_for_log(r"control socket: a request from a user outside the socket's group refused")
        self.assertEqual(self.ctl(flt, "status").returncode, 0)

    def test_garbage_and_oversized_requests_are_refused(self):
        flt = self.start_filter('on rcpt { log "x" }\n')
        for data, why in [(b"reload\nnot a pair\n\n", "malformed request: item 2 is not NAME=VALUE"),
                          (b"\n", "malformed request: an empty request"),
                          (b"reload", "the request ended before its empty line"),
                          (b"%zz\n\n", "malformed request: no command"),
                          (b"frobnicate\n\n", "unknown request 'frobnicate'"),
                          (b"x" * (10 * 1024 * 1024), "request over 65536 bytes refused")]:
            with self.subTest(why=why):
                reply = raw_request(flt.control_socket, data)
                self.assertTrue(reply.startswith("EXIT 2\n"), reply[:200])
                self.assertIn(why, reply)
        self.assertTrue(flt.alive())
        self.assertEqual(self.ctl(flt, "status").returncode, 0)
        self.assertEqual(self.send_external("a@example.com").reply_to("RCPT").code, 250)


if __name__ == "__main__":
    unittest.main()
