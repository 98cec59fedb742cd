#!/bin/sh
# The program the Xen cases run in dom0 and the domUs (tests/xen/peer.c, public API only), run
# unchanged as two emulated VMs of the KVM backend: the same binary, only $HYPERBUF_ADDRESS
# differs. Cases as in harness.h: `--list`, or one case name; exit 0 pass, 1 fail, 77 skip.
set -u
B=${HB_BUILD:-build}
case_name=${1:-}
PEER=$B/tests/xen/hb-xen-peer

fail() {
	echo "FAIL $case_name: $*" >&2
	exit 1
}

case "$case_name" in
--list)
	echo peer_program_as_emulated_vms
	exit 0
	;;
peer_program_as_emulated_vms) ;;
*)
	echo "unknown case '$case_name'" >&2
	exit 2
	;;
esac

[ -x "$PEER" ] || fail "$PEER is not built"
tmp=$(mktemp -d /tmp/hbp.XXXXXX) || fail mktemp
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
cat >"$tmp/d.conf" <<CONF
[daemon]
backend = kvm
socket = host.sock
[vm vm1]
id = 1
channel = vm1.sock
[vm vm2]
id = 2
channel = vm2.sock
[group g]
members = vm1, vm2
size = 64M
ivshmem = g.sock
CONF
"$B/hyperbufd" -c "$tmp/d.conf" 2>"$tmp/d.log" &
pid=$!
i=0
while [ ! -S "$tmp/g.sock" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done

# vm2 imports, vm1 exports a 1920x1080 frame: as domU to domU on Xen.
HYPERBUF_ADDRESS="vm:$tmp/vm2.sock" "$PEER" import 1 --frame --seed 4 --size 8294400 \
	--ready-file "$tmp/ready" >"$tmp/import.log" 2>&1 &
ipid=$!
i=0
while [ ! -e "$tmp/ready" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
HYPERBUF_ADDRESS="vm:$tmp/vm1.sock" "$PEER" export 2 8294400 --frame --seed 4 --wait-release \
	>"$tmp/export.log" 2>&1
erc=$?
wait $ipid
irc=$?
cat "$tmp/export.log" "$tmp/import.log"
kill "$pid"
wait "$pid"
drc=$?
pid=
[ $erc -eq 0 ] || fail "the exporter exited $erc"
[ $irc -eq 0 ] || fail "the importer exited $irc"
grep -q 'every byte right' "$tmp/import.log" || fail "the frame was not checked"
[ $drc -eq 0 ] || {
	cat "$tmp/d.log"
	fail "the daemon exited $drc"
}
exit 0
