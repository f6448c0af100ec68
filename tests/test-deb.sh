#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The Debian packages, built and used as an operator would: `make deb`
# (dpkg-buildpackage -us -uc -b in a copy of the checkout) builds kvswapd,
# libkvswap0, libkvswap-dev and kvswapctl; lintian reports no error and no
# warning; the packages hold what they should, with the conffile, the
# symbols file and the maintainer scripts debhelper generated. Then they
# are installed with dpkg into a throwaway root: overlays over this
# machine's /usr, /etc and /var in a private mount namespace, so that dpkg,
# the maintainer scripts, systemd-sysusers and deb-systemd-helper run for
# real and the host is left untouched. systemd is not PID 1 here, so the
# root's /usr/bin/systemctl is a stand-in (written below) that starts
# kvswapd.service the way its installed units say (the socket from
# ListenSequentialPacket= through systemd-socket-activate, User=, UMask=,
# StateDirectory=, the ExecStart= line) and stops it with SIGTERM: the
# maintainer scripts' start, restart and stop act on a real daemon. In that
# root: a member of the group kvswap stores and reads back a file with the
# installed kvswapctl, a program builds against libkvswap-dev with
# pkg-config and talks to the daemon, an upgrade (0.1.0 -> a higher
# version) restarts the daemon with a checkpoint and every stored entry
# reads back, remove stops the daemon, purge removes /etc/kvswapd but keeps
# the store, and KVSWAPD_PURGE_STORE=yes removes the store too.
#
# Prints TAP. Runs from the repository root (the Makefile copies it to
# build/tests/test-deb; `make test` and `make test-deb` run it). Needs root
# for the mount namespace; without it, or without overlayfs, the install
# part skips, saying why.

set -u

case $0 in
*/tests/test-deb) build=${0%/tests/test-deb} ;;
*) build=build ;;
esac
if [ ! -f Makefile ] || [ ! -d debian ]; then
	echo "Bail out! run from the repository root"
	exit 1
fi

# Everything after this runs in a mount namespace of its own, so that the
# root's mounts can never outlive the test or show on the host.
if [ -z "${KVSWAP_TEST_DEB_NS:-}" ] && [ "$(id -u)" = 0 ] &&
	unshare -m --propagation private true 2>/dev/null; then
	KVSWAP_TEST_DEB_NS=1 exec unshare -m --propagation private "$0" "$@"
fi

n=0
failed=0
mkdir -p "$build/tmp"
# On the build's filesystem: overlay upper layers and the store need a real
# one (not tmpfs).
tmp=$(mktemp -d "$(cd "$build/tmp" && pwd)/test-deb.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
out=$tmp/out
root=$tmp/root

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
has() { command -v "$1" >/dev/null 2>&1; }

mounted=
cleanup() {
	if [ -n "$mounted" ]; then
		# Whatever still runs in the root (a daemon, its wrapper).
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] &&
				kill -KILL "${p#/proc/}" 2>/dev/null
		done
		# Lazily: a mount still busy is detached all the same, and rm
		# cannot reach through a detached one.
		umount -R -l "$root" 2>/dev/null
		# Overlays over the host's /usr, /etc, /var: never rm -rf while
		# one is mounted.
		if grep -q " $root" /proc/self/mounts; then
			echo "# mounts left under $root: not removing $tmp"
			return
		fi
	fi
	[ "$failed" = 0 ] && rm -rf "$tmp"
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------------

debs=$(cd "$build" && pwd)/deb
mk() {
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "${MAKE:-make}" \
		--no-print-directory BUILD="$build" DEB_DIR="$debs" "$@"
}
if ! has dpkg-buildpackage || ! has dh || ! has lintian; then
	echo "1..0 # SKIP dpkg-buildpackage, debhelper or lintian missing (tools/deps.sh installs them)"
	exit 0
fi
if mk deb >"$tmp/build.log" 2>&1; then
	pass "make deb (dpkg-buildpackage -us -uc -b) builds the packages"
else
	fail "make deb (dpkg-buildpackage -us -uc -b) builds the packages"
	tail -n 40 "$tmp/build.log" | sed 's/^/#   /'
	echo "1..$n"
	exit 1
fi

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=$(sed -n 's/.*KVSWAP_VERSION "\(.*\)".*/\1/p' proto/kvswap-protocol.h)
check "debian/changelog's version ($version) is KVSWAP_VERSION ($upstream)" \
	test "$version" = "$upstream"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb() { echo "$debs/${1}_${version}_$arch.deb"; }
missing=
for p in kvswapd libkvswap0 libkvswap-dev kvswapctl; do
	[ -f "$(deb $p)" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
	pass "kvswapd, libkvswap0, libkvswap-dev, kvswapctl built"
else
	fail "kvswapd, libkvswap0, libkvswap-dev, kvswapctl built"
	diag "missing:$missing" "$(ls "$debs")"
fi

# --- lintian ---------------------------------------------------------------------

changes=$debs/kvswap_${version}_$arch.changes
lintian -I --show-overrides "$changes" >"$debs/lintian.txt" 2>&1
rc=$?
if [ $rc = 0 ] && ! grep -q '^[EW]: ' "$debs/lintian.txt"; then
	pass "lintian: no error, no warning (exit 0)"
else
	fail "lintian: no error, no warning (exit $rc)"
fi
diag "lintian -I --show-overrides (also in $debs/lintian.txt):"
grep -v '^running with root privileges' "$debs/lintian.txt" | sed 's/^/  /' |
	sed 's/^/# /'

# --- contents ----------------------------------------------------------------------

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
# has_files DEB PATH...: DEB holds every PATH.
has_files() {
	d=$1
	shift
	dpkg-deb -c "$d" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/list"
	for f; do
		grep -qx "$f" "$tmp/list" || { echo "$d: no $f"; return 1; }
	done
}
check "kvswapd: daemon, units, sysusers, conffile, conf.d, man pages" \
	has_files "$(deb kvswapd)" /usr/sbin/kvswapd \
	/lib/systemd/system/kvswapd.service /lib/systemd/system/kvswapd.socket \
	/usr/lib/sysusers.d/kvswap.conf /etc/kvswapd/kvswapd.conf \
	/etc/kvswapd/kvswapd.conf.d/ /usr/share/man/man8/kvswapd.8.gz \
	/usr/share/man/man5/kvswapd.conf.5.gz
check "kvswapd: /etc/kvswapd/kvswapd.conf is its one conffile" \
	test "$(dpkg-deb --ctrl-tarfile "$(deb kvswapd)" | tar -xOf - ./conffiles)" = \
	/etc/kvswapd/kvswapd.conf
check "libkvswap0: libkvswap.so.0 in the multiarch folder" \
	has_files "$(deb libkvswap0)" "/usr/lib/$ma/libkvswap.so.0"
check "libkvswap-dev: header, .so link, static library, .pc, libkvswap(3)" \
	has_files "$(deb libkvswap-dev)" /usr/include/kvswap.h \
	"/usr/lib/$ma/libkvswap.so" "/usr/lib/$ma/libkvswap.a" \
	"/usr/lib/$ma/pkgconfig/libkvswap.pc" /usr/share/man/man3/libkvswap.3.gz
check "kvswapctl: kvswapctl and kvswapctl(1)" \
	has_files "$(deb kvswapctl)" /usr/bin/kvswapctl \
	/usr/share/man/man1/kvswapctl.1.gz
dpkg-deb --ctrl-tarfile "$(deb libkvswap0)" | tar -xOf - ./symbols >"$tmp/symbols" 2>&1
nodes=$(sed -n 's/^ \(KVSWAP_[0-9.]*\)@.*/\1/p' "$tmp/symbols" | sort | tr '\n' ' ')
check "libkvswap0's symbols file has every version node of libkvswap.sym ($nodes)" \
	test "$nodes" = "$(sed -n 's/^\(KVSWAP_[0-9.]*\) {.*/\1/p' client/libkvswap.sym | sort | tr '\n' ' ')"
# The generated scripts: dh_installsysusers, then dh_installsystemd with
# the choices in debian/rules. (What they do is checked below, in the root.)
dpkg-deb --ctrl-tarfile "$(deb kvswapd)" | tar -xf - -C "$tmp" ./postinst ./prerm ./postrm
check "kvswapd's postinst: sysusers, socket enabled and started, service restarted on upgrade" \
	sh -c "grep -q 'systemd-sysusers .* kvswap.conf' '$tmp/postinst' &&
	       grep -q \"deb-systemd-helper enable 'kvswapd.socket'\" '$tmp/postinst' &&
	       grep -q \"deb-systemd-invoke start 'kvswapd.socket'\" '$tmp/postinst' &&
	       grep -q \"deb-systemd-invoke \\\$_dh_action 'kvswapd.service'\" '$tmp/postinst'"
check "kvswapd's prerm stops service and socket on remove; postrm purges" \
	sh -c "grep -q \"stop 'kvswapd.service'\" '$tmp/prerm' &&
	       grep -q \"stop 'kvswapd.socket'\" '$tmp/prerm' &&
	       grep -q 'rm -rf .*/etc/kvswapd' '$tmp/postrm'"

# --- a throwaway root ----------------------------------------------------------------

# Nothing below runs without the root; one place says why.
root_skip() {
	why=$1
	for d in "dpkg -i: sysusers, socket enabled" "round trip" \
		"libkvswap-dev client" "upgrade keeps entries" "remove stops" \
		"purge keeps the store" "KVSWAPD_PURGE_STORE=yes"; do
		skip "$d: $why"
	done
	echo "1..$n"
	[ $failed = 0 ]
	exit
}
[ -n "${KVSWAP_TEST_DEB_NS:-}" ] ||
	root_skip "needs root and unshare -m (a private mount namespace)"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null
# The root is a tmpfs of its own, so that one lazy unmount takes it all.
mkdir -p "$root"
mount -t tmpfs -o mode=755 tmpfs "$root" 2>"$out" ||
	root_skip "cannot mount in the namespace: $(cat "$out")"
mounted=1
for d in usr etc var; do
	mkdir -p "$tmp/ov/$d/upper" "$tmp/ov/$d/work" "$root/$d"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/ov/$d/upper,workdir=$tmp/ov/$d/work" \
		"$root/$d" 2>"$out" || root_skip "overlayfs refused: $(cat "$out")"
done
for l in /bin /sbin /lib /lib32 /lib64 /libx32; do
	[ -L "$l" ] && cp -P "$l" "$root/"
done
mkdir -p "$root/proc" "$root/dev" "$root/run" "$root/tmp" "$root/root" "$root/home"
mount -t proc proc "$root/proc" && mount -t tmpfs -o mode=755 tmpfs "$root/dev" &&
	mount -t tmpfs -o mode=755 tmpfs "$root/run" &&
	mount -t tmpfs -o mode=1777 tmpfs "$root/tmp" &&
	mknod -m 666 "$root/dev/null" c 1 3 && mknod -m 666 "$root/dev/zero" c 1 5 &&
	mknod -m 666 "$root/dev/urandom" c 1 9 && mknod -m 666 "$root/dev/random" c 1 8 ||
	root_skip "could not mount /proc, /dev, /run, /tmp in the root"
# The maintainer scripts act on units only where systemd runs.
mkdir -p "$root/run/systemd/system" "$root/tmp/debs"
cp "$(deb kvswapd)" "$(deb libkvswap0)" "$(deb libkvswap-dev)" "$(deb kvswapctl)" \
	"$root/tmp/debs/"

# The stand-in systemctl: logs each call; leaves what works offline
# (is-enabled, preset: unit files and links) to the real one; start, stop,
# restart and try-restart of kvswapd.socket
# and kvswapd.service run kvswapd as the installed units say. The socket
# and the service are one process here: systemd-socket-activate listens and
# execs the service's ExecStart= on the first connection, as systemd does.
mv "$root/usr/bin/systemctl" "$root/usr/bin/systemctl.real"
# A container image's policy-rc.d forbids every start (exit 101): not in
# this root, whose services are the point.
rm -f "$root/usr/sbin/policy-rc.d"
cat >"$root/usr/bin/systemctl" <<'EOF'
#!/bin/sh
# tests/test-deb.sh's stand-in for systemctl in its throwaway root.
state=/run/stub-systemd
units=/lib/systemd/system
mkdir -p "$state"
echo "systemctl $*" >>/var/log/test-deb-systemctl.log
action=
list=
for a; do
	case $a in
	-*) ;;
	*) if [ -z "$action" ]; then action=$a; else list="$list $a"; fi ;;
	esac
done
key() { sed -n "s/^$2=//p" "$units/$1" | tail -n 1; }
pid() { cat "$state/kvswapd.pid" 2>/dev/null; }
listening() { p=$(pid); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
serving() { listening && [ "$(cat /proc/"$(pid)"/comm)" = kvswapd ]; }
start() {
	listening && return 0
	user=$(key kvswapd.service User)
	group=$(key kvswapd.service Group)
	path=$(key kvswapd.socket ListenSequentialPacket)
	# StateDirectory=kvswap, StateDirectoryMode=0700; DirectoryMode=0755.
	install -d -o "$user" -g "$group" -m 0700 /var/lib/kvswap
	install -d -m 0755 "${path%/*}"
	rm -f "$state/kvswapd.status" "$path"
	# LimitMEMLOCK=64G where this machine allows it.
	ulimit -l 67108864 2>/dev/null
	setsid sh -c 'umask "$1"; shift
		systemd-socket-activate --seqpacket --fdname="$1" -l "$2" \
			setpriv --reuid="$3" --regid="$4" --init-groups -- $5 &
		echo $! >"$6/kvswapd.pid"
		wait $!
		echo $? >"$6/kvswapd.status"' sh "$(key kvswapd.service UMask)" \
		"$(key kvswapd.socket FileDescriptorName)" "$path" "$user" \
		"$group" "$(key kvswapd.service ExecStart)" "$state" \
		</dev/null >>/var/log/kvswapd.log 2>&1 &
	i=0
	while [ ! -S "$path" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -S "$path" ] || return 1
	# SocketUser=, SocketGroup=, SocketMode=.
	chown "$(key kvswapd.socket SocketUser):$(key kvswapd.socket SocketGroup)" "$path"
	chmod "$(key kvswapd.socket SocketMode)" "$path"
}
stop() {
	listening || return 0
	kill -TERM "$(pid)"
	# TimeoutStopSec=60s
	i=0
	while [ ! -f "$state/kvswapd.status" ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo "kvswapd exited with status $(cat "$state/kvswapd.status")" >>/var/log/test-deb-systemctl.log
	rm -f "$state/kvswapd.pid"
}
rc=0
for u in $list; do
	case $action in
	daemon-reload) ;;
	# What systemctl does offline (on unit files and links), the real
	# one does.
	is-enabled) systemctl.real --root=/ is-enabled "$u" || rc=$? ;;
	preset) exec systemctl.real "$@" ;;
	is-active)
		case $u in
		kvswapd.socket) listening || rc=3 ;;
		kvswapd.service) serving || rc=3 ;;
		*) rc=3 ;;
		esac ;;
	start) start || rc=1 ;;
	stop) stop ;;
	restart) stop; start || rc=1 ;;
	try-restart) if listening; then stop; start || rc=1; fi ;;
	*) echo "test-deb systemctl: $action not emulated" >&2; rc=1 ;;
	esac
done
exit $rc
EOF
chmod 755 "$root/usr/bin/systemctl"
inroot() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
calls() { cat "$root/var/log/test-deb-systemctl.log" 2>/dev/null; }
# as_client CMD...: runs CMD as alice, a member of the group kvswap.
as_client() {
	inroot setpriv --reuid=alice --regid=alice --init-groups -- "$@"
}

# --- install -------------------------------------------------------------------------

if inroot dpkg -i /tmp/debs/kvswapd_"${version}"_"$arch".deb \
	/tmp/debs/libkvswap0_"${version}"_"$arch".deb \
	/tmp/debs/libkvswap-dev_"${version}"_"$arch".deb \
	/tmp/debs/kvswapctl_"${version}"_"$arch".deb >"$out" 2>&1 &&
	inroot getent passwd kvswap | grep -q ':/usr/sbin/nologin$' &&
	inroot getent group kvswap >/dev/null &&
	[ -L "$root/etc/systemd/system/sockets.target.wants/kvswapd.socket" ] &&
	! ls "$root"/etc/systemd/system/*.wants/kvswapd.service >/dev/null 2>&1 &&
	calls | grep -qx 'systemctl --quiet --system start kvswapd.socket' &&
	[ "$(inroot stat -c %G:%a /run/kvswap/kvswapd.sock 2>/dev/null)" = kvswap:660 ]; then
	pass "dpkg -i: user and group kvswap made, kvswapd.socket enabled and started (root:kvswap 0660), the service not enabled"
else
	fail "dpkg -i: user and group kvswap made, kvswapd.socket enabled and started (root:kvswap 0660), the service not enabled"
	sed 's/^/#   /' "$out"
	calls | sed 's/^/#   /'
fi

# A small store: kvswapd reads kvswapd.conf.d/ when the first connection
# starts it. A client: alice, in the group kvswap as README.md says.
printf '[kvswapd]\nstore-size = 64M\n' >"$root/etc/kvswapd/kvswapd.conf.d/50-test.conf"
inroot useradd -m alice && inroot usermod -aG kvswap alice
head -c 3145851 /dev/urandom >"$root/tmp/f1"
head -c 1048576 /dev/urandom >"$root/tmp/f2"
head -c 4097 /dev/urandom >"$root/tmp/f3"
chmod 644 "$root"/tmp/f?
if as_client kvswapctl put k1 /tmp/f1 --segment-size 1M >"$out" 2>&1 &&
	as_client kvswapctl get k1 /tmp/g1 >>"$out" 2>&1 &&
	cmp "$root/tmp/f1" "$root/tmp/g1" >>"$out" 2>&1 &&
	[ "$(inroot ps -o user= -p "$(cat "$root/run/stub-systemd/kvswapd.pid")")" = kvswap ] &&
	[ "$(inroot stat -c %U:%a /var/lib/kvswap/store0.kvs)" = kvswap:600 ]; then
	pass "round trip: the installed kvswapctl (as a member of kvswap) and kvswapd (as kvswap, store in /var/lib/kvswap)"
else
	fail "round trip: the installed kvswapctl (as a member of kvswap) and kvswapd (as kvswap, store in /var/lib/kvswap)"
	sed 's/^/#   /' "$out" "$root/var/log/kvswapd.log"
fi

cat >"$root/tmp/client.c" <<'EOF'
#include <stdio.h>
#include <kvswap.h>

/* Built against libkvswap-dev, run on libkvswap0: connects and lists. */
int main(void)
{
	struct kvswap *k;
	int r = kvswap_connect(NULL, &k);

	if (r < 0) {
		printf("kvswap_connect: %d %s\n", r, kvswap_last_error(NULL));
		return 1;
	}
	kvswap_close(k);
	printf("connected\n");
	return 0;
}
EOF
if inroot sh -c 'cc -Wall -Werror -o /tmp/client /tmp/client.c $(pkg-config --cflags --libs libkvswap)' >"$out" 2>&1 &&
	as_client /tmp/client >>"$out" 2>&1 &&
	inroot ldd /tmp/client >>"$out" 2>&1 &&
	grep -Eq "libkvswap.so.0 => (/usr)?/lib/$ma/libkvswap.so.0" "$out"; then
	pass "a program built with pkg-config libkvswap connects through libkvswap0"
else
	fail "a program built with pkg-config libkvswap connects through libkvswap0"
	sed 's/^/#   /' "$out"
fi

# --- upgrade -------------------------------------------------------------------------

# The next version: the same files with a higher version, so that dpkg
# runs every script as an upgrade from $version (prerm upgrade, postinst
# configure $version) against the running daemon.
v2=$version+test2
for p in kvswapd kvswapctl; do
	rm -rf "$tmp/repack"
	dpkg-deb -R "$(deb $p)" "$tmp/repack" &&
		sed -i "s/^Version: .*/Version: $v2/" "$tmp/repack/DEBIAN/control" &&
		dpkg-deb -b "$tmp/repack" "$root/tmp/debs/${p}_${v2}_$arch.deb" >/dev/null
done
as_client kvswapctl put k2 /tmp/f2 --segment-size 256K >"$out" 2>&1
as_client kvswapctl put k3 /tmp/f3 >>"$out" 2>&1
echo "# edited by the admin" >>"$root/etc/kvswapd/kvswapd.conf"
old=$(cat "$root/run/stub-systemd/kvswapd.pid")
: >"$root/var/log/test-deb-systemctl.log"
inroot dpkg -i /tmp/debs/kvswapd_"${v2}"_"$arch".deb \
	/tmp/debs/kvswapctl_"${v2}"_"$arch".deb >>"$out" 2>&1
ok=1
for k in 1 2 3; do
	as_client kvswapctl get k$k /tmp/h$k >>"$out" 2>&1 &&
		cmp "$root/tmp/f$k" "$root/tmp/h$k" >>"$out" 2>&1 || ok=
done
new=$(cat "$root/run/stub-systemd/kvswapd.pid" 2>/dev/null)
if [ -n "$ok" ] && [ "$(inroot dpkg-query -W -f '${Version}' kvswapd)" = "$v2" ] &&
	calls | grep -qx 'systemctl --quiet --system restart kvswapd.service' &&
	calls | grep -qx 'kvswapd exited with status 0' &&
	[ -n "$new" ] && [ "$new" != "$old" ] &&
	[ "$(cat "/proc/$new/comm")" = kvswapd ] &&
	grep -qx '# edited by the admin' "$root/etc/kvswapd/kvswapd.conf"; then
	pass "upgrade $version -> $v2: postinst restarts kvswapd (exit 0: checkpoint written), all 3 entries read back, the edited conffile kept"
else
	fail "upgrade $version -> $v2: postinst restarts kvswapd (exit 0: checkpoint written), all 3 entries read back, the edited conffile kept"
	diag "pid $old -> ${new:-none}"
	sed 's/^/#   /' "$out"
	calls | sed 's/^/#   /'
	tail -n 20 "$root/var/log/kvswapd.log" | sed 's/^/#   /'
fi

# --- remove, purge ---------------------------------------------------------------------

: >"$root/var/log/test-deb-systemctl.log"
if inroot dpkg -r kvswapd >"$out" 2>&1 &&
	calls | grep -qx 'kvswapd exited with status 0' &&
	! kill -0 "$new" 2>/dev/null && [ ! -e "$root/usr/sbin/kvswapd" ] &&
	[ -f "$root/etc/kvswapd/kvswapd.conf" ] &&
	[ -f "$root/var/lib/kvswap/store0.kvs" ]; then
	pass "dpkg -r: kvswapd stopped (exit 0), configuration and store kept"
else
	fail "dpkg -r: kvswapd stopped (exit 0), configuration and store kept"
	sed 's/^/#   /' "$out"
	calls | sed 's/^/#   /'
fi

if inroot dpkg -P kvswapd >"$out" 2>&1 && [ ! -e "$root/etc/kvswapd" ] &&
	[ ! -e "$root/etc/systemd/system/sockets.target.wants/kvswapd.socket" ] &&
	[ -f "$root/var/lib/kvswap/store0.kvs" ] &&
	inroot getent passwd kvswap >/dev/null; then
	pass "dpkg -P: /etc/kvswapd (with conf.d/) and the unit links gone; store and user kvswap kept"
else
	fail "dpkg -P: /etc/kvswapd (with conf.d/) and the unit links gone; store and user kvswap kept"
	sed 's/^/#   /' "$out"
	ls -laR "$root/etc/kvswapd" 2>&1 | sed 's/^/#   /'
fi

if inroot dpkg -i /tmp/debs/kvswapd_"${v2}"_"$arch".deb >"$out" 2>&1 &&
	inroot env KVSWAPD_PURGE_STORE=yes dpkg -P kvswapd >>"$out" 2>&1 &&
	[ ! -e "$root/var/lib/kvswap" ]; then
	pass "dpkg -P with KVSWAPD_PURGE_STORE=yes removes the store too"
else
	fail "dpkg -P with KVSWAPD_PURGE_STORE=yes removes the store too"
	sed 's/^/#   /' "$out"
fi

echo "1..$n"
if [ $failed = 0 ]; then
	exit 0
fi
diag "failed $failed of $n checks; files kept in $tmp"
exit 1
