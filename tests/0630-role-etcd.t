#!/bin/sh
# sync-role with the lease on a real 3-member etcd cluster on loopback:
# PREFIX/lease taken by a transaction comparing mod_revision, attached to
# an etcd TTL lease, and PREFIX/fence.  Show, promote, refusal, forced
# takeover, demote, the holder killed (its key expires), 40 racing
# rounds, users and passwords, a member killed in the middle of a race
# (two of three keep working), two members killed (no quorum: nobody
# becomes active), TLS with client certificates, and the configuration
# errors.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/role.sh"
. "$(dirname "$0")/etcd.sh"

# conf NAME ENDPOINTS [EXTRA]: $T/NAME.yaml, a server NAME whose lease
# is on etcd at ENDPOINTS (a YAML flow list), with EXTRA lines in the
# etcd section.
conf() {
	cat >"$T/$1.yaml" <<EOF
state_dir: $T/state-$1
connectors:
  dir:
    type: ldap
    url: ldap://127.0.0.1:9
    base_dn: dc=example,dc=org
role:
  server: $1
  duration: \${ROLE_DURATION}
  lease:
    etcd:
      endpoints: $2
      timeout: 2
${3:-}
EOF
}
ROLE_DURATION=60
export ROLE_DURATION

# --- configuration errors: file:line:column, before any cluster exists
bad() {
	printf '%s\n' "$2" >"$T/bad.yaml"
	test_expect_code 2 "bad config: $1" sync-role -c "$T/bad.yaml"
	printf 'sync-role: %s/bad.yaml:%s\n' "$T" "$3" >"$T/want"
	test_cmp "bad config: $1: the message" "$T/want" "$T/err"
}
HEAD="connectors:
  dir:
    type: ldap
    url: ldap://127.0.0.1:9
    base_dn: dc=example,dc=org
role:
  server: a
  lease:"
bad "two stores" "$HEAD
    file: lease
    etcd:
      endpoints: http://127.0.0.1:2379" \
	"9:5: 'lease' must have one key, 'file', 'ldap' or 'etcd'"
bad "no endpoints" "$HEAD
    etcd:
      prefix: /x" \
	"10:7: missing key 'endpoints' (the client URLs of the etcd members)"
bad "an endpoint that is not http" "$HEAD
    etcd:
      endpoints:
        - http://127.0.0.1:2379
        - ftp://127.0.0.1:2379" \
	"12:11: etcd endpoint 'ftp://127.0.0.1:2379' must start with http:// or https://"
bad "an empty list" "$HEAD
    etcd:
      endpoints: []" \
	"10:18: 'endpoints' needs at least one URL"
bad "cert_file without key_file" "$HEAD
    etcd:
      endpoints: https://127.0.0.1:2379
      cert_file: /c.pem" \
	"11:18: 'cert_file' and 'key_file' go together (a client certificate and its key)"
bad "ca_file with http endpoints" "$HEAD
    etcd:
      endpoints: http://127.0.0.1:2379
      ca_file: /ca.pem" \
	"11:16: 'ca_file' needs https:// endpoints"
bad "user without password_file" "$HEAD
    etcd:
      endpoints: http://127.0.0.1:2379
      user: sync" \
	"11:13: 'user' and 'password_file' go together"
bad "a prefix ending in /" "$HEAD
    etcd:
      endpoints: http://127.0.0.1:2379
      prefix: /sync/" \
	"11:15: 'prefix' must be a non-empty key prefix not ending in '/' (the keys are PREFIX/lease and PREFIX/fence)"
bad "timeout 0" "$HEAD
    etcd:
      endpoints: http://127.0.0.1:2379
      timeout: 0" \
	"11:16: 'timeout' must be between 1 and 300, not 0"
bad "an unknown key" "$HEAD
    etcd:
      endpoints: http://127.0.0.1:2379
      endpoint: http://127.0.0.1:2379" \
	"11:7: unknown key 'endpoint'"

etcd_start 3
# Each server lists the members in its own order (two sites, each
# nearest its own member first).
conf a "[$ETCD_URL_1, $ETCD_URL_2, $ETCD_URL_3]"
conf b "[$ETCD_URL_3, $ETCD_URL_2, $ETCD_URL_1]"
A="-c $T/a.yaml"
Bs="-c $T/b.yaml"

# lease_value: PREFIX/lease as etcd holds it (no line when absent).
lease_value() {
	etcd_ctl get /sync/lease --print-value-only
}
lease_field() {
	lease_value | sed -n "s/.*$1=\([^;]*\).*/\1/p"
}
fence_key() {
	etcd_ctl get /sync/fence --print-value-only
}

# --- a new server, promote, refusal
test_expect_code 1 "a new server is staging" sync-role $A
cat >"$T/want" <<EOF
server: a
role: staging
local: staging, fence 0
lease: free, fence 0
EOF
test_cmp "show: a lease never taken is free (no key in etcd)" "$T/want" "$T/out"
test_expect_code 0 "promote a" sync-role $A promote
test_grep "fence 1" '^sync-role: a is active, fence 1, ' "$T/err"
test_expect_code 0 "a is active" sync-role $A check
test_expect_code 1 "promote b: refused" sync-role $Bs promote
test_grep "refusal names the holder" "the lease is held by 'a' \(fence 1\)" "$T/err"
echo a,1,1 >"$T/want"
echo "$(lease_field holder),$(lease_field fence),$(fence_key)" >"$T/got"
test_cmp "etcd holds a's lease and the fence key" "$T/want" "$T/got"
etcd_ctl get /sync/lease -w json >"$T/kv.json"
test_grep "the key is attached to an etcd lease" '"lease":[1-9]' "$T/kv.json"
test_expect_code 1 "b's show: staging" sync-role $Bs
test_grep "b sees a's lease" '^lease: a, fence 1, expires ' "$T/out"

# --- forced takeover
test_expect_code 0 "promote -f b" sync-role $Bs promote -f
test_grep "forced" "^sync-role: took the unexpired lease from 'a'" "$T/err"
test_expect_code 1 "a's next check fails" sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 2" >"$T/want"
test_cmp "a is told who holds it" "$T/want" "$T/err"
test_expect_code 0 "b is active" sync-role $Bs check

# --- demote
test_expect_code 0 "demote b" sync-role $Bs demote
echo "holder=;fence=2;" >"$T/want"
lease_value | sed 's/expires=.*//' >"$T/got"
test_cmp "released in etcd, fence kept" "$T/want" "$T/got"
test_expect_code 0 "a promotes at once" sync-role $A promote
test_grep "fence 3" '^sync-role: a is active, fence 3, ' "$T/err"
sync-role $A demote 2>/dev/null

# --- the holder dies: etcd deletes its key with the TTL, the fence stays
ROLE_DURATION=3
test_expect_code 0 "promote a with a 3 s lease" sync-role $A promote
sleep 4.5
lease_value >"$T/got"
test_cmp "after the TTL, etcd has deleted the lease key" /dev/null "$T/got"
echo 4 >"$T/want"
fence_key >"$T/got"
test_cmp "the fence key stays" "$T/want" "$T/got"
test_expect_code 1 "b's show: the lease is free, fence 4" sync-role $Bs
test_grep "free with fence 4" '^lease: released, fence 4$' "$T/out"
test_expect_code 0 "b promotes: fence 5, not 1" sync-role $Bs promote
test_grep "fence 5" '^sync-role: b is active, fence 5, ' "$T/err"
test_expect_code 1 "a finds it lost the lease" sync-role $A check -v
echo "sync-role: not active: lease lost: held by 'b' with fence 5" >"$T/want"
test_cmp "a is told who holds it" "$T/want" "$T/err"
sync-role $Bs demote 2>/dev/null

# --- the active server killed while a cron renews its lease
role_killed
test_grep "fence 7" '^sync-role: b is active, fence 7, ' "$T/err"
test_expect_code 1 "a finds it lost the lease" sync-role $A check
sync-role $Bs demote 2>/dev/null
ROLE_DURATION=60

# --- races, each server on another member first
role_races 16 100 "on etcd"

# --- users and passwords
ETCD_ROOT_PW=$(new_password)
for s in a b; do
	(umask 077 && new_password | tr -d '\n' >"$T/$s.pw")
done
(umask 077 && echo wrong >"$T/wrong.pw")
{
	etcd_ctl user add "root:$ETCD_ROOT_PW" &&
	etcd_ctl role add sync &&
	etcd_ctl role grant-permission sync readwrite /sync/ --prefix=true &&
	etcd_ctl user add "sync-a:$(cat "$T/a.pw")" &&
	etcd_ctl user add "sync-b:$(cat "$T/b.pw")" &&
	etcd_ctl user add "other:$(cat "$T/b.pw")" &&
	etcd_ctl user grant-role sync-a sync &&
	etcd_ctl user grant-role sync-b sync &&
	ETCD_ROOT_PW= etcd_ctl auth enable
} >"$T/auth.out" 2>&1 || { note_file "$T/auth.out" 20; fail "etcd: enable auth"; }
export ETCD_ROOT_PW
test_expect_code 2 "auth enabled, no user configured: an error" sync-role $A
test_grep "the message says to set user and password_file" \
	"^sync-role: etcd: $ETCD_URL_1/v3/kv/range: etcdserver: user name is empty \(authentication is enabled on the cluster: set 'user' and 'password_file'\)$" "$T/err"
conf a "[$ETCD_URL_1, $ETCD_URL_2, $ETCD_URL_3]" "      user: sync-a
      password_file: $T/a.pw"
conf b "[$ETCD_URL_3, $ETCD_URL_2, $ETCD_URL_1]" "      user: sync-b
      password_file: $T/b.pw"
conf c "[$ETCD_URL_2]" "      user: sync-a
      password_file: $T/wrong.pw"
conf d "[$ETCD_URL_2]" "      user: other
      password_file: $T/b.pw"
_f=$(($(fence_key) + 1))
test_expect_code 0 "with its user, a promotes" sync-role $A promote
test_grep "fence $_f (one more than after the races)" "^sync-role: a is active, fence $_f, " "$T/err"
test_expect_code 1 "with its user, b is refused" sync-role $Bs promote
test_expect_code 2 "a wrong password: an error" sync-role -c "$T/c.yaml" promote
echo "sync-role: etcd: $ETCD_URL_2/v3/auth/authenticate: user 'sync-a': etcdserver: authentication failed, invalid user ID or password" >"$T/want"
test_cmp "the message names the user" "$T/want" "$T/err"
test_expect_code 2 "a user without the role: an error" sync-role -c "$T/d.yaml" promote -f
echo "sync-role: etcd: $ETCD_URL_2/v3/kv/range: etcdserver: permission denied" >"$T/want"
test_cmp "permission denied" "$T/want" "$T/err"
(umask 022 && echo x >"$T/open.pw")
conf e "[$ETCD_URL_2]" "      user: sync-a
      password_file: $T/open.pw"
test_expect_code 2 "a password file others can read: refused" sync-role -c "$T/e.yaml"
test_grep "the secret file check" "^sync-role: etcd: .*open.pw" "$T/err"
sync-role $A demote 2>/dev/null

# --- a member (the leader) killed in the middle of a race; then 2 of 3
# keep working.  Each round: exactly one promote wins, the other is
# refused, the views agree, the lease names the winner with a larger
# fence.
race_round() {
	SYNC_ROLE_TEST_PAUSE=$1 sync-role $A promote >/dev/null 2>"$T/ra.err" 3>&- &
	_pa=$!
	SYNC_ROLE_TEST_PAUSE=$1 sync-role $Bs promote >/dev/null 2>"$T/rb.err" 3>&- &
	_pb=$!
	[ -n "$2" ] && { sleep 0.2; etcd_kill "$2"; }
	wait $_pa; _ra=$?
	wait $_pb; _rb=$?
	sync-role $A >/dev/null 2>&1 3>&-; _va=$?
	sync-role $Bs >/dev/null 2>&1 3>&-; _vb=$?
	lease_value >"$T/lv"
	_holder=$(_role_field holder)
	_fence=$(_role_field fence)
	_why=
	case "$_ra$_rb" in
	01) _w=a ;;
	10) _w=b ;;
	*) _w=; _why="promote exits a=$_ra b=$_rb" ;;
	esac
	[ "$_va$_vb" = "$_ra$_rb" ] || _why="$_why; show exits a=$_va b=$_vb"
	[ "$_holder" = "$_w" ] || _why="$_why; lease holder '$_holder', winner $_w"
	[ "$_fence" -gt "$_prev" ] 2>/dev/null || _why="$_why; fence $_prev -> $_fence"
	[ "$_fence" = "$(fence_key)" ] || _why="$_why; fence key $(fence_key)"
	if [ -n "$_why" ]; then
		_bad=$((_bad + 1))
		note "round $_i: $_why"
		note_file "$T/ra.err" 3
		note_file "$T/rb.err" 3
	fi
	_prev=$_fence
	[ -n "$_w" ] && sync-role -c "$T/$_w.yaml" demote 2>/dev/null 3>&-
}
_prev=$(lease_field fence)
_bad=0
LEADER=$(etcd_leader)
[ -n "$LEADER" ] || fail "etcd: a leader before the kill"
note "killing member $LEADER, the leader, during round 1"
_i=1
race_round 1000 "$LEADER"
_i=2
while [ "$_i" -le "${ROLE_ROUNDS:-8}" ]; do
	race_round $(((_i % 2) * 100))
	_i=$((_i + 1))
done
if [ "$_bad" -eq 0 ]; then
	pass "the leader killed during a race, then $((_i - 2)) rounds on 2 of 3 members: one winner each"
else
	fail "the leader killed during a race, then $((_i - 2)) rounds on 2 of 3 members: one winner each" "$_bad bad rounds"
fi
NEW=$(etcd_leader)
[ -n "$NEW" ] && [ "$NEW" != "$LEADER" ] && pass "another member leads" ||
	fail "another member leads" "leader '$NEW', killed $LEADER"

# --- a second member killed: no quorum, no lease for anyone
for i in 1 2 3; do
	[ "$i" != "$LEADER" ] && [ "$i" != "$NEW" ] && LAST=$i
done
etcd_kill "$NEW"
SYNC_ROLE_TEST_PAUSE=0 sync-role $A promote >"$T/qa.out" 2>"$T/qa.err" 3>&- &
_pa=$!
sync-role $Bs promote >"$T/qb.out" 2>"$T/qb.err" 3>&-
_rb=$?
wait $_pa; _ra=$?
echo 2,2 >"$T/want"
echo "$_ra,$_rb" >"$T/got"
test_cmp "one member of three: both promotes fail (exit 2)" "$T/want" "$T/got"
test_grep "a is told there is no quorum" \
	"^sync-role: etcd: no member answered \(no quorum\? a member without a majority of its cluster neither reads nor writes\): " "$T/qa.err"
test_grep "b is told there is no quorum" "^sync-role: etcd: no member answered \(no quorum\?" "$T/qb.err"
echo "role staging" >"$T/want"
head -n 1 "$T/state-a/role" >"$T/got"
test_cmp "a's view: staging" "$T/want" "$T/got"
head -n 1 "$T/state-b/role" >"$T/got"
test_cmp "b's view: staging" "$T/want" "$T/got"
test_expect_code 1 "check on a: not active" sync-role $A check
test_expect_code 1 "check on b: not active" sync-role $Bs check
test_expect_code 2 "show on a: the lease cannot be read (exit 2)" sync-role $A
test_grep "show says why" "^sync-role: etcd: no member answered \\(no quorum\\?" "$T/err"

# --- TLS with client certificates, on a cluster of one member
ETCD_ROOT_PW=
ETCD_TLS=1 etcd_start 1
conf t "[$ETCD_URL_1]" "      ca_file: $TEST_CA
      cert_file: $T/pki/etcd-client.pem
      key_file: $T/pki/etcd-client.key"
test_expect_code 0 "TLS with a client certificate: promote" sync-role -c "$T/t.yaml" promote
test_grep "fence 1" '^sync-role: t is active, fence 1, ' "$T/err"
echo t,1 >"$T/want"
echo "$(lease_field holder),$(lease_field fence)" >"$T/got"
test_cmp "etcd over TLS holds t's lease" "$T/want" "$T/got"
conf u "[$ETCD_URL_1]" "      ca_file: $TEST_CA"
test_expect_code 2 "TLS without the client certificate: an error" sync-role -c "$T/u.yaml"
test_grep "the TLS failure is reported, with a hint" "^sync-role: etcd: POST $ETCD_URL_1/v3/kv/range failed: .* \\(does the cluster require client certificates\\? set cert_file and key_file\\)$" "$T/err"
conf v "[$ETCD_URL_1]" "      cert_file: $T/pki/etcd-client.pem
      key_file: $T/pki/etcd-client.key"
test_expect_code 2 "TLS without ca_file: an error" sync-role -c "$T/v.yaml"
test_grep "the message says to set ca_file" "set ca_file to the CA that signed it\)$" "$T/err"

done_testing
