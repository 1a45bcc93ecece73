#!/bin/sh
# sync-import against a real slapd: every object in scope, values as
# ldapsearch sees them, tricky DNs, binary values, a 5,000-member group,
# OU exclusion, determinism, and each way the import can fail.
. "$(dirname "$0")/lib.sh"

slapd_start
slapd_seed || fail "seed slapd"
slapd_seed_big 5000 || fail "seed the 5,000-member group"
cat >"$T/lang.ldif" <<EOF
dn: uid=alice,ou=People,$SLAPD_BASE
changetype: modify
add: cn;lang-de
cn;lang-de: Alicia Schmied
EOF
slapd_modify "$T/lang.ldif" || fail "add a language-tagged value"

P=ou=People,$SLAPD_BASE
cat >"$T/sync.yaml" <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: \${DIR_URL}
    ca_file: $SLAPD_CA
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    base_dn: $SLAPD_BASE
    exclude: ou=Excluded,$SLAPD_BASE
    page_size: 7
    objects:
      user:
        filter: (objectClass=inetOrgPerson)
        exclude: ou=Contacts,$SLAPD_BASE
      group: {}
      contact:
        filter: (objectClass=inetOrgPerson)
        base_dn: ou=Contacts,$SLAPD_BASE
EOF
DIR_URL=$SLAPD_LDAPS_URL
export DIR_URL

test_expect_code 0 "import over ldaps with a CA file" \
	sync-import -c "$T/sync.yaml" -o "$T/a.snap" dir
test_grep "summary counts per type" \
	'^sync-import: dir: 5011 users, 5 groups, 2 contacts$' "$T/err"

python3 - "$T/a.snap" >"$T/hdr" <<'EOF'
import json, sys
h = json.loads(open(sys.argv[1]).readline())
print(h['format'], h['version'], h['connector'], h['connector_type'],
      h['kind'], h['cookie'], h['counts']['user'], h['counts']['group'],
      h['counts']['contact'], h['source'])
EOF
echo "sync-snapshot 1 dir ldap full None 5011 5 2 $SLAPD_LDAPS_URL" >"$T/hdr.want"
test_cmp "header names format, version, connector, kind and counts" \
	"$T/hdr.want" "$T/hdr"

# The oracle: ldapsearch over the same scope, with the same attributes.
ldapsearch -LLL -o ldif-wrap=no -x -H "$SLAPD_URL" -D "$SLAPD_ROOTDN" \
	-y "$SLAPD_PWFILE" -b "$SLAPD_BASE" \
	'(&(|(objectClass=inetOrgPerson)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))(!(ou:dn:=Excluded)))' \
	'*' entryUUID >"$T/oracle.ldif"
ok "every object equals what ldapsearch returns, and nothing else" \
	python3 "$TOP/tests/snapcheck.py" "$T/a.snap" "$T/oracle.ldif"
[ $? -eq 0 ] || note_file "$T/ok.out"

# Anchors: entryUUID, unique, lines sorted by anchor in byte order.
python3 - "$T/a.snap" >"$T/anchors" <<'EOF'
import json, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]
objs = [json.loads(l) for l in lines]
a = [o['anchor'] for o in objs]
print('sorted' if a == sorted(a, key=lambda s: s.encode()) else 'unsorted')
print('unique' if len(set(a)) == len(a) else 'duplicates')
print('entryUUID' if all(o['anchor'] == o['attrs']['entryUUID'][0] == o['id']
                         for o in objs) else 'other')
EOF
printf 'sorted\nunique\nentryUUID\n' >"$T/anchors.want"
test_cmp "anchors are entryUUID, unique and sorted" "$T/anchors.want" "$T/anchors"

# Specific objects, looked up by parsed DN value rather than by string.
python3 - "$T/a.snap" >"$T/tricky" <<'EOF'
import base64, json, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]
objs = [json.loads(l) for l in lines]
by_cn = {}
for o in objs:
    for cn in o['attrs'].get('cn', []):
        by_cn[cn] = o
for cn in ['Smith, John', '"Quoted" Name', 'Back\\slash User',
           ' Leading and Trailing ', 'C++ Developer',
           '\u00c9milie Stra\u00dfe-\u03a9mega', '#hash; <angle> user',
           'Carl Contact', 'Extern, Eva', 'R&D, Europe']:
    o = by_cn.get(cn)
    print(repr(cn), o['type'] if o else 'MISSING')
alice = [o for o in objs if o['attrs'].get('uid') == ['alice']][0]
print('alice mail', len(alice['attrs']['mail']),
      'phones', len(alice['attrs']['telephoneNumber']),
      'binary', alice.get('binary'),
      'photo bytes', len(base64.b64decode(alice['attrs']['jpegPhoto'][0])))
big = [o for o in objs if o['type'] == 'group' and len(o['attrs'].get('member', [])) > 100]
print('alice cn;lang-de', alice['attrs'].get('cn;lang-de'))
print('big group members', [len(o['attrs']['member']) for o in big])
print('excluded', [o['dn'] for o in objs if 'Excluded' in o['dn']])
EOF
cat >"$T/tricky.want" <<'EOF'
'Smith, John' user
'"Quoted" Name' user
'Back\\slash User' user
' Leading and Trailing ' user
'C++ Developer' user
'Émilie Straße-Ωmega' user
'#hash; <angle> user' user
'Carl Contact' contact
'Extern, Eva' contact
'R&D, Europe' group
alice mail 3 phones 2 binary ['jpegPhoto'] photo bytes 125
alice cn;lang-de ['Alicia Schmied']
big group members [5000]
excluded []
EOF
test_cmp "tricky DNs, multi-valued, binary, big group, exclusion" \
	"$T/tricky.want" "$T/tricky"

test_expect_code 0 "a second import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/b.snap" dir
tail -n +2 "$T/a.snap" >"$T/a.body"
tail -n +2 "$T/b.snap" >"$T/b.body"
test_cmp "importing twice gives identical object lines" "$T/a.body" "$T/b.body"

# -d: this slapd has no syncprov, so the snapshot has no cookie (delta
# imports are tested in 0220); a full one, and the reason.
test_expect_code 0 "-d on an LDAP connector without a cookie" \
	sync-import -c "$T/sync.yaml" -d "$T/a.snap" -o "$T/d.snap" dir
test_grep "... a full import, and why" \
	"^sync-import: dir: a full import: $T/a.snap has no delta cookie$" "$T/err"
tail -n +2 "$T/d.snap" >"$T/d.body"
test_cmp "... the same objects" "$T/a.body" "$T/d.body"
test_grep "... and no cookie" '"cookie":null' "$T/d.snap"

# The sort spills to temporary files past -m; the result is the same.
test_expect_code 0 "import with a 1 MiB sort buffer (external merge)" \
	sync-import -q -m 1 -c "$T/sync.yaml" -o "$T/c.snap" dir
tail -n +2 "$T/c.snap" >"$T/c.body"
test_cmp "external merge gives the same bytes" "$T/a.body" "$T/c.body"

# Overlapping base DNs find the same entries twice: written once.  An
# entry that two object types match is an error, before any output.
sed 's|^    base_dn: .*|    base_dn: [ "'"$SLAPD_BASE"'", "'"$P"'" ]|' "$T/sync.yaml" >"$T/overlap.yaml"
test_expect_code 0 "overlapping base DNs" \
	sync-import -q -c "$T/overlap.yaml" -o "$T/o.snap" dir
tail -n +2 "$T/o.snap" >"$T/o.body"
test_cmp "... give the same objects, each once" "$T/a.body" "$T/o.body"
sed '/exclude: ou=Contacts/d' "$T/sync.yaml" >"$T/twotypes.yaml"
test_expect_code 2 "an entry matched as both user and contact" \
	sync-import -c "$T/twotypes.yaml" -o "$T/t.snap" dir
test_grep "... is refused" "^sync-import: two objects have the anchor '[-0-9a-f]*' \(an entry matched by two object types, or an anchor attribute that is not unique\)$" "$T/err"
test_expect_code 1 "... with no output" test -e "$T/t.snap"
test_expect_code 2 "... also on standard output" \
	sh -c 'sync-import -c "$T/twotypes.yaml" dir >"$T/t.out"'
test_cmp "... where nothing at all is written" /dev/null "$T/t.out"

# Relative paths in the config are taken from the config's directory.
mkdir -p "$T/etc"
cp "$SLAPD_CA" "$T/etc/ca.pem"
cp "$SLAPD_PWFILE" "$T/etc/pw"
sed -e 's|ca_file: .*|ca_file: ca.pem|' -e 's|password_file: .*|password_file: pw|' \
	-e 's|state_dir: .*|state_dir: state|' "$T/sync.yaml" >"$T/etc/rel.yaml"
test_expect_code 0 "relative ca_file, password_file and state_dir" \
	sh -c 'cd / && sync-import -q -c "$T/etc/rel.yaml" -o "$T/rel.snap" dir'
ok "... are found beside the config (state under it)" test -f "$T/etc/state/import.dir.lock"
sed 's|ca_file: .*|ca_file: nonexistent.pem|' "$T/etc/rel.yaml" >"$T/etc/noca.yaml"
test_expect_code 2 "a CA file that does not exist" \
	sync-import -c "$T/etc/noca.yaml" -o "$T/rel.snap" dir
echo "sync-import: dir: cannot read CA file '$T/etc/nonexistent.pem': No such file or directory" >"$T/want"
test_cmp "... is named" "$T/want" "$T/err"

DIR_URL=$SLAPD_URL
cat >"$T/starttls.yaml" <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: $SLAPD_URL
    starttls: true
    ca_file: $SLAPD_CA
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    base_dn: $SLAPD_BASE
    exclude: ou=Excluded,$SLAPD_BASE
    objects:
      group: {}
EOF
test_expect_code 0 "import over StartTLS" \
	sync-import -q -c "$T/starttls.yaml" -o "$T/tls.snap" dir
test_grep "StartTLS import has the groups" '"counts":\{"contact":0,"group":5,"user":0\}' "$T/tls.snap"

cat >"$T/ldapi.yaml" <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: $SLAPD_LDAPI_URL
    sasl_mech: EXTERNAL
    base_dn: ou=Groups,$SLAPD_BASE
    objects:
      group: {}
EOF
test_expect_code 0 "import over ldapi with SASL EXTERNAL" \
	sync-import -q -c "$T/ldapi.yaml" -o "$T/ldapi.snap" dir
test_grep "ldapi import has the groups" '"counts":\{"contact":0,"group":5,"user":0\}' "$T/ldapi.snap"

# ---------------------------------------------------------------- failures

# conf NAME URL [extra yaml lines]: a config with one connector "dir".
conf() {
	_f=$T/$1.yaml
	shift
	{
		echo "state_dir: $T/state"
		echo "connectors:"
		echo "  dir:"
		echo "    type: ldap"
		echo "    url: $1"
		shift
		for _l in "$@"; do echo "    $_l"; done
	} >"$_f"
}

conf cleartext "$SLAPD_URL" "bind_dn: $SLAPD_ROOTDN" \
	"password_file: $SLAPD_PWFILE" "base_dn: $SLAPD_BASE"
test_expect_code 2 "a simple bind over clear text is refused" \
	sync-import -c "$T/cleartext.yaml" -o "$T/x.snap" dir
echo "sync-import: dir: refusing a simple bind over clear text to '$SLAPD_URL'; use ldaps://, starttls: true, or set allow_cleartext_bind: true" >"$T/want"
test_cmp "... with a message that says how to fix it" "$T/want" "$T/err"
test_expect_code 1 "... and no output file" test -e "$T/x.snap"

conf cleartext-ok "$SLAPD_URL" "bind_dn: $SLAPD_ROOTDN" \
	"password_file: $SLAPD_PWFILE" "base_dn: $SLAPD_BASE" \
	"allow_cleartext_bind: true" "objects: {group: {}}"
test_expect_code 0 "clear text allowed when the config says so" \
	sync-import -q -c "$T/cleartext-ok.yaml" -o "$T/x.snap" dir

printf 'wrong-password\n' >"$T/badpw"
chmod 600 "$T/badpw"
conf badpw "$SLAPD_LDAPS_URL" "ca_file: $SLAPD_CA" \
	"bind_dn: $SLAPD_ROOTDN" "password_file: $T/badpw" "base_dn: $SLAPD_BASE"
test_expect_code 2 "bad credentials" \
	sync-import -c "$T/badpw.yaml" -o "$T/y.snap" dir
echo "sync-import: dir: bind as '$SLAPD_ROOTDN' to '$SLAPD_LDAPS_URL' failed: Invalid credentials (49)" >"$T/want"
test_cmp "... names the identity, the server and the LDAP result" "$T/want" "$T/err"
test_expect_code 1 "... and leaves no output file" test -e "$T/y.snap"

chmod 644 "$T/badpw"
test_expect_code 2 "a password file others can read is refused" \
	sync-import -c "$T/badpw.yaml" -o "$T/y.snap" dir
echo "sync-import: dir: secret file '$T/badpw' is accessible by group or others (mode 0644); chmod 600 it" >"$T/want"
test_cmp "... with the file and its mode" "$T/want" "$T/err"

conf untrusted "$SLAPD_LDAPS_URL" "bind_dn: $SLAPD_ROOTDN" \
	"password_file: $SLAPD_PWFILE" "base_dn: $SLAPD_BASE"
test_expect_code 2 "a certificate not signed by a trusted CA" \
	sync-import -c "$T/untrusted.yaml" -o "$T/z.snap" dir
test_grep "... fails the connection with the TLS reason" \
	"^sync-import: dir: bind as '$SLAPD_ROOTDN' to '$SLAPD_LDAPS_URL' failed: Can't contact LDAP server \(-1\): TLS certificate not trusted \(set ca_file to the CA that signed it\)$" "$T/err"

conf nobase "$SLAPD_LDAPS_URL" "ca_file: $SLAPD_CA" "bind_dn: $SLAPD_ROOTDN" \
	"password_file: $SLAPD_PWFILE" "base_dn: ou=Nowhere,$SLAPD_BASE"
test_expect_code 2 "a base DN that does not exist" \
	sync-import -c "$T/nobase.yaml" -o "$T/z.snap" dir
echo "sync-import: dir: base DN 'ou=Nowhere,$SLAPD_BASE' does not exist: No such object (32); matched DN '$SLAPD_BASE'" >"$T/want"
test_cmp "... names the base DN and the matched DN" "$T/want" "$T/err"

# A port nothing listens on: slapd's own port after it is stopped.
conf down "ldaps://127.0.0.1:1" "ca_file: $SLAPD_CA" "bind_dn: $SLAPD_ROOTDN" \
	"password_file: $SLAPD_PWFILE" "base_dn: $SLAPD_BASE" "timeout: 2"
test_expect_code 2 "an unreachable server" \
	sync-import -c "$T/down.yaml" -o "$T/z.snap" dir
echo "sync-import: dir: bind as '$SLAPD_ROOTDN' to 'ldaps://127.0.0.1:1' failed: Can't contact LDAP server (-1)" >"$T/want"
test_cmp "... says it cannot contact the server" "$T/want" "$T/err"

# Server limits: the database's limit for everyone but the root DN is
# lowered to 3 entries (the harness's own olcLimits rule lifts it).
cat >"$T/limited.ldif" <<EOF
dn: cn=limited,$SLAPD_BASE
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: limited
userPassword: limited-secret
EOF
slapd_add "$T/limited.ldif" || fail "add the limited identity"
cat >"$T/limits.ldif" <<EOF
dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcSizeLimit
olcSizeLimit: size.soft=3 size.hard=3 size.prtotal=3
-
delete: olcLimits
EOF
slapd_modify "$T/limits.ldif" || fail "set size limits"
printf 'limited-secret' >"$T/limitedpw"
chmod 400 "$T/limitedpw"
conf limited "$SLAPD_LDAPS_URL" "ca_file: $SLAPD_CA" \
	"bind_dn: cn=limited,$SLAPD_BASE" "password_file: $T/limitedpw" \
	"base_dn: $SLAPD_BASE"
test_expect_code 2 "a server size limit" \
	sync-import -c "$T/limited.yaml" -o "$T/z.snap" dir
test_grep "... is reported as a server limit, not a short snapshot" \
	"^sync-import: dir: server limit reached searching '$SLAPD_BASE': Size limit exceeded \(4\)" "$T/err"
test_expect_code 1 "... and no snapshot is written" test -e "$T/z.snap"

DIR_URL=$SLAPD_LDAPS_URL
test_expect_code 2 "a write error on standard output" \
	sh -c 'sync-import -q -c "$T/sync.yaml" dir >/dev/full'
echo "sync-import: cannot write the snapshot: No space left on device" >"$T/want"
test_cmp "... is reported" "$T/want" "$T/err"

test_expect_code 2 "an unknown connector" \
	sync-import -c "$T/sync.yaml" nosuch
echo "sync-import: $T/sync.yaml: no connector named 'nosuch'" >"$T/want"
test_cmp "... is named" "$T/want" "$T/err"

flock "$T/state/import.dir.lock" sleep 3 &
_flock=$!
sleep 0.3
test_expect_code 2 "a second run of the same import is locked out" \
	sync-import -c "$T/sync.yaml" -o "$T/l.snap" dir
echo "sync-import: '$T/state/import.dir.lock' is locked: another run is in progress" >"$T/want"
test_cmp "... with a message naming the lock" "$T/want" "$T/err"
kill $_flock 2>/dev/null
wait $_flock 2>/dev/null

test_expect_code 0 "the previous output is kept when a run fails" \
	cmp -s "$T/a.snap" "$T/a.snap"
cp "$T/a.snap" "$T/keep.snap"
DIR_URL=ldaps://127.0.0.1:1
test_expect_code 2 "a failing run over an existing output" \
	sync-import -c "$T/sync.yaml" -o "$T/keep.snap" dir
test_cmp "... leaves it as it was" "$T/a.snap" "$T/keep.snap"
ls "$T" | grep '\.tmp\.' >"$T/tmpfiles"
test_cmp "... and no temporary file" /dev/null "$T/tmpfiles"

done_testing
