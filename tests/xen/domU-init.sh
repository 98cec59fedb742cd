#!/bin/sh
# /init of the domUs the Xen cases create: loads the Xen modules, then runs commands dom0
# writes to xenstore. dom0 writes data/hbtest/cmd = "N:COMMAND" (N increasing); the agent runs
# COMMAND with sh, copies its output to the console (prefixed with the domain) and answers
# data/hbtest/rc = "N:STATUS". Relative xenstore paths are this domain's own
# (/local/domain/ID/...), reached through /dev/xen/xenbus.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm
mount -t tmpfs tmpfs /dev/shm
for m in xen-evtchn xen-gntdev xen-gntalloc; do
	insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
id=$(xenstore-read domid)
echo "domU $id up after $(cut -d' ' -f1 /proc/uptime)s"
xenstore-write data/hbtest/ready 1
last=
while :; do
	c=$(xenstore-read data/hbtest/cmd 2>/dev/null) || c=
	n=${c%%:*}
	if [ -z "$c" ] || [ "$n" = "$last" ]; then
		usleep 50000
		continue
	fi
	last=$n
	sh -c "${c#*:}" >/tmp/out 2>&1
	rc=$?
	sed "s/^/[dom$id] /" /tmp/out
	xenstore-write data/hbtest/rc "$n:$rc"
done
