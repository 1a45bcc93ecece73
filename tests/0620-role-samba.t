#!/bin/sh
# sync-role with the LDAP lease on a real Samba AD domain controller:
# the lease entry is a serviceConnectionPoint under CN=System with one
# description value; the two servers' accounts are ordinary domain users
# granted Write Property on description of that one object.  Promote,
# refusal, expiry, forced takeover, demote, the PDC emulator check,
# racing rounds, and an account without the right.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/role.sh"

samba_start
LDAPTLS_CACERT=$SAMBA_CA
export LDAPTLS_CACERT
B=$SAMBA_BASE
LEASE="CN=sync-lease,CN=System,$B"
DESCRIPTION_GUID=bf967950-0de6-11d0-a285-00aa003049e2

# Accounts: passwords set over LDAPS as unicodePwd (UTF-16LE, quoted).
for s in a b c; do
	(umask 077 && new_password | tr -d '\n' >"$T/$s.pw")
	pw64=$(printf '"%s"' "$(cat "$T/$s.pw")" | iconv -f UTF-8 -t UTF-16LE | base64 -w0)
	cat >>"$T/accounts.ldif" <<EOF
dn: CN=sync-$s,CN=Users,$B
objectClass: user
sAMAccountName: sync-$s
unicodePwd:: $pw64
userAccountControl: 512

EOF
done
samba_add "$T/accounts.ldif" || fail "add the servers' accounts"
cat >"$T/lease.ldif" <<EOF
dn: $LEASE
objectClass: serviceConnectionPoint
description: holder=;fence=0;expires=0
EOF
samba_add "$T/lease.ldif" || fail "add the lease entry"

# sid ACCOUNT: the objectSid of CN=ACCOUNT,CN=Users as S-1-5-...
sid() {
	samba_search -b "CN=$1,CN=Users,$B" -s base objectSid |
	    sed -n 's/^objectSid:: //p' | python3 -c '
import base64, struct, sys
r = base64.b64decode(sys.stdin.read())
auth = int.from_bytes(r[2:8], "big")
subs = struct.unpack("<%dI" % r[1], r[8:8 + 4 * r[1]])
print("S-%d-%d" % (r[0], auth) + "".join("-%d" % s for s in subs))'
}
for s in a b; do
	samba-tool dsacl set -s "$SAMBA_CONF" --objectdn="$LEASE" \
	    --sddl="(OA;;WP;$DESCRIPTION_GUID;;$(sid sync-$s))" \
	    >"$T/dsacl.log" 2>&1 ||
		{ note_file "$T/dsacl.log"; fail "grant sync-$s write on the lease description"; }
done

for s in a b c; do
	cat >"$T/$s.yaml" <<EOF
state_dir: $T/state-$s
connectors:
  ad:
    type: ad
    url: $SAMBA_LDAPS_URL
    ca_file: $SAMBA_CA
    bind_dn: CN=sync-$s,CN=Users,$B
    password_file: $T/$s.pw
    base_dn: $B
role:
  server: $s
  duration: \${ROLE_DURATION}
  lease:
    ldap:
      connector: ad
      dn: $LEASE
      attribute: description
EOF
done
ROLE_DURATION=60
export ROLE_DURATION
A="-c $T/a.yaml"
Bs="-c $T/b.yaml"

lease_value() {
	samba_search -b "$LEASE" -s base description | sed -n 's/^description: //p'
}

test_expect_code 1 "a new server is staging" sync-role $A
test_grep "the lease is free" '^lease: free, fence 0$' "$T/out"
test_expect_code 0 "promote a" sync-role $A promote
test_grep "fence 1" '^sync-role: a is active, fence 1, ' "$T/err"
test_expect_code 0 "a is active" sync-role $A check
# One DC is its own PDC emulator: the check ran and found this DC.
test_expect_code 0 "show on the PDC emulator" sync-role $A
test_grep "show names the DC checked" "^dc: $SAMBA_HOST, the PDC emulator\$" "$T/out"
test_expect_code 1 "promote b: refused" sync-role $Bs promote
test_grep "refusal names the holder" "the lease is held by 'a' \(fence 1\)" "$T/err"
lease_value | sed 's/;expires=.*//' >"$T/got"
echo "holder=a;fence=1" >"$T/want"
test_cmp "Samba holds a's lease" "$T/want" "$T/got"

# --- expiry
ROLE_DURATION=2 sync-role $A promote 2>/dev/null
test_expect_code 1 "b refused before expiry" sync-role $Bs promote
sleep 2.5
test_expect_code 0 "b takes the expired lease" sync-role $Bs promote
test_grep "fence 2" '^sync-role: b is active, fence 2, ' "$T/err"
test_expect_code 1 "a's check fails" sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 2" >"$T/want"
test_cmp "a is told who holds it" "$T/want" "$T/err"

# --- forced takeover
test_expect_code 1 "a refused" sync-role $A promote
test_expect_code 0 "promote -f a" sync-role $A promote -f
test_grep "forced" "^sync-role: took the unexpired lease from 'b'" "$T/err"
test_expect_code 1 "b's check fails" sync-role $Bs check
test_expect_code 0 "a is active with fence 3" sync-role $A
test_grep "fence 3" '^local: active, fence 3$' "$T/out"

# --- demote
test_expect_code 0 "demote a" sync-role $A demote
lease_value | sed 's/;expires=.*//' >"$T/got"
echo "holder=;fence=3" >"$T/want"
test_cmp "released on Samba, fence kept" "$T/want" "$T/got"
test_expect_code 0 "b promotes at once" sync-role $Bs promote
sync-role $Bs demote 2>/dev/null

# --- the PDC emulator
# The role moves to DC2 as this DC sees it: a server object DC2 with its
# NTDS Settings (nTDSDSA is system-only, so added through Samba's own
# module stack as the system with the relax control, the one change here
# not made over LDAP), then fSMORoleOwner of the domain head set to it
# over LDAP as Administrator, as a role transfer would.  The DC the lease
# connects to is then not the PDC emulator.  DC2 is not a running DC: the
# check reads only what this DC says.
SITE="CN=Default-First-Site-Name,CN=Sites,CN=Configuration,$B"
NTDS1="CN=NTDS Settings,CN=DC1,CN=Servers,$SITE"
NTDS2="CN=NTDS Settings,CN=DC2,CN=Servers,$SITE"
cat >"$T/dc2.ldif" <<EOF
dn: CN=DC2,CN=Servers,$SITE
objectClass: server
dNSHostName: dc2.samdom.test
EOF
samba_add "$T/dc2.ldif" || fail "add the server object DC2"
printf 'dn: %s\nobjectClass: nTDSDSA\n' "$NTDS2" >"$T/ntds2.ldif"
cat >"$T/relax-add.py" <<'EOF'
import sys
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
for _, msg in db.parse_ldif(open(sys.argv[2]).read()):
    db.add(msg, controls=["relax:0"])
EOF
/usr/bin/python3 "$T/relax-add.py" "$SAMBA_CONF" "$T/ntds2.ldif" >"$T/ntds2.log" 2>&1 ||
	{ note_file "$T/ntds2.log"; fail "add DC2's NTDS Settings"; }
# pdc_owner NTDS: sets the domain head's fSMORoleOwner
pdc_owner() {
	printf 'dn: %s\nchangetype: modify\nreplace: fSMORoleOwner\nfSMORoleOwner: %s\n' \
	    "$B" "$1" >"$T/fsmo.ldif"
	samba_modify "$T/fsmo.ldif"
}

test_expect_code 0 "promote a on the PDC emulator" sync-role $A promote
test_grep "fence 5" '^sync-role: a is active, fence 5, ' "$T/err"
pdc_owner "$NTDS2" || fail "move the PDC emulator role to DC2"
echo "sync-role: ad: '$SAMBA_HOST' is not the PDC emulator of $B ('dc2.samdom.test' is): two servers taking the lease on different domain controllers could both succeed before replication; connect to the PDC emulator, or set require_pdc: false (see sync.conf(5))" >"$T/want"
test_expect_code 2 "a's check on a DC that is not the PDC emulator: an error" \
	sync-role $A check
test_cmp "the refusal names both DCs" "$T/want" "$T/err"
test_expect_code 2 "promote -f b there: refused" sync-role $Bs promote -f
test_cmp "... with the same message" "$T/want" "$T/err"
test_expect_code 2 "show there: refused too" sync-role $Bs
lease_value | sed 's/;expires=.*//' >"$T/got"
echo "holder=a;fence=5" >"$T/want"
test_cmp "the lease is unchanged" "$T/want" "$T/got"

# require_pdc: false takes the risk: the lease is used on any DC.
sed 's/^      attribute: description$/&\n      require_pdc: false/' "$T/b.yaml" >"$T/b-any.yaml"
test_expect_code 1 "require_pdc false: b reads the lease there" \
	sync-role -c "$T/b-any.yaml" promote
test_grep "... and is refused by a's" "the lease is held by 'a' \(fence 5\)" "$T/err"
test_expect_code 0 "require_pdc false: promote -f b" \
	sync-role -c "$T/b-any.yaml" promote -f
test_expect_code 0 "require_pdc false: show" sync-role -c "$T/b-any.yaml"
test_no_grep "... names no DC" '^dc:' "$T/out"

pdc_owner "$NTDS1" || fail "move the PDC emulator role back to DC1"
test_expect_code 1 "back on the PDC emulator: a has lost the lease" \
	sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 6" >"$T/want"
test_cmp "... to b" "$T/want" "$T/err"
test_expect_code 0 "demote b with the check on" sync-role $Bs demote

# Only AD has a PDC emulator.
cat >"$T/ol.yaml" <<EOF
state_dir: $T/state-ol
connectors:
  ol:
    type: ldap
    url: ldaps://127.0.0.1
    base_dn: dc=example,dc=org
role:
  server: ol
  lease:
    ldap:
      connector: ol
      dn: cn=sync-lease,dc=example,dc=org
      require_pdc: true
EOF
test_expect_code 2 "require_pdc on an ldap connector: refused" \
	sync-role -c "$T/ol.yaml"
echo "sync-role: $T/ol.yaml:13:20: 'require_pdc' applies to an ad connector; 'ol' is of type ldap" >"$T/want"
test_cmp "... saying why" "$T/want" "$T/err"

# --- no Write Property on description
test_expect_code 2 "an account without the right cannot promote" \
	sync-role -c "$T/c.yaml" promote
test_grep "insufficient access named" \
	"^sync-role: ad: modifying lease entry '$LEASE': Insufficient access \(50\)" "$T/err"

# --- races
role_races 20 150 "on Samba AD"

done_testing
