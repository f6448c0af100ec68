#!/bin/sh
# make bench: kvswapd against the device limit, in one run, on one store.
#
# For every case (swap-in and swap-out; 4K, 64K, 1M and 16M segments; 1
# and 8 clients) it runs, on the same store file and the same byte range
# (the first WS bytes of its data area, where kvswapd puts the entries of
# an empty store), REPS times in turn:
#   1. fio, io_uring, O_DIRECT, fixed buffers and files, one job at queue
#      depth CLIENTS x DEPTH: the device limit (randread, randwrite);
#   2. kvswapd (started fresh) driven by `kvswapctl bench --json` with the
#      same segment size, clients x depth and duration;
# then once: fio sequential write (swap-out cases: the pattern kvswapd's
# allocator produces) and fio psync, buffered, one job per client: the
# naive baseline.
# and, in the same turns, the same case through the batch API (DEPTH
# entries per request, one request in flight per client: the same total
# depth) for 4K and 64K, and for 1M and 16M with one client (the daemon's
# CPU per GiB with the library doing the CRC32C).
# Then a few extra cases (daemon --verify off, durable swap-out, a small
# swap-in beside a large swap-out), the vLLM-shaped swap-in (one batch of
# 250 blocks x 32 layers x 64 KiB against fio 64K random reads at the
# daemon's queue depth), the prefill-overlap figures (v1, and the vLLM
# shape through the batch API), and the replay of the Mooncake trace
# through the batch API and with one v1 request per block (skipped, and
# said so, if the trace is missing).
# bench/report.pl turns the raw JSON under $DIR/raw into results.json, the
# table (stdout and report.md) and the plot throughput.png.
#
# Environment: BUILD (build), BENCH_DURATION seconds per run (3),
# BENCH_REPS turns of fio and kvswap per case (3), BENCH_PREFILL_RUNS (9),
# BENCH_VLLM_RUNS prefill runs of the vLLM shape (5), BENCH_DEPTH requests
# in flight per client (8), BENCH_SIZES ("4K 64K 1M 16M"), BENCH_CLIENTS
# ("1 8"), BENCH_BATCH (1: the batch API rows; 0: none), BENCH_STORE_SIZE
# (6G), BENCH_TRACE (../shared/traces/mooncake/synthetic_trace.jsonl from
# the repository, or from the main checkout of a git worktree),
# BENCH_TRACE_STORE_SIZE (256M: the replay's store, so that it evicts),
# BENCH_TRACE_BIG_STORE_SIZE (2G: the replay once more on a store that
# holds every block, nothing evicted; empty: not run),
# BENCH_DIR ($BUILD/bench).
# shellcheck disable=SC3043 # `local`: dash, bash and busybox sh have it
set -eu

BUILD=${BUILD:-build}
DIR=${BENCH_DIR:-$BUILD/bench}
DURATION=${BENCH_DURATION:-3}
REPS=${BENCH_REPS:-3}
DEPTH=${BENCH_DEPTH:-8}
SIZES=${BENCH_SIZES:-"4K 64K 1M 16M"}
CLIENTS=${BENCH_CLIENTS:-"1 8"}
STORE_SIZE=${BENCH_STORE_SIZE:-6G}
PREFILL_RUNS=${BENCH_PREFILL_RUNS:-9}
VLLM_RUNS=${BENCH_VLLM_RUNS:-5}
BATCH=${BENCH_BATCH:-1}
TRACE_STORE_SIZE=${BENCH_TRACE_STORE_SIZE:-256M}
TRACE_BIG_STORE_SIZE=${BENCH_TRACE_BIG_STORE_SIZE:-2G}
WS_MAX=$((1 << 30))
WS_KEYS=16384

KVSWAPD=$BUILD/kvswapd
KVSWAPCTL=$BUILD/kvswapctl
STORE=$DIR/store0.kvs
TSTORE=$DIR/trace0.kvs
SOCK=$DIR/kvswapd.sock
RAW=$DIR/raw
CMDS=$DIR/commands.txt
DLOG=$DIR/kvswapd.log

die() {
	echo "bench: $*" >&2
	exit 1
}

for t in fio gnuplot perl; do
	command -v $t >/dev/null 2>&1 ||
		die "$t is missing: run tools/deps.sh --bench"
done
if [ ! -x "$KVSWAPD" ] || [ ! -x "$KVSWAPCTL" ]; then
	die "build first: make all"
fi

mkdir -p "$DIR"
rm -rf "$RAW"
mkdir -p "$RAW"
: >"$CMDS"
: >"$DLOG"

bytes() {
	case $1 in
	*K) echo $((${1%K} << 10)) ;;
	*M) echo $((${1%M} << 20)) ;;
	*G) echo $((${1%G} << 30)) ;;
	*) echo "$1" ;;
	esac
}

# Runs a command and records it in commands.txt.
run() {
	echo "$*" >>"$CMDS"
	"$@"
}

DPID=
DWRAP=	# e.g. "taskset -c 1": how kvswapd is started
DSTORE=$STORE	# the store and its size kvswapd is started with
DSIZE=$STORE_SIZE
daemon_start() {
	local i=0
	echo "${DWRAP:+$DWRAP }$KVSWAPD --socket $SOCK --store $DSTORE --store-size $DSIZE $*" >>"$CMDS"
	# shellcheck disable=SC2086
	$DWRAP "$KVSWAPD" --socket "$SOCK" --store "$DSTORE" --store-size "$DSIZE" \
		--log-level notice "$@" >>"$DLOG" 2>&1 &
	DPID=$!
	until "$KVSWAPCTL" --socket "$SOCK" stat >/dev/null 2>&1; do
		kill -0 "$DPID" 2>/dev/null ||
			die "kvswapd exited at start; see $DLOG: $(tail -n 1 "$DLOG")"
		i=$((i + 1))
		[ $i -lt 1200 ] || die "kvswapd did not start in 60 s; see $DLOG"
		sleep 0.05
	done
}

daemon_stop() {
	[ -n "$DPID" ] || return 0
	kill -TERM "$DPID" 2>/dev/null || true
	wait "$DPID" || die "kvswapd exited with status $?; see $DLOG"
	DPID=
}

cleanup() {
	if [ -n "$DPID" ]; then
		kill -TERM "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
	if [ -n "${BGPID:-}" ]; then
		kill "$BGPID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Forgets the store file's page cache (left by the buffered baseline), so
# that it neither serves nor slows the O_DIRECT runs that follow.
drop_cache() {
	sync
	dd of="$STORE" oflag=nocache conv=notrunc,fdatasync count=0 status=none \
		2>/dev/null || true
}

# --- the machine ---------------------------------------------------------
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc: $(nproc)"
	echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "kernel: $(uname -r)"
	echo "fio: $(fio --version)"
	echo "kvswapd: $("$KVSWAPD" --version)"
	echo "free -h:"
	free -h
	echo "df -T $DIR:"
	df -T "$DIR"
	if command -v lsblk >/dev/null 2>&1; then
		echo "lsblk:"
		lsblk -o NAME,SIZE,TYPE,ROTA,MOUNTPOINTS 2>/dev/null || lsblk
	fi
	dev=$(basename "$(df --output=source "$DIR" | tail -n 1)")
	[ -r "/sys/block/$dev/queue/scheduler" ] &&
		echo "scheduler ($dev): $(cat "/sys/block/$dev/queue/scheduler")"
} >"$DIR/machine.txt" 2>&1
cat "$DIR/machine.txt" >&2

# --- the store: created by kvswapd, then its data area read ---------------
# A fresh store each run: no entries left by an interrupted run, and the
# size asked for.
echo "bench: creating the store $STORE ($STORE_SIZE)" >&2
rm -f "$STORE"
daemon_start
# The segment I/Os kvswapd keeps in flight: fio's depth for the vLLM case.
QD=$("$KVSWAPCTL" --socket "$SOCK" stat --json |
	sed -n 's/^ *"queue_depth": \([0-9]*\),$/\1/p')
[ -n "$QD" ] || die "no queue_depth in kvswapctl stat --json"
daemon_stop
magic=$(dd if="$STORE" bs=8 count=1 status=none)
[ "$magic" = KVSWAPST ] || die "$STORE: no kvswap superblock"
DATA_START=$(od -An -t u8 -j 48 -N 8 "$STORE" | tr -d ' ')
echo "data_start: $DATA_START" >>"$DIR/machine.txt"
echo "kvswapd queue depth: $QD" >>"$DIR/machine.txt"

# --- one case ------------------------------------------------------------
# The functions' variables are `local` (dash, bash and busybox sh have
# it): the loops below use the same names.
fio_run() { # name rw bs qd numjobs engine direct ws [extra...]
	local name="$1" rw="$2" bs="$3" qd="$4" jobs="$5" engine="$6" \
		direct="$7" ws="$8"
	shift 8
	run fio --name=kvswap-bench --filename="$STORE" --offset="$DATA_START" \
		--size="$ws" --rw="$rw" --bs="$bs" --ioengine="$engine" \
		--direct="$direct" --iodepth="$qd" --numjobs="$jobs" \
		--group_reporting --time_based --runtime="$DURATION" \
		--randrepeat=0 --lat_percentiles=1 \
		--percentile_list=50:99:99.9 "$@" \
		--output-format=json --output="$RAW/$name.json" >/dev/null
}

kv_run() { # name op size clients [bench options...]
	local name="$1" op="$2" size="$3" clients="$4" ws
	shift 4
	ws=$(ws_of "$size")
	run "$KVSWAPCTL" --socket "$SOCK" bench --op "$op" --segment-size "$size" \
		--clients "$clients" --depth "$DEPTH" --duration "$DURATION" \
		--working-set "$ws" --json "$@" >"$RAW/$name.json" ||
		echo "bench: $name reported errors (see $RAW/$name.json)" >&2
}

ws_of() {
	local s w
	s=$(bytes "$1")
	w=$((s * WS_KEYS))
	[ $w -gt $WS_MAX ] && w=$WS_MAX
	echo $w
}

# True if case SIZE x CLIENTS also runs through the batch API.
batch_case() {
	[ "$BATCH" = 1 ] || return 1
	case $1 in
	4K | 64K) return 0 ;;
	*) [ "$2" = 1 ] ;;
	esac
}

ncases=0
for size in $SIZES; do
	for c in $CLIENTS; do
		ncases=$((ncases + 2))
	done
done
n=0
start=$(date +%s)
for size in $SIZES; do
	bs=$(bytes "$size")
	ws=$(ws_of "$size")
	for c in $CLIENTS; do
		qd=$((c * DEPTH))
		for op in in out; do
			n=$((n + 1))
			case=$op-$size-c$c
			echo "bench: [$n/$ncases] $case ($(($(date +%s) - start)) s)" >&2
			if [ $op = in ]; then
				rw=randread mode=
			else
				rw=randwrite mode="--mode cache"
			fi
			# fio and kvswap take turns, so that a slow spell of the
			# device is shared; report.pl takes the medians.
			r=0
			while [ $r -lt "$REPS" ]; do
				r=$((r + 1))
				fio_run "fio-$case-r$r" $rw "$bs" $qd 1 io_uring 1 \
					"$ws" --fixedbufs --registerfiles
				daemon_start
				# shellcheck disable=SC2086
				kv_run "kv-$case-r$r" $op "$size" "$c" $mode
				daemon_stop
				if batch_case "$size" "$c"; then
					# The same total depth: DEPTH entries
					# per request, one request per client.
					daemon_start
					# shellcheck disable=SC2086
					kv_run "kv-$case-batch-r$r" $op "$size" "$c" \
						$mode --entries-per-request "$DEPTH" \
						--depth 1
					daemon_stop
				fi
			done
			if [ $op = out ]; then
				# kvswapd's allocator writes a rotating key set
				# mostly in address order: sequential writes.
				fio_run "fioseq-$case" write "$bs" $qd 1 io_uring 1 \
					"$ws" --fixedbufs --registerfiles
			fi
			if [ $op = in ] && [ "$size" = 1M ] && [ "$c" = 1 ]; then
				# The daemon's CRC check on swap-in, off.
				r=0
				while [ $r -lt "$REPS" ]; do
					r=$((r + 1))
					daemon_start --verify off
					kv_run "kv-$case-noverify-r$r" $op "$size" "$c"
					daemon_stop
				done
			fi
			if [ $op = out ] && [ "$size" = 1M ] && [ "$c" = 1 ]; then
				# An fdatasync per group commit.
				r=0
				while [ $r -lt "$REPS" ]; do
					r=$((r + 1))
					daemon_start
					kv_run "kv-$case-durable-r$r" $op "$size" "$c" \
						--mode durable
					daemon_stop
				done
			fi
			fio_run "psync-$case" $rw "$bs" 1 "$c" psync 0 "$ws"
			drop_cache
		done
	done
done

# --- a small swap-in beside a large swap-out -------------------------------
echo "bench: fairness: 4K swap-ins alone, then beside 16M swap-outs" >&2
daemon_start
run "$KVSWAPCTL" --socket "$SOCK" bench --op in --segment-size 4K --clients 1 \
	--depth 1 --duration "$DURATION" --working-set 64M --json \
	>"$RAW/fair-alone.json" || true
echo "$KVSWAPCTL --socket $SOCK bench --op out --segment-size 16M --clients 1 --depth $DEPTH --duration $((DURATION + 2)) --working-set 1G --mode cache --json &" >>"$CMDS"
"$KVSWAPCTL" --socket "$SOCK" bench --op out --segment-size 16M --clients 1 \
	--depth "$DEPTH" --duration $((DURATION + 2)) --working-set 1G \
	--mode cache --json >"$RAW/fair-load.json" &
BGPID=$!
sleep 1
run "$KVSWAPCTL" --socket "$SOCK" bench --op in --segment-size 4K --clients 1 \
	--depth 1 --duration "$DURATION" --working-set 64M --json \
	>"$RAW/fair-loaded.json" || true
wait "$BGPID" || true
BGPID=

# --- the vLLM shape ---------------------------------------------------------
# vLLM's paged KV cache for an 8B model: 16-token blocks of 64 KiB per
# layer; a 4,000-token prefix is 250 blocks x 32 layers. One SwapInBatch
# of 250 entries of 32 segments (group = layer) per request, one request
# in flight; kvswapd keeps up to its queue depth of segment I/Os in
# flight, and fio reads 64 KiB at random at that depth, in turns.
echo "bench: vLLM shape: 250 blocks x 32 layers x 64K, fio at depth $QD" >&2
daemon_stop
VWS=$((1 << 30))
r=0
while [ $r -lt "$REPS" ]; do
	r=$((r + 1))
	fio_run "fio-vllm-r$r" randread 64K "$QD" 1 io_uring 1 "$VWS" \
		--fixedbufs --registerfiles
	daemon_start
	run "$KVSWAPCTL" --socket "$SOCK" bench --op in --segment-size 64K \
		--entries-per-request 250 --layers 32 --clients 1 --depth 1 \
		--duration "$DURATION" --working-set "$VWS" --json \
		>"$RAW/kv-vllm-r$r.json" ||
		echo "bench: kv-vllm-r$r reported errors" >&2
	daemon_stop
done

# --- prefill overlap -------------------------------------------------------
# First the I/O time alone (compute 0), then a compute time per layer
# equal to the measured I/O time per layer (the balanced case, where
# overlap matters most) and twice that (compute bound). The busy loop
# stands for GPU work: on a small machine it would take the daemon's core,
# so kvswapd runs on the last CPU and the bench on the others; the balanced
# case runs once more without pinning, to show what the sharing costs.
echo "bench: prefill overlap" >&2
daemon_stop
ncpu=$(nproc)
CWRAP=
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	DWRAP="taskset -c $((ncpu - 1))"
	CWRAP="taskset -c 0-$((ncpu - 2))"
fi
daemon_start
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench --prefill 32,0 \
	--segment-size 4M --runs "$PREFILL_RUNS" --json >"$RAW/prefill-io.json"
io_ms=$(sed -n 's/^ *"io_ms": \([0-9.]*\),$/\1/p' "$RAW/prefill-io.json")
us=$(awk -v ms="$io_ms" 'BEGIN { printf "%d", ms * 1000 / 32 + 0.5 }')
[ "$us" -gt 0 ] || us=1
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench --prefill "32,$us" \
	--segment-size 4M --runs "$PREFILL_RUNS" --json \
	>"$RAW/prefill-balanced.json"
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench --prefill "32,$((us * 2))" \
	--segment-size 4M --runs "$PREFILL_RUNS" --json \
	>"$RAW/prefill-compute.json"
# The vLLM shape through the batch API: 250 entries x 32 layers x 64K,
# layer i computed once group i has landed; then the same bytes as one
# batch per layer, 4 in flight (layer-ordered I/O), with the library's
# CRC32C and without it (the daemon's).
VP="--prefill 32,0 --entries-per-request 250 --segment-size 64K --runs $VLLM_RUNS"
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench $VP --json \
	>"$RAW/prefill-vllm-io.json"
io_ms=$(sed -n 's/^ *"io_ms": \([0-9.]*\),$/\1/p' "$RAW/prefill-vllm-io.json")
vus=$(awk -v ms="$io_ms" 'BEGIN { printf "%d", ms * 1000 / 32 + 0.5 }')
[ "$vus" -gt 0 ] || vus=1
VP="--prefill 32,$vus --entries-per-request 250 --segment-size 64K --runs $VLLM_RUNS"
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench $VP --json \
	>"$RAW/prefill-vllm-balanced.json"
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench $VP --per-layer 4 --json \
	>"$RAW/prefill-vllm-layers.json"
# shellcheck disable=SC2086
run $CWRAP "$KVSWAPCTL" --socket "$SOCK" bench $VP --per-layer 4 \
	--no-client-crc --json >"$RAW/prefill-vllm-layers-nocrc.json"
daemon_stop
if [ -n "$CWRAP" ]; then
	DWRAP=
	daemon_start
	run "$KVSWAPCTL" --socket "$SOCK" bench --prefill "32,$us" \
		--segment-size 4M --runs "$PREFILL_RUNS" --json \
		>"$RAW/prefill-balanced-unpinned.json"
	daemon_stop
fi

# --- the Mooncake trace ----------------------------------------------------
# 3,993 requests of prefix-chained 512-token blocks, each block 8 layers x
# 4K, 4 client threads: through the batch API, then one v1 request per
# block; each on a fresh store of TRACE_STORE_SIZE, small enough that
# blocks are evicted; then both on a store of TRACE_BIG_STORE_SIZE that
# holds every block (the replay without eviction). The trace is read
# where it lies, never copied.
TRACE=${BENCH_TRACE:-}
if [ -z "$TRACE" ]; then
	TRACE=../shared/traces/mooncake/synthetic_trace.jsonl
	common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || common=
	if [ ! -r "$TRACE" ] && [ -n "$common" ]; then
		# A worktree: ../shared beside the main checkout.
		alt=$(dirname "$(dirname "$common")")/shared/traces/mooncake/synthetic_trace.jsonl
		[ -r "$alt" ] && TRACE=$alt
	fi
fi
if [ -r "$TRACE" ]; then
	echo "bench: trace replay: $TRACE" >&2
	DSTORE=$TSTORE
	for run in batch v1 ${TRACE_BIG_STORE_SIZE:+batch-big v1-big}; do
		case $run in
		*-big) DSIZE=$TRACE_BIG_STORE_SIZE ;;
		*) DSIZE=$TRACE_STORE_SIZE ;;
		esac
		opt=
		case $run in v1*) opt=--v1 ;; esac
		rm -f "$TSTORE"
		daemon_start
		"$KVSWAPCTL" --socket "$SOCK" stat --json >"$RAW/trace-$run-stat0.json"
		# shellcheck disable=SC2086
		run "$KVSWAPCTL" --socket "$SOCK" bench --trace "$TRACE" $opt \
			--json >"$RAW/trace-$run.json" ||
			echo "bench: trace-$run reported errors (see $RAW/trace-$run.json)" >&2
		"$KVSWAPCTL" --socket "$SOCK" stat --json >"$RAW/trace-$run-stat1.json"
		daemon_stop
	done
	rm -f "$TSTORE"
	DSTORE=$STORE
	DSIZE=$STORE_SIZE
else
	echo "bench: trace replay SKIPPED: $TRACE is missing (set BENCH_TRACE)" >&2
	echo "$TRACE" >"$RAW/trace-missing.txt"
fi

# The daemon checksums every byte it moves: the speed of CRC32C here.
if [ -x "$BUILD/bench/crc32c-speed" ]; then
	run "$BUILD/bench/crc32c-speed" >"$RAW/crc32c.txt" 2>&1 || true
fi

echo "bench: done in $(($(date +%s) - start)) s" >&2
perl bench/report.pl "$DIR"
