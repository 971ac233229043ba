#!/usr/bin/env bash
# CPU ticks (1/100 s) each role used over SECONDS (default 5) in the newest pg-sandbox
# beside a running bench: the pool's backends ("pgcrond" or "pgcrond: JOB"), the history's,
# the cluster's, the WAL writer and the daemon itself (DAEMON). Divide by the runs in that
# time for a per-run figure, e.g. 14 s into
#   FIRE_WINDOWS=2 scripts/pg-sandbox run -- build/rel/bench/fire/bench_fire 1000 &
#   sleep 7; bench/session/cpu_by_role.sh 5      # 5,000 runs in 5 s
set -euo pipefail
export PATH=/usr/lib/postgresql/15/bin:$PATH
sock=$(ls -dt /tmp/pg-sandbox.*/sock | head -1)
port=$(ls -a "$sock" | grep -o '[0-9][0-9]*' | head -1)
roles() {
	psql -Atq -F'|' "host=$sock port=$port user=postgres dbname=postgres" -c \
		"SELECT pid, coalesce(nullif(application_name, ''), backend_type) FROM pg_stat_activity"
	for p in $(pgrep -x pgcrond); do echo "$p|DAEMON"; done
}
snap() {
	for p in $(echo "$1" | cut -d'|' -f1); do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		r=${s##*) }
		set -- $r
		echo "$p $((${12} + ${13}))"
	done | sort
}
names=$(roles)
a=$(snap "$names")
sleep "${1:-5}"
b=$(snap "$names")
join <(echo "$a") <(echo "$b") | while read -r pid t0 t1; do
	role=$(echo "$names" | awk -F'|' -v p="$pid" '$1 == p {print $2}' | cut -d' ' -f1-2)
	case "$role" in "pgcrond: "* | pgcrond) role="pool" ;; pgcrond\ cluster*) role="pgcrond cluster" ;; esac
	echo "$((t1 - t0))|$role"
done | awk -F'|' '{t[$2] += $1} END {for (r in t) printf "%6d  %s\n", t[r], r}' | sort -rn
