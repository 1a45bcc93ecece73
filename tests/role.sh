# tests/role.sh - the lease race of the sync-role tests; source it after
# lib.sh.  The test has servers a and b ($T/a.yaml, $T/b.yaml) sharing one
# lease, and a function lease_value that prints the lease's value(s) as
# stored ("holder=...;fence=...;expires=...", one line each).
#
#   role_races ROUNDS PAUSE LABEL
#       ROUNDS rounds in which a and b promote at the same moment, every
#       other round pausing PAUSE ms between reading the lease and the
#       compare-and-swap (so that both read the same value before either
#       writes).  After each: exactly one won, the other was refused, both
#       views agree, the lease holds one value, names the winner, and its
#       fence grew by one; the winner then demotes.  One TAP result, named
#       "ROUNDS racing rounds LABEL: ...", with each bad round as a note.
#   role_killed
#       a promotes with 5 s leases and a "cron" that checks (and so renews)
#       every 0.3 s: b is refused after more than a lease's duration; a
#       killed, its lease expires and b takes over (two TAP results; the
#       last command's output is in $T/out and $T/err, as ever).  5 s: a
#       renewal is due after 2.5 s, which leaves room for a slow check (a
#       sanitizer build on a loaded machine) before the lease expires.
#       Leaves ROLE_DURATION at 5.

_role_field() {
	sed -n "s/.*$1=\([^;]*\).*/\1/p" "$T/lv"
}

role_races() {
	_rounds=${ROLE_ROUNDS:-$1} _pause=$2 _label=$3
	_bad=0 _wa=0 _wb=0
	lease_value >"$T/lv"
	_prev=$(_role_field fence)
	_i=1
	while [ "$_i" -le "$_rounds" ]; do
		_p=0
		[ $((_i % 2)) -eq 0 ] && _p=$_pause
		SYNC_ROLE_TEST_PAUSE=$_p sync-role -c "$T/a.yaml" promote \
			>/dev/null 2>"$T/ra.err" 3>&- &
		_pa=$!
		SYNC_ROLE_TEST_PAUSE=$_p sync-role -c "$T/b.yaml" promote \
			>/dev/null 2>"$T/rb.err" 3>&- &
		_pb=$!
		wait $_pa; _ra=$?
		wait $_pb; _rb=$?
		sync-role -c "$T/a.yaml" >/dev/null 2>&1 3>&-; _va=$?
		sync-role -c "$T/b.yaml" >/dev/null 2>&1 3>&-; _vb=$?
		lease_value >"$T/lv"
		_holder=$(_role_field holder)
		_fence=$(_role_field fence)
		_why=
		case "$_ra$_rb" in
		01) _w=a ;;
		10) _w=b ;;
		*) _w=; _why="promote exits a=$_ra b=$_rb" ;;
		esac
		[ "$_va$_vb" = 01 ] || [ "$_va$_vb" = 10 ] ||
			_why="$_why; show exits a=$_va b=$_vb"
		[ "$(wc -l <"$T/lv")" -eq 1 ] || _why="$_why; $(wc -l <"$T/lv") values"
		[ -n "$_w" ] && [ "$_holder" != "$_w" ] &&
			_why="$_why; lease holder '$_holder', winner $_w"
		[ "$_fence" = $((_prev + 1)) ] || _why="$_why; fence $_prev -> $_fence"
		if [ -n "$_why" ]; then
			_bad=$((_bad + 1))
			note "round $_i (pause $_p ms): $_why"
			note_file "$T/ra.err" 3
			note_file "$T/rb.err" 3
		fi
		case $_w in a) _wa=$((_wa + 1)) ;; b) _wb=$((_wb + 1)) ;; esac
		_prev=$_fence
		[ -n "$_w" ] && sync-role -c "$T/$_w.yaml" demote 2>/dev/null 3>&-
		_i=$((_i + 1))
	done
	_name="$_rounds racing rounds $_label: one winner, one refused, one value, views agree"
	if [ "$_bad" -eq 0 ]; then pass "$_name"; else fail "$_name" "$_bad bad rounds"; fi
	note "race winners: a $_wa, b $_wb"
}

role_killed() {
	ROLE_DURATION=5
	export ROLE_DURATION
	sync-role -c "$T/a.yaml" promote 2>/dev/null
	(while :; do sync-role -c "$T/a.yaml" check || exit 1; sleep 0.3; done) 3>&- &
	_keeper=$!
	sleep 6
	test_expect_code 1 "b refused while a keeps renewing (longer than a duration)" \
		sync-role -c "$T/b.yaml" promote
	kill -KILL $_keeper
	wait $_keeper 2>/dev/null
	sleep 5.5
	test_expect_code 0 "a killed: its lease expired, b takes over" \
		sync-role -c "$T/b.yaml" promote
}
