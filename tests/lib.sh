# tests/lib.sh - TAP helpers and throw-away servers for the test scripts.
#
# POSIX sh (dash). Source it from a test run with cwd = repo root:
#
#     . "$(dirname "$0")/lib.sh"
#
# TAP (numbering is automatic):
#   plan N                        print "1..N" up front (optional)
#   ok DESC CMD...                ok if CMD exits 0 (CMD output -> $T/ok.out, $T/ok.err)
#   test_expect_code CODE DESC CMD...
#                                 ok if CMD exits CODE; stdout -> $T/out, stderr -> $T/err
#   test_cmp DESC EXPECTED ACTUAL ok if the files are identical, else the diff as "# ..."
#   test_grep DESC PATTERN FILE   ok if grep -E PATTERN matches a line of FILE
#   test_no_grep DESC PATTERN FILE  ok if it matches no line
#   pass DESC / fail DESC [WHY]   record a result computed by the test itself
#   note MSG...                   print "# MSG" (diagnostics)
#   bail MSG                      "Bail out! MSG" and exit (stops the whole prove run)
#   done_testing                  end: prints "1..N" if no plan was given; exit status =
#                                 number of failures (capped at 254)
# There is no skip: a server that cannot start is a failure ("not ok").
#
# Variables: TOP (repo root), BIN ($TOP/bin), T (fresh scratch dir, removed at
# exit unless KEEP_TMP=1), PATH ($BIN first, then /usr/sbin for slapd/samba).
#
# Servers (see tests/slapd.sh and tests/samba.sh for details): slapd_start,
# slapd_seed, slapd_seed_big, slapd_add, slapd_modify, slapd_stop, slapd_kill,
# samba_start, samba_seed, samba_seed_big, samba_add, samba_modify,
# samba_stop, samba_kill.  Every server started is stopped at exit, even
# when the test fails or is interrupted.
#
# TAP lines go to file descriptor 3 (a copy of the original stdout) so that
# they survive output capture; commands under test and servers get fd 3
# closed.

TOP=$(cd "$(dirname "$0")/.." && pwd) || exit 2
BIN=${SYNC_BIN:-$TOP/bin}
PATH=$BIN:$PATH:/usr/sbin:/sbin
export TOP BIN PATH
LC_ALL=C.UTF-8
export LC_ALL
# Run by `make check`, a test would hand make's flags and its command-
# line variables (SANITIZE=..., which make exports) to every make it
# runs; a test behaves the same either way.
unset MAKEFLAGS MFLAGS MAKELEVEL SANITIZE
# In the sanitizer build (make SANITIZE=address,undefined) a report
# ends the program with status 86, which no command of ours uses: a test
# expecting 1 ("differences found") cannot take a sanitizer's abort for
# it, and UBSan stops at its first report instead of printing and going
# on.  LeakSanitizer's leaks end with 86 too.
ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86}
LSAN_OPTIONS=${LSAN_OPTIONS:-exitcode=86}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=86}
export ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

_lib_name=$(basename "$0" .t)
T=$TOP/tests/tmp/$_lib_name.$$
rm -rf "$T"
mkdir -p "$T" || { echo "Bail out! cannot create $T"; exit 255; }
T=$(cd "$T" && pwd)
export T

exec 3>&1

_lib_count=0
_lib_failed=0
_lib_planned=
_lib_done=
_lib_pids=          # every server pid we started, for cleanup
_lib_cleanups=      # extra cleanup commands (one per line)

_lib_tap() { printf '%s\n' "$*" >&3; }

note() { printf '%s\n' "$*" | sed 's/^/# /' >&3; }

# note_file FILE [MAXLINES]: print a file as TAP comments
note_file() {
	if [ -s "$1" ]; then
		_n=${2:-60}
		_l=$(wc -l <"$1")
		if [ "$_l" -gt "$_n" ]; then
			note "(last $_n of $_l lines of $1)"
			tail -n "$_n" "$1" | sed 's/^/# /' >&3
		else
			sed 's/^/# /' "$1" >&3
		fi
	fi
}

plan() { _lib_planned=$1; _lib_tap "1..$1"; }

pass() {
	_lib_count=$((_lib_count + 1))
	_lib_tap "ok $_lib_count - $1"
	return 0
}

fail() {
	_lib_count=$((_lib_count + 1))
	_lib_failed=$((_lib_failed + 1))
	_lib_tap "not ok $_lib_count - $1"
	[ $# -gt 1 ] && note "$2"
	return 1
}

ok() {
	_ok_d=$1; shift
	if "$@" >"$T/ok.out" 2>"$T/ok.err" 3>&-; then
		pass "$_ok_d"
	else
		_ok_rc=$?
		fail "$_ok_d" "command failed (exit $_ok_rc): $*"
		note_file "$T/ok.out" 20
		note_file "$T/ok.err" 20
		return 1
	fi
}

test_expect_code() {
	_tec_want=$1 _tec_d=$2; shift 2
	"$@" >"$T/out" 2>"$T/err" 3>&-
	_tec_rc=$?
	if [ "$_tec_rc" -eq "$_tec_want" ]; then
		pass "$_tec_d"
	else
		fail "$_tec_d" "expected exit $_tec_want, got $_tec_rc: $*"
		note_file "$T/err" 20
		return 1
	fi
}

test_cmp() {
	if cmp -s "$2" "$3"; then
		pass "$1"
	else
		fail "$1" "files differ: $2 $3"
		diff -u "$2" "$3" 2>&1 | head -n 100 | sed 's/^/# /' >&3
		return 1
	fi
}

test_grep() {
	if grep -E -q -e "$2" "$3" 2>/dev/null; then
		pass "$1"
	else
		fail "$1" "no line of $3 matches: $2"
		note_file "$3" 20
		return 1
	fi
}

test_no_grep() {
	if [ -r "$3" ] && ! grep -E -q -e "$2" "$3"; then
		pass "$1"
	else
		fail "$1" "a line of $3 matches (or unreadable): $2"
		grep -E -e "$2" "$3" 2>&1 | head -n 20 | sed 's/^/# /' >&3
		return 1
	fi
}

bail() {
	_lib_tap "Bail out! $*"
	_lib_done=1
	exit 255
}

done_testing() {
	_lib_done=1
	[ -n "$_lib_planned" ] || _lib_tap "1..$_lib_count"
	[ "$_lib_failed" -gt 254 ] && _lib_failed=254
	exit "$_lib_failed"
}

# _lib_fatal MSG: a fixture could not be set up. Record a failed test and
# end the test file (servers are cleaned up by the exit trap).
_lib_fatal() {
	fail "$1"
	[ -n "$_lib_planned" ] || _lib_tap "1..$_lib_count"
	_lib_done=1
	exit 1
}

# at_exit CMD: run CMD (a string, eval'ed) at cleanup, before servers stop.
at_exit() {
	_lib_cleanups="$1
$_lib_cleanups"
}

# random_port: a free-looking TCP port in 20000..59999 (caller retries on
# bind failure).
random_port() {
	while :; do
		_p=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		_p=$((20000 + _p % 40000))
		port_free "$_p" && { echo "$_p"; return 0; }
	done
}

# port_free PORT [IP]: true if nothing listens on IP:PORT (any IP if omitted)
port_free() {
	if command -v ss >/dev/null 2>&1; then
		! ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E -q "(^|[:\]])${2:+$2:}$1\$" &&
		! ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E -q "^(0\.0\.0\.0|\*|\[::\]):$1\$"
	else
		return 0
	fi
}

# _lib_pid_alive PID: running and not a zombie
_lib_pid_alive() {
	[ -r "/proc/$1/stat" ] || return 1
	_st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)
	[ -n "$_st" ] && [ "$_st" != Z ] && [ "$_st" != X ]
}

# stop_pid PID [SIGNAL] [TIMEOUT_TENTHS]: signal, wait for exit (kill -9
# after the timeout), reap.
stop_pid() {
	[ -n "$1" ] || return 0
	kill -"${2:-TERM}" "$1" 2>/dev/null
	_i=0
	while _lib_pid_alive "$1"; do
		_i=$((_i + 1))
		if [ "$_i" -ge "${3:-100}" ]; then
			kill -KILL "$1" 2>/dev/null
			_i=0
		fi
		sleep 0.05
	done
	wait "$1" 2>/dev/null
	_lib_pids=$(echo "$_lib_pids" | tr ' ' '\n' | grep -v -x -e "$1" | tr '\n' ' ')
	return 0
}

_lib_cleanup() {
	_rc=$?
	trap - EXIT INT TERM
	if [ -n "$_lib_cleanups" ]; then
		eval "$_lib_cleanups" >/dev/null 2>&1
	fi
	for _p in $_lib_pids; do
		stop_pid "$_p" TERM 60
	done
	# processes left in our scratch dir (e.g. samba children): kill them too
	for _p in $(_lib_procs_in "$T"); do
		kill -KILL "$_p" 2>/dev/null
	done
	if [ -z "$_lib_done" ]; then
		# the script ended without done_testing: make that visible
		_lib_tap "# test script exited ($_rc) before done_testing"
		[ -n "$_lib_planned" ] || _lib_tap "1..$_lib_count"
		[ "$_rc" -eq 0 ] && _rc=1
	fi
	# A tool that replaced /dev/null with a file (a rename over it) would
	# break every later test in odd ways: name the culprit, put it back.
	if [ ! -c /dev/null ]; then
		_lib_tap "not ok - /dev/null is no longer a device at the end of $_lib_name"
		rm -f /dev/null && mknod -m 666 /dev/null c 1 3
		_rc=1
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		_lib_tap "# KEEP_TMP=1: scratch kept in $T"
	else
		rm -rf "$T"
		rmdir "$TOP/tests/tmp" 2>/dev/null
	fi
	exit "$_rc"
}

# _lib_procs_in DIR: pids whose command line mentions DIR
_lib_procs_in() {
	for _f in /proc/[0-9]*/cmdline; do
		_p=${_f#/proc/}; _p=${_p%/cmdline}
		[ "$_p" = $$ ] && continue
		{ tr '\0' ' ' <"$_f"; } 2>/dev/null | grep -q -F -- "$1/" && echo "$_p"
	done
}

trap _lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# test CA, shared by the servers of one test file
# pki_init: creates $T/pki/ca.pem (exported as TEST_CA) and ca.key
pki_init() {
	[ -s "$T/pki/ca.pem" ] && return 0
	mkdir -p "$T/pki" && chmod 700 "$T/pki" || return 1
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -keyout "$T/pki/ca.key" -out "$T/pki/ca.pem" -days 3 \
		-subj "/CN=sync test CA $$" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		>"$T/pki/openssl.log" 2>&1 || { note_file "$T/pki/openssl.log"; return 1; }
	TEST_CA=$T/pki/ca.pem
	export TEST_CA
}

# pki_server_cert NAME SAN: $T/pki/NAME.pem and NAME.key signed by the test
# CA; SAN like "IP:127.0.0.1,DNS:localhost"
pki_server_cert() {
	pki_init || return 1
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
		"$2" >"$T/pki/$1.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$T/pki/$1.key" -out "$T/pki/$1.csr" -subj "/CN=$1" \
		>>"$T/pki/openssl.log" 2>&1 &&
	openssl x509 -req -in "$T/pki/$1.csr" -CA "$T/pki/ca.pem" \
		-CAkey "$T/pki/ca.key" -CAcreateserial -days 3 \
		-extfile "$T/pki/$1.ext" -out "$T/pki/$1.pem" \
		>>"$T/pki/openssl.log" 2>&1 || { note_file "$T/pki/openssl.log"; return 1; }
	chmod 600 "$T/pki/$1.key"
}

# new_password: a random password meeting AD complexity
new_password() {
	printf 'Tt1-%s\n' "$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
}

. "$TOP/tests/slapd.sh"
. "$TOP/tests/samba.sh"

# lib_quiet: for scripts that use the servers but are not tests (the
# demo, the benchmarks): no TAP plan is printed or expected at exit.
lib_quiet() { _lib_done=1; }

# bench_need PROG BINARY: for the benchmarks that drive the Graph
# emulator: exit 2, saying what is missing, unless python3, curl, GNU
# time and $BIN/BINARY are there
bench_need() {
	for _c in python3 curl /usr/bin/time; do
		command -v "$_c" >/dev/null 2>&1 || {
			echo "$1: '$_c' not found (apt-get install python3 curl time)" >&2
			exit 2
		}
	done
	[ -x "$BIN/$2" ] || { echo "$1: no '$BIN/$2'; run make" >&2; exit 2; }
}
