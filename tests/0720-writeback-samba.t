#!/bin/sh
# The writeback of examples/ad-to-entra.yaml end to end, against a real
# Samba AD domain controller and the Graph emulator: import AD and Entra
# ID, diff with AD as the target, sync-export to AD; then AD read back
# has mS-DS-ConsistencyGuid equal to objectGUID's bytes where it was
# empty (and a value already there kept), the cloud security groups in
# OU=Cloud Groups with the anchor, the derived sAMAccountName and the AD
# users of their Entra ID members, the AD group without the anchor
# untouched; the next cycle plans nothing; a group deleted and a member
# removed in Entra ID follow, and the cycle after that plans nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

samba_start
LDAPTLS_CACERT=$SAMBA_CA
export LDAPTLS_CACERT
B=$SAMBA_BASE

# --- AD: two users in OU=Staff, Ann Smith with an mS-DS-ConsistencyGuid
# of her own (a user moved from another forest), an AD group without the
# anchor, and the OU the groups are written to, holding a group of an
# administrator's with a note in adminDescription (not an anchor).
cat >"$T/ad.ldif" <<LDIF
dn: OU=Staff,$B
objectClass: organizationalUnit

dn: OU=Cloud Groups,$B
objectClass: organizationalUnit

dn: CN=John Doe,OU=Staff,$B
objectClass: user
sAMAccountName: jdoe
userPrincipalName: jdoe@samdom.test
displayName: John Doe

dn: CN=Ann Smith,OU=Staff,$B
objectClass: user
sAMAccountName: asmith
userPrincipalName: asmith@samdom.test
displayName: Ann Smith
mS-DS-ConsistencyGuid:: mZmZmZmZmZmZmZmZmZmZmQ==

dn: CN=Staff,OU=Staff,$B
objectClass: group
sAMAccountName: Staff
member: CN=John Doe,OU=Staff,$B

dn: CN=Legacy,OU=Cloud Groups,$B
objectClass: group
sAMAccountName: Legacy
adminDescription: do not delete: legacy ACLs
member: CN=John Doe,OU=Staff,$B
LDIF
samba_add "$T/ad.ldif" || fail "seed AD"
guid() {
	samba_search -b "$1" -s base objectGUID | sed -n 's/^objectGUID:: //p'
}
JGUID=$(guid "CN=John Doe,OU=Staff,$B")
[ -n "$JGUID" ] || fail "John Doe's objectGUID"

# --- Entra ID: the two users synced from AD (their immutableIds), a
# cloud-only user; cloud security groups, one inside the other, a group
# synced from AD and a Microsoft 365 group (neither written back).
EMU=$TOP/tests/graph-emulator.py TENANT=example.onmicrosoft.com
CID=6f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/entra.secret"
emu_start graph || { fail "the emulator starts"; done_testing; }
BASE=http://127.0.0.1:$(cat "$T/graph.port")
U1=0a1b2c3d-0000-4000-8000-000000000001 U2=0a1b2c3d-0000-4000-8000-000000000002
U3=0a1b2c3d-0000-4000-8000-000000000003
GA=0a1b2c3d-0000-4000-8000-00000000a001 GB=0a1b2c3d-0000-4000-8000-00000000a002
GS=0a1b2c3d-0000-4000-8000-00000000a003 GM=0a1b2c3d-0000-4000-8000-00000000a004
cat >"$T/seed.json" <<JSON
{"users": [
 {"id": "$U1", "displayName": "John Doe", "userPrincipalName": "jdoe@samdom.test",
  "mailNickname": "jdoe", "accountEnabled": true, "onPremisesImmutableId": "$JGUID",
  "onPremisesSyncEnabled": true},
 {"id": "$U2", "displayName": "Ann Smith", "userPrincipalName": "asmith@samdom.test",
  "mailNickname": "asmith", "accountEnabled": true,
  "onPremisesImmutableId": "mZmZmZmZmZmZmZmZmZmZmQ==", "onPremisesSyncEnabled": true},
 {"id": "$U3", "displayName": "Cloud Only", "userPrincipalName": "cloudy@example.onmicrosoft.com",
  "mailNickname": "cloudy", "accountEnabled": true}],
 "groups": [
 {"id": "$GA", "displayName": "Team A", "mailNickname": "teama", "mailEnabled": false,
  "securityEnabled": true, "groupTypes": [], "description": "the A team",
  "members": ["$U1", "$U2", "$U3"]},
 {"id": "$GB", "displayName": "Team B", "mailNickname": "teamb", "mailEnabled": false,
  "securityEnabled": true, "groupTypes": [], "members": ["$U1", "$GA"]},
 {"id": "$GS", "displayName": "Synced", "mailNickname": "synced", "mailEnabled": false,
  "securityEnabled": true, "groupTypes": [], "onPremisesSyncEnabled": true,
  "members": ["$U1"]},
 {"id": "$GM", "displayName": "All Hands", "mailNickname": "allhands", "mailEnabled": true,
  "securityEnabled": false, "groupTypes": ["Unified"], "members": ["$U1"]}]}
JSON
ctl /_emulator/seed "$(cat "$T/seed.json")" >"$T/seeded" ||
	fail "the emulator takes the tenant"

# --- the example as shipped, connected to Samba and the emulator; the
# state directory and the lease (a file) in $T
python3 - "$TOP/examples/ad-to-entra.yaml" "$T" "$BASE" "$TENANT" \
    "$SAMBA_BINDDN" "$SAMBA_PWFILE" "$SAMBA_CA" >"$T/sync.yaml" <<'PY'
import re, sys
src, t, base, tenant, binddn, pwfile, ca = sys.argv[1:8]
s = open(src).read()
def sub(old, new):
    global s
    n = len(re.findall(old, s, re.M))
    if n != 1:
        sys.exit("%s: %d matches for %r" % (src, n, old))
    s = re.sub(old, new, s, flags=re.M)
sub(r"bind_dn: CN=sync,CN=Users,\$\{AD_BASE\}$",
    "bind_dn: %s\n    ca_file: %s" % (binddn, ca))
sub(r"password_file: /etc/sync/ad.password$", "password_file: %s" % pwfile)
sub(r"client_secret_file: /etc/sync/entra.secret$",
    "client_secret_file: %s/entra.secret\n    token_url: %s/%s/oauth2/v2.0/token\n"
    "    graph_url: %s/v1.0\n    allow_http: true" % (t, base, tenant, base))
sub(r"^  lease:\n    ldap:\n(      .*\n)+", "  server: sync1\n  lease:\n    file: %s/lease\n" % t)
print("state_dir: %s/state" % t)
print(s, end="")
PY
mkdir -m 700 "$T/state"
AD_URL=$SAMBA_LDAPS_URL AD_BASE=$B ENTRA_TENANT=$TENANT ENTRA_CLIENT_ID=$CID
SYNC_APP_ID=0123456789abcdef0123456789abcdef
export AD_URL AD_BASE ENTRA_TENANT ENTRA_CLIENT_ID SYNC_APP_ID
C=$T/sync.yaml
test_expect_code 0 "promote" sync-role -c "$C" promote

# cycle N: import both, the writeback diff (JSON in wbN.json, text in
# wbN.txt, standard error in wbN.err, exit status in N.rc)
cycle() {
	if sync-import -c "$C" -o "$T/ad$1.snap" ad 2>"$T/imp.err" &&
	    sync-import -c "$C" -o "$T/entra$1.snap" entra 2>>"$T/imp.err"; then
		pass "cycle $1: import AD and Entra ID"
	else
		fail "cycle $1: import AD and Entra ID"
		note_file "$T/imp.err"
	fi
	sync-diff -c "$C" -o "$T/wb$1.json" "$T/ad$1.snap" "$T/entra$1.snap" \
		"$T/ad$1.snap" 2>"$T/wb$1.err"
	echo $? >"$T/$1.rc"
	sync-diff -f text -c "$C" "$T/ad$1.snap" "$T/entra$1.snap" "$T/ad$1.snap" \
		>"$T/wb$1.txt" 2>/dev/null
}

# exit status N.rc is WANT
rc_is() {
	echo "$2" >"$T/want.rc"
	test_cmp "$3" "$T/want.rc" "$T/$1.rc"
}

# What AD holds, read back from a snapshot: the anchors of the users of
# OU=Staff, the groups of OU=Staff and OU=Cloud Groups.
state() {
	python3 - "$1" "$B" <<'PY'
import json, sys
snap, b = sys.argv[1:3]
objs = [json.loads(l) for l in open(snap).read().splitlines()[1:]]
names = {o["dn"].lower(): o["attrs"].get("displayName", o["attrs"].get("cn"))[0]
         for o in objs if "dn" in o}
for o in sorted(objs, key=lambda o: (o["type"], o.get("dn", ""))):
    a, dn = o["attrs"], o.get("dn", "")
    if o["type"] == "user" and ",OU=Staff," in dn:
        g, c = a["objectGUID"][0], a.get("mS-DS-ConsistencyGuid", ["none"])[0]
        print("user", a["sAMAccountName"][0], "consistency guid",
              "= objectGUID" if c == g else c)
    if o["type"] == "group" and (",OU=Cloud Groups," in dn or ",OU=Staff," in dn):
        print("group", dn.replace("," + b, ""))
        for k in ("adminDescription", "description", "displayName", "groupType",
                  "sAMAccountName"):
            if k in a:
                print("   ", k, a[k][0])
        print("    members:", ", ".join(sorted(names.get(m.lower(), m)
                                                for m in a.get("member", []))))
PY
}

cycle 1
rc_is 1 1 "cycle 1: the writeback plan has changes"
test_grep "... mS-DS-ConsistencyGuid for John Doe, where it is empty" \
	'^~ update user "jdoe@samdom.test" .*flow consistency-guid' "$T/wb1.txt"
test_no_grep "... not for Ann Smith, who has one" 'update user "asmith' "$T/wb1.txt"
test_grep "... Team A to add" '^\+ add group "Team A"' "$T/wb1.txt"
test_grep "... Team B to add" '^\+ add group "Team B"' "$T/wb1.txt"
test_no_grep "... not the group synced from AD, nor the Microsoft 365 group; nothing for Staff or Legacy (not ours)" \
	'group "Synced"|All Hands|group "Staff"|Legacy' "$T/wb1.txt"
test_grep "... the cloud-only member left out with a warning" \
	"warning: flow 'group-writeback', group 'Team A': 1 value of 'member' left out, with no object in connector 'ad': 'cloudy@example.onmicrosoft.com'\$" \
	"$T/wb1.err"
test_expect_code 0 "cycle 1: sync-export to AD applies the plan" \
	sync-export -c "$C" "$T/wb1.json"
test_grep "... every change" '^sync-export: 3 applied, 0 already in place, 0 failed' "$T/err"

cycle 2
state "$T/ad2.snap" >"$T/got"
cat >"$T/want" <<WANT
group CN=Legacy,OU=Cloud Groups
    adminDescription do not delete: legacy ACLs
    groupType -2147483646
    sAMAccountName Legacy
    members: John Doe
group CN=Staff,OU=Staff
    groupType -2147483646
    sAMAccountName Staff
    members: John Doe
group CN=Team A_00000000a001,OU=Cloud Groups
    adminDescription Group_$GA
    description the A team
    displayName Team A
    groupType -2147483640
    sAMAccountName Group_0a1b2c3d00004000800000000000a001
    members: Ann Smith, John Doe
group CN=Team B_00000000a002,OU=Cloud Groups
    adminDescription Group_$GB
    displayName Team B
    groupType -2147483640
    sAMAccountName Group_0a1b2c3d00004000800000000000a002
    members: John Doe, Team A
user asmith consistency guid mZmZmZmZmZmZmZmZmZmZmQ==
user jdoe consistency guid = objectGUID
WANT
test_cmp "AD read back: mS-DS-ConsistencyGuid = objectGUID where it was empty, the groups in the OU with anchor and members, Staff and Legacy untouched" \
	"$T/want" "$T/got"
# the bytes, as ldapsearch reads them: both attributes, one value
samba_search -b "CN=John Doe,OU=Staff,$B" -s base objectGUID mS-DS-ConsistencyGuid |
	sed -n 's/^\(objectGUID\|mS-DS-ConsistencyGuid\):: //p' | sort -u >"$T/got"
echo "$JGUID" >"$T/want"
test_cmp "... ldapsearch: mS-DS-ConsistencyGuid holds objectGUID's 16 bytes" "$T/want" "$T/got"
rc_is 2 0 "cycle 2: the next writeback plans nothing (converges)"
# the forward diff does not take the written-back groups to Entra ID
sync-diff -f text -c "$C" "$T/ad2.snap" "$T/entra2.snap" >"$T/fwd.txt" 2>/dev/null
test_no_grep "the forward diff leaves the written-back groups out" 'Team [AB]' "$T/fwd.txt"

# --- Entra ID changes: Team B deleted, Ann Smith out of Team A
graph_call "$CID" "$SECRET" >"$T/calls" <<CALLS || fail "change the tenant"
DELETE /groups/$GB
DELETE /groups/$GA/members/$U2/\$ref
CALLS
cycle 3
test_grep "cycle 3: Team B is deleted from AD" '^- delete group "Team B"' "$T/wb3.txt"
test_grep "... Ann Smith leaves Team A" '^    member: -"asmith@samdom.test"$' "$T/wb3.txt"
test_expect_code 0 "cycle 3: sync-export applies it" sync-export -c "$C" "$T/wb3.json"
cycle 4
state "$T/ad4.snap" | sed -n '/^group CN=Team/,$p' >"$T/got"
cat >"$T/want" <<WANT
group CN=Team A_00000000a001,OU=Cloud Groups
    adminDescription Group_$GA
    description the A team
    displayName Team A
    groupType -2147483640
    sAMAccountName Group_0a1b2c3d00004000800000000000a001
    members: John Doe
user asmith consistency guid mZmZmZmZmZmZmZmZmZmZmQ==
user jdoe consistency guid = objectGUID
WANT
test_cmp "AD read back: Team B gone, Team A without Ann Smith" "$T/want" "$T/got"
rc_is 4 0 "cycle 4: nothing more to do"

# --- examples/sync-cycle runs the writeback as a cycle of its own: the
# target, ad, is a source too, and is read once
test_expect_code 0 "sync-cycle: the writeback cycle (target ad, sources ad and entra)" \
	sh "$TOP/examples/sync-cycle" -c "$C" -w "$T/wbc" ad ad entra
test_grep "... its plan is empty" '^Plan: 0 to add, 0 to update, 0 to delete' "$T/wbc/plan.txt"
ls "$T/wbc" >"$T/got"
printf '%s\n' ad.snap entra.snap plan.json plan.txt >"$T/want"
test_cmp "... one snapshot of ad" "$T/want" "$T/got"

done_testing
