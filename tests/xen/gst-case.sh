#!/bin/sh
# One side of gst_domU_to_domU in a domU (tests/xen/dom0-cases.sh): a pipeline pair run by
# hbgst-run (tests/gst/run.c), the address xen: as hb_connect(NULL) picks it in a domU. Prints
# one line for dom0, "frames N MD5 copied0 K" (the hash lines' count and digest, and how many
# elements copied no frame), then the runner's result line; exits with the runner's status.
#   usage: hbgst-case produce PEER FRAMES | consume PEER
export HOME=/tmp GST_REGISTRY=/tmp/gst.bin GST_REGISTRY_FORK=no GST_PLUGIN_SYSTEM_PATH=/usr/lib/gst
export ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=16
case $1 in
produce)
	set -- videotestsrc num-buffers="$3" ! video/x-raw,format=BGRx,width=1920,height=1080 ! \
		identity name=sum ! hyperbufsink peer="$2" timeout-ms=60000
	;;
consume)
	set -- hyperbufsrc peer="$2" timeout-ms=60000 ! identity name=sum ! fakesink
	;;
*)
	echo "usage: hbgst-case produce PEER FRAMES | consume PEER" >&2
	exit 2
	;;
esac
hbgst-run --timeout 80 "$@" >/tmp/gst.out 2>&1
rc=$?
echo "frames $(grep -c '^frame' /tmp/gst.out) $(grep '^frame' /tmp/gst.out | md5sum | cut -d' ' -f1)" \
	"copied0 $(grep -c 'frames-copied: 0' /tmp/gst.out)"
grep -E '^result|^debug' /tmp/gst.out
exit $rc
