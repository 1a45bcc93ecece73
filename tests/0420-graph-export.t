#!/bin/sh
# sync-export to Entra ID, against the Graph emulator: the whole cycle
# (import the target, diff, export) with the emulator's state compared to
# the source; nothing to do the second time; updates and membership
# changes; cloud-only objects untouched; a stale plan refused before any
# write; the deletion threshold; a staging server that sends nothing; a
# throttling storm; kill -9 at random points then a re-run; --dry-run.
. "$(dirname "$0")/lib.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
EXT=extension_0123456789abcdef0123456789abcdef_syncAnchor

printf 'S3cr+t&v@lue=~%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$T/secret"
chmod 600 "$T/secret"
cat >"$T/apps.json" <<EOF
[{"client_id": "$CID", "secret": "$(cat "$T/secret")"}]
EOF

rm -f "$T/emu.port"
python3 "$EMU" --port 0 --port-file "$T/emu.port" --apps-file "$T/apps.json" \
	--tenant "$TENANT" --log "$T/emu.log" --seed 7 >"$T/emu.out" 2>&1 3>&- &
_lib_pids="$_lib_pids $!"
i=0
while [ ! -s "$T/emu.port" ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && { note_file "$T/emu.out"; fail "the emulator starts"; done_testing; }
	sleep 0.05
done
BASE=http://127.0.0.1:$(cat "$T/emu.port")

ctl() {
	if [ $# -gt 1 ]; then
		curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1"
	else
		curl -sf "$BASE$1"
	fi
}

cat >"$T/sync.yaml" <<EOF
state_dir: \${SYNC_STATE}
connectors:
  src:
    type: ldap
    url: ldapi:///
    base_dn: dc=example,dc=org
  entra:
    type: graph
    tenant: $TENANT
    client_id: $CID
    client_secret_file: secret
    token_url: $BASE/$TENANT/oauth2/v2.0/token
    graph_url: $BASE/v1.0
    allow_http: true
    connections: 3
    retry_budget: 120
    # No attribute lists: the import reads what the flows below write.
policy:
  delete_threshold: \${DELETE_THRESHOLD}
role:
  server: \${SYNC_SERVER}
  duration: 300
  lease:
    file: lease
EOF
cat "$TOP/tests/data/graph-export-flows.yaml" >>"$T/sync.yaml"
DELETE_THRESHOLD=500 SYNC_SERVER=alpha SYNC_STATE=$T/state
export DELETE_THRESHOLD SYNC_SERVER SYNC_STATE
# beta CMD...: as the other server (same config file, its own state)
beta() { SYNC_SERVER=beta SYNC_STATE=$T/beta "$@"; }

# gen FILE USERS GROUPS [VARIANT]: a source snapshot (tests/export-src.py)
gen() { python3 "$TOP/tests/export-src.py" "$@"; }

# cycle NAME: import the target, diff; the plan in $T/NAME.plan
cycle() {
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.entra" entra &&
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/src.snap" "$T/$1.entra"
}

check() {
	ctl /_emulator/state >"$T/state.json"
	ok "$1" python3 "$TOP/tests/graph-export-check.py" "$T/src.snap" \
		"$T/state.json" "$EXT"
	[ -s "$T/ok.out" ] && note_file "$T/ok.out" 15
}

# A cloud-only admin and group that the sync must never touch.
ctl /_emulator/seed '{"users":[{"id":"c0ffee00-0000-4000-8000-000000000001","displayName":"Cloud Admin","userPrincipalName":"admin@contoso.example","mailNickname":"admin","accountEnabled":true}],"groups":[{"id":"c0ffee00-0000-4000-8000-000000000002","displayName":"Cloud Team","mailNickname":"cloud","securityEnabled":true,"mailEnabled":false,"members":["c0ffee00-0000-4000-8000-000000000001"]}]}' >/dev/null ||
	fail "seed the emulator"

gen "$T/src.snap" 30 3
test_expect_code 1 "a first plan has changes" cycle one

# ------------------------------------------------------------ staging
test_expect_code 1 "on a staging server sync-export refuses" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... says the plan is kept for review" \
	"^sync-export: not the active server \(.*\): nothing was sent; the plan '$T/one.plan' is kept for review$" "$T/err"
ctl /_emulator/log >"$T/log.json"
python3 -c 'import json, sys
print(len([r for r in json.load(open(sys.argv[1])) if r["method"] != "GET"
           and not r.get("control") and "/oauth2/" not in r["path"]]))' "$T/log.json" >"$T/writes"
echo 0 >"$T/want"
test_cmp "... and the emulator served no write" "$T/want" "$T/writes"

test_expect_code 0 "promote this server" sync-role -c "$T/sync.yaml" promote

# ------------------------------------------------------------ dry run
test_expect_code 0 "--dry-run prints the writes" \
	sync-export -n -c "$T/sync.yaml" "$T/one.plan"
grep -c '^POST /users {' "$T/out" >"$T/n"
echo 30 >"$T/want"
test_cmp "... a POST for each of the 30 users" "$T/want" "$T/n"
test_grep "... members through members@odata.bind" '^PATCH /groups/%7Bnew-Z3JvdXA001%7D \{"members@odata.bind":\["http://127.0.0.1:[0-9]*/v1.0/directoryObjects/\{new-dXNlcg0001==\}"' "$T/out"
test_no_grep "... never a real password" '"password":"[^(]' "$T/out"

# ------------------------------------------------------------ the cycle
test_expect_code 0 "export the first plan" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... reports what it did" \
	'^sync-export: 33 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
check "... the target now holds the source, each object once"
ctl /_emulator/state >"$T/state.json"
python3 - "$T/state.json" >"$T/cloud" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
u = [x for x in st['users'] if x['id'] == 'c0ffee00-0000-4000-8000-000000000001'][0]
g = [x for x in st['groups'] if x['id'] == 'c0ffee00-0000-4000-8000-000000000002'][0]
print(u['displayName'], u.get('onPremisesImmutableId'), g['displayName'], g['members'])
PY
echo "Cloud Admin None Cloud Team ['c0ffee00-0000-4000-8000-000000000001']" >"$T/want"
test_cmp "... and the cloud-only objects are untouched" "$T/want" "$T/cloud"
ls "$T/state/journal/"*.jsonl >/dev/null 2>&1
ok "... with a journal in the state directory" test $? -eq 0

test_expect_code 0 "the next cycle has nothing to do" cycle two

test_expect_code 0 "re-running an applied plan" \
	sync-export -c "$T/sync.yaml" "$T/one.plan"
test_grep "... finds everything done (resume from the journal)" \
	'^sync-export: 0 applied, 0 already in place, 0 failed, 0 not applied \(conflicts and errors\) \(resumed\)$' "$T/err"

# ------------------------------------------------------------ updates
gen "$T/src.snap" 30 3 v2
test_expect_code 1 "a rename, a new user, a member removed" cycle three
test_expect_code 0 "export it" sync-export -c "$T/sync.yaml" "$T/three.plan"
check "... the target follows"

# ------------------------------------------------------------ stale plan
gen "$T/src.snap" 30 3
test_expect_code 1 "a plan that renames user 1 back" cycle four
uid1=$(python3 -c 'import json,sys; print([u["id"] for u in json.load(open(sys.argv[1]))["users"] if u.get("onPremisesImmutableId") == "dXNlcg0001=="][0])' "$T/state.json")
tok=$(curl -sf -d "client_id=$CID&grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" \
	--data-urlencode "client_secret=$(cat "$T/secret")" "$BASE/$TENANT/oauth2/v2.0/token" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -X PATCH -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
	-d '{"displayName":"Changed in the portal"}' "$BASE/v1.0/users/$uid1" ||
	fail "change user 1 behind the plan's back"
ctl /_emulator/log >"$T/before.json"
test_expect_code 2 "a plan whose target moved since is refused" \
	sync-export -c "$T/sync.yaml" "$T/four.plan"
test_grep "... naming the change and the values" \
	"displayName is \[\"Changed in the portal\"\], the plan expected \[\"Renamed One\"\]" "$T/err"
test_grep "... and saying nothing was changed" "nothing was changed" "$T/err"
test_grep "... the stale change on an indented line of its own" \
	"^  line [0-9]*: update user 'dXNlcg0001==': displayName is \[\"Changed in the portal\"\], the plan expected \[\"Renamed One\"\]\$" "$T/err"
ctl /_emulator/state >"$T/state2.json"
python3 -c 'import json,sys; print([u["displayName"] for u in json.load(open(sys.argv[1]))["users"] if u["id"] == sys.argv[2]][0])' "$T/state2.json" "$uid1" >"$T/name"
echo "Changed in the portal" >"$T/want"
test_cmp "... the target is as it was" "$T/want" "$T/name"
test_expect_code 1 "a fresh cycle plans over the portal's change" cycle five
test_expect_code 0 "... and applies" sync-export -c "$T/sync.yaml" "$T/five.plan"
check "... the target follows the source again"

# ------------------------------------------------------------ threshold
gen "$T/src.snap" 30 3 gone
DELETE_THRESHOLD=2
test_expect_code 1 "three users deleted at the source" cycle six
test_expect_code 2 "a plan over the deletion threshold is refused" \
	sync-export -c "$T/sync.yaml" "$T/six.plan"
test_grep "... with the number to allow" \
	"the plan deletes 3 objects, over the deletion threshold; nothing was changed. Check the plan, then allow that many deletes with -D 3$" "$T/err"
test_expect_code 2 "-D 2 does not cover 3 deletes" \
	sync-export -D 2 -c "$T/sync.yaml" "$T/six.plan"
test_expect_code 0 "-D 3 allows them" \
	sync-export -D 3 -c "$T/sync.yaml" "$T/six.plan"
check "... and the three users are gone"
DELETE_THRESHOLD=500

# ------------------------------------------------------------ config drift
cp "$T/sync.yaml" "$T/other.yaml"
echo "# an edit" >>"$T/other.yaml"
gen "$T/src.snap" 30 3
test_expect_code 1 "a new plan" cycle seven
test_expect_code 2 "a plan from another configuration is refused" \
	sync-export -c "$T/other.yaml" "$T/seven.plan"
test_grep "... and says so" "the plan was computed with another configuration" "$T/err"

# ------------------------------------------------------------ throttling
ctl /_emulator/faults '{"fault_429": 0.3, "retry_after": "0.2", "seed": 11}' >/dev/null
test_expect_code 0 "a throttling storm (30% of requests 429)" \
	sync-export -c "$T/sync.yaml" "$T/seven.plan"
ctl /_emulator/faults '{"fault_429": 0}' >/dev/null
check "... every change applied once"

# ------------------------------------------------------------ kill -9
# Each trial starts from an empty tenant, kills sync-export at a random
# moment, then runs it again until it finishes.
gen "$T/src.snap" 60 4
ctl /_emulator/faults '{"latency_ms": 15}' >/dev/null
trials=0 good=0
while [ $trials -lt "${KILL_TRIALS:-8}" ]; do
	trials=$((trials + 1))
	ctl /_emulator/reset '{}' >/dev/null
	rm -rf "$T/state/journal"
	cycle k$trials >"$T/cycle.out" 2>&1
	[ -f "$T/k$trials.plan" ] || note_file "$T/cycle.out"
	sync-export -q -c "$T/sync.yaml" "$T/k$trials.plan" >/dev/null 2>&1 &
	pid=$!
	sleep "0.$(od -An -N1 -tu1 /dev/urandom | tr -d ' ' | cut -c1)$trials" 2>/dev/null || sleep 0.3
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	n=0
	until sync-export -q -c "$T/sync.yaml" "$T/k$trials.plan" >"$T/k.out" 2>"$T/k.err"; do
		n=$((n + 1))
		[ $n -ge 3 ] && break
	done
	ctl /_emulator/state >"$T/state.json"
	if python3 "$TOP/tests/graph-export-check.py" "$T/src.snap" "$T/state.json" "$EXT" >"$T/k.check"; then
		good=$((good + 1))
	else
		note "trial $trials:"
		note_file "$T/k.check" 5
		note_file "$T/k.err" 5
	fi
done
echo "$trials of $trials" >"$T/want"
echo "$good of $trials" >"$T/got"
test_cmp "kill -9 at random points, then a re-run: the plan's state, no duplicates" "$T/want" "$T/got"

# ------------------------------------------------------------ lease lost
# Another server takes the lease by force in the middle of a run: the
# export stops before its next batch.
ctl /_emulator/reset '{}' >/dev/null
rm -rf "$T/state/journal"
gen "$T/src.snap" 600 4
cycle lost >/dev/null 2>&1
ctl /_emulator/faults '{"latency_ms": 100}' >/dev/null
sync-export -c "$T/sync.yaml" "$T/lost.plan" >"$T/lost.out" 2>"$T/lost.err" &
pid=$!
sleep 1.3
beta sync-role -c "$T/sync.yaml" promote -f >/dev/null 2>&1 ||
	fail "the other server takes the lease by force"
ctl /_emulator/log >"$T/at-takeover.json"
wait $pid
echo $? >"$T/rc"
echo 2 >"$T/want"
test_cmp "an export whose lease is taken mid-run stops with an error" "$T/want" "$T/rc"
test_grep "... saying the lease was lost" "the lease was lost: this server is no longer the active one; stopped before the next batch" "$T/lost.err"
ctl /_emulator/log >"$T/after.json"
python3 - "$T/at-takeover.json" "$T/after.json" >"$T/late" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def writes(log):
    n = 0
    for r in log:
        body = r.get("body")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        if r["path"].startswith("/v1.0/$batch") and isinstance(body, dict):
            n += any(q.get("method") != "GET" for q in body.get("requests", []))
    return n
# At most the write batches already in flight at the takeover (one per
# connection) may come after it; reads may go on, they change nothing.
print(writes(b) - writes(a) <= 3)
PY
echo True >"$T/want"
test_cmp "... sending at most the batches in flight at that moment" "$T/want" "$T/late"
test_expect_code 1 "the demoted server's next run sends nothing" \
	sync-export -c "$T/sync.yaml" "$T/lost.plan"
test_expect_code 0 "the new active server finishes the plan" \
	beta sync-export -c "$T/sync.yaml" "$T/lost.plan"
check "... and the target is complete"

# ------------------------------------------------------------ partial failure
# One user the service refuses (a userPrincipalName with a space): the rest of
# its batch and of the plan is applied; the failure is listed.
ctl /_emulator/reset '{}' >/dev/null
ctl /_emulator/faults '{"latency_ms": 0, "token_lifetime": 3}' >/dev/null
gen "$T/src.snap" 30 3 bad
cycle bad >/dev/null 2>&1
test_expect_code 1 "a plan with one change the service refuses" \
	beta sync-export -c "$T/sync.yaml" "$T/bad.plan"
test_grep "... lists the failure with Graph's error and request-id" \
	"^sync-export: line [0-9]*: add user 'dXNlcg0004==' failed: 400 Request_BadRequest: Invalid value specified for property 'userPrincipalName' of resource 'User'. \(request-id [-0-9a-f]*\)$" "$T/err"
test_grep "... the group that should contain it says why it is incomplete" \
	"^sync-export: line [0-9]*: add group 'Z3JvdXA001' failed: a member created by this plan has no id \(its creation failed\)$" "$T/err"
test_grep "... and both are counted" '^sync-export: 31 applied, 0 already in place, 2 failed, 0 not applied' "$T/err"
ctl /_emulator/state >"$T/state.json"
python3 "$TOP/tests/graph-export-check.py" "$T/src.snap" "$T/state.json" "$EXT" >"$T/bad.check"
printf 'user dXNlcg0004==: 0 objects\ngroup Z3JvdXA001: members %s, want %s\n' x x >/dev/null
grep -c '^user' "$T/bad.check" >"$T/n"
echo 1 >"$T/want"
test_cmp "... every other user is there" "$T/want" "$T/n"

# ------------------------------------------------------------ no journal
# Users created, their groups refused; then the journal is lost (another
# server, or a crash before it was written): the next run finds the users
# by their anchors and still makes them the groups' members.
ctl /_emulator/reset '{}' >/dev/null
ctl /_emulator/faults '{"token_lifetime": 3599, "rules": [{"method": "POST", "path": "^(/v1.0)?/groups$", "action": "400", "times": 1000}]}' >/dev/null
gen "$T/src.snap" 30 3
cycle nojournal >/dev/null 2>&1
test_expect_code 1 "an export whose groups are refused" \
	beta sync-export -c "$T/sync.yaml" "$T/nojournal.plan"
test_grep "... creates the users" '^sync-export: 30 applied, 0 already in place, 3 failed' "$T/err"
ctl /_emulator/faults '{"rules": []}' >/dev/null
rm -rf "$T/beta/journal"
test_expect_code 0 "without its journal, the plan again" \
	beta sync-export -c "$T/sync.yaml" "$T/nojournal.plan"
test_grep "... finds the users in place and creates the groups" '^sync-export: 3 applied, 30 already in place, 0 failed' "$T/err"
check "... with the found users as members"

# ------------------------------------------------------------ hostile anchor
# The refused user's anchor holds ESC [31m and a newline: the failure's
# line on stderr shows them escaped, and stays one line.
ctl /_emulator/reset '{}' >/dev/null
ctl /_emulator/faults '{"rules": []}' >/dev/null
gen "$T/src.snap" 6 1 esc
cycle esc >/dev/null 2>&1
test_expect_code 1 "a refused change whose anchor holds control characters" \
	beta sync-export -c "$T/sync.yaml" "$T/esc.plan"
test_grep "... is listed with the anchor escaped" \
	"^sync-export: line [0-9]*: add user 'dXNl\\\\x1b\\[31m\\\\nforged' failed: 400 Request_BadRequest: " "$T/err"
test_no_grep "... and no raw ESC reaches the terminal" "$(printf '\033')" "$T/err"

# ------------------------------------------------------------ credentials
chmod 644 "$T/secret"
test_expect_code 2 "a client secret file others can read is refused" \
	beta sync-export -c "$T/sync.yaml" "$T/bad.plan"
test_grep "... naming the file" "secret file '$T/secret' is accessible by group or others \(mode 0644\); chmod 600 it" "$T/err"
chmod 600 "$T/secret"

done_testing
