#!/bin/sh
# The slapd fixture: starts, answers on ldap/ldaps/ldapi/StartTLS, holds the
# seed, and leaves nothing behind.
. "$(dirname "$0")/lib.sh"

slapd_start
note "slapd started in $SLAPD_START_MS ms: $SLAPD_URL $SLAPD_LDAPS_URL $SLAPD_LDAPI_URL"

ok "password file is mode 0600" test "$(stat -c %a "$SLAPD_PWFILE")" = 600

test_expect_code 0 "simple bind as root DN over ldap://" \
	ldapwhoami -x -H "$SLAPD_URL" -D "$SLAPD_ROOTDN" -y "$SLAPD_PWFILE"
test_grep "whoami names the root DN" "^dn:cn=admin,dc=example,dc=org\$" "$T/out"

test_expect_code 0 "ldaps:// with CA verification" \
	env LDAPTLS_CACERT="$SLAPD_CA" LDAPTLS_REQCERT=demand \
	ldapwhoami -x -H "$SLAPD_LDAPS_URL" -D "$SLAPD_ROOTDN" -y "$SLAPD_PWFILE"

test_expect_code 0 "StartTLS (-ZZ) with CA verification" \
	env LDAPTLS_CACERT="$SLAPD_CA" LDAPTLS_REQCERT=demand \
	ldapwhoami -ZZ -x -H "$SLAPD_URL" -D "$SLAPD_ROOTDN" -y "$SLAPD_PWFILE"

test_expect_code 0 "server certificate SAN" \
	openssl x509 -noout -ext subjectAltName -in "$SLAPD_DIR/server.pem"
test_grep "SAN has IP:127.0.0.1 and DNS:localhost" "IP Address:127.0.0.1, DNS:localhost" "$T/out"

# without the CA the certificate must be rejected
test_expect_code 255 "ldaps:// without the CA fails verification" \
	env LDAPTLS_CACERT=/dev/null LDAPTLS_REQCERT=demand \
	ldapwhoami -x -H "$SLAPD_LDAPS_URL" -D "$SLAPD_ROOTDN" -y "$SLAPD_PWFILE"

test_expect_code 0 "SASL EXTERNAL over ldapi" \
	ldapwhoami -Q -Y EXTERNAL -H "$SLAPD_LDAPI_URL"
test_grep "EXTERNAL maps to the root DN" "^dn:cn=admin,dc=example,dc=org\$" "$T/out"

test_expect_code 0 "root DN can read cn=config" \
	ldapsearch -x -H "$SLAPD_URL" -D "$SLAPD_ROOTDN" -y "$SLAPD_PWFILE" -LLL \
	-b cn=module{0},cn=config -s base olcModuleLoad
for m in back_mdb syncprov memberof accesslog; do
	test_grep "module $m loaded" "^olcModuleLoad: \\{[0-9]\\}$m\$" "$T/out"
done

# overlays can be configured through cn=config
ok "slapd_overlay syncprov" slapd_overlay syncprov
ok "slapd_overlay memberof" slapd_overlay memberof
test_expect_code 0 "overlays are in cn=config" \
	slapd_search -b 'olcDatabase={1}mdb,cn=config' -s one '(objectClass=olcOverlayConfig)' olcOverlay
test_grep "syncprov overlay present" '^olcOverlay: \{0\}syncprov$' "$T/out"
test_grep "memberof overlay present" '^olcOverlay: \{1\}memberof$' "$T/out"

# seed
t0=$(date +%s%N)
ok "slapd_seed" slapd_seed
ok "slapd_seed_big" slapd_seed_big
note "seeding took $(( ($(date +%s%N) - t0) / 1000000 )) ms"

count() { # count OUTFILE BASE FILTER: number of entries
	slapd_search -b "$2" "$3" 1.1 >"$T/count.ldif" 2>"$T/count.err"
	grep -c '^dn' "$T/count.ldif" >"$1"
}
expect_count() { # expect_count N DESC BASE FILTER
	echo "$1" >"$T/count.expect"
	count "$T/count.got" "$3" "$4"
	test_cmp "$2" "$T/count.expect" "$T/count.got"
}
expect_count 12 "ou=People: 11 users + the OU" "ou=People,$SLAPD_BASE" "(objectClass=*)"
expect_count 2 "ou=Contacts: 2 contacts" "ou=Contacts,$SLAPD_BASE" "(objectClass=inetOrgPerson)"
expect_count 2 "ou=Excluded: 2 users" "ou=Excluded,$SLAPD_BASE" "(objectClass=inetOrgPerson)"
expect_count 5 "ou=Groups: 5 groups" "ou=Groups,$SLAPD_BASE" "(objectClass=groupOfNames)"
expect_count 5000 "ou=Bulk: 5000 users" "ou=Bulk,$SLAPD_BASE" "(objectClass=inetOrgPerson)"
expect_count 5026 "whole tree" "$SLAPD_BASE" "(objectClass=*)"

# tricky DNs are found by their escaped forms
for dn in 'cn=Smith\, John,ou=People,dc=example,dc=org' \
	'cn=\"Quoted\" Name,ou=People,dc=example,dc=org' \
	'cn=Back\\slash User,ou=People,dc=example,dc=org' \
	'cn=\ Leading and Trailing\ ,ou=People,dc=example,dc=org' \
	'cn=C\+\+ Developer,ou=People,dc=example,dc=org' \
	'cn=Émilie Straße-Ωmega,ou=People,dc=example,dc=org' \
	'cn=\#hash\; \<angle\> user,ou=People,dc=example,dc=org' \
	'cn=Ann Lee+uid=ann,ou=People,dc=example,dc=org' \
	'cn=R&D\, Europe,ou=Groups,dc=example,dc=org'; do
	test_expect_code 0 "base search: $dn" slapd_search -s base -b "$dn" 1.1
done

test_expect_code 0 "alice: multi-valued mail and a jpegPhoto" \
	slapd_search -b "uid=alice,ou=People,$SLAPD_BASE" -s base mail jpegPhoto telephoneNumber
printf '3\n' >"$T/expect"; grep -c '^mail:' "$T/out" >"$T/got"
test_cmp "alice has 3 mail values" "$T/expect" "$T/got"
printf '2\n' >"$T/expect"; grep -c '^telephoneNumber:' "$T/out" >"$T/got"
test_cmp "alice has 2 telephoneNumber values" "$T/expect" "$T/got"
test_grep "jpegPhoto is base64 binary" '^jpegPhoto:: /9j/' "$T/out"

test_expect_code 0 "big group read" \
	slapd_search -b "cn=Big Group,ou=Groups,$SLAPD_BASE" -s base member
printf '5000\n' >"$T/expect"; grep -c '^member:' "$T/out" >"$T/got"
test_cmp "big group has 5000 members" "$T/expect" "$T/got"

test_expect_code 0 "memberof overlay maintains memberOf" \
	slapd_search -s base -b "uid=alice,ou=People,$SLAPD_BASE" memberOf
test_grep "alice is memberOf Staff" '^memberOf: cn=Staff,ou=Groups,dc=example,dc=org$' "$T/out"

# stop: process gone, ports closed
pid=$SLAPD_PID
slapd_stop
ok "slapd process is gone after slapd_stop" sh -c "! kill -0 $pid 2>/dev/null"
test_expect_code 255 "ldap:// no longer answers" \
	ldapsearch -x -H "$SLAPD_URL" -s base -b "" -o nettimeout=2

# kill -9 works too, and a fresh start gets new ports
slapd_start second
pid2=$SLAPD_PID
slapd_kill
ok "slapd_kill: process is gone" sh -c "! kill -0 $pid2 2>/dev/null"

# a child test script that starts slapd and fails must leave nothing behind
cat >"$T/child.t" <<'EOF'
. "$TOP/tests/lib.sh"
slapd_start
echo "$SLAPD_PID" >"$PARENT_T/child.pid"
echo "$T" >"$PARENT_T/child.T"
fail "deliberate failure"
done_testing
EOF
cp "$T/child.t" "$TOP/tests/.0100-child.$$.t"
at_exit "rm -f '$TOP/tests/.0100-child.$$.t'"
test_expect_code 1 "a failing child test exits 1" env PARENT_T="$T" sh "$TOP/tests/.0100-child.$$.t"
test_grep "child printed not ok" '^not ok 1 - deliberate failure$' "$T/out"
ok "child's slapd was stopped" sh -c "! kill -0 $(cat "$T/child.pid") 2>/dev/null"
ok "child's scratch dir was removed" test ! -e "$(cat "$T/child.T")"

done_testing
