#!/bin/sh
# sync-export to OpenLDAP through tests/ldap-proxy.py, which drops the
# connection after slapd applied a write and before sync-export sees the
# answer (and, less often, instead of forwarding a write).  For each seed,
# two plans (adds; then updates, renames, moves, member changes, adds
# named by groups, deletes) are applied in one run each, and slapd's
# accesslog shows every change written exactly once: as many successful
# writes of each kind as the plan has changes of that kind, none refused
# (a lost answer is settled by reading, never by sending blindly again),
# and a new cycle finds nothing left to do.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/ldap-export-setup.sh"

SEEDS=${LX_SEEDS:-"1 2 3"}
PROB=${LX_PROB:-0.12}

SRC_BASE=ou=SrcA,dc=example,dc=org DST_BASE=ou=T0,dc=example,dc=org
lx_setup 8 || { fail "slapd with the accesslog overlay"; done_testing; }
B=$SLAPD_BASE

# Two states of the source, with the same anchors (employeeNumber,
# businessCategory): A, then B.
for s in SrcA SrcB; do
	lx_tree "ou=$s,$B" || fail "source tree $s"
done
{
	lx_users "ou=SrcA,$B" 1 40
	for g in 1 2 3 4; do
		printf 'dn: cn=g%d,ou=Groups,ou=SrcA,%s\nchangetype: add\nobjectClass: groupOfNames\ncn: g%d\nbusinessCategory: g%d\n' \
			$g "$B" $g $g
		i=$g
		while [ $i -le 40 ]; do
			printf 'member: uid=u%04d,ou=People,ou=SrcA,%s\n' $i "$B"
			i=$((i + 4))
		done
		echo
	done
} >"$T/a.ldif"
lx_ldif "$T/a.ldif" || fail "source A"
# B: u0001-u0010 new description, u0011-u0015 renamed (uid), u0016-u0020
# moved (departmentNumber Staff), u0021-u0025 gone, u0041-u0050 new; g1
# and g2 other members (new users among them), g4 gone, g5 new with only
# new members.
{
	i=1
	while [ $i -le 50 ]; do
		u=$(printf 'u%04d' $i)
		if [ $i -ge 21 ] && [ $i -le 25 ]; then i=$((i + 1)); continue; fi
		uid=$u dept=
		[ $i -ge 11 ] && [ $i -le 15 ] && uid=${u}r
		[ $i -ge 16 ] && [ $i -le 20 ] && dept="departmentNumber: Staff
"
		d="a $i"
		[ $i -le 10 ] && d="b $i"
		printf 'dn: uid=%s,ou=People,ou=SrcB,%s\nchangetype: add\nobjectClass: inetOrgPerson\ncn: User %d\nsn: %s\nuid: %s\nemployeeNumber: %s\ndescription: %s\nmail: %s@example.org\n%s\n' \
			"$uid" "$B" $i "$u" "$uid" "$u" "$d" "$u" "$dept"
		i=$((i + 1))
	done
	for g in 1 2 3 5; do
		printf 'dn: cn=g%d,ou=Groups,ou=SrcB,%s\nchangetype: add\nobjectClass: groupOfNames\ncn: g%d\nbusinessCategory: g%d\n' \
			$g "$B" $g $g
		case $g in
		1) list="2 6 11 12 41 42 43" ;;
		2) list="10 14 18 26 44" ;;
		3) list="3 7 19 27 31 35 39" ;;
		5) list="45 46 47 48" ;;
		esac
		for i in $list; do
			uid=$(printf 'u%04d' $i)
			[ $i -ge 11 ] && [ $i -le 15 ] && uid=${uid}r
			printf 'member: uid=%s,ou=People,ou=SrcB,%s\n' "$uid" "$B"
		done
		echo
	done
} >"$T/b.ldif"
lx_ldif "$T/b.ldif" || fail "source B"

# counts PLAN: "add N" ... per LDAP operation the plan needs
counts() {
	python3 - "$1" <<'PY'
import json, sys
n = {'add': 0, 'modify': 0, 'modrdn': 0, 'delete': 0}
for line in list(open(sys.argv[1]))[1:]:
    c = json.loads(line)
    op = c['op']
    if op == 'add': n['add'] += 1
    elif op == 'update': n['modify'] += 1
    elif op in ('rename', 'move'): n['modrdn'] += 1
    elif op == 'delete': n['delete'] += 1
for k in sorted(n): print(k, n[k])
PY
}
# logged FILE: the same counts from the accesslog, successes only
logged() {
	for k in add delete modify modrdn; do
		echo "$k $(grep -c "^$k 0 " "$1")"
	done
}

total_drops=0
for seed in $SEEDS; do
	DST_BASE=ou=T$seed,$B
	export DST_BASE
	lx_tree "$DST_BASE" || fail "seed $seed: target tree"
	lx_proxy --seed "$seed" --prob "$PROB" --before "$(echo "$PROB / 4" | bc -l)" ||
		{ fail "seed $seed: the proxy starts"; continue; }
	DST_URL=$PROXY_URL
	export DST_URL
	bad= guarded=0
	for state in A B; do
		SRC_BASE=ou=Src$state,$B
		export SRC_BASE
		if ! lx_cycle "s$seed$state"; then
			bad="$bad; cycle $state failed"
			continue
		fi
		lx_log_mark
		sync-export -q -c "$T/sync.yaml" "$T/s$seed$state.plan" \
			>"$T/x.out" 2>"$T/x.err"
		rc=$?
		if [ $rc -ne 0 ]; then
			bad="$bad; export $state exit $rc: $(cat "$T/x.err")"
			continue
		fi
		lx_log "$T/log$seed$state"
		counts "$T/s$seed$state.plan" >"$T/want"
		logged "$T/log$seed$state" >"$T/got"
		cmp -s "$T/want" "$T/got" ||
			bad="$bad; $state: plan $(tr '\n' ' ' <"$T/want") but logged $(tr '\n' ' ' <"$T/got")"
		# A write refused by its guard is fine (sent again after a
		# read, while slapd was still applying the one sent on the
		# lost connection), if that write did succeed once; any
		# other refusal is not.
		grep -v '^[a-z]* 0 ' "$T/log$seed$state" >"$T/refused"
		guarded=$((guarded + $(grep -c . "$T/refused")))
		while read -r type code dn; do
			case "$type $code" in
			"modify 16"|"modify 20"|"add 68"|"delete 32"|"modrdn 32"|"modrdn 68")
				grep -q -F -x "$type 0 $dn" "$T/log$seed$state" ||
					bad="$bad; $state: $type $code $dn refused, never applied" ;;
			*)	bad="$bad; $state: $type $dn refused with $code" ;;
			esac
		done <"$T/refused"
	done
	lx_proxy_stop
	drops=$(grep -c . "$PROXY_LOG")
	total_drops=$((total_drops + drops))
	# A new cycle, straight to slapd, finds nothing left to do.
	DST_URL=$SLAPD_LDAPI_URL
	export DST_URL
	if lx_cycle "s${seed}C"; then
		[ "$(sed 1d "$T/s${seed}C.plan" | wc -l)" -eq 0 ] ||
			bad="$bad; a new cycle still has $(sed 1d "$T/s${seed}C.plan" | wc -l) changes"
	else
		bad="$bad; the last cycle failed"
	fi
	if [ -z "$bad" ]; then
		pass "seed $seed: every change written once ($drops connections dropped, $guarded guarded writes refused)"
	else
		fail "seed $seed" "$bad"
		note_file "$PROXY_LOG" 20
	fi
done
note "$total_drops connections dropped in all"
[ "$total_drops" -ge 10 ] && pass "the proxy did drop connections ($total_drops)" ||
	fail "the proxy did drop connections" "only $total_drops"

# The target's entries are those of the source B (checked on the last
# seed's tree): 45 users, 4 groups, each anchor once.
slapd_search -b "$DST_BASE" '(employeeNumber=*)' employeeNumber >"$T/emp"
grep -c '^employeeNumber:' "$T/emp" >"$T/n"
echo 45 >"$T/want"
test_cmp "45 users in the last target" "$T/want" "$T/n"
grep '^employeeNumber:' "$T/emp" | sort | uniq -d >"$T/dups"
test_cmp "... each anchor once" /dev/null "$T/dups"
slapd_search -b "$DST_BASE" '(objectClass=groupOfNames)' cn member >"$T/grp"
grep -c '^member: uid=u0045' "$T/grp" >"$T/n"
echo 1 >"$T/want"
test_cmp "... the new group g5 holds the new users" "$T/want" "$T/n"

done_testing
