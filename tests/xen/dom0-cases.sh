#!/bin/sh
# The Xen cases, run in dom0 by /init (tests/xen/dom0-init.sh). Starts the toolstack and
# hyperbufd, creates two PV domUs, and drives hb-xen-peer in dom0 and in the domUs (through
# the domU agent, tests/xen/domU-init.sh). Every case prints one line for the host:
#   HBX-RESULT NAME ok|fail|skip [reason]
# and its output prefixed with [NAME]; HBX-DONE ends the run.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export HYPERBUF_DEBUG=1
DLOG=/var/log/hyperbufd.log
seq=0

log() { echo "HBX-LOG [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
result() { # NAME STATUS [REASON]
	echo "HBX-RESULT $*"
}

# gx DOMID COMMAND: runs COMMAND in a domU through its agent, waits (60 s at most), returns
# its status. The output shows up on the domU's console (/var/log/xen/console).
gx() {
	dom=$1
	shift
	seq=$((seq + 1))
	xenstore-write "/local/domain/$dom/data/hbtest/cmd" "$seq:$*"
	i=0
	while [ $i -lt 1200 ]; do
		rc=$(xenstore-read "/local/domain/$dom/data/hbtest/rc" 2>/dev/null)
		case $rc in
		"$seq":*)
			return "${rc#*:}"
			;;
		esac
		usleep 50000
		i=$((i + 1))
	done
	echo "timed out waiting for dom$dom to run: $*"
	return 124
}

# Runs "NAME FUNCTION": the function's output goes to the console prefixed with [NAME].
run_case() {
	name=$1
	fn=$2
	log "case $name"
	out=/tmp/case.$name
	$fn >"$out" 2>&1
	rc=$?
	sed "s/^/[$name] /" "$out"
	if [ $rc -eq 0 ]; then
		result "$name" ok
	elif [ $rc -eq 77 ]; then
		result "$name" skip "$(sed -n 's/^SKIP: //p' "$out" | tail -n 1)"
	else
		result "$name" fail "$(tail -n 1 "$out")"
	fi
}

# ---- the toolstack, the daemon, the domUs -------------------------------------------------

setup() {
	mkdir -p /run/xen /run/xenstored /var/log/xen/console
	xenstored --pid-file /run/xenstored.pid || return 1
	xen-init-dom0 || return 1
	xenconsoled --log=guest --log-dir=/var/log/xen/console || return 1
	cat /proc/xen/capabilities
	for dom in 1 2; do
		cat >/root/domU$dom.cfg <<EOF
name = "hbu$dom"
type = "pv"
memory = 256
vcpus = 1
kernel = "/root/vmlinuz"
ramdisk = "/root/domU.cpio.gz"
extra = "console=hvc0 quiet rdinit=/init"
on_poweroff = "destroy"
on_crash = "destroy"
EOF
	done
	xl create /root/domU1.cfg || return 1
	xl create /root/domU2.cfg || return 1
	U1=$(xl domid hbu1)
	U2=$(xl domid hbu2)
	for dom in $U1 $U2; do
		i=0
		until [ "$(xenstore-read /local/domain/$dom/data/hbtest/ready 2>/dev/null)" = 1 ]; do
			i=$((i + 1))
			[ $i -lt 1200 ] || { echo "dom$dom never became ready"; return 1; }
			usleep 50000
		done
	done
	xl list
}

case_xen_boots() {
	hyperbufd -v || return 1
	gx "$U1" hb-xen-peer probe
	gx "$U2" hb-xen-peer probe
	return 0
}

log "dom0 up"
if setup >/tmp/setup 2>&1; then
	sed 's/^/[setup] /' /tmp/setup
	run_case xen_boots case_xen_boots
else
	sed 's/^/[setup] /' /tmp/setup
	result xen_boots fail "setup: $(tail -n 1 /tmp/setup)"
fi
for f in /var/log/xen/console/*.log; do
	[ -e "$f" ] && sed "s|^|[$(basename "$f" .log)] |" "$f"
done
log "done"
echo HBX-DONE
