#!/usr/bin/env python3
"""check_doc_links: the links of the user documentation resolve, and the files it names exist.

  check_doc_links.py [ROOT]      ROOT: the source tree (default: two folders above this file)
  check_doc_links.py --self-test the rules below on a small tree of its own, good and bad

Prints every problem as FILE:LINE: what is wrong, and exits 1 when there is one.

What is read: README.md and every *.md in the tree's folders (docs/, sql/demo/, tests/fuzz/
...), except hidden folders and build trees (build/, build-*/, Testing/, any folder holding a
CMakeCache.txt). Fenced code blocks (``` or ~~~) and HTML comments are not read: what they
hold is an example (a message, a command line), not a reference.

The rules, for the rest of the text:

1. A link, [text](TARGET), ![alt](TARGET), a reference definition "[name]: TARGET", or an
   HTML href="TARGET" / src="TARGET", whose TARGET has no scheme (https:, mailto:) is a path
   relative to the file that holds it, and that file or folder must exist in the tree. A
   "#anchor" on it (or alone: the same file) must be the GitHub slug of a heading of that
   Markdown file: the heading's text without its markup, in lower case, every character that
   is not a letter, digit, "_", "-" or space dropped, each space made a "-"; a slug seen
   before in the file gets "-1", "-2" ... in order. Only ATX headings ("## Title") count:
   the docs use no other kind.
2. A file named in the text, in a code span or not, must exist. The text is cut into words
   at spaces, at ( ) [ ] { } , ; : = | ` and at quotes, once URLs (scheme://...) are taken
   out; a word's trailing "." is not part of it. A word names a file of the project when
   a. it is a top-level folder of the tree, "/" and more (core/..., docs/..., scripts/...,
      sql/..., tests/..., plugins/..., bench/..., packaging/...): that path must exist, as a
      file or a folder. conf.d/ is left out: the docs use it for the user's own folder too
      ("conf.d/20-x.conf:7: ..." in a message); or
   b. it ends in .md, .c, .h, .sql, .py, .sh or .scd: it must be a file's whole path in the
      tree or its last components ("sched/sched_state.c" is core/src/sched/sched_state.c;
      "DESIGN.md" needs a DESIGN.md in some folder).
   Not checked: absolute paths and ~ paths (installed files, the user's home), words with a
   placeholder (<name>, *, $VAR, "...", or a component such as NAME, X, N, PID, FILE, DIR,
   SUITE, BUILD, HASH between . _ - /), and the files of other projects that the docs name
   on purpose (EXTERNAL below).
"""
import os
import re
import sys
import tempfile

# Files of other projects the docs name, which rule 2 would take for this tree's.
EXTERNAL = {
    "sql/pg_net.sql",  # supabase/pg_net's, whose signatures sql/pg_net_compat.sql follows
    "jansson.h",  # the JSON library's header
}
# Components that stand for a name the reader fills in.
PLACEHOLDERS = {"X", "Y", "K", "N", "P", "NAME", "PID", "FILE", "LINE", "DIR", "SUITE", "SHARD",
                "BUILD", "HASH", "XXXXXX", "ID"}
EXTENSIONS = (".md", ".c", ".h", ".sql", ".py", ".sh", ".scd")
NOT_TREE_DIRS = {"conf.d"}

fence_re = re.compile(r"^\s{0,3}(```|~~~)")
heading_re = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$")
code_span_re = re.compile(r"(`+)(.+?)\1")
link_re = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
refdef_re = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
href_re = re.compile(r"\b(?:href|src)=\"([^\"]*)\"")
url_re = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S*")
scheme_re = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
word_split_re = re.compile(r"[\s()\[\]{},;:=|`\"']+")


def skip_dir(path, name):
    return (name.startswith(".") or name == "build" or name.startswith("build-") or
            name == "Testing" or os.path.exists(os.path.join(path, "CMakeCache.txt")))


def lines_of(path):
    """(line number, text) of each line outside fenced code blocks and HTML comments."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = fence_re.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading):
    """GitHub's anchor of a heading: its text as rendered (code spans, links and tags gone)."""
    t = code_span_re.sub(lambda m: m.group(2), heading)
    t = link_re.sub(lambda m: m.group(1), t)
    t = re.sub(r"<[^>]+>", "", t).strip().lower()
    return re.sub(r"[^\w\- ]", "", t).replace(" ", "-")


def placeholder(word):
    if any(c in word for c in "<>*$") or "..." in word:
        return True
    return any(p in PLACEHOLDERS for p in re.split(r"[._/-]", word))


class Tree:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.files = []
        for d, dirs, names in os.walk(self.root):
            dirs[:] = sorted(n for n in dirs if not skip_dir(os.path.join(d, n), n))
            for n in sorted(names):
                self.files.append(os.path.relpath(os.path.join(d, n), self.root))
        self.suffixes = set()
        for f in self.files:
            parts = f.split(os.sep)
            for i in range(len(parts)):
                self.suffixes.add("/".join(parts[i:]))
        self.top_dirs = {n for n in os.listdir(self.root)
                         if os.path.isdir(os.path.join(self.root, n)) and
                         not skip_dir(os.path.join(self.root, n), n) and n not in NOT_TREE_DIRS}
        self.slugs = {}
        self.problems = []

    def anchors(self, rel):
        """The GitHub anchors of the headings of Markdown file REL."""
        if rel not in self.slugs:
            seen, out = {}, set()
            for _, line in lines_of(os.path.join(self.root, rel)):
                m = heading_re.match(line)
                if not m:
                    continue
                s = slug(m.group(1))
                if s in seen:
                    seen[s] += 1
                    out.add("%s-%d" % (s, seen[s]))
                else:
                    seen[s] = 0
                    out.add(s)
            self.slugs[rel] = out
        return self.slugs[rel]

    def problem(self, md, n, text):
        self.problems.append("%s:%d: %s" % (md, n, text))

    def check_link(self, md, n, target):
        if not target or scheme_re.match(target) or target.startswith("//"):
            return
        path, _, anchor = target.partition("#")
        rel = md
        if path:
            full = os.path.normpath(os.path.join(self.root, os.path.dirname(md), path))
            rel = os.path.relpath(full, self.root)
            if rel.startswith("..") or not os.path.exists(full):
                self.problem(md, n, "link to %s: no such file in the tree" % path)
                return
        if anchor and not rel.endswith(".md"):
            self.problem(md, n, "link to %s: an anchor on a file that is not Markdown" % target)
        elif anchor and anchor not in self.anchors(rel):
            self.problem(md, n, "link to %s: no heading of %s has the anchor #%s" %
                         (target, rel, anchor))

    def check_word(self, md, n, word):
        word = word.rstrip(".")
        if not word or word.startswith(("/", "~")) or placeholder(word) or word in EXTERNAL:
            return
        if "/" in word and word.split("/", 1)[0] in self.top_dirs:
            if not os.path.exists(os.path.join(self.root, word.rstrip("/"))):
                self.problem(md, n, "names %s, which the tree lacks" % word)
        elif word.endswith(EXTENSIONS) and word not in EXTENSIONS:
            if word.lstrip("./") not in self.suffixes:
                self.problem(md, n, "names %s, which the tree lacks" % word)

    def check_words(self, md, n, text):
        for w in word_split_re.split(url_re.sub(" ", text)):
            self.check_word(md, n, w)

    def check_file(self, md):
        for n, line in lines_of(os.path.join(self.root, md)):
            m = refdef_re.match(line)
            if m:
                self.check_link(md, n, m.group(1))
                continue
            prose = code_span_re.sub(" ", line)
            for s in code_span_re.finditer(line):
                self.check_words(md, n, s.group(2))
            for m in link_re.finditer(prose):
                self.check_link(md, n, m.group(2))
            for m in href_re.finditer(prose):
                self.check_link(md, n, m.group(1))
            text = link_re.sub(lambda m: " %s " % m.group(1), href_re.sub(" ", prose))
            self.check_words(md, n, text)

    def check(self):
        mds = [f for f in self.files if f.endswith(".md")]
        for md in mds:
            self.check_file(md)
        return mds


def self_test():
    """The rules on a tree made for them: each bad line is found, and nothing else."""
    files = {
        "README.md": [
            "# Top", "## Twice", "## Twice", "## `http_client` and (more) – here",
            "[ok](docs/a.md) [ok](docs/a.md#a-b_c) [ok](#twice-1) [ok](#http_client-and-more--here)",
            "[ok](https://example.com/x#y) ![ok](docs/pic.png) `core/src/x.c` src/x.c",
            "[bad](docs/missing.md)", "[bad](docs/a.md#nope)", "[bad](#twice-2)",
            "See DESIGN.md for it.", "`core/src/y.c`", "`X_priv.h` `<name>.c` `docs/*.md` /etc/z.c",
            "[bad][r]", "[r]: docs/gone.md", "`scripts/run --x` scripts/gone",
            "```", "[in a block](nowhere.md) DESIGN.md", "```",
        ],
        "docs/a.md": ["# A b_c", "[up](../README.md#top) [bad](../LICENSE#x)"],
        "docs/pic.png": [""],
        "core/src/x.c": [""],
        "scripts/run": [""],
        "LICENSE": [""],
    }
    want = [
        "README.md:7: link to docs/missing.md: no such file in the tree",
        "README.md:8: link to docs/a.md#nope: no heading of docs/a.md has the anchor #nope",
        "README.md:9: link to #twice-2: no heading of README.md has the anchor #twice-2",
        "README.md:10: names DESIGN.md, which the tree lacks",
        "README.md:11: names core/src/y.c, which the tree lacks",
        "README.md:14: link to docs/gone.md: no such file in the tree",
        "README.md:15: names scripts/gone, which the tree lacks",
        "docs/a.md:2: link to ../LICENSE#x: an anchor on a file that is not Markdown",
    ]
    with tempfile.TemporaryDirectory() as d:
        for name, lines in files.items():
            os.makedirs(os.path.join(d, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        t = Tree(d)
        t.check()
    got = sorted(t.problems)
    if got != sorted(want):
        print("self-test: found\n  %s\nexpected\n  %s" % ("\n  ".join(got), "\n  ".join(want)))
        return 1
    print("check_doc_links: self-test passed (%d problems found, as expected)" % len(want))
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")
    t = Tree(root)
    mds = t.check()
    for p in t.problems:
        print(p)
    if t.problems:
        print("check_doc_links: %d problem(s) with the links of the docs and the files they "
              "name (rules: tests/docs/check_doc_links.py)" % len(t.problems), file=sys.stderr)
        return 1
    print("check_doc_links: %d Markdown files, every link and every file named found" % len(mds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
