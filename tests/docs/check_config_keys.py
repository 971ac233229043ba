#!/usr/bin/env python3
"""check_config_keys: docs/configuration.md and pgcrond.conf(5) document exactly the keys the
configuration loader accepts.

  check_config_keys.py CONFIG_KEYS [ROOT]

CONFIG_KEYS is the program built from tests/docs/config_keys.c, which prints the loader's
own tables, "SECTION KEY" a line; ROOT the source tree (default: two folders above this
file). Prints each difference as FILE:LINE: what is wrong, and exits 1 when there is one:
a key of the tables that a document lacks, or a key a document gives that no table has.

Where each document gives a section's keys:

- docs/configuration.md: in a table whose first column is "key", each row's key the first
  code span of its first cell (`timezone`). The table belongs to the heading above it,
  named in SECTIONS below. A key table under a heading SECTIONS does not name is a problem
  too, so that no table goes unchecked.
- packaging/man/pgcrond.conf.5.scd: a line that begins (after its tabs) with "*key* = "
  defines each "*key* = " on it. Under "# DAEMON SETTINGS" a line without a tab is a key of
  the main file, under "# JOBS" a key of a job; one tab in, a key of the group the last
  line without a tab defined (databases, history, alerts, http, http_client; a job's http).
"""
import os
import re
import subprocess
import sys

# configuration.md's headings and the section of the key tables under each.
SECTIONS = {
    "The main file": "main",
    "databases": "databases",
    "history": "history",
    "http_client": "http_client",
    "calendars": "calendars",
    "alerts": "alerts",
    "http": "http",
    "Job keys": "job",
    "A job's http": "job.http",
}
MAN_TOP = {"DAEMON SETTINGS": "main", "JOBS": "job"}

heading_re = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*$")
man_def_re = re.compile(r"^(\t*)\*([a-z_]+)\* = ")
man_key_re = re.compile(r"\*([a-z_]+)\* = ")


def table_keys(program):
    out = subprocess.run([program], stdout=subprocess.PIPE, universal_newlines=True)
    if out.returncode != 0:
        sys.exit("check_config_keys: %s failed (exit %d)" % (program, out.returncode))
    keys = set()
    for line in out.stdout.splitlines():
        section, key = line.split()
        keys.add((section, key))
    return keys


def markdown_keys(root, path, problems):
    """{(section, key): line} of the key tables of configuration.md (PATH, under ROOT)."""
    found = {}
    section = heading = None
    in_table = False
    fence = False
    with open(os.path.join(root, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        m = heading_re.match(line)
        if m:
            heading = re.sub(r"`", "", m.group(1))
            section = SECTIONS.get(heading)
            in_table = False
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:  # a table's header row
            in_table = True
            is_key_table = cells[0] == "key"
            if is_key_table and section is None:
                problems.append("%s:%d: a table of keys under \"%s\", a heading "
                                "tests/docs/check_config_keys.py does not know; add it to "
                                "its SECTIONS" % (path, n, heading))
            continue
        if not is_key_table or section is None or re.match(r"^:?-+:?$", cells[0]):
            continue
        m = re.match(r"`([a-z_]+)`", cells[0])
        if not m:
            problems.append("%s:%d: a row of a key table without a `key` first" % (path, n))
            continue
        if (section, m.group(1)) in found:
            problems.append("%s:%d: %s is in the table of %s twice" % (path, n, m.group(1),
                                                                        section))
        found[(section, m.group(1))] = n
    return found


def man_keys(root, path):
    """{(section, key): line} of the definitions in pgcrond.conf(5)'s scdoc source (PATH)."""
    found = {}
    top = parent = None
    fence = False
    with open(os.path.join(root, path), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if line.startswith("# "):
            top = MAN_TOP.get(line[2:].strip())
            parent = None
            continue
        m = man_def_re.match(line)
        if not top or not m:
            continue
        depth = len(m.group(1))
        keys = man_key_re.findall(line)
        if depth == 0:
            parent = keys[-1]
            section = top
        elif depth == 1 and parent:
            section = parent if top == "main" else "%s.%s" % (top, parent)
        else:
            continue
        for k in keys:
            found.setdefault((section, k), n)
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: check_config_keys.py CONFIG_KEYS [ROOT]")
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    root = os.path.abspath(root)
    md = "docs/configuration.md"
    man = "packaging/man/pgcrond.conf.5.scd"
    keys = table_keys(sys.argv[1])
    problems = []
    for path, found in ((md, markdown_keys(root, md, problems)), (man, man_keys(root, man))):
        for section, key in sorted(keys - set(found)):
            problems.append("%s: the %s key %s has no %s" % (
                path, "main file's" if section == "main" else section, key,
                "row in the table of its section" if path == md else "entry"))
        for (section, key), n in sorted(found.items(), key=lambda kv: kv[1]):
            if (section, key) not in keys:
                problems.append("%s:%d: %s key %s is documented, but the loader has no "
                                "such key" % (path, n, section, key))
    for p in problems:
        print(p)
    if problems:
        print("check_config_keys: %d difference(s) between the loader's keys and the docs "
              "(rules: tests/docs/check_config_keys.py)" % len(problems), file=sys.stderr)
        return 1
    print("check_config_keys: %d keys, each in docs/configuration.md and pgcrond.conf(5)" %
          len(keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
