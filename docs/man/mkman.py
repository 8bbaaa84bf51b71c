#!/usr/bin/env python3
"""mkman.py: the man pages, generated from the reference in docs/.

Usage: mkman.py [--version V] [--date YYYY-MM-DD] --out-dir DIR DOC.md...

Each DOC.md names the page it becomes in an HTML comment of its own,
    <!-- man: portcullis.conf 5: the configuration file of ... -->
and is written to DIR/portcullis.conf.5 as man(7) source, its tables for
tbl(1) (the page then starts with the '\\" t line that tells man to run
it).  The documents stay the one source: this script only translates the
small Markdown subset they use:

    # Title                 the document's title; the page has NAME instead
    ## Section              .SH SECTION (text before the first one opens
                            DESCRIPTION); SYNOPSIS, DESCRIPTION, FILES and
                            SEE ALSO must be among them
    ### Subsection          .SS
    paragraphs              .PP
    - item, 1. item         .IP, one paragraph per item (lines indented
                            under an item continue it)
    ```fenced code```       .nf, indented
    | table | rows |        a tbl(1) table when every word of its last
                            column fits beside the others, else a .TP
                            list keyed by the first column
    `code` **bold** *emph*  \\fB \\fB \\fI
    [text](target)          the text; a link to one of the DOC.md files
                            becomes its page, NAME(SECTION); an external
                            URL follows the text in angle brackets
    <!-- ... -->            dropped

Anything else (nested lists, block quotes, HTML, deeper headings) is an
error naming the file and line, so that a document cannot silently lose
text in its page.  Every character outside ASCII is written as a groff
escape, \\[uXXXX].

parse() is the one reader of this subset: tests/docs/check_docs.py reads
the documents' headings and tables with it too.

The date on the pages is --date, else SOURCE_DATE_EPOCH's, else the date
of the newest DOC.md, so that a build is reproducible.
"""

import argparse
import datetime
import os
import re
import sys

META = re.compile(r"<!--\s*man:\s*(\S+)\s+(\d)\s*:\s*(.*?)\s*-->\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ITEM = re.compile(r"^([-*]|\d+\.)\s+(.*)$")
FENCE = re.compile(r"^```")
TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
INLINE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|\[(?P<link_text>[^\]]+)\]\((?P<target>[^)\s]+)\)"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|(?<![\w*])\*(?P<emph>[^*\s][^*]*?)\*(?![\w*])"
)
LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")
REQUIRED_SECTIONS = ("SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO")
# The text width of a section's body on a 70-column terminal (nroff's
# line length less the man macros' indent of 7n), so that tables fit the
# usual 80 columns with room to spare.
TEXT_WIDTH = 61
# tbl's gap between columns.
COLUMN_GAP = 3
# A table is drawn by tbl when its last column keeps at least this width
# and every word of it fits there (else groff cannot set the line);
# other tables become .TP lists.
MIN_LAST_COLUMN = 24


class DocError(Exception):
    """A construct this translator does not know, at FILE:LINE."""


class Page:
    """The man page a document becomes: NAME(SECTION) - SUMMARY."""

    def __init__(self, path, name, section, summary):
        self.path = path
        self.name = name
        self.section = section
        self.summary = summary

    @property
    def reference(self):
        return "%s(%s)" % (self.name, self.section)

    @property
    def file_name(self):
        return "%s.%s" % (self.name, self.section)


def read_meta(path, text):
    for line in text.splitlines():
        match = META.match(line.strip())
        if match:
            return Page(path, match.group(1), match.group(2), match.group(3))
    raise DocError("%s: no '<!-- man: NAME SECTION: summary -->' line" % path)


# ---- reading ----

class Block:
    """One block of a document.  KIND is heading (LEVEL, TEXT), paragraph
    (TEXT), code (LINES), table (HEADER, ROWS of cells) or list (ITEMS of
    (marker, text)); LINE is where it starts."""

    def __init__(self, kind, line, **data):
        self.kind = kind
        self.line = line
        self.level = data.get("level", 0)
        self.text = data.get("text", "")
        self.lines = data.get("lines", [])
        self.header = data.get("header", [])
        self.rows = data.get("rows", [])
        self.items = data.get("items", [])


def split_row(text):
    """The cells of '| a | b \\| c |', with escaped pipes kept in them."""
    text = text.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", text)]


def starts_block(line):
    stripped = line.strip()
    return bool(HEADING.match(line) or FENCE.match(stripped) or stripped.startswith("|") or
                (ITEM.match(stripped) and not line.startswith(" ")) or stripped.startswith("<!--"))


def parse(path, text):
    """The blocks of the document TEXT (from PATH, for errors)."""
    lines = text.splitlines()
    blocks = []
    number = 0

    def fail(line, message):
        raise DocError("%s:%d: %s" % (path, line, message))

    while number < len(lines):
        line = lines[number]
        stripped = line.strip()
        start = number + 1
        if not stripped:
            number += 1
        elif stripped.startswith("<!--"):
            while "-->" not in lines[number]:
                number += 1
                if number >= len(lines):
                    fail(start, "unclosed HTML comment")
            number += 1
        elif HEADING.match(line):
            heading = HEADING.match(line)
            level = len(heading.group(1))
            if level > 3:
                fail(start, "heading level %d is not used in these documents" % level)
            blocks.append(Block("heading", start, level=level, text=heading.group(2)))
            number += 1
        elif FENCE.match(stripped):
            code = []
            number += 1
            while number < len(lines) and not FENCE.match(lines[number].strip()):
                code.append(lines[number])
                number += 1
            if number >= len(lines):
                fail(start, "unclosed code block")
            number += 1
            blocks.append(Block("code", start, lines=code))
        elif stripped.startswith("|"):
            rows = []
            while number < len(lines) and lines[number].strip().startswith("|"):
                rows.append(lines[number].strip())
                number += 1
            if len(rows) < 2 or not TABLE_RULE.match(rows[1]):
                fail(start, "a table needs a header row and a |---| rule under it")
            cells = [split_row(row) for row in rows]
            for offset, row in enumerate(cells[2:], start=2):
                if len(row) != len(cells[0]):
                    fail(start + offset, "row has %d cells, the header %d" % (len(row), len(cells[0])))
            blocks.append(Block("table", start, header=cells[0], rows=cells[2:]))
        elif ITEM.match(stripped) and not line.startswith(" "):
            items = []
            while number < len(lines):
                current = lines[number]
                item = ITEM.match(current.strip()) if not current.startswith(" ") else None
                following = lines[number + 1] if number + 1 < len(lines) else ""
                if item:
                    items.append([item.group(1), item.group(2)])
                elif current.strip() and current.startswith("  "):
                    if ITEM.match(current.strip()) or FENCE.match(current.strip()):
                        fail(number + 1, "nested lists and code in list items are not used in these documents")
                    items[-1][1] += " " + current.strip()
                elif not current.strip() and ITEM.match(following.strip()) and not following.startswith(" "):
                    pass   # a blank line between items
                else:
                    break
                number += 1
            blocks.append(Block("list", start, items=[tuple(item) for item in items]))
        elif stripped.startswith((">", "<")):
            fail(start, "block quotes and HTML are not used in these documents")
        else:
            text_lines = []
            while number < len(lines) and lines[number].strip() and not starts_block(lines[number]):
                text_lines.append(lines[number].strip())
                number += 1
            blocks.append(Block("paragraph", start, text=" ".join(text_lines)))
    return blocks


def links(text):
    """(link text, target) of every Markdown link in TEXT."""
    return [(match.group("text"), match.group("target")) for match in LINK.finditer(text)]


# ---- escaping ----

def escape(text, code=False):
    """TEXT as groff prints it literally (minus signs in code kept ASCII)."""
    out = []
    for char in text:
        if char == "\\":
            out.append("\\e")
        elif char == "-" and code:
            out.append("\\-")
        elif ord(char) < 128:
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append("\\[u%04X]" % ord(char))
        else:
            out.append("\\[u%X]" % ord(char))
    return "".join(out)


def line_safe(line):
    """A text line that groff does not take for a request."""
    return "\\&" + line if line.startswith((".", "'")) else line


def cell_safe(text):
    """A tbl cell that tbl does not take for a rule or a span."""
    if text in ("_", "=", "\\^") or (text and set(text) <= {"_"}) or (text and set(text) <= {"="}):
        return "\\&" + text
    return line_safe(text)


# ---- inline text ----

class Inline:
    """Renders inline Markdown as roff, or as plain text (for widths)."""

    def __init__(self, pages, current):
        self.pages = pages          # document file name -> Page
        self.current = current

    def render(self, text, plain=False):
        out = []
        pos = 0
        for match in INLINE.finditer(text):
            out.append(self.literal(text[pos:match.start()], plain))
            out.append(self.element(match, plain))
            pos = match.end()
        out.append(self.literal(text[pos:], plain))
        return "".join(out)

    @staticmethod
    def literal(piece, plain):
        piece = piece.replace("\\|", "|")
        return piece if plain else escape(piece)

    @staticmethod
    def font(font, text, plain, code=False):
        return text if plain else "\\f%s%s\\fR" % (font, escape(text, code))

    def element(self, match, plain):
        if match.group("code"):
            return self.font("B", match.group("code_text").strip().replace("\\|", "|"), plain, code=True)
        if match.group("bold"):
            return self.font("B", match.group("bold"), plain)
        if match.group("emph"):
            return self.font("I", match.group("emph"), plain)
        return self.link(match.group("link_text"), match.group("target"), plain)

    def link(self, text, target, plain):
        path = target.split("#", 1)[0]
        page = self.pages.get(os.path.basename(path)) if path and "://" not in path else None
        if page is not None and page is not self.current:
            reference = page.reference if plain else "\\fB%s\\fR(%s)" % (escape(page.name, True), page.section)
            if re.fullmatch(r"`?[\w./-]+\.md(#[\w-]+)?`?", text) or text.strip("`") == page.reference:
                return reference
            return "%s (%s)" % (self.render(text, plain), reference)
        rendered = self.render(text, plain)
        if "://" in target and text != target:
            return "%s <%s>" % (rendered, target if plain else escape(target))
        return rendered


# ---- writing ----

class Translator:
    """One document's blocks as a man page."""

    def __init__(self, page, pages, version, date):
        self.page = page
        self.inline = Inline(pages, page)
        self.version = version
        self.date = date
        self.out = []
        self.uses_tbl = False

    def translate(self, blocks):
        first_section = next((i for i, b in enumerate(blocks) if b.kind == "heading" and b.level == 2), len(blocks))
        intro = [block for block in blocks[:first_section] if not (block.kind == "heading" and block.level == 1)]
        sections = []
        for block in blocks[first_section:]:
            if block.kind == "heading" and block.level == 2:
                name = self.inline.render(block.text, plain=True).upper()
                sections.append(name)
                self.emit('.SH "%s"' % escape(name).replace('"', "\\(dq"))
                if name == "DESCRIPTION":
                    for part in intro:
                        self.block(part)
                    intro = []
            else:
                self.block(block)
        missing = [name for name in REQUIRED_SECTIONS if name not in sections]
        if missing:
            raise DocError("%s: no '## %s' section, which a man page needs" % (self.page.path, missing[0].title()))
        if intro:
            raise DocError("%s: text before the first section needs a '## Description' to go to" % self.page.path)
        return "\n".join(self.head() + self.out) + "\n"

    def head(self):
        head = ["'\\\" t"] if self.uses_tbl else []
        head.append('.\\" Generated by docs/man/mkman.py from docs/%s: edit that file, not this one.'
                    % os.path.basename(self.page.path))
        source = ("Portcullis " + self.version).strip()
        head.append('.TH "%s" "%s" "%s" "%s" "Portcullis Manual"'
                    % (self.page.name.upper(), self.page.section, self.date, source))
        # Ragged right and no hyphenation, as DocBook's pages have them: no
        # line needs stretching around a long word, and code stays whole.
        head.extend([".ad l", ".nh", ".SH NAME"])
        head.append("%s \\- %s" % (escape(self.page.name, True), escape(self.page.summary)))
        return head

    def emit(self, *lines):
        self.out.extend(lines)

    def block(self, block):
        if block.kind == "heading":
            if block.level == 1:
                return
            text = self.inline.render(block.text, plain=True)
            self.emit('.SS "%s"' % escape(text, code="`" in block.text).replace('"', "\\(dq"))
        elif block.kind == "paragraph":
            self.emit(".PP", line_safe(self.inline.render(block.text)))
        elif block.kind == "code":
            self.emit(".PP", ".RS 4", ".nf")
            for line in block.lines:
                self.emit(line_safe(escape(line.expandtabs(4), code=True)))
            self.emit(".fi", ".RE")
        elif block.kind == "list":
            for marker, text in block.items:
                self.emit(".IP %s 4" % marker if marker[0].isdigit() else ".IP \\(bu 2")
                self.emit(line_safe(self.inline.render(text)))
        elif block.kind == "table":
            self.table(block.header, block.rows)

    def table(self, header, rows):
        plain = [[self.inline.render(cell, plain=True) for cell in row] for row in [header] + rows]
        widths = [max(len(row[i]) for row in plain) for i in range(len(header))]
        last = TEXT_WIDTH - sum(widths[:-1]) - COLUMN_GAP * (len(header) - 1)
        longest_word = max(len(word) for row in plain for word in row[-1].split() or [""])
        if len(header) > 1 and last >= MIN_LAST_COLUMN and longest_word <= last:
            self.uses_tbl = True
            self.tbl(header, rows, sum(len(row[-1]) // last + 2 for row in plain))
        else:
            self.tagged_list(header, rows)

    def tbl(self, header, rows, height):
        columns = len(header)
        # groff's man macros render a terminal page as one long page that
        # .ne lengthens; without it, tbl warns about a text block near the
        # current end of that page.
        self.emit(".PP", ".ne %d" % height, ".TS", "tab(\t);",
                  " ".join(["lB"] * columns),
                  " ".join(["l"] * (columns - 1) + ["lx"]) + ".")
        self.emit("\t".join(cell_safe(self.inline.render(cell)) for cell in header))
        self.emit("_")
        for row in rows:
            lead = [cell_safe(self.inline.render(cell)) for cell in row[:-1]]
            self.emit("\t".join(lead + ["T{"]), line_safe(self.inline.render(row[-1])), "T}")
        self.emit(".TE")

    def tagged_list(self, header, rows):
        for row in rows:
            self.emit(".TP", line_safe(self.inline.render(row[0])))
            if len(row) == 2:
                self.emit(line_safe(self.inline.render(row[1])))
                continue
            filled = [(header[index], cell) for index, cell in enumerate(row) if index > 0 and cell]
            for number, (label, cell) in enumerate(filled):
                if number > 0:
                    self.emit(".br")
                label = self.inline.render(label, plain=True)
                self.emit(line_safe("\\fI%s:\\fR %s" % (escape(label), self.inline.render(cell))))


def page_date(paths, given):
    if given:
        return given
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = int(epoch) if epoch else max(int(os.path.getmtime(path)) for path in paths)
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d")


def translate(path, text, pages, version="", date=""):
    """The man page of the document at PATH, whose text is TEXT; PAGES
    maps each document's file name to its Page."""
    page = pages[os.path.basename(path)]
    return Translator(page, pages, version, date).translate(parse(path, text))


def main(argv):
    parser = argparse.ArgumentParser(description="Turn the Markdown reference into man pages.")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--version", default="")
    parser.add_argument("--date", default="")
    parser.add_argument("documents", nargs="+")
    args = parser.parse_args(argv)
    try:
        texts = {}
        pages = {}
        for path in args.documents:
            with open(path, encoding="utf-8") as source:
                texts[path] = source.read()
            pages[os.path.basename(path)] = read_meta(path, texts[path])
        date = page_date(args.documents, args.date)
        os.makedirs(args.out_dir, exist_ok=True)
        for path in args.documents:
            roff = translate(path, texts[path], pages, args.version, date)
            target = os.path.join(args.out_dir, pages[os.path.basename(path)].file_name)
            with open(target + ".tmp", "w", encoding="ascii") as out:
                out.write(roff)
            os.replace(target + ".tmp", target)
    except (DocError, OSError, UnicodeError) as error:
        print("mkman.py: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
