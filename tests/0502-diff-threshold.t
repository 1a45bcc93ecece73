#!/bin/sh
# sync-diff: the deletion threshold, by count and by percentage of the
# target's objects, recorded in the header.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"

conf() {  # conf POLICY-LINES > file
	sed -e "s/@OOS@/delete/" -e "s/@MEMBER@//" scope.yaml.in
	printf 'policy:\n%s\n' "$1"
}
# empty-ad.snap has no users: the 4 users of ours in thr-entra.snap go, the
# 6 cloud-only ones stay; 4 deletes of 10 objects.
run() {  # run NAME POLICY
	conf "$2" >"$T/$1.yaml"
	test_expect_code 1 "$1: changes" \
		sync-diff -c "$T/$1.yaml" empty-ad.snap thr-entra.snap
	cp "$T/out" "$T/$1.json"
	cp "$T/err" "$T/$1.err"
}

run default '  delete_threshold: 500'
test_grep "4 deletes, cloud-only objects kept" '"counts":\{"add":0,"conflict":0,"delete":4,' "$T/default.json"
test_grep "default: 500, not exceeded" '"threshold":\{"count":500,"deletes":4,"exceeded":false,"percent":null\}' "$T/default.json"

run count3 '  delete_threshold: 3'
test_grep "count 3: exceeded" '"threshold":\{"count":3,"deletes":4,"exceeded":true,"percent":null\}' "$T/count3.json"
test_grep "the summary says so" 'deletion threshold 3 EXCEEDED$' "$T/count3.err"

run count4 '  delete_threshold: 4'
test_grep "count 4: not exceeded (more than N trips it)" '"exceeded":false' "$T/count4.json"

run pct30 '  delete_threshold: 0
  delete_threshold_percent: 30'
test_grep "30% of 10 objects: exceeded" '"threshold":\{"count":0,"deletes":4,"exceeded":true,"percent":30\}' "$T/pct30.json"
test_grep "summary with the percentage" 'deletion threshold 0 or 30% of 10 EXCEEDED$' "$T/pct30.err"

run pct40 '  delete_threshold: 500
  delete_threshold_percent: 40'
test_grep "40% of 10 objects: not exceeded" '"threshold":\{"count":500,"deletes":4,"exceeded":false,"percent":40\}' "$T/pct40.json"

conf '  delete_threshold: -1' >"$T/bad.yaml"
test_expect_code 2 "a negative threshold is refused" \
	sync-diff -c "$T/bad.yaml" empty-ad.snap thr-entra.snap
conf '  delete_treshold: 5' >"$T/typo.yaml"
test_expect_code 2 "an unknown policy key is refused" \
	sync-diff -c "$T/typo.yaml" empty-ad.snap thr-entra.snap
test_grep "with its position" "typo.yaml:[0-9]+:[0-9]+: .*delete_treshold" "$T/err"

done_testing
