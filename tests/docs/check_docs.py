"""The reference in docs/ and the man pages, checked against the code.

Usage: check_docs.py --names DOC_NAMES --portcullis BINARY --source-dir DIR
                     --man-dir DIR [unittest options]

DOC_NAMES (tests/docs/doc_names.cc) prints the configuration keys, policy
fields, actions, stages and list kinds the code knows; `portcullis --help`
gives the commands and their options; filter/metrics/metrics.cc names the
metrics.  Each must be documented where a reader looks for it:

    configuration key   a "### `KEY`" section of docs/configuration.md
                        that gives its default and when it takes effect,
                        conf/portcullis.conf, and portcullis.conf(5)
    field               a row of the Fields table of docs/policy-language.md
                        with the code's type and stage, and
                        portcullis.rules(5)
    action              a row of the Actions table with the stages the
                        parser allows, a "### ACTION" section with an
                        example, and portcullis.rules(5)
    command, option     a "### `portcullis COMMAND`" section of
                        docs/daemon.md naming each action and option, and
                        portcullis(8)
    metric              a row of the Metrics table of docs/daemon.md, and
                        portcullis(8)

and nothing may be documented that the code does not know.  Every rules
example of docs/policy-language.md must pass `portcullis check`, and a
decision line quoted in a document (rule=default.rules:N reply="...")
must name the rule of policies/default.rules that gives that reply.  The man pages
must be those mkman.py makes of the documents now, and render with no
warning from `man --warnings` (skipped, saying so, when man is missing).
Relative links in docs/ and README.md must reach a file (and a heading,
for a #fragment); no document may name a /work/ path or lean on a spec
the reader does not have.
"""

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ARGS = argparse.Namespace()
mkman = None   # docs/man/mkman.py, imported once the source dir is known

DOCUMENTS = ("daemon.md", "configuration.md", "policy-language.md")


# ---- reading the documents ----

class Document:
    """A document of docs/, read with mkman's reader."""

    def __init__(self, name):
        self.path = os.path.join(ARGS.source_dir, "docs", name)
        with open(self.path, encoding="utf-8") as source:
            self.text = source.read()
        self.blocks = mkman.parse(self.path, self.text)
        self.page = mkman.read_meta(self.path, self.text)

    def section(self, predicate, level):
        """The blocks under the first heading of LEVEL whose text
        PREDICATE accepts, up to the next heading of that level or
        above; None when there is no such heading."""
        for index, block in enumerate(self.blocks):
            if block.kind == "heading" and block.level == level and predicate(block.text):
                end = next((i for i in range(index + 1, len(self.blocks))
                            if self.blocks[i].kind == "heading" and self.blocks[i].level <= level),
                           len(self.blocks))
                return self.blocks[index:end]
        return None

    def headings(self, level):
        return [block.text for block in self.blocks if block.kind == "heading" and block.level == level]

    def table(self, section_title, first_column):
        """The rows of the table whose first column is FIRST_COLUMN in
        the '## SECTION_TITLE' section."""
        blocks = self.section(lambda text: text == section_title, 2) or []
        for block in blocks:
            if block.kind == "table" and block.header[0] == first_column:
                return block.rows
        raise AssertionError("%s: no table '| %s |' under '## %s'" % (self.path, first_column, section_title))


def text_of(blocks):
    """Everything BLOCKS say, as one string."""
    parts = []
    for block in blocks:
        parts.append(block.text)
        parts.extend(block.lines)
        parts.extend(" ".join(row) for row in [block.header] + block.rows if row)
        parts.extend(text for _, text in block.items)
    return "\n".join(parts)


def code_spans(text):
    return re.findall(r"`([^`]+)`", text)


def term(cell):
    """The name a table cell defines: its first code span, without an
    argument in parentheses (`header("NAME")` -> header)."""
    spans = code_spans(cell)
    return spans[0].split("(")[0].strip() if spans else cell.strip()


def mentions(text, word):
    """Whether WORD occurs in TEXT as a whole word (options, dotted names)."""
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(word), text) is not None


def man_source(page):
    with open(os.path.join(ARGS.man_dir, page.file_name), encoding="ascii") as source:
        return source.read()


def man_text(page):
    """The man page's words without roff's escapes and font changes."""
    text = re.sub(r"\\f[BIRP]", "", man_source(page))
    text = re.sub(r"\\\[u([0-9A-F]{4,6})\]", lambda match: chr(int(match.group(1), 16)), text)
    return text.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")


@functools.cache
def names_output():
    return subprocess.run([ARGS.names], check=True, capture_output=True, text=True).stdout


def code_names(kind):
    """The lines of DOC_NAMES that start with KIND, split into words."""
    return [line.split()[1:] for line in names_output().splitlines() if line.split()[0] == kind]


# ---- the checks ----

class ConfigurationKeys(unittest.TestCase):
    def setUp(self):
        self.doc = Document("configuration.md")
        self.keys = [words[0] for words in code_names("config")]

    def test_every_key_has_its_section_with_default_and_effect(self):
        for key in self.keys:
            with self.subTest(key=key):
                blocks = self.doc.section(lambda text, key=key: text == "`%s`" % key, 3)
                self.assertIsNotNone(blocks, "docs/configuration.md has no '### `%s`'" % key)
                text = text_of(blocks)
                self.assertRegex(text, r"Default `", "%s: no default" % key)
                self.assertRegex(text, r"Takes effect at a (restart|reload)", "%s: when does it apply?" % key)

    def test_no_section_for_a_key_the_code_does_not_know(self):
        for heading in self.doc.headings(3):
            spans = code_spans(heading)
            if spans and "." in spans[0]:
                self.assertIn(spans[0], self.keys, "docs/configuration.md documents an unknown key")

    def test_every_key_is_in_the_shipped_configuration(self):
        with open(os.path.join(ARGS.source_dir, "conf", "portcullis.conf"), encoding="utf-8") as conf:
            shipped = set()
            section = ""
            for line in conf:
                header = re.match(r"\s*\[(\w+)\]", line)
                key = re.match(r"\s*#?(\w+)\s*=", line)
                if header:
                    section = header.group(1)
                elif key:
                    shipped.add("%s.%s" % (section, key.group(1)))
        for key in self.keys:
            self.assertIn(key, shipped, "conf/portcullis.conf does not show %s" % key)

    def test_every_key_is_in_the_man_page(self):
        source = man_source(self.doc.page)
        for key in self.keys:
            self.assertIn('.SS "%s"' % key, source, "%s: no %s in it" % (self.doc.page.reference, key))


class PolicyLanguage(unittest.TestCase):
    def setUp(self):
        self.doc = Document("policy-language.md")

    def test_every_field_has_a_row_with_its_type_and_stage(self):
        rows = {term(row[0]): row for row in self.doc.table("Fields", "field")}
        fields = code_names("field")
        for name, value_type, stage in fields:
            with self.subTest(field=name):
                self.assertIn(name, rows, "the Fields table has no row for %s" % name)
                self.assertEqual(rows[name][1], value_type, "%s: type" % name)
                self.assertEqual(rows[name][2], stage, "%s: stage" % name)
        self.assertEqual(sorted(rows), sorted(name for name, _, _ in fields), "a row for an unknown field")

    def test_every_value_type_is_described(self):
        rows = {row[0] for row in self.doc.table("Fields", "type")}
        for _, value_type, _ in code_names("field"):
            self.assertIn(value_type, rows, "the Value types table has no %s" % value_type)

    def test_every_action_has_a_row_with_its_stages_and_a_section_with_an_example(self):
        rows = {term(row[0]): row for row in self.doc.table("Actions", "action")}
        actions = code_names("action")
        for name, stages in actions:
            with self.subTest(action=name):
                self.assertIn(name, rows, "the Actions table has no row for %s" % name)
                self.assertEqual(rows[name][1].split(", "), stages.split(","), "%s: stages" % name)
                blocks = self.doc.section(lambda text, name=name: text == name, 3)
                self.assertIsNotNone(blocks, "no '### %s'" % name)
                examples = [block for block in blocks if block.kind == "code"]
                self.assertGreaterEqual(len(examples), 2, "%s: its form and an example" % name)
        self.assertEqual(sorted(rows), sorted(name for name, _ in actions), "a row for an unknown action")

    def test_every_stage_and_list_kind_has_a_row(self):
        stages = [term(row[0]) for row in self.doc.table("Stages", "stage")]
        self.assertEqual(stages, [words[0] for words in code_names("stage")])
        blocks = self.doc.section(lambda text: text == "list", 3)
        kinds = [term(row[0]) for block in blocks if block.kind == "table" for row in block.rows]
        self.assertEqual(kinds, [words[0] for words in code_names("listkind")])

    def test_the_man_page_has_every_field_and_action(self):
        text = man_text(self.doc.page)
        for words in code_names("field") + code_names("action"):
            self.assertTrue(mentions(text, words[0]), "%s: no %s" % (self.doc.page.reference, words[0]))


@functools.cache
def help_text(*command):
    return subprocess.run([ARGS.portcullis, *command, "--help"], check=True, capture_output=True, text=True).stdout


def listed(help_output, heading):
    """The first words of the lines under HEADING: in CLI11's help."""
    words = []
    under = False
    for line in help_output.splitlines():
        if line.strip().endswith(":") and not line.startswith(" "):
            under = line.strip() == heading + ":"
        elif under and line.startswith("  ") and line.strip():
            words.append(line.split()[0])
    return words


COMMON_OPTIONS = {"-h", "--help", "-c", "--config", "-o", "--option"}


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.doc = Document("daemon.md")

    def commands(self):
        """Every command as a tuple of words: ('run',), ('greylist', 'allow')..."""
        found = []
        for command in listed(help_text(), "Subcommands"):
            actions = listed(help_text(command), "Subcommands")
            found.extend([(command, action) for action in actions] or [(command,)])
        return found

    def test_every_command_action_and_option_is_documented(self):
        commands = self.commands()
        self.assertIn(("run",), commands)
        for command in commands:
            with self.subTest(command=" ".join(command)):
                title = "`portcullis %s`" % command[0]
                blocks = self.doc.section(lambda text, title=title: text == title, 3)
                self.assertIsNotNone(blocks, "docs/daemon.md has no '### %s'" % title)
                text = text_of(blocks)
                self.assertIn("portcullis " + " ".join(command), text)
                options = {option for entry in listed(help_text(*command), "Options") for option in entry.split(",")}
                for option in sorted(options - COMMON_OPTIONS):
                    self.assertTrue(mentions(text, option), "%s: option %s" % (" ".join(command), option))

    def test_the_common_options_are_documented(self):
        text = text_of(self.doc.section(lambda text: text == "Options", 2))
        for option in COMMON_OPTIONS:
            self.assertTrue(mentions(text, option), option)

    def test_no_section_for_a_command_the_program_does_not_know(self):
        known = {command[0] for command in self.commands()}
        for heading in self.doc.headings(3):
            spans = code_spans(heading)
            if spans and spans[0].startswith("portcullis "):
                self.assertIn(spans[0].split()[1], known, heading)

    def test_the_man_page_has_every_command(self):
        text = man_text(self.doc.page)
        for command in self.commands():
            self.assertIn("portcullis " + " ".join(command), text)


class Metrics(unittest.TestCase):
    def test_every_metric_has_a_row(self):
        with open(os.path.join(ARGS.source_dir, "filter", "metrics", "metrics.cc"), encoding="utf-8") as source:
            metrics = set(re.findall(r'"(portcullis_[a-z_]+)"', source.read()))
        self.assertGreater(len(metrics), 5)
        doc = Document("daemon.md")
        rows = {term(row[0]) for row in doc.table("Metrics", "metric")}
        for metric in sorted(metrics):
            self.assertIn(metric, rows, "the Metrics table has no row for %s" % metric)
        self.assertEqual(sorted(row for row in rows if row.startswith("portcullis_")), sorted(metrics))
        text = man_text(doc.page)
        for metric in metrics:
            self.assertTrue(mentions(text, metric), metric)


class ManPages(unittest.TestCase):
    def setUp(self):
        self.docs = [Document(name) for name in DOCUMENTS]

    def test_pages_are_made_from_the_documents_as_they_are(self):
        pages = {os.path.basename(doc.path): doc.page for doc in self.docs}
        for doc in self.docs:
            built = man_source(doc.page)
            header = re.search(r'^\.TH "[^"]*" "[^"]*" "([^"]*)" "Portcullis ?([^"]*)"', built, re.M)
            self.assertIsNotNone(header, doc.page.file_name)
            fresh = mkman.translate(doc.path, doc.text, pages, header.group(2), header.group(1))
            self.assertEqual(built, fresh, "%s is older than docs/%s: rebuild"
                             % (doc.page.file_name, os.path.basename(doc.path)))

    def test_pages_have_the_sections_of_a_man_page(self):
        for doc in self.docs:
            sections = re.findall(r'^\.SH "?([^"\n]+)"?$', man_source(doc.page), re.M)
            for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"):
                self.assertIn(name, sections, doc.page.file_name)

    def test_pages_render_without_warnings(self):
        man = shutil.which("man")
        if not man:
            self.skipTest("man is not installed (Debian: man-db, groff-base): pages not rendered")
        environment = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
        for doc in self.docs:
            with self.subTest(page=doc.page.file_name):
                shown = subprocess.run([man, "--warnings", "-l", os.path.join(ARGS.man_dir, doc.page.file_name)],
                                       capture_output=True, text=True, env=environment)
                self.assertEqual(shown.stderr, "")
                self.assertEqual(shown.returncode, 0)
                self.assertIn(doc.page.summary, " ".join(shown.stdout.split()))



# ---- the examples ----

def reader_documents():
    """Every document a reader has: docs/*.md and README.md."""
    docs_dir = os.path.join(ARGS.source_dir, "docs")
    names = sorted(name for name in os.listdir(docs_dir) if name.endswith(".md"))
    return [os.path.join(docs_dir, name) for name in names] + [os.path.join(ARGS.source_dir, "README.md")]


# Lists and maps the examples of policy-language.md use without defining
# them (each is defined in "A first look" or in the shipped policy).
EXAMPLE_LISTS = {
    "trusted": 'list trusted ip { 127.0.0.0/8 }',
    "local_domains": 'list local_domains domain { example.com }',
    "greylist_skip": 'list greylist_skip domain { example.net }',
    "spammy": 'list spammy regex { /spam/ }',
    "vip": 'list vip address { ceo@example.com }',
    "sender_logins": 'map sender_logins file "lists/sender-logins.txt"',
}

ACTIONS = ("accept", "reject", "tempfail", "discard", "quarantine", "greylist", "ratelimit", "add-header",
           "log", "monitor")


def rules_example(lines):
    """The policy a code block of policy-language.md is an example of, or
    None for a synopsis (placeholders in capitals) or other text.  A block
    of bare rules is put in an 'on rcpt' block."""
    words = [line.split("#")[0].split() for line in lines]
    first = next((w[0] for w in words if w), "")
    text = "\n".join(lines)
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|/(?:[^/\\\n]|\\.)*/i?|#.*', "", text)
    if re.search(r"(?<![\w-])[A-Z]{2,}(?![\w-])", bare) or re.search(r'"(PATH|TEXT)"', text):
        return None
    if first in ("on", "list", "map", "include"):
        return text + "\n"
    if first in ACTIONS:
        return "on rcpt {\n" + text + "\n}\n"
    return None


class Examples(unittest.TestCase):
    def test_every_rules_example_of_the_language_loads(self):
        doc = Document("policy-language.md")
        examples = [(block.line, rules_example(block.lines)) for block in doc.blocks if block.kind == "code"]
        examples = [(line, policy) for line, policy in examples if policy]
        self.assertGreater(len(examples), 15)
        with tempfile.TemporaryDirectory(prefix="portcullis-docs-") as scratch:
            os.symlink(os.path.abspath(os.path.join(ARGS.source_dir, "policies", "lists")), os.path.join(scratch, "lists"))
            conf = os.path.join(scratch, "portcullis.conf")
            with open(conf, "w", encoding="utf-8") as out:
                out.write('[policy]\nfile = "example.rules"\n[control]\nsocket = ""\n')
            for line, policy in examples:
                defined = set(re.findall(r"^\s*(?:list|map)\s+(\S+)", policy, re.M))
                used = [EXAMPLE_LISTS[name] for name in EXAMPLE_LISTS
                        if name not in defined and re.search(r"\b%s\b" % name, policy)]
                with open(os.path.join(scratch, "example.rules"), "w", encoding="utf-8") as out:
                    out.write(policy + "".join(definition + "\n" for definition in used))
                with self.subTest(example="policy-language.md:%d" % line):
                    done = subprocess.run([ARGS.portcullis, "check", "-c", conf], capture_output=True, text=True,
                                          timeout=30, stdin=subprocess.DEVNULL)
                    self.assertEqual(done.returncode, 0, policy + done.stderr)

    def test_decision_lines_name_the_shipped_rule_that_gives_their_reply(self):
        with open(os.path.join(ARGS.source_dir, "policies", "default.rules"), encoding="utf-8") as source:
            rules = source.read().splitlines()
        found = 0
        for path in reader_documents():
            with open(path, encoding="utf-8") as source:
                text = source.read()
            for match in re.finditer(r'rule=default\.rules:(\d+) reply="(\d{3}) (\S+) ([^"]*)"', text):
                found += 1
                number, code, xcode, reply = match.groups()
                line = rules[int(number) - 1] if 0 < int(number) <= len(rules) else ""
                with self.subTest(document=os.path.relpath(path, ARGS.source_dir), rule=number):
                    self.assertIn('%s %s "%s"' % (code, xcode, reply), line,
                                  "default.rules:%s is not the rule that replies %s %s %s" %
                                  (number, code, xcode, reply))
        self.assertGreater(found, 0)

def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    found = []
    in_code = False
    with open(path, encoding="utf-8") as source:
        for line in source:
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and line.startswith("#"):
                base = slug(line.lstrip("#"))
                found.append(base if base not in found else "%s-%d" % (base, found.count(base)))
    return found


class Links(unittest.TestCase):
    def test_relative_links_reach_a_file_and_a_heading(self):
        for path in reader_documents():
            with open(path, encoding="utf-8") as source:
                text = source.read()
            for label, target in mkman.links(text):
                if re.match(r"[a-z]+:", target):
                    continue
                with self.subTest(document=os.path.relpath(path, ARGS.source_dir), link=target):
                    file_part, _, fragment = target.partition("#")
                    linked = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                    self.assertTrue(os.path.exists(linked), "%s: no such file" % target)
                    self.assertTrue(os.path.realpath(linked).startswith(os.path.realpath(ARGS.source_dir)),
                                    "%s leaves the repository" % target)
                    if fragment:
                        self.assertIn(fragment, anchors(linked), "%s: no such heading" % target)

    def test_no_document_names_a_work_path_or_a_spec(self):
        forbidden = {
            r"(?<![\w.-])/work/": "names a path of a build machine",
            r"(?i)\bspec\b": "leans on a spec the reader does not have",
        }
        for path in reader_documents():
            with open(path, encoding="utf-8") as source:
                lines = source.read().splitlines()
            for pattern, problem in forbidden.items():
                found = ["%s:%d: %s" % (os.path.relpath(path, ARGS.source_dir), number, line.strip())
                         for number, line in enumerate(lines, start=1) if re.search(pattern, line)]
                self.assertEqual(found, [], problem)


def main():
    global mkman
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", required=True)
    parser.add_argument("--portcullis", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--man-dir", required=True)
    args, rest = parser.parse_known_args()
    vars(ARGS).update(vars(args))
    sys.path.insert(0, os.path.join(ARGS.source_dir, "docs", "man"))
    import mkman as module
    mkman = module
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
