#!/bin/sh
# The conformance suite's Xen target (docs/TESTING.md, "The Xen target"): one case, xen, that
# runs every case of tests/conform/ in the boot of tests/test_sh_xen.sh (dom0 runs the hub,
# tests/xen/conform_dom0.c; each domU the cases' server, tests/xen/conform_domU.c) and writes
# a line per case to $HB_SUBRESULTS, which tests/run-tests.sh counts as "xen: N passed, ...".
# Under one run-tests.sh run with test_sh_xen (make check, make check-xen) both share one
# boot ($HB_RUN_DIR). A boot this case starts itself runs only the conformance suite
# (HB_XEN_ONLY=xen, unless set otherwise).
set -u
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
--list)
	# Every case in one boot: more than run-tests.sh's default per case.
	echo "xen 1800"
	exit 0
	;;
xen) ;;
*)
	echo "usage: $0 --list | xen" >&2
	exit 2
	;;
esac
: "${HB_XEN_ONLY=xen}"
export HB_XEN_ONLY
# BUILD/tests/test_sh_xen, or tests/test_sh_xen.sh in the tree.
runner=$here/test_sh_xen
[ -e "$runner" ] || runner=$here/test_sh_xen.sh
exec sh "$runner" xen
