#!/bin/sh
# sync-diff -e over more than one object: a snapshot piped in whole (its
# header skipped, each object's attrs used, each result named by its
# anchor), several JSON objects, and no object at all.  Before, a snapshot
# line gave [] without a word and a second object was a parse error.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff

test_expect_code 0 "a whole snapshot: one result per object" \
	sync-diff -e 'UCase([displayName])' "$D/ad.snap"
python3 - "$D/ad.snap" >"$T/want" <<'PY'
import json, sys
for line in open(sys.argv[1]).read().splitlines()[1:]:
    o = json.loads(line)
    v = [s.upper() for s in o["attrs"].get("displayName", [])]
    print(json.dumps({"anchor": o["anchor"], "value": v}, separators=(",", ":"),
                     sort_keys=True, ensure_ascii=False))
PY
test_cmp "... named by anchor, from each object's attrs" "$T/want" "$T/out"

sed -n 2p "$D/ad.snap" >"$T/line.json"
test_expect_code 0 "one snapshot line" sync-diff -e '[sAMAccountName]' "$T/line.json"
python3 -c 'import json, sys; o = json.loads(open(sys.argv[1]).read())
print(json.dumps({"anchor": o["anchor"], "value": o["attrs"].get("sAMAccountName", [])}, separators=(",", ":"), sort_keys=True))' "$T/line.json" >"$T/want"
test_cmp "... its attrs, not the line's own keys" "$T/want" "$T/out"

printf '{"givenName":["Ada"]}\n{"givenName":["Bob"]}\n  {"sn": ["x"]}' >"$T/two.json"
test_expect_code 0 "several attribute objects" sync-diff -e 'UCase([givenName])' "$T/two.json"
printf '["ADA"]\n["BOB"]\n[]\n' >"$T/want"
test_cmp "... one result line each, in order" "$T/want" "$T/out"

printf '{"a":["1"]}\n{"a":["x"]}\n' >"$T/bad.json"
test_expect_code 2 "an error in the second object" sync-diff -e '[a] + 1' "$T/bad.json"
echo "sync-diff: $T/bad.json:2:1: expression: column 5: arithmetic: 'x' is not a number" >"$T/want"
test_cmp "... names that object's line" "$T/want" "$T/err"

printf '\n \n' >"$T/empty.json"
test_expect_code 2 "no object" sync-diff -e '"x"' "$T/empty.json"
echo "sync-diff: $T/empty.json: no object to evaluate the expression against" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"

printf '{"a":["1"]}\n{"a":' >"$T/cut.json"
test_expect_code 2 "a second object cut short" sync-diff -e '[a]' "$T/cut.json"
test_grep "... is an error at its line" "^sync-diff: $T/cut.json:2:[0-9]*: " "$T/err"

done_testing
