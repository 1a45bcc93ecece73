#!/bin/sh
# sync-import against a real Samba AD domain controller: users, groups,
# contacts as ldapsearch sees them, objectGUID/objectSid, the anchor
# (mS-DS-ConsistencyGuid, else objectGUID), disabled accounts, ranged
# retrieval of a 5,000-member group, OU exclusion, and failures.
. "$(dirname "$0")/lib.sh"

samba_start --seeded
LDAPTLS_CACERT=$SAMBA_CA
export LDAPTLS_CACERT

B=$SAMBA_BASE
cat >"$T/sync.yaml" <<EOF
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
    page_size: \${PAGE_SIZE}
    range_step: \${RANGE_STEP}
EOF
RANGE_STEP=0 PAGE_SIZE=100
export RANGE_STEP PAGE_SIZE

test_expect_code 0 "import from Samba AD over LDAPS" \
	sync-import -c "$T/sync.yaml" -o "$T/a.snap" ad
test_grep "summary: 9 users, 5 groups (4 + big), 5002 contacts" \
	'^sync-import: ad: 9 users, 5 groups, 5002 contacts$' "$T/err"

# The oracle: the same three searches with ldapsearch.
for f in '(&(objectCategory=person)(objectClass=user))' '(objectClass=group)' \
	'(objectClass=contact)'; do
	ldapsearch -LLL -o ldif-wrap=no -x -H "$SAMBA_LDAPS_URL" \
		-D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" -b "$B" -E pr=500/noprompt \
		"$f" '*' objectGUID mS-DS-ConsistencyGuid
done | grep -v '^# \|^control: \|^pagedresults: \|^search: \|^result: ' >"$T/oracle.raw"
# The excluded subtrees: OU=Excluded, and CN=Users and CN=Builtin that
# hold the domain's built-in accounts and groups.
python3 - "$T/oracle.raw" >"$T/oracle.ldif" <<'EOF'
import base64, sys
for block in open(sys.argv[1], 'rb').read().split(b'\n\n'):
    # A page's result lines ("search:", "result:") may precede the next
    # page's first entry in one block: the entry starts at its dn line.
    lines = block.split(b'\n')
    starts = [i for i, l in enumerate(lines) if l.startswith(b'dn:')]
    if not starts:
        continue
    block = b'\n'.join(lines[starts[0]:])
    first = lines[starts[0]]
    dn = base64.b64decode(first[5:]) if first.startswith(b'dn:: ') else first
    if any(x in dn for x in (b',OU=Excluded,', b',CN=Users,', b',CN=Builtin,')):
        continue
    sys.stdout.buffer.write(block.strip(b'\n') + b'\n\n')
EOF
ok "every object equals what ldapsearch returns, and nothing else" \
	python3 "$TOP/tests/snapcheck.py" "$T/a.snap" "$T/oracle.ldif"
[ -s "$T/ok.out" ] && note_file "$T/ok.out" 20

python3 - "$T/a.snap" >"$T/facts" <<'EOF'
import base64, json, sys, uuid
lines = open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]
objs = [json.loads(l) for l in lines]
ok_anchor = ok_id = 0
for o in objs:
    guid = base64.b64decode(o['attrs']['objectGUID'][0])
    ok_anchor += o['anchor'] == base64.b64encode(guid).decode()
    ok_id += o['id'] == str(uuid.UUID(bytes_le=guid))
print('anchor = base64(objectGUID):', ok_anchor == len(objs))
print('id = GUID string:', ok_id == len(objs))
print('binary:', sorted(set(b for o in objs for b in o.get('binary', []))))
sam = {o['attrs']['sAMAccountName'][0]: o for o in objs
       if 'sAMAccountName' in o['attrs']}
cn = {o['attrs']['cn'][0]: o for o in objs}
print('dave uac', sam['dave']['attrs']['userAccountControl'],
      'alice uac', sam['alice']['attrs']['userAccountControl'])
print('alice proxyAddresses', len(sam['alice']['attrs']['proxyAddresses']),
      'otherMailbox', len(sam['alice']['attrs']['otherMailbox']))
for k in ['jsmith', 'qname', 'bslash', 'spaces', 'cpp', 'emilie', 'hash']:
    print(repr(sam[k]['attrs']['cn'][0]), sam[k]['type'])
for k in ['Carl Contact', 'Extern, Eva', 'R&D, Europe']:
    print(repr(k), cn[k]['type'])
big = [o for o in objs if len(o['attrs'].get('member', [])) > 100]
print('big group', [len(o['attrs']['member']) for o in big])
print('excluded', [o['dn'] for o in objs if 'Excluded' in o['dn']])
EOF
cat >"$T/facts.want" <<'EOF'
anchor = base64(objectGUID): True
id = GUID string: True
binary: ['jpegPhoto', 'objectGUID', 'objectSid', 'thumbnailPhoto']
dave uac ['514'] alice uac ['512']
alice proxyAddresses 3 otherMailbox 2
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
big group [5000]
excluded []
EOF
test_cmp "anchors, ids, binary attributes, tricky names, big group, exclusion" \
	"$T/facts.want" "$T/facts"

# Conversions for rules: objectSid -> S-1-5-21-..., checked by asking the
# DC itself for the object with that SID; a disabled account's bit.
python3 - "$T/a.snap" alice >"$T/alice.json" <<'EOF'
import json, sys
for l in open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]:
    o = json.loads(l)
    if o['attrs'].get('sAMAccountName') == [sys.argv[2]]:
        print(json.dumps(o['attrs']))
EOF
test_expect_code 0 "StringFromSid on the imported objectSid" \
	sync-diff -e 'StringFromSid([objectSid])' -b objectSid -b objectGUID "$T/alice.json"
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0])' "$T/out")
ldapsearch -LLL -x -H "$SAMBA_LDAPS_URL" -D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" \
	-b "$B" "(objectSid=$sid)" sAMAccountName >"$T/bysid" 2>&1
test_grep "... gives the SID the DC finds alice by ($sid)" '^sAMAccountName: alice$' "$T/bysid"
python3 - "$T/a.snap" dave >"$T/dave.json" <<'EOF'
import json, sys
for l in open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]:
    o = json.loads(l)
    if o['attrs'].get('sAMAccountName') == [sys.argv[2]]:
        print(json.dumps(o['attrs']))
EOF
test_expect_code 0 "accountEnabled of a disabled account (bit 2)" \
	sync-diff -e 'IIF(IsBitSet([userAccountControl],2),"false","true")' "$T/dave.json"
echo '["false"]' >"$T/want"
test_cmp "... is false" "$T/want" "$T/out"

# mS-DS-ConsistencyGuid, when set, is the anchor.
cat >"$T/cguid.ldif" <<EOF
dn: CN=Alice Smith,OU=People,$B
changetype: modify
replace: mS-DS-ConsistencyGuid
mS-DS-ConsistencyGuid:: ESIzRFVmd4iZqru8zd7v8A==
EOF
samba_modify "$T/cguid.ldif" || fail "set mS-DS-ConsistencyGuid on alice"

# Ranged retrieval: the DC honours explicit windows...
ldapsearch -LLL -o ldif-wrap=no -x -H "$SAMBA_LDAPS_URL" -D "$SAMBA_BINDDN" \
	-y "$SAMBA_PWFILE" -b "$B" '(member=*)' 'member;range=0-999' >"$T/window"
grep -c '^member;range=0-999:' "$T/window" >"$T/n"
echo 1000 >"$T/want"
test_cmp "the DC sends 1,000 values when asked for member;range=0-999" "$T/want" "$T/n"
# ...so with a range step the import must fetch the rest window by window
# (with small pages, while the search for the next page is outstanding).
RANGE_STEP=1000 PAGE_SIZE=2
test_expect_code 0 "import with range_step 1000" \
	sync-import -q -c "$T/sync.yaml" -o "$T/r.snap" ad
python3 - "$T/a.snap" "$T/r.snap" >"$T/ranged" <<'EOF'
import json, sys
def load(p):
    return {json.loads(l)['dn']: json.loads(l)
            for l in open(p, 'rb').read().split(b'\n')[1:-1]}
a, r = load(sys.argv[1]), load(sys.argv[2])
big = [dn for dn in a if len(a[dn]['attrs'].get('member', [])) > 100][0]
print('members', len(r[big]['attrs']['member']),
      'same as whole', r[big]['attrs']['member'] == a[big]['attrs']['member'],
      'no range names', not any(';' in k for o in r.values() for k in o['attrs']))
alice = [o for o in r.values() if o['attrs'].get('sAMAccountName') == ['alice']][0]
print('alice anchor', alice['anchor'])
EOF
cat >"$T/ranged.want" <<'EOF'
members 5000 same as whole True no range names True
alice anchor ESIzRFVmd4iZqru8zd7v8A==
EOF
test_cmp "5,000 members in windows of 1,000; mS-DS-ConsistencyGuid is the anchor" \
	"$T/ranged.want" "$T/ranged"

# ---------------------------------------------------------------- failures
printf 'Wrong-Passw0rd!\n' >"$T/badpw"
chmod 600 "$T/badpw"
sed "s|password_file: .*|password_file: $T/badpw|" "$T/sync.yaml" >"$T/badpw.yaml"
test_expect_code 2 "bad credentials" \
	sync-import -c "$T/badpw.yaml" -o "$T/x.snap" ad
test_grep "... with AD's diagnostic" \
	"^sync-import: ad: bind as '$SAMBA_BINDDN' to '$SAMBA_LDAPS_URL' failed: Invalid credentials \(49\): 80090308: .*AcceptSecurityContext error, data 52e" "$T/err"
test_expect_code 1 "... and no output" test -e "$T/x.snap"

sed -e "s|url: .*|url: $SAMBA_URL|" -e '/ca_file/a\    allow_cleartext_bind: true' \
	"$T/sync.yaml" >"$T/clear.yaml"
test_expect_code 2 "a clear-text bind the config allows but the DC refuses" \
	sync-import -c "$T/clear.yaml" -o "$T/x.snap" ad
test_grep "... reports the DC's strong-auth result" \
	"failed: Strong\(er\) authentication required \(8\): BindSimple: Transport encryption required\.$" "$T/err"

sed -e "s|url: .*|url: $SAMBA_URL|" -e '/ca_file/a\    starttls: true' \
	"$T/sync.yaml" >"$T/starttls.yaml"
RANGE_STEP=0 PAGE_SIZE=100
test_expect_code 0 "StartTLS to the DC" \
	sync-import -q -c "$T/starttls.yaml" -o "$T/s.snap" ad
test_grep "StartTLS import has every object" \
	'"counts":\{"contact":5002,"group":5,"user":9\}' "$T/s.snap"

sed "s|base_dn: .*|base_dn: OU=Nowhere,$B|" "$T/sync.yaml" >"$T/nobase.yaml"
test_expect_code 2 "a base DN that does not exist" \
	sync-import -c "$T/nobase.yaml" -o "$T/x.snap" ad
test_grep "... is named, with the DC's diagnostic" \
	"^sync-import: ad: base DN 'OU=Nowhere,$B' does not exist: No such object \(32\): " "$T/err"

samba_stop
test_expect_code 2 "a DC that is down" \
	sync-import -c "$T/sync.yaml" -o "$T/x.snap" ad
echo "sync-import: ad: bind as '$SAMBA_BINDDN' to '$SAMBA_LDAPS_URL' failed: Can't contact LDAP server (-1)" >"$T/want"
test_cmp "... cannot be contacted" "$T/want" "$T/err"

done_testing
