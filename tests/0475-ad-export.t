#!/bin/sh
# sync-export to Samba AD over LDAPS: from one OU of the domain (the
# source) to another (the target): users and a group added (objectClass
# user and group by default, sAMAccountName from the flow), an update, a
# stale update refused, members added and removed, a rename and a move,
# a delete (read, then deleted: AD has no assertion control), and a new
# cycle with nothing to do.
. "$(dirname "$0")/lib.sh"

samba_start
LDAPTLS_CACERT=$SAMBA_CA
export LDAPTLS_CACERT
B=$SAMBA_BASE S=OU=Src,$SAMBA_BASE D=OU=Dst,$SAMBA_BASE

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
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $D
    write_window: 4
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
test_expect_code 1 "export the changes" sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... the stale update fails, with AD's error" \
	"^sync-export: line [0-9]*: update user '[^']*' failed: modify 'CN=s4,OU=People,$D': noSuchAttribute \\(16\\).*; the target changed since the plan was made: description is \\[\"an admin's\"\\], the plan expected \\[\"user 4\"\\]\$" "$T/err"
test_grep "... the rest is applied" '^sync-export: 4 applied, 0 already in place, 1 failed' "$T/err"
samba_search -b "$D" '(objectClass=user)' description >"$T/after"
test_grep "... renamed" "^dn: CN=s2x,OU=People,$D\$" "$T/after"
test_grep "... moved" "^dn: CN=s3,OU=Staff,$D\$" "$T/after"
test_no_grep "... deleted" "^dn: CN=s1," "$T/after"
test_grep "... the admin's value kept" "^description: an admin's\$" "$T/after"
samba_search -b "CN=team,OU=Groups,$D" -s base '(objectClass=group)' member >"$T/team"
grep '^member:' "$T/team" | sort >"$T/got"
sort >"$T/want" <<EOF
member: CN=s2x,OU=People,$D
member: CN=s3,OU=Staff,$D
member: CN=s4,OU=People,$D
EOF
test_cmp "... members: s4 added, s1 gone, the renamed and the moved by their new DNs" "$T/want" "$T/got"
rm -rf "$T/state/journal"
test_expect_code 1 "the same plan without its journal" \
	sync-export -c "$T/sync.yaml" "$T/two.plan"
test_grep "... finds the rest in place" '^sync-export: 0 applied, 4 already in place, 1 failed' "$T/err"

done_testing
