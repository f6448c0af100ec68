#!/bin/sh
# SPDX-License-Identifier: MIT
#
# kvswapctl bench, briefly: each of its shapes runs against a real kvswapd
# on a small store and says it moved bytes without an error. A smoke run,
# not a measurement (make bench measures): v1 requests, batches of entries
# of several layers (swap-in, checked byte by byte; swap-out), the prefill
# overlap through the batch API (one batch, and a batch per layer), and
# the replay of a small generated prefix-cache trace, through batches and
# with one v1 request per block, on a store small enough to evict.
#
# Prints TAP. Runs from the repository root, as `make test` does; the
# Makefile copies it to build/tests/test-bench.

set -u

case $0 in
*/tests/test-bench) build=${0%/tests/test-bench} ;;
*) build=build ;;
esac
kvswapd=${KVSWAPD:-$build/kvswapd}
kvswapctl=$build/kvswapctl

if [ ! -x "$kvswapd" ] || [ ! -x "$kvswapctl" ]; then
	echo "Bail out! $kvswapd or $kvswapctl missing: run make"
	exit 1
fi

n=0
failed=0
# The store needs O_DIRECT: under the build folder, not a tmpfs.
tmp=$(mktemp -d "$build/tests/bench.XXXXXX") || {
	echo "Bail out! mktemp under $build/tests failed"
	exit 1
}
sockdir=$(mktemp -d "${TMPDIR:-/tmp}/kvswap-bench.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
sock=$sockdir/kvswapd.sock
out=$tmp/out
dpid=

cleanup() {
	if [ -n "$dpid" ]; then
		kill -TERM "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
	fi
	rm -rf "$tmp" "$sockdir"
}
trap cleanup EXIT

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
diag() { sed 's/^/#   /' "$@"; }

# Starts kvswapd on a fresh store of SIZE; fails the test if it does not.
daemon() {
	rm -f "$tmp/store0.kvs"
	"$kvswapd" --socket "$sock" --store "$tmp/store0.kvs" --store-size "$1" \
		--log-level warning >>"$tmp/kvswapd.log" 2>&1 &
	dpid=$!
	i=0
	until "$kvswapctl" --socket "$sock" stat >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$dpid" 2>/dev/null; then
			echo "Bail out! kvswapd did not start"
			diag "$tmp/kvswapd.log"
			exit 1
		fi
		sleep 0.05
	done
}

# Stops kvswapd: it must exit 0 (a sanitizer's report would not).
daemon_stop() {
	kill -TERM "$dpid" 2>/dev/null
	wait "$dpid"
	st=$?
	dpid=
	if [ "$st" = 0 ]; then
		pass "kvswapd exits 0 after $1"
	else
		fail "kvswapd exits 0 after $1"
		echo "#   exit status $st; its log:"
		diag "$tmp/kvswapd.log"
	fi
}

# The value of "NAME": in the JSON of $out.
field() {
	sed -n "s/^ *\"$1\": \"*\([^\",]*\)\"*,*\$/\1/p" "$out" | head -n 1
}

# bench DESCRIPTION CHECKS ARGS...: runs kvswapctl bench ARGS... --json; it
# must exit 0, and each of CHECKS ("name=value" or "name>0", space
# separated) must hold in its JSON.
bench() {
	desc=$1
	checks=$2
	shift 2
	if ! "$kvswapctl" --socket "$sock" bench "$@" --json >"$out" 2>&1; then
		fail "$desc"
		echo "#   kvswapctl bench $* failed:"
		diag "$out"
		return
	fi
	for c in $checks; do
		case $c in
		*'>0') v=$(field "${c%>0}"); ok=$(awk -v v="$v" 'BEGIN { print (v + 0 > 0) }') ;;
		*=*) v=$(field "${c%%=*}"); ok=$([ "$v" = "${c#*=}" ] && echo 1 || echo 0) ;;
		esac
		if [ "$ok" != 1 ]; then
			fail "$desc"
			echo "#   kvswapctl bench $*: $c does not hold (got '$v'):"
			diag "$out"
			return
		fi
	done
	pass "$desc"
}

daemon 64M

bench "v1 swap-ins, as before" \
	"api=v1 errors=0 segments_done>0" \
	--segment-size 64K --duration 0.2 --working-set 4M --verify
bench "batch swap-ins: 4 entries of 3 layers per request, every byte checked" \
	"api=batch entries_per_request=4 layers=3 latency_unit=group errors=0 verify_errors=0 segments_done>0" \
	--op in --entries-per-request 4 --layers 3 --segment-size 16K \
	--duration 0.2 --working-set 2M --verify
bench "batch swap-outs: --layers alone, one entry per request" \
	"api=batch entries_per_request=1 layers=2 errors=0 segments_done>0" \
	--op out --layers 2 --segment-size 8K --depth 2 --duration 0.2 \
	--mode cache
bench "batch, mixed, the daemon's CRC32C (--no-client-crc)" \
	"api=batch client_crc=false errors=0 segments_done>0" \
	--op mixed --entries-per-request 2 --layers 2 --segment-size 4K \
	--duration 0.2 --working-set 1M --no-client-crc
bench "prefill through one batch, group = layer" \
	"api=batch entries=5 layers=4 per_layer_window=0 io_ms>0" \
	--prefill 4,100 --entries-per-request 5 --segment-size 16K --runs 1
bench "prefill through a batch per layer" \
	"api=batch per_layer_window=2 io_ms>0" \
	--prefill 4,100 --entries-per-request 5 --segment-size 16K --runs 1 \
	--per-layer 2
daemon_stop "the throughput and prefill runs"

# A trace: 60 requests on 5 shared prefix chains, each with a tail of its
# own; 2,650 distinct blocks of 8 KiB, more than a 16M store holds.
awk 'BEGIN {
	for (r = 0; r < 60; r++) {
		c = r % 5
		len = 10 + (r * 7) % 20
		s = "{\"timestamp\": " r ", \"hash_ids\": ["
		for (i = 0; i < len; i++)
			s = s (i ? ", " : "") (c * 1000 + i)
		for (j = 0; j < 40; j++)
			s = s ", " (100000 + r * 100 + j)
		print s "]}"
	}
}' >"$tmp/trace.jsonl"
for api in batch v1; do
	opt=
	[ $api = v1 ] && opt=--v1
	daemon 16M
	# shellcheck disable=SC2086
	bench "trace replay ($api): every block checked, evictions, no error" \
		"api=$api mode=trace requests=60 mismatches=0 crc_errors=0 enoent=0 enospc=0 other_errors=0 blocks_in>0 evictions>0 hit_ratio>0" \
		--trace "$tmp/trace.jsonl" --layers 2 --segment-size 4K --clients 2 $opt
	daemon_stop "the $api replay"
done

echo "1..$n"
[ "$failed" = 0 ]
