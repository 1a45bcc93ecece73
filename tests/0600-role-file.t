#!/bin/sh
# sync-role with the file lease: two servers (two state directories, one
# lease file) on one host.  A new server is staging; promote; the second
# is refused; takeover after expiry and after the active server is
# killed; forced takeover bumps the fence and the old holder's check
# fails; demote releases; 20 rounds (ROLE_ROUNDS) of both servers racing to promote
# never make both active; config errors.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/role.sh"

for s in a b; do
	cat >"$T/$s.yaml" <<EOF
state_dir: $T/state-$s
connectors:
  dir:
    type: ldap
    url: ldap://127.0.0.1:9
    base_dn: dc=example,dc=org
role:
  server: $s
  duration: \${ROLE_DURATION}
  lease:
    file: lease
EOF
done
ROLE_DURATION=60
export ROLE_DURATION
A="-c $T/a.yaml"
B="-c $T/b.yaml"

# lease_field FIELD: the field of the lease file (holder, fence, expires)
lease_field() {
	sed -n "s/.*$1=\([^;]*\).*/\1/p" "$T/lease"
}
lease_value() {
	cat "$T/lease"
}

# --- a new server
test_expect_code 1 "a new server is staging (exit 1)" sync-role $A
cat >"$T/want" <<EOF
server: a
role: staging
local: staging, fence 0
lease: free, fence 0
EOF
test_cmp "show: role, local view and a free lease" "$T/want" "$T/out"
test_expect_code 1 "check: a new server is not active" sync-role $A check
test_cmp "check is silent without -v" /dev/null "$T/err"
test_expect_code 1 "check -v says why" sync-role $A check -v
echo "sync-role: not active: server 'a' is staging" >"$T/want"
test_cmp "check -v message" "$T/want" "$T/err"

# --- promote, refusal
test_expect_code 0 "promote a" sync-role $A promote
test_grep "promote says fence 1" '^sync-role: a is active, fence 1, until ' "$T/err"
test_expect_code 0 "a is active (exit 0)" sync-role $A
sed 's/expires .*/expires X/' "$T/out" >"$T/got"
cat >"$T/want" <<EOF
server: a
role: active
local: active, fence 1
lease: a, fence 1, expires X
EOF
test_cmp "show: a holds the lease with fence 1" "$T/want" "$T/got"
test_expect_code 0 "check: a is active" sync-role $A check
test_expect_code 0 "promote a again: renews, keeps the fence" sync-role $A promote
test_grep "fence still 1" '^sync-role: a is active, fence 1, ' "$T/err"
test_expect_code 1 "promote b while a holds the lease: refused" sync-role $B promote
test_grep "refusal names the holder" \
	"^sync-role: b is staging: the lease is held by 'a' \(fence 1\) for [0-9]+ more seconds; demote it first, or wait$" "$T/err"
test_expect_code 1 "b is not active" sync-role $B check
echo "holder=a fence=1" >"$T/want"
echo "holder=$(lease_field holder) fence=$(lease_field fence)" >"$T/got"
test_cmp "the refused promote changed nothing" "$T/want" "$T/got"

# --- renewal past half the duration
ROLE_DURATION=6 sync-role $A promote 2>/dev/null
e1=$(lease_field expires)
sleep 4
test_expect_code 0 "check past half the lifetime" env ROLE_DURATION=6 sync-role $A check
e2=$(lease_field expires)
if [ "$e2" -gt "$e1" ] && [ "$(lease_field fence)" = 1 ]; then
	pass "check renewed the lease (expires $e1 -> $e2), same fence"
else
	fail "check renewed the lease" "expires $e1 -> $e2, fence $(lease_field fence)"
fi

# --- expiry: a stops renewing; b takes over once the lease expired
ROLE_DURATION=2 sync-role $A promote 2>/dev/null
test_expect_code 1 "b refused before expiry" env ROLE_DURATION=2 sync-role $B promote
sleep 2.5
test_expect_code 0 "b takes the expired lease" env ROLE_DURATION=2 sync-role $B promote
test_grep "new holder, new fence" '^sync-role: b is active, fence 2, ' "$T/err"
test_expect_code 1 "a's check fails: the lease has another holder" sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 2" >"$T/want"
test_cmp "a is told who holds it" "$T/want" "$T/err"
test_expect_code 1 "a is staging now" sync-role $A
test_grep "a's state directory says staging" '^local: staging, fence 1$' "$T/out"
test_expect_code 1 "a's later check fails too (does not retake)" sync-role $A check

# --- forced takeover
sync-role $B promote 2>/dev/null
test_expect_code 1 "a refused while b holds an unexpired lease" sync-role $A promote
test_expect_code 0 "promote -f takes it anyway" sync-role $A promote -f
test_grep "says whose lease it took" \
	"^sync-role: took the unexpired lease from 'b'; it stops before its next export batch$" "$T/err"
test_grep "fence bumped to 3" '^sync-role: a is active, fence 3, ' "$T/err"
test_expect_code 1 "b's next check fails" sync-role $B check -v
echo "sync-role: not active: lease lost: held by 'a' with fence 3" >"$T/want"
test_cmp "b is told" "$T/want" "$T/err"
test_expect_code 1 "b shows staging" sync-role $B
test_grep "b's state directory says staging with its old fence" \
	'^local: staging, fence 2$' "$T/out"

# --- demote
test_expect_code 0 "demote a" sync-role $A demote
echo "sync-role: a is staging; lease released, fence 3" >"$T/want"
test_cmp "demote message" "$T/want" "$T/err"
echo "holder= fence=3" >"$T/want"
echo "holder=$(lease_field holder) fence=$(lease_field fence)" >"$T/got"
test_cmp "released: no holder, fence kept" "$T/want" "$T/got"
test_expect_code 1 "a is not active after demote" sync-role $A check
test_expect_code 0 "b promotes at once after the release" sync-role $B promote
test_grep "fence 4" '^sync-role: b is active, fence 4, ' "$T/err"
test_expect_code 0 "demote of a server that does not hold the lease" sync-role $A demote
test_expect_code 0 "b still active" sync-role $B check
sync-role $B demote 2>/dev/null

# --- the active server killed: its renewals stop, the lease expires
role_killed
test_expect_code 1 "a, back, finds it lost the lease" sync-role $A check
sync-role $B demote 2>/dev/null
ROLE_DURATION=60

# --- races: both promote at the same moment
role_races 20 50 "on a lease file"

# Forced takeovers racing: whoever wrote last holds it, the other's check fails.
sync-role $A promote 2>/dev/null
SYNC_ROLE_TEST_PAUSE=30 sync-role $A promote -f >/dev/null 2>&1 3>&- &
pa=$!
SYNC_ROLE_TEST_PAUSE=30 sync-role $B promote -f >/dev/null 2>&1 3>&- &
pb=$!
wait $pa; wait $pb
sync-role $A check 3>&-; ca=$?
sync-role $B check 3>&-; cb=$?
if [ "$ca$cb" = 01 ] || [ "$ca$cb" = 10 ]; then
	pass "two forced takeovers at once: exactly one check succeeds"
else
	fail "two forced takeovers at once: exactly one check succeeds" "checks a=$ca b=$cb"
fi

# --- errors
test_expect_code 2 "unreadable lease value: error, not a guess" \
	sh -c "printf 'garbage\n' >'$T/lease' && sync-role $A"
test_grep "malformed lease named" \
	"^sync-role: $T/lease: malformed lease value 'garbage' \(expected holder=NAME;fence=N;expires=UNIXTIME\)$" "$T/err"

# config_err NAME ROLE-YAML EXPECTED-STDERR
config_err() {
	{
		printf 'connectors:\n  dir:\n    type: ldap\n    url: ldap://x\n    base_dn: dc=x\n'
		printf '  g:\n    type: graph\n    tenant: t\n    client_id: c\n    client_secret_file: /nonexistent\n'
		printf '%s\n' "$2"
	} >"$T/bad.yaml"
	test_expect_code 2 "config: $1" sync-role -c "$T/bad.yaml"
	echo "$3" >"$T/want"
	test_cmp "config: $1: message" "$T/want" "$T/err"
}
config_err "unknown key in role" "role:
  lease: {file: /x}
  leese: 3" "sync-role: $T/bad.yaml:13:3: unknown key 'leese'"
config_err "lease missing" "role:
  server: a" "sync-role: $T/bad.yaml:12:3: missing required key 'lease'"
config_err "both backends" "role:
  lease: {file: /x, ldap: {connector: dir, dn: cn=x}}" \
	"sync-role: $T/bad.yaml:12:10: 'lease' must have one key, 'file', 'ldap' or 'etcd'"
config_err "lease connector of the wrong type" "role:
  lease:
    ldap: {connector: g, dn: cn=x}" \
	"sync-role: $T/bad.yaml:13:23: connector 'g' is of type graph; the lease needs an ldap or ad connector"
config_err "unknown lease connector" "role:
  lease:
    ldap: {connector: nope, dn: cn=x}" \
	"sync-role: $T/bad.yaml:13:23: no connector named 'nope'"
config_err "margin too large" "role:
  duration: 10
  margin: 5
  lease: {file: /x}" \
	"sync-role: $T/bad.yaml:13:11: 'margin' must be less than half of 'duration' (10)"
config_err "bad server name" "role:
  server: 'a;b'
  lease: {file: /x}" \
	"sync-role: $T/bad.yaml:12:11: invalid server name 'a;b' (letters, digits, '.', '_' and '-', at most 64)"
config_err "no role section" "" \
	"sync-role: $T/bad.yaml: no 'role' section: this server cannot become active (see sync.conf(5), ROLE)"
test_expect_code 2 "usage: unknown command" sync-role $A frobnicate
test_grep "usage line" '^usage: sync-role \[-c config\]$' "$T/err"
test_expect_code 2 "usage: -f outside promote" sync-role $A demote -f
rm -f "$T/lease"
rm -f "$T/lease"
test_expect_code 2 "show to a full disk fails" sh -c "sync-role $A >/dev/full"
test_grep "write error reported" '^sync-role: cannot write to standard output' "$T/err"

# A lease file holding escape sequences (anyone who can write it): the
# message quoting it shows them escaped, so they never reach a terminal.
printf 'holder=\033[31mx\033]0;t\007;fence=9;expires=1\n' >"$T/lease"
test_expect_code 2 "a lease value with control characters is refused" sync-role $A
echo "sync-role: $T/lease: malformed lease value 'holder=\\x1b[31mx\\x1b]0;t\\x07;fence=9;expires=1' (expected holder=NAME;fence=N;expires=UNIXTIME)" >"$T/want"
test_cmp "... quoted with its control characters escaped" "$T/want" "$T/err"
rm -f "$T/lease"

done_testing
