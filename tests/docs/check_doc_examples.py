#!/usr/bin/env python3
"""Runs the `$ pgcrond next ...` examples of a docs page and compares their output with the
lines under them (up to the next `$` line or the end of the block).

Usage: check_doc_examples.py PGCROND PAGE.md"""
import re
import shlex
import subprocess
import sys


def main():
    pgcrond, page = sys.argv[1], sys.argv[2]
    text = open(page, encoding="utf-8").read()
    bad = 0
    n = 0
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ pgcrond next "):
                i += 1
                continue
            args = shlex.split(lines[i][2:])[1:]
            want = []
            i += 1
            while i < len(lines) and not lines[i].startswith("$ "):
                want.append(lines[i])
                i += 1
            p = subprocess.run([pgcrond] + args, capture_output=True, text=True, timeout=60)
            got = (p.stdout + p.stderr).splitlines()
            n += 1
            if got != want:
                bad += 1
                print("%s: pgcrond %s\n  printed %r\n  the page says %r" %
                      (page, " ".join(args), got, want))
    if n == 0:
        print("%s: no examples found" % page)
        return 1
    print("%d examples, %d differ" % (n, bad))
    return 1 if bad else 0


sys.exit(main())
