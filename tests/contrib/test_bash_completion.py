"""contrib/bash-completion/portcullis, sourced by bash and asked as
bash's programmable completion asks it (COMP_WORDS and COMP_CWORD set,
the function `complete -p` names called, COMPREPLY read).

Besides completions for a few prefixes, it is held against the binary
(PORTCULLIS_BIN): every subcommand, action and option that `portcullis
... --help` lists is completed, the options that take a value are the
ones it lists with one, and nothing else is completed, except the control
socket's subcommands (reload, status) before the binary has them.
"""

import os
import re
import subprocess
import tempfile
import unittest

SOURCE_DIR = os.environ.get("PORTCULLIS_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPLETION = os.path.join(SOURCE_DIR, "contrib", "bash-completion", "portcullis")
CONFIG = os.path.join(SOURCE_DIR, "conf", "portcullis.conf")
BIN = os.environ.get("PORTCULLIS_BIN") or os.path.join(SOURCE_DIR, "build", "filter", "portcullis")

# Subcommands the completion offers ahead of the daemon (issue 14's
# control socket); once the binary has them they are checked like the rest.
COMING = {"reload", "status"}
ADMIN_COMMANDS = ("greylist", "ratelimit")

CALL = r'''
source "$1"; shift
spec=$(complete -p portcullis) || exit 3
function=${spec#*-F }; function=${function%% *}
COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
"$function" portcullis "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(*words, cwd=None):
    """The completions bash offers for the command line WORDS (the last
    one is the word under the cursor, "" for a new word)."""
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", CALL, "complete", COMPLETION, "portcullis"]
                          + list(words), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                          timeout=30)
    if proc.returncode != 0 or proc.stderr:
        raise AssertionError("completing %r: exit %d: %s" % (words, proc.returncode, proc.stderr))
    return sorted(line for line in proc.stdout.splitlines() if line)


class Help:
    """What `portcullis ... --help` lists: subcommands, and options each
    with whether it takes a value."""

    def __init__(self, *path):
        out = subprocess.run([BIN] + list(path) + ["--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=30).stdout
        self.subcommands, self.options, self.valued = [], set(), set()
        section = None
        for line in out.splitlines():
            header = re.match(r"^(\w+):\s*$", line)
            if header:
                section = header.group(1)
                continue
            entry = re.match(r"^  (\S+)(?: +(\S+))?", line)
            if not entry:
                continue
            if section == "Subcommands":
                self.subcommands.append(entry.group(1))
            elif section == "Options":
                names = entry.group(1).split(",")
                self.options.update(names)
                if entry.group(2) and entry.group(2).isupper():
                    self.valued.update(names)
        if not self.options:
            raise AssertionError("no options in `%s --help`:\n%s" % (" ".join(path), out))


class PrefixTest(unittest.TestCase):
    """Completions for a few prefixes, as an administrator types them."""

    def test_registered_for_portcullis(self):
        proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", 'source "$1"; complete -p portcullis',
                               "complete", COMPLETION], stdout=subprocess.PIPE, text=True, timeout=30)
        self.assertRegex(proc.stdout, r"^complete -F \S+ portcullis$")

    def test_subcommands(self):
        self.assertEqual(complete(""), sorted(["run", "check", "try", "greylist", "ratelimit", "reload",
                                              "status", "version"]))
        self.assertEqual(complete("r"), ["ratelimit", "reload", "run"])
        self.assertEqual(complete("gr"), ["greylist"])
        self.assertEqual(complete("st"), ["status"])

    def test_actions_after_options_with_values(self):
        self.assertEqual(complete("greylist", ""), ["allow", "drop", "list", "stats"])
        # -c's value is no subcommand, -o's no action.
        self.assertEqual(complete("-c", "/etc/p.conf", "greylist", "-o", "x=1", "d"), ["drop"])
        self.assertEqual(complete("ratelimit", "r"), ["reset"])

    def test_options_of_an_action(self):
        self.assertEqual(complete("greylist", "allow", "--"),
                         ["--client", "--config", "--expire", "--help", "--host", "--option", "--rcpt", "--sender"])
        self.assertEqual(complete("run", "-"), ["--config", "--foreground", "--help", "--option",
                                                "-c", "-f", "-h", "-o"])

    def test_no_guess_for_free_values(self):
        self.assertEqual(complete("try", "--ip", ""), [])
        self.assertEqual(complete("greylist", "allow", "--client", ""), [])

    def test_files_after_config_and_for_try(self):
        with tempfile.TemporaryDirectory() as directory:
            for name in ("portcullis.conf", "message.eml"):
                open(os.path.join(directory, name), "w").close()
            self.assertEqual(complete("check", "-c", "port", cwd=directory), ["portcullis.conf"])
            self.assertEqual(complete("try", "--ip", "192.0.2.1", "mess", cwd=directory), ["message.eml"])

    def test_config_keys_after_option(self):
        keys = complete("-c", CONFIG, "run", "-o", "")
        self.assertIn("milter.socket=", keys)
        self.assertIn("store.on_error=", keys)
        self.assertIn("metrics.listen=", keys)
        self.assertEqual(complete("-c", CONFIG, "check", "-o", "policy."), ["policy.file=", "policy.mode="])
        # No config file there: nothing to offer, and no error.
        self.assertEqual(complete("-c", "/nonexistent/portcullis.conf", "run", "-o", ""), [])


@unittest.skipUnless(os.access(BIN, os.X_OK), "no portcullis binary at %s (set PORTCULLIS_BIN)" % BIN)
class InStepWithBinaryTest(unittest.TestCase):
    """The completion against the binary's own --help."""

    def test_subcommands(self):
        binary = set(Help().subcommands)
        completed = set(complete(""))
        self.assertLessEqual(binary, completed, "subcommands not completed")
        self.assertLessEqual(completed - binary, COMING, "completed, but the binary has no such subcommand")

    def test_actions(self):
        for command in ADMIN_COMMANDS:
            self.assertEqual(complete(command, ""), sorted(Help(command).subcommands), command)

    def command_paths(self):
        for command in Help().subcommands:
            if command in ADMIN_COMMANDS:
                yield (command,)
                for action in Help(command).subcommands:
                    yield (command, action)
            else:
                yield (command,)

    def test_options(self):
        for path in self.command_paths():
            with self.subTest(path=path):
                help_ = Help(*path)
                self.assertEqual(complete(*path, "-"), sorted(help_.options))

    def test_options_that_take_a_value(self):
        valued = set()
        for path in self.command_paths():
            valued |= Help(*path).valued
        # A valued option's next word is never completed as a subcommand
        # (nor, in an empty directory, as anything else).
        with tempfile.TemporaryDirectory() as empty:
            for option in sorted(valued):
                self.assertEqual(complete("greylist", option, "li", cwd=empty), [], option)
        # And a flag's next word is.
        flags = set().union(*(Help(*p).options for p in self.command_paths())) - valued
        for option in sorted(flags - {"-h", "--help"}):
            self.assertNotEqual(complete(option, "gr"), [], option)


if __name__ == "__main__":
    unittest.main()
