#!/bin/busybox sh
# The GStreamer cases of the VM suite, in the guest (tests/test_vm_kvm.c, vm_gst_*): runs one
# side of a pipeline pair with /gst/hbgst-run (tests/gst/run.c) over kvm:, and reports as
# /hbguest does: HBVM-PASS, or HBVM-FAIL with the reason. Every "frame N HASH" line goes to
# the console, where the host compares the two guests' lines.
#   usage: /gst/case.sh CASE ROLE   (role 1: vm1, the producer; 2: vm2, the consumer)
export HOME=/tmp HYPERBUF_ADDRESS=kvm: GST_REGISTRY=/tmp/gst-registry.bin GST_REGISTRY_FORK=no
export GST_PLUGIN_SYSTEM_PATH=/gst/plugins GST_PLUGIN_PATH=/gst/plugins
case_name=$1
role=$2
frames=8

case "$case_name:$role" in
gst_guest_to_guest:1)
	set -- videotestsrc num-buffers=$frames ! \
		video/x-raw,format=BGRx,width=1920,height=1080,framerate=30/1 ! \
		identity name=sum ! hyperbufsink peer=2 timeout-ms=120000
	;;
gst_guest_to_guest:2)
	set -- hyperbufsrc peer=1 timeout-ms=120000 ! identity name=sum ! fakesink
	;;
*)
	echo "HBVM-FAIL unknown GStreamer case $case_name for role $role"
	exit 1
	;;
esac
echo "HBVM-READY connected"
/gst/hbgst-run --timeout 150 "$@" >/tmp/out 2>&1
rc=$?
sed 's/^/HBVM-GST /' /tmp/out
if [ $rc -ne 0 ]; then
	echo "HBVM-FAIL hbgst-run exit $rc: $(grep '^result' /tmp/out)"
	exit 1
fi
echo "HBVM-PASS"
