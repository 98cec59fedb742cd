#!/bin/sh
# The size check (docs/ARCHITECTURE.md, "House rules"): no product .c file over 600 lines and no
# function over 100, so that a file reads in one sitting and a function fits on a screen.
# Tables (initialised arrays and structs) are not functions and do not count. tests/ is
# exempt. Output: one line per offence, "FILE:LINE: ...", then exit 1.
#
# usage: tools/check-size.sh [ROOT]   (default: the tree this script is in)
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2
max_file=${HB_MAX_FILE_LINES:-600}
max_func=${HB_MAX_FUNCTION_LINES:-100}

list_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -co --exclude-standard -- '*.c'
	else
		find . -name '*.c' | sed 's|^\./||'
	fi
}

list_files | grep -v -e '^build/' -e '^tests/' | awk -v max_file="$max_file" \
	-v max_func="$max_func" '
{
	file = $0
	n = 0; start = 0; sig = ""; sigline = 0
	while ((getline text < file) > 0) {
		n++
		# A definition starts at column 0 with a name and "(", its body at a lone "{".
		if (text ~ /^[A-Za-z_][^;=]*\(/ && text !~ /;[ \t]*$/) {
			sig = text; sigline = n
		} else if (text == "{" && sig != "") {
			start = sigline
		} else if (text == "}" && start) {
			len = n - start + 1
			if (len > max_func) {
				name = sig; sub(/\(.*/, "", name); sub(/.*[ *]/, "", name)
				printf "%s:%d: function %s is %d lines (the most is %d)\n", \
					file, start, name, len, max_func
				bad = 1
			}
			start = 0; sig = ""
		}
	}
	close(file)
	if (n > max_file) {
		printf "%s: %d lines (the most is %d)\n", file, n, max_file
		bad = 1
	}
}
END { exit bad }
'
