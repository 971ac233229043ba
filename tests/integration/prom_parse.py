#!/usr/bin/python3
# Parse a Prometheus text exposition from stdin with the reference Python client's parser
# (Debian's python3-prometheus-client) and print what it understood as JSON:
#   {"families": [{"name", "type", "samples": [{"name", "labels", "value"}]}]}
# Exits 2 with the parser's message when the text is not valid.
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    families = []
    for f in text_string_to_metric_families(sys.stdin.read()):
        families.append({
            "name": f.name,
            "type": f.type,
            "samples": [{"name": s.name, "labels": s.labels,
                         "value": s.value if math.isfinite(s.value) else str(s.value)}
                        for s in f.samples],
        })
except Exception as e:  # the parser raises ValueError and others on bad input
    print("prometheus parser: %s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(2)
json.dump({"families": families}, sys.stdout)
