#!/bin/sh
# sync-export under the faults of the real service, against the Graph
# emulator: answers lost after the service applied a $batch (dropped
# connections, 504s), throttling storms, transient errors, objects that
# show up seconds after their creation.  Every change must be applied
# exactly once, in one run: no create sent twice, no duplicate object.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/graph.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11

emu_app "$CID" "$T/secret"
emu_start emu --seed 1 || { fail "the emulator starts"; done_testing; }
BASE=http://127.0.0.1:$(cat "$T/emu.port")

. "$TOP/tests/export-faults.sh"
conf() { fx_conf "$@"; }
gen() { fx_gen "$@"; }
plan() { fx_plan "$@"; }
fresh() { fx_fresh; }
applied() { fx_applied "$@"; }
check() {
	fx_check
	ok "$1" test $? -eq 0
	note_file "$T/check.out" 15
}

conf 1 300 10
test_expect_code 0 "promote this server" sync-role -c "$T/sync.yaml" promote

# ------------------------------------------------------------ lost answers
# One connection, so that the create batch goes over a connection kept
# alive since the reads of phase 0: that is when libcurl would send the
# request again by itself after the connection dies.
fresh
gen "$T/src.snap" 0 3
plan g3 || fail "a plan of three groups"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/\\$batch$", "body": "\"method\":\"POST\"", "action": "drop_after", "times": 1}]}' >/dev/null
test_expect_code 0 "a create batch whose connection drops after the service ran it" \
	sync-export -c "$T/sync.yaml" "$T/g3.plan"
applied groups >"$T/n"
echo 3 >"$T/want"
test_cmp "... each group was created once (no resend by libcurl, a look-up instead)" "$T/want" "$T/n"
check "... and the target holds each group once"
test_grep "... all three count as applied" '^sync-export: 3 applied, 0 already in place, 0 failed' "$T/err"

fresh
gen "$T/src.snap" 4 0
plan u4 || fail "a plan of four users"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/\\$batch$", "body": "\"method\":\"POST\"", "action": "drop_after", "times": 1}]}' >/dev/null
test_expect_code 0 "the same for users" sync-export -c "$T/sync.yaml" "$T/u4.plan"
applied users >"$T/n"
echo 4 >"$T/want"
test_cmp "... each user was created once" "$T/want" "$T/n"
check "... and the target holds each user once"
test_grep "... all four count as applied" '^sync-export: 4 applied, 0 already in place, 0 failed' "$T/err"

fresh
gen "$T/src.snap" 0 3
plan g504 || fail "a plan of three groups again"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/groups$", "action": "504_after", "times": 2}]}' >/dev/null
test_expect_code 0 "group creates answered 504 after the service ran them" \
	sync-export -c "$T/sync.yaml" "$T/g504.plan"
applied groups >"$T/n"
echo 3 >"$T/want"
test_cmp "... each group was created once" "$T/want" "$T/n"
check "... and the target holds each group once"

fresh
conf 1 300 4
gen "$T/src.snap" 2 2
plan ec || fail "a plan of two users and two groups"
ctl /_emulator/faults '{"eventual_404": 2, "rules": [{"method": "POST", "path": "^/v1.0/\\$batch$", "body": "\"method\":\"POST\"", "action": "drop_after", "times": 2}]}' >/dev/null
test_expect_code 0 "lost creates, and new objects unseen for 2 s (eventual consistency)" \
	sync-export -c "$T/sync.yaml" "$T/ec.plan"
applied groups >"$T/n"
applied users >>"$T/n"
printf '2\n2\n' >"$T/want"
test_cmp "... the look-up waits create_settle seconds before it believes 'not found'" "$T/want" "$T/n"
check "... and the target holds each object once, with its members"

# ------------------------------------------------------------ in place
# Users deleted at the source leave their groups: Graph removes a deleted
# user from its groups itself, so the plan's removals answer 404, and a
# second removal that depends on the first gets 424.
fresh
conf 1 300 10
gen "$T/src.snap" 8 2
plan base || fail "a plan of eight users in two groups"
test_expect_code 0 "export it" sync-export -c "$T/sync.yaml" "$T/base.plan"
python3 - "$T/src.snap" <<'PY'
import json, sys
p = sys.argv[1]
lines = open(p).read().splitlines()
hdr, objs = json.loads(lines[0]), [json.loads(l) for l in lines[1:]]
gone = {'uid=u1,ou=People,dc=example,dc=org', 'uid=u3,ou=People,dc=example,dc=org'}
objs = [o for o in objs if o['dn'] not in gone]
for o in objs:
    if o['type'] == 'group':
        o['attrs']['member'] = [m for m in o['attrs']['member'] if m not in gone]
hdr['counts']['user'] -= 2
with open(p, 'w') as f:
    for o in [hdr] + objs:
        f.write(json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False) + '\n')
PY
plan del || fail "a plan deleting users 1 and 3, both members of Team 1"
test_expect_code 0 "deleted users, then their removals from the group (404, then 424)" \
	sync-export -c "$T/sync.yaml" "$T/del.plan"
test_grep "... nothing failed" '^sync-export: [0-9]* applied, [0-9]* already in place, 0 failed' "$T/err"
check "... and the group lost both"

fresh
gen "$T/src.snap" 6 2
plan mem || fail "a plan of six users in two groups"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/\\$batch$", "body": "members@odata.bind", "action": "drop_after", "times": 1}]}' >/dev/null
test_expect_code 0 "a member add whose answer is lost, sent again: 'already exist'" \
	sync-export -c "$T/sync.yaml" "$T/mem.plan"
test_grep "... counts as done" '^sync-export: 8 applied, 0 already in place, 0 failed' "$T/err"
check "... with the members in place"

# ------------------------------------------------------------ the budget
# retry_budget is the run's wall-clock time spent waiting: several
# connections waiting out the same Retry-After count it once.  Here the
# waits of all requests add up to far more than the budget (about 100
# requests throttled for 1 s each), while the run itself takes about
# 16 s: a budget of 40 s leaves room for a slow machine.
fresh
conf 4 40 10
gen "$T/src.snap" 160 4
plan budget || fail "a plan of 160 users"
ctl /_emulator/faults '{"seed": 5, "fault_429": 0.3, "retry_after": "1"}' >/dev/null
test_expect_code 0 "30% of requests throttled (Retry-After 1 s), a budget of 40 s" \
	sync-export -c "$T/sync.yaml" "$T/budget.plan"
ctl /_emulator/log >"$T/after.json"
python3 - "$T/after.json" >"$T/n" <<'PY'
import json, sys
print(sum(1 for r in json.load(open(sys.argv[1])) if r.get("status") == 429) > 40)
PY
echo True >"$T/want"
test_cmp "... more than 40 requests waited 1 s each" "$T/want" "$T/n"
check "... every change applied once"

# ------------------------------------------------------------ storms
# The acceptance runs of bench/faults.sh, on two seeds (FX_SEEDS): 30% 429, 10%
# 503, 5% 504 after the service ran the request, 5% of connections
# dropped before and 5% after, 2 s eventual consistency.
conf 4 300 3
for seed in ${FX_SEEDS:-1 2}; do
	fresh
	gen "$T/src.snap" 40 4
	plan s$seed || fail "seed $seed: the plan"
	fx_storm $seed 0.5
	test_expect_code 0 "seed $seed: 44 creates and their members in one run" \
		sync-export -c "$T/sync.yaml" "$T/s$seed.plan"
	[ -s "$T/err" ] && grep -v '^sync-export: [0-9]* applied' "$T/err" | head -5 | note_file /dev/stdin
	check "seed $seed: ... each object once, with its members"
	gen "$T/src.snap" 40 4 churn
	plan c$seed || fail "seed $seed: the second plan"
	fx_storm $seed 0.5
	test_expect_code 0 "seed $seed: renames, deletes, new users, member changes in one run" \
		sync-export -c "$T/sync.yaml" "$T/c$seed.plan"
	check "seed $seed: ... the target follows"
done

done_testing
