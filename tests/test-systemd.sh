#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Packaging and the systemd units, as installed: `make install DESTDIR=...
# PREFIX=/usr` puts every file in place (and keeps an edited kvswapd.conf),
# the library exports only kvswap_*, `systemd-analyze verify` says nothing
# about the installed units, `systemd-analyze security --offline=true` rates
# kvswapd.service 1.0 or lower, the sysusers file makes the user and group
# kvswap, a program built with `pkg-config --cflags --libs libkvswap`
# against the staged tree links and runs (and so does the man page's
# example), the man pages cover every option and function, and `make
# uninstall` removes everything but the configuration.
#
# Prints TAP. Runs from the repository root, as `make test` does; the
# Makefile copies it to build/tests/test-systemd. Needs make, cc,
# pkg-config and scdoc; the systemd-analyze checks are skipped without it.

set -u

case $0 in
*/tests/test-systemd) build=${0%/tests/test-systemd} ;;
*) build=build ;;
esac
if [ ! -f Makefile ] || [ ! -f systemd/kvswapd.service ]; then
	echo "Bail out! run from the repository root"
	exit 1
fi

n=0
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvswap-test-systemd.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
dest=$tmp/dest
out=$tmp/out

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
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
# The installed tree's make, untouched by an outer make's job server.
# shellcheck disable=SC2317
mk() {
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "${MAKE:-make}" \
		--no-print-directory -s BUILD="$build" PREFIX=/usr \
		SYSCONFDIR=/etc DESTDIR="$dest" "$@"
}
has() { command -v "$1" >/dev/null 2>&1; }
# missing_check DESCRIPTION WHAT: passes if $missing is empty; else names
# what is missing.
missing_check() {
	if [ -z "$missing" ]; then
		pass "$1"
	else
		fail "$1"
		diag "$2:$missing"
	fi
}

# --- install -----------------------------------------------------------------

check "make install DESTDIR=... PREFIX=/usr" mk install

missing=
for f in usr/sbin/kvswapd usr/bin/kvswapctl usr/lib/libkvswap.so.0; do
	[ -f "$dest/$f" ] && [ -x "$dest/$f" ] || missing="$missing $f"
done
missing_check "programs and shared library installed" \
	"missing or not executable"

missing=
for f in usr/lib/libkvswap.a usr/include/kvswap.h \
	usr/lib/pkgconfig/libkvswap.pc \
	usr/lib/systemd/system/kvswapd.service \
	usr/lib/systemd/system/kvswapd.socket \
	usr/lib/sysusers.d/kvswap.conf etc/kvswapd/kvswapd.conf \
	usr/share/man/man8/kvswapd.8 usr/share/man/man1/kvswapctl.1 \
	usr/share/man/man5/kvswapd.conf.5 usr/share/man/man3/libkvswap.3; do
	[ -f "$dest/$f" ] || missing="$missing $f"
done
[ -d "$dest/etc/kvswapd/kvswapd.conf.d" ] ||
	missing="$missing etc/kvswapd/kvswapd.conf.d/"
missing_check "static library, header, .pc, units, sysusers, config, man pages installed" \
	missing

check "libkvswap.so is a link to libkvswap.so.0" \
	test "$(readlink "$dest/usr/lib/libkvswap.so")" = libkvswap.so.0

if has readelf && has nm; then
	check "SONAME is libkvswap.so.0" \
		sh -c "readelf -d '$dest/usr/lib/libkvswap.so.0' | grep -q 'Library soname: \[libkvswap.so.0\]'"
	nm -D --defined-only "$dest/usr/lib/libkvswap.so.0" |
		awk '$3 != "" && $3 !~ /^kvswap_/ && $3 !~ /^KVSWAP_/ { print $3 }' >"$out"
	if [ -s "$out" ]; then
		fail "libkvswap.so.0 exports only kvswap_*"
		diag "also exported:" "$(cat "$out")"
	else
		pass "libkvswap.so.0 exports only kvswap_* ($(nm -D --defined-only "$dest/usr/lib/libkvswap.so.0" | grep -c ' T kvswap_') functions)"
	fi
else
	skip "readelf and nm (binutils) missing"
	skip "readelf and nm (binutils) missing"
fi

if grep -rn '@[A-Z]*@' "$dest/usr/lib/systemd" "$dest/usr/lib/pkgconfig" >"$out"; then
	fail "no @PLACEHOLDER@ left in the installed units and .pc"
	sed 's/^/#   /' "$out"
else
	pass "no @PLACEHOLDER@ left in the installed units and .pc"
fi
check "ExecStart= runs the installed kvswapd with the installed config" \
	grep -qx 'ExecStart=/usr/sbin/kvswapd --config /etc/kvswapd/kvswapd.conf' \
	"$dest/usr/lib/systemd/system/kvswapd.service"
check "installed kvswapd runs (--version)" \
	sh -c "'$dest/usr/sbin/kvswapd' --version | grep -q '^kvswapd [0-9]'"

echo "# edited by the admin" >>"$dest/etc/kvswapd/kvswapd.conf"
check "make install again" mk install
check "an existing kvswapd.conf is kept" \
	grep -qx '# edited by the admin' "$dest/etc/kvswapd/kvswapd.conf"

# --- systemd-analyze -----------------------------------------------------------

# verify resolves everything inside --root: the units' default dependencies
# (sysinit.target, sockets.target, ...), the programs of Exec*= lines and,
# through man(1), Documentation=. So it runs on a copy of the staged tree
# with the host's targets and a stand-in /bin/kill (ExecReload=) added.
units=
for d in /usr/lib/systemd/system /lib/systemd/system; do
	[ -f "$d/sysinit.target" ] && units=$d && break
done
if ! has systemd-analyze || [ -z "$units" ]; then
	skip "systemd-analyze or the host's systemd units missing"
	skip "systemd-analyze missing"
	skip "systemd-analyze missing"
else
	vroot=$tmp/vroot
	cp -a "$dest" "$vroot"
	cp "$units"/*.target "$vroot/usr/lib/systemd/system/"
	mkdir -p "$vroot/bin"
	[ -e "$vroot/bin/kill" ] || printf '#!/bin/sh\n' >"$vroot/bin/kill"
	chmod 755 "$vroot/bin/kill"
	if has man; then
		man="--man=yes"
	else
		man="--man=no"
		diag "man(1) missing: Documentation= not checked"
	fi
	(cd "$vroot" && MANPATH="$vroot/usr/share/man" SYSTEMD_LOG_COLOR=0 \
		systemd-analyze verify $man --root="$vroot" \
		kvswapd.socket kvswapd.service) >"$out" 2>&1
	rc=$?
	if [ $rc = 0 ] && [ ! -s "$out" ]; then
		pass "systemd-analyze verify: installed units, nothing printed"
	else
		fail "systemd-analyze verify: installed units, nothing printed"
		diag "exit status $rc:"
		sed 's/^/#   /' "$out"
	fi

	systemd-analyze security --offline=true --root="$dest" \
		kvswapd.service >"$out" 2>&1
	line=$(grep 'Overall exposure level for kvswapd.service' "$out")
	score=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
	if [ -n "$score" ] && awk "BEGIN { exit !($score <= 1.0) }"; then
		pass "systemd-analyze security --offline=true: $score <= 1.0"
		diag "${line% *}"
	else
		fail "systemd-analyze security --offline=true: '${score:-?}' <= 1.0"
		grep -v '✓' "$out" | sed 's/^/#   /'
	fi

	if has systemd-sysusers; then
		systemd-sysusers --root="$vroot" >"$out" 2>&1
		if grep -q '^kvswap:x:[0-9]*:[0-9]*:.*:/usr/sbin/nologin$' "$vroot/etc/passwd" &&
			grep -q '^kvswap:x:' "$vroot/etc/group"; then
			pass "systemd-sysusers makes the system user and group kvswap"
		else
			fail "systemd-sysusers makes the system user and group kvswap"
			sed 's/^/#   /' "$out" "$vroot/etc/passwd" "$vroot/etc/group"
		fi
	else
		skip "systemd-sysusers missing"
	fi
fi

# --- the library through pkg-config -------------------------------------------

pc() {
	PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig" PKG_CONFIG_LIBDIR='' \
		pkg-config --define-prefix "$@" libkvswap
}
cat >"$tmp/client.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <kvswap.h>

/* Links against the installed libkvswap and calls it without a daemon. */
int main(int argc, char **argv)
{
	struct kvswap *k = NULL;
	const char *name = kvswap_errno_name(22);
	int r;

	if (argc != 2 || !name || strcmp(name, "EINVAL")) {
		printf("kvswap_errno_name(22) = %s\n", name ? name : "NULL");
		return 1;
	}
	r = kvswap_connect(argv[1], &k);
	if (r != -ENOENT || k) {
		printf("kvswap_connect(%s) = %d, expected %d\n", argv[1], r,
		       -ENOENT);
		return 1;
	}
	printf("%s\n", kvswap_last_error(NULL));
	return 0;
}
EOF
cflags=$(pc --cflags --libs) || cflags=
check "pkg-config --cflags --libs libkvswap points into the staged tree" \
	sh -c "printf '%s\n' '$cflags' | grep -q -- '-I$dest/usr/include' &&
	       printf '%s\n' '$cflags' | grep -q -- '-L$dest/usr/lib'"
# shellcheck disable=SC2086
check "a client builds with pkg-config" \
	"${CC:-cc}" -Wall -Werror -o "$tmp/client" "$tmp/client.c" $cflags
if LD_LIBRARY_PATH="$dest/usr/lib" "$tmp/client" "$tmp/no-such.sock" >"$out" 2>&1 &&
	LD_LIBRARY_PATH="$dest/usr/lib" ldd "$tmp/client" |
	grep -q "libkvswap.so.0 => $dest/usr/lib/libkvswap.so.0"; then
	pass "it runs on the installed libkvswap.so.0: errno name, -ENOENT"
	diag "$(cat "$out")"
else
	fail "it runs on the installed libkvswap.so.0: errno name, -ENOENT"
	sed 's/^/#   /' "$out"
fi
static=$(pc --cflags --static --libs) || static=
# Each library with an archive is linked from it; Debian ships libisal
# (libkvswap's CRC32C) as a shared library only, so that one stays dynamic.
linkargs=
for w in $static; do
	case $w in
	-l*)
		a="lib${w#-l}.a"
		if [ -e "$dest/usr/lib/$a" ] ||
			"${CC:-cc}" -print-file-name="$a" | grep -q /; then
			linkargs="$linkargs -Wl,-Bstatic $w -Wl,-Bdynamic"
		else
			linkargs="$linkargs $w"
		fi ;;
	*) linkargs="$linkargs $w" ;;
	esac
done
# shellcheck disable=SC2086
check "a client links libkvswap statically with pkg-config --static" \
	"${CC:-cc}" -o "$tmp/client-static" "$tmp/client.c" $linkargs
check "and runs" "$tmp/client-static" "$tmp/no-such.sock"
if ldd "$tmp/client-static" 2>/dev/null | grep -q libkvswap; then
	fail "without libkvswap.so"
else
	pass "without libkvswap.so"
fi
# The first code block of the EXAMPLE section.
awk '/^# EXAMPLE/ { ex = 1; next } ex && /^```/ { if (code) exit; code = 1; next }
     code' docs/man/libkvswap.3.scd >"$tmp/example.c"
# shellcheck disable=SC2086
check "libkvswap(3)'s example builds" \
	"${CC:-cc}" -Wall -Werror -o "$tmp/example" "$tmp/example.c" $cflags

# --- the man pages cover the real interfaces ------------------------------------

missing=
# shellcheck disable=SC2013
for f in $(sed -n 's/^[a-z].*[ *]\(kvswap_[a-z_]*\)(.*/\1/p' client/kvswap.h); do
	grep -q "^[a-z].*$f(" docs/man/libkvswap.3.scd &&
		grep -q "\*$f\*()" docs/man/libkvswap.3.scd || missing="$missing $f"
done
missing_check "libkvswap(3) shows and describes every function of kvswap.h" \
	"not in libkvswap(3)"

missing=
for o in $("$build/kvswapd" --help | grep -o -- '--[a-z-]*' | sort -u); do
	grep -q -- "^\*.*$o\*" docs/man/kvswapd.8.scd || missing="$missing $o"
done
missing_check "kvswapd(8) documents every option of kvswapd --help" \
	"not in kvswapd(8)"

missing=
help=$("$build/kvswapctl" help)
for o in $(printf '%s\n' "$help" | grep -o -- '--[a-z-]*' | sort -u); do
	grep -q -- "^\*.*$o\*" docs/man/kvswapctl.1.scd || missing="$missing $o"
done
for c in $(printf '%s\n' "$help" | sed -n 's/^  kvswapctl \([a-z]*\).*/\1/p'); do
	grep -q -- "^\*$c\*" docs/man/kvswapctl.1.scd || missing="$missing $c"
done
missing_check "kvswapctl(1) documents every command and option of kvswapctl help" \
	"not in kvswapctl(1)"

# --- uninstall -------------------------------------------------------------------

check "make uninstall" mk uninstall
left=$(cd "$dest" && find . ! -type d | sort)
if [ "$left" = "./etc/kvswapd/kvswapd.conf" ]; then
	pass "uninstall leaves only the configuration"
else
	fail "uninstall leaves only the configuration"
	diag "left:" "$left"
fi

echo "1..$n"
if [ $failed = 0 ]; then
	rm -rf "$tmp"
	exit 0
fi
diag "failed $failed of $n checks; files kept in $tmp"
exit 1
