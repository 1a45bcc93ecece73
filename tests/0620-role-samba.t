#!/bin/sh
# sync-role with the LDAP lease on a real Samba AD domain controller:
# the lease entry is a serviceConnectionPoint under CN=System with one
# description value; the two servers' accounts are ordinary domain users
# granted Write Property on description of that one object.  Promote,
# refusal, expiry, forced takeover, demote, racing rounds, and an
# account without the right.
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

# --- no Write Property on description
test_expect_code 2 "an account without the right cannot promote" \
	sync-role -c "$T/c.yaml" promote
test_grep "insufficient access named" \
	"^sync-role: ad: modifying lease entry '$LEASE': Insufficient access \(50\)" "$T/err"

# --- races
role_races 50 150 "on Samba AD"

done_testing
