#!/bin/sh
# The Samba AD fixture: provisions (from the cached template), answers on
# LDAPS and StartTLS with our CA, holds the seed incl. the 5,000-member
# group with ranged retrieval, and leaves nothing behind.
. "$(dirname "$0")/lib.sh"

# 1. a bare domain, seeded live over LDAPS
samba_start
note "bare samba on $SAMBA_IP started in $SAMBA_START_MS ms (template $SAMBA_TEMPLATE_MS ms)"
ok "password file is mode 0600" test "$(stat -c %a "$SAMBA_PWFILE")" = 600
t0=$(date +%s%N)
ok "samba_seed over LDAPS" samba_seed
note "samba_seed took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
test_expect_code 0 "live-seeded users are there" \
	samba_search -b "OU=People,$SAMBA_BASE" -s one "(objectClass=user)" 1.1
printf '9\n' >"$T/expect"; grep -c '^dn' "$T/out" >"$T/got"
test_cmp "9 users in OU=People" "$T/expect" "$T/got"
bare_pid=$SAMBA_PID bare_ip=$SAMBA_IP
samba_stop
ok "bare samba is gone after samba_stop" sh -c "! kill -0 $bare_pid 2>/dev/null"
ok "its loopback address was removed" sh -c "! ip -o addr show dev lo | grep -q -F ' $bare_ip/'"

# 2. the seeded template
samba_start --seeded
note "seeded samba on $SAMBA_IP started in $SAMBA_START_MS ms (template $SAMBA_TEMPLATE_MS ms)"

test_expect_code 0 "ldaps:// with CA verification" \
	env LDAPTLS_CACERT="$SAMBA_CA" LDAPTLS_REQCERT=demand \
	ldapsearch -x -H "$SAMBA_LDAPS_URL" -D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" \
	-s base -b "" dnsHostName defaultNamingContext
test_grep "rootDSE names the domain" "^defaultNamingContext: $SAMBA_BASE\$" "$T/out"
test_grep "rootDSE names the host" "^dnsHostName: $SAMBA_HOST\$" "$T/out"

test_expect_code 0 "StartTLS (-ZZ) with CA verification" \
	env LDAPTLS_CACERT="$SAMBA_CA" LDAPTLS_REQCERT=demand \
	ldapsearch -ZZ -x -H "$SAMBA_URL" -D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" \
	-s base -b "$SAMBA_BASE" 1.1

test_expect_code 255 "ldaps:// without the CA fails verification" \
	env LDAPTLS_CACERT=/dev/null LDAPTLS_REQCERT=demand \
	ldapsearch -x -H "$SAMBA_LDAPS_URL" -D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" -s base -b "" 1.1

test_expect_code 8 "simple bind without TLS is refused (strongAuthRequired)" \
	ldapsearch -x -H "$SAMBA_URL" -D "$SAMBA_BINDDN" -y "$SAMBA_PWFILE" -s base -b "" 1.1

expect_count() { # expect_count N DESC BASE SCOPE FILTER
	samba_search -b "$3" -s "$4" "$5" 1.1 >"$T/count.ldif" 2>"$T/count.err"
	echo "$1" >"$T/count.expect"
	grep -c '^dn' "$T/count.ldif" >"$T/count.got"
	test_cmp "$2" "$T/count.expect" "$T/count.got"
}
expect_count 9 "OU=People: 9 users" "OU=People,$SAMBA_BASE" one "(objectClass=user)"
expect_count 1 "one of them disabled (UAC 514)" "OU=People,$SAMBA_BASE" one \
	"(userAccountControl:1.2.840.113556.1.4.803:=2)"
expect_count 2 "OU=Contacts: 2 contacts" "OU=Contacts,$SAMBA_BASE" one "(objectClass=contact)"
expect_count 2 "OU=Excluded: 2 users" "OU=Excluded,$SAMBA_BASE" one "(objectClass=user)"
expect_count 5 "OU=Groups: 5 groups" "OU=Groups,$SAMBA_BASE" one "(objectClass=group)"
expect_count 5000 "OU=Bulk: 5000 contacts" "OU=Bulk,$SAMBA_BASE" one "(objectClass=contact)"

for dn in 'CN=Smith\, John,OU=People,DC=samdom,DC=test' \
	'CN=\"Quoted\" Name,OU=People,DC=samdom,DC=test' \
	'CN=Back\\slash User,OU=People,DC=samdom,DC=test' \
	'CN=\ Leading and Trailing\ ,OU=People,DC=samdom,DC=test' \
	'CN=C\+\+ Developer,OU=People,DC=samdom,DC=test' \
	'CN=Émilie Straße-Ωmega,OU=People,DC=samdom,DC=test' \
	'CN=\#hash\; \<angle\> user,OU=People,DC=samdom,DC=test' \
	'CN=R&D\, Europe,OU=Groups,DC=samdom,DC=test'; do
	test_expect_code 0 "base search: $dn" samba_search -s base -b "$dn" 1.1
done

test_expect_code 0 "alice: GUID, SID, multi-valued and binary attributes" \
	samba_search -s base -b "CN=Alice Smith,OU=People,$SAMBA_BASE" \
	objectGUID objectSid proxyAddresses otherMailbox jpegPhoto thumbnailPhoto userAccountControl
test_grep "objectGUID is binary" '^objectGUID:: ' "$T/out"
test_grep "objectSid is binary" '^objectSid:: AQUAAAAAAAUVAAAA' "$T/out"
printf '3\n' >"$T/expect"; grep -c '^proxyAddresses:' "$T/out" >"$T/got"
test_cmp "3 proxyAddresses" "$T/expect" "$T/got"
printf '2\n' >"$T/expect"; grep -c '^otherMailbox:' "$T/out" >"$T/got"
test_cmp "2 otherMailbox" "$T/expect" "$T/got"
test_grep "jpegPhoto" '^jpegPhoto:: /9j/' "$T/out"
test_grep "thumbnailPhoto" '^thumbnailPhoto:: /9j/' "$T/out"
test_grep "enabled (UAC 512)" '^userAccountControl: 512$' "$T/out"

big="CN=Big Group,OU=Groups,$SAMBA_BASE"
test_expect_code 0 "big group: plain member" samba_search -s base -b "$big" '(objectClass=*)' member
printf '5000\n' >"$T/expect"; grep -c '^member:' "$T/out" >"$T/got"
test_cmp "Samba 4.17 returns all 5000 values of plain member (no 1500 cut)" "$T/expect" "$T/got"

test_expect_code 0 "big group: member;range=0-1499" samba_search -s base -b "$big" '(objectClass=*)' 'member;range=0-1499'
printf '1500\n' >"$T/expect"; grep -c '^member;range=0-1499:' "$T/out" >"$T/got"
test_cmp "window 0-1499 gives 1500 values named member;range=0-1499" "$T/expect" "$T/got"

test_expect_code 0 "big group: member;range=4500-*" samba_search -s base -b "$big" '(objectClass=*)' 'member;range=4500-*'
printf '500\n' >"$T/expect"; grep -c '^member;range=4500-\*:' "$T/out" >"$T/got"
test_cmp "last window 4500-* gives 500 values named member;range=4500-*" "$T/expect" "$T/got"

# stop / kill leave nothing behind
pid=$SAMBA_PID ip=$SAMBA_IP dir=$SAMBA_DIR
samba_kill
ok "samba_kill: process is gone" sh -c "! kill -0 $pid 2>/dev/null"
ok "no process left running from $dir" test -z "$(_lib_procs_in "$dir")"

# a child test that ends with samba running leaves nothing behind
cat >"$T/child.t" <<'EOF'
. "$TOP/tests/lib.sh"
samba_start
echo "$SAMBA_PID $SAMBA_IP $T" >"$PARENT_T/child.info"
fail "deliberate failure"
done_testing
EOF
cp "$T/child.t" "$TOP/tests/.0110-child.$$.t"
at_exit "rm -f '$TOP/tests/.0110-child.$$.t'"
test_expect_code 1 "a failing child test exits 1" env PARENT_T="$T" sh "$TOP/tests/.0110-child.$$.t"
read -r cpid cip cT <"$T/child.info"
ok "child's samba was stopped" sh -c "! kill -0 $cpid 2>/dev/null"
ok "child's address was removed" sh -c "! ip -o addr show dev lo | grep -q -F ' $cip/'"
ok "child's scratch dir was removed" test ! -e "$cT"

done_testing
