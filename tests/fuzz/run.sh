#!/bin/sh
# Runs the fuzz targets (docs/FUZZING.md), in one of two ways:
#   tests/fuzz/run.sh fuzz BUILD SECONDS TARGET...  each target fuzzes for SECONDS from a copy of
#       its seeds and saved crashes in BUILD/run/TARGET/corpus (the tree is never written),
#       with what earlier runs found there; a failing input goes to BUILD/run/TARGET/
#   tests/fuzz/run.sh regress BUILD TARGET...       every seed and saved crash once, no fuzzing
# BUILD holds the binaries, BUILD/fuzz_TARGET. A crash, a leak, a timeout, a sanitizer report or
# an oracle's abort fails the target, naming the input and the command that replays it.
# Exit status: 0 if every target passed, 1 if one failed, 2 on a usage error.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
usage() {
	echo "usage: $0 fuzz BUILD SECONDS TARGET... | $0 regress BUILD TARGET..." >&2
	exit 2
}
[ $# -ge 2 ] || usage
mode=$1 build=$2
shift 2
case $mode in
fuzz)
	[ $# -ge 1 ] || usage
	seconds=$1
	shift
	case $seconds in '' | *[!0-9]*) usage ;; esac
	;;
regress) ;;
*) usage ;;
esac
[ $# -ge 1 ] || usage
# Bounds for one input: libFuzzer's default is to wait 20 minutes and take any memory.
common="-timeout=10 -rss_limit_mb=2048 -detect_leaks=1"

# The inputs of a target, one path a line: its seeds, then its saved crashes.
inputs() {
	for d in "$root/tests/fuzz/corpus/$1" "$root/tests/fuzz/regress/$1"; do
		[ -d "$d" ] && find "$d" -type f ! -name 'README*' | sort
	done
}

# The value of libFuzzer's final "stat::NAME: value" line in a log.
stat() {
	sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

# What failed, from a libFuzzer log: the input it wrote (fuzz) or was running (regress).
report() {
	bin=$1 log=$2 dir=$3
	echo "FAIL $bin"
	grep -E 'ERROR|SUMMARY|fuzz_[a-z]+: |==[0-9]+==|runtime error' "$log" | head -n 20 |
		sed 's/^/    /'
	for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
		[ -f "$a" ] || continue
		echo "    reproducer: $a"
		echo "    replay: $bin $a"
		echo "    keep it: cp $a tests/fuzz/regress/${bin##*fuzz_}/"
	done
	running=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
	[ -n "$running" ] && echo "    input: $running" && echo "    replay: $bin $running"
	echo "    log: $log"
}

fuzz_one() {
	t=$1 bin=$build/fuzz_$1
	dir=$build/run/$t
	# What earlier runs found stays in the scratch corpus and is fuzzed on; their failing
	# inputs and logs go.
	rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir/log"
	mkdir -p "$dir/corpus" || return 1
	inputs "$t" | while IFS= read -r f; do cp "$f" "$dir/corpus/"; done
	dict=
	[ -f "$root/tests/fuzz/$t.dict" ] && dict="-dict=$root/tests/fuzz/$t.dict"
	# shellcheck disable=SC2086 # the options are words on purpose
	if ! "$bin" $common $dict -max_total_time="$seconds" -print_final_stats=1 \
		-artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1; then
		report "$bin" "$dir/log" "$dir"
		return 1
	fi
	cov=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$dir/log" | tail -n 1 |
		sed -n 's/.*\(cov: [0-9]*\) \(ft: [0-9]*\).*/\1 \2/p')
	printf 'ok   fuzz_%s: %s s, %s runs (%s/s), %s, corpus %s inputs (%s new), %s MiB\n' \
		"$t" "$seconds" "$(stat number_of_executed_units "$dir/log")" \
		"$(stat average_exec_per_sec "$dir/log")" "${cov:-cov: ?}" \
		"$(find "$dir/corpus" -type f | wc -l)" "$(stat new_units_added "$dir/log")" \
		"$(stat peak_rss_mb "$dir/log")"
}

regress_one() {
	t=$1 bin=$build/fuzz_$1
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/hb-fuzz.XXXXXX") || return 1
	inputs "$t" >"$tmp/list"
	n=$(wc -l <"$tmp/list")
	if [ "$n" -eq 0 ]; then
		echo "ok   fuzz_$t: no inputs"
		rm -rf "$tmp"
		return 0
	fi
	# shellcheck disable=SC2046 # one argument per input path (no blanks in the tree's)
	if ! "$bin" $common -artifact_prefix="$tmp/" $(cat "$tmp/list") >"$tmp/log" 2>&1; then
		report "$bin" "$tmp/log" "$tmp"
		echo "    (the log and any reproducer stay in $tmp)"
		return 1
	fi
	echo "ok   fuzz_$t: $n inputs"
	rm -rf "$tmp"
}

status=0
for t in "$@"; do
	if [ ! -x "$build/fuzz_$t" ]; then
		echo "FAIL fuzz_$t: $build/fuzz_$t is not built"
		status=1
		continue
	fi
	if [ "$mode" = fuzz ]; then
		fuzz_one "$t" || status=1
	else
		regress_one "$t" || status=1
	fi
done
exit $status
