#!/bin/sh
# /init of the domUs the Xen cases create: loads the Xen modules, then runs commands dom0
# writes to xenstore. dom0 writes data/hbtest/cmd = "N:COMMAND" (N increasing); the agent runs
# COMMAND with sh and answers data/hbtest/out = the end of its output, then data/hbtest/rc =
# "N:STATUS". Relative xenstore paths are this domain's own (/local/domain/ID/...), reached
# through /dev/xen/xenbus. One xenstore watch wakes the agent: under TCG every process a PV
# guest starts is expensive, so nothing polls.
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
# The watch fires once when it is set up and then at every change of the command.
xenstore-watch data/hbtest/cmd | while read -r _; do
	c=$(xenstore-read data/hbtest/cmd 2>/dev/null) || continue
	n=${c%%:*}
	[ "$n" = "$last" ] && continue
	last=$n
	sh -c "${c#*:}" </dev/null >/tmp/out 2>&1
	rc=$?
	# A xenstore value is at most 2048 bytes.
	xenstore-write data/hbtest/out "$(tail -c 1500 /tmp/out)" data/hbtest/rc "$n:$rc"
done
echo "domU $id: the agent's watch ended"
