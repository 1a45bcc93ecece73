#!/bin/sh
# bench/ad-delta.sh [N]: what a delta import of Active Directory (DirSync,
# against Samba AD) costs against a full import.
#
# N (default $BENCH_AD_N, else 100000) users in OU=People and N/100+1
# groups in OU=Groups (N/100 "Team" groups of 100 members, one group with
# every tenth user), about the users of bench/import.sh in AD form.  The
# domain is provisioned and loaded once and kept in
# ${BENCH_CACHE:-/var/tmp/sync-bench}/ad-N-KEY (KEY: the Samba version and
# this script's data), then copied for each run of the bench: loading goes
# through Samba's module stack (bench/ad-load.py, with the DC stopped,
# 250 records a transaction), which costs more per object the more the
# domain holds (ldb copies the index lists of objectClass, objectCategory,
# primaryGroupID... at each add): 20 s for 2,000 users, 10 minutes for
# 10,000, hours for 100,000 on a 2-vCPU VM (see bench/README.md).
#
# A full import writes the snapshot with its DirSync cookie; then 1% of
# the users change over LDAPS (of N/100 changes: 65% a modified
# description, 10% deleted users, 10% new users, 10% a user moved from
# one team to another (member removed, member added), 5% a user renamed
# who is a member of two groups), and the mean wall time of RUNS runs
# (default 3, after one warm-up) is taken of a full import and of
# `sync-import -d` from the first snapshot, each to a file with -o (a
# temporary file, fsync, rename) and to standard output redirected to a
# file; the delta's objects must be byte-identical to the full import's
# (the headers differ only in the cookie, which holds the time).  Each
# row gives the CPU time of sync-import (user+sys) and of samba per run,
# and the load average when it ended.  Goal: the delta at most 5% of the
# full import.
# Environment: RUNS, SYNC_IMPORT (default bin/sync-import), BENCH_CACHE,
# KEEP_TMP=1.  Needs samba, ldap-utils, GNU time (/usr/bin/time), root
# (a loopback address for the DC).

. "$(dirname "$0")/../tests/lib.sh"
lib_quiet

SYNC_IMPORT=${SYNC_IMPORT:-$BIN/sync-import}
N=${1:-${BENCH_AD_N:-100000}}
RUNS=${RUNS:-3}
SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH
for _c in samba samba-tool ldapmodify awk /usr/bin/time /usr/bin/python3; do
	command -v "$_c" >/dev/null 2>&1 || {
		echo "bench/ad-delta.sh: '$_c' not found" >&2; exit 2; }
done
[ -x "$SYNC_IMPORT" ] || { echo "bench/ad-delta.sh: no '$SYNC_IMPORT'; run make" >&2; exit 2; }

# gen_users N / gen_groups N: the directory's objects, as LDIF on stdout.
gen_users() {
	awk -v n="$1" 'BEGIN {
	base = "DC=samdom,DC=test"
	split("Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Karin Lukas Mia Noah Olga Paul", gn, " ")
	split("Émilie Jürgen Søren Zoë Łukasz Ångström", gu, " ")
	split("Smith Müller García Rossi Novak Jensen Kowalski Dubois Silva Nakamura Okafor Larsen", sn, " ")
	split("Engineering Sales Finance Support Marketing Legal Operations Research", dep, " ")
	split("Berlin Paris Madrid Rome Oslo Tokyo Lagos Austin", city, " ")
	print "dn: OU=People," base "\nobjectClass: organizationalUnit\nou: People\n"
	print "dn: OU=Groups," base "\nobjectClass: organizationalUnit\nou: Groups\n"
	for (i = 1; i <= n; i++) {
		u = sprintf("u%07d", i)
		g = (i % 7 == 0) ? gu[i % 6 + 1] : gn[i % 16 + 1]
		s = sn[int(i / 16) % 12 + 1]
		d = dep[i % 8 + 1]
		printf "dn: CN=%s,OU=People,%s\nobjectClass: user\n", u, base
		printf "sAMAccountName: %s\nuserPrincipalName: %s@samdom.test\n", u, u
		printf "givenName: %s\nsn: %s\ndisplayName: %s %s (%s)\n", g, s, g, s, d
		printf "mail: %s.%s.%d@corp.example.org\n", tolower(g), tolower(s), i
		printf "telephoneNumber: +49 30 %07d\n", i
		if (i % 3 == 0) printf "otherTelephone: +49 170 %07d\n", i
		printf "department: %s\nl: %s\ntitle: Engineer %d\nemployeeID: E%07d\n", d, city[i % 8 + 1], i % 5, i
		if (i % 4 == 0) printf "description: says \"hi\" \\\\ %d\n", i
		print ""
	}
}'
}
gen_groups() {
	awk -v n="$1" 'BEGIN {
	base = "DC=samdom,DC=test"
	for (k = 1; k <= int(n / 100); k++) {
		printf "dn: CN=Team %05d,OU=Groups,%s\nobjectClass: group\nsAMAccountName: team%05d\ndescription: team %d\n", k, base, k, k
		for (i = (k - 1) * 100 + 1; i <= k * 100; i++)
			printf "member: CN=u%07d,OU=People,%s\n", i, base
		print ""
	}
	printf "dn: CN=Every Tenth,OU=Groups,%s\nobjectClass: group\nsAMAccountName: every-tenth\n", base
	for (i = 10; i <= n; i += 10)
		printf "member: CN=u%07d,OU=People,%s\n", i, base
	print ""
}'
}

# The loaded domain, built once.
_key=$( {
	echo "ad-delta v1"
	samba -V
	sed -n '/^gen_users() {/,/^# The loaded domain/p' "$0"
	cat "$TOP/bench/ad-load.py"
} 2>&1 | sha256sum | cut -c1-16)
CACHE=${BENCH_CACHE:-/var/tmp/sync-bench}
DOM=$CACHE/ad-$N-$_key
if [ ! -f "$DOM/.ready" ]; then
	mkdir -p "$CACHE" || exit 2
	_bare=$(_samba_template bare) || { echo "bench/ad-delta.sh: provisioning failed" >&2; exit 2; }
	_b=$DOM.build.$$
	rm -rf "$_b"
	cp -a "$_bare" "$_b" && rm -f "$_b/.ready" &&
	_samba_conf "$_b" 127.0.0.1 "$_b/tls" >"$_b/etc/smb.conf" || exit 2
	gen_users "$N" >"$_b/users.ldif" && gen_groups "$N" >"$_b/groups.ldif" || exit 2
	echo "bench/ad-delta.sh: loading $N users and $((N / 100 + 1)) groups into $_b (once)" >&2
	_t0=$(date +%s)
	/usr/bin/python3 "$TOP/bench/ad-load.py" "$_b/etc/smb.conf" 250 \
		"$_b/users.ldif" "$_b/groups.ldif" >"$_b/load.out" 2>"$_b/load.log" ||
		{ tail -n 20 "$_b/load.log" >&2; exit 2; }
	echo "loaded in $(( $(date +%s) - _t0 )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$_b/load.log"
	rm -f "$_b/etc/smb.conf" "$_b/users.ldif" "$_b/groups.ldif"
	touch "$_b/.ready"
	rm -rf "$DOM"
	mv "$_b" "$DOM" || exit 2
fi

samba_start --template "$DOM"
B=$SAMBA_BASE
cat >"$T/ad.yaml" <<EOF
state_dir: $T/state
connectors:
  ad:
    type: ad
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $B
    exclude: [ "CN=Users,$B", "CN=Builtin,$B" ]
    page_size: 1000
EOF
SI="$SYNC_IMPORT -q -c $T/ad.yaml"
$SI -o "$T/prev.snap" ad || exit 2
grep -q '"cookie":"dirsync ' "$T/prev.snap" ||
	{ echo "bench/ad-delta.sh: the full import wrote no cookie" >&2; exit 2; }

# 1% changed: N/100 changes, spread over the directory
awk -v n="$N" 'BEGIN {
	base = "DC=samdom,DC=test"; c = int(n / 100); ng = int(n / 100)
	for (k = 0; k < c; k++) {
		i = int(k * n / c) + 1
		u = sprintf("CN=u%07d,OU=People,%s", i, base)
		m = k % 20
		if (m == 14 || m == 15)
			printf "dn: %s\nchangetype: delete\n\n", u
		else if (m == 16 || m == 17)
			printf "dn: CN=new%07d,OU=People,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: new%07d\ngivenName: New\nsn: User %d\n\n", k, base, k, k
		else if (m == 18 || m == 19) {
			# from its team to the next one
			t = int((i - 1) / 100) + 1; t2 = t % ng + 1
			printf "dn: CN=Team %05d,OU=Groups,%s\nchangetype: modify\ndelete: member\nmember: %s\n-\n\n", t, base, u
			printf "dn: CN=Team %05d,OU=Groups,%s\nchangetype: modify\nadd: member\nmember: %s\n-\n\n", t2, base, u
		} else if (m == 13 && i + 9 <= n)
			# a member of its team and of Every Tenth
			printf "dn: CN=u%07d,OU=People,%s\nchangetype: modrdn\nnewrdn: CN=r%07d\ndeleteoldrdn: 1\n\n", i + 9, base, i + 9
		else
			printf "dn: %s\nchangetype: modify\nreplace: description\ndescription: changed %d\n\n", u, k
	}
}' >"$T/changes.ldif"
samba_modify "$T/changes.ldif" || { echo "bench/ad-delta.sh: ldapmodify failed" >&2; exit 2; }

# samba_cpu: CPU ticks (user+sys) samba has used so far.
samba_cpu() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SAMBA_PID/stat"
}

# timed NAME CMD...: one warm-up, then RUNS runs; appends "NAME mean sd
# cpu samba-cpu load" (seconds; the CPU times per run) to $T/results
: >"$T/results"
timed() {
	_name=$1; shift
	"$@" || exit 2
	: >"$T/times"
	_r=0
	_c0=$(samba_cpu)
	while [ $_r -lt "$RUNS" ]; do
		_t0=$(date +%s%N)
		/usr/bin/time -f "%U %S" -o "$T/cpu" "$@" || exit 2
		_t1=$(date +%s%N)
		echo $(( (_t1 - _t0) / 1000 )) $(cat "$T/cpu") >>"$T/times"
		_r=$((_r + 1))
	done
	_c1=$(samba_cpu)
	awk -v n="$_name" -v sc=$((_c1 - _c0)) -v hz="$(getconf CLK_TCK)" \
	    -v la="$(cut -d' ' -f1 /proc/loadavg)" \
	    '{ s += $1; q += $1 * $1; c += $2 + $3; k++ } END {
		m = s / k; v = q / k - m * m; if (v < 0) v = 0
		printf "%s %.4f %.4f %.4f %.4f %s\n", n, m / 1e6, sqrt(v) / 1e6,
		    c / k, sc / hz / k, la }' "$T/times" >>"$T/results"
}

# same A B: the same objects and header, but for the cookie
same() {
	sed -n '1s/"cookie":"[^"]*"//p' "$1" >"$T/h1" &&
	sed -n '1s/"cookie":"[^"]*"//p' "$2" >"$T/h2" &&
	cmp -s "$T/h1" "$T/h2" &&
	tail -n +2 "$1" >"$T/b1" && tail -n +2 "$2" >"$T/b2" &&
	cmp "$T/b1" "$T/b2"
}

timed full $SI -o "$T/full.snap" ad
timed delta $SI -d "$T/prev.snap" -o "$T/delta.snap" ad
timed full-stdout sh -c '$1 ad >"$2/full-out.snap"' sh "$SI" "$T"
timed delta-stdout sh -c '$1 -d "$2/prev.snap" ad >"$2/delta-out.snap"' sh "$SI" "$T"
timed floor-start sh -c '"$1" --version >/dev/null' sh "$SYNC_IMPORT"
same "$T/full.snap" "$T/delta.snap" ||
	{ echo "bench/ad-delta.sh: the delta and the full snapshot differ" >&2; exit 2; }
same "$T/full-out.snap" "$T/delta-out.snap" ||
	{ echo "bench/ad-delta.sh: the delta and the full snapshot (standard output) differ" >&2; exit 2; }
$SYNC_IMPORT -c "$T/ad.yaml" -d "$T/prev.snap" -o "$T/delta.snap" ad 2>"$T/delta.err"

echo
echo "== sync-import -d (DirSync) vs a full import: $N users, $((N / 100 + 1)) groups, $((N / 100)) changes"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "snapshot: $(wc -c <"$T/full.snap") bytes; delta: $(cat "$T/delta.err")"
awk 'NR == 1 { f = $2; print "run                wall              of full   cpu (sync-import)  cpu (samba)  load" }
$1 ~ /stdout/ && $1 ~ /full/ { f = $2 }
{ printf "%-14s %8.3f s +- %.3f  %6.1f%%  %8.3f s  %8.3f s  %s\n", $1, $2, $3, 100 * $2 / f, $4, $5, $6 }' "$T/results"
awk '$1 == "full" { f = $2 } $1 == "delta" { printf "goal (-o): delta <= 5%% of full: %s (%.1f%%)\n", $2 / f <= 0.05 ? "met" : "NOT met", 100 * $2 / f }
$1 == "full-stdout" { fs = $2 } $1 == "delta-stdout" { printf "goal (standard output): delta <= 5%% of full: %s (%.1f%%)\n", $2 / fs <= 0.05 ? "met" : "NOT met", 100 * $2 / fs }' "$T/results"
samba_stop
