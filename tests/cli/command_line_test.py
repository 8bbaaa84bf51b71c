"""The portcullis command line, run as a user runs it.

Usage: command_line_test.py --portcullis BINARY [unittest options]

Each test writes a configuration, a policy and a message into a fresh
temporary directory and runs the built binary on them, with --dry where
a command would use the store or the resolver: nothing here needs a
server, an MTA or the network.  The configurations name no control
socket (control.socket = ""), so a daemon running on the machine at the
default one is never asked in a test's place.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import unittest

ARGS = argparse.Namespace()

POLICY = """\
on rcpt {
    reject "no relay" if rcpt == "relay@example.org"
}
on eom {
    reject "bad subject" if header("Subject") == "bad"
}
"""

NO_CONTROL_SOCKET = '[control]\nsocket = ""\n'

MESSAGE = "Subject: bad\nFrom: a@example.org\n\nhello\n"


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="portcullis-cli-")
        self.dir = self.scratch.name
        self.conf = self.write("portcullis.conf", '[policy]\nfile = "policy.rules"\n' + NO_CONTROL_SOCKET)
        self.write("policy.rules", POLICY)
        self.message = self.write("message.eml", MESSAGE)

    def tearDown(self):
        self.scratch.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
        return path

    def run_portcullis(self, *args):
        return subprocess.run([ARGS.portcullis, *args], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    def try_message(self, *args):
        return self.run_portcullis("try", "-c", self.conf, "--dry", "--ip", "192.0.2.1", *args)

    def stage_lines(self, output, prefix):
        return [line for line in output.splitlines() if line.startswith(prefix)]


class Try(CommandLine):
    def test_message_file_after_to_is_the_message(self):
        done = self.try_message("--to", "a@example.com", self.message)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.stage_lines(done.stdout, "rcpt "), ["rcpt to=<a@example.com>"])
        self.assertIn("eom 1 of 1 recipients", done.stdout)
        self.assertIn("verdict: 550 5.7.1 bad subject", done.stdout)

    def test_to_repeated_gives_each_recipient(self):
        done = self.try_message("--to", "a@example.com", "--to", "relay@example.org", self.message)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.stage_lines(done.stdout, "rcpt "),
                         ["rcpt to=<a@example.com>", "rcpt to=<relay@example.org>"])
        self.assertIn("eom 1 of 2 recipients", done.stdout)

    def test_option_after_to_is_an_option(self):
        done = self.try_message("--to", "a@example.com", "-o", "policy.mode=monitor", self.message)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("(monitor mode)", done.stdout)
        self.assertEqual(self.stage_lines(done.stdout, "rcpt "), ["rcpt to=<a@example.com>"])
        self.assertIn("eom 1 of 1 recipients", done.stdout)

    def test_message_file_that_cannot_be_read_is_bad_usage_before_any_stage(self):
        # Even when no recipient is accepted and the message would not be sent.
        missing = os.path.join(self.dir, "nosuch.eml")
        done = self.try_message("--to", "relay@example.org", missing)
        self.assertEqual(done.returncode, 2, done.stdout)
        self.assertEqual(done.stdout, "")
        self.assertIn("portcullis try: message file: cannot open '%s': No such file or directory" % missing,
                      done.stderr)
        done = self.try_message("--to", "a@example.com", self.dir)
        self.assertEqual(done.returncode, 2, done.stdout)
        self.assertIn("'%s' is not a regular file" % self.dir, done.stderr)

    def test_addresses_in_angle_brackets_are_shown_once(self):
        done = self.try_message("--from", "<>", "--to", "<a@example.com>")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.stage_lines(done.stdout, "mail "), ["mail from=<>"])
        self.assertEqual(self.stage_lines(done.stdout, "rcpt "), ["rcpt to=<a@example.com>"])

    def test_two_words_after_one_to_are_a_usage_error(self):
        done = self.try_message("--to", "a@example.com", "b@example.com", self.message)
        self.assertEqual(done.returncode, 2, done.stdout)
        self.assertIn(self.message, done.stderr)


class Usage(CommandLine):
    def test_an_unknown_command_or_action_is_named(self):
        for words, unknown in ((["stauts"], "stauts"), (["greylist", "lsit"], "lsit"),
                               (["ratelimit", "shwo", "alice"], "shwo alice")):
            done = self.run_portcullis(*words)
            self.assertEqual(done.returncode, 2, words)
            self.assertIn("not expected: " + unknown + "\n", done.stderr)
            self.assertNotIn("A subcommand is required", done.stderr)

    def test_no_command_or_action_is_a_usage_error(self):
        for words in ([], ["greylist"], ["ratelimit", "-c", "x.conf"]):
            done = self.run_portcullis(*words)
            self.assertEqual(done.returncode, 2, words)
            self.assertIn("A subcommand is required", done.stderr)


class StoreSettings(CommandLine):
    """Store settings that do not fit together are reported where they were
    set, by every command that reads the configuration; a password from
    the file is never repeated.  A store that does not answer is exit 3."""

    CLUSTER = ("-o", "store.backend=redis", "-o", "store.mode=cluster",
               "-o", "store.url=redis://:secret@127.0.0.1:7000")
    PROBLEM = ("store.url: every cluster node authenticates with store.user and store.password; the URL may not "
               "hold credentials")

    def assert_refused(self, done, where):
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertIn(where + ": error: " + self.PROBLEM, done.stderr)

    def test_check_names_the_override(self):
        done = self.run_portcullis("check", "-c", self.conf, *self.CLUSTER)
        self.assert_refused(done, "-o store.url=redis://:secret@127.0.0.1:7000")
        self.assertNotIn(self.conf + ":", done.stderr)

    def test_check_names_the_place_in_the_file(self):
        self.write("portcullis.conf", '[policy]\nfile = "policy.rules"\n'
                                      '[store]\nbackend = "redis"\nmode = "cluster"\n'
                                      'url = "redis://:secret@127.0.0.1:7000"\n')
        done = self.run_portcullis("check", "-c", self.conf)
        self.assert_refused(done, self.conf + ":6:7")
        self.assertNotIn("secret", done.stderr)

    def test_try_refuses_them_without_crashing(self):
        done = self.run_portcullis("try", "-c", self.conf, *self.CLUSTER, "--ip", "192.0.2.1",
                                   "--to", "a@example.com")
        self.assert_refused(done, "-o store.url=redis://:secret@127.0.0.1:7000")

    def test_greylist_refuses_them_as_bad_configuration(self):
        done = self.run_portcullis("greylist", "stats", "-c", self.conf, *self.CLUSTER)
        self.assert_refused(done, "-o store.url=redis://:secret@127.0.0.1:7000")

    def test_greylist_without_a_sentinel_that_answers_is_unavailable(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        done = self.run_portcullis("greylist", "stats", "-c", self.conf, "-o", "store.backend=redis",
                                   "-o", "store.mode=sentinel", "-o", "store.master=m",
                                   "-o", "store.url=redis://127.0.0.1:%d" % port)
        self.assertEqual(done.returncode, 3, done.stdout + done.stderr)
        self.assertIn("portcullis greylist: store redis sentinel m: no sentinel named the master: sentinel "
                      "127.0.0.1:%d connect: Connection refused" % port, done.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portcullis", required=True)
    args, rest = parser.parse_known_args()
    vars(ARGS).update(vars(args))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
