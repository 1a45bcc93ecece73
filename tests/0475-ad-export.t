#!/bin/sh
# sync-export to Samba AD over LDAPS: from one OU of the domain (the
# source) to another (the target): users and a group added (objectClass
# user and group by default, sAMAccountName from the flow), an update, a
# plan whose target changed since refused as a whole, members added and
# removed, a rename and a move, a delete (read, then deleted: AD has no
# assertion control), and a new cycle with nothing to do.  Through
# tests/ldap-proxy.py: a rename whose entry stops being ours between the
# plan's check and the modrdn (read first, like a delete, and refused),
# and a group read back in windows of 2 members (range_step), as Windows
# AD cuts lists past 1,500 values.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/ldap-export-setup.sh"

samba_start
LDAPTLS_CACERT=$SAMBA_CA
export LDAPTLS_CACERT
B=$SAMBA_BASE S=OU=Src,$SAMBA_BASE D=OU=Dst,$SAMBA_BASE
DST_URL=$SAMBA_LDAPS_URL
export DST_URL

cat >"$T/ous.ldif" <<EOF
dn: $S
objectClass: organizationalUnit

dn: OU=People,$S
objectClass: organizationalUnit

dn: OU=Groups,$S
objectClass: organizationalUnit

dn: $D
objectClass: organizationalUnit

dn: OU=People,$D
objectClass: organizationalUnit

dn: OU=Staff,$D
objectClass: organizationalUnit

dn: OU=Groups,$D
objectClass: organizationalUnit
EOF
samba_add "$T/ous.ldif" >/dev/null || fail "the OUs"

cat >"$T/sync.yaml" <<EOF
state_dir: $T/state
connectors:
  src:
    type: ad
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $S
  dst:
    type: ad
    url: \${DST_URL}
    allow_cleartext_bind: true
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $D
    write_window: 4
    range_step: 2
    objects:
      user: {}
      group: {}
flows:
  - name: people
    from: src.user
    to: dst.user
    out_of_scope: delete
    anchor:
      target: adminDescription
    dn: '"CN=" & [sAMAccountName] & ",OU=" & IIF(IsPresent([department]), [department], "People") & ",$D"'
    attributes:
      sAMAccountName: '"d-" & [sAMAccountName]'
      description: '[description]'
      displayName: '[displayName]'
  - name: teams
    from: src.group
    to: dst.group
    out_of_scope: delete
    anchor:
      target: adminDescription
    dn: '"CN=" & [cn] & ",OU=Groups,$D"'
    attributes:
      sAMAccountName: '"d-" & [cn]'
      description: '[description]'
      member: { value: '[member]', reference: true }
role:
  server: alpha
  lease:
    file: lease
EOF
sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1 || fail "promote"

cycle() {
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.src" src &&
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.dst" dst || return 2
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/$1.src" "$T/$1.dst" 2>/dev/null
	[ $? -le 1 ]
}
nplan() { sed 1d "$1" | wc -l | tr -d ' '; }

i=1
while [ $i -le 4 ]; do
	cat <<EOF
dn: CN=s$i,OU=People,$S
objectClass: user
sAMAccountName: s$i
description: user $i
displayName: User $i

EOF
	i=$((i + 1))
done >"$T/a.ldif"
cat >>"$T/a.ldif" <<EOF
dn: CN=team,OU=Groups,$S
objectClass: group
sAMAccountName: team
description: the team
member: CN=s1,OU=People,$S
member: CN=s2,OU=People,$S
member: CN=s3,OU=People,$S
EOF
samba_add "$T/a.ldif" >/dev/null || fail "the source"

cycle one || fail "cycle one"
test_expect_code 0 "export users and a group to AD" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... all applied" '^sync-export: 5 applied, 0 already in place, 0 failed' "$T/err"
samba_search -b "$D" '(objectClass=user)' sAMAccountName adminDescription >"$T/users"
grep -c '^sAMAccountName: d-s[1-4]$' "$T/users" >"$T/n"
echo 4 >"$T/want"
test_cmp "... four users (objectClass user by default), their sAMAccountName from the flow" "$T/want" "$T/n"
samba_search -b "CN=team,OU=Groups,$D" -s base '(objectClass=group)' member sAMAccountName >"$T/team"
grep -c "^member: CN=s[123],OU=People,$D\$" "$T/team" >"$T/n"
echo 3 >"$T/want"
test_cmp "... the group, with the new users as members" "$T/want" "$T/n"
cycle one2 || fail "cycle one2"
echo 0 >"$T/want"
nplan "$T/one2.plan" >"$T/n"
test_cmp "... a new cycle finds nothing to do" "$T/want" "$T/n"

# An update, a stale update, members, a rename, a move, a delete.
cat >"$T/b.ldif" <<EOF
dn: CN=s1,OU=People,$S
changetype: modify
replace: description
description: changed 1

dn: CN=s4,OU=People,$S
changetype: modify
replace: description
description: changed 4

dn: CN=s2,OU=People,$S
changetype: modify
replace: sAMAccountName
sAMAccountName: s2x

dn: CN=s3,OU=People,$S
changetype: modify
add: department
department: Staff

dn: CN=team,OU=Groups,$S
changetype: modify
delete: member
member: CN=s1,OU=People,$S
-
add: member
member: CN=s4,OU=People,$S
EOF
samba_modify "$T/b.ldif" >/dev/null || fail "source B"
cat >"$T/del.ldif" <<EOF
dn: CN=s1,OU=People,$S
changetype: delete
EOF
samba_modify "$T/del.ldif" >/dev/null || fail "delete s1 at the source"
cycle two || fail "cycle two"
test_grep "the plan renames s2" '"new_dn":"CN=s2x,OU=People,OU=Dst' "$T/two.plan"
test_grep "... moves s3" '"new_dn":"CN=s3,OU=Staff,OU=Dst' "$T/two.plan"
test_grep "... deletes s1" '"op":"delete"' "$T/two.plan"
cat >"$T/admin.ldif" <<EOF
dn: CN=s4,OU=People,$D
changetype: modify
replace: description
description: an admin's
EOF
samba_modify "$T/admin.ldif" >/dev/null || fail "the admin's change"
samba_search -b "$D" '(objectClass=user)' description >"$T/before"
test_expect_code 2 "a plan whose target changed since is refused" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... saying nothing was changed" \
	"^sync-export: dst: the target changed since the plan was made \\(1 change no longer fits\\); nothing was changed" "$T/err"
test_grep "... the stale change on an indented line of its own" \
	"^  line [0-9]*: update user '[^']*': description is \\[\"an admin's\"\\], the plan expected \\[\"user 4\"\\]\$" "$T/err"
samba_search -b "$D" '(objectClass=user)' description >"$T/after"
test_cmp "... nothing was written" "$T/before" "$T/after"
test_grep "... the admin's value kept" "^description: an admin's\$" "$T/after"
cat >"$T/admin.ldif" <<EOF
dn: CN=s4,OU=People,$D
changetype: modify
replace: description
description: user 4
EOF
samba_modify "$T/admin.ldif" >/dev/null || fail "the admin's undo"
test_expect_code 0 "once the admin undid it, export the changes" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... all applied" '^sync-export: 5 applied, 0 already in place, 0 failed' "$T/err"
samba_search -b "$D" '(objectClass=user)' description >"$T/after"
test_grep "... renamed" "^dn: CN=s2x,OU=People,$D\$" "$T/after"
test_grep "... moved" "^dn: CN=s3,OU=Staff,$D\$" "$T/after"
test_no_grep "... deleted" "^dn: CN=s1," "$T/after"
test_grep "... the update applied" "^description: changed 4\$" "$T/after"
samba_search -b "CN=team,OU=Groups,$D" -s base '(objectClass=group)' member >"$T/team"
grep '^member:' "$T/team" | sort >"$T/got"
sort >"$T/want" <<EOF
member: CN=s2x,OU=People,$D
member: CN=s3,OU=Staff,$D
member: CN=s4,OU=People,$D
EOF
test_cmp "... members: s4 added, s1 gone, the renamed and the moved by their new DNs" "$T/want" "$T/got"
rm -rf "$T/state/journal"
test_expect_code 0 "the same plan without its journal" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... finds it all in place" '^sync-export: 0 applied, 5 already in place, 0 failed' "$T/err"

# A rename whose entry stops being ours after the plan's check (phase 0)
# and before the modrdn: the proxy runs steal.sh once phase 0 has read
# the entry.  AD has no assertion control: the entry is read again just
# before the modrdn, and the rename fails as stale, naming the entry.
cat >"$T/r.ldif" <<EOF
dn: CN=s4,OU=People,$S
changetype: modify
replace: sAMAccountName
sAMAccountName: s4r
EOF
samba_modify "$T/r.ldif" >/dev/null || fail "rename s4 at the source"
cycle three || fail "cycle three"
test_grep "the plan renames s4" '"new_dn":"CN=s4r,OU=People,OU=Dst' "$T/three.plan"
samba_search -b "CN=s4,OU=People,$D" -s base '(objectClass=*)' adminDescription |
	grep '^adminDescription:' >"$T/anchor4" || fail "s4's anchor"
cat >"$T/steal.ldif" <<EOF
dn: CN=s4,OU=People,$D
changetype: modify
replace: adminDescription
adminDescription: someone-else
EOF
cat >"$T/steal.sh" <<EOF
LDAPTLS_CACERT=$SAMBA_CA ldapmodify -x -H $SAMBA_LDAPS_URL -D '$SAMBA_BINDDN' \\
	-y $SAMBA_PWFILE -f $T/steal.ldif >$T/steal.out 2>&1
EOF
PROXY_UPSTREAM=$SAMBA_IP:636 lx_proxy --upstream-ca "$SAMBA_CA" \
	--after-read "CN=s4,OU=People,$D" --exec "sh $T/steal.sh" ||
	fail "the proxy starts"
DST_URL=$PROXY_URL
test_expect_code 1 "a rename whose entry is not ours any more at the modrdn" \
	sync-export -c "$T/sync.yaml" "$T/three.plan"
test_grep "... the entry changed hands after the plan's check" '"exec": "CN=s4,OU=People,OU=Dst,DC=samdom,DC=test", "status": 0' "$PROXY_LOG"
test_grep "... fails as stale, naming the entry" \
	"^sync-export: line [0-9]*: rename user '[^']*' failed: modrdn 'CN=s4,OU=People,$D': the target changed since the plan was made: adminDescription is \\[\"someone-else\"\\], not the plan's anchor\$" "$T/err"
grep -h '"outcome":"failed"' "$T"/state/journal/*.jsonl | tail -1 >"$T/rec"
test_grep "... the journal says stale" '"stale":true' "$T/rec"
samba_search -b "$D" '(adminDescription=someone-else)' cn >"$T/stolen"
test_grep "... the other's entry is not renamed" "^dn: CN=s4,OU=People,$D\$" "$T/stolen"
lx_proxy_stop
DST_URL=$SAMBA_LDAPS_URL
{ printf 'dn: CN=s4,OU=People,%s\nchangetype: modify\nreplace: adminDescription\n' "$D"
  cat "$T/anchor4"; } >"$T/unsteal.ldif"
samba_modify "$T/unsteal.ldif" >/dev/null || fail "s4's anchor back"
rm -rf "$T/state/journal"
test_expect_code 0 "ours again: the rename is applied" \
	sync-export -c "$T/sync.yaml" "$T/three.plan"
samba_search -b "$D" '(cn=s4r)' cn >"$T/s4r"
test_grep "... renamed" "^dn: CN=s4r,OU=People,$D\$" "$T/s4r"

# Ranged read-back: range_step 2 asks for members two at a time (Samba
# cuts the list only when asked; Windows AD past 1,500 values).  A member
# the plan adds is already there: the modify is refused, and the group
# read back, window after window, shows it in place.
i=5
while [ $i -le 9 ]; do
	printf 'dn: CN=s%d,OU=People,%s\nobjectClass: user\nsAMAccountName: s%d\n\n' $i "$S" $i
	i=$((i + 1))
done >"$T/c.ldif"
cat >>"$T/c.ldif" <<EOF
dn: CN=crew,OU=Groups,$S
objectClass: group
sAMAccountName: crew
member: CN=s5,OU=People,$S
member: CN=s6,OU=People,$S
member: CN=s7,OU=People,$S
member: CN=s8,OU=People,$S
EOF
samba_add "$T/c.ldif" >/dev/null || fail "the crew"
cycle four || fail "cycle four"
test_expect_code 0 "export five users and a group of four" \
	sync-export -c "$T/sync.yaml" "$T/four.plan"
cat >"$T/c2.ldif" <<EOF
dn: CN=crew,OU=Groups,$S
changetype: modify
add: member
member: CN=s9,OU=People,$S
EOF
samba_modify "$T/c2.ldif" >/dev/null || fail "s9 joins the crew"
cycle five || fail "cycle five"
test_grep "the plan adds s9 to the crew" '"member":{"add":\["CN=s9,OU=People,OU=Dst' "$T/five.plan"
cat >"$T/c3.ldif" <<EOF
dn: CN=crew,OU=Groups,$D
changetype: modify
add: member
member: CN=s9,OU=People,$D
EOF
samba_modify "$T/c3.ldif" >/dev/null || fail "an admin adds s9 by hand"
PROXY_UPSTREAM=$SAMBA_IP:636 lx_proxy --upstream-ca "$SAMBA_CA" --log-reads ||
	fail "the proxy starts"
DST_URL=$PROXY_URL
test_expect_code 0 "export a member already there" \
	sync-export -c "$T/sync.yaml" "$T/five.plan"
test_grep "... found in place once the five members are read" '^sync-export: 0 applied, 1 already in place, 0 failed' "$T/err"
grep -c '"read": "CN=crew,OU=Groups,OU=Dst,DC=samdom,DC=test"' "$PROXY_LOG" >"$T/n"
echo 4 >"$T/want"
test_cmp "... in three windows (and phase 0's read of the anchor)" "$T/want" "$T/n"
test_grep "... the first window with the read" '"attrs": \["member;range=0-1", "adminDescription"\]' "$PROXY_LOG"
test_grep "... then members 2 and 3" '"attrs": \["member;range=2-3"\]' "$PROXY_LOG"
test_grep "... then from 4 on" '"attrs": \["member;range=4-5"\]' "$PROXY_LOG"
lx_proxy_stop
DST_URL=$SAMBA_LDAPS_URL
cycle six || fail "cycle six"
echo 0 >"$T/want"
nplan "$T/six.plan" >"$T/n"
test_cmp "... and a new cycle finds nothing to do" "$T/want" "$T/n"

done_testing
