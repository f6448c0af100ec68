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
# Then a few extra cases (daemon --verify off, durable swap-out, a small
# swap-in beside a large swap-out) and the prefill-overlap figures.
# bench/report.pl turns the raw JSON under $DIR/raw into results.json, the
# table (stdout and report.md) and the plot throughput.png.
#
# Environment: BUILD (build), BENCH_DURATION seconds per run (3),
# BENCH_REPS turns of fio and kvswap per case (3), BENCH_PREFILL_RUNS (9),
# BENCH_DEPTH requests in flight per client (8), BENCH_SIZES ("4K 64K 1M
# 16M"), BENCH_CLIENTS ("1 8"), BENCH_STORE_SIZE (6G), BENCH_DIR
# ($BUILD/bench).
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
WS_MAX=$((1 << 30))
WS_KEYS=16384

KVSWAPD=$BUILD/kvswapd
KVSWAPCTL=$BUILD/kvswapctl
STORE=$DIR/store0.kvs
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
daemon_start() {
	local i=0
	echo "${DWRAP:+$DWRAP }$KVSWAPD --socket $SOCK --store $STORE --store-size $STORE_SIZE $*" >>"$CMDS"
	# shellcheck disable=SC2086
	$DWRAP "$KVSWAPD" --socket "$SOCK" --store "$STORE" --store-size "$STORE_SIZE" \
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
daemon_stop
magic=$(dd if="$STORE" bs=8 count=1 status=none)
[ "$magic" = KVSWAPST ] || die "$STORE: no kvswap superblock"
DATA_START=$(od -An -t u8 -j 48 -N 8 "$STORE" | tr -d ' ')
echo "data_start: $DATA_START" >>"$DIR/machine.txt"

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
daemon_stop
if [ -n "$CWRAP" ]; then
	DWRAP=
	daemon_start
	run "$KVSWAPCTL" --socket "$SOCK" bench --prefill "32,$us" \
		--segment-size 4M --runs "$PREFILL_RUNS" --json \
		>"$RAW/prefill-balanced-unpinned.json"
	daemon_stop
fi

# The daemon checksums every byte it moves: the speed of CRC32C here.
if [ -x "$BUILD/bench/crc32c-speed" ]; then
	run "$BUILD/bench/crc32c-speed" >"$RAW/crc32c.txt" 2>&1 || true
fi

echo "bench: done in $(($(date +%s) - start)) s" >&2
perl bench/report.pl "$DIR"
