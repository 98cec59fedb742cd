#!/bin/sh
# Builds what the Xen cases boot, from the Debian packages installed on this machine and the
# project's build folder, into OUT (default BUILD/xen):
#   OUT/xen            the hypervisor, uncompressed (QEMU's -kernel does not take the .gz)
#   OUT/vmlinuz        the Linux kernel dom0 and the domUs run
#   OUT/dom0.cpio.gz   dom0: busybox, the Xen toolstack (xenstored, xl, ...), hyperbufd,
#                      hyperbufctl, hb-xen-peer, the conformance hub hb-xen-conform-dom0, the
#                      domU image and kernel, tests/xen/dom0-*.sh
#   OUT/domU.cpio.gz   a domU: busybox, the xenstore tools, hb-xen-peer, the conformance server
#                      hb-xen-conform, tests/xen/domU-init.sh, and GStreamer with the hyperbuf
#                      plugin when it was built
# Every binary comes with the shared libraries ldd names (the guests run the same Debian
# userland as this machine), so the sanitized build of make check runs in the guests as is.
#
# usage: tests/xen/mkimages.sh BUILD [OUT]
# Prints "SKIP: reason" and exits 77 when something it needs is not installed.
set -eu

B=$1
OUT=${2:-$B/xen}
here=$(cd "$(dirname "$0")" && pwd)
XENBIN=/usr/lib/xen-4.17/bin

skip() {
	echo "SKIP: $*"
	exit 77
}

# The newest installed kernel that has the Xen modules we load.
KVER=
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V); do
	[ -e "/lib/modules/$k/kernel/drivers/xen/xen-gntalloc.ko" ] ||
		[ -e "/lib/modules/$k/kernel/drivers/xen/xen-gntalloc.ko.xz" ] || continue
	KVER=$k
done
[ -n "$KVER" ] || skip "no kernel with Xen modules in /boot (apt-get install linux-image-amd64)"
XENGZ=$(ls -1 /boot/xen-4.17-amd64.gz 2>/dev/null || true)
[ -n "$XENGZ" ] || skip "no /boot/xen-4.17-amd64.gz (apt-get install xen-hypervisor-4.17-amd64)"
[ -x "$XENBIN/xl" ] && [ -x "$XENBIN/xenstored" ] ||
	skip "no Xen toolstack in $XENBIN (apt-get install xen-utils-4.17)"
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod ||
	skip "no static busybox (apt-get install busybox-static)"
command -v cpio >/dev/null || skip "no cpio (apt-get install cpio)"
for f in hyperbufd hyperbufctl tests/xen/hb-xen-peer tests/hbholder tests/xen/hb-xen-conform \
	tests/xen/hb-xen-conform-dom0; do
	[ -x "$B/$f" ] || { echo "$B/$f is not built" >&2; exit 1; }
done

mkdir -p "$OUT"
work=$OUT/root
rm -rf "$work"
mkdir -p "$work"

# copy_bin ROOT FILE [DEST]: FILE at DEST (default: its own path) and every library it loads.
copy_bin() {
	r=$1 f=$2 d=${3:-$2}
	mkdir -p "$r$(dirname "$d")"
	cp -L "$f" "$r$d"
	for l in $(ldd "$f" | grep -o '/[^ ]*'); do
		[ -e "$r$l" ] && continue
		mkdir -p "$r$(dirname "$l")"
		cp -L "$l" "$r$l"
	done
}

# copy_module ROOT NAME: a module of $KVER into ROOT/lib/modules/NAME.ko (uncompressed).
copy_module() {
	r=$1 m=$2
	p=$(find "/lib/modules/$KVER/kernel/drivers/xen" -name "$m.ko*" | head -n 1)
	[ -n "$p" ] || { echo "module $m not found for $KVER" >&2; exit 1; }
	case $p in
	*.xz) xz -dc "$p" >"$r/lib/modules/$m.ko" ;;
	*.zst) zstd -dqc "$p" >"$r/lib/modules/$m.ko" ;;
	*) cp "$p" "$r/lib/modules/$m.ko" ;;
	esac
}

# base ROOT: the folders, busybox, libgcc_s (libxenstore's xs_close needs it for
# pthread_cancel), the xenstore tools and hb-xen-peer.
base() {
	r=$1
	mkdir -p "$r"/bin "$r"/sbin "$r"/usr/bin "$r"/usr/sbin "$r"/etc "$r"/dev "$r"/proc \
		"$r"/sys "$r"/tmp "$r"/root "$r"/lib/modules "$r"/run "$r"/var/log
	ln -s /run "$r/var/run"
	cp /bin/busybox "$r/bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
	done
	mkdir -p "$r/lib/x86_64-linux-gnu"
	cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$r/lib/x86_64-linux-gnu/"
	copy_bin "$r" /usr/bin/xenstore
	for a in read write ls list rm chmod exists watch; do
		ln -sf xenstore "$r/usr/bin/xenstore-$a"
	done
	copy_bin "$r" "$B/tests/xen/hb-xen-peer" /usr/bin/hb-xen-peer
}

# ---- a domU -----------------------------------------------------------------------------
U=$work/domU
base "$U"
for m in xen-evtchn xen-gntdev xen-gntalloc; do copy_module "$U" "$m"; done
# GStreamer for gst_domU_to_domU, only when the plugin was built (and HB_XEN_NO_GST is not
# set, for a run that should boot the smaller image): the pipeline runner and the libraries
# it loads, the core and videotestsrc plugins, and ours (docs/GSTREAMER.md).
if [ -z "${HB_XEN_NO_GST:-}" ] && [ -x "$B/tests/gst/hbgst-run" ] &&
	[ -f "$B/gst/libgsthyperbuf.so" ]; then
	gstdir=$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null || true)
	if [ -r "$gstdir/libgstcoreelements.so" ] && [ -r "$gstdir/libgstvideotestsrc.so" ]; then
		copy_bin "$U" "$B/tests/gst/hbgst-run" /usr/bin/hbgst-run
		for p in libgstcoreelements.so libgstvideotestsrc.so; do
			copy_bin "$U" "$gstdir/$p" "/usr/lib/gst/$p"
		done
		copy_bin "$U" "$B/gst/libgsthyperbuf.so" /usr/lib/gst/libgsthyperbuf.so
		# Debug info is most of their size and every byte of the image is unpacked at each
		# boot under TCG; the symbols stay for the sanitizers' reports.
		strip --strip-debug "$U/usr/lib/gst/libgsthyperbuf.so" "$U/usr/bin/hbgst-run" 2>/dev/null ||
			true
		cp "$here/gst-case.sh" "$U/usr/bin/hbgst-case"
		chmod 755 "$U/usr/bin/hbgst-case"
	fi
fi
# The conformance suite's server (tests/xen/conform_domU.c).
copy_bin "$U" "$B/tests/xen/hb-xen-conform" /usr/bin/hb-xen-conform
cp "$here/domU-init.sh" "$U/init"
chmod 755 "$U/init"
(cd "$U" && find . | cpio -R 0:0 -H newc -o 2>/dev/null | gzip -1) >"$OUT/domU.cpio.gz"

# ---- dom0 -------------------------------------------------------------------------------
D=$work/dom0
base "$D"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd; do copy_module "$D" "$m"; done
copy_module "$D" xenfs
for b in xenstored xen-init-dom0 xenconsoled xl; do
	copy_bin "$D" "$XENBIN/$b" "/usr/sbin/$b"
done
mkdir -p "$D/var/lib/xenstored" "$D/var/lib/xen" "$D/var/log/xen/console" "$D/etc/xen"
: >"$D/etc/xen/xl.conf"
copy_bin "$D" "$B/hyperbufd" /usr/sbin/hyperbufd
copy_bin "$D" "$B/hyperbufctl" /usr/bin/hyperbufctl
# The stand-in for systemd's fd store (docs/RESTART.md), for the restart case.
copy_bin "$D" "$B/tests/hbholder" /usr/sbin/hbholder
# The conformance suite's hub (tests/xen/conform_dom0.c), which finds hyperbufd and
# hyperbufctl in $HB_BUILD as in a build folder: /opt/hb.
copy_bin "$D" "$B/tests/xen/hb-xen-conform-dom0" /usr/bin/hb-xen-conform-dom0
mkdir -p "$D/opt/hb"
ln -s /usr/sbin/hyperbufd "$D/opt/hb/hyperbufd"
ln -s /usr/bin/hyperbufctl "$D/opt/hb/hyperbufctl"
cp "/boot/vmlinuz-$KVER" "$D/root/vmlinuz"
cp "$OUT/domU.cpio.gz" "$D/root/domU.cpio.gz"
[ -x "$U/usr/bin/hbgst-run" ] && : >"$D/root/domU-has-gst"
cp "$here/dom0-init.sh" "$D/init"
cp "$here/dom0-cases.sh" "$D/root/cases.sh"
chmod 755 "$D/init" "$D/root/cases.sh"
(cd "$D" && find . | cpio -R 0:0 -H newc -o 2>/dev/null | gzip -1) >"$OUT/dom0.cpio.gz"

cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
gzip -dc "$XENGZ" >"$OUT/xen"
rm -rf "$work"
echo "images: kernel $KVER, dom0 $(du -k "$OUT/dom0.cpio.gz" | cut -f1) KiB," \
	"domU $(du -k "$OUT/domU.cpio.gz" | cut -f1) KiB"
