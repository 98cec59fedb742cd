#!/bin/sh
# hbholder (tests/holder.c), the stand-in for systemd that tests run hyperbufd under, held to the
# rules it copies from systemd 252 (docs/RESTART.md, "The test holder"). Each case runs the fake
# service tests/test_holder_svc.c under it, has it store fds through a FIFO of commands, kills or
# restarts it, and reads what the next instance was handed. The holder's own NOTIFY_SOCKET is a
# listener that writes each datagram down, as a test would wait for READY=1 there.
# Cases as in harness.h: `--list`, or one case name; exit 0 pass, 1 fail.
set -u
B=${HB_BUILD:-build}
case_name=${1:-}
tmp=
hpid=
lpid=

fail() {
	echo "FAIL $case_name: $*" >&2
	for f in report up.log holder.log; do
		[ -n "$tmp" ] && [ -f "$tmp/$f" ] && { echo "---- $f" && cat "$tmp/$f"; } >&2
	done
	exit 1
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid"
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid"
	rm -rf "$tmp"
}

# wait_for CMD...: runs CMD until it succeeds, for up to 10 s.
wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 200 ] || return 1
		sleep 0.05
	done
}

setup() {
	tmp=$(mktemp -d /tmp/hbh.XXXXXX) || fail "mktemp"
	trap cleanup EXIT
	mkfifo "$tmp/cmd" || fail "mkfifo"
	"$B/tests/hbholder-svc" --listen "$tmp/up.sock" "$tmp/up.log" &
	lpid=$!
	wait_for test -S "$tmp/up.sock" || fail "the listener did not bind"
	: >"$tmp/up.log"
}

# holder [OPTIONS]: hbholder OPTIONS -- hbholder-svc, up to its first READY=1.
holder() {
	NOTIFY_SOCKET=$tmp/up.sock TMPDIR=$tmp "$B/tests/hbholder" "$@" -l "$tmp/holder.log" -- \
		"$B/tests/hbholder-svc" "$tmp/report" "$tmp/cmd" &
	hpid=$!
	ready 1
}

# ready N: waits for the Nth READY=1 the holder passes on; pid is its MAINPID=.
readies() { grep -c 'READY=1' "$tmp/up.log"; }
# shellcheck disable=SC2317 # run by wait_for
ready_seen() { [ "$(readies)" -ge "$1" ]; }
ready() {
	wait_for ready_seen "$1" || fail "no READY=1 number $1"
	pid=$(grep 'READY=1' "$tmp/up.log" | sed -n "$1s/^MAINPID=\([0-9][0-9]*\) READY=1$/\1/p")
	[ -n "$pid" ] || fail "READY=1 number $1 does not come as MAINPID=<pid> READY=1"
}

# cmd LINE: has the service run LINE; returns once the holder has acted on all it sent.
done_count() { grep -cxF "done $1" "$tmp/report"; }
# shellcheck disable=SC2317 # run by wait_for
done_seen() { [ "$(done_count "$1")" -gt "$2" ]; }
cmd() {
	n=$(done_count "$*")
	printf '%s\n' "$*" >"$tmp/cmd"
	wait_for done_seen "$*" "$n" || fail "the service did not run '$*'"
}

# kill9 N: SIGKILLs the service and waits for the next one, READY=1 number N.
kill9() {
	kill -9 "$pid" || fail "no service $pid"
	ready "$1"
}

# expect LINE...: each LINE (a regular expression) is a line of what the latest service was
# handed at its start.
expect() {
	got=$(awk '/^start /{b = ""} /^(start|fd|leaked) /{b = b $0 "\n"} END{printf "%s", b}' \
		"$tmp/report")
	for re in "$@"; do
		printf '%s\n' "$got" | grep -qx -- "$re" || fail "no line '$re' in:
$got"
	done
}

# expect_names PID N NAMES: the service PID got N fds named NAMES, LISTEN_PID its own, no other.
expect_names() {
	expect "start pid=$1 listen_pid=ok fds=$2 names=$3" "leaked none"
}

expect_log() {
	grep -q -- "$1" "$tmp/holder.log" || fail "no '$1' in the holder's log"
}

# holder_exits RC: the holder ends with status RC.
holder_exits() {
	wait "$hpid"
	rc=$?
	hpid=
	[ "$rc" -eq "$1" ] || fail "the holder exited $rc, not $1"
}

case "$case_name" in
--list)
	printf '%s\n' store_survives_sigkill empty_store_sets_no_listen_vars \
		ready_forwarded_with_mainpid remove_by_name duplicate_stored_once \
		hangup_drops_fd fdpoll0_keeps_fd max_enforced max_0_disables_store invalid_names \
		other_pid_ignored failure_restarts restart_limit usr1_restart_keeps_store \
		usr2_hup_forwarded clean_exit_flushes sigterm_stops_and_flushes \
		sigterm_from_outside_is_clean a_killed_holder_stops_its_service usage_errors
	;;
store_survives_sigkill)
	setup
	holder
	cmd memfd state hello
	cmd eventfd ev 5
	cmd pair2 conn peer
	first=$pid
	kill9 2
	[ "$pid" != "$first" ] || fail "the same pid after a restart"
	expect_names "$pid" 4 state:ev:conn:peer
	expect "fd 3 name=state cloexec=0 kind=memfd data=hello" \
		"fd 4 name=ev cloexec=0 kind=eventfd data=5" \
		"fd 5 name=conn cloexec=0 kind=socket data=-" \
		"fd 6 name=peer cloexec=0 kind=socket data=ping"
	expect_log "(pid $first) killed by signal 9 (Killed); restarting with 4 stored fds"
	# And again: the store is the holder's, not the service's.
	second=$pid
	kill9 3
	expect_names "$pid" 4 state:ev:conn:peer
	expect_log "(pid $second) killed by signal 9 (Killed); restarting with 4 stored fds"
	;;
empty_store_sets_no_listen_vars)
	setup
	export LISTEN_PID=1 LISTEN_FDS=9 LISTEN_FDNAMES=x
	holder
	expect "start pid=$pid listen_pid=none fds=none names=none" "leaked none"
	kill9 2
	expect "start pid=$pid listen_pid=none fds=none names=none" "leaked none"
	;;
ready_forwarded_with_mainpid)
	setup
	holder
	grep -q "^start pid=$pid " "$tmp/report" || fail "MAINPID=$pid is not the service's pid"
	cmd ready
	ready 2
	cmd stopping
	wait_for grep -qx STOPPING=1 "$tmp/up.log" || fail "STOPPING=1 not passed on"
	kill9 3
	grep -q "^start pid=$pid " "$tmp/report" || fail "MAINPID=$pid is not the new pid"
	;;
remove_by_name)
	setup
	holder
	cmd memfd a one
	cmd memfd b two
	cmd memfd a three
	cmd remove a
	cmd memfd c four
	kill9 2
	expect_names "$pid" 2 b:c
	expect "fd 3 name=b cloexec=0 kind=memfd data=two"
	;;
duplicate_stored_once)
	# A dup of a stored fd is the same open file: kept once. Two eventfds are two files,
	# though every eventfd has the same inode: both kept (kcmp, not st_ino).
	setup
	holder
	cmd eventfd e1 1
	cmd resend e1dup
	cmd eventfd e2 2
	cmd resend e2dup
	kill9 2
	expect_names "$pid" 2 e1:e2
	expect "fd 3 name=e1 cloexec=0 kind=eventfd data=1" \
		"fd 4 name=e2 cloexec=0 kind=eventfd data=2"
	;;
hangup_drops_fd)
	# The service keeps the other end of "gone": when it dies the stored end hangs up.
	setup
	holder
	cmd memfd keep k
	cmd pair gone
	kill9 2
	expect_names "$pid" 1 keep
	expect_log 'stored fd "gone": POLLHUP; removed'
	;;
fdpoll0_keeps_fd)
	setup
	holder
	cmd pair stay nopoll
	cmd pair gone
	kill9 2
	expect_names "$pid" 1 stay
	;;
max_enforced)
	setup
	holder -m 3
	cmd memfd a x
	cmd many b 4
	cmd memfd c y
	kill9 2
	expect_names "$pid" 3 a:b:b
	expect "fd 4 name=b cloexec=0 kind=memfd data=0" "fd 5 name=b cloexec=0 kind=memfd data=1"
	expect_log "cannot store more fds than FileDescriptorStoreMax=3; closing the remaining 2"
	expect_log "FileDescriptorStoreMax=3; closing the remaining 1"
	;;
max_0_disables_store)
	setup
	holder -m 0
	cmd memfd a x
	kill9 2
	expect "start pid=$pid listen_pid=none fds=none names=none" "leaked none"
	;;
invalid_names)
	# An invalid FDNAME= is ignored: the fd is stored as "stored". 255 characters are fine.
	setup
	holder
	long=$(printf '%0255d' 0)
	cmd rawfd 'FDSTORE=1\nFDNAME=a:b'
	cmd rawfd 'FDSTORE=1\nFDNAME=tab\there'
	cmd rawfd "FDSTORE=1\nFDNAME=${long}x"
	cmd rawfd "FDSTORE=1\nFDNAME=$long"
	cmd rawfd 'FDSTORE=1'
	cmd rawfd 'FDNAME=nostore'
	cmd rawfd 'FDSTOREREMOVE=1\nFDNAME=nostore2'
	kill9 2
	# The fds sent without FDSTORE=1 were closed, not stored.
	expect_names "$pid" 5 "stored:stored:stored:$long:stored"
	expect_log "invalid FDNAME="
	;;
other_pid_ignored)
	# NotifyAccess=main: a child of the service can neither store nor say READY=1.
	setup
	holder
	cmd child evil
	[ "$(readies)" -eq 1 ] || fail "a child's READY=1 was passed on"
	expect_log "notification from pid [0-9]* ignored: only the main pid $pid may notify"
	cmd memfd good g
	kill9 2
	expect_names "$pid" 1 good
	;;
failure_restarts)
	setup
	holder
	cmd memfd state s
	first=$pid
	cmd exit 3
	ready 2
	expect_names "$pid" 1 state
	expect_log "(pid $first) exited with status 3; restarting with 1 stored fds"
	;;
restart_limit)
	setup
	holder -r 1
	kill9 2
	kill -9 "$pid"
	holder_exits 1
	expect_log "(pid $pid) killed by signal 9 (Killed); no restarts left"
	;;
usr1_restart_keeps_store)
	# systemctl restart: not a failure, so not counted against -r.
	setup
	holder -r 0
	cmd memfd state s
	first=$pid
	kill -USR1 "$hpid"
	ready 2
	expect_names "$pid" 1 state
	kill -0 "$first" 2>/dev/null && fail "the old service $first still runs"
	kill -USR1 "$hpid"
	ready 3
	expect_names "$pid" 1 state
	;;
usr2_hup_forwarded)
	setup
	holder
	kill -USR2 "$hpid"
	wait_for grep -qx "signal 12" "$tmp/report" || fail "SIGUSR2 not passed on"
	kill -HUP "$hpid"
	wait_for grep -qx "signal 01" "$tmp/report" || fail "SIGHUP not passed on"
	[ "$(readies)" -eq 1 ] || fail "the service was restarted"
	;;
clean_exit_flushes)
	# Exit 0 stops the service: the holder closes its store (the FIFO's last writer: the
	# reader gets end of file) and exits 0.
	setup
	mkfifo "$tmp/out"
	cat "$tmp/out" >/dev/null &
	cat=$!
	holder
	cmd fifo f "$tmp/out"
	cmd memfd m x
	kill -0 "$cat" 2>/dev/null || fail "the reader ended while the holder held the writer"
	cmd exit 0
	holder_exits 0
	wait "$cat"
	[ "$(readies)" -eq 1 ] || fail "the service was restarted"
	[ -z "$(find "$tmp" -name 'hbholder-*.notify')" ] || fail "the notify socket was left"
	;;
sigterm_stops_and_flushes)
	setup
	mkfifo "$tmp/out"
	cat "$tmp/out" >/dev/null &
	cat=$!
	holder
	cmd fifo f "$tmp/out"
	svc=$pid
	kill -TERM "$hpid"
	holder_exits 0
	wait "$cat"
	kill -0 "$svc" 2>/dev/null && fail "the service $svc still runs"
	[ "$(readies)" -eq 1 ] || fail "the service was restarted"
	;;
sigterm_from_outside_is_clean)
	# Restart=on-failure: SIGTERM (like SIGHUP, SIGINT, SIGPIPE) is a clean exit status.
	setup
	holder
	kill -TERM "$pid"
	holder_exits 0
	[ "$(readies)" -eq 1 ] || fail "the service was restarted"
	;;
a_killed_holder_stops_its_service)
	# Not systemd's rule but a test stand-in's: nothing outlives a holder that is killed.
	setup
	holder
	svc=$pid
	kill -9 "$hpid"
	wait "$hpid"
	hpid=
	wait_for sh -c "! kill -0 $svc 2>/dev/null" || fail "the service $svc outlived its holder"
	;;
usage_errors)
	for args in "" "-m" "-m x --" "-m -1 -- true" "-r 1x -- true" "-z -- true" "--"; do
		# shellcheck disable=SC2086 # split on purpose
		"$B/tests/hbholder" $args 2>/dev/null
		rc=$?
		[ "$rc" -eq 2 ] || fail "hbholder $args exited $rc, not 2"
	done
	# Type=notify: exit 0 before READY=1 is a failure, restarted (here once).
	out=$("$B/tests/hbholder" -r 1 -- true 2>&1)
	rc=$?
	[ "$rc" -eq 1 ] || fail "a service that exits 0 before READY=1 did not fail ($rc)"
	echo "$out" | grep -q "exited 0 before READY=1; restarting with 0 stored fds" ||
		fail "not restarted: $out"
	echo "$out" | grep -q "exited 0 before READY=1; no restarts left" || fail "$out"
	;;
*)
	echo "unknown case '$case_name'" >&2
	exit 2
	;;
esac
exit 0
