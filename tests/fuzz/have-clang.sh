#!/bin/sh
# Can this machine build the fuzz targets? Exit 0 if clang links a libFuzzer program with ASan
# and UBSan; else exit 1 with the reason and the Debian package to install on stdout. Used by
# the Makefile (make fuzz, fuzz-regress, and the tests build) and tests/test_sh_fuzz.sh.
set -u
if ! command -v clang >/dev/null 2>&1; then
	echo "clang is not installed (apt-get install clang)"
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hb-clang.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n > 9999; }' \
	>"$tmp/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$tmp/probe" "$tmp/probe.c" \
	>"$tmp/log" 2>&1; then
	echo "clang cannot link -fsanitize=fuzzer,address,undefined" \
		"(apt-get install libclang-rt-14-dev): $(head -n 1 "$tmp/log")"
	exit 1
fi
exit 0
