#!/bin/sh
# bench/faults.sh: sync-export through the fault storm of issue 9, over
# many seeds: does every change land exactly once, in one run?
#
# For each seed, from an empty tenant: a plan creating FAULT_USERS users
# and FAULT_GROUPS groups with their members, exported ONCE while the
# emulator answers 30% of requests 429 (Retry-After FAULT_RETRY_AFTER s),
# 10% 503, 5% 504 after running them, drops 5% of connections before and
# 5% after running the request, and hides new objects for 2 s; then a
# second plan (tests/export-src.py churn: renames, four users deleted
# with their memberships, three new users, a member dropped) exported once
# through the same storm.  After each run the emulator's state is checked
# against the source (tests/graph-export-check.py: every object once,
# the right members) and the creates the service ran are counted from
# its log (a create whose answer was lost counts too).
#
# One line per seed and run: exit status, seconds, creates run by the
# service against the plan's, duplicates, differences; then the totals.
#
# Environment: FAULT_SEEDS (default "1 2 ... 20"), FAULT_USERS (200),
# FAULT_GROUPS (10), FAULT_RETRY_AFTER (1), FAULT_CONNECTIONS (4),
# FAULT_SETTLE (create_settle, 10; empty: no such line, for older builds),
# SYNC_BIN, KEEP_TMP=1.  Needs python3, curl and GNU time.

. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/graph.sh"

SEEDS=${FAULT_SEEDS:-$(seq 1 20)}
NU=${FAULT_USERS:-200}
NG=${FAULT_GROUPS:-10}
RA=${FAULT_RETRY_AFTER:-1}
CONNS=${FAULT_CONNECTIONS:-4}

bench_need bench/faults.sh sync-export

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/secret"
emu_start emu || { echo "bench/faults.sh: the emulator does not start" >&2; exit 2; }
BASE=http://127.0.0.1:$(cat "$T/emu.port")
. "$TOP/tests/export-faults.sh"

fx_conf "$CONNS" 300 ${FAULT_SETTLE-10}
sync-role -c "$T/sync.yaml" promote >/dev/null || exit 2

runs=0 bad=0 dups=0
# one SEED NAME WANT_CREATES: export $T/NAME.plan once through the storm
one() {
	since=$(fx_seq)
	fx_storm "$1" "$RA"
	t0=$(date +%s.%N)
	sync-export -q -c "$T/sync.yaml" "$T/$2.plan" >"$T/$2.out" 2>"$T/$2.err"
	rc=$?
	t1=$(date +%s.%N)
	u=$(fx_applied users "$since") g=$(fx_applied groups "$since")
	fx_check
	d=$(grep -c ': [2-9][0-9]* objects$' "$T/check.out")
	n=$(wc -l <"$T/check.out")
	runs=$((runs + 1))
	[ "$rc" -ne 0 ] || [ "$n" -ne 0 ] && bad=$((bad + 1))
	dups=$((dups + d))
	printf 'seed %2s %-6s exit %s  %6.1f s  creates run %s+%s (plan %s)  duplicates %s  differences %s\n' \
		"$1" "$2" "$rc" "$(echo "$t1 - $t0" | bc)" "$u" "$g" "$3" "$d" "$n"
	[ "$rc" -ne 0 ] && sed 's/^/    /' "$T/$2.err" | head -5
	return 0
}

for s in $SEEDS; do
	fx_fresh
	fx_gen "$T/src.snap" "$NU" "$NG"
	fx_plan create || { echo "seed $s: no plan" >&2; exit 2; }
	one "$s" create "$((NU + NG))"
	fx_gen "$T/src.snap" "$NU" "$NG" churn
	fx_plan churn || { echo "seed $s: no second plan" >&2; exit 2; }
	one "$s" churn 3
done
echo "$runs runs over $(echo $SEEDS | wc -w) seeds, each run once: $bad failed or left the target wrong, $dups duplicates"
# Not a test: no TAP plan to close.
_lib_done=1
[ "$bad" -eq 0 ] && [ "$dups" -eq 0 ]
