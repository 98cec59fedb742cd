#!/bin/sh
# The fence suites again, with every signal waiting for the daemon's answer
# (HYPERBUF_SIGNALS=awaited, docs/API.md): the path every signal took before quiet signals
# (docs/PROTOCOL.md §3), which the library still takes while a domain waits on its own
# timelines. Issue 12 asks for the fence suites on the new path and the fallback both
# (test_sh_watched runs them through this script on watches without fence slots). Each case
# is a suite's case, named SUITE.CASE, with the suite's own timeout.
# Cases as in harness.h: `--list`, or one case name; exit 0 pass, 1 fail, 77 skip.
set -u
B=${HB_BUILD:-build}
suites="test_it_fence_conformance test_it_fence_buffers test_it_fence_failure
	test_it_fence_selftests test_it_fence_stress test_it_timeline"
case_name=${1:-}

if [ "$case_name" = --list ]; then
	for s in $suites; do
		"$B/tests/$s" --list | sed "s/^/$s./" || exit 1
	done
	exit 0
fi
suite=${case_name%%.*}
name=${case_name#*.}
for s in $suites; do
	if [ "$s" = "$suite" ] && [ "$name" != "$case_name" ]; then
		HYPERBUF_SIGNALS=${HB_FENCE_SIGNALS:-awaited}
		export HYPERBUF_SIGNALS
		exec "$B/tests/$suite" "$name"
	fi
done
echo "FAIL: no case '$case_name'" >&2
exit 1
