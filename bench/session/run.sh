#!/usr/bin/env bash
# What the server spends on a run's session protocol, without pgcrond: pgbench with 8 clients
# (pgcrond's default pool) runs, for 6 s each, (1) the job's statement alone, (2) it and
# DISCARD ALL, (3) the statements pgcrond sends for every run (set_config of the timeout and
# application_name, the job's statement, then the reset: SET statement_timeout = 0,
# DISCARD ALL, SHOW statement_timeout). Prints runs (transactions) a second for each:
# the median and the spread over SESSION_RUNS (3) runs.
#
#   scripts/pg-sandbox run -- bench/session/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/lib/postgresql/15/bin:$PATH
cat /proc/loadavg
psql -q -c "CREATE UNLOGGED TABLE IF NOT EXISTS ticks (at timestamptz)" postgres
for s in insert_only insert_discard per_run_protocol; do
	for r in $(seq "${SESSION_RUNS:-3}"); do
		pgbench -n -f "$here/$s.sql" -c 8 -j 2 -T "${SESSION_SECONDS:-6}" postgres 2>&1 |
			awk '/^tps/ {printf "%.0f\n", $3}'
	done | sort -n | awk -v s="$s" '{v[NR] = $1}
		END {printf "%-18s %6d runs/s (%d-%d)\n", s, v[int((NR + 1) / 2)], v[1], v[NR]}'
done
