#!/bin/sh
# Section-3 man pages from include/hyperbuf.h: one page per group of calls, a group being a
# "/* ---- Title ---- */" section of the header. A page is named after the group's first
# function (hb_connect.3, hb_buffer_alloc.3, ...); every other function of the group gets a
# page that is ".so man3/FIRST.3", so `man hb_export` finds it. The header's comments are the
# reference (they say what each call does, its errors, its rules), so a page is the section
# as written: declarations in bold, comments as text, both without fill, as in the header.
#
# usage: tools/man3.sh HEADER OUTDIR VERSION
set -eu
header=$1
out=$2
version=$3
mkdir -p "$out"
rm -f "$out"/*.3

awk -v out="$out" -v version="$version" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.\047]/)
		s = "\\&" s
	return s
}
function flush(   i, f, names) {
	if (title == "" || nfuncs == 0)
		return
	f = out "/" funcs[1] ".3"
	names = funcs[1]
	for (i = 2; i <= nfuncs; i++)
		names = names ", " funcs[i]
	print ".\\\" Generated from include/hyperbuf.h by tools/man3.sh: edit the header." > f
	printf ".TH %s 3 \"\" \"hyperbuf %s\" \"hyperbuf\"\n", toupper(funcs[1]), version > f
	print ".SH NAME" > f
	printf "%s \\- %s\n", names, tolower(title) > f
	print ".SH SYNOPSIS" > f
	print ".nf" > f
	print ".B #include <hyperbuf.h>" > f
	print ".PP" > f
	for (i = 1; i <= nsyn; i++)
		printf ".B %s\n", syn[i] > f
	print ".fi" > f
	print ".PP" > f
	print "Link with" > f
	print ".BR \"$(pkg-config \\-\\-libs hyperbuf)\" ." > f
	print ".SH DESCRIPTION" > f
	print ".nf" > f
	for (i = 1; i <= nbody; i++)
		print body[i] > f
	print ".fi" > f
	print ".SH SEE ALSO" > f
	print "SEEALSO" > f
	close(f)
	pages[++npages] = funcs[1]
	for (i = 2; i <= nfuncs; i++) {
		f = out "/" funcs[i] ".3"
		printf ".so man3/%s.3\n", funcs[1] > f
		close(f)
	}
}
function reset() {
	nfuncs = 0; nsyn = 0; nbody = 0
}
/^\/\* ---- .* -+ \*\/$/ {
	flush()
	reset()
	title = $0
	sub(/^\/\* ---- /, "", title)
	sub(/ -+ \*\/$/, "", title)
	next
}
title == "" { next }
/^#endif/ || /^#ifdef __cplusplus/ { flush(); title = ""; next }
{
	line = $0
	if (line ~ /^[ \t]*\/\*/ || incomment) {
		incomment = line !~ /\*\//
		sub(/^[ \t]*\/\*+ ?/, "", line)
		sub(/^[ \t]*\* ?/, "", line)
		sub(/ ?\*\/[ \t]*$/, "", line)
		body[++nbody] = esc(line)
		next
	}
	if (line ~ /^[ \t]*$/) {
		body[++nbody] = ""
		next
	}
	body[++nbody] = "\\fB" esc(line) "\\fP"
	# The rest of a declaration over several lines, for the synopsis.
	if (cont) {
		t = line
		sub(/^[ \t]+/, " ", t)
		syn[nsyn] = syn[nsyn] esc(t)
		cont = line !~ /;[ \t]*$/
		next
	}
	# A function declaration at column 0: its name, and the line for the synopsis.
	if (match(line, /^[a-z][a-z0-9_ *]*[ *]hb_[a-z0-9_]+\(/)) {
		name = substr(line, 1, RLENGTH - 1)
		sub(/.*[ *]/, "", name)
		funcs[++nfuncs] = name
		syn[++nsyn] = esc(line)
		cont = line !~ /;[ \t]*$/
	}
}
END {
	flush()
	# The pages, for the SEE ALSO lists written below.
	for (i = 1; i <= npages; i++)
		print pages[i] > (out "/.seealso")
}
' "$header"

# The SEE ALSO lists, now that every page is known.
while read -r page; do
	{
		for other in $(cut -f1 "$out/.seealso"); do
			[ "$other" = "$page" ] || printf '.BR %s (3),\n' "$other"
		done
		printf '.BR hyperbufd (8),\n.BR hyperbufctl (1),\n.BR hyperbuf.conf (5)\n'
	} >"$out/.see.$page"
	awk -v seefile="$out/.see.$page" '
		$0 == "SEEALSO" { while ((getline l < seefile) > 0) print l; next }
		{ print }
	' "$out/$page.3" >"$out/.tmp" && mv "$out/.tmp" "$out/$page.3"
	rm -f "$out/.see.$page"
done <"$out/.seealso"
rm -f "$out/.seealso"
