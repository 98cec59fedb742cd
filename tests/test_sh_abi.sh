#!/bin/sh
# libhyperbuf's ABI against abi/libhyperbuf.so.0.abi (tools/abi-check.sh, abidiff from Debian's
# abigail-tools): the build matches it; a function the baseline has and the library lost
# fails the check; a function the library added passes. Cases as in harness.h: `--list`, or
# one case name; exit 0 pass, 1 fail, 77 skip.
set -u
B=${HB_BUILD:-build}
case_name=${1:-}

fail() { echo "FAIL $case_name: $*" >&2; exit 1; }

need() {
	command -v abidiff >/dev/null && command -v abidw >/dev/null ||
		{ echo "SKIP: no abidiff (apt-get install abigail-tools)"; exit 77; }
	lib=$(ls "$B"/libhyperbuf.so.0.*.* 2>/dev/null | head -n 1)
	[ -n "$lib" ] || fail "no libhyperbuf.so.0.* in $B"
	tmp=$(mktemp -d /tmp/hba.XXXXXX) || fail mktemp
	trap 'rm -rf "$tmp"' EXIT
}

case "$case_name" in
--list)
	printf '%s\n' abi_matches_baseline abi_removed_function_fails abi_added_function_passes \
		debian_symbols_list_every_function
	;;
debian_symbols_list_every_function)
	# The package's symbols file (dpkg-gensymbols) names every function the library exports,
	# and no other: a function added without it would reach users with no minimum version.
	lib=$(ls "$B"/libhyperbuf.so.0.*.* 2>/dev/null | head -n 1)
	[ -n "$lib" ] || fail "no libhyperbuf.so.0.* in $B"
	tmp=$(mktemp -d /tmp/hba.XXXXXX) || fail mktemp
	trap 'rm -rf "$tmp"' EXIT
	nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort >"$tmp/have"
	sed -n 's/^ \(hb_[a-z0-9_]*\)@.*/\1/p' debian/libhyperbuf0.symbols | sort >"$tmp/listed"
	[ "$(wc -l <"$tmp/have")" -ge 20 ] || fail "only $(wc -l <"$tmp/have") functions in $lib"
	diff "$tmp/have" "$tmp/listed" >"$tmp/diff" ||
		fail "debian/libhyperbuf0.symbols (>) differs from $lib (<): $(cat "$tmp/diff")"
	;;
abi_matches_baseline)
	need
	out=$(sh tools/abi-check.sh "$lib" 2>&1) || fail "$out"
	;;
abi_removed_function_fails)
	need
	# The baseline with one more function than the library: as if the library lost it.
	sed "s|<elf-function-symbols>|<elf-function-symbols>\n    <elf-symbol name='hb_gone' version='HYPERBUF_0' is-default-version='yes' type='func-type' binding='global-binding' visibility='default-visibility' is-defined='yes'/>|" \
		abi/libhyperbuf.so.0.abi >"$tmp/base.abi"
	grep -q "name='hb_gone'" "$tmp/base.abi" || fail "could not plant hb_gone"
	out=$(sh tools/abi-check.sh "$lib" "$tmp/base.abi" 2>&1)
	[ $? -eq 1 ] || fail "a removed function passed: $out"
	echo "$out" | grep -q 'hb_gone' || fail "the report does not name hb_gone: $out"
	;;
abi_added_function_passes)
	need
	# The baseline without hb_strerror's symbol: as if the library had just added it.
	grep -v "elf-symbol name='hb_strerror'" abi/libhyperbuf.so.0.abi >"$tmp/base.abi"
	out=$(sh tools/abi-check.sh "$lib" "$tmp/base.abi" 2>&1) || fail "an addition failed: $out"
	;;
*)
	echo "unknown case '$case_name'" >&2
	exit 2
	;;
esac
exit 0
