#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/gpu-ttft.py on a bare GPU machine: one with its own Python and
# PyTorch with CUDA, but no package registry and none of our Debian
# libraries.
#
#   bench/gpu-carry.sh prepare        here, after make: collects kvswapd,
#                                     libkvswap.so.0 and every shared
#                                     library they load (ldd) under
#                                     build/carry/ (carry that folder with
#                                     the tree)
#   bench/gpu-carry.sh run [--cpu] [gpu-ttft options...]
#                                     there: starts the carried kvswapd on
#                                     a store under /tmp, runs the bench
#                                     (under 5 minutes), writes its figures
#                                     to $OUT/gpu-ttft.txt (or
#                                     build/carry/out/), stops kvswapd.
#                                     --cpu: the bench's CPU mode (proves
#                                     the plumbing where there is no GPU)
#
# build/carry/lib holds the libraries other than the C library
# (liburing, protobuf-c, libsystemd and what it loads, inih, isal):
# LD_LIBRARY_PATH for both. build/carry/sys holds the C library and its
# loader: kvswapd runs under them (the carried ld.so with --library-path),
# so a machine with an older glibc runs it too; the machine's Python keeps
# its own C library and loads libkvswap.so.0 (which needs glibc 2.27 at
# most) from build/carry/lib.
#
# Environment: KVSWAP_PYTHON (default python3), KVSWAP_STORE_DIR (default
# /tmp/kvswap-gpu-carry), KVSWAP_STORE_SIZE (default 4G), OUT,
# KVSWAP_CARRY_BUILD (the build folder to carry from; default build/).

set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${KVSWAP_CARRY_BUILD:-$root/build}
carry=$build/carry

is_glibc() {
	case $(basename "$1") in
	libc.so.*|ld-linux*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|\
	libresolv.so.*|libutil.so.*) return 0 ;;
	esac
	return 1
}

prepare() {
	for f in "$build/kvswapd" "$build/libkvswap.so.0"; do
		[ -e "$f" ] || { echo "gpu-carry: $f missing: run make" >&2; exit 1; }
	done
	rm -rf "$carry"
	mkdir -p "$carry/lib" "$carry/sys" "$carry/out"
	cp "$build/kvswapd" "$carry/kvswapd"
	cp "$build/libkvswap.so.0" "$carry/lib/"
	for f in "$build/kvswapd" "$build/libkvswap.so.0"; do
		ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
			$1 ~ /^\/.*ld-linux/ { print $1 }'
	done | sort -u | while read -r lib; do
		if is_glibc "$lib"; then
			cp -L "$lib" "$carry/sys/"
		else
			cp -L "$lib" "$carry/lib/"
		fi
	done
	{
		echo "# gpu-carry: built $(date -u +%FT%TZ) on $(uname -srm)"
		for f in "$carry/kvswapd" "$carry"/lib/* "$carry"/sys/*; do
			echo "$(sha256sum "$f" | cut -c1-16) $(du -k "$f" | cut -f1)K ${f#"$carry"/}"
		done
	} >"$carry/MANIFEST"
	cat "$carry/MANIFEST"
	echo "gpu-carry: carry build/carry (and python/, bench/) to the GPU machine;" \
		"there: bench/gpu-carry.sh run"
}

run() {
	device=
	if [ "${1:-}" = "--cpu" ]; then
		device="--device cpu"
		shift
	fi
	[ -x "$carry/kvswapd" ] || {
		echo "gpu-carry: $carry/kvswapd missing: bench/gpu-carry.sh prepare" >&2
		exit 1
	}
	py=${KVSWAP_PYTHON:-python3}
	out=${OUT:-$carry/out}
	mkdir -p "$out"
	if ! "$py" -c 'import torch' 2>/dev/null; then
		echo "gpu-carry: $py cannot import torch" >&2
		exit 1
	fi
	store=${KVSWAP_STORE_DIR:-/tmp/kvswap-gpu-carry}
	mkdir -p "$store"
	sock=$store/kvswapd.sock
	ldso=$(ls "$carry"/sys/ld-linux* | head -1)
	"$ldso" --library-path "$carry/lib:$carry/sys" "$carry/kvswapd" \
		--socket "$sock" --store "$store/store0.kvs" \
		--store-size "${KVSWAP_STORE_SIZE:-4G}" --log-level warning \
		>"$out/kvswapd.log" 2>&1 &
	pid=$!
	trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$store"' EXIT
	i=0
	until [ -S "$sock" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 200 ]; then
			echo "gpu-carry: kvswapd did not start (store under $store;" \
				"O_DIRECT needs a disk file system, not tmpfs: set" \
				"KVSWAP_STORE_DIR):" >&2
			cat "$out/kvswapd.log" >&2
			exit 1
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "gpu-carry: kvswapd $pid on $store ($(df -T "$store" | awk 'NR==2 {print $2}'))"
	st=0
	# shellcheck disable=SC2086
	LD_LIBRARY_PATH="$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	KVSWAP_LIBRARY="$carry/lib/libkvswap.so.0" \
	PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" \
		timeout 280 "$py" "$root/bench/gpu-ttft.py" --socket "$sock" \
		--out "$out/gpu-ttft.txt" $device "$@" || st=$?
	kill "$pid"
	wait "$pid" || true
	trap 'rm -rf "$store"' EXIT
	echo "gpu-carry: figures in $out/gpu-ttft.txt"
	return $st
}

case ${1:-} in
prepare) prepare ;;
run) shift; run "$@" ;;
*) echo "usage: $0 prepare | run [--cpu] [gpu-ttft options]" >&2; exit 2 ;;
esac
