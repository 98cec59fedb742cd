#!/bin/sh
# libhyperbuf's ABI against the checked-in baseline (abi/libhyperbuf.so.0.abi), with abidiff
# (Debian's abigail-tools): a removed or changed function, a changed public type, fail, unless
# the soname moved (a new major version may break what it likes, and gets a new baseline).
# Additions pass: they are what a minor version is for.
#
# usage: tools/abi-check.sh LIBRARY [BASELINE]      exit 0 compatible, 1 broken, 2 error
#        tools/abi-check.sh --write LIBRARY [BASELINE]   rewrites the baseline (make abi-baseline)
set -u
write=0
[ "${1:-}" = --write ] && { write=1; shift; }
lib=${1:?usage: tools/abi-check.sh [--write] LIBRARY [BASELINE]}
root=$(cd "$(dirname "$0")/.." && pwd)
baseline=${2:-$root/abi/libhyperbuf.so.0.abi}

if [ $write = 1 ]; then
	# Public types only, no paths of this machine, no DT_NEEDED (it depends on the build's
	# sanitizers and Xen, not on the ABI).
	abidw --headers-dir "$root/include" --drop-private-types --no-corpus-path \
		--no-comp-dir-path --drop-undefined-syms "$lib" | grep -v '<dependency name=' >"$baseline" ||
		exit 2
	echo "wrote $baseline"
	exit 0
fi
[ -r "$baseline" ] || { echo "abi-check: no baseline $baseline" >&2; exit 2; }
want=$(sed -n "s/.*soname='\([^']*\)'.*/\1/p" "$baseline" | head -n 1)
have=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
if [ "$want" != "$have" ]; then
	echo "abi-check: soname $have, the baseline's is $want: a new ABI; make abi-baseline"
	exit 0
fi
out=$(abidiff --headers-dir2 "$root/include" "$baseline" "$lib" 2>&1)
rc=$?
# abidiff's status is a bit set: 1 error, 2 usage, 4 a change, 8 an incompatible change.
if [ $((rc & 3)) -ne 0 ]; then
	echo "abi-check: abidiff failed ($rc): $out" >&2
	exit 2
fi
if [ $((rc & 8)) -ne 0 ]; then
	echo "abi-check: $lib breaks the ABI of $want (abi/libhyperbuf.so.0.abi):" >&2
	echo "$out" >&2
	echo "abi-check: restore it, or move the soname (SOMAJOR in the Makefile)" >&2
	exit 1
fi
[ $((rc & 4)) -ne 0 ] && echo "abi-check: compatible additions:" && echo "$out"
exit 0
