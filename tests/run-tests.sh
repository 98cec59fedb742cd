#!/bin/sh
# Runs test cases, each in its own process with a timeout, and prints one closing line:
#   N passed, N failed, N skipped
#
# usage: tests/run-tests.sh BUILD_DIR [GLOB]
#   GLOB selects test programs by name (default 'test_*').
#   HB_TEST_TIMEOUT  seconds per case (default 180); a case listed as "NAME SECONDS" by
#                    `PROG --list` gets SECONDS if that is more (tests/harness.h, TEST_TIMEOUT)
#   HB_JOBS          cases run in parallel (default 2)
# Cases get HB_BUILD (the build folder, absolute) and HB_RUN_DIR (a scratch folder shared by
# every case of this run).
# A case that runs many cases of its own (a conformance target: one boot, many cases) writes
# one line per case to $HB_SUBRESULTS: "ok NAME", "FAIL NAME: why" or "SKIP NAME: why". Each
# counts in the closing line as a case would, the failures are printed, and a line
#   CASE: N passed, N failed[, N skipped]
# says what it ran; the case itself then counts only if it failed (or skipped running any).
# Exit status: 1 if a case failed or none ran, else 0.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 BUILD_DIR [GLOB]" >&2
	exit 2
fi
if [ ! -d "$1" ]; then
	echo "$0: no build folder $1" >&2
	exit 2
fi
glob=${2:-test_*}
timeout_s=${HB_TEST_TIMEOUT:-180}
jobs=${HB_JOBS:-2}
case $jobs in
'' | *[!0-9]* | 0) jobs=1 ;;
esac

# Absolute, so a test that changes folder still finds the daemon and tools.
HB_BUILD=$(cd "$1" && pwd) || exit 2
export HB_BUILD
: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hb-run.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
: >"$tmp/results"
# A folder every case of this run shares, removed at the end: a suite with an expensive setup
# (the Xen boot of test_sh_xen) does it once per run and keeps the outcome here.
HB_RUN_DIR=$tmp/shared
mkdir "$HB_RUN_DIR" || exit 2
export HB_RUN_DIR

now_ns() {
	t=$(date +%s%N 2>/dev/null)
	case $t in
	*[!0-9]*) echo "$(date +%s)000000000" ;;
	*) echo "$t" ;;
	esac
}

# Prints a block of text without interleaving it with other workers' blocks.
print_locked() {
	until mkdir "$tmp/lock" 2>/dev/null; do
		sleep 0.05 2>/dev/null || sleep 1
	done
	cat "$1"
	rmdir "$tmp/lock"
}

# run_case N PROG CASE SECONDS: runs one case, records ok/fail/skip in results, reports it.
run_case() {
	n=$1 prog=$2 name=$3 case_timeout=$4
	base=${prog##*/}
	log=$tmp/case.$n.log
	report=$tmp/case.$n.report
	sub=$tmp/case.$n.sub
	: >"$sub"
	start=$(now_ns)
	HB_SUBRESULTS=$sub timeout -k 10 "$case_timeout" "$prog" "$name" >"$log" 2>&1 </dev/null
	rc=$?
	end=$(now_ns)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	: >"$report"
	if [ -s "$sub" ]; then
		sub_results "$sub" "$name" "$secs" >"$report.sub"
	fi
	case $rc in
	0)
		if [ ! -s "$sub" ]; then
			echo ok >>"$tmp/results"
			printf 'ok   %s %s (%ss)\n' "$base" "$name" "$secs" >"$report"
		fi
		;;
	77)
		echo skip >>"$tmp/results"
		reason=$(sed -n 's/^SKIP: //p' "$log" | tail -n 1)
		printf 'skip %s %s: %s\n' "$base" "$name" "${reason:-no reason given}" >"$report"
		;;
	*)
		echo fail >>"$tmp/results"
		if [ "$rc" -eq 124 ]; then
			why="timed out after ${case_timeout}s"
		elif [ "$rc" -gt 128 ]; then
			why="killed by signal $((rc - 128))"
		else
			why="exit status $rc"
		fi
		{
			printf 'FAIL %s %s (%s, %ss)\n' "$base" "$name" "$why" "$secs"
			tail -n 40 "$log" | sed 's/^/    /'
		} >"$report"
		;;
	esac
	[ -s "$sub" ] && cat "$report.sub" >>"$report"
	print_locked "$report"
	rm -f "$log" "$report" "$report.sub" "$sub"
}

# sub_results FILE CASE SECS: counts a case's own cases into results and reports them.
sub_results() {
	p=0 f=0 s=0
	while IFS= read -r line; do
		case $line in
		'ok '*) echo ok >>"$tmp/results" && p=$((p + 1)) ;;
		'FAIL '*) echo fail >>"$tmp/results" && f=$((f + 1)) && echo "FAIL $2/${line#FAIL }" ;;
		'SKIP '*) echo skip >>"$tmp/results" && s=$((s + 1)) && echo "skip $2/${line#SKIP }" ;;
		esac
	done <"$1"
	if [ "$s" -ne 0 ]; then
		echo "$2: $p passed, $f failed, $s skipped ($3s)"
	else
		echo "$2: $p passed, $f failed ($3s)"
	fi
}

# The worker pool: at most $jobs cases at once. POSIX sh has no "wait for any", so wait for
# the oldest; cases are short next to the pool's size, so little parallelism is lost.
pids=""
njobs=0
start_job() {
	if [ "$njobs" -ge "$jobs" ]; then
		oldest=${pids%% *}
		pids=${pids#* }
		[ "$pids" = "$oldest" ] && pids=""
		wait "$oldest"
		njobs=$((njobs - 1))
	fi
	run_case "$@" &
	pids="${pids:+$pids }$!"
	njobs=$((njobs + 1))
}

n=0
for prog in "$HB_BUILD"/tests/test_*; do
	if [ ! -f "$prog" ] || [ ! -x "$prog" ]; then
		continue
	fi
	base=${prog##*/}
	# shellcheck disable=SC2254 # GLOB is a pattern on purpose
	case $base in
	$glob) ;;
	*) continue ;;
	esac
	if ! "$prog" --list >"$tmp/list" 2>"$tmp/list.err"; then
		echo fail >>"$tmp/results"
		echo "FAIL $base --list"
		sed 's/^/    /' "$tmp/list.err" | tail -n 40
		continue
	fi
	while IFS=' ' read -r name limit; do
		[ -n "$name" ] || continue
		case $limit in
		'' | *[!0-9]*) limit=$timeout_s ;;
		esac
		[ "$limit" -lt "$timeout_s" ] && limit=$timeout_s
		n=$((n + 1))
		start_job "$n" "$prog" "$name" "$limit"
	done <"$tmp/list"
done
wait

passed=$(grep -c '^ok$' "$tmp/results")
failed=$(grep -c '^fail$' "$tmp/results")
skipped=$(grep -c '^skip$' "$tmp/results")
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ] || [ $((passed + failed + skipped)) -eq 0 ]; then
	exit 1
fi
exit 0
