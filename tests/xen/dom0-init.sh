#!/bin/sh
# /init of the dom0 the Xen cases boot (tests/xen/mkimages.sh): mounts, loads the Xen modules,
# runs /root/cases.sh, then ends QEMU through its isa-debug-exit port (a PV dom0 may do that
# port I/O; poweroff would only halt Xen and leave QEMU running).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /proc/xen
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
	insmod /lib/modules/$m.ko || echo "HBX-LOG insmod $m failed"
done
mount -t xenfs xenfs /proc/xen
/root/cases.sh
sync
printf '\001' | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
