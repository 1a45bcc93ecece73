#!/bin/sh
# sync-diff with an LDAP target: DNs, moves and renames, member references
# as DNs compared parsed, members to be created referenced by anchor; and a
# directory compared with itself.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"

test_expect_code 1 "ldap to ldap: changes" sync-diff -c ldap.yaml src.snap dst.snap
test_cmp "the change set" ldap.json "$T/out"
cp "$T/out" "$T/plan"
test_grep "rename: same parent, new RDN" \
	'"anchor":"0002",.*"dn":"uid=bob,ou=people,dc=target,dc=org",.*"new_dn":"uid=bob2,ou=people,dc=target,dc=org","op":"rename"' "$T/plan"
test_grep "move: new parent" \
	'"anchor":"0003",.*"new_dn":"uid=carol,ou=staff,dc=target,dc=org","op":"move"' "$T/plan"
test_no_grep "DNs that differ only in case and spaces are the same DN" '"anchor":"0001"' "$T/plan"
test_grep "add: the DN from the flow's dn expression" \
	'"anchor":"0004",.*"dn":"uid=dan,ou=people,dc=target,dc=org","flow":"people","name":"uid=dan,ou=people,dc=target,dc=org","op":"add"' "$T/plan"
test_grep "member DNs compared parsed; the new member by anchor" \
	'"member":\{"add":\["uid=bob,ou=people,dc=target,dc=org"\],"add_anchors":\["0004"\],"add_names":\["uid=bob,ou=people,dc=target,dc=org","uid=dan,ou=people,dc=target,dc=org"\],"remove":\["uid=carol,ou=people,dc=target,dc=org"\],"remove_names":\["uid=carol,ou=people,dc=target,dc=org"\]\}' "$T/plan"
test_expect_code 1 "text view" sync-diff -f text -c ldap.yaml src.snap dst.snap
test_cmp "the text plan" ldap.txt "$T/out"

test_expect_code 0 "diff(a, a): exit 0" sync-diff -c same.yaml same.snap same.snap
test_grep "diff(a, a): all counts zero" \
	'"counts":\{"add":0,"conflict":0,"delete":0,"error":0,"move":0,"rename":0,"update":0\}' "$T/out"
test_cmp "diff(a, a): only the header" /dev/null "$(sed 1d "$T/out" >"$T/rest"; echo "$T/rest")"
test_expect_code 0 "diff(a, a) as text" sync-diff -f text -c same.yaml same.snap same.snap
echo "Plan: 0 to add, 0 to update, 0 to delete, 0 to move, 0 to rename, 0 conflicts, 0 errors; deletion threshold 500 not exceeded." >"$T/want"
test_cmp "diff(a, a): the text plan says nothing to do" "$T/want" "$T/out"
test_expect_code 0 "diff(a, a) as csv" sync-diff -f csv -c same.yaml same.snap same.snap
printf 'op,type,name,dn,anchor,id,flow,join,attribute,old,new,added,removed,reason\r\n' >"$T/want"
test_cmp "diff(a, a): the CSV has its header row only" "$T/want" "$T/out"

done_testing
