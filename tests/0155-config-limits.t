#!/bin/sh
# sync.conf at scale and on broken input: a mapping of 80,000 keys and a
# flow of 80,000 attributes load in linear time (each check of a new key
# against the earlier ones made them take 25 and 50 s); a duplicate among
# them is still found; an unterminated string is an error at its
# position that leaks nothing (the sanitizer build's LeakSanitizer).
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$T" || bail "no $T"

# Every run is bounded: a return to quadratic time fails (timeout: 124).
# sanitizer_clean FILE: no report of AddressSanitizer, LeakSanitizer or
# UBSan in FILE (the test suite also runs on the sanitizer build).
sanitizer_clean() {
	test_no_grep "$2" 'Sanitizer|runtime error' "$1"
}

{
	awk 'BEGIN { for (i = 0; i < 80000; i++) printf "k%05d: v\n", i }'
	echo 'connectors: {dir: {type: ldap, url: "ldapi:///", base_dn: "dc=x"}}'
} >keys.yaml
test_expect_code 2 "80,000 top-level keys: read in time, the first unknown one named" \
	timeout 10 sync-import -c keys.yaml dir
echo "sync-import: keys.yaml:1:1: unknown key 'k00000'" >want
test_cmp "... with its position" want "$T/err"

cp keys.yaml dupkeys.yaml
echo "k00000: again" >>dupkeys.yaml
test_expect_code 2 "80,002 keys, the last a duplicate of the first" \
	timeout 10 sync-import -c dupkeys.yaml dir
echo "sync-import: dupkeys.yaml:80002:1: duplicate key 'k00000' (first at line 1)" >want
test_cmp "... is refused at the duplicate" want "$T/err"

# attrs N [EXTRA]: a flow writing N attributes (a flow mapping on one
# line, to stay under the 1 MiB a config may have), then EXTRA.  The
# target is LDAP: a Graph target refuses attribute names it does not
# have (sync.conf(5)), and its extension names would not fit in 1 MiB.
attrs() {
	cat <<'YAML'
connectors:
  src: {type: ldap, url: 'ldap://src.example.org', base_dn: 'dc=src,dc=org'}
  dst: {type: ldap, url: 'ldap://dst.example.org', base_dn: 'dc=target,dc=org'}
flows:
  - name: people
    from: src.user
    to: dst.user
    anchor: {target: employeeNumber}
    dn: '"uid=" & [uid] & ",ou=" & [departmentNumber] & ",dc=target,dc=org"'
YAML
	awk -v n="$1" -v extra="$2" 'BEGIN {
		printf "    attributes: {"
		for (i = 0; i < n; i++)
			printf "%sa%05d: \"1\"", i ? ", " : "", i
		if (extra != "")
			printf ", %s", extra
		print "}"
	}'
}
attrs 80000 >attrs.yaml
test_expect_code 1 "a flow of 80,000 attributes: a diff in time" \
	timeout 10 sync-diff -c attrs.yaml -o plan.json "$D/src.snap" "$D/dst.snap"
echo "sync-diff: 1 to add, 1 to update, 0 to delete, 1 to move, 1 to rename, 0 conflicts, 0 errors; deletion threshold 500 not exceeded" >want
test_cmp "... with its summary" want "$T/err"
grep -c '"a79999":{"new":\["1"\]' plan.json >n
echo 4 >want
test_cmp "... the last attribute written for the 4 users added, updated, moved or renamed" want n

attrs 80000 'A00017: "2"' >dupattrs.yaml
test_expect_code 2 "80,001 attributes, the last the first's name in capitals" \
	timeout 10 sync-diff -c dupattrs.yaml "$D/src.snap" "$D/dst.snap"
echo "sync-diff: dupattrs.yaml:10:1040018: attribute 'A00017' has two flows" >want
test_cmp "... is refused at that attribute" want "$T/err"

# ------------------------------------------------------ unterminated input
printf 'a: '"'"'abc\n' >unterminated.yaml
test_expect_code 2 "an unterminated quoted string" \
	sync-diff -c unterminated.yaml "$D/ad.snap" "$D/entra.snap"
echo "sync-diff: unterminated.yaml:2:1: found unexpected end of stream while scanning a quoted scalar" >want
test_cmp "... named with file:line:column" want "$T/err"
sanitizer_clean "$T/err" "... and no leak (LeakSanitizer) or UB report"

printf 'connectors:\n  dir: {type: ldap, url: "ldapi:///\n' >unterminated2.yaml
test_expect_code 2 "an unterminated string inside a nested mapping" \
	sync-import -c unterminated2.yaml dir
test_grep "... named with file:line:column" \
	"^sync-import: unterminated2.yaml:3:1: found unexpected end of stream while scanning a quoted scalar$" "$T/err"
sanitizer_clean "$T/err" "... and no leak (LeakSanitizer) or UB report"

done_testing
