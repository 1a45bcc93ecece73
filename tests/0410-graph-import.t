#!/bin/sh
# sync-import from Entra ID, against the Graph emulator: users and groups
# over many pages compared with the emulator's own state, $select sent,
# token renewal mid-run, throttling storms, 503s and dropped connections,
# the retry budget, secret and certificate credentials, TLS, and names
# with apostrophes and non-ASCII letters.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
CERTCID=7d2e4b10-0c3a-4f6e-8d21-5a9b3c4d2e01
OTHERCID=9a8b7c6d-1111-4222-8333-444455556666
EXT=extension_0123456789abcdef0123456789abcdef_syncAnchor

# A secret with the characters that must be URL-encoded in the form.
printf 'S3cr+t&v@lue=~%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$T/secret"
chmod 600 "$T/secret"
SECRET=$(cat "$T/secret")
printf 'not-the-secret\n' >"$T/wrong.secret"
chmod 600 "$T/wrong.secret"
cp "$T/secret" "$T/open.secret"
chmod 644 "$T/open.secret"

# The app's certificate (RSA, as Entra ID takes), and another one.
for n in app other; do
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/$n.key" \
		-out "$T/$n.pem" -days 2 -subj "/CN=sync $n" \
		>>"$T/openssl.log" 2>&1 || fail "make the $n certificate"
	chmod 600 "$T/$n.key"
done
cat >"$T/apps.json" <<EOF
[{"client_id": "$CID", "secret": "$SECRET"},
 {"client_id": "$CERTCID", "cert_file": "$T/app.pem"},
 {"client_id": "$OTHERCID", "cert_file": "$T/other.pem"}]
EOF

# conf FILE [KEY: VALUE]...: a config for the emulator at $BASE
conf() {
	_f=$1
	shift
	{
		echo "state_dir: $T/state"
		echo "connectors:"
		echo "  entra:"
		echo "    type: graph"
		echo "    tenant: $TENANT"
		echo "    token_url: $BASE/$TENANT/oauth2/v2.0/token"
		echo "    page_size: 7"
		for _kv in "$@"; do
			echo "    $_kv"
		done
		case " $* " in *client_id:*) ;; *) echo "    client_id: $CID" ;; esac
		case " $* " in
		*secret_file:* | *certificate_file:*) ;;
		*) echo "    client_secret_file: $T/secret" ;;
		esac
		case " $* " in *allow_http:*) ;; *) echo "    allow_http: true" ;; esac
		case " $* " in *timeout:*) ;; *) echo "    timeout: 10" ;; esac
		case " $* " in *graph_url:*) ;; *) echo "    graph_url: $BASE/v1.0" ;; esac
		cat <<EOF
    objects:
      user:
        attributes: [ givenName, surname, proxyAddresses, employeeId,
          onPremisesExtensionAttributes.extensionAttribute1, $EXT ]
      group:
        attributes: [ description, proxyAddresses, $EXT ]
EOF
	} >"$_f"
}

# The directory: 40 users (6 pages of 7), 5 groups, one with 30 members
# (5 pages) and one nested; cloud-only objects with fixed ids; names with
# apostrophes, accents, non-Latin letters.
python3 - "$EXT" >"$T/seed.json" <<'EOF'
import json, sys
ext = sys.argv[1]
users = []
names = ["Seán O'Brien", "Émilie Straße-Ωmega", "Zoë D'Arcy", "李 小龙",
         "Jean-François Lefèvre"]
for i in range(40):
    u = {"id": "00000000-0000-4000-8000-%012d" % (i + 1),
         "displayName": names[i] if i < len(names) else "User %02d" % i,
         "userPrincipalName": ("o'brien" if i == 0 else "user%02d" % i) + "@contoso.example",
         "mailNickname": "user%02d" % i, "accountEnabled": i % 5 != 3,
         "givenName": "Given%d" % i if i % 4 else None}
    if i % 2 == 0:
        u["onPremisesImmutableId"] = "ab+c/%02d==" % i
        u["onPremisesSyncEnabled"] = True
    if i % 3 == 0:
        u["mail"] = "user%02d@contoso.example" % i
        u["proxyAddresses"] = ["SMTP:user%02d@contoso.example" % i,
                               "smtp:alias%02d@contoso.example" % i]
    if i % 7 == 0:
        u["onPremisesExtensionAttributes"] = {
            "extensionAttribute%d" % k: ("ea%d-%d" % (k, i) if k in (1, 15) else None)
            for k in range(1, 16)}
    if i == 9:
        u["employeeId"] = "E 009 'quoted'"
    users.append(u)
groups = [
    {"id": "10000000-0000-4000-8000-000000000001", "displayName": "All Staff",
     "mailNickname": "all", "mailEnabled": False, "securityEnabled": True,
     "members": [u["id"] for u in users[:30]], ext: "ANCHOR/g1+=="},
    {"id": "10000000-0000-4000-8000-000000000002", "displayName": "Ops & D'Angelo's Ünïcode",
     "mailNickname": "ops", "mailEnabled": True, "securityEnabled": False,
     "groupTypes": ["Unified"], "mail": "ops@contoso.example",
     "proxyAddresses": ["SMTP:ops@contoso.example"],
     "members": ["00000000-0000-4000-8000-000000000002", "10000000-0000-4000-8000-000000000001"]},
    {"id": "10000000-0000-4000-8000-000000000003", "displayName": "Empty",
     "mailNickname": "empty", "mailEnabled": False, "securityEnabled": True,
     "description": "no members at all"},
    {"displayName": "Cloud only (admins)", "mailNickname": "cloudadmins",
     "mailEnabled": False, "securityEnabled": True,
     "members": ["o'brien@contoso.example"]},
    {"displayName": "Seven", "mailNickname": "seven", "mailEnabled": False,
     "securityEnabled": True, "members": [u["id"] for u in users[30:37]]},
]
print(json.dumps({"users": users, "groups": groups}))
EOF

# The oracle: the emulator's state, projected onto what was selected.
cat >"$T/oracle.py" <<'EOF'
import json, sys, urllib.request
snap, base, ext = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = None
if base.startswith("https"):
    import ssl
    ctx = ssl.create_default_context(cafile=sys.argv[4])
st = json.load(urllib.request.urlopen(base + "/_emulator/state", context=ctx))
sel = {"user": ["onPremisesImmutableId", "userPrincipalName", "displayName", "mail",
                "mailNickname", "accountEnabled", "givenName", "surname",
                "proxyAddresses", "employeeId", "onPremisesExtensionAttributes", ext],
       "group": ["displayName", "mail", "mailNickname", "mailEnabled", "securityEnabled",
                 "groupTypes", "description", "proxyAddresses", ext]}
def vals(v):
    if v is None: return []
    if isinstance(v, bool): return ["true" if v else "false"]
    if isinstance(v, (int, float)): return [str(v)]
    if isinstance(v, list): return [x for e in v for x in vals(e)]
    return [v]
def attrs(kind, o):
    a = {}
    for p in sel[kind]:
        v = o.get(p)
        if isinstance(v, dict):
            for k, x in v.items():
                if vals(x): a[p + "." + k] = sorted(vals(x))
        elif vals(v):
            a[p] = sorted(vals(v))
    if kind == "group" and o["members"]:
        a["members"] = sorted(o["members"])
    return a
want = {}
for kind, objs in (("user", st["users"]), ("group", st["groups"])):
    for o in objs:
        want[o["id"]] = {"anchor": o["id"], "id": o["id"], "type": kind,
                         "attrs": attrs(kind, o)}
lines = open(snap, encoding="utf-8").read().split("\n")
got = {}
for l in lines[1:-1]:
    o = json.loads(l)
    got[o["anchor"]] = o
bad = 0
for k in sorted(set(want) | set(got)):
    if want.get(k) != got.get(k):
        bad += 1
        print("want", json.dumps(want.get(k), ensure_ascii=False, sort_keys=True))
        print("got ", json.dumps(got.get(k), ensure_ascii=False, sort_keys=True))
anchors = [l for l in lines[1:-1]]
print("objects", len(got), "differences", bad)
sys.exit(1 if bad or not want else 0)
EOF

emu_start http || _lib_fatal "start the Graph emulator"
BASE=http://127.0.0.1:$(cat "$T/http.port")
ctl /_emulator/seed "$(cat "$T/seed.json")" >"$T/seed.out" || fail "seed the emulator"
conf "$T/sync.yaml"

test_expect_code 0 "import users and groups over plain HTTP (allow_http)" \
	sync-import -c "$T/sync.yaml" -o "$T/a.snap" entra
test_grep "summary counts per type" \
	'^sync-import: entra: 40 users, 5 groups, 0 contacts$' "$T/err"
ok "every object equals the emulator's state, and nothing else" \
	python3 "$T/oracle.py" "$T/a.snap" "$BASE" "$EXT"
[ $? -eq 0 ] || note_file "$T/ok.out"

python3 - "$T/a.snap" >"$T/hdr" <<'EOF'
import json, sys
h = json.loads(open(sys.argv[1]).readline())
print(h['format'], h['version'], h['connector'], h['connector_type'], h['kind'],
      h['counts']['user'], h['counts']['group'], h['source'])
EOF
echo "sync-snapshot 1 entra graph full 40 5 $BASE/v1.0" >"$T/hdr.want"
test_cmp "header: connector type graph, the Graph URL as source" "$T/hdr.want" "$T/hdr"

python3 - "$T/a.snap" >"$T/specific" <<'EOF'
import json, sys
objs = {}
for l in open(sys.argv[1], encoding="utf-8").read().split("\n")[1:-1]:
    o = json.loads(l)
    objs[o["id"]] = o
u = lambda i: objs["00000000-0000-4000-8000-%012d" % i]["attrs"]
g = lambda i: objs["10000000-0000-4000-8000-%012d" % i]["attrs"]
print(u(1)["displayName"], u(1)["userPrincipalName"], u(2)["displayName"], u(5)["displayName"])
print(u(1)["onPremisesImmutableId"], u(1)["accountEnabled"], u(4)["accountEnabled"])
print(u(1)["proxyAddresses"])
print(u(1)["onPremisesExtensionAttributes.extensionAttribute1"],
      u(1)["onPremisesExtensionAttributes.extensionAttribute15"],
      "onPremisesExtensionAttributes.extensionAttribute2" in u(1))
print(u(10)["employeeId"], "givenName" in u(1), "mail" in u(2))
print(g(1)["extension_0123456789abcdef0123456789abcdef_syncAnchor"], len(g(1)["members"]))
print(g(2)["displayName"], g(2)["groupTypes"], g(2)["members"])
print("members" in g(3), g(3)["description"])
print(sorted(o["type"] for o in objs.values() if "dn" in o))
EOF
cat >"$T/specific.want" <<'EOF'
["Seán O'Brien"] ["o'brien@contoso.example"] ['Émilie Straße-Ωmega'] ['Jean-François Lefèvre']
['ab+c/00=='] ['true'] ['false']
['SMTP:user00@contoso.example', 'smtp:alias00@contoso.example']
['ea1-0'] ['ea15-0'] False
["E 009 'quoted'"] False False
['ANCHOR/g1+=='] 30
["Ops & D'Angelo's Ünïcode"] ['Unified'] ['00000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000001']
False ['no members at all']
[]
EOF
test_cmp "apostrophes, non-ASCII, booleans, arrays, nested and extension properties" \
	"$T/specific.want" "$T/specific"

python3 - "$T/seed.out" "$T/a.snap" >"$T/cloud" <<'EOF'
import json, sys
ids = json.load(open(sys.argv[1]))["ids"]
snap = {json.loads(l)["id"]: json.loads(l)
        for l in open(sys.argv[2], encoding="utf-8").read().split("\n")[1:-1]}
for gid in ids["groups"][3:]:
    o = snap.get(gid)
    print(o["type"] if o else "MISSING", o["anchor"] == gid if o else "")
EOF
printf 'group True\ngroup True\n' >"$T/cloud.want"
test_cmp "cloud-only objects seeded with generated ids are there, by id" \
	"$T/cloud.want" "$T/cloud"

# What went over the wire, from the emulator's log.
python3 - "$T/http.log" "$EXT" >"$T/wire" <<'EOF'
import json, sys, urllib.parse
log = [json.loads(l) for l in open(sys.argv[1])]
g = [e for e in log if e["path"].startswith("/v1.0/")]
first = {}
for e in g:
    p = e["path"].split("?")[0]
    if p in ("/v1.0/users", "/v1.0/groups") and p not in first:
        first[p] = dict(urllib.parse.parse_qsl(e["path"].split("?", 1)[1]))
for p in sorted(first):
    print(p, first[p]["$select"], first[p]["$top"])
for e in g:
    p = e["path"].split("?")[0]
    if p.endswith("/delta"):
        q = dict(urllib.parse.parse_qsl(e["path"].split("?", 1)[1]))
        print(p, q.get("$deltatoken"), q["$select"])
print("user pages", sum(1 for e in g if e["path"].split("?")[0] == "/v1.0/users"))
print("member pages of the 30", sum(1 for e in g if e["path"].startswith(
    "/v1.0/groups/10000000-0000-4000-8000-000000000001/members")))
print("member $select", all("$select=id" in e["path"] for e in g if "/members" in e["path"]))
print("all authorized", all(e["authorization"] for e in g))
print("low priority", all(e["headers"].get("x-ms-throttle-priority") == "low" for e in g))
crids = [e["headers"].get("client-request-id") for e in log if not e.get("control")]
print("client-request-ids", len(crids) == len(set(crids)) and all(len(c or "") == 36 for c in crids))
tok = [e for e in log if e["path"].endswith("/oauth2/v2.0/token")]
print("tokens", len(tok), tok[0]["body"]["client_secret"], tok[0]["body"]["scope"])
EOF
cat >"$T/wire.want" <<EOF
/v1.0/groups id,displayName,mail,mailNickname,mailEnabled,securityEnabled,groupTypes,description,proxyAddresses,$EXT 7
/v1.0/users id,onPremisesImmutableId,userPrincipalName,displayName,mail,mailNickname,accountEnabled,givenName,surname,proxyAddresses,employeeId,onPremisesExtensionAttributes,$EXT 7
/v1.0/users/delta latest id,onPremisesImmutableId,userPrincipalName,displayName,mail,mailNickname,accountEnabled,givenName,surname,proxyAddresses,employeeId,onPremisesExtensionAttributes,$EXT
/v1.0/groups/delta latest id,displayName,mail,mailNickname,mailEnabled,securityEnabled,groupTypes,description,proxyAddresses,$EXT,members
user pages 6
member pages of the 30 5
member \$select True
all authorized True
low priority True
client-request-ids True
tokens 1 <redacted> https://graph.microsoft.com/.default
EOF
test_cmp "\$select and \$top sent, nextLinks followed, deltaLinks for the cookie, one token, headers" \
	"$T/wire.want" "$T/wire"

test_expect_code 0 "a second import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/b.snap" entra
tail -n +2 "$T/a.snap" >"$T/a.body"
tail -n +2 "$T/b.snap" >"$T/b.body"
test_cmp "gives the same object lines" "$T/a.body" "$T/b.body"

# Without configured attributes: the default list.
sed '/^    objects:/,$d' "$T/sync.yaml" >"$T/default.yaml"
test_expect_code 0 "import with the default attribute lists" \
	sync-import -q -c "$T/default.yaml" -o "$T/d.snap" entra
test_grep "... reads onPremisesSyncEnabled and the extension attributes" \
	'"onPremisesExtensionAttributes.extensionAttribute1":\["ea1-0"\].*"onPremisesSyncEnabled":\["true"\]' "$T/d.snap"

# Token renewal: tokens that live 3 s (renewed at half-life, which leaves
# 1.5 s for a request under a loaded CI machine), pages of 0.15 s each.
ctl /_emulator/faults '{"token_lifetime": 3, "latency_ms": 150}' >/dev/null
: >"$T/http.log"
test_expect_code 0 "tokens that expire during the run are renewed" \
	sync-import -q -c "$T/sync.yaml" -o "$T/c.snap" entra
tail -n +2 "$T/c.snap" >"$T/c.body"
test_cmp "... same objects" "$T/a.body" "$T/c.body"
python3 - "$T/http.log" >"$T/renew" <<'EOF'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
print("renewed", sum(1 for e in log if e["path"].endswith("/token")) >= 2,
      "401s", sum(1 for e in log if e.get("status") == 401))
EOF
echo "renewed True 401s 0" >"$T/renew.want"
test_cmp "... before they expire (no 401)" "$T/renew.want" "$T/renew"

# A token refused mid-run (revoked): one renewal, the request again.
ctl /_emulator/faults '{"token_lifetime": 3599, "latency_ms": 0,
  "rules": [{"method": "GET", "path": "^/v1.0/groups\\?", "action": "401", "times": 1}]}' >/dev/null
: >"$T/http.log"
test_expect_code 0 "a 401 mid-run renews the token and retries" \
	sync-import -q -c "$T/sync.yaml" -o "$T/e.snap" entra
tail -n +2 "$T/e.snap" >"$T/e.body"
test_cmp "... same objects" "$T/a.body" "$T/e.body"
python3 - "$T/http.log" >"$T/renew401" <<'EOF'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
print("tokens", sum(1 for e in log if e["path"].endswith("/token")),
      "401s", sum(1 for e in log if e.get("status") == 401))
EOF
echo "tokens 2 401s 1" >"$T/renew401.want"
test_cmp "... with exactly one more token" "$T/renew401.want" "$T/renew401"

# Storms: 30% 429 (fractional Retry-After), 10% 503, 10% dropped
# connections, 30% empty pages with a nextLink.
ctl /_emulator/faults '{"fault_429": 0.3, "fault_503": 0.1, "fault_drop": 0.1,
  "empty_page": 0.3, "retry_after": "0.05", "seed": 7}' >/dev/null
: >"$T/http.log"
test_expect_code 0 "429 storm, 503s, dropped connections and empty pages" \
	sync-import -q -c "$T/sync.yaml" -o "$T/f.snap" entra
tail -n +2 "$T/f.snap" >"$T/f.body"
test_cmp "... give the same objects" "$T/a.body" "$T/f.body"
python3 - "$T/http.log" >"$T/storm" <<'EOF'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
f = [e.get("fault") for e in log]
print("429", f.count("429") > 1, "503", f.count("503") > 0, "drop", f.count("drop") > 0)
EOF
echo "429 True 503 True drop True" >"$T/storm.want"
test_cmp "... (the faults did happen)" "$T/storm.want" "$T/storm"
ctl /_emulator/faults '{"fault_429": 0, "fault_503": 0, "fault_drop": 0,
  "empty_page": 0, "retry_after": "1"}' >/dev/null

# Retry-After with a fraction is honoured to the fraction: three 429s
# with 0.7 s take at least 2.1 s (libcurl's own reading would say 0).
ctl /_emulator/faults '{"rules": [{"method": "GET", "path": "^/v1.0/users\\?",
  "action": "429", "retry_after": "0.7", "times": 3}]}' >/dev/null
t0=$(date +%s%N)
test_expect_code 0 "three 429s with Retry-After: 0.7" \
	sync-import -q -c "$T/sync.yaml" -o "$T/g.snap" entra
t1=$(date +%s%N)
if [ $(((t1 - t0) / 1000000)) -ge 2100 ]; then
	pass "... waited 3 x 0.7 s"
else
	fail "... waited 3 x 0.7 s" "took $(((t1 - t0) / 1000000)) ms"
fi

# A response that does not come in time: the request is sent again.
conf "$T/timeout.yaml" "timeout: 1" "graph_url: $BASE/v1.0/"
ctl /_emulator/faults '{"slow_ms": 3000, "rules": [{"method": "GET",
  "path": "^/v1.0/groups/10000000-0000-4000-8000-000000000001/members", "action": "slow", "times": 1}]}' >/dev/null
test_expect_code 0 "a request that times out is retried (graph_url with a trailing /)" \
	sync-import -q -c "$T/timeout.yaml" -o "$T/t.snap" entra
tail -n +2 "$T/t.snap" >"$T/t.body"
test_cmp "... same objects" "$T/a.body" "$T/t.body"

# The retry budget: a service that stays unavailable.
conf "$T/budget.yaml" "retry_budget: 3"
ctl /_emulator/faults '{"fault_503": 1.0, "retry_after": "2"}' >/dev/null
test_expect_code 2 "a 503 that lasts past the retry budget is an error" \
	sync-import -c "$T/budget.yaml" -o "$T/h.snap" entra
test_grep "... naming method, URL, status, code, message, request id, budget" \
	"^sync-import: entra: GET $BASE/v1\.0/users/delta\?\\\$select=id,.*&\\\$deltatoken=latest failed: 503 serviceNotAvailable: Service is temporarily unavailable\. Please retry later\. \(request-id [-0-9a-f]{36}\) \(gave up after 2 attempts: the retry budget of 3 s is spent\)$" "$T/err"
test_expect_code 1 "... and writes nothing" test -e "$T/h.snap"
ctl /_emulator/faults '{"fault_503": 0, "retry_after": "1", "fault_drop": 1.0}' >/dev/null
test_expect_code 2 "connections dropped past the retry budget" \
	sync-import -c "$T/budget.yaml" -o "$T/h.snap" entra
test_grep "... is an error with curl's reason" \
	"^sync-import: entra: GET $BASE/v1\.0/users/delta\?.* failed: .*(Empty reply|nothing|Recv failure).*\(gave up after [0-9]+ attempts: the retry budget of 3 s is spent\)$" "$T/err"
ctl /_emulator/faults '{"fault_drop": 0}' >/dev/null

# A permanent error is not retried.
ctl /_emulator/faults '{"rules": [{"method": "GET", "path": "^/v1.0/groups\\?",
  "action": "403", "times": 1}]}' >/dev/null
: >"$T/http.log"
test_expect_code 2 "a 403 stops the import" \
	sync-import -c "$T/sync.yaml" -o "$T/h.snap" entra
test_grep "... with the service's code and message" \
	"^sync-import: entra: GET $BASE/v1\.0/groups\?\\\$select=id,.* failed: 403 UnknownError: Injected failure\. \(request-id [-0-9a-f]{36}\)$" "$T/err"
python3 - "$T/http.log" >"$T/once" <<'EOF'
import json, sys
print("403s", sum(1 for l in open(sys.argv[1]) if json.loads(l).get("status") == 403))
EOF
echo "403s 1" >"$T/once.want"
test_cmp "... at once, without retries" "$T/once.want" "$T/once"

# The members are read over all connections at once: a failure there
# stops the import too, with that request's error, and writes nothing.
ctl /_emulator/faults '{"rules": [{"method": "GET",
  "path": "^/v1.0/groups/10000000-0000-4000-8000-000000000002/members",
  "action": "403", "times": 1}]}' >/dev/null
rm -f "$T/m.snap"
test_expect_code 2 "a 403 on one group's members stops the import" \
	sync-import -c "$T/sync.yaml" -o "$T/m.snap" entra
test_grep "... with that request's error" \
	"^sync-import: entra: GET $BASE/v1\.0/groups/10000000-0000-4000-8000-000000000002/members\?.* failed: 403 UnknownError: Injected failure\. \(request-id [-0-9a-f]{36}\)$" "$T/err"
if [ -e "$T/m.snap" ]; then fail "... and writes nothing"; else pass "... and writes nothing"; fi

# Credentials.
conf "$T/wrong.yaml" "client_secret_file: $T/wrong.secret"
test_expect_code 2 "a wrong secret" \
	sync-import -c "$T/wrong.yaml" -o "$T/h.snap" entra
test_grep "... says the AADSTS code, first line only" \
	"^sync-import: entra: POST $BASE/$TENANT/oauth2/v2\.0/token failed: 401 invalid_client: AADSTS7000215: Invalid client secret provided\. [^:]*'$CID'\. \(request-id [-0-9a-f]{36}\)$" "$T/err"
conf "$T/open.yaml" "client_secret_file: $T/open.secret"
test_expect_code 2 "a secret file that others can read" \
	sync-import -c "$T/open.yaml" -o "$T/h.snap" entra
test_grep "... is refused" \
	"^sync-import: entra: secret file '$T/open.secret' is accessible by group or others \(mode 0644\); chmod 600 it$" "$T/err"
conf "$T/unknown.yaml" "client_id: 00000000-0000-0000-0000-00000000dead"
test_expect_code 2 "an unknown client id" \
	sync-import -c "$T/unknown.yaml" -o "$T/h.snap" entra
test_grep "... AADSTS700016" "failed: 400 unauthorized_client: AADSTS700016: " "$T/err"

conf "$T/cert.yaml" "client_id: $CERTCID" "certificate_file: $T/app.pem" \
	"key_file: $T/app.key"
: >"$T/http.log"
test_expect_code 0 "certificate credential (a PS256 client assertion)" \
	sync-import -q -c "$T/cert.yaml" -o "$T/i.snap" entra
tail -n +2 "$T/i.snap" >"$T/i.body"
test_cmp "... reads the same objects" "$T/a.body" "$T/i.body"
test_grep "... sends an assertion, no secret" \
	'"client_assertion": "<redacted>", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"' "$T/http.log"
conf "$T/othercert.yaml" "client_id: $CERTCID" "certificate_file: $T/other.pem" \
	"key_file: $T/other.key"
test_expect_code 2 "a certificate that is not the app's" \
	sync-import -c "$T/othercert.yaml" -o "$T/h.snap" entra
test_grep "... is refused by the service (AADSTS700027)" \
	"failed: 401 invalid_client: AADSTS700027: Client assertion contains an invalid signature\. \[Reason - The key was not found\., Thumbprint of key used by client: '[-_A-Za-z0-9]{43}'\] \(request-id " "$T/err"
conf "$T/mismatch.yaml" "client_id: $CERTCID" "certificate_file: $T/app.pem" \
	"key_file: $T/other.key"
test_expect_code 2 "a key that is not the certificate's" \
	sync-import -c "$T/mismatch.yaml" -o "$T/h.snap" entra
test_grep "... is refused before any request" \
	"^sync-import: entra: key_file '$T/other.key' is not the key of certificate_file '$T/app.pem'$" "$T/err"
chmod 640 "$T/app.key"
test_expect_code 2 "a key file that others can read" \
	sync-import -c "$T/cert.yaml" -o "$T/h.snap" entra
test_grep "... is refused" "^sync-import: entra: secret file '$T/app.key' is accessible by group or others" "$T/err"
chmod 600 "$T/app.key"

cat "$T/err" "$T"/*.snap "$T/http.log" "$T/http.out" >"$T/all" 2>/dev/null
test_no_grep "the secret appears in no output, message or request log" \
	"$(printf '%s' "$SECRET" | sed 's/[+.]/\\&/g')" "$T/all"

# HTTPS: the emulator with a certificate from the test CA.
pki_server_cert graph "IP:127.0.0.1,DNS:localhost" || fail "make the server certificate"
emu_start https --tls-cert "$T/pki/graph.pem" --tls-key "$T/pki/graph.key" ||
	fail "start the HTTPS emulator"
BASE=https://127.0.0.1:$(cat "$T/https.port")
ctl /_emulator/seed "$(cat "$T/seed.json")" >/dev/null || fail "seed the HTTPS emulator"
conf "$T/tls.yaml" "allow_http: false" "ca_file: $TEST_CA"
test_expect_code 0 "import over HTTPS, the CA from ca_file" \
	sync-import -q -c "$T/tls.yaml" -o "$T/j.snap" entra
ok "... every object equals the emulator's state" \
	python3 "$T/oracle.py" "$T/j.snap" "$BASE" "$EXT" "$TEST_CA"
[ $? -eq 0 ] || note_file "$T/ok.out"
conf "$T/notrust.yaml" "allow_http: false"
test_expect_code 2 "a server certificate from an untrusted CA" \
	sync-import -c "$T/notrust.yaml" -o "$T/h.snap" entra
test_grep "... is refused, with the reason" \
	"^sync-import: entra: POST $BASE/$TENANT/oauth2/v2\.0/token failed: SSL certificate problem: .* \(TLS certificate not trusted: set ca_file to the CA that signed it\)$" "$T/err"
conf "$T/otherca.yaml" "allow_http: false" "ca_file: $T/app.pem"
test_expect_code 2 "... also with another CA in ca_file" \
	sync-import -c "$T/otherca.yaml" -o "$T/h.snap" entra
test_grep "... named" "TLS certificate not trusted: not signed by the CA in ca_file" "$T/err"
conf "$T/noverify.yaml" "allow_http: false" "tls_verify: false"
test_expect_code 0 "tls_verify: false accepts it (the config says so)" \
	sync-import -q -c "$T/noverify.yaml" -o "$T/k.snap" entra

done_testing
