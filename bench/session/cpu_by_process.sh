#!/usr/bin/env bash
# Where the CPU goes while a benchmark runs: the CPU (% of one core) each process of the
# sandbox user used over SECONDS (default 5), the PostgreSQL backends named by their
# application_name (pgcrond's pool: "pgcrond" or "pgcrond: JOB"; pgcrond's own session of
# a database, the history's and the cluster's statements and the LISTENs: "pgcrond" too)
# and the statement they last ran. Run it as root beside
# bench_fire, e.g. 14 s after it started:
#
#   scripts/pg-sandbox run -- build/dev/bench/fire/bench_fire 15000 &
#   sleep 14; bench/session/cpu_by_process.sh
set -euo pipefail
user=${PGSANDBOX_USER:-pgsandbox}
secs=${1:-5}
snap() {
	for p in $(pgrep -u "$user"); do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		r=${s##*) }
		set -- $r
		echo "$p $((${12} + ${13}))"
	done | sort
}
a=$(snap)
sleep "$secs"
b=$(snap)
export PATH=/usr/lib/postgresql/15/bin:$PATH
names=$(for s in /tmp/pg-sandbox.*/sock; do
	[ -d "$s" ] || continue
	port=$(ls -a "$s" | grep -o '[0-9][0-9]*' | head -1)
	psql -Atq -F' ' "host=$s port=$port user=postgres dbname=postgres" -c \
		"SELECT pid, coalesce(nullif(application_name, ''), backend_type),
		        left(regexp_replace(query, '\s+', ' ', 'g'), 40) FROM pg_stat_activity" 2>/dev/null
done)
hz=$(getconf CLK_TCK)
join <(echo "$a") <(echo "$b") | while read -r pid t0 t1; do
	d=$((t1 - t0))
	[ "$d" -gt 0 ] || continue
	comm=$(cat "/proc/$pid/comm" 2>/dev/null || echo "?")
	what=$(echo "$names" | awk -v p="$pid" '$1 == p {$1 = ""; print; exit}')
	awk -v d="$d" -v hz="$hz" -v s="$secs" -v pid="$pid" -v c="$comm" -v w="$what" \
		'BEGIN {printf "%5.1f %% %7s %-9s %s\n", 100 * d / hz / s, pid, c, w}'
done | sort -rn
