"""Tests of docs/man/mkman.py, the man page generator: what each Markdown
construct becomes, the escaping groff needs, and the constructs it
refuses.  check_docs.py checks the real pages; these check the
translation on small documents made to be awkward.

Usage: mkman_test.py SOURCE_DIR [unittest options]
"""

import os
import subprocess
import shutil
import sys
import tempfile
import unittest

mkman = None   # imported from SOURCE_DIR/docs/man


def page(body, name="demo", section="5", others=()):
    """The man page of a document whose text after its meta line is BODY."""
    text = "<!-- man: %s %s: a demo page -->\n# Demo\n\n%s" % (name, section, body)
    pages = {"demo.md": mkman.Page("demo.md", name, section, "a demo page")}
    for file_name, other_name, other_section in others:
        pages[file_name] = mkman.Page(file_name, other_name, other_section, "another page")
    return mkman.translate("demo.md", text, pages, "1.2.3", "2026-01-02")


REQUIRED = "## Synopsis\n\nx\n\n## Description\n\ny\n\n## Files\n\nz\n\n## See also\n\nw\n"


class Structure(unittest.TestCase):
    def test_head_and_name(self):
        roff = page(REQUIRED)
        self.assertIn('.TH "DEMO" "5" "2026-01-02" "Portcullis 1.2.3" "Portcullis Manual"', roff)
        self.assertIn(".SH NAME\ndemo \\- a demo page\n", roff)
        self.assertFalse(roff.startswith("'\\\" t"), "no table, no tbl line")

    def test_sections_and_subsections(self):
        roff = page(REQUIRED + "\n### `store.timeout`\n\ntext\n")
        self.assertIn('.SH "SEE ALSO"', roff)
        self.assertIn('.SS "store.timeout"', roff)

    def test_text_before_the_first_section_opens_the_description(self):
        roff = page("Intro text.\n\n" + REQUIRED)
        self.assertLess(roff.index('.SH "DESCRIPTION"'), roff.index("Intro text."))
        self.assertLess(roff.index("Intro text."), roff.index("\ny\n"))

    def test_a_page_without_a_required_section_is_refused(self):
        with self.assertRaisesRegex(mkman.DocError, "Files"):
            page("## Synopsis\n\nx\n\n## Description\n\ny\n\n## See also\n\nw\n")


class Escaping(unittest.TestCase):
    def test_non_ascii_becomes_groff_escapes(self):
        roff = page(REQUIRED + "\nCaf\u00e9 \u2014 n\u00b2/2\u2074\u2079, \U0001F600.\n")
        self.assertIn("Caf\\[u00E9] \\[u2014] n\\[u00B2]/2\\[u2074]\\[u2079], \\[u1F600].", roff)
        roff.encode("ascii")

    def test_backslashes_and_request_characters(self):
        roff = page(REQUIRED + "\n```\n.not a request\n'nor this\nback\\slash\n```\n\n.dot starts a line\n")
        self.assertIn("\n\\&.not a request\n", roff)
        self.assertIn("\n\\&'nor this\n", roff)
        self.assertIn("\nback\\eslash\n", roff)
        self.assertIn("\n\\&.dot starts a line\n", roff)

    def test_code_keeps_minus_signs_ascii(self):
        roff = page(REQUIRED + "\nRun `portcullis check -c FILE` for a well-known check.\n")
        self.assertIn("\\fBportcullis check \\-c FILE\\fR for a well-known check.", roff)

    def test_inline_fonts_and_escaped_pipes(self):
        roff = page(REQUIRED + "\n**Bold** and *emphasis*, `a\\|b`.\n")
        self.assertIn("\\fBBold\\fR and \\fIemphasis\\fR, \\fBa|b\\fR.", roff)


class Links(unittest.TestCase):
    OTHERS = [("configuration.md", "portcullis.conf", "5")]

    def test_a_link_to_a_document_names_its_page(self):
        roff = page(REQUIRED + "\nSee [`configuration.md`](configuration.md#store).\n", others=self.OTHERS)
        self.assertIn("See \\fBportcullis.conf\\fR(5).", roff)

    def test_a_link_with_words_keeps_them(self):
        roff = page(REQUIRED + "\nThe [store settings](configuration.md).\n", others=self.OTHERS)
        self.assertIn("The store settings (\\fBportcullis.conf\\fR(5)).", roff)

    def test_external_and_other_links(self):
        roff = page(REQUIRED + "\n[RFC 8601](https://www.rfc-editor.org/rfc/rfc8601) and [the bench](../tests/x.md).\n")
        self.assertIn("RFC 8601 <https://www.rfc-editor.org/rfc/rfc8601> and the bench.", roff)


class Tables(unittest.TestCase):
    def test_a_narrow_table_goes_to_tbl(self):
        roff = page(REQUIRED + "\n| field | stage | meaning |\n|---|---|---|\n| `helo` | helo | the HELO name |\n")
        self.assertTrue(roff.startswith("'\\\" t\n"))
        self.assertIn(".TS\ntab(\t);\nlB lB lB\nl l lx.\nfield\tstage\tmeaning\n_\n"
                      "\\fBhelo\\fR\thelo\tT{\nthe HELO name\nT}\n.TE", roff)

    def test_a_wide_table_becomes_a_tagged_list(self):
        wide = "x" * 50
        roff = page(REQUIRED + "\n| metric | type | meaning |\n|---|---|---|\n| `%s` | counter | what |\n" % wide)
        self.assertNotIn(".TS", roff)
        self.assertIn(".TP\n\\fB%s\\fR\n\\fItype:\\fR counter\n.br\n\\fImeaning:\\fR what\n" % wide, roff)

    def test_a_tagged_list_leaves_out_empty_cells(self):
        wide = "x" * 50
        roff = page(REQUIRED + "\n| metric | labels | meaning |\n|---|---|---|\n| `%s` | | what |\n" % wide)
        self.assertIn(".TP\n\\fB%s\\fR\n\\fImeaning:\\fR what\n" % wide, roff)

    def test_a_table_with_an_unbreakable_word_becomes_a_tagged_list(self):
        roff = page(REQUIRED + "\n| a | b |\n|---|---|\n| x | %s |\n" % ("y" * 60))
        self.assertNotIn(".TS", roff)

    def test_a_rule_cell_is_not_taken_for_a_rule(self):
        roff = page(REQUIRED + "\n| a | b |\n|---|---|\n| _ | c |\n")
        self.assertIn("\\&_\tT{", roff)

    def test_a_row_with_the_wrong_number_of_cells_is_refused(self):
        with self.assertRaisesRegex(mkman.DocError, "demo.md:22: row has 1 cells"):
            page(REQUIRED + "\n| a | b |\n|---|---|\n| x |\n")


class Refusals(unittest.TestCase):
    def test_unknown_constructs_are_errors_with_their_line(self):
        cases = {
            "- item\n    - nested\n": "nested lists",
            "> quote\n": "block quotes",
            "#### deep\n": "heading level 4",
            "```\nnever closed\n": "unclosed code block",
            "| a | b |\n| c | d |\n": "header row",
        }
        for body, message in cases.items():
            with self.subTest(body=body), self.assertRaisesRegex(mkman.DocError, "demo.md:2[0-9]: .*" + message):
                page(REQUIRED + "\n" + body)

    def test_a_document_without_its_meta_line_is_refused(self):
        with self.assertRaisesRegex(mkman.DocError, "no '<!-- man:"):
            mkman.read_meta("x.md", "# X\n")


class Lists(unittest.TestCase):
    def test_bullets_and_numbers_with_continuation_lines(self):
        roff = page(REQUIRED + "\n- one\n  and more\n- two\n\n1. first\n2. second\n")
        self.assertIn(".IP \\(bu 2\none and more\n.IP \\(bu 2\ntwo\n", roff)
        self.assertIn(".IP 1. 4\nfirst\n.IP 2. 4\nsecond\n", roff)


class Rendering(unittest.TestCase):
    def setUp(self):
        self.man = shutil.which("man")
        if not self.man:
            self.skipTest("man is not installed (Debian: man-db, groff-base)")

    def render(self, body):
        """BODY's page as man shows it on 80 columns, and what it warns."""
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "demo.5")
            with open(path, "w", encoding="ascii") as out:
                out.write(page(REQUIRED + body))
            environment = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
            shown = subprocess.run([self.man, "--warnings", "-l", path], capture_output=True, text=True,
                                   env=environment)
        return shown.stdout, shown.stderr

    def test_escaped_text_renders_as_written(self):
        shown, warnings = self.render("\n```\n.x\n'y\n\\z\n```\n\nCaf\u00e9 \u2014 `a-b` \\ 'q'.\n")
        self.assertEqual(warnings, "")
        self.assertIn("Caf\u00e9 \u2014 a-b \\ 'q'.", shown)
        self.assertIn(".x\n", shown)

    def test_a_table_anywhere_on_the_page_renders_without_warnings(self):
        # A tall text block near the end of nroff's page: tbl warns unless
        # the page is lengthened for it.
        table = "| a | b |\n|---|---|\n| `x` | %s|\n" % ("words of text " * 40)
        for lines in range(0, 70, 2):
            with self.subTest(lines_before=lines):
                _, warnings = self.render("\n```\n" + "code\n" * lines + "```\n\n" + table)
                self.assertEqual(warnings, "")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(sys.argv[1], "docs", "man"))
    import mkman as module
    mkman = module
    unittest.main(argv=[sys.argv[0]] + sys.argv[2:], verbosity=2)
