#!/bin/sh
# The fuzz targets' seeds and saved crashes, each once through its target (no fuzzing: that is
# make fuzz), one case per target, as make fuzz-regress does. The targets are built by make
# tests into BUILD/fuzz whenever clang and its libFuzzer runtime are installed; without them
# every case skips, saying what to install. Run from the top of the tree (run-tests.sh is).
set -u
case_name=${1:-}
targets="frame refdir config desc daemon"

case "$case_name" in
--list)
	printf '%s\n' $targets
	exit 0
	;;
esac
for t in $targets; do
	[ "$t" = "$case_name" ] && break
	t=
done
if [ -z "$t" ]; then
	echo "FAIL: no case '$case_name'" >&2
	exit 1
fi
if [ ! -f tests/fuzz/run.sh ]; then
	echo "FAIL: run this from the top of the source tree" >&2
	exit 1
fi
build=${HB_BUILD:-build}/fuzz
if [ ! -x "$build/fuzz_$t" ]; then
	if reason=$(sh tests/fuzz/have-clang.sh); then
		echo "FAIL: $build/fuzz_$t is not built, though clang is there: run make tests" >&2
		exit 1
	fi
	echo "SKIP: $reason"
	exit 77
fi
exec sh tests/fuzz/run.sh regress "$build" "$t"
