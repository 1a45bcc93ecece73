#!/bin/sh
# sync-import -d against a real slapd with syncprov: RFC 4533 refreshOnly
# from the snapshot's cookie, after adds, modifies, deletes, renames,
# moves and member changes, gives the bytes a full import gives, reading
# only the entries that changed; a present phase (no session log) and a
# session log (deletes by entryUUID) both; and each fallback with its
# reason.  A value that looks like the end of a line is skipped whole.
. "$(dirname "$0")/lib.sh"

SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH

slapd_start
slapd_seed || fail "seed slapd"
slapd_overlay syncprov || fail "add syncprov"
OVL="olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config"

conf() {
	cat <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: $SLAPD_URL
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    allow_cleartext_bind: true
    base_dn: $SLAPD_BASE
    exclude: ou=Excluded,$SLAPD_BASE
    page_size: 5
    objects:
      user:
        filter: ${1:-(objectClass=inetOrgPerson)}
        exclude: ou=Contacts,$SLAPD_BASE
      group: {}
      contact:
        filter: (objectClass=inetOrgPerson)
        base_dn: ou=Contacts,$SLAPD_BASE
EOF
}
conf >"$T/sync.yaml"

# nentries N: the entries slapd sent for the searches after log line N.
nentries() {
	tail -n +"$(($1 + 1))" "$SLAPD_DIR/log" |
		sed -n 's/.*SEARCH RESULT.* nentries=\([0-9]*\).*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }'
}

# A value that ends in a backslash and holds what the keys after "attrs"
# look like: the delta skips the values of the previous snapshot's lines
# to their end, and must not stop inside this one.
cat >"$T/odd.ldif" <<'EOF'
dn: cn=Smith\, John,ou=People,dc=example,dc=org
changetype: modify
replace: description
description: brace "}],"dn":"cn=x","id":"y","type":"group"} end\
EOF
slapd_modify "$T/odd.ldif" || fail "odd value"

test_expect_code 0 "a full import takes the server's cookies" \
	sync-import -q -c "$T/sync.yaml" -o "$T/a.snap" dir
python3 - "$T/a.snap" >"$T/ck" <<'EOF'
import json, sys
c = json.loads(open(sys.argv[1]).readline())['cookie']
for l in c.split('\n'):
    print(l.split(' ')[0])
EOF
printf 'rfc4533\nuser\ngroup\ncontact\ncheck\n' >"$T/ck.want"
test_cmp "... digest, one cookie per search, check" "$T/ck.want" "$T/ck"

# Changes of every kind, without a session log: a present phase.
P=ou=People,$SLAPD_BASE
G=ou=Groups,$SLAPD_BASE
cat >"$T/ch1.ldif" <<EOF
dn: uid=alice,$P
changetype: modify
replace: description
description: changed by the delta test

dn: uid=newbie,$P
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: New Bie
sn: Bie

dn: cn=Dave Disabled,$P
changetype: delete

dn: uid=pat,$P
changetype: modrdn
newrdn: uid=patricia
deleteoldrdn: 0

dn: cn=Staff,$G
changetype: modify
add: member
member: uid=newbie,$P
-
delete: member
member: cn=C\+\+ Developer,$P

dn: cn=Xavier Excluded,ou=Excluded,$SLAPD_BASE
changetype: modify
replace: description
description: out of scope, changed

dn: cn=Extern\, Eva,ou=Contacts,$SLAPD_BASE
changetype: modrdn
newrdn: cn=Extern\, Eva
deleteoldrdn: 1
newsuperior: ou=People,$SLAPD_BASE

dn: cn=Carl Contact,ou=Contacts,$SLAPD_BASE
changetype: modrdn
newrdn: cn=Carl Contact
deleteoldrdn: 1
newsuperior: ou=Excluded,$SLAPD_BASE
EOF
slapd_modify "$T/ch1.ldif" || fail "changes with ldapmodify"

n0=$(wc -l <"$SLAPD_DIR/log")
test_expect_code 0 "a delta import (present phase)" \
	sync-import -c "$T/sync.yaml" -d "$T/a.snap" -o "$T/d1.snap" dir
test_grep "... says what changed" \
	'^sync-import: dir: 12 users, 4 groups, 0 contacts \(delta: 8 changed\)$' "$T/err"
sleep 0.2
echo "$(nentries "$n0")" >"$T/n1"
# alice, newbie, patricia, Eva (moved in), Staff, and Xavier and Carl
# changed in the excluded subtree (left out by the client)
echo 7 >"$T/n1.want"
test_cmp "... reading only the 7 entries changed" "$T/n1.want" "$T/n1"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/f1.snap" dir
test_cmp "... gives the same bytes, cookie and all" "$T/f1.snap" "$T/d1.snap"

# With a session log, deletes come as entryUUIDs.
cat >"$T/slog.ldif" <<EOF
dn: $OVL
changetype: modify
replace: olcSpSessionlog
olcSpSessionlog: 100
EOF
slapd_modify "$T/slog.ldif" || fail "set the session log"
cat >"$T/ch2.ldif" <<EOF
dn: uid=newbie,$P
changetype: delete

dn: uid=patricia,$P
changetype: modify
replace: cn
cn: Patricia Posix

dn: uid=alice,$P
changetype: modrdn
newrdn: uid=alice2
deleteoldrdn: 1

dn: cn=R&D\, Europe,$G
changetype: modify
add: member
member: uid=alice2,$P

dn: uid=late,$P
changetype: add
objectClass: inetOrgPerson
uid: late
cn: Late Comer
sn: Comer
EOF
slapd_modify "$T/ch2.ldif" || fail "more changes"
n0=$(wc -l <"$SLAPD_DIR/log")
test_expect_code 0 "a delta import from a delta's snapshot (session log)" \
	sync-import -c "$T/sync.yaml" -d "$T/d1.snap" -o "$T/d2.snap" dir
test_grep "... says what changed" \
	'^sync-import: dir: 12 users, 4 groups, 0 contacts \(delta: 5 changed\)$' "$T/err"
test_no_grep "... and no fallback" 'a full import' "$T/err"
sleep 0.2
echo "$(nentries "$n0")" >"$T/n2"
echo 4 >"$T/n2.want"
test_cmp "... reading only the 4 entries changed" "$T/n2.want" "$T/n2"
test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/f2.snap" dir
test_cmp "... gives the same bytes" "$T/f2.snap" "$T/d2.snap"
python3 - "$T/f2.snap" >"$T/mixed" <<'EOF'
import json, sys
for l in open(sys.argv[1]).readlines()[1:]:
    o = json.loads(l)
    if o['dn'].startswith('cn=Mixed Scope'):
        print('\n'.join(o['attrs']['member']))
EOF
printf 'cn=Eve Excluded,ou=Excluded,dc=example,dc=org\nuid=alice,ou=People,dc=example,dc=org\n' >"$T/mixed.want"
test_cmp "a renamed member stays as the server has it (no refint)" \
	"$T/mixed.want" "$T/mixed"

test_expect_code 0 "no changes: a delta import" \
	sync-import -c "$T/sync.yaml" -d "$T/d2.snap" -o "$T/d3.snap" dir
test_grep "... with nothing changed" '\(delta: 0 changed\)$' "$T/err"
test_cmp "... the same bytes" "$T/d2.snap" "$T/d3.snap"

# Fallbacks: each a full import (exit 0) that says why.
edit_cookie() {     # edit_cookie IN OUT PYTHON-EXPR-ON-c
	python3 - "$1" "$2" "$3" <<'EOF'
import base64, hashlib, json, sys
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
	sync-import -c "$T/sync.yaml" -d "$T/nock.snap" -o "$T/x.snap" dir
test_grep "... says so" "^sync-import: dir: a full import: $T/nock.snap has no delta cookie$" "$T/err"
test_cmp "... and gives the full snapshot" "$T/f2.snap" "$T/x.snap"

edit_cookie "$T/d2.snap" "$T/bad.snap" 'c.replace("\nuser ", "\nuser A", 1)'
test_expect_code 0 "fallback: a damaged cookie" \
	sync-import -c "$T/sync.yaml" -d "$T/bad.snap" -o "$T/x.snap" dir
test_grep "... says so" "^sync-import: dir: a full import: the cookie of $T/bad.snap is damaged$" "$T/err"
test_cmp "... and gives the full snapshot" "$T/f2.snap" "$T/x.snap"

conf '(&(objectClass=inetOrgPerson)(uid=*))' >"$T/sync2.yaml"
test_expect_code 0 "fallback: the config changed" \
	sync-import -c "$T/sync2.yaml" -d "$T/d2.snap" -o "$T/x.snap" dir
test_grep "... says so" "^sync-import: dir: a full import: the server or the objects read have changed since $T/d2.snap was written$" "$T/err"

# A cookie the server no longer has a state for (reloadHint honoured).
cat >"$T/hint.ldif" <<EOF
dn: $OVL
changetype: modify
replace: olcSpReloadHint
olcSpReloadHint: TRUE
EOF
slapd_modify "$T/hint.ldif" || fail "set olcSpReloadHint"
edit_cookie "$T/d2.snap" "$T/old.snap" '(lambda ls: "\n".join(ls + ["check " + hashlib.sha256("\n".join(ls).encode()).hexdigest()]))([c.split("\n")[0]] + [l.split(" ")[0] + " " + base64.b64encode(b"rid=000,csn=19700101000000.000000Z#000000#000#000000").decode() for l in c.split("\n")[1:-1]])'
test_expect_code 0 "fallback: e-syncRefreshRequired" \
	sync-import -c "$T/sync.yaml" -d "$T/old.snap" -o "$T/x.snap" dir
test_grep "... says so" "^sync-import: dir: a full import: the server cannot bring the cookie for '$SLAPD_BASE' up to date \(e-syncRefreshRequired: sync cookie is stale\)$" "$T/err"
test_cmp "... and gives the full snapshot" "$T/f2.snap" "$T/x.snap"

# No syncprov any more: the control is refused.
printf 'dn: %s\nchangetype: delete\n' "$OVL" >"$T/nosync.ldif"
slapd_modify "$T/nosync.ldif" || fail "remove syncprov"
test_expect_code 0 "fallback: a server without syncprov" \
	sync-import -c "$T/sync.yaml" -d "$T/d2.snap" -o "$T/x.snap" dir
test_grep "... says so" "^sync-import: dir: a full import: the server offers no content synchronization \(RFC 4533\) for '$SLAPD_BASE' \(is the syncprov overlay loaded\?\)$" "$T/err"
test_grep "... and writes no cookie" '"cookie":null' "$T/x.snap"

done_testing
