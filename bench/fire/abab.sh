#!/bin/bash
# Two builds side by side: bench_fire rounds alternating this tree's daemon (A) and another
# build's (B), in one sandbox, so that both meet the same machine and server.
#   scripts/pg-sandbox run -- bench/fire/abab.sh /path/to/other/build/core/pgcrond [ROUNDS]
# Runs per round: bench_fire 100 1000, then FIRE_INSTANCES=3 bench_fire 100 (FIRE_WINDOWS=3).
# Prints; never fails on time.
set -u
other=${1:?usage: abab.sh OTHER_PGCROND [ROUNDS]}
rounds=${2:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
fire=${BENCH_FIRE:-$here/build/rel/bench/fire/bench_fire}
[ -x "$other" ] || { echo "abab.sh: $other is not an executable pgcrond" >&2; exit 2; }
[ -x "$fire" ] || { echo "abab.sh: build $fire first (cmake --build build/rel)" >&2; exit 2; }
for round in $(seq "$rounds"); do
	for side in A B; do
		if [ $side = A ]; then unset BENCH_PGCROND; label="this tree"; else export BENCH_PGCROND=$other; label=$other; fi
		echo "=== round $round, $side: $label"
		uptime
		FIRE_WINDOWS=3 "$fire" 100 1000
		FIRE_WINDOWS=3 FIRE_INSTANCES=3 "$fire" 100
	done
done
