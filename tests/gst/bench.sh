#!/bin/sh
# make bench, part (d): 1080p BGRx through GStreamer, hyperbufsink ! hyperbufsrc (vm1 -> vm2,
# emulated VMs, each pipeline its own process) next to shmsink ! shmsrc and tcpserversink !
# tcpclientsrc on the same machine, in the same run. Each pair runs twice: the consumer only
# counts the frames (fakesink), then reads every 64th byte of each (it touches the pixels).
#
#   frames/s     from the consumer's first frame to its last
#   CPU/frame    user + system time of both pipelines (and, for hyperbuf, of hyperbufd) over
#                the frames the consumer got
#
# It asserts nothing; the last line says whether the goals of docs/GSTREAMER.md were met.
# usage: tests/gst/bench.sh BUILD [FRAMES]
#   HB_GST_BENCH_BUFFERS   hyperbufsink's buffers (default 3, its default)
#   HB_GST_BENCH_MODES     "count touch" (default), or one of them
#   HB_GST_BENCH_NO_TCP    set: skip the tcp pair (it is slow)
set -u
B=${1:-build}
N=${2:-600}
RUN=$B/tests/gst/hbgst-run
CAPS="video/x-raw,format=BGRx,width=1920,height=1080,framerate=1000/1"
# A source as cheap as GStreamer has, so the transport is what the numbers show.
SRC="videotestsrc num-buffers=$N pattern=solid-color foreground-color=0xff336699 ! $CAPS"

if [ ! -x "$RUN" ] || [ ! -f "$B/gst/libgsthyperbuf.so" ]; then
	echo "(d) GStreamer: skipped, the plugin is not built (GStreamer development packages)"
	exit 0
fi
for p in shm tcp rawparse; do
	if ! gst-inspect-1.0 "$p" >/dev/null 2>&1; then
		echo "(d) GStreamer: skipped, no $p plugin (apt-get install gstreamer1.0-plugins-bad" \
			"gstreamer1.0-plugins-base gstreamer1.0-tools)"
		exit 0
	fi
done

tmp=$(mktemp -d /tmp/hb-gstbench.XXXXXX) || exit 1
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export GST_PLUGIN_PATH=$B/gst

cat >"$tmp/hb.conf" <<CONF
[daemon]
backend = kvm
socket = $tmp/host.sock
log = warning

[vm vm1]
id = 1
channel = $tmp/vm1.sock

[vm vm2]
id = 2
channel = $tmp/vm2.sock

[group b]
members = vm1, vm2
size = 128M
ivshmem = $tmp/group-b.sock
CONF
"$B/hyperbufd" -c "$tmp/hb.conf" >"$tmp/daemon.log" 2>&1 &
dpid=$!
i=0
while [ ! -S "$tmp/host.sock" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done

# field OUTPUT KEY: the number after "KEY: " in a runner's output.
field() {
	sed -n "s/.*$2: \\([0-9]*\\).*/\\1/p" "$1" | tail -n 1
}

# Clock ticks of user + system time the daemon used so far.
daemon_ticks() {
	awk '{ print $14 + $15 }' "/proc/$dpid/stat"
}

# report NAME MODE EXTRA_CPU_MS: one line from $tmp/p.out and $tmp/c.out.
report() {
	frames=$(field "$tmp/c.out" frames)
	span=$(field "$tmp/c.out" span-us)
	cpu=$(($(field "$tmp/p.out" cpu-ms) + $(field "$tmp/c.out" cpu-ms) + $3))
	awk -v n="$1" -v m="$2" -v f="$frames" -v s="$span" -v c="$cpu" 'BEGIN {
		fps = (f > 1 && s > 0) ? (f - 1) * 1e6 / s : 0
		printf "    %-30s %-9s %7d %10.1f %12.3f\n", n, m, f, fps, f ? c / f : 0
		printf "%s %s %.1f %.3f\n", n, m, fps, f ? c / f : 0 >> "'"$tmp/results"'"
	}'
}

sum_of() {
	[ "$1" = touch ] && echo "--sum touch" || echo "--sum count"
}

run_hyperbuf() {
	t0=$(daemon_ticks)
	HYPERBUF_ADDRESS=vm:$tmp/vm2.sock "$RUN" $(sum_of "$1") --timeout 120 \
		hyperbufsrc peer=1 ! identity name=sum ! fakesink sync=false >"$tmp/c.out" 2>&1 &
	c=$!
	HYPERBUF_ADDRESS=vm:$tmp/vm1.sock "$RUN" --timeout 120 \
		$SRC ! hyperbufsink peer=2 buffers=${HB_GST_BENCH_BUFFERS:-3} >"$tmp/p.out" 2>&1
	wait $c
	hz=$(getconf CLK_TCK)
	report "hyperbufsink ! hyperbufsrc" "$1" $((($(daemon_ticks) - t0) * 1000 / hz))
	grep -q "frames-copied: 0" "$tmp/p.out" || echo "    (the sink copied frames: see $tmp/p.out)"
}

run_shm() {
	rm -f "$tmp/shm.sock"
	"$RUN" --timeout 120 $SRC ! shmsink socket-path=$tmp/shm.sock shm-size=134217728 \
		wait-for-connection=true sync=false >"$tmp/p.out" 2>&1 &
	p=$!
	i=0
	while [ ! -S "$tmp/shm.sock" ] && [ $i -lt 200 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	"$RUN" $(sum_of "$1") --frames "$N" --timeout 120 shmsrc socket-path=$tmp/shm.sock ! "$CAPS" ! \
		identity name=sum ! fakesink sync=false >"$tmp/c.out" 2>&1
	wait $p
	report "shmsink ! shmsrc" "$1" 0
}

# tcpserversink queues for its clients without bound and drops what it sends before one
# connects: the consumer connects first thing, and counts what it got.
run_tcp() {
	port=$((20000 + $$ % 20000))
	"$RUN" --timeout 120 $SRC ! tcpserversink host=127.0.0.1 port=$port sync=false \
		>"$tmp/p.out" 2>&1 &
	p=$!
	i=0
	until "$RUN" $(sum_of "$1") --timeout 60 tcpclientsrc host=127.0.0.1 port=$port \
		blocksize=1048576 ! rawvideoparse format=bgrx width=1920 height=1080 \
		framerate=1000/1 ! identity name=sum ! fakesink sync=false >"$tmp/c.out" 2>&1 ||
		grep -q "^frame" "$tmp/c.out" || [ $i -gt 100 ]; do
		sleep 0.01
		i=$((i + 1))
	done
	wait $p
	report "tcpserversink ! tcpclientsrc" "$1" 0
}

echo
echo "(d) GStreamer, $N frames of 1920x1080 BGRx per run (videotestsrc solid-color), each" \
	"pipeline its own process"
printf "    %-30s %-9s %7s %10s %12s\n" "pair" "consumer" "frames" "frames/s" "CPU ms/frame"
for mode in ${HB_GST_BENCH_MODES:-count touch}; do
	run_hyperbuf $mode
	run_shm $mode
	[ -n "${HB_GST_BENCH_NO_TCP:-}" ] || run_tcp $mode
done
awk '

{ key = $1; mode = $(NF - 2); f[key, mode] = $(NF - 1); c[key, mode] = $NF }
END {
	ok = 1
	for (m = 0; m < 2; m++) {
		mode = m ? "touch" : "count"
		hf = f["hyperbufsink", mode]; hc = c["hyperbufsink", mode]
		sf = f["shmsink", mode]; sc = c["shmsink", mode]; tf = f["tcpserversink", mode]
		printf "    %s: hyperbuf %.2fx the frames/s of shm at %.2fx its CPU per frame, " \
			"%.1fx the frames/s of tcp\n", mode == "count" ? "counting" : "touching", \
			sf ? hf / sf : 0, sc ? hc / sc : 0, tf ? hf / tf : 0
		if (hf < sf || hc > sc || hf < 10 * tf)
			ok = 0
	}
	print ok ? "    goal met: >= shm frames/s, <= shm CPU/frame, >= 10x tcp" : \
		"    goal missed (see docs/GSTREAMER.md, Performance)"
}' "$tmp/results"
