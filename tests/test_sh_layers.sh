#!/bin/sh
# The house checks make check runs first (tools/check-layers.sh, tools/check-size.sh): they pass
# on the tree, and each fails, naming the file, the line and what is wrong, on a copy of the
# tree with a violation planted in it. Cases as in harness.h: `--list`, or one case name.
set -u
case_name=${1:-}

fail() { echo "FAIL $case_name: $*" >&2; exit 1; }

# A copy of the tree's sources in a temp folder, outside git (the checks then list files with
# find).
base=
copies=0
copy_tree() {
	if [ -z "$base" ]; then
		base=$(mktemp -d /tmp/hbl.XXXXXX) || fail "mktemp"
		trap 'rm -rf "$base"' EXIT
	fi
	copies=$((copies + 1))
	tmp=$base/$copies
	mkdir "$tmp" || fail "mkdir"
	git ls-files -- '*.c' '*.h' '*.sh' | cpio -pdm --quiet "$tmp" 2>/dev/null ||
		tar cf - $(git ls-files -- '*.c' '*.h' '*.sh') | tar xf - -C "$tmp"
	[ -f "$tmp/tools/check-layers.sh" ] || fail "could not copy the tree"
}

# plant FILE TEXT: inserts TEXT as the first line of FILE in the copy; prints nothing.
plant() {
	printf '%s\n' "$2" | cat - "$tmp/$1" >"$tmp/$1.new" && mv "$tmp/$1.new" "$tmp/$1"
}

# expect_layers FILE INCLUDE WHY: the layering check on the copy fails and names FILE:1 and
# INCLUDE, with WHY in the message.
expect_layers() {
	out=$(sh "$tmp/tools/check-layers.sh" "$tmp" 2>&1) && fail "check-layers passed with $2 in $1"
	echo "$out"
	echo "$out" | grep -q "^$1:1: #include \"$2\".*$3" || fail "no line naming $1:1, $2 and '$3'"
}

case "$case_name" in
--list)
	printf '%s\n' tree_is_layered planted_includes_are_named tree_sizes_are_kept \
		planted_sizes_are_named
	;;
tree_is_layered)
	out=$(sh tools/check-layers.sh 2>&1) || fail "the tree breaks its floors: $out"
	;;
planted_includes_are_named)
	copy_tree
	sh "$tmp/tools/check-layers.sh" "$tmp" || fail "the copy does not pass before planting"
	plant backends/kvm/pool.c '#include "daemon/hyperbufd.h"'
	expect_layers backends/kvm/pool.c daemon/hyperbufd.h "floor 3 is above floor 2"
	copy_tree
	plant backends/xen/grants.c '#include "libclient/client.h"'
	expect_layers backends/xen/grants.c libclient/client.h "backends/xen/ may not include libclient/"
	copy_tree
	plant daemon/request.c '#include "libclient/conn.h"'
	expect_layers daemon/request.c libclient/conn.h "side by side"
	copy_tree
	plant libclient/call.c '#include "daemon/hyperbufd.h"'
	expect_layers libclient/call.c daemon/hyperbufd.h "side by side"
	copy_tree
	plant protocol/frame.c '#include "common/log.h"'
	expect_layers protocol/frame.c common/log.h "side by side"
	copy_tree
	plant common/sock.c '#include "backends/backend.h"'
	expect_layers common/sock.c backends/backend.h "floor 2 is above floor 1"
	copy_tree
	plant backends/kvm/guest.c '#include "backends/xen/ring.h"'
	expect_layers backends/kvm/guest.c backends/xen/ring.h "side by side"
	copy_tree
	plant backends/xen/ring.c '#include "ring.h"'
	expect_layers backends/xen/ring.c ring.h "does not name its folder"
	;;
tree_sizes_are_kept)
	out=$(sh tools/check-size.sh 2>&1) || fail "files or functions over the limits: $out"
	;;
planted_sizes_are_named)
	copy_tree
	sh "$tmp/tools/check-size.sh" "$tmp" || fail "the copy does not pass before planting"
	# A function of 101 lines, and a file of 601 lines.
	{
		printf 'int planted(void)\n{\n'
		i=0
		while [ $i -lt 98 ]; do echo '	;'; i=$((i + 1)); done
		printf '}\n'
	} >"$tmp/common/planted.c"
	awk 'BEGIN { for (i = 0; i < 601; i++) print "/* filler */" }' >"$tmp/protocol/long.c"
	out=$(sh "$tmp/tools/check-size.sh" "$tmp" 2>&1) && fail "check-size passed the plants"
	echo "$out"
	echo "$out" | grep -q '^common/planted.c:1: function planted is 101 lines' ||
		fail "the long function is not named"
	echo "$out" | grep -q '^protocol/long.c: 601 lines' || fail "the long file is not named"
	;;
*)
	echo "unknown case $case_name" >&2
	exit 2
	;;
esac
exit 0
