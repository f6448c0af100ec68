#!/bin/sh
# bench/compare.sh OLD_BUILD NEW_BUILD: the same kvswapctl bench cases
# against two builds of kvswapd (each with its own kvswapctl), in one run,
# alternating old and new REPS times per case on the same store file, so a
# noisy shared machine affects both alike. Prints a table of medians and
# the ratio new/old. For "did this change make anything slower".
#
# Environment: COMPARE_SIZES ("64K 1M"), COMPARE_CLIENTS ("1 8"),
# COMPARE_OPS ("in out"), COMPARE_REPS (3), COMPARE_DURATION seconds (3),
# COMPARE_DEPTH (8), COMPARE_DIR (build/compare), COMPARE_STORE_SIZE (4G).
set -eu

[ $# -eq 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD" >&2; exit 2; }
OLD=$1
NEW=$2
SIZES=${COMPARE_SIZES:-"64K 1M"}
CLIENTS=${COMPARE_CLIENTS:-"1 8"}
OPS=${COMPARE_OPS:-"in out"}
REPS=${COMPARE_REPS:-3}
DURATION=${COMPARE_DURATION:-3}
DEPTH=${COMPARE_DEPTH:-8}
DIR=${COMPARE_DIR:-build/compare}
STORE_SIZE=${COMPARE_STORE_SIZE:-4G}

for b in "$OLD" "$NEW"; do
	[ -x "$b/kvswapd" ] && [ -x "$b/kvswapctl" ] ||
		{ echo "compare: $b/kvswapd or $b/kvswapctl missing" >&2; exit 1; }
done
mkdir -p "$DIR"
RAW=$DIR/raw
rm -rf "$RAW"
mkdir -p "$RAW"
STORE=$DIR/store0.kvs
SOCK=$DIR/kvswapd.sock

start() { # build
	rm -f "$SOCK"
	"$1/kvswapd" --socket "$SOCK" --store "$STORE" --store-size "$STORE_SIZE" \
		>>"$DIR/kvswapd.log" 2>&1 &
	DPID=$!
	i=0
	while [ ! -S "$SOCK" ]; do
		kill -0 $DPID 2>/dev/null || { echo "compare: kvswapd exited; see $DIR/kvswapd.log" >&2; exit 1; }
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "compare: kvswapd did not start" >&2; exit 1; }
		sleep 0.1
	done
}

stop() {
	kill -TERM $DPID
	wait $DPID || true
}

for size in $SIZES; do
	for op in $OPS; do
		for c in $CLIENTS; do
			r=1
			while [ $r -le "$REPS" ]; do
				for which in old new; do
					[ $which = old ] && b=$OLD || b=$NEW
					start "$b"
					"$b/kvswapctl" --socket "$SOCK" bench --op "$op" \
						--segment-size "$size" --clients "$c" \
						--depth "$DEPTH" --duration "$DURATION" \
						--working-set 1G --mode cache --json \
						>"$RAW/$which-$op-$size-$c-$r.json" || true
					stop
				done
				r=$((r + 1))
			done
		done
	done
done

# Median bytes/s and daemon CPU per GiB of each case, both builds.
perl -MJSON::PP -e '
	my $dir = shift;
	my %v;
	for my $f (glob "$dir/*.json") {
		my ($w, $op, $size, $c) = $f =~ m{/(old|new)-(\w+)-(\w+)-(\d+)-\d+\.json$} or next;
		open my $fh, "<", $f or next;
		local $/;
		my $j = eval { decode_json(<$fh>) } or next;
		push @{$v{"$op $size ${c}c"}{$w}{bps}}, $j->{throughput_bytes_per_s} // 0;
		push @{$v{"$op $size ${c}c"}{$w}{cpu}}, $j->{daemon_cpu_ms_per_gib} // 0;
	}
	sub med { my @s = sort { $a <=> $b } @_; @s ? $s[$#s / 2] : 0 }
	printf "%-14s %12s %12s %7s %10s %10s\n", "case", "old MB/s", "new MB/s",
		"new/old", "old ms/GiB", "new ms/GiB";
	for my $k (sort keys %v) {
		my ($o, $n) = (med(@{$v{$k}{old}{bps}}), med(@{$v{$k}{new}{bps}}));
		printf "%-14s %12.0f %12.0f %7.3f %10.1f %10.1f\n", $k, $o / 1e6, $n / 1e6,
			$o ? $n / $o : 0, med(@{$v{$k}{old}{cpu}}), med(@{$v{$k}{new}{cpu}});
	}
' "$RAW" | tee "$DIR/report.txt"
