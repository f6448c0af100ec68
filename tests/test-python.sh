#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The Python binding (python/kvswap) against the real kvswapd: pytest runs
# tests/python/ with Debian's interpreter (/usr/bin/python3, for which
# tools/deps.sh installs python3-numpy, python3-torch and python3-pytest;
# another python3 may come first on PATH), and each test becomes a TAP
# line. Skips (1..0 # SKIP) when that interpreter or its packages are
# missing, and under a sanitizer build when the ASan runtime cannot be
# preloaded into Python.
#
# Runs from the repository root, as `make test` does; the Makefile copies
# it to build/tests/test-python (or build-san/tests/test-python).

set -u

case $0 in
*/tests/test-python) build=${0%/tests/test-python} ;;
*) build=build ;;
esac
py=${KVSWAP_PYTHON:-/usr/bin/python3}

if [ ! -x "$py" ]; then
	echo "1..0 # SKIP $py not found (apt-get install python3)"
	exit 0
fi
missing=$("$py" -c '
import importlib.util as u
print(" ".join(m for m in ("numpy", "torch", "pytest") if u.find_spec(m) is None))')
if [ -n "$missing" ]; then
	echo "1..0 # SKIP $py lacks: $missing (tools/deps.sh installs python3-numpy python3-torch python3-pytest)"
	exit 0
fi
if [ ! -e "$build/libkvswap.so.0" ]; then
	echo "Bail out! $build/libkvswap.so.0 missing: run make"
	exit 1
fi

KVSWAP_BUILD=$(cd "$build" && pwd)
KVSWAP_LIBRARY=$KVSWAP_BUILD/libkvswap.so.0
export KVSWAP_BUILD KVSWAP_LIBRARY
preload=
# A sanitizer build's libkvswap needs the ASan runtime loaded first.
if nm -D "$KVSWAP_LIBRARY" 2>/dev/null | grep -q ' U __asan_init'; then
	asan=$(${CC:-cc} -print-file-name=libasan.so)
	if [ ! -e "$asan" ] || ! LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=0 \
		"$py" -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' \
		"$KVSWAP_LIBRARY" >/dev/null 2>&1; then
		echo "1..0 # SKIP the ASan build of libkvswap cannot be loaded into $py (LD_PRELOAD=$asan failed)"
		exit 0
	fi
	# Python's own allocations are not ours to report; UBSan and ASan
	# errors in libkvswap still abort the test.
	preload=$asan
	echo "# $KVSWAP_LIBRARY is an ASan build: $asan preloaded into $py"
	export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
fi

out=$(mktemp "${TMPDIR:-/tmp}/kvswap-pytest.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
trap 'rm -f "$out"' EXIT

PYTHONDONTWRITEBYTECODE=1 LD_PRELOAD=$preload "$py" -m pytest -rA -v \
	-p no:cacheprovider tests/python >"$out" 2>&1
st=$?

# pytest -rA's summary: "PASSED file::test", "FAILED file::test - why",
# "SKIPPED [1] file:line: why", "ERROR file::test - why".
awk -v st="$st" '
/^=+ short test summary info =+$/ { summary = 1; next }
!summary { next }
/^PASSED / { n++; print "ok " n " - " $2; next }
/^(FAILED|ERROR) / { n++; bad++; sub(/^(FAILED|ERROR) /, ""); print "not ok " n " - " $0; next }
/^SKIPPED / { n++; sub(/^SKIPPED \[[0-9]+\] /, ""); print "ok " n " # SKIP " $0; next }
/^XFAIL |^XPASS / { n++; print "not ok " n " - " $0 " (no xfail here)"; bad++; next }
END {
	if (st != 0 && !bad) { n++; print "not ok " n " - pytest exited " st }
	print "1.." n
}' "$out"
if [ "$st" -ne 0 ]; then
	sed 's/^/# /' "$out"
	exit 1
fi
exit 0
