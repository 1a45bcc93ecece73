#!/bin/sh
# bench/ldap-delta.sh [N]: what a delta import of OpenLDAP (RFC 4533
# refreshOnly, syncprov) costs against a full import.
#
# N (default $BENCH_DELTA_N, else 100000) users and N/100+1 groups, the
# data of bench/import.sh, loaded with slapadd into a throw-away slapd
# with the syncprov overlay (olcSpSessionlog N/10); slapadd -w, so
# that the contextCSN of the suffix is that of the data.  A full import
# writes the snapshot with the cookie; then 1% of the entries change
# through ldapmodify (of N/100 changes: 80% a modified description, 10%
# deleted users, 10% new users), and the mean wall time of RUNS runs
# (default 5, after one warm-up) is taken of `sync-import -d` from that snapshot against a full
# import, each to a file; the two files must be byte-identical.  Then
# slapd is restarted, which empties its session log, and the delta is
# timed again: a present phase, where the server lists the entryUUID of
# every unchanged entry.  Goal: delta at most 5% of the full import.
# Each row also gives the CPU time of sync-import (user+sys) and of
# slapd per run, and the floor rows what no delta can avoid: a process
# start (sync-import --version), and a durable copy of the previous
# snapshot (cp, which uses copy_file_range(2) as the delta does; fsync;
# rename over the last copy; fsync of the directory: what sync-import's
# atomic output costs), each as a share of the full import.
# Environment: RUNS, SYNC_IMPORT (default bin/sync-import), KEEP_TMP=1.
# Needs slapd, ldap-utils and GNU time (/usr/bin/time).

. "$(dirname "$0")/../tests/lib.sh"
lib_quiet

SYNC_IMPORT=${SYNC_IMPORT:-$BIN/sync-import}
N=${1:-${BENCH_DELTA_N:-100000}}
RUNS=${RUNS:-5}
SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH
for _c in slapd slapadd ldapmodify awk /usr/bin/time; do
	command -v "$_c" >/dev/null 2>&1 || {
		echo "bench/ldap-delta.sh: '$_c' not found" >&2; exit 2; }
done
[ -x "$SYNC_IMPORT" ] || { echo "bench/ldap-delta.sh: no '$SYNC_IMPORT'; run make" >&2; exit 2; }

# gen_ldif and slapd_restart, as bench/import.sh has them
eval "$(sed -n -e '/^gen_ldif() {/,/^}/p' -e '/^slapd_restart() {/,/^}/p' \
	"$TOP/bench/import.sh")"

slapd_start "slapd-delta"
cat >"$T/setup.ldif" <<EOF
dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcDbMaxSize
olcDbMaxSize: $(( (N * 8 + 1048576) * 1024 ))

dn: olcOverlay=syncprov,olcDatabase={1}mdb,cn=config
changetype: add
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: syncprov
olcSpSessionlog: $((N / 10))
EOF
slapd_modify "$T/setup.ldif" || { echo "bench/ldap-delta.sh: cannot configure slapd" >&2; exit 2; }
slapd_stop
gen_ldif "$N" >"$SLAPD_DIR/data.ldif"
slapadd -q -w -n1 -F "$SLAPD_DIR/slapd.d" -l "$SLAPD_DIR/data.ldif" \
	>"$SLAPD_DIR/slapadd-data.log" 2>&1 ||
	{ tail -n 20 "$SLAPD_DIR/slapadd-data.log" >&2; exit 2; }
rm -f "$SLAPD_DIR/data.ldif"
slapd_restart

cat >"$T/delta.yaml" <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: $SLAPD_URL
    allow_cleartext_bind: true
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    base_dn: $SLAPD_BASE
    page_size: 1000
    objects:
      user:
        filter: (objectClass=inetOrgPerson)
      group:
        filter: (objectClass=groupOfNames)
EOF
SI="$SYNC_IMPORT -q -c $T/delta.yaml"
$SI -o "$T/prev.snap" dir || exit 2
grep -q '"cookie":"rfc4533 ' "$T/prev.snap" ||
	{ echo "bench/ldap-delta.sh: the full import wrote no cookie" >&2; exit 2; }

# 1% changed: N/100 changes, spread over the directory
awk -v n="$N" 'BEGIN {
	base = "dc=example,dc=org"; c = int(n / 100)
	for (k = 0; k < c; k++) {
		i = int(k * n / c) + 1
		if (k % 10 == 8)
			printf "dn: uid=u%07d,ou=People,%s\nchangetype: delete\n\n", i, base
		else if (k % 10 == 9)
			printf "dn: uid=new%07d,ou=People,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: new%07d\ncn: New %d\nsn: New\n\n", k, base, k, k
		else
			printf "dn: uid=u%07d,ou=People,%s\nchangetype: modify\nreplace: description\ndescription: changed %d\n\n", i, base, k
	}
}' >"$T/changes.ldif"
slapd_modify "$T/changes.ldif" || { echo "bench/ldap-delta.sh: ldapmodify failed" >&2; exit 2; }

# slapd_cpu: CPU ticks (user+sys) slapd has used so far.
slapd_cpu() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SLAPD_PID/stat"
}

# timed NAME CMD...: one warm-up, then RUNS runs; appends "NAME mean sd
# cpu slapd-cpu" (seconds; the CPU times per run) to $T/results
: >"$T/results"
timed() {
	_name=$1; shift
	"$@" || exit 2
	: >"$T/times"
	_r=0
	_c0=$(slapd_cpu)
	while [ $_r -lt "$RUNS" ]; do
		_t0=$(date +%s%N)
		/usr/bin/time -f "%U %S" -o "$T/cpu" "$@" || exit 2
		_t1=$(date +%s%N)
		echo $(( (_t1 - _t0) / 1000 )) $(cat "$T/cpu") >>"$T/times"
		_r=$((_r + 1))
	done
	_c1=$(slapd_cpu)
	awk -v n="$_name" -v sc=$((_c1 - _c0)) -v hz="$(getconf CLK_TCK)" \
	    '{ s += $1; q += $1 * $1; c += $2 + $3; k++ } END {
		m = s / k; v = q / k - m * m; if (v < 0) v = 0
		printf "%s %.4f %.4f %.4f %.4f\n", n, m / 1e6, sqrt(v) / 1e6,
		    c / k, sc / hz / k }' "$T/times" >>"$T/results"
}

# FLOOR_COPY: what writing the snapshot durably costs, without reading
# the directory: cp (copy_file_range), fsync, rename over the last copy,
# fsync of the directory, as sync_out_commit does (sh, cp, sync, mv and
# sync are four process starts more, a few ms).
FLOOR_COPY='cp "$1/prev.snap" "$1/floor.tmp" && sync "$1/floor.tmp" &&
	mv "$1/floor.tmp" "$1/floor.snap" && sync "$1"'

timed full $SI -o "$T/full.snap" dir
timed delta-sessionlog $SI -d "$T/prev.snap" -o "$T/delta.snap" dir
# The same two to standard output redirected to a file, as the sync
# cycle of sync(7) runs them (`sync-import dir >dir.snap`): the shell
# opened the file, so nothing is renamed or fsynced, in either run.
timed full-stdout sh -c '$1 dir >"$2/full-out.snap"' sh "$SI" "$T"
timed delta-stdout sh -c '$1 -d "$2/prev.snap" dir >"$2/delta-out.snap"' sh "$SI" "$T"
cmp "$T/full-out.snap" "$T/delta-out.snap" ||
	{ echo "bench/ldap-delta.sh: the delta and the full snapshot (standard output) differ" >&2; exit 2; }
timed floor-start sh -c '"$1" --version >/dev/null' sh "$SYNC_IMPORT"
timed floor-copy sh -c "$FLOOR_COPY" sh "$T"
cmp "$T/full.snap" "$T/delta.snap" ||
	{ echo "bench/ldap-delta.sh: the delta and the full snapshot differ" >&2; exit 2; }
$SYNC_IMPORT -c "$T/delta.yaml" -d "$T/prev.snap" -o "$T/delta.snap" dir 2>"$T/delta.err"
slapd_stop
slapd_restart
timed delta-present $SI -d "$T/prev.snap" -o "$T/delta2.snap" dir
cmp "$T/full.snap" "$T/delta2.snap" ||
	{ echo "bench/ldap-delta.sh: the delta (present phase) and the full snapshot differ" >&2; exit 2; }

echo
echo "== sync-import -d vs a full import: $N users, $((N / 100 + 1)) groups, $((N / 100)) changes"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "delta: $(cat "$T/delta.err")"
awk 'NR == 1 { f = $2; print "run                    wall              of full   cpu (sync-import)  cpu (slapd)" }
{ printf "%-18s %8.3f s +- %.3f  %6.1f%%  %8.3f s  %8.3f s\n", $1, $2, $3, 100 * $2 / f, $4, $5 }' "$T/results"
awk 'NR == 1 { f = $2 } NR == 2 { r = $2 / f; printf "goal (session log, -o): delta <= 5%% of full: %s\n", r <= 0.05 ? "met" : "NOT met" }
$1 == "full-stdout" { fs = $2 } $1 == "delta-stdout" { printf "goal (session log, standard output): delta <= 5%% of full: %s (%.1f%%)\n", $2 / fs <= 0.05 ? "met" : "NOT met", 100 * $2 / fs }
$1 ~ /^floor/ { fl += $2 } END { printf "floor (process start + durable copy): %.1f%% of full\n", 100 * fl / f }' "$T/results"
slapd_stop
