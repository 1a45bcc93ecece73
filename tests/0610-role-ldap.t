#!/bin/sh
# sync-role with the LDAP lease on a real slapd: the lease entry (a
# device with one description value) written by compare-and-swap, by
# two delegated accounts that may write only that attribute of that
# entry.  Refusal, forced takeover, demote, the active server killed,
# 20 racing rounds (ROLE_ROUNDS), and the failures: no entry, no value, two values, no
# write access, the server gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/role.sh"

slapd_start
B=$SLAPD_BASE
LEASE="cn=sync-lease,$B"

# The servers' accounts, and an ACL that lets them write the lease
# attribute of the lease entry and nothing else.
for s in a b c; do
	(umask 077 && new_password | tr -d '\n' >"$T/$s.pw")
done
cat >"$T/accounts.ldif" <<EOF
dn: cn=sync-a,$B
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: sync-a
userPassword: $(cat "$T/a.pw")

dn: cn=sync-b,$B
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: sync-b
userPassword: $(cat "$T/b.pw")

dn: cn=sync-c,$B
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: sync-c
userPassword: $(cat "$T/c.pw")
EOF
slapd_add "$T/accounts.ldif" || fail "add the servers' accounts"
cat >"$T/acl.ldif" <<EOF
dn: olcDatabase={1}mdb,cn=config
changetype: modify
add: olcAccess
olcAccess: {1}to dn.base="$LEASE" attrs=description by dn.exact="cn=sync-a,$B" write by dn.exact="cn=sync-b,$B" write by users read
EOF
slapd_modify "$T/acl.ldif" || fail "ACL: the accounts may write the lease"

for s in a b c; do
	cat >"$T/$s.yaml" <<EOF
state_dir: $T/state-$s
connectors:
  dir:
    type: ldap
    url: $SLAPD_LDAPS_URL
    ca_file: $SLAPD_CA
    bind_dn: cn=sync-$s,$B
    password_file: $T/$s.pw
    base_dn: $B
role:
  server: $s
  duration: \${ROLE_DURATION}
  lease:
    ldap:
      connector: dir
      dn: $LEASE
EOF
done
ROLE_DURATION=60
export ROLE_DURATION
A="-c $T/a.yaml"
Bs="-c $T/b.yaml"

# lease_value: the value as the directory holds it (all values, one a line)
lease_value() {
	slapd_search -b "$LEASE" -s base description | sed -n 's/^description: //p'
}
lease_field() {
	lease_value | sed -n "s/.*$1=\([^;]*\).*/\1/p"
}

# --- the entry must exist with one value
test_expect_code 2 "no lease entry: an error" sync-role $A promote
echo "sync-role: dir: lease entry '$LEASE' does not exist (create it with description: holder=;fence=0;expires=0, see sync-role(1)): No such object (32); matched DN '$B'" >"$T/want"
test_cmp "the message says how to create it" "$T/want" "$T/err"
cat >"$T/lease.ldif" <<EOF
dn: $LEASE
objectClass: device
cn: sync-lease
EOF
slapd_add "$T/lease.ldif" || fail "add the lease entry without a value"
test_expect_code 2 "lease entry without a value: an error" sync-role $A promote
test_grep "the message says what to initialise it with" \
	"has 0 values of 'description', not one \(initialise it with description: holder=;fence=0;expires=0" "$T/err"
cat >"$T/init.ldif" <<EOF
dn: $LEASE
changetype: modify
add: description
description: holder=;fence=0;expires=0
EOF
slapd_modify "$T/init.ldif" || fail "initialise the lease value"

# --- a new server, promote, refusal
test_expect_code 1 "a new server is staging" sync-role $A
cat >"$T/want" <<EOF
server: a
role: staging
local: staging, fence 0
lease: free, fence 0
EOF
test_cmp "show reads the lease from the directory" "$T/want" "$T/out"
test_expect_code 0 "promote a" sync-role $A promote
test_grep "fence 1" '^sync-role: a is active, fence 1, ' "$T/err"
test_expect_code 0 "a is active" sync-role $A check
test_expect_code 1 "promote b: refused" sync-role $Bs promote
test_grep "refusal names the holder" "the lease is held by 'a' \(fence 1\)" "$T/err"
echo a,1 >"$T/want"
echo "$(lease_field holder),$(lease_field fence)" >"$T/got"
test_cmp "the directory holds a's lease" "$T/want" "$T/got"

# --- forced takeover
test_expect_code 0 "promote -f b" sync-role $Bs promote -f
test_grep "forced" "^sync-role: took the unexpired lease from 'a'" "$T/err"
test_expect_code 1 "a's next check fails" sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 2" >"$T/want"
test_cmp "a is told who holds it" "$T/want" "$T/err"
test_expect_code 0 "b is active" sync-role $Bs check

# --- demote
test_expect_code 0 "demote b" sync-role $Bs demote
echo "holder=;fence=2;" >"$T/want"
lease_value | sed 's/expires=.*//' >"$T/got"
test_cmp "released in the directory, fence kept" "$T/want" "$T/got"
test_expect_code 0 "a promotes at once" sync-role $A promote
test_grep "fence 3" '^sync-role: a is active, fence 3, ' "$T/err"

# --- no write access: the account that was not granted it
test_expect_code 2 "an account without write access cannot promote" \
	sync-role -c "$T/c.yaml" promote -f
test_grep "insufficient access, with the entry" \
	"^sync-role: dir: modifying lease entry '$LEASE': Insufficient access \(50\)" "$T/err"

# --- the active server killed
sync-role $A demote 2>/dev/null
role_killed
test_grep "fence 5" '^sync-role: b is active, fence 5, ' "$T/err"
test_expect_code 1 "a finds it lost the lease" sync-role $A check
sync-role $Bs demote 2>/dev/null
ROLE_DURATION=60

# --- races
role_races 20 100 "on slapd"

# --- two values: refused rather than guessed
sync-role $A promote 2>/dev/null
cat >"$T/two.ldif" <<EOF
dn: $LEASE
changetype: modify
add: description
description: holder=x;fence=99;expires=0
EOF
slapd_modify "$T/two.ldif" || fail "add a second value"
test_expect_code 2 "two values: an error" sync-role $A check
test_grep "two values named" "has 2 values of 'description', not one" "$T/err"
cat >"$T/one.ldif" <<EOF
dn: $LEASE
changetype: modify
delete: description
description: holder=x;fence=99;expires=0
EOF
slapd_modify "$T/one.ldif" || fail "remove the second value"
test_expect_code 0 "one value again: a is active" sync-role $A check

# --- the directory gone: an error (exit 2), not "not active"
slapd_stop
test_expect_code 2 "check with the directory down: exit 2" sync-role $A check
test_grep "connection error named" "^sync-role: lease: dir: .*Can't contact LDAP server" "$T/err"

done_testing
