#!/bin/sh
# The layering check (docs/ARCHITECTURE.md, "Floors"): every quoted #include must point to the
# same folder or to a floor below. make check runs it before anything is built.
#
#   floor 5  tests/                       may include anything
#   floor 4  tools/  gst/ (the GStreamer plugin)   side by side
#   floor 3  daemon/  libclient/          side by side: never each other
#   floor 2  backends/kvm/  backends/xen/ side by side; both may include backends/backend.h
#   floor 1  protocol/  common/  kmod/    side by side, pure (kmod/: the kernel module, whose
#                                         hyperbuf_kmod.h is an ABI like protocol/'s)
#   floor 0  include/hyperbuf.h
#
# Folders on one floor never include each other. An include is named from the top of the tree
# ("protocol/frame.h"); "hyperbuf.h" is include/, the generated "protocol/hyperbuf.pb-c.h" is
# protocol/. Output: one line per violation, "FILE:LINE: ..." naming the include, then exit 1.
#
# usage: tools/check-layers.sh [ROOT]   (default: the tree this script is in)
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2

list_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -co --exclude-standard -- '*.c' '*.h'
	else
		find . -name '*.c' -o -name '*.h' | sed 's|^\./||'
	fi
}

list_files | grep -v '^build/' | awk '
function folder(path) {
	if (path == "hyperbuf.h" || path ~ /^include\//) return "include"
	if (path ~ /^backends\/[^\/]+\//) { split(path, p, "/"); return "backends/" p[2] }
	if (path ~ /^backends\//) return "backends"
	if (path !~ /\//) return ""
	split(path, p, "/"); return p[1]
}
BEGIN {
	floor["include"] = 0
	floor["protocol"] = 1; floor["common"] = 1; floor["kmod"] = 1
	floor["backends"] = 2; floor["backends/kvm"] = 2; floor["backends/xen"] = 2
	floor["daemon"] = 3; floor["libclient"] = 3
	floor["tools"] = 4; floor["gst"] = 4
	floor["tests"] = 5
	bad = 0
}
{
	file = $0
	from = folder(file)
	if (!(from in floor)) next
	line = 0
	while ((getline text < file) > 0) {
		line++
		if (text !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
		inc = text
		sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
		to = folder(inc)
		# Kernel code: kbuild and DKMS build kmod/ on its own, so its quoted includes name
		# files of its own folder without the folder.
		if (to == "" && from == "kmod") continue
		if (to == "") {
			printf "%s:%d: #include \"%s\" does not name its folder (write \"%s/%s\")\n", \
				file, line, inc, from, inc
			bad = 1; continue
		}
		if (!(to in floor)) {
			printf "%s:%d: #include \"%s\": %s/ is on no floor\n", file, line, inc, to
			bad = 1; continue
		}
		if (to == from || floor[to] < floor[from]) continue
		# backends/backend.h is the floor-2 door both backends stand on.
		if (to == "backends" && from ~ /^backends\//) continue
		if (floor[to] == floor[from])
			why = "side by side on floor " floor[to] ", never each other"
		else
			why = "floor " floor[to] " is above floor " floor[from]
		printf "%s:%d: #include \"%s\": %s/ may not include %s/ (%s)\n", \
			file, line, inc, from, to, why
		bad = 1
	}
	close(file)
}
END { exit bad }
'
