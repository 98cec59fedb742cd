#!/bin/sh
# Builds the VM suite's guest: OUT/initramfs.cpio.gz and OUT/vmlinuz, from Debian's packages
# (busybox-static, linux-image-amd64) and the static guest program.
#
# usage: tests/kvm/mkinitramfs.sh OUT GUEST_PROGRAM INIT_SCRIPT
#   HB_VM_KERNEL   the kernel image to boot (default: the newest /boot/vmlinuz-* whose modules
#                  are installed)
#   HB_VM_MODULES  more of the kernel's modules to load at boot, dependencies first (the dma-buf
#                  image: vgem)
#   HB_VM_FILES    more files for the image's / (the dma-buf image: a static hyperbufd)
#   HB_VM_KMODS=1  also build hyperbuf.ko and udmabuf.ko for that kernel (tests/kvm/mkmodules.sh)
#                  into /lib/modules/, for the guest program to load itself
#   HB_VM_GST      a folder with libgsthyperbuf.so and hbgst-run: the image also gets them in
#                  /gst, with GStreamer's core and videotestsrc plugins from GST_PLUGINDIR and
#                  every library ldd names, and tests/kvm/gst-case.sh as /gst/case.sh
#   HB_VM_IMAGE    the image's name in OUT (default initramfs.cpio.gz); its reasons for
#                  missing go to OUT/missing-IMAGE instead of OUT/missing when it is not the
#                  default
#
# Missing packages are not an error: the reason goes to OUT/missing and the VM tests skip
# with it, so `make` works on machines without QEMU.
set -eu

out=$1
guest=$2
init=$3
image=${HB_VM_IMAGE:-initramfs.cpio.gz}
missing_file=$out/missing
[ "$image" = initramfs.cpio.gz ] || missing_file=$out/missing-$image
mkdir -p "$out"
rm -f "$missing_file"

missing() {
	echo "$*" >"$missing_file"
	echo "VM tests will be skipped: $*" >&2
	exit 0
}

busybox=$(command -v busybox 2>/dev/null || true)
[ -n "$busybox" ] || missing "no busybox (apt-get install busybox-static)"
# The guest has no libc: only a static busybox runs there.
if ldd "$busybox" >/dev/null 2>&1; then
	missing "$busybox is not static (apt-get install busybox-static)"
fi
command -v cpio >/dev/null 2>&1 || missing "no cpio (apt-get install cpio)"

kernel=${HB_VM_KERNEL:-}
if [ -z "$kernel" ]; then
	for k in $(ls -v /boot/vmlinuz-* 2>/dev/null); do
		[ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && kernel=$k
	done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] ||
	missing "no readable kernel in /boot (apt-get install linux-image-amd64)"
kver=${kernel#*/vmlinuz-}
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || missing "no $moddir/modules.dep for $kernel"

root=$out/root-$image
rm -rf "$root"
mkdir -p "$root/bin" "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
cp "$init" "$root/init"
cp "$guest" "$root/hbguest"
chmod 755 "$root/init" "$root/hbguest" "$root/bin/busybox"

# The channel is a virtio-serial port: virtio_console behind virtio_pci. Built in or a
# module depending on the kernel's config; for a module, everything it needs, dependencies
# first (modules.dep lists "path: dep dep ...").
: >"$root/lib/modules/load.list"
want() {
	path=$(sed -n "s@^\\([^:]*/$1\\.ko[^:]*\\):.*@\\1@p" "$moddir/modules.dep" | head -n 1)
	if [ -z "$path" ]; then
		grep -qs "/$1\\.ko" "$moddir/modules.builtin" && return 0
		missing "$1 is neither a module nor built into $kver"
	fi
	base=$(basename "$path")
	grep -qx "${base%%.ko*}.ko" "$root/lib/modules/load.list" && return 0
	for dep in $(sed -n "s@^$path:@@p" "$moddir/modules.dep"); do
		want "$(basename "$dep" | sed 's/\.ko.*//')"
	done
	# sh has no locals: the calls above reused path and base.
	path=$(sed -n "s@^\\([^:]*/$1\\.ko[^:]*\\):.*@\\1@p" "$moddir/modules.dep" | head -n 1)
	base=$(basename "$path")
	case $base in
	*.ko) cp "$moddir/$path" "$root/lib/modules/" ;;
	*.ko.xz) xz -dc "$moddir/$path" >"$root/lib/modules/${base%.xz}" || missing "cannot unpack $base" ;;
	*.ko.zst) zstd -qdc "$moddir/$path" >"$root/lib/modules/${base%.zst}" || missing "cannot unpack $base" ;;
	*.ko.gz) gzip -dc "$moddir/$path" >"$root/lib/modules/${base%.gz}" || missing "cannot unpack $base" ;;
	*) missing "unknown module format $base" ;;
	esac
	echo "${base%%.ko*}.ko" >>"$root/lib/modules/load.list"
}
want virtio_pci
want virtio_console
for m in ${HB_VM_MODULES:-}; do
	want "$m"
done
for f in ${HB_VM_FILES:-}; do
	cp "$f" "$root/"
done
if [ "${HB_VM_KMODS:-}" = 1 ]; then
	sh "$(dirname "$0")/mkmodules.sh" "$out/mods" "$kernel"
	[ -f "$out/mods/missing" ] && missing "$(cat "$out/mods/missing")"
	for m in hyperbuf udmabuf; do
		strip --strip-debug -o "$root/lib/modules/$m.ko" "$out/mods/$m.ko"
	done
fi

# copy_with_libs FILE DEST: FILE at DEST in the image, and every library ldd names at its own
# path (the dynamic loader included).
copy_with_libs() {
	mkdir -p "$root$(dirname "$2")"
	cp -L "$1" "$root$2"
	for l in $(ldd "$1" | grep -o '/[^ ]*'); do
		[ -e "$root$l" ] && continue
		mkdir -p "$root$(dirname "$l")"
		cp -L "$l" "$root$l"
	done
}
if [ -n "${HB_VM_GST:-}" ]; then
	plugins=${GST_PLUGINDIR:-$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null)}
	for p in libgstcoreelements.so libgstvideotestsrc.so; do
		[ -r "$plugins/$p" ] || missing "no $plugins/$p (apt-get install gstreamer1.0-plugins-base)"
		copy_with_libs "$plugins/$p" "/gst/plugins/$p"
	done
	copy_with_libs "$HB_VM_GST/libgsthyperbuf.so" /gst/plugins/libgsthyperbuf.so
	copy_with_libs "$HB_VM_GST/hbgst-run" /gst/hbgst-run
	cp "$(dirname "$0")/gst-case.sh" "$root/gst/case.sh"
	chmod 755 "$root/gst/case.sh"
fi

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/$image.tmp"
mv "$out/$image.tmp" "$out/$image"
ln -sf "$kernel" "$out/vmlinuz"
