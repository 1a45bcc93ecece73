#!/bin/sh
# sync-export to a SCIM service, against the scimmy test server: the
# whole cycle (import the target, diff, export) with the server's state
# compared to the source; nothing to do the second time; updates,
# member adds and removals, deletes; objects the sync did not create
# untouched; a stale plan refused before any write; a change whose
# object moved while the run went on (412) failed as stale, not
# overwritten; the deletion threshold; a staging server that sends
# nothing; kill -9 in the middle of a run, then a re-run; --dry-run; a
# service without PATCH, written with PUT.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/scim.sh"

scim_start scim || { fail "the SCIM server starts"; done_testing; }
. "$TOP/tests/scim-export.sh"

check() {
	sx_check
	ok "$1" test $? -eq 0
	note_file "$T/check.out" 15
}
# cycle NAME: import the server, diff; the plan in $T/NAME.plan
cycle() {
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.app" app &&
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/src.snap" "$T/$1.app"
}
# json FILE EXPR: a Python expression over the JSON in FILE (as j)
json() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"
}

sx_conf 3 120
# An admin and a group that the sync did not create (no externalId).
scim_ctl /seed '{"users": [{"id": "c0ffee00-0000-4000-8000-000000000001", "userName": "admin@app.example", "displayName": "App Admin", "active": true}], "groups": [{"id": "c0ffee00-0000-4000-8000-000000000002", "displayName": "App Admins", "members": [{"value": "c0ffee00-0000-4000-8000-000000000001"}]}]}' >/dev/null ||
	fail "seed the server"
scim_ctl /state >"$T/state0.json"
json "$T/state0.json" '[(o["userName"] if "userName" in o else o["displayName"], o["meta"]["version"]) for o in j["users"] + j["groups"]]' >"$T/cloud0"

sx_gen "$T/src.snap" 20 3
test_expect_code 1 "a first plan has changes" cycle one

# ------------------------------------------------------------ staging
test_expect_code 1 "on a staging server sync-export refuses" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
scim_ctl /log >"$T/log.json"
json "$T/log.json" 'len([r for r in j if r["method"] != "GET" and not r.get("control")])' >"$T/n"
echo 0 >"$T/want"
test_cmp "... and the server served no write" "$T/want" "$T/n"

test_expect_code 0 "promote this server" sync-role -c "$T/sync.yaml" promote

# ------------------------------------------------------------ dry run
test_expect_code 0 "--dry-run prints the writes" \
	sync-export -n -c "$T/sync.yaml" "$T/one.plan"
grep -c '^POST /Users {' "$T/out" >"$T/n"
echo 20 >"$T/want"
test_cmp "... a POST for each of the 20 users" "$T/want" "$T/n"
test_grep "... with the enterprise extension and its schema" \
	'^POST /Users \{"active":true,"displayName":"Zo.* Müller 1","emails":\[\{"type":"work","value":"u1@mail.example.org"\}\],"externalId":"dXNlcg0001==","name":\{"familyName":"Zo.* Müller 1"\},"schemas":\["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"\],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":\{"department":"Dept u1"\},"userName":"u1@example.org"\}$' "$T/out"
test_grep "... members by PATCH add" \
	'^PATCH /Groups/%7Bnew-Z3JvdXA001%7D \{"Operations":\[\{"op":"add","path":"members","value":\[\{"value":"\{new-dXNlcg0001==\}"\}' "$T/out"
scim_ctl /log >"$T/log.json"
json "$T/log.json" 'len([r for r in j if r["method"] != "GET" and not r.get("control")])' >"$T/n"
echo 0 >"$T/want"
test_cmp "... and sends no write" "$T/want" "$T/n"

# ------------------------------------------------------------ the cycle
test_expect_code 0 "export the first plan" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... reports what it did" \
	'^sync-export: 23 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
check "... the server now holds the source, each object once"
ls "$T/state/journal/"*.jsonl >/dev/null 2>&1
ok "... with a journal in the state directory" test $? -eq 0
test_expect_code 0 "the next cycle has nothing to do (converges)" cycle two
test_expect_code 0 "re-running an applied plan" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... finds everything done (resume from the journal)" \
	'^sync-export: 0 applied, 0 already in place, 0 failed, 0 not applied \(conflicts and errors\) \(resumed\)$' "$T/err"

# ------------------------------------------------------------ updates
sx_gen "$T/src.snap" 20 3 v2
test_expect_code 1 "a rename, a new user, a member removed" cycle three
test_expect_code 0 "export it" sync-export -c "$T/sync.yaml" "$T/three.plan"
test_grep "... four changes" '^sync-export: 4 applied, 0 already in place, 0 failed' "$T/err"
scim_ctl /log >"$T/log.json"
json "$T/log.json" 'sorted(set(o["op"] + " " + o["path"].split("[")[0] + ("[value eq]" if "[" in o["path"] else "") for r in j if r["method"] == "PATCH" and r.get("status") in (200, 204) for o in r["body"]["Operations"]))' >"$T/ops"
echo "['add members', 'remove members[value eq]', 'replace displayName', 'replace name']" >"$T/want"
test_cmp "... by PATCH: replace, add members, remove with a value filter" "$T/want" "$T/ops"
json "$T/log.json" 'len([r for r in j if r["method"] in ("PATCH", "DELETE") and "if-match" not in r["headers"]])' >"$T/n"
echo 0 >"$T/want"
test_cmp "... every PATCH with If-Match" "$T/want" "$T/n"
check "... the server follows"
test_expect_code 0 "... and the next cycle has nothing to do" cycle three-b

# ------------------------------------------------------------ stale plan
sx_gen "$T/src.snap" 20 3
test_expect_code 1 "a plan that renames user 1 back" cycle four
scim_ctl /state >"$T/state.json"
uid1=$(json "$T/state.json" '[u["id"] for u in j["users"] if u.get("externalId") == "dXNlcg0001=="][0]')
test_expect_code 0 "change user 1 behind the plan's back" \
	test "$(scim_req PATCH "/Users/$uid1" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Changed in the app"}]}')" = 200
scim_ctl /state >"$T/before.json"
test_expect_code 2 "a plan whose target moved since is refused" \
	sync-export -c "$T/sync.yaml" "$T/four.plan"
test_grep "... the stale change on an indented line of its own" \
	"^  line [0-9]*: update user 'dXNlcg0001==': displayName is \[\"Changed in the app\"\], the plan expected \[\"Renamed One\"\]\$" "$T/err"
test_grep "... and saying nothing was changed" "nothing was changed" "$T/err"
scim_ctl /state >"$T/after.json"
test_cmp "... the server is as it was" "$T/before.json" "$T/after.json"

# Moved while the run goes on: the PATCH carries the version read in
# phase 0, the server answers 412, the change reads its object again and
# fails as stale instead of overwriting.
test_expect_code 1 "a fresh cycle plans over the app's change" cycle five
scim_ctl /faults "{\"rules\": [{\"method\": \"PATCH\", \"path\": \"^/Users/$uid1\$\", \"action\": \"touch\", \"set\": {\"displayName\": \"Changed again\"}}]}" >/dev/null
test_expect_code 1 "a change whose object moves during the run (412)" \
	sync-export -c "$T/sync.yaml" "$T/five.plan"
test_grep "... fails as stale" "^sync-export: line [0-9]*: update user 'dXNlcg0001==' failed: 412: the target changed since the plan was made: displayName is \[\"Changed again\"\], the plan expected \[\"Changed in the app\"\]; not overwritten\$" "$T/err"
test_grep "... the others are applied" '^sync-export: [1-9][0-9]* applied, 0 already in place, 1 failed' "$T/err"
grep -h '"outcome":"failed"' "$T/state/journal/"*.jsonl | tail -1 >"$T/rec"
test_grep "... the journal says stale, with the status" '"error":\{"message":"the target changed since the plan was made: .*","stale":true,"status":412\}' "$T/rec"
scim_ctl /state >"$T/state.json"
json "$T/state.json" '[u["displayName"] for u in j["users"] if u["id"] == "'"$uid1"'"][0]' >"$T/name"
echo "Changed again" >"$T/want"
test_cmp "... and user 1 keeps the other writer's value" "$T/want" "$T/name"

# A version that moved without the values: written after a re-read.
test_expect_code 1 "a plan over that" cycle six
scim_ctl /faults "{\"rules\": [{\"method\": \"PATCH\", \"path\": \"^/Users/$uid1\$\", \"action\": \"touch\"}]}" >/dev/null
test_expect_code 0 "a change whose version moves but not its values" \
	sync-export -c "$T/sync.yaml" "$T/six.plan"
scim_ctl /log >"$T/log.json"
json "$T/log.json" '[r["status"] for r in j if r["path"] == "/Users/'"$uid1"'"][-3:]' >"$T/n"
echo "[412, 200, 200]" >"$T/want"
test_cmp "... 412, a re-read, then the PATCH with the new version" "$T/want" "$T/n"
check "... and the server follows the source again"

# ------------------------------------------------------------ threshold
sx_gen "$T/src.snap" 20 3 gone
DELETE_THRESHOLD=2
test_expect_code 1 "three users deleted at the source" cycle seven
test_expect_code 2 "a plan over the deletion threshold is refused" \
	sync-export -c "$T/sync.yaml" "$T/seven.plan"
test_grep "... with the number to allow" \
	"the plan deletes 3 objects, over the deletion threshold; nothing was changed. Check the plan, then allow that many deletes with -D 3$" "$T/err"
test_expect_code 0 "-D 3 allows them" \
	sync-export -D 3 -c "$T/sync.yaml" "$T/seven.plan"
check "... and the three users are gone, from their groups too"
DELETE_THRESHOLD=500
test_expect_code 0 "... and the next cycle has nothing to do" cycle seven-b

scim_ctl /state >"$T/state.json"
json "$T/state.json" '[(o["userName"] if "userName" in o else o["displayName"], o["meta"]["version"]) for o in j["users"] + j["groups"] if not o.get("externalId")]' >"$T/cloud"
test_cmp "the objects the sync did not create are untouched" "$T/cloud0" "$T/cloud"

# ------------------------------------------------------------ kill -9
# Killed in the middle of the creates, then run again: the re-run finds
# what the first created (journaled or not) and creates nothing twice.
sx_conf 2 120
sx_fresh
sx_gen "$T/src.snap" 300 3
test_expect_code 1 "a plan of 300 users" cycle big
# The server's log file (of the whole test), read with grep: a poll
# must be cheap.
n0=$(grep -c '"method":"POST"' "$T/scim.log")
sync-export -q -c "$T/sync.yaml" "$T/big.plan" >/dev/null 2>&1 3>&- &
pid=$!
i=0
while [ $i -lt 1200 ]; do
	n=$(grep -c '"method":"POST"' "$T/scim.log")
	[ $((n - n0)) -ge 30 ] && break
	i=$((i + 1))
	sleep 0.05
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
scim_ctl /state >"$T/state.json"
json "$T/state.json" '0 < len(j["users"]) < 300' >"$T/n"
echo True >"$T/want"
test_cmp "kill -9 in the middle of the creates" "$T/want" "$T/n"
test_expect_code 0 "a re-run of the plan" sync-export -c "$T/sync.yaml" "$T/big.plan"
test_grep "... resumes" '\(resumed\)$' "$T/err"
check "... and each object is there once, no create ran twice"
test_expect_code 0 "... and the next cycle has nothing to do" cycle big-b

# ------------------------------------------------------------ no PATCH
# A service whose /ServiceProviderConfig says patch.supported false gets
# whole resources by PUT, with If-Match, members included.
scim_start noput --no-patch || fail "a SCIM server without PATCH starts"
sx_conf 2 120
sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1
sx_gen "$T/src.snap" 10 2
test_expect_code 1 "without PATCH: a first plan" cycle p1
test_expect_code 0 "... applied" sync-export -c "$T/sync.yaml" "$T/p1.plan"
check "... the server holds the source"
sx_gen "$T/src.snap" 10 2 v2
test_expect_code 1 "... a rename, a new user, a member removed" cycle p2
test_expect_code 0 "... applied" sync-export -c "$T/sync.yaml" "$T/p2.plan"
check "... the server follows"
scim_ctl /log >"$T/log.json"
json "$T/log.json" 'sorted(set((r["method"], r["status"], "if-match" in r["headers"]) for r in j if r["method"] in ("PUT", "PATCH")))' >"$T/n"
echo "[('PUT', 200, True)]" >"$T/want"
test_cmp "... by PUT with If-Match, never PATCH" "$T/want" "$T/n"
test_expect_code 0 "... and the next cycle has nothing to do" cycle p3

done_testing
