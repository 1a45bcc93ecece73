#!/bin/sh
# sync-diff: every operation, soft matches and their conflicts, cloud-only
# objects left alone, the three views, exit codes.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"

test_expect_code 1 "changes: exit 1" \
	sync-diff -c sync.yaml ad.snap entra.snap
test_cmp "the change set" ops.json "$T/out"
echo "sync-diff: 2 to add, 3 to update, 3 to delete, 0 to move, 0 to rename, 4 conflicts, 0 errors; deletion threshold 500 not exceeded" >"$T/want.err"
test_cmp "the summary line on stderr" "$T/want.err" "$T/err"

# What each line says, one property at a time (jq-like checks in grep).
cp "$T/out" "$T/plan"
test_grep "add: a new user, anchor stamped, create-only flow" \
	'^\{"anchor":"u-bob","attrs":\{"accountEnabled":\{"new":\["false"\]\}.*"onPremisesImmutableId":\{"new":\["u-bob"\]\},"usageLocation":\{"new":\["DE"\]\}.*"op":"add"' "$T/plan"
test_grep "update: old and new values" \
	'"anchor":"u-alice","attrs":\{"displayName":\{"new":\["Alice Liddell"\],"old":\["Alice"\]\}\},"flow":"users","id":"t-alice","join":"anchor","name":"alice@example.com","op":"update"' "$T/plan"
test_no_grep "create-only flow not applied to updates" \
	'"u-alice".*usageLocation' "$T/plan"
test_grep "delete: source object gone, old anchor carried" \
	'"anchor":"u-dave","attrs":\{"onPremisesImmutableId":\{"old":\["u-dave"\]\}\},"flow":"users","id":"t-dave","join":"anchor","name":"dave@example.com","op":"delete","reason":"deleted at the source"' "$T/plan"
test_grep "delete: source object out of scope (excluded OU)" \
	'"anchor":"u-eve".*"op":"delete","reason":"out of scope"' "$T/plan"
test_no_grep "scope filter: a critical system object is not synced" \
	'u-krbtgt' "$T/plan"
test_grep "soft match on UPN (case-insensitive) joins and stamps the anchor" \
	'"anchor":"u-frank".*"onPremisesImmutableId":\{"new":\["u-frank"\],"old":\[\]\}.*"id":"t-frank","join":"upn","name":"Frank@Example.com","op":"update"' "$T/plan"
test_grep "soft match with two candidates: a conflict, not a guess" \
	'"anchor":"u-grace","candidates":\["t-grace1","t-grace2"\],"flow":"users","join":"upn","name":"grace@example.com","op":"conflict"' "$T/plan"
test_grep "soft match on an object with another anchor: a conflict" \
	'"anchor":"u-heidi","candidates":\["t-heidi"\].*"op":"conflict","reason":"join rule .upn. matched a target object that already carries the anchor' "$T/plan"
test_grep "a target object claimed by two sources: conflict for each" \
	'"anchor":"u-pat1","candidates":\["t-pat"\].*"reason":"the target object is claimed by 2 source objects"' "$T/plan"
test_grep "... and for the other" \
	'"anchor":"u-pat2","candidates":\["t-pat"\].*"op":"conflict"' "$T/plan"
test_no_grep "the claimed target object gets no update" \
	'"id":"t-pat"' "$T/plan"
test_no_grep "a cloud-only object (no anchor) is left alone" \
	't-admin' "$T/plan"
test_grep "group members: out of scope and unknown DNs dropped, new user by anchor" \
	'"anchor":"g-all","attrs":\{"members":\{"add_anchors":\["u-bob"\],"add_names":\["bob@example.com"\],"remove":\["t-carol"\],"remove_names":\["carol@example.com"\]\}\}' "$T/plan"
test_grep "a new group containing a new user" \
	'"anchor":"g-new","attrs":\{.*"members":\{"add_anchors":\["u-bob"\],"add_names":\["bob@example.com"\]\}\},"flow":"groups","name":"New team","op":"add"' "$T/plan"
test_grep "header: counts, threshold, config digest, sources, target" \
	'^\{"config":"[0-9a-f]{64}","counts":\{"add":2,"conflict":4,"delete":3,"error":0,"move":0,"rename":0,"update":3\},"format":"sync-changeset","sources":\[\{"connector":"ad","file":"ad.snap","objects":12,"time":"2026-01-01T00:00:00Z"\}\],"target":\{"connector":"entra","file":"entra.snap","objects":11,"time":"2026-01-01T00:05:00Z"\},"threshold":\{"count":500,"deletes":3,"exceeded":false,"percent":null\},"version":1\}$' "$T/plan"

test_expect_code 1 "text view" sync-diff -f text -c sync.yaml ad.snap entra.snap
test_cmp "the text plan" ops.txt "$T/out"
test_expect_code 1 "csv view" sync-diff -f csv -c sync.yaml ad.snap entra.snap
test_cmp "the CSV" ops.csv "$T/out"

test_expect_code 1 "-o writes the file" \
	sync-diff -c sync.yaml -o "$T/plan.json" ad.snap entra.snap
test_cmp "-o: same bytes as stdout" ops.json "$T/plan.json"
test_expect_code 2 "unknown format" sync-diff -f yaml -c sync.yaml ad.snap entra.snap
test_expect_code 2 "a write error on stdout is an error" \
	sh -c 'sync-diff -c sync.yaml ad.snap entra.snap >/dev/full'
test_expect_code 2 "usage: one snapshot is not enough" sync-diff -c sync.yaml ad.snap
test_grep "usage line" '^usage: sync-diff \[-c config\]' "$T/err"

done_testing
