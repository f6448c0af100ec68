#!/bin/sh
# System calls per one-segment 4 KiB swap-in, by API shape: runs
# bench/req-syscalls under `strace -c -f` against a fresh kvswapd and
# prints calls per request (the run with N requests less the run with 0).
#
#   BUILD=build bench/syscalls.sh [N]
#   BASE=/path/to/req-syscalls-v1 bench/syscalls.sh   also times an older
#       libkvswap's v1 path (req-syscalls built -DV1_ONLY against it)
set -eu

BUILD=${BUILD:-build}
N=${1:-5000}
BIN=$BUILD/bench/req-syscalls
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/kvswap-syscalls.XXXXXX")
sock=$dir/kvswapd.sock
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM

command -v strace >/dev/null || { echo "syscalls: needs strace" >&2; exit 1; }
"$BUILD/kvswapd" --socket "$sock" --store "$dir/store0.kvs" --store-size 256M \
	--durability cache >"$dir/log" 2>&1 &
pid=$!
i=0
until [ -S "$sock" ] && "$BUILD/kvswapctl" --socket "$sock" stat >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$dir/log"; exit 1; }
	sleep 0.1
done
"$BIN" "$sock" put "$N"

# calls BIN MODE N DEPTH: "total=T name=count ..." of one run.
calls() {
	strace -c -f -o "$dir/trace" "$1" "$sock" "$2" "$3" "$4" >/dev/null
	# Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
	awk '$NF == "total" { t = $4 }
	     $NF ~ /^(sendmsg|sendmmsg|recvmsg|recvmmsg|poll)$/ { c = c " " $NF "=" $4 }
	     END { print "total=" t c }' "$dir/trace"
}

row() {	# row LABEL BIN MODE DEPTH
	full=$(calls "$2" "$3" "$N" "$4")
	zero=$(calls "$2" "$3" 0 "$4")
	awk -v n="$N" -v l="$1" -v d="$4" -v full="$full" -v zero="$zero" 'BEGIN {
		m = split(zero, z, " "); for (i = 1; i <= m; i++) { split(z[i], kv, "="); base[kv[1]] = kv[2] }
		m = split(full, f, " "); split(f[1], kv, "=")
		printf "%-26s depth %2d  %5.2f calls/request:", l, d, (kv[2] - base["total"]) / n
		for (i = 2; i <= m; i++) { split(f[i], kv, "="); printf " %s %.2f", kv[1], (kv[2] - base[kv[1]]) / n }
		print "" }'
}

for depth in 1 32; do
	[ -n "${BASE:-}" ] && row "before: v1 swap_in" "$BASE" v1 $depth
	row "v1 swap_in" "$BIN" v1 $depth
	row "swap_in_batch, 1 segment" "$BIN" batch $depth
	row "swap_in_batch, corked" "$BIN" corked $depth
done
