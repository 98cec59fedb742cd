# The README's C client against a real daemon: shared by tests/test_sh_install.sh (a make
# install) and tools/deb-check.sh (the Debian packages). Sourced, not run; POSIX sh.

# readme_client_build APP "CC [OPTIONS]" [FLAGS...]: the README's ```c block, built into APP
# with the libraries' FLAGS after the source, as a linker with --as-needed wants them.
readme_client_build() {
	app=$1
	cc=$2
	shift 2
	sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' >"$app.c"
	[ -s "$app.c" ] || { echo "no C example in README.md" >&2; return 1; }
	# shellcheck disable=SC2086
	$cc "$app.c" "$@" -o "$app" || { echo "the README example does not build" >&2; return 1; }
}

# readme_client_run DAEMON APP DIR ADDRESS_PREFIX: starts DAEMON on a one-VM config in DIR,
# runs APP against its host socket (HYPERBUF_ADDRESS=ADDRESS_PREFIX + the socket's path), and
# checks that the client exported and that the daemon exits 0. Says why on stderr if not.
readme_client_run() {
	cat >"$3/d.conf" <<CONF
[daemon]
socket = host.sock
[vm vm1]
id = 1
channel = vm1.sock
[group a]
members = host, vm1
size = 16M
ivshmem = group-a.sock
CONF
	"$1" -c "$3/d.conf" 2>"$3/d.log" &
	rc_pid=$!
	i=0
	while [ ! -S "$3/host.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	out=$(HYPERBUF_ADDRESS="$4$3/host.sock" "$2")
	rc=$?
	kill "$rc_pid"
	wait "$rc_pid"
	drc=$?
	[ $rc -eq 0 ] || { cat "$3/d.log" >&2; echo "the README client exited $rc: $out" >&2; return 1; }
	echo "$out" | grep -Eq '^exported [0-9a-f]{32}$' ||
		{ echo "the README client printed: $out" >&2; return 1; }
	[ $drc -eq 0 ] || { cat "$3/d.log" >&2; echo "the daemon exited $drc" >&2; return 1; }
}
