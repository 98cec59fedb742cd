#!/bin/sh
# The Xen cases: Xen 4.17 with a PV dom0 and two PV domUs under QEMU TCG, hyperbufd in dom0,
# hb-xen-peer (public API only) in all three. Cases as in harness.h: `--list`, or one case
# name; exit 0 pass, 1 fail, 77 skip.
#
# One boot runs every case (tests/xen/dom0-cases.sh) and prints a result line per case on the
# serial console. The first case of a run boots; the others wait for it and read its results,
# kept in $HB_RUN_DIR (the scratch folder tests/run-tests.sh shares between the cases of one
# run). Run by hand without HB_RUN_DIR, each case boots on its own.
#
#   HB_XEN_TIMEOUT  hard limit for QEMU, seconds (default 150)
#   HB_XEN_KEEP     set: leave BUILD/xen/serial.log and the images (they are kept anyway)
# Outputs: BUILD/xen/{xen,vmlinuz,dom0.cpio.gz,domU.cpio.gz,serial.log}.
set -u
B=${HB_BUILD:-build}
case_name=${1:-}
# The scripts of tests/xen sit next to this one, in the tree and in BUILD/tests alike.
scripts=$(cd "$(dirname "$0")" && pwd)/xen
XEN=$B/xen
qemu_timeout=${HB_XEN_TIMEOUT:-150}

CASES="xen_boots"

case "$case_name" in
--list)
	printf '%s\n' $CASES
	exit 0
	;;
"")
	echo "usage: $0 --list | CASE" >&2
	exit 2
	;;
esac
echo " $CASES " | grep -q " $case_name " || {
	echo "unknown case '$case_name'" >&2
	exit 2
}

skip() {
	echo "SKIP: $*"
	exit 77
}

command -v qemu-system-x86_64 >/dev/null ||
	skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
grep -q 'WITH_XEN=1' "$B/.knobs" 2>/dev/null ||
	skip "built without Xen support (apt-get install libxen-dev, then rebuild)"

# boot DIR: builds the images, boots, writes DIR/results ("NAME STATUS REASON" lines).
boot() {
	dir=$1
	mkdir -p "$XEN"
	sh "$scripts/mkimages.sh" "$B" "$XEN" >"$dir/mkimages.log" 2>&1
	rc=$?
	if [ $rc -eq 77 ]; then
		sed -n 's/^SKIP: //p' "$dir/mkimages.log" | tail -n 1 | sed 's/^/skip /' >"$dir/status"
		return
	elif [ $rc -ne 0 ]; then
		cat "$dir/mkimages.log"
		echo "fail building the images (see above)" >"$dir/status"
		return
	fi
	cat "$dir/mkimages.log"
	start=$(date +%s)
	# Multiboot: Xen is the kernel, dom0's kernel and initramfs are its modules (commas
	# separate modules in -initrd). isa-debug-exit lets dom0 end QEMU (status 3).
	timeout -k 5 "$qemu_timeout" qemu-system-x86_64 -accel tcg -cpu qemu64 -m 2048 -smp 2 \
		-nographic -monitor none -serial stdio -no-reboot -net none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$XEN/xen" \
		-append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M noreboot" \
		-initrd "$XEN/vmlinuz console=hvc0 earlyprintk=xen quiet rdinit=/init,$XEN/dom0.cpio.gz" \
		</dev/null >"$XEN/serial.log" 2>&1 &
	qpid=$!
	trap 'kill $qpid 2>/dev/null' EXIT INT TERM
	wait $qpid
	rc=$?
	trap - EXIT INT TERM
	echo "QEMU exited with status $rc after $(($(date +%s) - start))s; log: $XEN/serial.log"
	tr -d '\r' <"$XEN/serial.log" | sed -n 's/^HBX-RESULT //p' >"$dir/results"
	if ! tr -d '\r' <"$XEN/serial.log" | grep -q '^HBX-DONE'; then
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			echo "fail QEMU killed after ${qemu_timeout}s" >"$dir/status"
		else
			echo "fail the run did not finish (QEMU status $rc)" >"$dir/status"
		fi
	else
		echo ok >"$dir/status"
	fi
}

if [ -n "${HB_RUN_DIR:-}" ]; then
	dir=$HB_RUN_DIR/xen
else
	dir=$(mktemp -d /tmp/hb-xen.XXXXXX) || exit 1
	trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"
(
	flock 9
	[ -e "$dir/status" ] || boot "$dir"
) 9>"$dir/lock"

status=$(cat "$dir/status" 2>/dev/null || echo "fail no status")
case $status in
skip*) skip "${status#skip }" ;;
ok) ;;
*)
	# The whole boot failed: every case says why, with the end of the console.
	echo "$status"
	tr -d '\r' <"$XEN/serial.log" 2>/dev/null | tail -n 30
	exit 1
	;;
esac
line=$(grep "^$case_name " "$dir/results" | tail -n 1)
tr -d '\r' <"$XEN/serial.log" | grep "^\[$case_name\] " | tail -n 60
set -- $line
case ${2:-} in
ok) exit 0 ;;
skip)
	shift 2
	skip "$*"
	;;
fail)
	shift 2
	echo "FAIL $case_name: $*"
	exit 1
	;;
*)
	echo "FAIL $case_name: no result in the run (see $XEN/serial.log)"
	exit 1
	;;
esac
