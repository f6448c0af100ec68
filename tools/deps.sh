#!/bin/sh
# Installs the Debian packages kvswap needs to build, test and run, if any
# are missing. Uses sudo when not root. Prints what it installs.
set -eu

pkgs="gcc make pkg-config liburing-dev libprotobuf-c-dev protobuf-c-compiler
libsystemd-dev libinih-dev libisal-dev scdoc perl systemd fuse3 libfuse3-dev"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs fio gnuplot-nox"
# The Python binding's tests and bench run on Debian's /usr/bin/python3.
pkgs="$pkgs python3 python3-numpy python3-torch python3-pytest"

missing=
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "deps: missing packages:$missing; run as root: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
