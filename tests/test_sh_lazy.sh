#!/bin/sh
# The fence suites again, with lazy records on every timeline (HYPERBUF_SIGNALS=lazy,
# docs/API.md): an owner whose every waiter reads a fence slot keeps its signals to itself
# (docs/PROTOCOL.md §3 "Lazy records"), the path goal 6 of issue 12 is met on. Issue 12 asks
# for the fence suites on each new path; this one runs them as hb_timeline_set_lazy(t, 1)
# would for every timeline. Cases as in test_sh_awaited.
set -u
B=${HB_BUILD:-build}
HB_FENCE_SIGNALS=lazy
export HB_FENCE_SIGNALS
exec "$B/tests/test_sh_awaited" "$@"
