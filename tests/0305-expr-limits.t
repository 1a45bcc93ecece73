#!/bin/sh
# The expression language at scale: a chain of 60,000 terms is parsed
# and evaluated in linear time and gives its value (the column of every
# node was counted from the start of the text, and the chain was a tree
# 60,000 deep that evaluation refused); nesting stays capped at 200
# levels, with an error at its position rather than a crash.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$T" || bail "no $T"
echo '{"givenName":["Ada"]}' >ada.json

# terms N SEP TERM: TERM repeated N times, SEP between.
terms() {
	awk -v n="$1" -v sep="$2" -v t="$3" 'BEGIN {
		for (i = 0; i < n; i++)
			printf "%s%s", i ? sep : "", t
	}'
}

test_expect_code 0 "60,000 terms added" \
	timeout 10 sync-diff -e "$(terms 60000 + 1)" ada.json
echo '["60000"]' >want
test_cmp "... give 60000" want "$T/out"

test_expect_code 0 "60,000 terms concatenated" \
	timeout 10 sync-diff -e "$(terms 60000 '&' 1)" ada.json
printf '["%s"]\n' "$(terms 60000 '' 1)" >want
test_cmp "... give 60,000 ones" want "$T/out"

test_expect_code 0 "a chain of 6,000 functions of an attribute" \
	timeout 10 sync-diff -e "$(terms 6000 '&' 'UCase([givenName])')" ada.json
printf '["%s"]\n' "$(terms 6000 '' ADA)" >want
test_cmp "... gives ADA 6,000 times" want "$T/out"

test_expect_code 2 "a type error at the end of a long chain" \
	timeout 10 sync-diff -e "$(terms 50000 + 1)+\"x\"" ada.json
echo "sync-diff: expression: column 100000: arithmetic: 'x' is not a number" >want
test_cmp "... names the column of its operator" want "$T/err"

test_expect_code 2 "60,000 nested parentheses" \
	timeout 10 sync-diff -e "$(terms 60000 '' '(')1$(terms 60000 '' ')')" ada.json
echo "sync-diff: expression: column 201: expression nested too deeply" >want
test_cmp "... a clean error at the 201st level" want "$T/err"
test_no_grep "... and no sanitizer report" 'Sanitizer|runtime error' "$T/err"

test_expect_code 2 "10,000 nested calls" \
	timeout 10 sync-diff -e "$(terms 10000 '' 'UCase(')1$(terms 10000 '' ')')" ada.json
echo "sync-diff: expression: column 1201: expression nested too deeply" >want
test_cmp "... the same cap" want "$T/err"

# In a config file (1 MiB at most), past the 128 KiB of one argument.
# conf FILE: the diff tests' config with a user attribute (a directory
# extension, so that Graph has it) whose
# expression is in FILE (after "mail", on line 29).
conf() {
	awk -v f="$1" '{ print } $0 == "      mail: '"'"'[mail]'"'"'" {
		getline e <f
		printf "      extension_x_test: '"'"'%s'"'"'\n", e }' "$D/sync.yaml"
}
terms 60000 + 'Len([mail])' >long.expr
conf long.expr >long.yaml
test_expect_code 1 "a flow attribute of 60,000 terms over an attribute" \
	timeout 10 sync-diff -c long.yaml -o plan.json "$D/ad.snap" "$D/entra.snap"
test_grep "... evaluated: 60,000 times the length of alice@example.com" \
	'^\{"anchor":"u-alice",.*"extension_x_test":\{"new":\["1020000"\]' plan.json

{ terms 100000 '' '('; printf 1; terms 100000 '' ')'; echo; } >deep.expr
conf deep.expr >deep.yaml
test_expect_code 2 "100,000 nested parentheses in a config" \
	timeout 10 sync-diff -c deep.yaml "$D/ad.snap" "$D/entra.snap"
echo "sync-diff: deep.yaml:29:226: attribute flow: expression nested too deeply" >want
test_cmp "... refused at file:line:column" want "$T/err"
test_no_grep "... and no sanitizer report" 'Sanitizer|runtime error' "$T/err"

done_testing
