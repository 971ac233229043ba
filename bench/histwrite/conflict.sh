#!/usr/bin/env bash
# What the conflict check costs the history's batch INSERT: 2,000 complete rows a statement
# (a batch of the writer at 15,000 runs/s), into today's partition of the schema pgcrond
# installs, as a plain INSERT (a batch of lines never sent before) and with the writer's
# ON CONFLICT (instance, run_key, start_time) DO UPDATE ... (a replay). Prints the server's
# wall time per row for each, alternating, over CONFLICT_ROUNDS (3) rounds of 40 statements.
#
#   scripts/pg-sandbox run -- bench/histwrite/conflict.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sql=$here/../../sql
export PATH=/usr/lib/postgresql/15/bin:$PATH
cat /proc/loadavg
psql -q -c "DROP DATABASE IF EXISTS bench_conflict" postgres
psql -q -c "CREATE DATABASE bench_conflict" postgres
for f in $(ls "$sql"/pgcrond--*.sql | sort -t- -k3 -n); do
	psql -q -v ON_ERROR_STOP=1 -f "$f" bench_conflict >/dev/null
done
cols="jobid, database, username, command, status, return_message, start_time, end_time,
      job_name, trigger, scheduled_time, attempt, duration_ms, sqlstate, instance, run_key,
      boot_id, graph_run, job_pid"
rows="SELECT NULL, 'bench', 'u', 'INSERT INTO ticks VALUES (statement_timestamp())',
      'succeeded', 'INSERT 0 1', now(), now(), 'j' || (g % 15000), 'schedule', now(), 1, 1.0,
      NULL, 'bench0', \$1 || ':' || g, 'boot', NULL, 1234 FROM generate_series(1, 2000) g"
conflict="ON CONFLICT (instance, run_key, start_time) DO UPDATE
      SET status = EXCLUDED.status, return_message = EXCLUDED.return_message,
      sqlstate = EXCLUDED.sqlstate, end_time = EXCLUDED.end_time,
      duration_ms = EXCLUDED.duration_ms, job_pid = coalesce(EXCLUDED.job_pid, d.job_pid)
      WHERE EXCLUDED.status <> 'running' AND d.status = 'running'"
for r in $(seq "${CONFLICT_ROUNDS:-3}"); do
	for kind in plain conflict; do
		{
			echo "SET synchronous_commit = off;"
			echo "PREPARE ins(text) AS INSERT INTO pgcrond.job_run_details AS d ($cols) $rows"
			[ "$kind" = conflict ] && echo "$conflict"
			echo ";"
			echo "SELECT clock_timestamp() AS t0 \\gset"
			for k in $(seq 40); do echo "EXECUTE ins('$r:$k:$kind');"; done
			echo "SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)"
			echo "             * 1e6 / 80000, 2);"
		} | psql -Atq -v ON_ERROR_STOP=1 bench_conflict | tail -1 |
			awk -v k="$kind" -v r="$r" '{printf "round %d %-8s %s us a row\n", r, k, $1}'
	done
done
