#!/usr/bin/env python3
"""The demo warns about nothing: `pgcrond check` on scripts/demo's own job file (the heredoc
that writes conf.d/10-demo.conf) with the build's plugins prints no warning and exits 0.

Usage: check_demo_jobs.py PGCROND PLUGIN_DIR DEMO_SCRIPT"""
import os
import re
import subprocess
import sys
import tempfile


def main():
    pgcrond, plugin_dir, demo = sys.argv[1:4]
    text = open(demo, encoding="utf-8").read()
    m = re.search(r"10-demo\.conf\" <<'EOF'\n(.*?)\nEOF\n", text, re.S)
    if not m:
        print("%s: no heredoc writing conf.d/10-demo.conf" % demo)
        return 1
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        os.mkdir(os.path.join(d, "conf.d"), 0o755)
        os.mkdir(os.path.join(d, "state"), 0o700)
        with open(os.path.join(d, "pgcrond.conf"), "w") as f:
            f.write('timezone = "UTC";\nplugin_dir = "%s";\nconf_dir = "conf.d";\n'
                    'state_dir = "%s/state";\n'
                    'databases = { analytics = { conninfo = "dbname=analytics"; }; };\n'
                    'history = { database = "analytics"; };\n' % (plugin_dir, d))
        with open(os.path.join(d, "conf.d", "10-demo.conf"), "w") as f:
            f.write(m.group(1) + "\n")
        for name in ("pgcrond.conf", "conf.d/10-demo.conf"):
            os.chmod(os.path.join(d, name), 0o644)
        p = subprocess.run([pgcrond, "check", "--offline", "-c", os.path.join(d, "pgcrond.conf")],
                           capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    if p.returncode != 0 or "warning" in out:
        print("pgcrond check on the demo's jobs: exit %d\n%s" % (p.returncode, out))
        return 1
    print(out, end="")
    return 0


sys.exit(main())
