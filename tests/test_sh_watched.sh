#!/bin/sh
# The fence suites again, on watches without fence slots (HYPERBUF_SIGNALS=watched,
# docs/API.md): the path of every peer that shares no pool with a timeline's owner, or has no
# doorbell (host processes, KVM guests, Xen), and what a watch falls back to when its slot
# stops being trusted (docs/PROTOCOL.md §3 "Fence slots"). Cases as in test_sh_awaited.
set -u
B=${HB_BUILD:-build}
HB_FENCE_SIGNALS=watched
export HB_FENCE_SIGNALS
exec "$B/tests/test_sh_awaited" "$@"
