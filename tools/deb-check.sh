#!/bin/sh
# The Debian packages (debian/), as CI checks them on a fresh Debian 12 machine, as root:
# dpkg-buildpackage -us -uc -b in a copy of the tree, lintian with no error, then the .debs
# installed with apt-get and checked as a user would use them: pkg-config finds the library,
# the README's client builds with it and runs against the installed daemon, the installed unit
# passes systemd-analyze verify, and the daemon's user exists.
#
# usage: tools/deb-check.sh [--no-install]
#   --no-install: build and lintian, then the same checks on the packages unpacked into a
#   folder (dpkg -x) instead of installed: for a machine that is not CI's to change.
set -eu
cd "$(dirname "$0")/.."
install=1
[ "${1:-}" = --no-install ] && install=0
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }
. tools/readme-client.sh

work=$(mktemp -d /tmp/hbdeb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/hyperbuf-0.1.0
mkdir -p "$src"
git ls-files -co --exclude-standard | grep -v '^build/' | tar cf - -T - | tar xf - -C "$src"
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) ||
	{ tail -n 40 "$work/build.log"; fail "dpkg-buildpackage"; }
echo "deb-check: built $(ls "$work"/*.deb | wc -l) packages"
lintian --fail-on error "$work"/*.changes || fail "lintian reports errors"

if [ $install = 1 ]; then
	apt-get install -y -qq --no-install-recommends "$work"/hyperbufd_*.deb \
		"$work"/hyperbufctl_*.deb "$work"/libhyperbuf0_*.deb "$work"/libhyperbuf-dev_*.deb \
		"$work"/gstreamer1.0-hyperbuf_*.deb "$work"/hyperbuf-dkms_*.deb >/dev/null ||
		fail "apt-get install"
	root=
	getent passwd hyperbuf >/dev/null || fail "no user hyperbuf after installing hyperbufd"
else
	root=$work/root
	for d in "$work"/*.deb; do dpkg -x "$d" "$root"; done
	export PKG_CONFIG_SYSROOT_DIR="$root"
	export PKG_CONFIG_PATH="$root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/pkgconfig"
	export LD_LIBRARY_PATH="$root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
	grep -q '^u hyperbuf ' "$root"/usr/lib/sysusers.d/hyperbufd.conf || fail "no sysusers entry"
fi

flags=$(pkg-config --cflags --libs hyperbuf) || fail "pkg-config hyperbuf"
# shellcheck disable=SC2086
readme_client_build "$work/app" cc $flags || fail "the README client"
# A bare path in HYPERBUF_ADDRESS, as an administrator would write it.
readme_client_run "$root/usr/sbin/hyperbufd" "$work/app" "$work" "" || fail "the README client"

unit=$root/lib/systemd/system/hyperbufd.service
grep -qx "ExecStart=/usr/sbin/hyperbufd" "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
if [ $install = 1 ]; then
	systemd-analyze verify hyperbufd.service || fail "systemd-analyze verify"
else
	# Its ExecStart names /usr/sbin/hyperbufd, which is not installed here.
	sed "s|^ExecStart=/usr/sbin|ExecStart=$root/usr/sbin|" "$unit" >"$work/hyperbufd.service"
	(cd "$work" && systemd-analyze verify --man=no hyperbufd.service) || fail "systemd-analyze verify"
fi
echo "deb-check: ok"
