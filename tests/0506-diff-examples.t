#!/bin/sh
# The shipped rules (examples/ad-to-entra.yaml, Entra Connect's defaults;
# examples/openldap-to-entra.yaml) on recorded snapshots, their role
# sections, and the CI dry run that compares the plans of two rule sets.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
EX=$TOP/examples
cd "$D" || bail "no $D"
AD_URL=ldaps://dc.example.com AD_BASE=DC=example,DC=com
ENTRA_TENANT=example.onmicrosoft.com ENTRA_CLIENT_ID=1
SYNC_APP_ID=0123456789abcdef0123456789abcdef
LDAP_URL=ldap://ldap.example.org LDAP_BASE=dc=example,dc=org
UPN_SUFFIX=example.org
export AD_URL AD_BASE ENTRA_TENANT ENTRA_CLIENT_ID SYNC_APP_ID LDAP_URL \
	LDAP_BASE UPN_SUFFIX

test_expect_code 1 "ad-to-entra: changes" \
	sync-diff -f text -c "$EX/ad-to-entra.yaml" ex-ad.snap ex-entra.snap
test_cmp "ad-to-entra: the plan" ex-ad.txt "$T/out"
cp "$T/out" "$T/ad.txt"
test_no_grep "critical system objects, MSOL_ accounts, objects without sAMAccountName and replication victims are not synced" \
	'krbtgt|MSOL_|No Account|CNF:' "$T/ad.txt"
test_no_grep "distribution groups, with mail or without, are not synced: Graph cannot create them" \
	'Newsletter|Sales' "$T/ad.txt"
test_no_grep "proxyAddresses are not written: they are read-only in Graph" \
	'proxyAddresses' "$T/ad.txt"
test_grep "accountEnabled from userAccountControl" '^    accountEnabled: "false"$' "$T/ad.txt"
test_grep "displayName falls back to cn" '^    displayName: "Ann Smith"$' "$T/ad.txt"
test_grep "a security group with its members by name (the new one marked new)" \
	'^    members: \+new:"asmith@example.com" \+"jdoe@example.com"$' "$T/ad.txt"
test_no_grep "the cloud-only admin is untouched" 'Global Admin|000000000002"? \(' "$T/ad.txt"
test_grep "telephoneNumber flows to businessPhones, as in Entra Connect" \
	'^    businessPhones: "\+33 1 23 45 67 89"$' "$T/ad.txt"
test_grep "mobile flows to mobilePhone" '^    mobilePhone: "\+33 6 12 34 56 78"$' "$T/ad.txt"
test_no_grep "contacts are out of scope: Graph cannot write them" \
	'contact|Vendor' "$T/ad.txt"
test_grep "... and the plan counts none" \
	'^Plan: 2 to add, 1 to update, 1 to delete, .* 0 errors;' "$T/ad.txt"

test_expect_code 1 "openldap-to-entra: changes" \
	sync-diff -f text -c "$EX/openldap-to-entra.yaml" ex-ldap.snap ex-entra.snap
test_cmp "openldap-to-entra: the plan" ex-ldap.txt "$T/out"
test_grep "the percentage threshold trips" 'or 10% of 4 EXCEEDED\.$' "$T/out"
test_grep "openldap-to-entra: telephoneNumber to businessPhones" \
	'^    businessPhones: "\+44 20 7946 0000"$' "$T/out"
test_grep "... and mobile to mobilePhone" '^    mobilePhone: "\+44 7700 900000"$' "$T/out"

# Both examples have a role section: sync-role gets past the
# configuration to the lease (here on an LDAP server that is not there).
# The state directory is moved to $T.
mkdir -m 700 "$T/state"
for ex in openldap-to-entra ad-to-entra; do
	{ cat "$EX/$ex.yaml"; echo "state_dir: $T/state"; } >"$T/$ex.yaml"
	test_expect_code 2 "$ex: sync-role reads the role section" \
		env LDAP_URL=ldaps://127.0.0.1:1 AD_URL=ldaps://127.0.0.1:1 \
		sync-role -c "$T/$ex.yaml"
	test_no_grep "... it has one" "no 'role' section" "$T/err"
	test_grep "... and goes on to the lease" '^sync-role: lease: ' "$T/err"
done

sed 's/^      jobTitle: .*/      jobTitle: '"'"'IIF(IsPresent([title]), [title], "Staff")'"'"'/' \
	"$EX/ad-to-entra.yaml" >"$T/new.yaml"
test_expect_code 1 "ci-dry-run: the plans differ" \
	env SYNC_DIFF="$BIN/sync-diff" sh "$EX/ci-dry-run.sh" "$EX/ad-to-entra.yaml" \
	"$T/new.yaml" ex-ad.snap ex-entra.snap
sed -n '/^```diff$/,/^```$/p' "$T/out" >"$T/got"
cat >"$T/want" <<'X'
```diff
--- old
+++ new
@@ -3,6 +3,7 @@
     businessPhones: "+33 1 23 45 67 89"
     displayName: "Ann Smith"
     givenName: "Ann"
+    jobTitle: "Staff"
     mailNickname: "asmith"
     mobilePhone: "+33 6 12 34 56 78"
     onPremisesImmutableId: "AgICAgICAgICAgICAgICAg=="
```
X
test_cmp "ci-dry-run: the difference between the plans" "$T/want" "$T/got"
test_expect_code 0 "ci-dry-run: the same rules change nothing" \
	env SYNC_DIFF="$BIN/sync-diff" sh "$EX/ci-dry-run.sh" "$EX/ad-to-entra.yaml" \
	"$EX/ad-to-entra.yaml" ex-ad.snap ex-entra.snap
test_grep "and says so" '^The new rules change nothing in the plan\.$' "$T/out"
printf 'flows: [\n' >"$T/broken.yaml"
test_expect_code 2 "ci-dry-run: broken new rules: exit 2" \
	env SYNC_DIFF="$BIN/sync-diff" sh "$EX/ci-dry-run.sh" "$EX/ad-to-entra.yaml" \
	"$T/broken.yaml" ex-ad.snap ex-entra.snap
test_grep "with the position of the error" "^ci-dry-run.sh: with the new rules: .*broken.yaml:[0-9]+:[0-9]+: " "$T/err"

done_testing
