#!/bin/sh
# sync-import -d against a real Samba AD DC: DirSync from the snapshot's
# cookie names the objects changed (adds, modifies, deletes, renames,
# moves in and out of scope, member changes), which are read again with
# their neighbours; the objects then equal a full import's, byte for
# byte.  Each fallback says why.
. "$(dirname "$0")/lib.sh"

SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH

samba_start --seeded
B=$SAMBA_BASE
conf() {
	cat <<EOF
state_dir: $T/state
connectors:
  ad:
    type: ad
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $B
    exclude: [ "OU=Excluded,$B", "CN=Users,$B", "CN=Builtin,$B" ]
    range_step: ${1:-0}
EOF
}
conf >"$T/sync.yaml"

# same A B: the two snapshots hold the same objects and header but for
# the cookie (DirSync's carries the time it was made).
same() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = (open(p, 'rb').read().split(b'\n', 1) for p in sys.argv[1:3])
ha, hb = json.loads(a[0]), json.loads(b[0])
for h in (ha, hb):
    if not (h.get('cookie') or '').startswith('dirsync '):
        sys.exit('no dirsync cookie: %r' % h.get('cookie'))
    del h['cookie']
if ha != hb:
    sys.exit('headers differ: %r %r' % (ha, hb))
if a[1] != b[1]:
    la, lb = a[1].split(b'\n'), b[1].split(b'\n')
    for x in sorted(set(la) ^ set(lb)):
        print(('-' if x in la else '+') + x.decode()[:300])
    sys.exit(1)
EOF
}

test_expect_code 0 "a full import takes the domain's DirSync cookie" \
	sync-import -q -c "$T/sync.yaml" -o "$T/a.snap" ad
python3 - "$T/a.snap" >"$T/ck" <<'EOF'
import json, sys
c = json.loads(open(sys.argv[1]).readline())['cookie']
for l in c.split('\n'):
    print(l.split(' ')[0])
EOF
printf 'dirsync\ncookie\ncheck\n' >"$T/ck.want"
test_cmp "... digest, cookie, check" "$T/ck.want" "$T/ck"

P=OU=People,$B
G=OU=Groups,$B
cat >"$T/ch1.ldif" <<EOF
dn: CN=Alice Smith,$P
changetype: modify
replace: description
description: changed by the delta test

dn: CN=New Bie,$P
changetype: add
objectClass: user
sAMAccountName: newbie
givenName: New
sn: Bie

dn: CN=Dave Disabled,$P
changetype: delete

dn: CN=Smith\, John,$P
changetype: modrdn
newrdn: CN=John Smith
deleteoldrdn: 1

dn: CN=Staff,$G
changetype: modify
add: member
member: CN=New Bie,$P
-
delete: member
member: CN=C\+\+ Developer,$P

dn: CN=Xavier Excluded,OU=Excluded,$B
changetype: modify
replace: description
description: out of scope, changed

dn: CN=Extern\, Eva,OU=Contacts,$B
changetype: modrdn
newrdn: CN=Extern\, Eva
deleteoldrdn: 1
newsuperior: OU=Excluded,$B

dn: CN=Eve Excluded,OU=Excluded,$B
changetype: modrdn
newrdn: CN=Eve Excluded
deleteoldrdn: 1
newsuperior: $P

dn: CN=R&D\, Europe,$G
changetype: modrdn
newrdn: CN=R&D Europe
deleteoldrdn: 1
EOF
samba_modify "$T/ch1.ldif" || fail "changes with ldapmodify"

test_expect_code 0 "a delta import" \
	sync-import -c "$T/sync.yaml" -d "$T/a.snap" -o "$T/d1.snap" ad
test_no_grep "... and no fallback" 'a full import' "$T/err"
test_grep "... says what changed" \
	'^sync-import: ad: 10 users, 5 groups, 5001 contacts \(delta: 12 changed\)$' "$T/err"
# Alice, New Bie (added), Dave (deleted), John Smith (renamed), Staff,
# Eva (moved out), Eve (moved in), R&D Europe (renamed); read again with
# them and changed: C++ Developer and Mixed Scope (memberOf, member),
# Emilie (memberOf), All People (the members Dave and R&D).
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/f1.snap" ad
ok "... gives the same objects, byte for byte" same "$T/f1.snap" "$T/d1.snap"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 30

# More, with ranged retrieval: members of the big group, a group's
# member removed, an object moved out.
conf 2000 >"$T/sync3.yaml"
test_expect_code 0 "a full import with range_step" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/b.snap" ad
cat >"$T/ch2.ldif" <<EOF
dn: CN=John Smith,$P
changetype: modify
replace: title
title: Renamed and retitled

dn: CN=All People,$G
changetype: modify
delete: member
member: CN=Carl Contact,OU=Contacts,$B

dn: CN=New Bie,$P
changetype: modrdn
newrdn: CN=New Bie
deleteoldrdn: 1
newsuperior: OU=Excluded,$B
EOF
samba_modify "$T/ch2.ldif" || fail "more changes"
test_expect_code 0 "a delta import with range_step" \
	sync-import -c "$T/sync3.yaml" -d "$T/b.snap" -o "$T/d2.snap" ad
test_no_grep "... and no fallback" 'a full import' "$T/err"
# John Smith, All People, New Bie (moved out), Carl (memberOf) and
# Staff (its member New Bie, under its new DN)
test_grep "... says what changed" '\(delta: 5 changed\)$' "$T/err"
test_expect_code 0 "a full import with range_step" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/f2.snap" ad
ok "... gives the same objects" same "$T/f2.snap" "$T/d2.snap"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 30

test_expect_code 0 "no changes: a delta import" \
	sync-import -c "$T/sync3.yaml" -d "$T/d2.snap" -o "$T/d3.snap" ad
test_grep "... with nothing changed" '\(delta: 0 changed\)$' "$T/err"
ok "... the same objects" same "$T/d2.snap" "$T/d3.snap"

# An account without the right to replicate directory changes: Samba
# refuses it DirSync (with LDAP_DIRSYNC_OBJECT_SECURITY it would allow
# it, but without the deleted objects).
printf 'Seed-Passw0rd!' >"$T/alicepw"
chmod 600 "$T/alicepw"
sed -e "s|bind_dn: .*|bind_dn: CN=Alice Smith,$P|" \
	-e "s|password_file: .*|password_file: $T/alicepw|" "$T/sync3.yaml" >"$T/alice.yaml"
test_expect_code 0 "a full import as a plain user" \
	sync-import -q -c "$T/alice.yaml" -o "$T/u.snap" ad
test_grep "... has no cookie" '"cookie":null' "$T/u.snap"
test_expect_code 0 "... a delta import from its snapshot falls back" \
	sync-import -c "$T/alice.yaml" -d "$T/u.snap" -o "$T/x.snap" ad
test_grep "... saying why" "^sync-import: ad: a full import: $T/u.snap has no delta cookie$" "$T/err"
test_expect_code 0 "... and from an administrator's" \
	sync-import -c "$T/alice.yaml" -d "$T/d2.snap" -o "$T/x.snap" ad
test_grep "... saying why" "^sync-import: ad: a full import: the server refused the dirsync search \(the account needs the right to replicate directory changes\) \(ad: dirsync of '$B' failed: Insufficient access \(50\): error in module dirsync: insufficient access rights during LDB_SEARCH \(50\)\)$" "$T/err"

cat >"$T/ch4.ldif" <<EOF
dn: CN=C\+\+ Developer,$P
changetype: delete

dn: CN=Alice Smith,$P
changetype: modify
replace: title
title: Plain user
EOF
samba_modify "$T/ch4.ldif" || fail "a delete and a modify"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/f2.snap" ad
test_expect_code 0 "... and a delta import from before the changes" \
	sync-import -c "$T/sync3.yaml" -d "$T/d2.snap" -o "$T/d4.snap" ad
# C++ Developer (deleted), Alice and R&D Europe (its member)
test_grep "... says what changed" '\(delta: 3 changed\)$' "$T/err"
ok "... give the same objects" same "$T/f2.snap" "$T/d4.snap"

# Fallbacks: each a full import (exit 0) that says why.
edit_cookie() {     # edit_cookie IN OUT PYTHON-EXPR-ON-c
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().split('\n')
h = json.loads(lines[0])
c = h['cookie']
h['cookie'] = eval(sys.argv[3])
lines[0] = json.dumps(h, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
open(sys.argv[2], 'w').write('\n'.join(lines))
EOF
}
edit_cookie "$T/d2.snap" "$T/nock.snap" 'None'
test_expect_code 0 "fallback: no cookie" \
	sync-import -c "$T/sync3.yaml" -d "$T/nock.snap" -o "$T/x.snap" ad
test_grep "... says so" "^sync-import: ad: a full import: $T/nock.snap has no delta cookie$" "$T/err"
ok "... and gives the full snapshot" same "$T/f2.snap" "$T/x.snap"

edit_cookie "$T/d2.snap" "$T/bad.snap" 'c.replace("\ncookie ", "\ncookie A", 1)'
test_expect_code 0 "fallback: a damaged cookie" \
	sync-import -c "$T/sync3.yaml" -d "$T/bad.snap" -o "$T/x.snap" ad
test_grep "... says so" "^sync-import: ad: a full import: the cookie of $T/bad.snap is damaged$" "$T/err"

test_expect_code 0 "fallback: the config changed" \
	sync-import -c "$T/sync.yaml" -d "$T/d2.snap" -o "$T/x.snap" ad
test_grep "... says so" "^sync-import: ad: a full import: the server or the objects read have changed since $T/d2.snap was written$" "$T/err"

# A renamed OU: the DNs below it change unreported.
cat >"$T/ch3.ldif" <<EOF
dn: OU=Contacts,$B
changetype: modrdn
newrdn: OU=Kontakte
deleteoldrdn: 1
EOF
samba_modify "$T/ch3.ldif" || fail "rename an OU"
test_expect_code 0 "fallback: a container renamed" \
	sync-import -c "$T/sync3.yaml" -d "$T/d2.snap" -o "$T/x.snap" ad
test_grep "... says so" "^sync-import: ad: a full import: 'OU=Kontakte,$B' was renamed or moved: the DNs of the entries below it changed, which dirsync does not report$" "$T/err"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/f3.snap" ad
ok "... and gives the full snapshot" same "$T/f3.snap" "$T/x.snap"

# The delta writes the lines of the objects that did not change as
# they are (res->kept): the first and the last line changed, the one
# before the last deleted; to a file and to standard output.  And a
# binary value holding an '=' (raw bytes are no DN).
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/g1.snap" ad
python3 - "$T/g1.snap" "$T/ends.ldif" <<'EOF2'
import json, sys
lines = open(sys.argv[1], encoding='utf-8').read().split('\n')[1:-1]
first, before, last = (json.loads(lines[i])['dn'] for i in (0, -2, -1))
with open(sys.argv[2], 'w', encoding='utf-8') as f:
    for dn in (first, last):
        f.write('dn: %s\nchangetype: modify\nreplace: description\n'
                'description: an end of the file\n\n' % dn)
    f.write('dn: %s\nchangetype: delete\n\n' % before)
EOF2
# and a binary value with an '=' that is not UTF-8, which names nothing
cat >>"$T/ends.ldif" <<EOF2
dn: CN=Émilie Straße-Ωmega,$P
changetype: modify
replace: jpegPhoto
jpegPhoto:: Q049//49eAB5

EOF2
samba_modify "$T/ends.ldif" || fail "change the first and last lines"
test_expect_code 0 "a delta import: the first and the last line changed" \
	sync-import -c "$T/sync3.yaml" -d "$T/g1.snap" -o "$T/g2.snap" ad
test_no_grep "... and no fallback" 'a full import' "$T/err"
test_expect_code 0 "... to standard output" \
	sh -c 'sync-import -q -c "$1/sync3.yaml" -d "$1/g1.snap" ad >"$1/g2o.snap"' sh "$T"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync3.yaml" -o "$T/g3.snap" ad
ok "... gives the same objects as the delta" same "$T/g3.snap" "$T/g2.snap"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 30
ok "... and as the delta to standard output" same "$T/g3.snap" "$T/g2o.snap"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 30

# A renamed user whose groups are found only by their member values:
# the users' memberOf is not read, so the link's other end does not name
# them; the lines of prev naming the old DN do.
cat >"$T/nomo.yaml" <<EOF2
state_dir: $T/state
connectors:
  ad:
    type: ad
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: $SAMBA_BINDDN
    password_file: $SAMBA_PWFILE
    base_dn: $B
    exclude: [ "OU=Excluded,$B", "CN=Users,$B", "CN=Builtin,$B" ]
    objects:
      user:
        attributes: [ cn, sAMAccountName, mail ]
      group:
      contact:
EOF2
test_expect_code 0 "a full import without memberOf" \
	sync-import -q -c "$T/nomo.yaml" -o "$T/n1.snap" ad
test_grep "... with Alice in Staff" '"member":\["CN=Alice Smith,' "$T/n1.snap"
cat >"$T/ch5.ldif" <<EOF2
dn: CN=Alice Smith,$P
changetype: modrdn
newrdn: CN=Alice Smyth
deleteoldrdn: 1
EOF2
samba_modify "$T/ch5.ldif" || fail "rename Alice"
test_expect_code 0 "a delta import after a member's rename" \
	sync-import -c "$T/nomo.yaml" -d "$T/n1.snap" -o "$T/n2.snap" ad
test_no_grep "... and no fallback" 'a full import' "$T/err"
# Alice, and the groups that hold her: Staff and Mixed Scope
test_grep "... says what changed" '\(delta: 3 changed\)$' "$T/err"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/nomo.yaml" -o "$T/n3.snap" ad
test_grep "... with Alice under her new name" '"member":\["CN=Alice Smyth,' "$T/n3.snap"
ok "... the same objects as the delta" same "$T/n3.snap" "$T/n2.snap"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 30

done_testing
