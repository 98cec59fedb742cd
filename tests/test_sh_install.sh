#!/bin/sh
# make install, the installed header and pkg-config file, and the README's client example,
# built against the installed tree (a non-default PREFIX under a DESTDIR, with the installed
# pkg-config file) and run against a real daemon; the systemd unit as installed, checked by
# systemd-analyze. Cases as in harness.h:
# `--list`, or one case name; exit 0 pass, 1 fail, 77 skip.
set -u
B=${HB_BUILD:-build}
# The build folder as `make check` names it (relative): an absolute B would write dependency
# files whose targets the relative one never matches, and header changes would stop
# rebuilding the objects that include them.
case $B in "$PWD"/*) B=${B#"$PWD"/} ;; esac
case_name=${1:-}

fail() { echo "FAIL $case_name: $*" >&2; exit 1; }

# stage [PREFIX [make variables...]]: make install into $dest (DESTDIR) for PREFIX (default
# /usr/local); with DESTDIR= among the variables, straight into PREFIX.
stage() {
	prefix=${1:-/usr/local}
	[ $# -gt 0 ] && shift
	# Cases run in parallel: one make at a time in the build folder, or two could relink
	# the same library under each other.
	exec 9>"$B/.install-lock"
	flock 9
	[ -n "${tmp:-}" ] || tmp=$(mktemp -d /tmp/hbi.XXXXXX) || fail "mktemp"
	trap 'rm -rf "$tmp"' EXIT
	dest=$tmp/dest
	san=
	# A sanitized build (make check) installs sanitized libraries; the client must match.
	ldd "$B/hyperbufd" | grep -q libasan && san="-fsanitize=address,undefined"
	make -s B="$B" SAN="$( [ -n "$san" ] && echo 1 || echo 0)" install DESTDIR="$dest" \
		PREFIX="$prefix" "$@" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install"; }
}

case "$case_name" in
--list)
	printf '%s\n' install_layout exported_symbols header_compiles_alone readme_example_runs \
		plain_make_builds_all api_matches_spec unit_verified
	;;
install_layout)
	stage
	for f in sbin/hyperbufd bin/hyperbufctl lib/libhyperbuf.so lib/libhyperbuf.a \
		include/hyperbuf.h lib/pkgconfig/hyperbuf.pc share/man/man8/hyperbufd.8 \
		share/man/man1/hyperbufctl.1 share/man/man5/hyperbuf.conf.5 \
		lib/systemd/system/hyperbufd.service lib/sysusers.d/hyperbuf.conf \
		share/hyperbuf/hyperbufd-xen.conf; do
		[ -e "$dest/usr/local/$f" ] || fail "missing $f"
	done
	# A section-3 page for every exported function, and for every one the other pages name.
	for fn in $(nm -D --defined-only "$dest/usr/local/lib/libhyperbuf.so" | awk '$2 == "T" && $3 ~ /^hb_/ {sub(/@.*/, "", $3); print $3}'); do
		[ -e "$dest/usr/local/share/man/man3/$fn.3" ] || fail "no man page for $fn"
	done
	for ref in $(grep -ho 'hb_[a-z_]* \{0,1\}(3)' docs/*.[158] docs/*.md | sed 's/ *(3)//' | sort -u); do
		[ -e "$dest/usr/local/share/man/man3/$ref.3" ] || fail "$ref(3) is named but missing"
	done
	if command -v groff >/dev/null; then
		for page in $(grep -L '^\.so' "$dest"/usr/local/share/man/man3/*.3); do
			w=$(groff -man -ww -z "$page" 2>&1) || fail "$page: groff: $w"
			[ -z "$w" ] || fail "$page: $w"
		done
	fi
	soname=$(readelf -d "$dest/usr/local/lib/libhyperbuf.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
	[ "$soname" = libhyperbuf.so.0 ] || fail "soname is '$soname'"
	[ -e "$dest/usr/local/lib/libhyperbuf.so.0" ] || fail "no libhyperbuf.so.0 link"
	# The GStreamer plugin goes into GStreamer's own folder, where gst-inspect finds it.
	if pkg-config --exists gstreamer-1.0 gstreamer-video-1.0 2>/dev/null; then
		gstdir=$(pkg-config --variable=pluginsdir gstreamer-1.0)
		[ -e "$dest$gstdir/libgsthyperbuf.so" ] || fail "no $gstdir/libgsthyperbuf.so"
		nm -D --defined-only "$dest$gstdir/libgsthyperbuf.so" | grep -q ' gst_plugin_hyperbuf_get_desc$' ||
			fail "the plugin does not export gst_plugin_hyperbuf_get_desc"
	fi
	;;
exported_symbols)
	stage
	bad=$(nm -D --defined-only "$dest/usr/local/lib/libhyperbuf.so" | awk '$2 ~ /^[TDBRW]$/ {print $3}' |
		grep -v '^hb_' | grep -v '^HYPERBUF_' || true)
	[ -z "$bad" ] || fail "exports more than hb_*: $bad"
	n=$(nm -D --defined-only "$dest/usr/local/lib/libhyperbuf.so" | grep -c ' T hb_')
	[ "$n" -ge 20 ] || fail "only $n hb_* functions exported"
	# The static library too: its internal names are local, so a program linking it
	# statically sees hb_* only (and can have a frame.c or a log_err of its own).
	bad=$(nm -g --defined-only "$dest/usr/local/lib/libhyperbuf.a" 2>/dev/null |
		awk 'NF == 3 && $2 ~ /^[TDBRW]$/ {print $3}' | grep -v '^hb_' || true)
	[ -z "$bad" ] || fail "libhyperbuf.a exports more than hb_*: $(echo $bad | head -c 400)"
	;;
header_compiles_alone)
	tmp=$(mktemp -d /tmp/hbi.XXXXXX) || fail mktemp
	trap 'rm -rf "$tmp"' EXIT
	printf '#include <hyperbuf.h>\nint x[HB_META_MAX >= 1024 ? 1 : -1];\n#if HB_VERSION_MAJOR < 0\n#error\n#endif\n' >"$tmp/a.c"
	${CC:-cc} -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -c "$tmp/a.c" -o "$tmp/a.o" ||
		fail "include/hyperbuf.h does not compile alone"
	;;
readme_example_runs)
	# Not /usr/local: the .pc must say the PREFIX of make install, not the build's.
	stage /opt/hyperbuf
	pc=$dest/opt/hyperbuf/lib/pkgconfig/hyperbuf.pc
	grep -qx 'prefix=/opt/hyperbuf' "$pc" || fail "hyperbuf.pc: $(head -3 "$pc")"
	grep -qx 'includedir=/opt/hyperbuf/include' "$pc" || fail "hyperbuf.pc: $(head -3 "$pc")"
	export PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$dest/opt/hyperbuf/lib/pkgconfig"
	flags=$(pkg-config --cflags --libs hyperbuf) || fail "pkg-config --cflags --libs hyperbuf"
	. tools/readme-client.sh
	# shellcheck disable=SC2086
	readme_client_build "$tmp/app" "${CC:-cc} $san" $flags || fail "the README example"
	(
		export LD_LIBRARY_PATH="$dest/opt/hyperbuf/lib"
		readme_client_run "$B/hyperbufd" "$tmp/app" "$tmp" unix:
	) || fail "the README example"
	;;
api_matches_spec)
	# Every name and signature of ../shared/spec/API.md, checked by the compiler.
	tmp=$(mktemp -d /tmp/hbi.XXXXXX) || fail mktemp
	trap 'rm -rf "$tmp"' EXIT
	# The static library, not the shared one other cases may be relinking meanwhile; it
	# needs the Xen libraries when it was built with them (extra -l flags are harmless).
	xen_libs=$(pkg-config --libs xengnttab xenevtchn xenstore 2>/dev/null || true)
	${CC:-cc} -std=c11 -Wall -Wextra -Werror -Iinclude tests/api_signatures.c \
		"$B/libhyperbuf.a" $(pkg-config --libs libprotobuf-c) $xen_libs -lpthread \
		$(ldd "$B/hyperbufd" | grep -q libasan && echo -fsanitize=address,undefined) \
		-o "$tmp/api" || fail "include/hyperbuf.h does not match API.md"
	"$tmp/api" || fail "the API check program failed"
	;;
unit_verified)
	# Installed for real (no DESTDIR) under a PREFIX and an SBINDIR of their own, so that
	# systemd-analyze finds the binary and the man pages the unit names.
	command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze (apt-get install systemd)"; exit 77; }
	tmp=$(mktemp -d /tmp/hbi.XXXXXX) || fail mktemp
	p=$tmp/p
	stage "$p" DESTDIR= SBINDIR="$p/daemon-bin"
	unit=$p/lib/systemd/system/hyperbufd.service
	grep -qx "ExecStart=$p/daemon-bin/hyperbufd" "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
	for want in Type=notify User=hyperbuf Group=hyperbuf FileDescriptorStoreMax=4096 \
		RuntimeDirectoryPreserve=restart CapabilityBoundingSet=CAP_CHOWN NoNewPrivileges=yes; do
		grep -qx "$want" "$unit" || fail "the unit lacks $want"
	done
	grep -q '^u hyperbuf ' "$p/lib/sysusers.d/hyperbuf.conf" || fail "no sysusers entry for hyperbuf"
	# Documentation= is checked with man(1) when it is there.
	man=--man=no
	command -v man >/dev/null && man=--man=yes
	out=$(cd "$tmp" && MANPATH="$p/share/man" systemd-analyze verify $man "$unit" 2>&1) ||
		fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify says: $out"
	# The exposure docs/DEPLOY.md states, never worse (the Xen drop-in's is documented too).
	out=$(cd "$tmp" && systemd-analyze security --offline=true "$unit" 2>&1)
	level=$(echo "$out" | sed -n 's/.*Overall exposure level for hyperbufd.service: \([0-9.]*\).*/\1/p')
	[ -n "$level" ] || fail "no exposure level in: $(echo "$out" | tail -n 3)"
	awk -v l="$level" 'BEGIN { exit !(l <= 1.4) }' || fail "exposure $level, docs/DEPLOY.md says 1.4"
	;;
plain_make_builds_all)
	# `make` with no goal must mean `all`, whatever rule comes first in the Makefile.
	goal=$(make -s -n -p B="$B" 2>/dev/null | sed -n 's/^\.DEFAULT_GOAL := //p' | tail -n 1)
	[ "$goal" = all ] || fail "the default goal is '$goal', not all"
	;;
*)
	echo "unknown case '$case_name'" >&2
	exit 2
	;;
esac
exit 0
