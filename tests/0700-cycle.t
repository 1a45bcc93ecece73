#!/bin/sh
# examples/sync-cycle on two servers, a real slapd as the source and the
# Graph emulator as Entra ID: a staging cycle sends nothing and keeps the
# plan; the active server's cycle exports; the next cycle has nothing to
# do; failover (demote the active, promote the staging) goes on with
# nothing created twice; a role check that fails is an error, not
# staging; and make demo's script runs to its end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

slapd_start
slapd_add "$TOP/examples/demo-directory.ldif" || fail "seed slapd"
cp "$SLAPD_PWFILE" "$T/ldap.pw"

EMU=$TOP/tests/graph-emulator.py TENANT=demo.example
emu_app 6f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11 "$T/entra.secret"
emu_start graph || { fail "the emulator starts"; done_testing; }
DEMO_GRAPH=http://127.0.0.1:$(cat "$T/graph.port")
DEMO_DIR=$T DEMO_LDAP_URL=$SLAPD_LDAPS_URL DEMO_CA=$SLAPD_CA
SYNC_CONFIG=$TOP/examples/demo.yaml
export DEMO_GRAPH DEMO_DIR DEMO_LDAP_URL DEMO_CA SYNC_CONFIG

# writes: requests that change something, served so far
writes() {
	curl -sf "$DEMO_GRAPH/_emulator/log" | python3 -c 'import json, sys
print(len([r for r in json.load(sys.stdin) if r["method"] != "GET"
           and not r.get("control") and "/oauth2/" not in r["path"]]))'
}
# tenant: "name anchor-or-cloud" per user, "group: members" per group
tenant() {
	curl -sf "$DEMO_GRAPH/_emulator/state" | python3 -c 'import json, sys
st = json.load(sys.stdin)
names = {o["id"]: o["displayName"] for o in st["users"] + st["groups"]}
for u in sorted(st["users"], key=lambda u: u["displayName"]):
    print(u["displayName"], "synced" if u.get("onPremisesImmutableId") else "cloud")
for g in sorted(st["groups"], key=lambda g: g["displayName"]):
    print(g["displayName"] + ":", ", ".join(sorted(names[m] for m in g["members"])))'
}
cycle() {
	_s=$1
	shift
	SYNC_SERVER=$_s sh "$TOP/examples/sync-cycle" -w "$T/$_s/cycle" "$@" entra corp
}

test_expect_code 0 "a staging server's cycle succeeds" cycle sync1
test_grep "... and keeps the plan for review" \
	"^sync-cycle: staging: the plan is kept for review in $T/sync1/cycle/plan.txt$" "$T/err"
test_grep "... a plan a person can read" '^\+ add user .*uid=ada,ou=People' "$T/sync1/cycle/plan.txt"
writes >"$T/n"
echo 0 >"$T/want"
test_cmp "... and nothing was written to Entra ID" "$T/want" "$T/n"

test_expect_code 0 "promote sync1" env SYNC_SERVER=sync1 sync-role promote
test_expect_code 0 "the active server's cycle exports" cycle sync1
test_grep "... everything" '^sync-export: 9 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
tenant >"$T/tenant"
cat >"$T/want" <<'EOF'
Ada Lovelace synced
Alan Turing synced
Grace Hopper synced
Linus Torvalds synced
Margaret Hamilton synced
Séamus O'Brien synced
All Staff: Engineering, Research, Séamus O'Brien
Engineering: Grace Hopper, Linus Torvalds, Margaret Hamilton
Research: Ada Lovelace, Alan Turing
EOF
test_cmp "... and Entra ID holds the directory's people and groups" "$T/want" "$T/tenant"

writes >"$T/before"
test_expect_code 0 "the next cycle" cycle sync1
writes >"$T/after"
test_cmp "... has nothing to do and writes nothing" "$T/before" "$T/after"

# A change in the directory, then failover to sync2.
cat >"$T/change.ldif" <<EOF
dn: uid=alan,ou=People,dc=example,dc=org
changetype: modify
replace: title
title: Computer Scientist
EOF
slapd_modify "$T/change.ldif" || fail "change Alan's title"
test_expect_code 1 "sync2 cannot promote while sync1 holds the lease" \
	env SYNC_SERVER=sync2 sync-role promote
test_expect_code 0 "failover: demote sync1" env SYNC_SERVER=sync1 sync-role demote
test_expect_code 0 "... check sync2's plan: the expected change only" cycle sync2
test_grep "... (Alan's new title)" 'jobTitle: "Cryptanalyst" -> "Computer Scientist"' "$T/sync2/cycle/plan.txt"
test_grep "... and nothing else" '^Plan: 0 to add, 1 to update, 0 to delete' "$T/sync2/cycle/plan.txt"
test_expect_code 0 "... promote sync2" env SYNC_SERVER=sync2 sync-role promote
test_expect_code 0 "sync2's cycle exports the change" cycle sync2
test_grep "... one update" '^sync-export: 1 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"

# sync-role check on the active server fails (its lease store gives a
# malformed value): an error, exit 2, never "staging" with exit 0, with
# changes to export and without.
cp "$T/lease" "$T/lease.good"
printf 'garbage\n' >"$T/lease"
test_expect_code 2 "a cycle with nothing to do whose role check fails: an error" cycle sync2
test_grep "... saying why" '^sync-role: .*malformed lease value' "$T/err"
test_grep "... and what it means" '^sync-cycle: sync-role check failed: cannot tell whether this server is active$' "$T/err"
cat >"$T/change.ldif" <<EOF
dn: uid=alan,ou=People,dc=example,dc=org
changetype: modify
replace: title
title: Mathematician
EOF
slapd_modify "$T/change.ldif" || fail "change Alan's title again"
test_expect_code 2 "a cycle with changes whose role check fails: an error" cycle sync2
test_grep "... saying why" '^sync-role: .*malformed lease value' "$T/err"
test_grep "... and that nothing was exported" \
	"^sync-cycle: sync-role check failed: nothing exported; the plan is in $T/sync2/cycle/plan.txt$" "$T/err"
test_no_grep "... not staging" 'staging' "$T/err"
cp "$T/lease.good" "$T/lease"
test_expect_code 0 "the lease repaired, the next cycle exports the change" cycle sync2
test_grep "... one update" '^sync-export: 1 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
test_expect_code 0 "the demoted sync1's cycle finds nothing left to do" cycle sync1
test_expect_code 1 "... and sync1 is staging" env SYNC_SERVER=sync1 sync-role check
tenant >"$T/tenant2"
test_cmp "nothing was created twice" "$T/want" "$T/tenant2"

# make demo's script, end to end.
test_expect_code 0 "examples/demo.sh runs to its end" sh "$TOP/examples/demo.sh"
test_grep "... exports the sample directory" '^sync-export: 9 applied, 0 already in place, 0 failed' "$T/out"
test_grep "... whose next cycle has nothing to do" '^sync-diff: 0 to add, 0 to update, 0 to delete' "$T/out"
test_grep "... and shows a rule change's effect on a staging server" '^Plan: 0 to add, 6 to update, 0 to delete' "$T/out"
test_grep "... its plan names people by UPN" '^  \+ add user "ada@demo\.example" \(anchor ' "$T/out"
test_grep "... groups by display name, members by name" '^      members: .*\+new:"ada@demo\.example" \+new:"alan@demo\.example"$' "$T/out"
test_grep "... and the staging server's rule change names whom it touches" '^~ update user "seamus@demo\.example" ' "$T/out"

done_testing
