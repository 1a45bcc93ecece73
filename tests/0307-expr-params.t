#!/bin/sh
# Expression parameters (%Name%) in a config: each connector's
# "parameters" key, and the defaults Entra Connect provides, derived from
# the first base_dn (%Domain.LDAP%, %Domain.FQDN%, %Forest.*%) and the
# connector's name (%Connector.ID%).  Before, every parameter was unknown
# to sync-diff, so that a documented rule such as
# ReplaceChars([givenName],%ReplaceString%) could not be used.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$T" || bail "no $T"

# conf PARAMS ATTRS: the diff tests' config with PARAMS (lines) after the
# ad connector's base_dn and ATTRS (lines) after the users flow's mail.
conf() {
	awk -v p="$1" -v a="$2" '{ print }
	$0 == "    base_dn: DC=example,DC=com" && p != "" { print p }
	$0 == "      mail: '"'"'[mail]'"'"'" && a != "" { print a }' \
	    "$D/sync.yaml"
}

conf '    parameters:
      Domain.Netbios: EXAMPLE
      ReplaceString: "’:,Å:A,Ä:A,Ö:O,å:a,ä:a,ö:o"' \
'      department: '"'"'%Domain.FQDN% & "|" & %Domain.LDAP% & "|" & %Forest.FQDN% & "|" & %Forest.LDAP%'"'"'
      companyName: '"'"'%domain.netbios% & "/" & %Connector.ID% & "|" & %DomainFQDN%'"'"'
      jobTitle: '"'"'ReplaceChars("Räksmörgås",%ReplaceString%)'"'"'' >p.yaml
test_expect_code 1 "parameters and derived defaults in flows" \
	sync-diff -c p.yaml -o plan.json "$D/ad.snap" "$D/entra.snap"
test_grep "... %Domain.FQDN%, %Domain.LDAP%, %Forest.*% from base_dn" \
	'^\{"anchor":"u-alice",.*"department":\{"new":\["example\.com\|DC=example,DC=com\|example\.com\|DC=example,DC=com"\]' plan.json
test_grep "... %Domain.Netbios% from parameters (any case), %Connector.ID% the name, Cloud Sync's %DomainFQDN%" \
	'^\{"anchor":"u-alice",.*"companyName":\{"new":\["EXAMPLE/ad\|example\.com"\]' plan.json
test_grep "... Microsoft's %ReplaceString% example" \
	'^\{"anchor":"u-alice",.*"jobTitle":\{"new":\["Raksmorgas"\]' plan.json

conf '    parameters: { Domain.FQDN: corp.example, Forest.LDAP: "DC=root,DC=example" }' \
'      department: '"'"'%Domain.FQDN% & "|" & %Forest.LDAP% & "|" & %Domain.LDAP%'"'"'' >o.yaml
test_expect_code 1 "a parameter overrides a derived one" \
	sync-diff -c o.yaml -o plan.json "$D/ad.snap" "$D/entra.snap"
test_grep "... and the others keep theirs" \
	'^\{"anchor":"u-alice",.*"department":\{"new":\["corp\.example\|DC=root,DC=example\|DC=example,DC=com"\]' plan.json

conf '' '      department: '"'"'%Forest.Netbios%'"'"'' >u.yaml
test_expect_code 2 "a parameter no one set" \
	sync-diff -c u.yaml -o plan.json "$D/ad.snap" "$D/entra.snap"
test_grep "... is an error naming it, for each object" \
	'^\{"anchor":"u-alice",.*"op":"error",.*unknown parameter .%Forest\.Netbios%' plan.json

conf '    parameters: [ a ]' '' >bad1.yaml
test_expect_code 2 "parameters must be a mapping" sync-import -c bad1.yaml ad
test_grep "... at its position" '^sync-import: bad1\.yaml:7:17: ' "$T/err"

conf '    parameters: { "a b": x }' '' >bad2.yaml
test_expect_code 2 "a parameter name with a space" sync-import -c bad2.yaml ad
echo "sync-import: bad2.yaml:7:19: invalid parameter name 'a b' (letters, digits, '.', '_' and '-' only)" >want
test_cmp "... is refused at its position" want "$T/err"

conf '    parameters: { a: [ x ] }' '' >bad3.yaml
test_expect_code 2 "a parameter that is a list" sync-import -c bad3.yaml ad
echo "sync-import: bad3.yaml:7:22: parameter 'a' must be a string, not a list" >want
test_cmp "... is refused at its position" want "$T/err"

done_testing
