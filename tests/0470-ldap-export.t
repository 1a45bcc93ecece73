#!/bin/sh
# sync-export to OpenLDAP (slapd): adds (a group naming a new group and new
# users by anchor), binary values, updates with their old values as the
# precondition (a plan whose target changed since it was made is refused
# as a whole, nothing written), members added and removed, renames and
# moves, deletes guarded by the anchor (refused when it is not ours any
# more); changes found already in place on a re-run without journal;
# an add colliding with a foreign entry; the deletion threshold; kill -9
# in the middle of a run, then a re-run; a staging server; a lease taken
# by another server in the middle of a run.  slapd's accesslog counts the
# writes.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/ldap-export-setup.sh"

lx_setup 4 || { fail "slapd"; done_testing; }
B=$SLAPD_BASE S=$SRC_BASE D=$DST_BASE
lx_tree "$S" && lx_tree "$D" || fail "the source and target trees"
beta() { SYNC_SERVER=beta SYNC_STATE=$T/beta "$@"; }
# nplan PLAN: the number of changes in PLAN
nplan() { sed 1d "$1" | wc -l | tr -d ' '; }

# A photo with NULs and bytes >= 0x80.
printf '\377\330\377\340\000\020JFIF\000\001\002\000\000\001\000\001\000\000\200\201\377\331' >"$T/photo.jpg"
lx_users "$S" 1 6 >"$T/a.ldif"
cat >>"$T/a.ldif" <<EOF
dn: uid=u0001,ou=People,$S
changetype: modify
add: jpegPhoto
jpegPhoto:< file://$T/photo.jpg

dn: cn=g1,ou=Groups,$S
changetype: add
objectClass: groupOfNames
cn: g1
businessCategory: g1
member: uid=u0001,ou=People,$S
member: uid=u0002,ou=People,$S
member: uid=u0003,ou=People,$S

dn: cn=g2,ou=Groups,$S
changetype: add
objectClass: groupOfNames
cn: g2
businessCategory: g2
description: nested
member: uid=u0004,ou=People,$S
member: cn=g1,ou=Groups,$S
EOF
lx_ldif "$T/a.ldif" || fail "source A"

# ------------------------------------------------------------ adds
lx_cycle one || fail "cycle one"
test_expect_code 0 "-n prints the writes as LDIF" \
	sync-export -n -c "$T/sync.yaml" "$T/one.plan"
grep -c '^changetype: add$' "$T/out" >"$T/n"
echo 8 >"$T/want"
test_cmp "... an add for each of the 6 users and 2 groups" "$T/want" "$T/n"
test_grep "... a group's new member by the DN of its add" \
	"^member: cn=g1,ou=Groups,$D\$" "$T/out"
test_grep "... binary values in base64" '^jpegPhoto:: /9j/4AAQSkZJRgABAgAAAQABAACAgf/Z$' "$T/out"
lx_log_mark
test_expect_code 0 "export the adds" sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... all applied" '^sync-export: 8 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
lx_log "$T/log1"
grep -c '^add 0 ' "$T/log1" >"$T/n"
echo 8 >"$T/want"
test_cmp "... eight adds written, each once" "$T/want" "$T/n"
slapd_search -b "uid=u0001,ou=People,$D" -s base '(objectClass=*)' jpegPhoto >"$T/p.dst"
slapd_search -b "uid=u0001,ou=People,$S" -s base '(objectClass=*)' jpegPhoto >"$T/p.src"
sed 1d "$T/p.src" >"$T/p.want"
sed 1d "$T/p.dst" >"$T/p.got"
test_cmp "... the photo's bytes as at the source" "$T/p.want" "$T/p.got"
slapd_search -b "cn=g2,ou=Groups,$D" -s base '(objectClass=*)' member >"$T/g2"
test_grep "... the nested group, created first, is a member" "^member: cn=g1,ou=Groups,$D\$" "$T/g2"
grep -c '"outcome":"applied"' "$T"/state/journal/*.jsonl >"$T/n"
test_cmp "... eight journal records" "$T/want" "$T/n"
test_expect_code 0 "the same plan again" sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... does nothing: resumed from the journal" \
	'^sync-export: 0 applied, 0 already in place, 0 failed, 0 not applied .*\(resumed\)' "$T/err"
lx_cycle one2 || fail "cycle one2"
echo 0 >"$T/want"
nplan "$T/one2.plan" >"$T/n"
test_cmp "a new cycle finds nothing to do" "$T/want" "$T/n"

# ------------------------------------------------------------ updates
cat >"$T/b.ldif" <<EOF
dn: uid=u0001,ou=People,$S
changetype: modify
replace: description
description: b 1
-
add: mail
mail: first@example.org

dn: uid=u0005,ou=People,$S
changetype: modify
replace: description
description: b 5

dn: uid=u0002,ou=People,$S
changetype: modrdn
newrdn: uid=u0002x
deleteoldrdn: 1

dn: uid=u0003,ou=People,$S
changetype: modify
add: departmentNumber
departmentNumber: Staff

dn: uid=u0006,ou=People,$S
changetype: delete

dn: uid=u0007,ou=People,$S
changetype: add
objectClass: inetOrgPerson
cn: User 7
sn: u0007
uid: u0007
employeeNumber: u0007

dn: cn=g1,ou=Groups,$S
changetype: modify
delete: member
member: uid=u0001,ou=People,$S
-
add: member
member: uid=u0005,ou=People,$S
member: uid=u0007,ou=People,$S
EOF
lx_ldif "$T/b.ldif" || fail "source B"
lx_cycle two || fail "cycle two"
test_grep "the plan renames" '"op":"rename"' "$T/two.plan"
test_grep "... and moves" '"op":"move"' "$T/two.plan"
# Behind the plan's back: an admin changes u0005's description (stale),
# and makes u0001's change by hand (in place).
cat >"$T/admin.ldif" <<EOF
dn: uid=u0005,ou=People,$D
changetype: modify
replace: description
description: set by an admin

dn: uid=u0001,ou=People,$D
changetype: modify
replace: description
description: b 1
-
add: mail
mail: first@example.org
EOF
lx_ldif "$T/admin.ldif" || fail "the admin's changes"
journaled() { cat "$T"/state/journal/*.jsonl | grep -c '"outcome"'; }
journaled >"$T/j.before"
lx_log_mark
test_expect_code 2 "a plan whose target moved since is refused, as on Graph and SCIM" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... saying nothing was changed" \
	"^sync-export: dst: the target changed since the plan was made \\(1 change no longer fits\\); nothing was changed. Import the target and run sync-diff again.\$" "$T/err"
test_grep "... the stale change on an indented line of its own" \
	"^  line [0-9]*: update user 'u0005': description is \\[\"set by an admin\"\\], the plan expected \\[\"a 5\"\\]\$" "$T/err"
lx_log "$T/log2r"
test_cmp "... and writes nothing" /dev/null "$T/log2r"
journaled >"$T/j.after"
test_cmp "... nor journals anything" "$T/j.before" "$T/j.after"
slapd_search -b "uid=u0005,ou=People,$D" -s base '(objectClass=*)' description >"$T/d5"
test_grep "... the admin's value is kept" '^description: set by an admin$' "$T/d5"
# The admin puts the value back: the plan fits again.
cat >"$T/admin-undo.ldif" <<EOF
dn: uid=u0005,ou=People,$D
changetype: modify
replace: description
description: a 5
EOF
lx_ldif "$T/admin-undo.ldif" || fail "the admin's undo"
lx_log_mark
test_expect_code 0 "export updates, renames, a move, members, a delete" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... the change made by hand is in place" \
	'^sync-export: 6 applied, 1 already in place, 0 failed, 0 not applied' "$T/err"
lx_log "$T/log2"
grep -c '^modify 16 ' "$T/log2" >"$T/n"
echo 1 >"$T/want"
test_cmp "... one modify refused by its old values (in place), no other" "$T/want" "$T/n"
grep -v '^modify 16 ' "$T/log2" | grep -v -c '^[a-z]* 0 ' >"$T/n"
echo 0 >"$T/want"
test_cmp "... every other write succeeded" "$T/want" "$T/n"
slapd_search -b "$D" '(uid=*)' uid >"$T/uids"
test_grep "... renamed" "^dn: uid=u0002x,ou=People,$D\$" "$T/uids"
test_grep "... moved" "^dn: uid=u0003,ou=Staff,$D\$" "$T/uids"
test_no_grep "... deleted" "u0006" "$T/uids"
slapd_search -b "cn=g1,ou=Groups,$D" -s base '(objectClass=*)' member >"$T/g1"
grep '^member:' "$T/g1" | sort >"$T/g1.got"
sort >"$T/g1.want" <<EOF
member: uid=u0002x,ou=People,$D
member: uid=u0003,ou=Staff,$D
member: uid=u0005,ou=People,$D
member: uid=u0007,ou=People,$D
EOF
test_cmp "... members: one removed, two added (one new), renamed ones by their new DN" \
	"$T/g1.want" "$T/g1.got"

# Without its journal (lost, or another server), the same plan finds
# every change in place.
rm -rf "$T/state/journal"
lx_log_mark
test_expect_code 0 "the same plan without its journal" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... finds everything in place (add, modify, modrdn, delete, members)" \
	'^sync-export: 0 applied, 7 already in place, 0 failed, 0 not applied' "$T/err"
lx_log "$T/log2b"
grep -c ' 0 ' "$T/log2b" >"$T/n"
echo 0 >"$T/want"
test_cmp "... and writes nothing" "$T/want" "$T/n"

# ------------------------------------------------------------ collisions
# A delete whose entry no longer carries the plan's anchor: the plan is
# refused; then an entry of someone else where the plan adds one: that
# add fails, nothing else changes.
cat >"$T/c.ldif" <<EOF
dn: uid=u0008,ou=People,$S
changetype: add
objectClass: inetOrgPerson
cn: User 8
sn: u0008
uid: u0008
employeeNumber: u0008

dn: uid=u0004,ou=People,$S
changetype: delete
EOF
lx_ldif "$T/c.ldif" || fail "source C"
lx_cycle three || fail "cycle three"
cat >"$T/admin2.ldif" <<EOF
dn: uid=u0008,ou=People,$D
changetype: add
objectClass: inetOrgPerson
cn: Not ours
sn: other
uid: u0008
employeeNumber: someone-else

dn: uid=u0004,ou=People,$D
changetype: modify
replace: employeeNumber
employeeNumber: reused
EOF
lx_ldif "$T/admin2.ldif" || fail "the admin's entries"
lx_log_mark
test_expect_code 2 "export a delete of an entry that is not ours any more" \
	sync-export -c "$T/sync.yaml" "$T/three.plan"
test_grep "... refused: the anchor is not the plan's" \
	"^  line [0-9]*: delete user 'u0004': employeeNumber is \\[\"reused\"\\], not the plan's anchor\$" "$T/err"
lx_log "$T/log3"
test_cmp "... and writes nothing" /dev/null "$T/log3"
cat >"$T/undo.ldif" <<EOF
dn: uid=u0004,ou=People,$D
changetype: modify
replace: employeeNumber
employeeNumber: u0004
EOF
lx_ldif "$T/undo.ldif" || fail "undo the reuse"
test_expect_code 1 "export onto a foreign entry" \
	sync-export -c "$T/sync.yaml" "$T/three.plan"
test_grep "... the add fails: another entry is there" \
	"^sync-export: line [0-9]*: add user 'u0008' failed: add 'uid=u0008,ou=People,$D': entryAlreadyExists \\(68\\).*; the entry there is not this change's object: employeeNumber is \\[\"someone-else\"\\]\$" "$T/err"
test_grep "... the delete (and the member it leaves) applied" '^sync-export: 2 applied, 0 already in place, 1 failed' "$T/err"
slapd_search -b "$D" '(uid=u0008)' cn >"$T/both"
test_grep "... the foreign entry is still there" '^cn: Not ours$' "$T/both"
cat >"$T/undo.ldif" <<EOF
dn: uid=u0008,ou=People,$D
changetype: delete
EOF
lx_ldif "$T/undo.ldif" || fail "undo the admin's entry"

# ------------------------------------------------------------ threshold
printf 'dn: uid=u%04d,ou=People,%s\nchangetype: delete\n\n' 1 "$S" 3 "$S" 5 "$S" >"$T/del.ldif"
lx_ldif "$T/del.ldif" || fail "delete three source users"
DELETE_THRESHOLD=2 lx_cycle four || fail "cycle four"
test_grep "the plan is over the threshold" '"exceeded":true' "$T/four.plan"
lx_log_mark
test_expect_code 2 "a plan over the deletion threshold is refused" \
	sync-export -c "$T/sync.yaml" "$T/four.plan"
test_grep "... saying so" 'the plan deletes 3 objects, over the deletion threshold; nothing was changed' "$T/err"
lx_log "$T/log4"
test_cmp "... and writes nothing" /dev/null "$T/log4"
test_expect_code 0 "... allowed with -D 3" \
	sync-export -D 3 -c "$T/sync.yaml" "$T/four.plan"
slapd_search -b "$D" '(|(uid=u0001)(uid=u0003)(uid=u0004)(uid=u0005))' uid >"$T/gone"
test_cmp "... the three are deleted" /dev/null "$T/gone"

# ------------------------------------------------------------ kill -9
# A slow server (the proxy holds each answer 20 ms), a window of 2: the
# run is killed in the middle, then run again; every entry is added
# once.
SRC_BASE=ou=SrcK,$B DST_BASE=ou=K,$B
export SRC_BASE DST_BASE
lx_tree "$SRC_BASE" && lx_tree "$DST_BASE" || fail "trees K"
lx_users "$SRC_BASE" 1 400 >"$T/k.ldif"
lx_ldif "$T/k.ldif" || fail "400 source users"
lx_proxy --latency 20 || fail "the proxy starts"
DST_URL=$PROXY_URL WRITE_WINDOW=2
export DST_URL WRITE_WINDOW
lx_cycle k || fail "cycle k"
lx_log_mark
sync-export -c "$T/sync.yaml" "$T/k.plan" >"$T/k.out" 2>"$T/k.err" &
pid=$!
i=0
while [ $i -lt 300 ]; do
	n=$(cat "$T"/state/journal/*.jsonl 2>/dev/null | grep -c '"outcome"')
	[ "$n" -ge 60 ] && break
	sleep 0.1
	i=$((i + 1))
done
kill -9 $pid
wait $pid 2>/dev/null
echo $? >"$T/rc"
echo 137 >"$T/want"
test_cmp "kill -9 in the middle of a run" "$T/want" "$T/rc"
test_expect_code 0 "... then the same plan again" \
	sync-export -c "$T/sync.yaml" "$T/k.plan"
test_grep "... finishes it, resumed from the journal" '^sync-export: [0-9]* applied, [0-9]* already in place, 0 failed, .*\(resumed\)' "$T/err"
lx_log "$T/logk"
grep -c '^add 0 ' "$T/logk" >"$T/n"
echo 400 >"$T/want"
test_cmp "... 400 adds written, each once" "$T/want" "$T/n"
grep -v '^add 0 ' "$T/logk" | grep -v -c '^add 68 ' >"$T/n"
echo 0 >"$T/want"
test_cmp "... the only refusals: adds found in place (entryAlreadyExists)" "$T/want" "$T/n"

# ------------------------------------------------------------ the lease
lx_users "$SRC_BASE" 401 1200 >"$T/l.ldif"
lx_ldif "$T/l.ldif" || fail "800 more source users"
lx_cycle lease || fail "cycle lease"
sync-role -c "$T/sync.yaml" demote >/dev/null 2>&1 || fail "demote"
lx_log_mark
test_expect_code 1 "a staging server sends nothing" \
	sync-export -c "$T/sync.yaml" "$T/lease.plan"
test_grep "... saying why" "^sync-export: not the active server" "$T/err"
lx_log "$T/logs"
test_cmp "... and nothing was written" /dev/null "$T/logs"
sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1 || fail "promote again"
WRITE_WINDOW=1
export WRITE_WINDOW
sync-export -c "$T/sync.yaml" "$T/lease.plan" >"$T/lost.out" 2>"$T/lost.err" &
pid=$!
i=0
while [ $i -lt 300 ]; do
	n=$(cat "$T"/state/journal/*.jsonl 2>/dev/null | grep -c '"outcome"')
	[ "$n" -ge 450 ] && break
	sleep 0.1
	i=$((i + 1))
done
beta sync-role -c "$T/sync.yaml" promote -f >/dev/null 2>&1 ||
	fail "the other server takes the lease by force"
sleep 1
lx_log "$T/at"
wait $pid
echo $? >"$T/rc"
echo 2 >"$T/want"
test_cmp "an export whose lease is taken mid-run stops with an error" "$T/want" "$T/rc"
test_grep "... saying the lease was lost" "the lease was lost: this server is no longer the active one; stopped before the next batch" "$T/lost.err"
lx_log "$T/after"
echo $(($(grep -c . "$T/after") - $(grep -c . "$T/at") <= 1)) >"$T/late"
echo 1 >"$T/want"
test_cmp "... writing at most the window in flight after the takeover" "$T/want" "$T/late"
test_expect_code 0 "the new active server finishes the plan" \
	beta sync-export -c "$T/sync.yaml" "$T/lease.plan"
test_grep "... finding in place what the other wrote" \
	'^sync-export: [0-9]* applied, [1-9][0-9]* already in place, 0 failed' "$T/err"
DST_URL=$SLAPD_LDAPI_URL
export DST_URL
beta lx_cycle lease2 || fail "cycle lease2"
echo 0 >"$T/want"
nplan "$T/lease2.plan" >"$T/n"
test_cmp "... and a new cycle finds nothing to do" "$T/want" "$T/n"

done_testing
