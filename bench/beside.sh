#!/bin/bash
# This tree's Release build beside another build, on the figures that compare them: bench_fire at
# 100 and 1,000 jobs and with three instances (abab.sh), bench_fire at 15,000 jobs,
# bench_scale at 100,000 jobs (start, reload, RSS) and 100 per-minute jobs over TCP
# (bench_side). Each figure is printed by its bench; this script only runs them in turn, A
# (this tree) then B (the other build), with the load average before each. About 25 minutes.
#   bench/beside.sh /path/to/other/build/rel/core/pgcrond
# Prints; never fails on time.
set -u
other=${1:?usage: beside.sh OTHER_PGCROND}
here=$(cd "$(dirname "$0")/.." && pwd)
rel=$here/build/rel
[ -x "$other" ] || { echo "beside.sh: $other is not an executable pgcrond" >&2; exit 2; }
cmake --build "$rel" -j2 --target pgcrond bench_fire bench_scale bench_side >/dev/null ||
	{ echo "beside.sh: build $rel first (docs/benchmarks.md)" >&2; exit 2; }
cd "$here"
side() { # A|B: BENCH_PGCROND for that side
	if [ "$1" = A ]; then unset BENCH_PGCROND; else export BENCH_PGCROND=$other; fi
	echo "=== $1: ${BENCH_PGCROND:-this tree}"
	uptime
}
echo "##### bench_fire 100 1000, three instances: abab.sh"
scripts/pg-sandbox run -- bench/fire/abab.sh "$other" 2
echo "##### bench_fire 15000"
for s in A B; do
	side $s
	FIRE_WINDOWS=3 scripts/pg-sandbox run -- "$rel/bench/fire/bench_fire" 15000
done
echo "##### bench_scale 100000"
for round in 1 2; do
	for s in A B; do
		side $s
		SCALE_RUNS=1 SCALE_RELOADS=3 scripts/pg-sandbox run -- "$rel/bench/scale/bench_scale" 100000
	done
done
echo "##### bench_side: 100 per-minute jobs over TCP"
for s in A B; do
	side $s
	SIDE_MINUTES=5 SIDE_PHASES=tcp SIDE_LOG_LEVEL=info "$rel/bench/side/bench_side"
done
uptime
