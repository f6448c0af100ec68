#!/bin/sh
# SPDX-License-Identifier: MIT
#
# faultfs, the fault-injecting FUSE filesystem (tests/faultfs/faultfs.c):
# mounted on a directory under the build folder (ext4 here, not tmpfs), it
# passes I/O through; its write cache loses exactly the writes no barrier
# made durable (fdatasync of that file, io_uring fsync, RWF_DSYNC through
# pwritev2 and io_uring, O_DSYNC opens) at a cut, whole or per sector in a
# repeatable random subset; its eio, short, enospc and delay rules fire
# where and when they are told, and O_DIRECT I/O must be aligned. Then the
# real kvswapd runs on it unchanged: a put/get round trip, flock keeping a
# second daemon out, read EIO, short read and ENOSPC that kvswapctl reports
# clearly while the daemon keeps serving, durable entries that survive
# cuts and kill -9, and unacknowledged ones that come back intact or not
# at all.
#
# Prints TAP. Runs from the repository root, as `make test` does; the
# Makefile copies it to build/tests/test-faultfs. Skips (1..0) without
# faultfs (no libfuse3), /dev/fuse or the right to mount.

set -u

case $0 in
*/tests/test-faultfs) build=${0%/tests/test-faultfs} ;;
*) build=build ;;
esac
ffs=$build/tests/faultfs
fsio=$build/tests/fsio
kvswapd=${KVSWAPD:-$build/kvswapd}
kvswapctl=$build/kvswapctl

skip_all() { echo "1..0 # SKIP $1"; exit 0; }

if [ ! -x "$ffs" ] || [ ! -x "$fsio" ]; then
	skip_all "$ffs not built: it needs libfuse3 (pkg-config fuse3; tools/deps.sh installs it)"
fi
[ -c /dev/fuse ] || skip_all "/dev/fuse is missing (no FUSE in this kernel or container)"
command -v fusermount3 >/dev/null 2>&1 || skip_all "fusermount3 is missing (Debian package fuse3)"
if [ ! -x "$kvswapd" ] || [ ! -x "$kvswapctl" ]; then
	echo "Bail out! $kvswapd or $kvswapctl missing: run make"
	exit 1
fi

n=0
failed=0
tmp=$(mktemp -d "$build/tests/faultfs.XXXXXX") || {
	echo "Bail out! mktemp under $build/tests failed"
	exit 1
}
tmp=$(cd "$tmp" && pwd)
# The socket needs no O_DIRECT, but a short path: under $TMPDIR.
sockdir=$(mktemp -d "${TMPDIR:-/tmp}/kvswap-faultfs.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
back=$tmp/back
mnt=$tmp/mnt
ctl=$mnt/.faultfs
out=$tmp/out
sock=$sockdir/kvswapd.sock
mkdir "$back" "$mnt"
ffs_pid=
dpid=

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
# check DESCRIPTION COMMAND...: passes if COMMAND succeeds; shows its
# output otherwise.
check() {
	desc=$1
	shift
	if "$@" >"$out" 2>&1; then
		pass "$desc"
	else
		fail "$desc"
		diag "command: $*"
		sed 's/^/#   /' "$out"
	fi
}
# check_fails DESCRIPTION PATTERN COMMAND...: passes if COMMAND fails with
# PATTERN (grep -E) in its output.
check_fails() {
	desc=$1
	pat=$2
	shift 2
	if "$@" >"$out" 2>&1; then
		fail "$desc"
		diag "command succeeded: $*"
	elif grep -Eq -- "$pat" "$out"; then
		pass "$desc"
		grep -E -m 1 -- "$pat" "$out" | sed 's/^/#   /'
	else
		fail "$desc"
		diag "command: $*" "expected /$pat/ in:"
		sed 's/^/#   /' "$out"
	fi
}
# ctl COMMAND...: one control command; a refused one fails the test.
ctl() {
	if ! printf '%s\n' "$*" >"$ctl" 2>"$out"; then
		fail "faultfs takes the command: $*"
		sed 's/^/#   /' "$out"
		grep '^last_error' "$ctl" 2>/dev/null | sed 's/^/#   /'
		return 1
	fi
}
# stat_of KEY: a number from faultfs's stats.
stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$ctl"; }
# fill CHAR COUNT: COUNT bytes of CHAR on stdout.
fill() { head -c "$2" /dev/zero | tr '\0' "$1"; }
# same DESCRIPTION FILE EXPECTED
same() {
	if cmp "$2" "$3" >"$out" 2>&1; then
		pass "$1"
	else
		fail "$1"
		sed 's/^/#   /' "$out"
		diag "size $(wc -c <"$2" 2>/dev/null), expected $(wc -c <"$3")"
	fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

stop_daemon() {
	if [ -n "$dpid" ]; then
		kill "-${1:-TERM}" "$dpid" 2>/dev/null
		# Braces: the shell's "Killed" goes to /dev/null too.
		{ wait "$dpid"; } 2>/dev/null
		drc=$?
		dpid=
		return $drc
	fi
	return 0
}
# A dead daemon's io_uring lets go of its files a moment after it exits.
unmount() {
	i=0
	until fusermount3 -u "$mnt" >"$out" 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] && grep -q busy "$out" || return 1
		sleep 0.05
	done
}
# shellcheck disable=SC2317
cleanup() {
	stop_daemon KILL
	if [ -n "$ffs_pid" ]; then
		unmount || { fusermount3 -uz "$mnt"; kill "$ffs_pid"; } 2>/dev/null
		wait "$ffs_pid" 2>/dev/null
		ffs_pid=
	fi
	rm -rf "$sockdir"
	if [ "$failed" = 0 ]; then
		rm -rf "$tmp"
	else
		echo "# files kept in $tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- mount -------------------------------------------------------------------

"$ffs" "$back" "$mnt" -f 2>"$tmp/faultfs.log" &
ffs_pid=$!
i=0
while [ ! -e "$ctl" ] && kill -0 "$ffs_pid" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
if [ ! -e "$ctl" ]; then
	why=$(tail -n 1 "$tmp/faultfs.log")
	kill "$ffs_pid" 2>/dev/null
	wait "$ffs_pid" 2>/dev/null
	ffs_pid=
	case $why in
	*ermission*|*"not permitted"*|*/dev/fuse*|*"No such device"*)
		skip_all "cannot mount FUSE here: ${why:-faultfs gave no reason}" ;;
	esac
	echo "Bail out! faultfs did not mount on $mnt: ${why:-no message}"
	exit 1
fi
pass "faultfs mounts $back on $mnt"

# --- the control file ----------------------------------------------------------

listed=$(find "$mnt" -mindepth 1 -maxdepth 1)
if [ "$(stat_of state)" = live ] && [ -z "$listed" ]; then
	pass "the control file reads as stats; readdir does not list it"
else
	fail "the control file reads as stats; readdir does not list it"
	sed 's/^/#   /' "$ctl"
	diag "listed: $listed"
fi
if ! printf 'bogus 1\n' >"$ctl" 2>/dev/null &&
	grep -q '^last_error unknown command "bogus"' "$ctl"; then
	pass "a bad command fails the write and shows in last_error"
else
	fail "a bad command fails the write and shows in last_error"
	grep '^last_error' "$ctl" | sed 's/^/#   /'
fi

# --- passthrough ----------------------------------------------------------------

check "O_DIRECT open, write, fdatasync and read back through the mount" \
	"$fsio" -d "$mnt/p" w:0:8192:0x70 fdatasync r:0:8192:0x70
fill p 8192 >"$tmp/exp"
same "the backing file holds what was made durable" "$back/p" "$tmp/exp"
mkdir "$mnt/d" && mv "$mnt/p" "$mnt/d/q" && rm "$mnt/d/q" && rmdir "$mnt/d"
check "mkdir, rename, unlink, rmdir" test ! -e "$back/d"
check_fails "O_DIRECT I/O must be aligned to 512 bytes, as on a disk" \
	"Invalid argument" "$fsio" -d "$mnt/u" w:100:4096:0x75
check "buffered I/O need not be" "$fsio" "$mnt/u" w:100:4096:0x75 r:100:4096:0x75 \
	fdatasync

# --- the write cache and a cut ---------------------------------------------------

# A made durable; then B past it and C over it, cached only.
check "write A, fdatasync, write B and C; reads see B and C" \
	"$fsio" -d "$mnt/f" w:0:4096:0x41 fdatasync w:4096:4096:0x42 \
	w:0:4096:0x43 r:0:4096:0x43 r:4096:4096:0x42
size=$(stat -c %s "$mnt/f")
if [ "$size" = 8192 ]; then
	pass "the size counts cached writes"
else
	fail "the size counts cached writes"
	diag "size $size"
fi
cached=$(stat_of cached_writes)
ctl cut drop
check_fails "after a cut every op fails with EIO" "Input/output error" \
	cat "$mnt/f"
ctl reset
dropped=$(stat_of last_cut_dropped)
if [ "$cached" = 2 ] && [ "$dropped" = 2 ]; then
	pass "cut drop drops the 2 cached writes"
else
	fail "cut drop drops the 2 cached writes"
	diag "cached $cached dropped $dropped"
fi
fill A 4096 >"$tmp/exp"
same "cut drop: the file holds A only" "$mnt/f" "$tmp/exp"

# Which barriers the kernel delivers through FUSE: RWF_DSYNC arrives as
# O_DSYNC in fuse_write_in.flags, with no FUSE_FSYNC after it.
if ! { "$fsio" -d "$mnt/g" uwd:0:4096:0x44 w:4096:4096:0x45 &&
	"$fsio" -d "$mnt/h" w:0:4096:0x46 &&
	"$fsio" -d "$mnt/i" w:0:4096:0x47 ufdatasync &&
	"$fsio" -d "$mnt/j" wd:0:4096:0x48 &&
	"$fsio" -d -s "$mnt/k" w:0:4096:0x49; } >"$out" 2>&1; then
	fail "writes for the barrier checks"
	sed 's/^/#   /' "$out"
fi
ctl cut
ctl reset
fill D 4096 >"$tmp/exp"
same "io_uring write with RWF_DSYNC is durable, the plain write after it is not" \
	"$mnt/g" "$tmp/exp"
same "a file's cached write is lost though other files were synced" \
	"$mnt/h" /dev/null
fill G 4096 >"$tmp/exp"
same "io_uring fsync with IORING_FSYNC_DATASYNC is a barrier" "$mnt/i" "$tmp/exp"
fill H 4096 >"$tmp/exp"
same "pwritev2 with RWF_DSYNC is durable" "$mnt/j" "$tmp/exp"
fill I 4096 >"$tmp/exp"
same "a write on an O_DSYNC open is durable" "$mnt/k" "$tmp/exp"

# cut random SEED [sector=N]: a random subset, each piece old or new whole.
# random_cut FILE SEED SECTOR PIECES: 16 KiB of a, synced; PIECES writes of
# b over it (4 KiB each, or 16 KiB as one write when sectors are 512);
# cut; then each piece must be all a or all b, and the b ones as many as
# the stats say were kept. Leaves the image in $tmp/FILE.img.
random_cut() {
	f=$1
	if [ "$3" = 0 ]; then
		steps="uw:0:4096:0x62 uw:4096:4096:0x62 uw:8192:4096:0x62 uw:12288:4096:0x62"
		ps=4096
	else
		steps="uw:0:16384:0x62"
		ps=$3
	fi
	# shellcheck disable=SC2086
	"$fsio" -d "$mnt/$f" w:0:16384:0x61 fdatasync $steps >"$out" 2>&1 ||
		{ fail "writes for cut random"; sed 's/^/#   /' "$out"; return; }
	if [ "$3" = 0 ]; then ctl cut random "$2"; else ctl cut random "$2" sector="$3"; fi
	ctl reset
	kept=$(stat_of last_cut_kept)
	dropped=$(stat_of last_cut_dropped)
	new=0
	torn=0
	for o in $(seq 0 "$ps" $((16384 - ps))); do
		if "$fsio" "$back/$f" "r:$o:$ps:0x62" 2>/dev/null; then
			new=$((new + 1))
		elif ! "$fsio" "$back/$f" "r:$o:$ps:0x61" 2>/dev/null; then
			torn=$((torn + 1))
		fi
	done
	cp "$back/$f" "$tmp/$f.img"
	what="cut random $2"
	[ "$3" = 0 ] || what="$what sector=$3"
	if [ $torn = 0 ] && [ "$new" = "$kept" ] && [ $((kept + dropped)) = "$4" ]; then
		pass "$what: $kept of $4 pieces kept, each whole"
	else
		fail "$what: each of $4 pieces old or new"
		diag "kept $kept dropped $dropped; found $new new, $torn torn"
	fi
}
random_cut r1 7 0 4
random_cut r2 7 0 4
same "the same seed keeps the same writes" "$tmp/r1.img" "$tmp/r2.img"
random_cut r3 11 512 32

# --- fault rules ----------------------------------------------------------------

"$fsio" -d "$mnt/e" w:0:16384:0x65 fdatasync >/dev/null 2>&1
ctl eio op=read file=e off=4096 len=4096
check "eio on a range: a read before it passes" "$fsio" -d "$mnt/e" r:0:4096:0x65
check_fails "eio on a range: a read touching it fails" "Input/output error" \
	"$fsio" -d "$mnt/e" r:0:8192:0x65
check "eio once: the next read passes" "$fsio" -d "$mnt/e" r:0:8192:0x65
ctl eio op=write nth=2
check_fails "eio nth=2: the second write fails" "w:4096.*Input/output error" \
	"$fsio" -d "$mnt/e" w:0:4096:0x65 w:4096:4096:0x65 w:8192:4096:0x65
check "eio nth=2: and only it" "$fsio" -d "$mnt/e" w:8192:4096:0x65
ctl eio op=fsync file=e sticky
check_fails "eio on fsync, sticky: fdatasync fails" "Input/output error" \
	"$fsio" -d "$mnt/e" fdatasync
check_fails "eio on fsync, sticky: and again" "Input/output error" \
	"$fsio" -d "$mnt/e" ufdatasync
ctl reset
ctl short op=read file=e off=8192 len=4096
check_fails "short read: stops where the range starts" \
	"short transfer: 8192 of 16384 bytes" \
	"$fsio" -d "$mnt/e" r:0:16384:0x65
ctl short op=write file=e
check_fails "short write: half of it" "short transfer: 4096 of 8192 bytes" \
	"$fsio" -d "$mnt/e" w:0:8192:0x65
ctl enospc
check_fails "enospc: writes fail" "No space left on device" \
	"$fsio" -d "$mnt/e" w:0:4096:0x65
check_fails "enospc: fallocate fails" "No space left on device" \
	fallocate -l 1M "$mnt/e"
ctl reset
check "reset: writes pass again" "$fsio" -d "$mnt/e" w:0:4096:0x65
ctl delay 300 op=fsync once
t0=$(now_ms)
"$fsio" -d "$mnt/e" fdatasync
t=$(($(now_ms) - t0))
if [ $t -ge 300 ]; then
	pass "delay 300: fdatasync takes $t ms"
else
	fail "delay 300: fdatasync takes $t ms"
fi
ctl reset

# --- kvswapd on faultfs ---------------------------------------------------------

export KVSWAP_SOCKET="$sock"
start_daemon() {
	"$kvswapd" --socket "$sock" --store "$mnt/store0.kvs" --store-size 16M \
		--log-level info >>"$tmp/kvswapd.log" 2>&1 &
	dpid=$!
	i=0
	while [ ! -S "$sock" ] && kill -0 "$dpid" 2>/dev/null && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if [ -S "$sock" ]; then
		pass "kvswapd starts on a store in the mount$1"
		return 0
	fi
	fail "kvswapd starts on a store in the mount$1"
	tail -n 5 "$tmp/kvswapd.log" | sed 's/^/#   /'
	stop_daemon KILL
	return 1
}
# cut_kill_restart CUT_ARGS...: power loss under a running daemon, then a
# fresh start.
cut_kill_restart() {
	ctl cut "$@"
	diag "cut $*: dropped $(stat_of last_cut_dropped) kept $(stat_of last_cut_kept) cached writes"
	stop_daemon KILL
	rm -f "$sock"
	ctl reset
	start_daemon " after cut $* and kill -9"
}
# still_there KEY FILE
still_there() {
	if "$kvswapctl" get "$1" "$tmp/got" >"$out" 2>&1 && cmp -s "$tmp/got" "$2"; then
		pass "acknowledged durable entry $1 comes back intact"
	else
		fail "acknowledged durable entry $1 comes back intact"
		sed 's/^/#   /' "$out"
	fi
}
# exact_or_gone KEY FILE: an entry the cut may have taken is never served
# damaged.
exact_or_gone() {
	if ! "$kvswapctl" get "$1" "$tmp/got" >"$out" 2>&1; then
		pass "$1, not acknowledged durable, is gone after the cut"
		sed 's/^/#   /' "$out"
	elif cmp -s "$tmp/got" "$2"; then
		pass "$1, not acknowledged durable, survived the cut intact"
	else
		fail "$1, not acknowledged durable, is intact or gone"
		diag "served $(wc -c <"$tmp/got") bytes that differ"
	fi
}

head -c 3M /dev/urandom >"$tmp/in1"
head -c 1M /dev/urandom >"$tmp/in2"
head -c 2M /dev/urandom >"$tmp/in3"
if start_daemon ""; then
	check_fails "a second kvswapd on the same store: flock says no" \
		"in use by another kvswapd" "$kvswapd" --socket "$sock.2" \
		--store "$mnt/store0.kvs" --store-size 16M
	check "kvswapctl put" "$kvswapctl" put k1 "$tmp/in1"
	check "kvswapctl get" "$kvswapctl" get k1 "$tmp/got1"
	same "the round trip through faultfs is exact" "$tmp/got1" "$tmp/in1"

	ctl eio op=read file=store0.kvs
	check_fails "a store read EIO: kvswapctl get fails with a clear error" \
		"get: .*store read failed: Input/output error" \
		"$kvswapctl" get k1 "$tmp/got1"
	check "the daemon keeps serving: stat" "$kvswapctl" stat
	check "the daemon keeps serving: put" "$kvswapctl" put k2 "$tmp/in2"
	check "the daemon keeps serving: get" "$kvswapctl" get k2 "$tmp/got2"
	same "the round trip after the fault is exact" "$tmp/got2" "$tmp/in2"
	if "$kvswapctl" get k1 "$tmp/got1" >"$out" 2>&1; then
		diag "after the read EIO, k1 is still served"
	else
		diag "after the read EIO, k1 is gone: $(cat "$out")"
	fi

	ctl short op=read file=store0.kvs
	check_fails "a short store read: a clear error" \
		"get: .*short store read" "$kvswapctl" get k2 "$tmp/got2"
	ctl enospc file=store0.kvs
	check_fails "a store write ENOSPC: a clear error" \
		"put: .*store write failed: No space left on device" \
		"$kvswapctl" put k8 "$tmp/in2"
	ctl reset
	check "put again" "$kvswapctl" put k2 "$tmp/in2"

	check "put --durable" "$kvswapctl" put --durable k3 "$tmp/in3"
	if cut_kill_restart drop; then
		still_there k2 "$tmp/in2"
		still_there k3 "$tmp/in3"
		check "put --durable" "$kvswapctl" put --durable k4 "$tmp/in1"
		check "put --cache" "$kvswapctl" put --cache k5 "$tmp/in2"
		if cut_kill_restart random 5 sector=512; then
			still_there k3 "$tmp/in3"
			still_there k4 "$tmp/in1"
			exact_or_gone k5 "$tmp/in2"
			# A disk whose flushes fail: data writes pile up in the
			# cache, unflushed, when the power goes.
			ctl eio op=fsync file=store0.kvs sticky
			check "put --cache with failing fdatasync" \
				"$kvswapctl" put --cache k6 "$tmp/in3"
			check_fails "put --durable with failing fdatasync: a clear error" \
				"Input/output error" "$kvswapctl" put --durable k7 "$tmp/in2"
			c=$(stat_of cached_writes)
			if [ "$c" -gt 0 ]; then
				pass "the daemon's writes wait in the cache ($c)"
			else
				fail "the daemon's writes wait in the cache ($c)"
			fi
			if cut_kill_restart random 9 sector=4096; then
				still_there k3 "$tmp/in3"
				still_there k4 "$tmp/in1"
				exact_or_gone k6 "$tmp/in3"
				exact_or_gone k7 "$tmp/in2"
				stop_daemon TERM
				rc=$?
				if [ $rc = 0 ]; then
					pass "kvswapd exits 0 on SIGTERM"
				else
					fail "kvswapd exits 0 on SIGTERM (status $rc)"
				fi
			fi
		fi
	fi
fi
diag "faultfs stats:" "$(grep -v '^rule' "$ctl")"

stop_daemon KILL
if unmount; then
	wait "$ffs_pid"
	rc=$?
	ffs_pid=
	if [ $rc = 0 ] && ! grep -Eq 'Sanitizer|runtime error' "$tmp/faultfs.log"; then
		pass "faultfs unmounts and exits 0"
	else
		fail "faultfs unmounts and exits 0 (status $rc)"
		tail -n 20 "$tmp/faultfs.log" | sed 's/^/#   /'
	fi
else
	fail "fusermount3 -u"
	sed 's/^/#   /' "$out"
fi

echo "1..$n"
[ "$failed" = 0 ] || { diag "failed $failed of $n checks"; exit 1; }
exit 0
