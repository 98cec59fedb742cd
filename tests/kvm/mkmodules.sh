#!/bin/sh
# Builds the kernel modules the dma-buf VM cases load into Debian's kernel, with kbuild against
# the matching linux-headers package:
#   OUT/hyperbuf.ko  from kmod/ (this tree)
#   OUT/udmabuf.ko   from Debian's own kernel source (linux-source-6.1: drivers/dma-buf/udmabuf.c),
#                    since Debian 12's kernel is built without CONFIG_UDMABUF (a bool in 6.1:
#                    tests/kvm/udmabuf_shim.h says what building it as a module takes)
#
# usage: tests/kvm/mkmodules.sh OUT KERNEL_IMAGE
#
# Missing packages are not an error: the reason goes to OUT/missing and the dma-buf VM cases skip
# with it, so `make tests` works without them (.ci/run installs them).
set -eu

out=$1
kernel=$2
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/missing"

missing() {
	echo "$*" >"$out/missing"
	echo "dma-buf VM tests will be skipped: $*" >&2
	exit 0
}

kver=${kernel#*/vmlinuz-}
kdir=/lib/modules/$kver/build
[ -f "$kdir/Makefile" ] || missing "no headers for $kver (apt-get install linux-headers-$kver)"
src=$(ls -v /usr/src/linux-source-*.tar.xz 2>/dev/null | tail -n 1)
[ -n "$src" ] || missing "no kernel source for udmabuf.ko (apt-get install linux-source-6.1)"
# The module must come from the same major version as the kernel that loads it.
case $src in
*"linux-source-$(echo "$kver" | cut -d. -f1-2).tar.xz") ;;
*) missing "$src does not match kernel $kver" ;;
esac

# hyperbuf.ko: a copy of kmod/, so the tree stays free of kbuild's output.
rm -rf "$out/hyperbuf"
mkdir -p "$out/hyperbuf"
cp "$top"/kmod/*.c "$top"/kmod/*.h "$top"/kmod/Kbuild "$out/hyperbuf/"
make -s -C "$kdir" M="$out/hyperbuf" modules >"$out/hyperbuf.log" 2>&1 ||
	{ cat "$out/hyperbuf.log" >&2; exit 1; }
cp "$out/hyperbuf/hyperbuf.ko" "$out/hyperbuf.ko"

# udmabuf.ko: one file out of the source tarball (its name inside is linux-source-X.Y/...).
rm -rf "$out/udmabuf"
mkdir -p "$out/udmabuf"
base=$(basename "$src" .tar.xz)
tar -xJf "$src" -C "$out/udmabuf" --strip-components=3 "$base/drivers/dma-buf/udmabuf.c" ||
	missing "cannot unpack udmabuf.c from $src"
cp "$top/tests/kvm/udmabuf_shim.h" "$out/udmabuf/"
printf 'obj-m := udmabuf.o\nccflags-y := -include $(src)/udmabuf_shim.h\n' >"$out/udmabuf/Kbuild"
make -s -C "$kdir" M="$out/udmabuf" modules >"$out/udmabuf.log" 2>&1 ||
	{ cat "$out/udmabuf.log" >&2; exit 1; }
cp "$out/udmabuf/udmabuf.ko" "$out/udmabuf.ko"
echo "$kver" >"$out/kver"
