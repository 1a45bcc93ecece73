#!/bin/sh
# The links of the Graph service carry the bearer token: sync-import
# follows a nextLink or deltaLink (from a response, or from the cookie of
# a snapshot, a file that may have been edited) only to the scheme, host
# and port of graph_url, under its path; and the pages of a listing end,
# even when the service sends the same nextLink without end.  Each
# refusal exits 2, writes nothing and sends nothing to the other place.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/secret"
emu_start emu || _lib_fatal "start the Graph emulator"
P=$(cat "$T/emu.port")
BASE=http://127.0.0.1:$P
# Another service on another port, the same tenant: a token is good there.
emu_start evil || _lib_fatal "start the other emulator"
Q=$(cat "$T/evil.port")

# 12 users: three pages of 5
python3 - >"$T/seed.json" <<'EOF'
import json
print(json.dumps({"users": [{"id": "00000000-0000-4000-8000-%012d" % i,
    "displayName": "User %02d" % i, "userPrincipalName": "u%02d@contoso.example" % i,
    "mailNickname": "u%02d" % i, "accountEnabled": True} for i in range(12)],
    "groups": []}))
EOF
ctl /_emulator/seed "$(cat "$T/seed.json")" >/dev/null || fail "seed the emulator"
emu_conf "$T/sync.yaml" "page_size: 5" "objects:" "  user: { attributes: [ givenName ] }"
SEL='$select=id,onPremisesImmutableId,userPrincipalName,displayName,mail,mailNickname,accountEnabled,givenName'

# faults JSON: the emulator's settings, the others back to normal
faults() {
	ctl /_emulator/faults "{\"next_link_base\": \"\", \"delta_link_base\": \"\",
		\"next_link_loop\": false, \"empty_page\": 0, $1}" >/dev/null ||
		fail "set $1"
}
# gets WHAT: the number of GETs of WHAT (a path without query) served
gets() {
	ctl /_emulator/log | python3 -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)
          if e["method"] == "GET" and e["path"].split("?")[0] == sys.argv[1]))' "$1"
}
# untouched DESC: the other emulator was sent nothing at all
untouched() {
	if [ -s "$T/evil.log" ]; then fail "$1" "$(head -c 300 "$T/evil.log")"
	else pass "$1"; fi
}
# refused DESC CONF SNAP MESSAGE [ARGS...]: sync-import exits 2 with
# MESSAGE and writes no SNAP
refused() {
	_d=$1 _c=$2 _s=$3 _m=$4
	shift 4
	rm -f "$_s"
	test_expect_code 2 "$_d" timeout 60 sync-import -c "$_c" "$@" -o "$_s" entra
	echo "$_m" >"$T/want"
	test_cmp "... with exactly that message" "$T/want" "$T/err"
	ok "... and writes no snapshot" test ! -e "$_s"
}

test_expect_code 0 "a full import over three pages" \
	sync-import -c "$T/sync.yaml" -o "$T/s1.snap" entra
test_grep "... of every user" '^sync-import: entra: 12 users, 0 groups, 0 contacts$' "$T/err"

# --------------------------------------------------------- nextLinks
faults "\"next_link_base\": \"http://127.0.0.1:$Q\""
n=$(gets /v1.0/users)
refused "a nextLink to another port" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow a nextLink to 'http://127.0.0.1:$Q': not the scheme, host and port of graph_url"
untouched "... which is sent nothing, the token least of all"
test "$(gets /v1.0/users)" = $((n + 1))
ok "... after the first page, nothing more is asked" test $? = 0

faults "\"next_link_base\": \"http://localhost:$P\""
n=$(gets /v1.0/users)
refused "a nextLink to another host (the same port)" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow a nextLink to 'http://localhost:$P': not the scheme, host and port of graph_url"
test "$(gets /v1.0/users)" = $((n + 1))
ok "... after the first page, nothing more is asked" test $? = 0

faults '"next_link_base": "http://127.0.0.1"'
refused "a nextLink without a port is to port 80" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow a nextLink to 'http://127.0.0.1:80': not the scheme, host and port of graph_url"

# The host in another case is the same host.
emu_conf "$T/lower.yaml" "page_size: 5" "objects:" "  user: { attributes: [ givenName ] }"
sed -i "s|graph_url: .*|graph_url: http://localhost:$P/v1.0|" "$T/lower.yaml"
faults "\"next_link_base\": \"http://LocalHost:$P\""
test_expect_code 0 "a nextLink to the host of graph_url in another case is followed" \
	sync-import -c "$T/lower.yaml" -o "$T/lower.snap" entra
test_grep "... to the last page" '^sync-import: entra: 12 users, 0 groups, 0 contacts$' "$T/err"

# Plain http when graph_url is https, on the same host and port.
pki_server_cert graph "IP:127.0.0.1,DNS:localhost" || fail "make the server certificate"
emu_start tls --tls-cert "$T/pki/graph.pem" --tls-key "$T/pki/graph.key" ||
	fail "start the HTTPS emulator"
R=$(cat "$T/tls.port")
BASE=https://127.0.0.1:$R
ctl /_emulator/seed "$(cat "$T/seed.json")" >/dev/null || fail "seed the HTTPS emulator"
emu_conf "$T/tls.yaml" "page_size: 5" "ca_file: $TEST_CA" "objects:" \
	"  user: { attributes: [ givenName ] }"
faults "\"next_link_base\": \"http://127.0.0.1:$R\""
refused "a nextLink over http when graph_url is https" "$T/tls.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow a nextLink to 'http://127.0.0.1:$R': not the scheme, host and port of graph_url"
faults "\"next_link_base\": \"https://127.0.0.1:$R\""
test_expect_code 0 "... https with the port given is followed" \
	sync-import -c "$T/tls.yaml" -o "$T/tls.snap" entra
BASE=http://127.0.0.1:$P

# --------------------------------------------------------- deltaLinks
faults "\"delta_link_base\": \"http://127.0.0.1:$Q\""
refused "a deltaLink to another port, in a full import" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow a deltaLink to 'http://127.0.0.1:$Q': not the scheme, host and port of graph_url"
faults '"page_size": 100'

# edit FROM TO: s2.snap is s1.snap with FROM replaced by TO in the cookie
edit() {
	python3 - "$T/s1.snap" "$T/s2.snap" "$1" "$2" <<'EOF'
import json, sys
src, dst, a, b = sys.argv[1:5]
lines = open(src).read().split("\n")
h = json.loads(lines[0])
assert a in h["cookie"]
h["cookie"] = h["cookie"].replace(a, b)
lines[0] = json.dumps(h, separators=(",", ":"))
open(dst, "w").write("\n".join(lines))
EOF
}
edit "http://127.0.0.1:$P/" "http://127.0.0.1:$Q/"
n=$(gets /v1.0/users/delta)
refused "sync-import -d: a deltaLink of the cookie to another port" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow the user deltaLink of '$T/s2.snap' to 'http://127.0.0.1:$Q': not the scheme, host and port of graph_url" \
	-d "$T/s2.snap"
untouched "... which is sent nothing"
test "$(gets /v1.0/users/delta)" = "$n"
ok "... and no round is asked of the service either" test $? = 0
edit "http://127.0.0.1:$P/v1.0/users/delta" "http://127.0.0.1:$P/beta/users/delta"
refused "sync-import -d: a deltaLink of the cookie outside graph_url's path" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow the user deltaLink of '$T/s2.snap' to '/beta/users/delta': not under '/v1.0/', the path of graph_url" \
	-d "$T/s2.snap"
edit "http://127.0.0.1:$P/v1.0/users/delta" "http://127.0.0.1:$P/v1.0/../beta/users/delta"
refused "... also by way of '..'" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: refusing to follow the user deltaLink of '$T/s2.snap' to '/beta/users/delta': not under '/v1.0/', the path of graph_url" \
	-d "$T/s2.snap"
test_expect_code 0 "sync-import -d with the cookie as written" \
	sync-import -c "$T/sync.yaml" -d "$T/s1.snap" -o "$T/s3.snap" entra
test_grep "... is a delta" '\(delta: 0 changed\)$' "$T/err"
untouched "the other emulator was sent nothing in all these runs"

# --------------------------------------------------------- endless pages
faults '"page_size": 100, "next_link_loop": true'
n=$(gets /v1.0/users)
refused "a nextLink to the page itself without end" "$T/sync.yaml" "$T/x.snap" \
	"sync-import: entra: GET $BASE/v1.0/users?$SEL&\$top=5: a nextLink to the page itself 100 times in a row"
test "$(gets /v1.0/users)" = $((n + 101))
ok "... ends after 101 requests" test $? = 0

# The quirk it must not be confused with: empty pages with a nextLink to
# the same place, many in a row.
faults '"page_size": 100, "empty_page": 0.9, "seed": 5'
n=$(gets /v1.0/users)
test_expect_code 0 "empty pages with a nextLink to the same place are followed" \
	sync-import -c "$T/sync.yaml" -o "$T/e.snap" entra
test_grep "... to the last page" '^sync-import: entra: 12 users, 0 groups, 0 contacts$' "$T/err"
n=$(($(gets /v1.0/users) - n))
if [ "$n" -gt 3 ]; then pass "... $n requests for three pages: empty ones among them"
else fail "... empty pages among them" "$n requests for three pages"; fi
faults '"page_size": 100'

emu_conf "$T/max.yaml" "page_size: 5" "max_pages: 2" "objects:" "  user: { attributes: [ givenName ] }"
refused "more pages than max_pages" "$T/max.yaml" "$T/x.snap" \
	"sync-import: entra: GET $BASE/v1.0/users?$SEL&\$top=5: more than 2 pages (max_pages)"
sed -i 's/max_pages: 2/max_pages: 3/' "$T/max.yaml"
test_expect_code 0 "... as many as max_pages are read" \
	sync-import -c "$T/max.yaml" -o "$T/m.snap" entra
sed -i 's/max_pages: 3/max_pages: 0/' "$T/max.yaml"
test_expect_code 2 "max_pages: 0 is refused" sync-import -c "$T/max.yaml" -o "$T/m.snap" entra
test_grep "... with its position" "^sync-import: $T/max.yaml:[0-9]+:[0-9]+: 'max_pages' must be between 1 and 1000000000, not 0$" "$T/err"

done_testing
