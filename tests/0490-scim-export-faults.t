#!/bin/sh
# sync-export to a SCIM service under faults, against the scimmy test
# server: answers lost after the server ran a create (a dropped
# connection, a 500 or 504 in its place), also when the service lists a
# new object only seconds later, member PATCHes whose answer is lost
# (scimmy keeps a member added twice), throttling with Retry-After, and
# random storms of all of these over three seeds (bench/scim-faults.sh
# runs ten, larger).  Every change must be applied exactly once, in one
# run: no create that ran twice, no duplicate object, no member twice.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/scim.sh"

scim_start scim || { fail "the SCIM server starts"; done_testing; }
. "$TOP/tests/scim-export.sh"

check() {
	sx_check
	ok "$1" test $? -eq 0
	note_file "$T/check.out" 15
}
# posts PATH: how many POSTs to PATH ran (answered or not), from the log
posts() {
	scim_ctl /log >"$T/log.json"
	python3 - "$T/log.json" "$1" <<'PY'
import json, sys
print(sum(1 for r in json.load(open(sys.argv[1]))
          if r["method"] == "POST" and r["path"] == sys.argv[2]
          and (r.get("applied_status") or r.get("status")) == 201))
PY
}

sx_conf 1 120
test_expect_code 0 "promote this server" sync-role -c "$T/sync.yaml" promote

# ------------------------------------------------------------ lost answers
# One connection: the creates go over the connection kept alive since the
# reads of phase 0, which is when libcurl would resend by itself.
sx_fresh
sx_gen "$T/src.snap" 4 0
sx_plan u4 || fail "a plan of four users"
scim_ctl /faults '{"rules": [{"method": "POST", "path": "^/Users$", "action": "drop_after", "times": 3}]}' >/dev/null
test_expect_code 0 "user creates whose connection drops after the server ran them" \
	sync-export -c "$T/sync.yaml" "$T/u4.plan"
posts /Users >"$T/n"
echo 4 >"$T/want"
test_cmp "... each user was created once (a look-up, no resend)" "$T/want" "$T/n"
test_grep "... all four count as applied" '^sync-export: 4 applied, 0 already in place, 0 failed' "$T/err"
check "... and the server holds each user once"

sx_fresh
sx_gen "$T/src.snap" 6 3
sx_plan g3 || fail "a plan of six users in three groups"
scim_ctl /faults '{"rules": [{"method": "POST", "path": "^/Groups$", "action": "500_after", "times": 2}, {"method": "POST", "path": "^/Users$", "action": "504_after", "times": 2}]}' >/dev/null
test_expect_code 0 "creates answered 500 and 504 after the server ran them" \
	sync-export -c "$T/sync.yaml" "$T/g3.plan"
posts /Groups >"$T/n"
posts /Users >>"$T/n"
printf '3\n6\n' >"$T/want"
test_cmp "... each object was created once" "$T/want" "$T/n"
check "... with its members"

# A service that lists a new object only 3 s after it created it, and
# whose uniqueness checks lag as much (tests/scim-server.md, hide_new):
# the look-up after a lost answer finds nothing at once, and is made
# again until create_settle (10 s) has passed; sent again at once, the
# create would make a second user.
sx_fresh
sx_gen "$T/src.snap" 4 0
sx_plan ec || fail "a plan of four users"
scim_ctl /faults '{"hide_new": 3, "rules": [{"method": "POST", "path": "^/Users$", "action": "drop_after", "times": 2}]}' >/dev/null
test_expect_code 0 "lost creates of users listed only 3 s later" \
	sync-export -c "$T/sync.yaml" "$T/ec.plan"
posts /Users >"$T/n"
echo 4 >"$T/want"
test_cmp "... each user was created once (looked up until it was listed)" "$T/want" "$T/n"
test_grep "... all four count as applied" '^sync-export: 4 applied, 0 already in place, 0 failed' "$T/err"
check "... and the server holds each user once"

# A create dropped before it ran is not found: after create_settle
# (here 2 s) of look-ups it is sent again, once.
sx_conf 1 120 2
sx_fresh
sx_gen "$T/src.snap" 2 0
sx_plan nf || fail "a plan of two users"
scim_ctl /faults '{"rules": [{"method": "POST", "path": "^/Users$", "action": "drop", "times": 1}]}' >/dev/null
test_expect_code 0 "a user create dropped before it ran" \
	sync-export -c "$T/sync.yaml" "$T/nf.plan"
scim_ctl /log >"$T/log.json"
# What followed the drop, up to the next POST: the look-ups by anchor.
python3 -c 'import json, sys
log = json.load(open(sys.argv[1]))
i = next(i for i, r in enumerate(log) if r["fault"] == "drop") + 1
while log[i]["method"] != "POST":
    print(log[i]["method"], "filter=" in log[i]["path"]); i += 1' "$T/log.json" >"$T/n"
test "$(sort -u "$T/n")" = "GET True" && test "$(wc -l <"$T/n")" -gt 1 &&
	pass "... looked up again and again for create_settle, then sent again" ||
	fail "... looked up again and again for create_settle" "$(cat "$T/n")"
posts /Users >"$T/n"
echo 2 >"$T/want"
test_cmp "... each user created once" "$T/want" "$T/n"
check "... and the server holds each"
sx_conf 1 120

sx_fresh
sx_gen "$T/src.snap" 6 2
sx_plan m || fail "a plan of six users in two groups"
scim_ctl /faults '{"rules": [{"method": "PATCH", "path": "^/Groups/", "action": "drop_after", "times": 2}]}' >/dev/null
test_expect_code 0 "member PATCHes whose answer is lost" \
	sync-export -c "$T/sync.yaml" "$T/m.plan"
test_grep "... count as done" '^sync-export: 8 applied, 0 already in place, 0 failed' "$T/err"
check "... and no member was added twice (scimmy would keep it twice)"

sx_fresh
sx_gen "$T/src.snap" 6 2
sx_plan m5 || fail "the same plan again"
scim_ctl /faults '{"rules": [{"method": "PATCH", "path": "^/Groups/", "action": "502_after", "times": 1}, {"method": "PATCH", "path": "^/Groups/", "action": "drop", "times": 1}]}' >/dev/null
test_expect_code 0 "a member PATCH answered 502 after it ran, another dropped before" \
	sync-export -c "$T/sync.yaml" "$T/m5.plan"
check "... each member once"

# ------------------------------------------------------------ throttling
sx_fresh
sx_gen "$T/src.snap" 3 0
sx_plan t || fail "a plan of three users"
scim_ctl /faults '{"rules": [{"method": "POST", "path": "^/Users$", "action": "429", "retry_after": "2", "times": 2}]}' >/dev/null
test_expect_code 0 "creates throttled with Retry-After: 2" \
	sync-export -c "$T/sync.yaml" "$T/t.plan"
scim_ctl /log >"$T/log.json"
python3 - "$T/log.json" >"$T/n" <<'PY'
import json, sys
from datetime import datetime
log = [r for r in json.load(open(sys.argv[1])) if r["method"] == "POST"]
t = lambda r: datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
# Each request after a 429 waited its Retry-After.
print(all(t(b) - t(a) >= 1.9 for a, b in zip(log, log[1:]) if a["status"] == 429),
      sum(1 for r in log if r["status"] == 429))
PY
echo "True 2" >"$T/want"
test_cmp "... the next POST waited the 2 s each time" "$T/want" "$T/n"
check "... and each user was created once"

# Four connections and a storm of 429s: every connection holds back for
# the Retry-After, and the run still ends within its budget.
sx_conf 4 120
sx_fresh
sx_gen "$T/src.snap" 40 2
sx_plan t4 || fail "a plan of 40 users"
scim_ctl /faults '{"random": {"seed": 3, "methods": ["POST"], "retry_after": "1", "p": {"429": 0.3}}}' >/dev/null
test_expect_code 0 "30% of creates throttled, four connections" \
	sync-export -S "$T/sum.json" -c "$T/sync.yaml" "$T/t4.plan"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["throttled"] > 3, s["applied"])' "$T/sum.json" >"$T/n"
echo "True 42" >"$T/want"
test_cmp "... the summary counts the throttled requests" "$T/want" "$T/n"
check "... every change applied once"

# ------------------------------------------------------------ storms
# Random faults on every request, three seeds (SX_SEEDS): a plan of creates, then
# one of renames, deletes, new users and member changes.  A create
# dropped before it ran is looked for create_settle seconds: 2 here.
sx_conf 4 300 2
sx_gen "$T/base.snap" 24 3
sx_gen "$T/churn.snap" 24 3 churn
for seed in ${SX_SEEDS:-1 2 3}; do
	sx_fresh
	cp "$T/base.snap" "$T/src.snap"
	sx_plan s$seed || fail "seed $seed: the plan"
	sx_storm $seed 0.1
	test_expect_code 0 "seed $seed: 27 creates and their members in one run" \
		sync-export -c "$T/sync.yaml" "$T/s$seed.plan"
	[ -s "$T/err" ] && grep -v '^sync-export: [0-9]* applied' "$T/err" | head -5 | note_file /dev/stdin
	check "seed $seed: ... each object once, with its members"
	cp "$T/churn.snap" "$T/src.snap"
	sx_plan c$seed || fail "seed $seed: the second plan"
	sx_storm $((seed + 100)) 0.1
	test_expect_code 0 "seed $seed: renames, deletes, new users, member changes in one run" \
		sync-export -c "$T/sync.yaml" "$T/c$seed.plan"
	check "seed $seed: ... the server follows"
done

done_testing
