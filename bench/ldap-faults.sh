#!/bin/sh
# bench/ldap-faults.sh [SEEDS]: exactly-once writes to OpenLDAP under lost
# answers, over many more seeds than tests/0478-ldap-export-faults.t runs.
#
# Runs that test with LX_SEEDS="1 ... SEEDS" (default
# $BENCH_LDAP_FAULT_SEEDS, else 40) and LX_PROB (default 0.12, the
# probability that tests/ldap-proxy.py drops the connection after slapd
# applied a write and before sync-export sees its answer; a quarter of
# that, the probability of dropping it instead of forwarding a write).
# For each seed two plans (44 adds; then 10 updates, 5 renames, 5
# moves, 5 deletes, 10 adds, 3 group updates with new members, a group
# add, a group delete) are applied in one run each; slapd's accesslog
# must show as many successful writes of each kind as the plan has
# changes, and no refusal but a guarded write sent again while slapd
# was still applying the one of the lost connection; a new cycle must
# find nothing to do.  Prints the seeds that passed, the connections
# dropped and the guarded refusals, and the wall time.
# Environment: BENCH_LDAP_FAULT_SEEDS, LX_PROB, KEEP_TMP=1.

cd "$(dirname "$0")/.." || exit 2
N=${1:-${BENCH_LDAP_FAULT_SEEDS:-40}}
OUT=${TMPDIR:-/tmp}/ldap-faults.$$
t0=$(date +%s)
LX_SEEDS=$(seq 1 "$N" | tr '\n' ' ') sh tests/0478-ldap-export-faults.t >"$OUT" 2>&1
rc=$?
t1=$(date +%s)
pass=$(grep -c '^ok [0-9]* - seed ' "$OUT")
drops=$(sed -n 's/^ok [0-9]* - seed [0-9]*: every change written once (\([0-9]*\) connections.*/\1/p' "$OUT" |
	awk '{ s += $1 } END { print s + 0 }')
guarded=$(sed -n 's/.*, \([0-9]*\) guarded writes refused).*/\1/p' "$OUT" |
	awk '{ s += $1 } END { print s + 0 }')
echo "bench/ldap-faults.sh: $pass of $N seeds: every change written exactly once; $drops connections dropped, $guarded guarded writes refused; $((t1 - t0)) s"
grep '^not ok' "$OUT" && { echo "bench/ldap-faults.sh: see $OUT" >&2; exit 1; }
[ $rc -eq 0 ] || { echo "bench/ldap-faults.sh: test exit $rc, see $OUT" >&2; exit 1; }
rm -f "$OUT"
