#!/bin/sh
# Runs one libFuzzer target for a while and prints one summary line:
#   fuzz/run.sh BUILD TARGET SECONDS WORK_CORPUS
# BUILD/fuzz/fuzz-TARGET reads fuzz/corpus/TARGET (committed, read only)
# and WORK_CORPUS (what it adds goes there). A crash, leak or breach
# exits non-zero with the end of its log; its input is kept in
# BUILD/artifacts/TARGET-*.
set -eu
build=$1 target=$2 seconds=$3 work=$4
bin=$build/fuzz/fuzz-$target
log=$build/fuzz-$target.log
mkdir -p "$work" "$build/artifacts" "$build/tmp"
echo "fuzz-$target: $seconds s (log: $log)"
# The store fuzzer needs O_DIRECT: tmpfs where the kernel gives it one
# (Linux 6.6 and later; no disk I/O per input), else a folder under the
# build; $KVSWAP_FUZZ_DIR overrides both.
dir=$build/tmp
probe=/dev/shm/kvswap-fuzz-probe.$$
if dd if=/dev/zero of="$probe" bs=4096 count=1 oflag=direct 2>/dev/null; then
	dir=/dev/shm
fi
rm -f "$probe"
if ! KVSWAP_FUZZ_DIR="${KVSWAP_FUZZ_DIR:-$dir}" "$bin" -max_total_time="$seconds" \
	-print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
	"$work" "fuzz/corpus/$target" >"$log" 2>&1; then
	tail -n 60 "$log"
	echo "fuzz-$target: FAILED; input kept: $(ls -t "$build/artifacts/$target-"* 2>/dev/null | head -n 1)" >&2
	exit 1
fi
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
echo "fuzz-$target: $execs executions in $seconds s, cov: $cov ft: $ft, corpus: $(ls "fuzz/corpus/$target" | wc -l) committed + $(ls "$work" | wc -l) found ($(du -sk "$work" | cut -f1) KiB)"
