#!/bin/sh
# The Xen cases: Xen 4.17 with a PV dom0 and two PV domUs under QEMU TCG, hyperbufd in dom0,
# hb-xen-peer (tests/xen/peer.c: the public API only) in all three. Cases as in harness.h:
# `--list`, or one case name; exit 0 pass, 1 fail, 77 skip. One more case, xen, the
# conformance suite's Xen target, is tests/test_sh_xen_conform.sh's, run in this boot.
#
# One boot runs every case (tests/xen/dom0-cases.sh), which prints a result line per case on
# the serial console as it goes. The first case of a run starts the boot, detached, in
# $HB_RUN_DIR (the scratch folder tests/run-tests.sh shares between the cases of one run);
# every case then waits for its own line, so each one takes as long as it does in the guests
# and no per-case timeout has to cover the boot of all. The last case also waits for QEMU to
# end. Run by hand without HB_RUN_DIR, a case boots in the foreground on its own.
#
#   HB_XEN_TIMEOUT  hard limit for QEMU, seconds (default 2400: the conformance suite, case
#                   xen, is most of the run)
#   HB_XEN_NO_GST   set: the domUs boot without GStreamer and gst_domU_to_domU says SKIP
#   HB_XEN_ONLY     "NAME NAME...": only these cases run in the boot, the others say SKIP (for
#                   working on one case by hand: HB_XEN_ONLY=xen tests/test_sh_xen.sh xen)
#   HB_CF_CASES, HB_CF_ENV  the conformance suite's knobs (docs/TESTING.md), for case xen;
#                   their values may not hold a + or a comma
# Outputs: BUILD/xen/{xen,vmlinuz,dom0.cpio.gz,domU.cpio.gz,serial.log}.
set -u
B=${HB_BUILD:-build}
case_name=${1:-}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
# The scripts of tests/xen sit next to this one, in the tree and in BUILD/tests alike.
scripts=$(dirname "$self")/xen
XEN=$B/xen
qemu_timeout=${HB_XEN_TIMEOUT:-2400}

CASES="xen_boots limits_clear_errors domU_to_dom0_1080p dom0_to_domU domU_to_domU
share_64mib_depth2 read_only_enforced export_events fenced_ping_pong gst_domU_to_domU xen
daemon_restarts domain_destroyed daemon_clean_exit"
LAST=daemon_clean_exit

skip() {
	echo "SKIP: $*"
	exit 77
}

# boot DIR: builds the images and runs QEMU; DIR/serial.log grows as the guests work, and
# DIR/status says how it ended ("ok", "skip REASON" or "fail REASON").
boot() {
	dir=$1
	mkdir -p "$XEN"
	sh "$scripts/mkimages.sh" "$B" "$XEN" >"$dir/mkimages.log" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then
		sed -n 's/^SKIP: //p' "$dir/mkimages.log" | tail -n 1 | sed 's/^/skip /' >"$dir/status"
		return
	elif [ $rc -ne 0 ]; then
		echo "fail building the images: $(tail -n 1 "$dir/mkimages.log")" >"$dir/status"
		return
	fi
	start=$(date +%s)
	# Multiboot: Xen is the kernel, dom0's kernel and initramfs are its modules (commas
	# separate modules in -initrd). isa-debug-exit lets dom0 end QEMU (status 3).
	# Speed under TCG: no scrubbing of free memory (it competes with the guests for the whole
	# run), and no speculation mitigations, which the emulated CPU would make Xen apply to
	# every PV guest kernel entry (XPTI) for nothing.
	XEN_FAST="bootscrub=0 xpti=false spec-ctrl=no pv-l1tf=false"
	# The knobs reach dom0 on its kernel's command line (tests/xen/dom0-cases.sh reads
	# /proc/cmdline), a space there written as a + (a comma would split -initrd).
	knobs=
	for k in HB_XEN_ONLY HB_CF_CASES HB_CF_ENV; do
		v=$(eval "printf %s \"\${$k:-}\"" | tr ' ' '+')
		[ -n "$v" ] && knobs="$knobs hb.$k=$v"
	done
	timeout -k 5 "$qemu_timeout" qemu-system-x86_64 -accel tcg -cpu qemu64 -m 1536 -smp 2 \
		-nographic -monitor none -serial stdio -no-reboot -net none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$XEN/xen" \
		-append "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M noreboot $XEN_FAST" \
		-initrd "$XEN/vmlinuz console=hvc0 earlyprintk=xen quiet mitigations=off rdinit=/init$knobs,$XEN/dom0.cpio.gz" \
		</dev/null >"$dir/serial.log" 2>&1 &
	qpid=$!
	trap 'kill $qpid 2>/dev/null' EXIT INT TERM
	wait $qpid
	rc=$?
	trap - EXIT INT TERM
	cp "$dir/serial.log" "$XEN/serial.log" 2>/dev/null
	if tr -d '\r' <"$dir/serial.log" | grep -q '^HBX-DONE'; then
		echo ok >"$dir/status"
	elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo "fail QEMU killed after ${qemu_timeout}s" >"$dir/status"
	else
		echo "fail the run did not finish (QEMU status $rc)" >"$dir/status"
	fi
	echo "QEMU ended with status $rc after $(($(date +%s) - start))s" >>"$dir/status.log"
}

case "$case_name" in
--list)
	# xen, the conformance suite's Xen target, is test_sh_xen_conform's case: it runs every
	# case of tests/conform/ in this boot. The cases after it get its time limit too, since
	# their lines come after all of its. The ones before it wait for the boot itself, which
	# takes minutes on a loaded machine: 600 s, not run-tests.sh's 180.
	printf '%s\n' $CASES | awk '$0 == "xen" { after = 1; next } { print $0 (after ? " 1800" : " 600") }'
	exit 0
	;;
--boot)
	# The detached boot of a run (below).
	boot "$2"
	exit 0
	;;
"")
	echo "usage: $0 --list | CASE" >&2
	exit 2
	;;
esac
case " $(echo $CASES) " in
*" $case_name "*) ;;
*)
	echo "unknown case '$case_name'" >&2
	exit 2
	;;
esac

command -v qemu-system-x86_64 >/dev/null ||
	skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
grep -q 'WITH_XEN=1' "$B/.knobs" 2>/dev/null ||
	skip "built without Xen support (apt-get install libxen-dev, then rebuild)"

if [ -n "${HB_RUN_DIR:-}" ]; then
	dir=$HB_RUN_DIR/xen
	mkdir -p "$dir"
	(
		flock 9
		if [ ! -e "$dir/started" ]; then
			: >"$dir/started"
			# Its own session: a case that times out must not take the others' boot
			# with it. QEMU's hard timeout bounds it. Not holding the lock.
			setsid "$self" --boot "$dir" </dev/null >"$dir/boot.log" 2>&1 9>&- &
		fi
	) 9>"$dir/lock"
else
	dir=$(mktemp -d /tmp/hb-xen.XXXXXX) || exit 1
	trap 'rm -rf "$dir"' EXIT
	boot "$dir"
fi

# This case's line, as soon as the guests print it.
line=
while :; do
	line=$(tr -d "\r" 2>/dev/null <"$dir/serial.log" | sed -n "s/^HBX-RESULT $case_name //p" |
		tail -n 1)
	[ -n "$line" ] && break
	[ -e "$dir/status" ] && break
	sleep 1
done
if [ "$case_name" = "$LAST" ] || [ -n "${HB_XEN_ONLY:-}" ] || [ -z "$line" ]; then
	# The last case leaves nothing running: it waits for QEMU to end. In a boot that runs
	# only some cases (HB_XEN_ONLY), any of them may be the last to be waited for.
	i=0
	while [ ! -e "$dir/status" ] && [ $i -lt 120 ]; do
		sleep 1
		i=$((i + 1))
	done
fi
status=$(cat "$dir/status" 2>/dev/null || echo running)
case $status in
skip*) skip "${status#skip }" ;;
esac
tr -d '\r' <"$dir/serial.log" 2>/dev/null | grep "^\[$case_name\] " | tail -n 80
# The conformance target's own cases, one line each, for run-tests.sh to count
# ($HB_SUBRESULTS); by hand, on stdout.
if [ "$case_name" = xen ]; then
	tr -d '\r' <"$dir/serial.log" 2>/dev/null | sed -n 's/^\[xen\] HBX-CF //p' |
		if [ -n "${HB_SUBRESULTS:-}" ]; then cat >>"$HB_SUBRESULTS"; else cat; fi
fi
set -- $line
case ${1:-} in
ok) exit 0 ;;
skip)
	shift
	skip "$*"
	;;
fail)
	shift
	echo "FAIL $case_name: $*"
	exit 1
	;;
*)
	setup=$(tr -d '\r' <"$dir/serial.log" 2>/dev/null | grep '^\[setup\] ' | tail -n 20)
	echo "FAIL $case_name: no result ($status); see $XEN/serial.log"
	echo "$setup"
	tr -d '\r' <"$dir/serial.log" 2>/dev/null | tail -n 30
	exit 1
	;;
esac
