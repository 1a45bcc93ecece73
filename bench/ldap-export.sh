#!/bin/sh
# bench/ldap-export.sh [N]: sync-export to OpenLDAP, N adds then N
# modifies (default $BENCH_LDAP_EXPORT_N, else 10000), with a write
# window of 1 (one operation at a time) against the default (16) and
# others (BENCH_LDAP_WINDOWS, default "1 16 64").
#
# One throw-away slapd (tests/slapd.sh, mdb, the setup of
# tests/ldap-export-setup.sh: accesslog off here, refint on member,
# employeeNumber indexed) holds two source subtrees with the same N users
# and anchors (descriptions "a I" and "b I") and, per window, a target
# subtree of its own.  Per window: the cycle of tests/0470 (sync-import
# of source A and of the target, sync-diff), then the timed
#
#   sync-export -q -c sync.yaml plan         # N adds
#
# then the same against source B (N modifies: delete the old
# description, add the new one, in one modify each).  The target
# connector speaks ldap://127.0.0.1 (TCP, a simple bind as the root DN),
# as a remote server would be spoken to, not ldapi; with a latency L > 0
# (BENCH_LDAP_LATENCY, default "0 1", in ms), through tests/ldap-proxy.py
# --latency L, which holds each answer L ms (answers in flight overlap, as
# on a network with that round trip).  Printed per run: the
# wall time, changes per second, and the CPU of sync-export (user+sys,
# GNU time) and of slapd (from /proc) in the run.
# Environment: BENCH_LDAP_WINDOWS, SYNC_BIN, KEEP_TMP=1.

. "$(dirname "$0")/../tests/lib.sh"
lib_quiet
. "$TOP/tests/ldap-export-setup.sh"

N=${1:-${BENCH_LDAP_EXPORT_N:-10000}}
WINDOWS=${BENCH_LDAP_WINDOWS:-"1 16 64"}
LATENCIES=${BENCH_LDAP_LATENCY:-"0 1"}
for _c in slapd slapadd ldapmodify python3 bc /usr/bin/time; do
	command -v "$_c" >/dev/null 2>&1 || {
		echo "bench/ldap-export.sh: '$_c' not found" >&2; exit 2; }
done
[ -x "$BIN/sync-export" ] || { echo "bench/ldap-export.sh: run make first" >&2; exit 2; }

# No accesslog for the timings: it doubles slapd's writes.
LX_NO_ACCESSLOG=1 lx_setup 16 >/dev/null 2>&1 ||
	{ echo "bench/ldap-export.sh: slapd" >&2; exit 2; }
B=$SLAPD_BASE
for s in SrcA SrcB; do
	lx_tree "ou=$s,$B" || exit 2
done
# slapd_restart, as bench/import.sh has it
eval "$(sed -n -e '/^slapd_restart() {/,/^}/p' "$TOP/bench/import.sh")"
t0=$(date +%s%N)
{
	lx_users "ou=SrcA,$B" 1 "$N" a
	lx_users "ou=SrcB,$B" 1 "$N" b
} | grep -v '^changetype:' >"$T/src.ldif"
slapd_stop
slapadd -q -n1 -F "$SLAPD_DIR/slapd.d" -l "$T/src.ldif" >"$T/slapadd.log" 2>&1 ||
	{ tail -n 20 "$T/slapadd.log" >&2; exit 2; }
slapd_restart
echo "bench/ldap-export.sh: $N users in each source loaded in $(( ($(date +%s%N) - t0) / 1000000 )) ms" >&2
slapd_cpu() {
	awk '{ print $14 + $15 }' "/proc/$SLAPD_PID/stat"
}

run() {	# run LABEL PLAN
	c0=$(slapd_cpu)
	t0=$(date +%s%N)
	/usr/bin/time -f '%U %S %M' -o "$T/time" \
		sync-export -q -c "$T/sync.yaml" "$2" >"$T/out" 2>"$T/err"
	rc=$?
	t1=$(date +%s%N)
	c1=$(slapd_cpu)
	tick=$(getconf CLK_TCK)
	ms=$(( (t1 - t0) / 1000000 ))
	read -r u s m <"$T/time"
	n=$(sed 1d "$2" | wc -l)
	printf '%-8s ms window %-3s %6d changes %8.2f s %8.0f changes/s  sync-export cpu %.2f s (max RSS %d KiB)  slapd cpu %.2f s  exit %d\n' \
		"$1" "$WRITE_WINDOW" "$n" "$(echo "$ms / 1000" | bc -l)" \
		"$(echo "$n * 1000 / $ms" | bc -l)" "$(echo "$u + $s" | bc -l)" "$m" \
		"$(echo "($c1 - $c0) / $tick" | bc -l)" "$rc"
	[ $rc -eq 0 ] || cat "$T/err" >&2
}

for lat in $LATENCIES; do
	if [ "$lat" = 0 ]; then
		DST_URL=$SLAPD_URL
	else
		lx_proxy --latency "$lat" ||
			{ echo "bench/ldap-export.sh: the proxy" >&2; exit 2; }
		DST_URL=$PROXY_URL
	fi
	export DST_URL
	for w in $WINDOWS; do
		WRITE_WINDOW=$w DST_BASE=ou=W$w-L$lat,$B
		export WRITE_WINDOW DST_BASE
		lx_tree "$DST_BASE" || exit 2
		SRC_BASE=ou=SrcA,$B
		export SRC_BASE
		lx_cycle "a$w" || { echo "bench/ldap-export.sh: cycle a$w" >&2; exit 2; }
		run "adds $lat" "$T/a$w.plan"
		SRC_BASE=ou=SrcB,$B
		export SRC_BASE
		lx_cycle "b$w" || { echo "bench/ldap-export.sh: cycle b$w" >&2; exit 2; }
		run "mods $lat" "$T/b$w.plan"
		lx_cycle "c$w"
		left=$(sed 1d "$T/c$w.plan" | wc -l)
		[ "$left" -eq 0 ] || echo "bench/ldap-export.sh: window $w: $left changes left" >&2
	done
	[ "$lat" = 0 ] || lx_proxy_stop
done
