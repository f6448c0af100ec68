#!/bin/sh
# bench/fair.sh OLD_BUILD NEW_BUILD: issue 10's fairness load against two
# builds of kvswapd, alternating old and new REPS times in one run so a
# noisy shared machine affects both alike. Each run is tests/test-fair
# (from NEW_BUILD) with its daemon taken from the build under test: four
# hog connections, another tenant (run as root: a useradd'ed user), each
# queue FAIR_SWAPINS swap-ins of a 64 MiB entry; meanwhile a victim
# connection does 4 KiB put+get round trips. Prints each run's victim
# p50/p99/max alone and under load, and the hogs' throughput.
#
# Environment: FAIR_SWAPINS (256, the load), FAIR_ROUNDS (200),
# FAIR_REPS (2).
set -eu

[ $# -eq 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD" >&2; exit 2; }
OLD=$1
NEW=$2
REPS=${FAIR_REPS:-2}
for b in "$OLD" "$NEW"; do
	[ -x "$b/kvswapd" ] || { echo "fair: $b/kvswapd missing" >&2; exit 1; }
done
[ -x "$NEW/tests/test-fair" ] ||
	{ echo "fair: $NEW/tests/test-fair missing: make tests" >&2; exit 1; }

r=1
while [ "$r" -le "$REPS" ]; do
	for which in old new; do
		if [ $which = old ]; then b=$OLD; else b=$NEW; fi
		echo "== $which ($b/kvswapd), run $r"
		KVSWAPD=$b/kvswapd KVSWAP_FAIR_ONLY_OTHER=1 \
		KVSWAP_FAIR_SWAPINS=${FAIR_SWAPINS:-256} \
		KVSWAP_FAIR_ROUNDS=${FAIR_ROUNDS:-200} \
			"$NEW/tests/test-fair" | grep -E '^# .*(victim|hogs|took)|^not ok'
	done
	r=$((r + 1))
done
