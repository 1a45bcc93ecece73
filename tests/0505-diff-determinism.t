#!/bin/sh
# sync-diff: the same inputs give byte-identical output, whatever the
# number of threads; per-object evaluation errors are records; the -e
# mode still works.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"

for j in 1 2 3 8; do
	test_expect_code 1 "-j $j" sync-diff -j "$j" -c sync.yaml ad.snap entra.snap
	test_cmp "-j $j: byte-identical" ops.json "$T/out"
done
test_expect_code 1 "run again" sync-diff -c ldap.yaml src.snap dst.snap
cp "$T/out" "$T/one"
test_expect_code 1 "and again" sync-diff -c ldap.yaml src.snap dst.snap
test_cmp "two runs: byte-identical" "$T/one" "$T/out"
test_expect_code 1 "SOURCE_DATE_EPOCH does not matter" \
	env SOURCE_DATE_EPOCH=1 sync-diff -c ldap.yaml src.snap dst.snap
test_cmp "no current time in the change set" "$T/one" "$T/out"

# An expression that fails on one object is an "error" record; the plan
# is still written and the exit status says 2.
sed "s/displayName: '\[displayName\]'$/displayName: 'IIF([displayName]=\"Bob\",Error(\"no Bobs\"),[displayName])'/" \
	sync.yaml >"$T/err.yaml"
test_expect_code 2 "an evaluation error: exit 2" \
	sync-diff -c "$T/err.yaml" ad.snap entra.snap
test_grep "the error record" \
	'^\{"anchor":"u-bob","flow":"users","name":"bob@example.com","op":"error","reason":"no Bobs","source":"CN=Bob,OU=Staff,DC=example,DC=com","type":"user"\}$' "$T/out"
test_grep "the others are planned" '"anchor":"u-alice".*"op":"update"' "$T/out"
test_grep "stderr says why" "1 objects could not be evaluated" "$T/err"
test_no_grep "a member that cannot be evaluated is dropped" 'add_anchors' "$T/out"

# The expression mode (sync-expr(7)).
echo '{"givenName":["Ada"],"sn":["Lovelace"]}' >"$T/attrs.json"
test_expect_code 0 "sync-diff -e" sync-diff -e '[givenName] & " " & [sn]' "$T/attrs.json"
echo '["Ada Lovelace"]' >"$T/want"
test_cmp "sync-diff -e prints the values" "$T/want" "$T/out"

done_testing
