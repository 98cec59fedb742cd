#!/bin/sh
# The Xen cases, run in dom0 by /init (tests/xen/dom0-init.sh). Starts the toolstack and
# hyperbufd, creates two PV domUs, and drives hb-xen-peer (tests/xen/peer.c) in dom0 and in
# the domUs (through the domU agent, tests/xen/domU-init.sh). Every case prints one line for
# the host:
#   HBX-RESULT NAME ok|fail|skip [reason]
# and its output prefixed with [NAME]; HBX-DONE ends the run.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allow_user_segv_handler=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export HYPERBUF_DEBUG=1
CONF=/etc/hyperbuf/hyperbufd.conf
DLOG=/var/log/hyperbufd.log
PEER=hb-xen-peer
FRAME=8294400 # 1920 x 1080 x 4
echo 0 >/tmp/gx.seq
dpid=

log() { echo "HBX-LOG [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# ---- running things in the domUs (the agent) and in dom0 -----------------------------------

# wait_node PATH PATTERN SECONDS: waits until the xenstore node PATH matches the shell
# PATTERN; prints its value. A watch wakes us (it fires when set up and at every change), so
# this starts no process per check.
wait_node() {
	local path=$1 pat=$2 secs=$3 fifo=/tmp/watch.$$.$(now_ms) wpid v _
	mkfifo "$fifo"
	xenstore-watch "$path" >"$fifo" &
	wpid=$!
	exec 3<"$fifo"
	rm -f "$fifo"
	while read -r -t "$secs" _ <&3; do
		v=$(xenstore-read -R "$path" 2>/dev/null) || continue
		case $v in
		$pat)
			kill $wpid 2>/dev/null
			exec 3<&-
			echo "$v"
			return 0
			;;
		esac
	done
	kill $wpid 2>/dev/null
	exec 3<&-
	return 1
}

# gx DOMID COMMAND: runs COMMAND in a domU, prints the end of its output, returns its status.
gx() {
	local dom=$1 rc t0 seq
	shift
	# The counter lives in a file: gx also runs in subshells (pipelines, $(...)).
	read -r seq </tmp/gx.seq
	seq=$((seq + 1))
	echo $seq >/tmp/gx.seq
	t0=$(now_ms)
	xenstore-write "/local/domain/$dom/data/hbtest/cmd" "$seq:$*"
	if ! rc=$(wait_node "/local/domain/$dom/data/hbtest/rc" "$seq:*" 90); then
		echo "timed out waiting for dom$dom to run: $*"
		return 124
	fi
	{
		xenstore-read -R "/local/domain/$dom/data/hbtest/out" 2>/dev/null
		echo
	} | sed -e '/^$/d' -e "s/^/dom$dom| /"
	echo "dom$dom| ($(($(now_ms) - t0)) ms: $*)"
	return "${rc#*:}"
}

# gbg DOMID NAME COMMAND [READY]: starts COMMAND in the background in a domU; with READY, a
# file COMMAND creates, returns once it exists.
gbg() {
	local dom=$1 name=$2 cmd=$3 ready=${4:-}
	local wait=
	[ -n "$ready" ] &&
		wait="i=0; while [ ! -e $ready ] && [ \$i -lt 900 ]; do usleep 100000; i=\$((i+1)); done; test -e $ready"
	gx "$dom" "rm -f $ready; (($cmd) >/tmp/bg.$name 2>&1; xenstore-write data/hbtest/bg/$name \$?) & $wait"
}

# gwait DOMID NAME: waits for a background command (90 s at most), prints its output, returns
# its status.
gwait() {
	local dom=$1 name=$2 st
	st=$(wait_node "/local/domain/$dom/data/hbtest/bg/$name" "*" 90)
	gx "$dom" "cat /tmp/bg.$name"
	[ -n "$st" ] || { echo "dom$dom: $name did not finish"; return 124; }
	return "$st"
}

# dbg NAME COMMAND / dwait NAME: the same in dom0.
dbg() {
	local name=$1
	shift
	("$@" >/tmp/d.$name 2>&1; echo $? >/tmp/d.$name.rc) &
}
dwait() {
	local i=0
	while [ ! -e /tmp/d.$1.rc ] && [ $i -lt 900 ]; do
		usleep 100000
		i=$((i + 1))
	done
	sed 's/^/dom0| /' /tmp/d.$1
	[ -e /tmp/d.$1.rc ] || { echo "dom0: $1 did not finish"; return 124; }
	return "$(cat /tmp/d.$1.rc)"
}
dready() {
	local i=0
	until [ -e "$1" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { echo "dom0: $1 never appeared"; return 1; }
		usleep 100000
	done
}

# share NAME EXPORTER_DOM IMPORTER_DOM SIZE "EXPORT OPTIONS" "IMPORT OPTIONS": the importer
# connects first, then the exporter exports and waits for the release; both must succeed.
share() {
	local name=$1 from=$2 to=$3 size=$4 eopts=$5 iopts=$6 erc irc
	local ready=/tmp/ready.$name
	if [ "$to" = 0 ]; then
		rm -f $ready
		dbg "$name" $PEER import "$from" --size "$size" --ready-file $ready $iopts
		dready $ready || return 1
	else
		gbg "$to" "$name" "$PEER import $from --size $size --ready-file $ready $iopts" \
			$ready || return 1
	fi
	if [ "$from" = 0 ]; then
		$PEER export "$to" "$size" --wait-release $eopts 2>&1 | sed 's/^/dom0| /'
		erc=$?
	else
		gx "$from" "$PEER export $to $size --wait-release $eopts"
		erc=$?
	fi
	if [ "$to" = 0 ]; then
		dwait "$name"
	else
		gwait "$to" "$name"
	fi
	irc=$?
	echo "exporter status $erc, importer status $irc"
	[ $erc -eq 0 ] && [ $irc -eq 0 ]
}

# The host's knobs (tests/test_sh_xen.sh), from the kernel's command line: hb.NAME=VALUE, a
# + for each space.
knob() {
	tr ' ' '\n' </proc/cmdline | sed -n "s/^hb\.$1=//p" | tr '+' ' '
}
ONLY=$(knob HB_XEN_ONLY)

# Runs "NAME FUNCTION": the function's output goes to the console prefixed with [NAME].
run_case() {
	local name=$1 fn=$2 out rc
	if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $name "; then
		echo "HBX-RESULT $name skip not in HB_XEN_ONLY"
		return
	fi
	log "case $name"
	out=/tmp/case.$name
	$fn >"$out" 2>&1
	rc=$?
	sed "s/^/[$name] /" "$out"
	if [ $rc -eq 0 ]; then
		echo "HBX-RESULT $name ok"
	elif [ $rc -eq 77 ]; then
		echo "HBX-RESULT $name skip $(grep '^.*SKIP: ' "$out" | sed 's/^.*SKIP: //' | tail -n 1)"
	else
		echo "HBX-RESULT $name fail $(grep -E 'FAIL|timed out|status' "$out" | tail -n 1)"
	fi
}

# ---- the toolstack, the daemon, the domUs ----------------------------------------------------

setup() {
	mkdir -p /run/xen /run/xenstored /var/log/xen/console /etc/hyperbuf
	xenstored --pid-file /run/xenstored.pid || return 1
	xen-init-dom0 || return 1
	xenconsoled --log=guest --log-dir=/var/log/xen/console || return 1
	cat /proc/xen/capabilities
	# docs/XEN.md: dom0 shares through gntalloc too.
	echo 65536 >/sys/module/xen_gntalloc/parameters/limit
	# A small maptrack budget (for each domain), so that limits_clear_errors can hit it
	# cheaply.
	cat >$CONF <<EOF
[daemon]
backend = xen
socket = /run/hyperbuf/hyperbufd.sock
log = debug
[xen]
domains = all
maptrack_budget = 17000
EOF
	# Export handles need the kernel's random pool, and hyperbufd never blocks on it: before
	# the pool is ready an export fails with EAGAIN (protocol/hid.c). An emulated dom0 has
	# no hardware randomness; one blocking read makes the kernel gather jitter until ready.
	t0=$(date +%s)
	timeout 120 head -c 1 /dev/random >/dev/null || { echo "no random pool in 120 s"; return 1; }
	echo "random pool ready after $(($(date +%s) - t0)) s"
	hyperbufd -c $CONF 2>$DLOG &
	dpid=$!
	i=0
	until [ -S /run/hyperbuf/hyperbufd.sock ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { cat $DLOG; echo "hyperbufd did not start"; return 1; }
		usleep 100000
	done
	# The domUs come after the daemon: it finds them through @introduceDomain.
	# GStreamer in the domU image (gst_domU_to_domU) needs room to unpack and run.
	mem=160
	[ -e /root/domU-has-gst ] && mem=224
	for dom in 1 2; do
		cat >/root/domU$dom.cfg <<EOF
name = "hbu$dom"
type = "pv"
memory = $mem
vcpus = 1
kernel = "/root/vmlinuz"
ramdisk = "/root/domU.cpio.gz"
extra = "console=hvc0 quiet mitigations=off rdinit=/init"
on_poweroff = "destroy"
on_crash = "destroy"
EOF
	done
	log "creating the domUs"
	xl create /root/domU1.cfg &
	c1=$!
	xl create /root/domU2.cfg || return 1
	wait $c1 || return 1
	log "domUs created"
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
	log "domUs ready"
	xl list
}

# ---- the cases -------------------------------------------------------------------------------

case_xen_boots() {
	hyperbufctl status || return 1
	hyperbufctl status | grep -q 'backend.*xen' || { echo "FAIL: backend is not xen"; return 1; }
	$PEER probe || return 1
	gx "$U1" true
	gx "$U1" $PEER probe || return 1
	gx "$U2" $PEER probe || return 1
	# The devices configs/udev/60-hyperbuf-xen.rules matches: misc devices whose sysfs names
	# write / as ! (udev matches KERNEL with the /).
	gx "$U1" "cd /sys/class/misc && ls -d xen* && grep -h DEVNAME xen*/uevent" || return 1
	# Permissions the daemon set: dom0 only, plus read for the domain itself.
	xenstore-ls -p /local/domain/0/data/hyperbuf
	ls=$(xenstore-ls -p /local/domain/0/data/hyperbuf/$U1)
	echo "$ls" | grep -q "n0,r$U1" || { echo "FAIL: permissions of dom$U1's vchan"; return 1; }
}

# Over the gntalloc limit (the default 1024 pages in domU1), over the grant budget, over the
# maptrack budget: each refused up front with its errno.
case_limits_clear_errors() {
	cat /sys/module/xen_gntalloc/parameters/limit
	gx "$U1" "cat /sys/module/xen_gntalloc/parameters/limit; $PEER alloc-fail 0 8388608 28" ||
		return 1 # ENOSPC
	gx "$U1" "echo 65536 >/sys/module/xen_gntalloc/parameters/limit" || return 1
	# 100 MiB: 25626 pages, over 3/4 of a default grant table (24576).
	gx "$U1" "$PEER alloc-fail 0 104857600 27" || return 1 # EFBIG
	# Two imports of 36 MiB (9216 + 10 pages each) are over a maptrack budget of 17000 pages
	# (the 64 MiB share below takes 16401).
	share limits_maptrack 0 "$U2" 37748736 "--seed 5" "--seed 5 --twice-enospc"
}

case_domU_to_dom0_1080p() {
	share u2d "$U1" 0 $FRAME "--frame --seed 3" "--frame --seed 3"
}

case_dom0_to_domU() {
	share d2u 0 "$U1" 4194427 "--seed 11" "--seed 11"
}

case_domU_to_domU() {
	share u2u "$U1" "$U2" $FRAME "--frame --seed 4" "--frame --seed 4"
}

# dom0 exports: a domU has little memory, and the importer maps the exporter's pages.
case_share_64mib_depth2() {
	share big 0 "$U2" 67108864 "--seed 9" "--seed 9" >/tmp/big.out 2>&1
	rc=$?
	cat /tmp/big.out
	[ $rc -eq 0 ] || return 1
	grep -q 'pages 16384 .*depth 2' /tmp/big.out || {
		echo "FAIL: not 16384 pages at depth 2"
		return 1
	}
}

case_read_only_enforced() {
	echo "-- read-only: a write faults, a writable import is refused"
	share ro "$U1" 0 65536 "--seed 6" "--seed 6 --readonly" || return 1
	echo "-- peer-writable: the importer's write reaches the exporter"
	share rw 0 "$U2" 65536 "--seed 6 --writable --expect-byte 90" "--seed 6 --write 90"
}

case_export_events() {
	share ev "$U1" 0 12345 "--seed 2 --meta first --reexport second --unexport" \
		"--seed 2 --meta first --meta2 second --events"
}

# The fence API is being built in parallel (issue 3); hb-xen-peer says SKIP until it exists.
case_fenced_ping_pong() {
	local out prc
	out=$($PEER fence-pong "$U2" 2>&1)
	[ $? -eq 77 ] && { echo "$out"; return 77; }
	gbg "$U2" pong "$PEER fence-pong $U1"
	gx "$U1" "$PEER fence-ping $U2"
	prc=$?
	gwait "$U2" pong || return 1
	return $prc
}

# GStreamer between the domUs (docs/GSTREAMER.md): videotestsrc ! hyperbufsink in one,
# hyperbufsrc in the other (tests/xen/gst-case.sh), each hashing every frame's pixels; the
# hashes must agree and neither element may have copied a frame.
GST_FRAMES=3
case_gst_domU_to_domU() {
	local p c prc
	gx "$U1" "test -x /usr/bin/hbgst-run" >/dev/null || {
		echo "SKIP: no GStreamer in the domU image (the plugin is not built, or HB_XEN_NO_GST is set)"
		return 77
	}
	gbg "$U2" gstc "hbgst-case consume $U1"
	gx "$U1" "hbgst-case produce $U2 $GST_FRAMES" >/tmp/gstp.out
	prc=$?
	cat /tmp/gstp.out
	gwait "$U2" gstc >/tmp/gstc.out
	crc=$?
	cat /tmp/gstc.out
	[ $prc -eq 0 ] && [ $crc -eq 0 ] || { echo "FAIL: producer status $prc, consumer $crc"; return 1; }
	p=$(sed -n 's/^dom[0-9]*| frames //p' /tmp/gstp.out)
	c=$(sed -n 's/^dom[0-9]*| frames //p' /tmp/gstc.out)
	[ -n "$p" ] && [ "$p" = "$c" ] || { echo "FAIL: the frames differ"; return 1; }
	[ "$p" != "${p#$GST_FRAMES }" ] || { echo "FAIL: not $GST_FRAMES frames"; return 1; }
	[ "${p##* }" = 1 ] || { echo "FAIL: frames were copied"; return 1; }
}

# The conformance suite (docs/TESTING.md, "The Xen target"): every case of tests/conform/, run
# by its hub (tests/xen/conform_dom0.c) with a daemon of its own while this one is stopped,
# roles in dom0 and, through the cases' server (tests/xen/conform_domU.c) over a vchan stream
# each, in both domUs. Each case's line goes to the host as "[xen] HBX-CF ok NAME",
# "... FAIL NAME: why" or "... SKIP NAME: why". Then this file's daemon starts again.
case_xen() {
	local rc hrc s1 s2
	kill -TERM "$dpid"
	wait "$dpid"
	rc=$?
	dpid=
	[ $rc -eq 0 ] || { echo "FAIL: hyperbufd exited with status $rc"; return 1; }
	rm -f /tmp/cf.sub
	# They wait for their streams, which the hub publishes once its daemon is up.
	gbg "$U1" cf "hb-xen-conform serve $U1"
	gbg "$U2" cf "hb-xen-conform serve $U2"
	# Its output goes to the console as it comes (fd 7): the run is long. Without the
	# library's debug lines, which would be most of it (a serial console is slow under TCG).
	{
		HB_BUILD=/opt/hb HB_SUBRESULTS=/tmp/cf.sub HB_CF_CASES=$(knob HB_CF_CASES) \
			HB_CF_ENV=$(knob HB_CF_ENV) env -u HYPERBUF_DEBUG hb-xen-conform-dom0 xen 2>&1
		echo $? >/tmp/cf.rc
	} | while IFS= read -r l; do echo "[xen] $l"; done >&7
	read -r hrc </tmp/cf.rc
	gwait "$U1" cf
	s1=$?
	gwait "$U2" cf
	s2=$?
	[ -e /tmp/cf.sub ] && sed 's/^/HBX-CF /' /tmp/cf.sub
	hyperbufd -c $CONF 2>>$DLOG &
	dpid=$!
	i=0
	until hyperbufctl status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 300 ] || { echo "FAIL: hyperbufd did not start again"; return 1; }
		usleep 100000
	done
	echo "hub status $hrc, domU servers $s1 and $s2"
	[ $hrc -eq 0 ] && [ $s1 -eq 0 ] && [ $s2 -eq 0 ]
}

# The daemon under hbholder, the fd store's stand-in (docs/RESTART.md), SIGKILLed five times
# while the domUs play 300 fenced rounds over grants of each other's pages: each client sees
# its vchan end, claims a new one and resumes its session; the grant mappings, which are the
# domUs' own, never notice; no round is lost or repeated.
case_daemon_restarts() {
	local prc kills=0 pid
	kill -TERM "$dpid"
	wait "$dpid"
	hbholder -l /var/log/hbholder.log -- hyperbufd -c $CONF 2>>$DLOG &
	dpid=$!
	i=0
	until hyperbufctl stats 2>/dev/null | grep -q '^state_kept: 1$'; do
		i=$((i + 1))
		[ $i -lt 300 ] || { tail -n 20 $DLOG; echo "FAIL: no daemon under the holder"; return 1; }
		usleep 100000
	done
	gbg "$U2" rpong "$PEER fence-pong $U1 --rounds 300 --pace 20"
	gbg "$U1" rping "$PEER fence-ping $U2 --rounds 300 --pace 20"
	sleep 3
	while [ $kills -lt 5 ]; do
		pid=$(pidof hyperbufd)
		[ -n "$pid" ] && kill -KILL $pid && kills=$((kills + 1))
		sleep 2
	done
	echo "daemon killed $kills times"
	gwait "$U1" rping
	prc=$?
	gwait "$U2" rpong || prc=1
	if [ $prc -ne 0 ]; then
		# What the daemons said about the sessions, for whoever reads the failure.
		grep -E 'resum|restor|ended|refus|warn|err' $DLOG | tail -n 40
		tail -n 10 /var/log/hbholder.log
		return 1
	fi
	cat /var/log/hbholder.log
	hyperbufctl stats | grep -E 'state_|sessions_restored|restore_ms'
	grep -c 'resumed' $DLOG
	grep -q 'resumed' $DLOG || { echo "FAIL: no session resumed"; return 1; }
}

# xl destroy a domU that exported to dom0: the dom0 importer gets DOMAIN_GONE and holds no
# grant mapping of it any more, and the domain finishes dying.
case_domain_destroyed() {
	rm -f /tmp/ready.gone
	dbg gone $PEER import "$U2" --seed 8 --ready-file /tmp/ready.gone --until-gone
	dready /tmp/ready.gone || return 1
	gbg "$U2" hold "$PEER export 0 2097152 --seed 8 --hold"
	i=0
	until grep -q 'every byte right' /tmp/d.gone; do
		i=$((i + 1))
		[ $i -lt 300 ] || { cat /tmp/d.gone; echo "FAIL: no import"; return 1; }
		usleep 100000
	done
	hyperbufctl exports
	xl destroy hbu2 || return 1
	dwait gone || return 1
	i=0
	while xl list | grep -q hbu2; do
		i=$((i + 1))
		[ $i -lt 100 ] || { xl list; echo "FAIL: dom$U2 did not finish dying"; return 1; }
		usleep 100000
	done
	echo "dom$U2 is gone from xl list"
	hyperbufctl exports
	if hyperbufctl exports | grep -q "^[0-9a-f]\{32\} *$U2 "; then
		echo "FAIL: exports of the dead domain are left"
		return 1
	fi
	grep "dom$U2" $DLOG | tail -n 5
}

case_daemon_clean_exit() {
	hyperbufctl stats | grep -E 'bytes_copied|xen\.' || return 1
	hyperbufctl stats | grep -q '^bytes_copied: 0$' || { echo "FAIL: bytes copied"; return 1; }
	kill -TERM "$dpid"
	wait "$dpid"
	rc=$?
	dpid=
	echo "hyperbufd exited with status $rc"
	tail -n 20 $DLOG
	[ $rc -eq 0 ]
}

log "dom0 up"
# The console, for a case whose output should not wait for its end (case_xen).
exec 7>&1
if setup >/tmp/setup 2>&1; then
	sed 's/^/[setup] /' /tmp/setup
	log "setup done"
	run_case xen_boots case_xen_boots
	run_case limits_clear_errors case_limits_clear_errors
	gx "$U1" "echo 65536 >/sys/module/xen_gntalloc/parameters/limit" >/dev/null
	gx "$U2" "echo 65536 >/sys/module/xen_gntalloc/parameters/limit" >/dev/null
	run_case domU_to_dom0_1080p case_domU_to_dom0_1080p
	run_case dom0_to_domU case_dom0_to_domU
	run_case domU_to_domU case_domU_to_domU
	run_case share_64mib_depth2 case_share_64mib_depth2
	run_case read_only_enforced case_read_only_enforced
	run_case export_events case_export_events
	run_case fenced_ping_pong case_fenced_ping_pong
	run_case gst_domU_to_domU case_gst_domU_to_domU
	run_case xen case_xen
	run_case daemon_restarts case_daemon_restarts
	run_case domain_destroyed case_domain_destroyed
	run_case daemon_clean_exit case_daemon_clean_exit
else
	sed 's/^/[setup] /' /tmp/setup
	echo "HBX-RESULT setup fail $(tail -n 1 /tmp/setup)"
fi
[ -n "$dpid" ] && kill -TERM "$dpid" 2>/dev/null
sed 's/^/[hyperbufd] /' $DLOG | tail -n 200
for f in /var/log/xen/console/*.log; do
	[ -e "$f" ] && sed "s|^|[$(basename "$f" .log)] |" "$f" | tail -n 200
done
log "done"
echo HBX-DONE
