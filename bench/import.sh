#!/bin/sh
# bench/import.sh [N...]: sync-import against ldapsearch on the same slapd.
#
# For each N (default: $BENCH_IMPORT_N, else 100000): N inetOrgPerson
# users (about 15 attributes, mail and objectClass multi-valued, a third
# with two telephoneNumbers, a quarter with a description that needs JSON
# escaping, one in seven with a non-ASCII given name), N/100 groupOfNames
# "Team" groups of 100 members and one group with every tenth user, loaded
# with slapadd (offline) into a throw-away slapd from tests/slapd.sh.
# Then, over the same transport
# (ldap://127.0.0.1, simple bind as the root DN, pages of 1000):
#
#   ldapsearch -x -H URL -D ROOTDN -y PWFILE -E pr=1000/noprompt -b BASE \
#       '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))' '*' entryUUID
#   sync-import -q -c CONF dir          (users and groups: the same entries)
#
# each timed by hyperfine (one warm-up, RUNS runs, output to /dev/null),
# then once more under /usr/bin/time for the peak RSS, and sync-import
# also with -m 64.  Prints wall time, user+sys CPU, max RSS, the CPU slapd
# spent per run, and the ratio of the mean wall times (goal: at most 1.2).
#
# Environment: RUNS (default 5, 3 from 500000 entries), SYNC_IMPORT (the
# binary to measure, default bin/sync-import), KEEP_TMP=1 keeps the data
# in tests/tmp.  Needs slapd, ldap-utils, hyperfine and GNU time.

. "$(dirname "$0")/../tests/lib.sh"

SYNC_IMPORT=${SYNC_IMPORT:-$BIN/sync-import}
[ $# -gt 0 ] || set -- ${BENCH_IMPORT_N:-100000}

for _c in hyperfine /usr/bin/time slapd slapadd ldapsearch awk; do
	command -v "$_c" >/dev/null 2>&1 || {
		echo "bench/import.sh: '$_c' not found (apt-get install hyperfine time slapd ldap-utils)" >&2
		exit 2
	}
done
[ -x "$SYNC_IMPORT" ] || { echo "bench/import.sh: no '$SYNC_IMPORT'; run make" >&2; exit 2; }

# gen_ldif N: the directory below the base entry, as LDIF on stdout.
gen_ldif() {
	awk -v n="$1" 'BEGIN {
	base = "dc=example,dc=org"
	split("Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Karin Lukas Mia Noah Olga Paul", gn, " ")
	split("Émilie Jürgen Søren Zoë Łukasz Ångström", gu, " ")
	split("Smith Müller García Rossi Novak Jensen Kowalski Dubois Silva Nakamura Okafor Larsen", sn, " ")
	split("Engineering Sales Finance Support Marketing Legal Operations Research", dep, " ")
	split("Berlin Paris Madrid Rome Oslo Tokyo Lagos Austin", city, " ")
	print "dn: ou=People," base "\nobjectClass: organizationalUnit\nou: People\n"
	print "dn: ou=Groups," base "\nobjectClass: organizationalUnit\nou: Groups\n"
	for (i = 1; i <= n; i++) {
		u = sprintf("u%07d", i)
		g = (i % 7 == 0) ? gu[i % 6 + 1] : gn[i % 16 + 1]
		s = sn[int(i / 16) % 12 + 1]
		d = dep[i % 8 + 1]
		printf "dn: uid=%s,ou=People,%s\n", u, base
		printf "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n"
		printf "uid: %s\ncn: %s %s %d\nsn: %s\ngivenName: %s\ndisplayName: %s %s (%s)\n", u, g, s, i, s, g, g, s, d
		printf "mail: %s@example.org\nmail: %s.%s.%d@corp.example.org\n", u, tolower(g), tolower(s), i
		printf "telephoneNumber: +49 30 %07d\n", i
		if (i % 3 == 0) printf "telephoneNumber: +49 170 %07d\n", i
		printf "title: %s %s\nou: %s\ndepartmentNumber: %d\nemployeeNumber: %d\nemployeeType: %s\n", (i % 5 ? "Senior" : "Junior"), (i % 4 ? "Engineer" : "Manager"), d, i % 8 + 100, i, (i % 10 ? "staff" : "contractor")
		printf "l: %s\npostalCode: %05d\nstreet: %d Example Street\n", city[i % 8 + 1], i % 99999, i % 300 + 1
		if (i % 4 == 0) printf "description: Imported test user number %d, member of team %d; notes: \"quoted\" and back\\\\slash\n", i, int((i - 1) / 100)
		printf "\n"
	}
	for (t = 0; t * 100 < n; t++) {
		printf "dn: cn=Team %05d,ou=Groups,%s\nobjectClass: groupOfNames\ncn: Team %05d\ndescription: Team %d\n", t, base, t, t
		for (i = t * 100 + 1; i <= n && i <= t * 100 + 100; i++)
			printf "member: uid=u%07d,ou=People,%s\n", i, base
		printf "\n"
	}
	printf "dn: cn=Every Tenth,ou=Groups,%s\nobjectClass: groupOfNames\ncn: Every Tenth\n", base
	for (i = 10; i <= n; i += 10)
		printf "member: uid=u%07d,ou=People,%s\n", i, base
	printf "\n"
	}'
}

# slapd_restart: start slapd again on the database slapadd filled, with
# the URLs slapd_start chose (ldap:// and ldapi:// only), without the
# stats log, which would cost slapd time in every run.
slapd_restart() {
	_sock=$(printf '%s' "${SLAPD_LDAPI_URL#ldapi://}" |
		sed -e 's,%2F,/,g' -e 's/%20/ /g' -e 's/%2C/,/g' -e 's/%3A/:/g' -e 's/%25/%/g')
	rm -f "$_sock"
	slapd -d 0 -F "$SLAPD_DIR/slapd.d" -h "$SLAPD_URL $SLAPD_LDAPI_URL" \
		</dev/null >>"$SLAPD_DIR/log" 2>&1 3>&- &
	SLAPD_PID=$!
	at_exit "stop_pid $SLAPD_PID TERM 100"
	_i=0
	until ldapsearch -x -H "$SLAPD_URL" -s base -b "" -o nettimeout=1 \
		-l 2 namingContexts >/dev/null 2>&1; do
		_i=$((_i + 1))
		if [ $_i -ge 500 ] || ! _lib_pid_alive "$SLAPD_PID"; then
			tail -n 20 "$SLAPD_DIR/log" >&2
			echo "bench/import.sh: slapd did not restart" >&2
			exit 2
		fi
		sleep 0.02
	done
}

# slapd_cpu: CPU seconds (user+sys) slapd has used so far, in ticks.
slapd_cpu() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SLAPD_PID/stat"
}

# timed NAME CMD...: hyperfine CMD; appends "NAME mean sd min user sys
# slapd-cpu-per-run" to $T/results.
timed() {
	_name=$1; shift
	_c0=$(slapd_cpu)
	hyperfine -N --style basic --warmup 1 --runs "$RUNS" --output null \
		--export-csv "$T/hf.csv" -n "$_name" "$*" >&2 || exit 2
	_c1=$(slapd_cpu)
	awk -F, -v n="$_name" -v ticks=$((_c1 - _c0)) -v runs=$((RUNS + 1)) \
		-v hz="$(getconf CLK_TCK)" 'NR == 1 {
		for (i = 1; i <= NF; i++) col[$i] = i
	} NR == 2 {
		printf "%s %.3f %.3f %.3f %.3f %.3f %.3f\n", n, $col["mean"],
		    $col["stddev"], $col["min"], $col["user"], $col["system"],
		    ticks / hz / runs
	}' "$T/hf.csv" >>"$T/results"
}

# rss NAME CMD...: one more run under GNU time; appends "NAME wall user sys
# maxrss-KiB" to $T/rss.
rss() {
	_name=$1; shift
	/usr/bin/time -o "$T/time.out" -f "$_name %e %U %S %M" "$@" \
		>/dev/null 2>"$T/rss.err" || { cat "$T/rss.err" >&2; exit 2; }
	cat "$T/time.out" >>"$T/rss"
}

bench_one() {
	N=$1
	RUNS=$RUNS_ARG
	if [ -z "$RUNS" ]; then
		if [ "$N" -ge 500000 ]; then RUNS=3; else RUNS=5; fi
	fi
	: >"$T/results"
	: >"$T/rss"

	slapd_start "slapd-$N"
	# The map must hold the data and its indexes: about 4 KiB an entry.
	printf 'dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcDbMaxSize\nolcDbMaxSize: %s\n' \
		$(( (N * 8 + 1048576) * 1024 )) >"$T/maxsize.ldif"
	slapd_modify "$T/maxsize.ldif" || { echo "bench/import.sh: cannot set olcDbMaxSize" >&2; exit 2; }
	slapd_stop

	_t0=$(date +%s%N)
	gen_ldif "$N" >"$SLAPD_DIR/data.ldif"
	_t1=$(date +%s%N)
	slapadd -q -n1 -F "$SLAPD_DIR/slapd.d" -l "$SLAPD_DIR/data.ldif" \
		>"$SLAPD_DIR/slapadd-data.log" 2>&1 ||
		{ tail -n 20 "$SLAPD_DIR/slapadd-data.log" >&2; exit 2; }
	_t2=$(date +%s%N)
	_ldifsize=$(wc -c <"$SLAPD_DIR/data.ldif")
	rm -f "$SLAPD_DIR/data.ldif"
	slapd_restart
	_dbsize=$(du -sk "$SLAPD_DIR/db" | awk '{ print $1 }')

	cat >"$T/import.yaml" <<EOF
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
	filter='(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))'
	LS="ldapsearch -x -H $SLAPD_URL -D $SLAPD_ROOTDN -y $SLAPD_PWFILE -E pr=1000/noprompt -b $SLAPD_BASE $filter * entryUUID"
	SI="$SYNC_IMPORT -q -c $T/import.yaml dir"

	# One import into a file first: it checks the counts, measures the
	# snapshot and warms slapd's cache.
	"$SYNC_IMPORT" -c "$T/import.yaml" -o "$T/out.snap" dir 2>"$T/import.err" ||
		{ cat "$T/import.err" >&2; exit 2; }
	_groups=$(( (N + 99) / 100 + 1 ))
	_want="sync-import: dir: $N users, $_groups groups, 0 contacts"
	[ "$(cat "$T/import.err")" = "$_want" ] || {
		echo "bench/import.sh: expected '$_want', got:" >&2
		cat "$T/import.err" >&2
		exit 2
	}
	_snapsize=$(wc -c <"$T/out.snap")
	rm -f "$T/out.snap"

	timed ldapsearch $LS
	timed sync-import $SI
	rss ldapsearch $LS
	rss sync-import $SI
	rss "sync-import-m64" $SI -m 64

	echo
	echo "== sync-import vs ldapsearch: $N users, $_groups groups ($(( N + _groups )) entries)"
	echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(free -g | awk '/^Mem:/ { print $2 }') GiB"
	echo "data: LDIF $((_ldifsize / 1048576)) MiB generated in $(( (_t1 - _t0) / 1000000 )) ms, slapadd $(( (_t2 - _t1) / 1000000 )) ms, mdb $((_dbsize / 1024)) MiB"
	echo "snapshot: $_snapsize bytes ($((_snapsize / 1048576)) MiB)"
	echo "transport: $SLAPD_URL, simple bind, pages of 1000; $RUNS runs after 1 warm-up"
	echo "ldapsearch: $LS"
	echo "sync-import: $SI"
	echo
	printf '%-16s %9s %8s %9s %9s %9s %10s\n' tool "wall(s)" "±sd" "min(s)" \
		"user(s)" "sys(s)" "slapd(s)"
	awk '{ printf "%-16s %9.3f %8.3f %9.3f %9.3f %9.3f %10.3f\n", $1, $2, $3, $4, $5, $6, $7 }' "$T/results"
	echo
	printf '%-16s %9s %9s %9s %12s\n' "one more run" "wall(s)" "user(s)" "sys(s)" "maxRSS(MiB)"
	awk '{ printf "%-16s %9.2f %9.2f %9.2f %12.1f\n", $1, $2, $3, $4, $5 / 1024 }' "$T/rss"
	echo
	awk 'NR == 1 { ls = $2 } NR == 2 { si = $2 } END {
		r = si / ls
		printf "ratio sync-import/ldapsearch (mean wall): %.2f (goal <= 1.20: %s)\n", r, r <= 1.2 ? "met" : "NOT met"
	}' "$T/results"

	slapd_stop
	[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$SLAPD_DIR"
}

RUNS_ARG=$RUNS
for n in "$@"; do
	case $n in
	''|*[!0-9]*) echo "usage: bench/import.sh [N...]" >&2; exit 2 ;;
	esac
	bench_one "$n"
done
done_testing 3>/dev/null
