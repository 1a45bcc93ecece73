#!/bin/sh
# The Graph emulator behaves as the documented service does, quirks
# included, and fails on demand.  Self-contained: starts its own emulator
# on a free port and stops it on exit.

here=$(cd "$(dirname "$0")" && pwd)
EMU="$here/graph-emulator.py"
W=$(mktemp -d "${TMPDIR:-/tmp}/t0400.XXXXXX")
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

# start NAME ARGS...: start an emulator, wait for its port file, set $PORT
start() {
	name=$1
	shift
	rm -f "$W/$name.port"
	/usr/bin/python3 "$EMU" --port 0 --port-file "$W/$name.port" "$@" \
		>"$W/$name.out" 2>&1 &
	LASTPID=$!
	PIDS="$PIDS $LASTPID"
	i=0
	while [ ! -s "$W/$name.port" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	PORT=$(cat "$W/$name.port" 2>/dev/null)
}

# req METHOD PATH [JSON-BODY [curl args...]]: status in $code, body in $W/b,
# headers in $W/h.  Sends the bearer token in $TOKEN when set.
req() {
	m=$1
	p=$2
	shift 2
	body=
	if [ $# -gt 0 ]; then
		body=$1
		shift
	fi
	set -- -s -g -o "$W/b" -D "$W/h" -w '%{http_code}' -X "$m" "$@"
	if [ -n "$TOKEN" ]; then
		set -- "$@" -H "Authorization: Bearer $TOKEN"
	fi
	if [ -n "$body" ]; then
		code=$(curl "$@" -H 'Content-Type: application/json' --data-binary "$body" "$BASE$p")
	else
		code=$(curl "$@" "$BASE$p")
	fi
}

# check STATUS DESC [PYTHON-EXPR]: the last response had STATUS and EXPR
# holds, with b = the parsed JSON body (None if empty) and h = the header
# block in lower case.
check() {
	st=$1
	d=$2
	e=${3:-True}
	if [ "$code" = "$st" ] && /usr/bin/python3 -c "import json, sys
t = open(sys.argv[1]).read()
b = json.loads(t) if t.strip() else None
h = open(sys.argv[2]).read().lower()
sys.exit(0 if ($e) else 1)" "$W/b" "$W/h" 2>"$W/err"; then
		ok 0 "$d"
	else
		ok 1 "$d"
		echo "# status $code (want $st); body: $(head -c 400 "$W/b")"
		sed 's/^/# /' "$W/err" | head -n 5
	fi
}

# val EXPR: print a value computed from the last body
val() {
	/usr/bin/python3 -c "import json, sys
b = json.load(open(sys.argv[1]))
print($1)" "$W/b"
}

ctl() {
	curl -s -g -o "$W/c" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		--data-binary "$2" "$BASE/_emulator/$1" >"$W/cs"
}

token() {
	curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' "$@"
}

GSCOPE=https://graph.microsoft.com/.default
start main --app app1:s3cr+et/= --seed 1 --log "$W/emu.jsonl" --tenant contoso.test
BASE=http://127.0.0.1:$PORT
[ -n "$PORT" ]
ok $? "emulator starts and writes its port file"

# ---------------------------------------------------------------- token
TOKEN=
code=$(token -d client_id=app1 --data-urlencode 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 200 "token: client secret grants a bearer token" \
	'b["token_type"] == "Bearer" and b["expires_in"] == 3599 and b["ext_expires_in"] == 3599 and b["access_token"].count(".") == 2'
TOKEN=$(val 'b["access_token"]')

code=$(token -d client_id=app1 -d 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 401 "token: a secret sent without URL-encoding is wrong (AADSTS7000215)" \
	'b["error"] == "invalid_client" and b["error_codes"] == [7000215] and set(b) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"} and b["error_description"].startswith("AADSTS7000215:")'

code=$(token -d client_id=app1 --data-urlencode 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=https://graph.microsoft.com/User.Read" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 400 "token: scope without /.default is AADSTS1002012" \
	'b["error"] == "invalid_scope" and b["error_codes"] == [1002012]'

code=$(token -d client_id=nobody -d client_secret=x \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 400 "token: unknown client id is AADSTS700016" 'b["error_codes"] == [700016]'

code=$(token -d client_id=app1 --data-urlencode "scope=$GSCOPE" -d client_secret=x \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 400 "token: missing grant_type is AADSTS900144" \
	'b["error"] == "invalid_request" and b["error_codes"] == [900144]'

code=$(token -d client_id=app1 -d client_secret=x -d grant_type=client_credentials \
	--data-urlencode "scope=$GSCOPE" "$BASE/other.test/oauth2/v2.0/token")
check 400 "token: unknown tenant is AADSTS90002" 'b["error_codes"] == [90002]'

code=$(token -u 'app1:s3cr%2Bet%2F%3D' -d grant_type=client_credentials \
	--data-urlencode "scope=$GSCOPE" "$BASE/contoso.test/oauth2/v2.0/token")
check 200 "token: HTTP Basic client authentication is accepted" 'b["token_type"] == "Bearer"'

# Certificate client assertions, signed with the openssl CLI.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/app.key" -out "$W/app.crt" \
	-days 2 -subj /CN=app2 >/dev/null 2>&1
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/other.key" -out "$W/other.crt" \
	-days 2 -subj /CN=other >/dev/null 2>&1
/usr/bin/python3 -c 'import json, sys
print(json.dumps({"client_id": "app2", "cert_pem": open(sys.argv[1]).read()}))' "$W/app.crt" >"$W/app2.json"
ctl apps "$(cat "$W/app2.json")"
[ "$(cat "$W/cs")" = 200 ]
ok $? "control: register an app with a certificate"

# jwt ALG THUMBKIND KEY AUD ISS EXPDELTA: print a signed client assertion
jwt() {
	/usr/bin/python3 - "$@" "$W" <<'EOF' >"$W/jwt.in"
import base64, hashlib, json, subprocess, sys, time, uuid
alg, kind, key, aud, iss, expd, w = sys.argv[1:]
der = subprocess.run(["openssl", "x509", "-in", w + "/app.crt", "-outform", "DER"],
                     capture_output=True, check=True).stdout
u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
hd = {"alg": alg, "typ": "JWT"}
if kind == "x5t":
    hd["x5t"] = u(hashlib.sha1(der).digest())
else:
    hd["x5t#S256"] = u(hashlib.sha256(der).digest())
now = int(time.time())
cl = {"aud": aud, "iss": iss, "sub": iss, "jti": str(uuid.uuid4()), "nbf": now, "iat": now,
      "exp": now + int(expd)}
print(u(json.dumps(hd).encode()) + "." + u(json.dumps(cl).encode()))
EOF
	alg=$1
	key=$3
	if [ "$alg" = PS256 ]; then
		set -- -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32
	else
		set --
	fi
	printf %s "$(cat "$W/jwt.in")" >"$W/jwt.data"
	openssl dgst -sha256 -sign "$key" "$@" -out "$W/jwt.sig" "$W/jwt.data"
	printf '%s.%s' "$(cat "$W/jwt.data")" \
		"$(/usr/bin/python3 -c 'import base64, sys
print(base64.urlsafe_b64encode(open(sys.argv[1], "rb").read()).rstrip(b"=").decode())' "$W/jwt.sig")"
}

AUD=https://login.microsoftonline.com/contoso.test/oauth2/v2.0/token
assertion() {
	token -d client_id=app2 -d grant_type=client_credentials \
		--data-urlencode "scope=$GSCOPE" \
		-d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
		--data-urlencode "client_assertion=$1" "$BASE/contoso.test/oauth2/v2.0/token"
}
code=$(assertion "$(jwt RS256 x5t "$W/app.key" "$AUD" app2 600)")
check 200 "token: RS256 client assertion with x5t (SHA-1 thumbprint)" 'b["token_type"] == "Bearer"'
code=$(assertion "$(jwt PS256 x5tS256 "$W/app.key" "$AUD" app2 600)")
check 200 "token: PS256 client assertion with x5t#S256" 'b["token_type"] == "Bearer"'
code=$(assertion "$(jwt PS256 x5tS256 "$W/other.key" "$AUD" app2 600)")
check 401 "token: assertion signed by another key fails (AADSTS700027)" \
	'b["error"] == "invalid_client" and b["error_codes"] == [700027]'
code=$(assertion "$(jwt RS256 x5t "$W/app.key" "$AUD" app2 -900)")
check 401 "token: expired assertion fails (AADSTS700024)" 'b["error_codes"] == [700024]'
code=$(assertion "$(jwt RS256 x5t "$W/app.key" "$AUD" app1 600)")
check 401 "token: assertion iss/sub not the client id fails (AADSTS700021)" 'b["error_codes"] == [700021]'
code=$(assertion "$(jwt RS256 x5t "$W/app.key" https://example.com/token app2 600)")
check 401 "token: assertion for another audience fails" 'b["error"] == "invalid_client"'

# ---------------------------------------------------------------- auth
SAVED=$TOKEN
TOKEN=
req GET /v1.0/users '' -H 'client-request-id: 11111111-2222-3333-4444-555555555555'
check 401 "graph: no token is 401 InvalidAuthenticationToken, ids in headers and innerError" \
	'b["error"]["code"] == "InvalidAuthenticationToken" and "request-id:" in h and "client-request-id: 11111111-2222-3333-4444-555555555555" in h and b["error"]["innerError"]["client-request-id"] == "11111111-2222-3333-4444-555555555555" and set(b["error"]["innerError"]) >= {"date", "request-id", "client-request-id"}'
TOKEN=not.a.token
req GET /v1.0/users
check 401 "graph: a forged token is 401" 'b["error"]["code"] == "InvalidAuthenticationToken"'
ctl faults '{"token_lifetime": 1}'
code=$(token -d client_id=app1 --data-urlencode 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
TOKEN=$(val 'b["access_token"]')
check 200 "token: lifetime is configurable" 'b["expires_in"] == 1'
sleep 1.2
req GET /v1.0/users
check 401 "graph: an expired token is 401 InvalidAuthenticationToken" \
	'b["error"]["code"] == "InvalidAuthenticationToken" and "expired" in b["error"]["message"]'
ctl faults '{"token_lifetime": 3599}'
TOKEN=$SAVED

# ---------------------------------------------------------------- users
U='"accountEnabled":true,"passwordProfile":{"password":"Pa55w.rd!"}'
req POST /v1.0/users "{$U,\"displayName\":\"Ann\",\"userPrincipalName\":\"ann@contoso.test\"}"
check 400 "users: mailNickname is required" \
	'b["error"]["code"] == "Request_BadRequest" and "mailNickname" in b["error"]["message"] and "required" in b["error"]["message"]'
req POST /v1.0/users '{"accountEnabled":true,"displayName":"Ann","mailNickname":"ann","userPrincipalName":"ann@contoso.test","passwordProfile":{}}'
check 400 "users: passwordProfile.password is required" 'b["error"]["code"] == "Request_BadRequest"'
req POST /v1.0/users "{$U,\"displayName\":\"Ann\",\"mailNickname\":\"ann\",\"userPrincipalName\":\"ann@contoso.test\",\"onPremisesImmutableId\":\"QUJD+/==\",\"department\":\"Ops\"}"
check 201 "users: create returns 201 and the default property subset" \
	'b["userPrincipalName"] == "ann@contoso.test" and "onPremisesImmutableId" not in b and "department" not in b and b["businessPhones"] == [] and len(b["id"]) == 36'
ANN=$(val 'b["id"]')
req POST /v1.0/users "{$U,\"displayName\":\"Ann 2\",\"mailNickname\":\"ann2\",\"userPrincipalName\":\"ANN@contoso.test\"}"
check 400 "users: userPrincipalName is unique, case-insensitively" \
	'b["error"]["code"] == "Request_BadRequest" and b["error"]["message"] == "Another object with the same value for property userPrincipalName already exists."'
req POST /v1.0/users "{$U,\"displayName\":\"B\",\"mailNickname\":\"b\",\"userPrincipalName\":\"b@contoso.test\",\"onPremisesImmutableId\":\"QUJD-_==\"}"
check 400 "users: onPremisesImmutableId refuses '_' (base64url)" \
	'"onPremisesImmutableId" in b["error"]["message"]'
req POST /v1.0/users "{$U,\"displayName\":\"B\",\"mailNickname\":\"b\",\"userPrincipalName\":\"b@contoso.test\",\"onPremisesImmutableId\":\"a\$b\"}"
check 400 "users: onPremisesImmutableId refuses '\$'" '"onPremisesImmutableId" in b["error"]["message"]'
req POST /v1.0/users "{$U,\"displayName\":\"B\",\"mailNickname\":\"b\",\"userPrincipalName\":\"b@contoso.test\",\"onPremisesImmutableId\":\"QUJD+/==\"}"
check 400 "users: onPremisesImmutableId is unique" \
	'b["error"]["message"] == "Another object with the same value for property onPremisesImmutableId already exists."'
req POST /v1.0/users "{$U,\"displayName\":\"B\",\"mailNickname\":\"b\",\"userPrincipalName\":\"b@contoso.test\",\"proxyAddresses\":[\"SMTP:b@x\"]}"
check 400 "users: read-only properties cannot be set" '"read-only" in b["error"]["message"]'
req POST /v1.0/users "{$U,\"displayName\":\"B\",\"mailNickname\":\"b\",\"userPrincipalName\":\"b@contoso.test\",\"nonsense\":1}"
check 400 "users: unknown properties are refused" '"nonsense" in b["error"]["message"]'
req POST /v1.0/users "{$U,\"displayName\":\"O'Brien\",\"mailNickname\":\"ob\",\"userPrincipalName\":\"o.brien@contoso.test\",\"onPremisesImmutableId\":\"T2JyaWVu\"}"
OB=$(val 'b["id"]')
req POST /v1.0/users "{$U,\"displayName\":\"Bob\",\"mailNickname\":\"bob\",\"userPrincipalName\":\"bob@contoso.test\",\"onPremisesImmutableId\":\"Qm9i\"}"
check 201 "users: a third user" 'b["displayName"] == "Bob"'
BOB=$(val 'b["id"]')

req GET "/v1.0/users/$ANN"
check 200 "users: GET by id" 'b["id"] == "'"$ANN"'" and b["@odata.context"].endswith("$metadata#users/$entity")'
req GET /v1.0/users/Ann@Contoso.test
check 200 "users: GET by userPrincipalName" 'b["id"] == "'"$ANN"'"'
req GET "/v1.0/users/$ANN?\$select=id,onPremisesImmutableId,department,onPremisesSyncEnabled"
check 200 "users: \$select returns exactly the selected properties" \
	'sorted(k for k in b if not k.startswith("@")) == ["department", "id", "onPremisesImmutableId", "onPremisesSyncEnabled"] and b["onPremisesImmutableId"] == "QUJD+/==" and b["onPremisesSyncEnabled"] is None'
req GET "/v1.0/users/$ANN?\$select=id,shoeSize"
check 400 "users: \$select of an unknown property is 400" 'b["error"]["code"] == "BadRequest"'
req GET /v1.0/users/nobody@contoso.test
check 404 "users: unknown user is 404 Request_ResourceNotFound" 'b["error"]["code"] == "Request_ResourceNotFound"'
req PATCH "/v1.0/users/$ANN" '{"department":"Sales","jobTitle":"Boss"}'
check 204 "users: PATCH is 204 with no body" 'b is None'
req GET "/v1.0/users/$ANN?\$select=department,jobTitle"
check 200 "users: PATCH took effect" 'b["department"] == "Sales" and b["jobTitle"] == "Boss"'
req PATCH "/v1.0/users/$ANN" '{"displayName":""}'
check 400 "users: displayName cannot be cleared" 'b["error"]["code"] == "Request_BadRequest"'
req PATCH "/v1.0/users/$ANN" '{"userPrincipalName":"bob@contoso.test"}'
check 400 "users: PATCH keeps UPN unique" '"userPrincipalName" in b["error"]["message"]'
code=$(curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' -X PATCH -H "Authorization: Bearer $TOKEN" \
	-H 'Content-Type: text/plain' --data-binary '{"department":"x"}' "$BASE/v1.0/users/$ANN")
check 400 "users: a body that is not JSON is refused" 'b["error"]["code"] == "BadRequest"'

# ---------------------------------------------------------------- $filter
req GET "/v1.0/users?\$filter=onPremisesImmutableId%20eq%20'QUJD%2B%2F%3D%3D'&\$select=id"
check 200 "filter: immutableId with %2B matches" '[u["id"] for u in b["value"]] == ["'"$ANN"'"]'
req GET "/v1.0/users?\$filter=onPremisesImmutableId%20eq%20'QUJD+/=='&\$select=id"
check 200 "filter: an unencoded + decodes to a space and matches nothing" 'b["value"] == []'
req GET "/v1.0/users?\$filter=onPremisesImmutableId%20eq%20'QUJD%252B%252F%253D%253D'&\$select=id"
check 200 "filter: percent-decoding happens once" 'b["value"] == []'
req GET "/v1.0/users?\$filter=displayName%20eq%20'O''Brien'&\$select=id"
check 200 "filter: '' escapes a quote" '[u["id"] for u in b["value"]] == ["'"$OB"'"]'
req GET "/v1.0/users?\$filter=startswith(userPrincipalName,'b')&\$select=userPrincipalName"
check 200 "filter: startswith" '[u["userPrincipalName"] for u in b["value"]] == ["bob@contoso.test"]'
req GET "/v1.0/users?\$filter=userPrincipalName%20in%20('ann@contoso.test','bob@contoso.test')&\$select=id"
check 200 "filter: in" 'sorted(u["id"] for u in b["value"]) == sorted(["'"$ANN"'", "'"$BOB"'"])'
req GET "/v1.0/users?\$filter=(displayName%20eq%20'Bob'%20or%20displayName%20eq%20'Ann')%20and%20accountEnabled%20eq%20true&\$select=id"
check 200 "filter: and/or/parentheses" 'len(b["value"]) == 2'
req GET "/v1.0/users?\$filter=displayName%20ne%20'Bob'"
check 400 "filter: ne without ConsistencyLevel is Request_UnsupportedQuery" \
	'b["error"]["code"] == "Request_UnsupportedQuery"'
req GET "/v1.0/users?\$filter=displayName%20ne%20'Bob'&\$count=true&\$select=id" '' -H 'ConsistencyLevel: eventual'
check 200 "filter: ne with ConsistencyLevel and \$count=true" 'b["@odata.count"] == 2 and len(b["value"]) == 2'
req GET "/v1.0/users?\$filter=endswith(userPrincipalName,'@contoso.test')&\$count=true"
check 400 "filter: endswith needs the ConsistencyLevel header" 'b["error"]["code"] == "Request_UnsupportedQuery"'
req GET "/v1.0/users?\$filter=displayName%20eq%20'Bob"
check 400 "filter: a syntax error is 400" 'b["error"]["code"] == "BadRequest"'
req GET "/v1.0/users?\$filter=shoeSize%20eq%201"
check 400 "filter: an unknown property is 400" 'b["error"]["code"] == "Request_BadRequest"'

# ---------------------------------------------------------------- paging
/usr/bin/python3 -c 'import json
print(json.dumps({"users": [{"displayName": "Cloud %03d" % i, "userPrincipalName": "cloud%03d@contoso.test" % i, "accountEnabled": True, "mailNickname": "cloud%03d" % i} for i in range(105)]}))' >"$W/seed.json"
ctl seed "$(cat "$W/seed.json")"
check_ctl() { [ "$(cat "$W/cs")" = 200 ]; }
check_ctl
ok $? "control: seed loads cloud-only users without required properties"
req GET "/v1.0/users?\$select=id"
check 200 "paging: default page size is 100 with an absolute nextLink" \
	'len(b["value"]) == 100 and b["@odata.nextLink"].startswith("http://127.0.0.1:'"$PORT"'/v1.0/users?") and "$skiptoken=" in b["@odata.nextLink"]'
req GET "/v1.0/users?\$top=1000"
check 400 "paging: \$top above 999 is 400" 'b["error"]["code"] in ("Request_UnsupportedQuery", "Request_BadRequest")'
req GET "/v1.0/users?\$top=2&\$select=id" '' -H 'Host: graph.example:8443'
check 200 "paging: nextLink is built from the Host header" \
	'len(b["value"]) == 2 and b["@odata.nextLink"].startswith("http://graph.example:8443/v1.0/users?")'
req GET "/v1.0/users?\$filter=startswith(displayName,'Cloud')&\$top=50&\$select=id"
NEXT=$(val 'b["@odata.nextLink"]')
req GET "${NEXT#http://127.0.0.1:$PORT}"
check 200 "paging: the nextLink keeps filter, select and page size" \
	'len(b["value"]) == 50 and set(b["value"][0]) == {"id"} and "@odata.nextLink" in b'
NEXT=$(val 'b["@odata.nextLink"]')
req GET "${NEXT#http://127.0.0.1:$PORT}"
check 200 "paging: the last page has no nextLink" 'len(b["value"]) == 5 and "@odata.nextLink" not in b'
req GET "/v1.0/users?\$filter=displayName%20ne%20'x'&\$count=true&\$top=100&\$select=id" '' -H 'ConsistencyLevel: eventual'
check 200 "paging: advanced query first page carries @odata.count" 'b["@odata.count"] == 108'
NEXT=$(val 'b["@odata.nextLink"]')
req GET "${NEXT#http://127.0.0.1:$PORT}"
check 400 "paging: an advanced-query nextLink without ConsistencyLevel fails" \
	'b["error"]["code"] == "Request_UnsupportedQuery"'
req GET "${NEXT#http://127.0.0.1:$PORT}" '' -H 'ConsistencyLevel: eventual'
check 200 "paging: with the header resent it works, and no @odata.count" \
	'len(b["value"]) == 8 and "@odata.count" not in b'
ctl faults '{"empty_page": 0.5, "seed": 3}'
NEXT="/v1.0/users?\$select=id&\$top=20"
pages=0
empties=0
: >"$W/ids"
while [ -n "$NEXT" ] && [ $pages -lt 200 ]; do
	req GET "${NEXT#http://127.0.0.1:$PORT}"
	val '"\n".join(u["id"] for u in b["value"])' >>"$W/ids"
	[ "$(val 'len(b["value"])')" = 0 ] && empties=$((empties + 1))
	NEXT=$(val 'b.get("@odata.nextLink", "")')
	pages=$((pages + 1))
done
[ $empties -gt 0 ] && [ "$(grep -c . "$W/ids")" = 108 ] && [ "$(sort -u "$W/ids" | grep -c .)" = 108 ]
ok $? "paging: empty pages with a nextLink lose nothing ($empties empty of $pages)"
ctl faults '{"empty_page": 0}'
ctl faults '{"next_link_base": "https://evil.example:8443"}'
req GET "/v1.0/users?\$select=id&\$top=20"
check 200 "hostile: next_link_base sends every nextLink elsewhere, path and query kept" \
	'b["@odata.nextLink"].startswith("https://evil.example:8443/v1.0/users?$select=id&$skiptoken=")'
ctl faults '{"next_link_base": "", "next_link_loop": true}'
req GET "/v1.0/users?\$select=id&\$top=20"
check 200 "hostile: next_link_loop makes every nextLink the request's own URL" \
	'b["@odata.nextLink"] == "http://127.0.0.1:'"$PORT"'/v1.0/users?$select=id&$top=20"'
ctl faults '{"next_link_loop": false}'
ctl faults '{"next_link_base": "evil.example/x"}'
[ "$(cat "$W/cs")" = 400 ]
ok $? "hostile: a next_link_base that is not scheme://host[:port] is 400"
req GET "/v1.0/users?\$skiptoken=garbage"
check 400 "paging: a forged skiptoken is 400" 'b["error"]["code"] == "Request_BadRequest"'

# ---------------------------------------------------------------- groups
G='"mailEnabled":false,"securityEnabled":true,"groupTypes":[]'
req POST /v1.0/groups '{"displayName":"G","mailEnabled":false,"mailNickname":"g"}'
check 400 "groups: securityEnabled is required" '"securityEnabled" in b["error"]["message"]'
req POST /v1.0/groups "{$G,\"displayName\":\"G\",\"mailNickname\":\"g x\"}"
check 400 "groups: mailNickname refuses spaces" 'b["error"]["code"] == "Request_BadRequest"'
req POST /v1.0/groups "{$G,\"displayName\":\"Staff\",\"mailNickname\":\"staff\",\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$ANN\",\"https://graph.microsoft.com/v1.0/users/$OB\"]}"
check 201 "groups: create with members@odata.bind" 'b["displayName"] == "Staff" and b["securityEnabled"] is True'
GID=$(val 'b["id"]')
binds=$(/usr/bin/python3 -c 'import json, sys
print(json.dumps(["https://graph.microsoft.com/v1.0/directoryObjects/" + sys.argv[1]] * 21))' "$BOB")
req POST /v1.0/groups "{$G,\"displayName\":\"Big\",\"mailNickname\":\"big\",\"members@odata.bind\":$binds}"
check 400 "groups: at most 20 relationships at creation" 'b["error"]["code"] == "Request_BadRequest"'
req GET "/v1.0/groups/$GID/members"
check 200 "members: list returns directoryObjects with @odata.type" \
	'sorted(m["id"] for m in b["value"]) == sorted(["'"$ANN"'", "'"$OB"'"]) and all(m["@odata.type"] == "#microsoft.graph.user" for m in b["value"])'
req POST "/v1.0/groups/$GID/members/\$ref" "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\"}"
check 204 "members: add with \$ref is 204" 'b is None'
req POST "/v1.0/groups/$GID/members/\$ref" "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\"}"
check 400 "members: adding an existing member is 400" \
	'b["error"]["code"] == "Request_BadRequest" and b["error"]["message"] == "One or more added object references already exist for the following modified properties: '"'members'"'."'
req POST "/v1.0/groups/$GID/members/\$ref" '{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/00000000-0000-0000-0000-000000000000"}'
check 404 "members: adding an unknown object is 404" 'b["error"]["code"] == "Request_ResourceNotFound"'
req POST /v1.0/users "{$U,\"displayName\":\"Cid\",\"mailNickname\":\"cid\",\"userPrincipalName\":\"cid@contoso.test\"}"
CID=$(val 'b["id"]')
req PATCH "/v1.0/groups/$GID" "{\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$CID\",\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\"]}"
check 400 "members: PATCH bind with an existing member is 400" 'b["error"]["code"] == "Request_BadRequest"'
req PATCH "/v1.0/groups/$GID" "{\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$CID\",\"https://graph.microsoft.com/v1.0/directoryObjects/11111111-0000-0000-0000-000000000000\"]}"
check 400 "members: PATCH bind with an unknown id is 400" 'b["error"]["code"] == "Request_BadRequest"'
req GET "/v1.0/groups/$GID/members?\$select=id"
check 200 "members: a failed PATCH bind added nothing (all or nothing)" 'len(b["value"]) == 3'
req PATCH "/v1.0/groups/$GID" "{\"members@odata.bind\":$binds}"
check 400 "members: PATCH bind of more than 20 is 400" 'b["error"]["code"] == "Request_BadRequest"'
req PATCH "/v1.0/groups/$GID" "{\"description\":\"all staff\",\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$CID\"]}"
check 204 "members: PATCH bind adds members" 'b is None'
req GET "/v1.0/groups/$GID/members?\$top=2&\$select=id,userPrincipalName"
check 200 "members: paged with \$top and nextLink" 'len(b["value"]) == 2 and "@odata.nextLink" in b'
NEXT=$(val 'b["@odata.nextLink"]')
req GET "${NEXT#http://127.0.0.1:$PORT}"
check 200 "members: second page" 'len(b["value"]) == 2 and "@odata.nextLink" not in b'
req GET "/v1.0/groups/$GID/members?\$count=true&\$select=id" '' -H 'ConsistencyLevel: eventual'
check 200 "members: \$count=true with ConsistencyLevel" 'b["@odata.count"] == 4 and len(b["value"]) == 4'
req GET "/v1.0/groups/$GID/members?\$count=true"
check 400 "members: \$count without ConsistencyLevel is 400" 'b["error"]["code"] == "Request_UnsupportedQuery"'
req DELETE "/v1.0/groups/$GID/members/$OB/\$ref"
check 204 "members: remove with \$ref is 204" 'b is None'
req DELETE "/v1.0/groups/$GID/members/$OB/\$ref"
check 404 "members: removing a non-member is 404" 'b["error"]["code"] == "Request_ResourceNotFound"'
req GET "/v1.0/users/$OB"
check 200 "members: the removed member still exists" 'b["id"] == "'"$OB"'"'
req DELETE "/v1.0/groups/$GID/members/$CID"
check 204 "members: DELETE without /\$ref is 204 ..." 'b is None'
req GET "/v1.0/users/$CID"
check 404 "members: ... and deleted the user from the directory (the trap)" \
	'b["error"]["code"] == "Request_ResourceNotFound"'
req GET "/v1.0/groups/$GID?\$select=id,description"
check 200 "groups: GET with \$select" 'b == {"@odata.context": b["@odata.context"], "id": "'"$GID"'", "description": "all staff"}'

# ---------------------------------------------------------------- more reads
ctl seed '{"users":[{"id":"bbbbbbbb-0000-0000-0000-000000000001","displayName":"Zed","userPrincipalName":"zed@contoso.test","accountEnabled":false,"proxyAddresses":["SMTP:zed@contoso.test","smtp:z@contoso.test"]}]}'
req GET "/v1.0/users?\$filter=proxyAddresses/any(p:p%20eq%20'smtp:Z@contoso.test')&\$select=id"
check 200 "filter: proxyAddresses/any() lambda, case-insensitive" \
	'[u["id"] for u in b["value"]] == ["bbbbbbbb-0000-0000-0000-000000000001"]'
req GET "/v1.0/users?\$filter=not(accountEnabled%20eq%20true)&\$count=true&\$select=id" '' -H 'ConsistencyLevel: eventual'
check 200 "filter: not() is an advanced query" '[u["id"] for u in b["value"]] == ["bbbbbbbb-0000-0000-0000-000000000001"]'
req GET "/v1.0/users?\$filter=startswith(displayName,'Cloud%2010')&\$orderby=displayName%20desc&\$count=true&\$select=displayName" '' -H 'ConsistencyLevel: eventual'
check 200 "filter: \$orderby with \$filter (advanced)" \
	'[u["displayName"] for u in b["value"]] == ["Cloud 104", "Cloud 103", "Cloud 102", "Cloud 101", "Cloud 100"]'
req POST /v1.0/directoryObjects/getByIds "{\"ids\":[\"$ANN\",\"$GID\",\"00000000-0000-0000-0000-000000000009\"],\"types\":[\"user\"]}"
check 200 "directoryObjects/getByIds filters by type and skips unknown ids" \
	'[(o["@odata.type"], o["id"]) for o in b["value"]] == [("#microsoft.graph.user", "'"$ANN"'")]'
req GET "/v1.0/users/$ANN/memberOf"
check 200 "users/{id}/memberOf" '[g["id"] for g in b["value"]] == ["'"$GID"'"]'
req POST /v1.0/groups "{$G,\"displayName\":\"Temp\",\"mailNickname\":\"temp\",\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\",\"https://graph.microsoft.com/v1.0/directoryObjects/22222222-0000-0000-0000-000000000000\"]}"
check 400 "groups: an unknown id in members@odata.bind at creation is 400" 'b["error"]["code"] == "Request_BadRequest"'
req GET "/v1.0/groups?\$filter=displayName%20eq%20'Temp'"
check 200 "groups: ... and nothing was created" 'b["value"] == []'
req POST /v1.0/groups "{$G,\"displayName\":\"Temp\",\"mailNickname\":\"temp\",\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\"]}"
TMP=$(val 'b["id"]')
req DELETE "/v1.0/groups/$TMP"
check 204 "groups: DELETE is 204" 'b is None'
req GET "/v1.0/users/$BOB/memberOf"
check 200 "groups: a deleted group leaves its members' memberOf" '[g["id"] for g in b["value"]] == ["'"$GID"'"]'
req POST '/v1.0/$batch' '{"requests":[{"id":"1","method":"GET","url":"/users","dependsOn":["9"]}]}'
check 400 "batch: dependsOn an unknown id is 400" 'b["error"]["code"] == "BadRequest"'
req POST '/v1.0/$batch' '{"requests":[{"id":"1","method":"GET","url":"/users?$top=1","dependsOn":["2"]},{"id":"2","method":"GET","url":"/users?$top=1","dependsOn":["1"]}]}'
check 400 "batch: a dependsOn cycle is 400" 'b["error"]["code"] == "BadRequest"'

# ---------------------------------------------------------------- delete
req DELETE "/v1.0/users/$OB"
check 204 "users: DELETE is 204" 'b is None'
req GET "/v1.0/users/$OB"
check 404 "users: a deleted user is 404" 'b["error"]["code"] == "Request_ResourceNotFound"'
req GET "/v1.0/users?\$filter=id%20eq%20'$OB'"
check 200 "users: a deleted user is not listed" 'b["value"] == []'
curl -s "$BASE/_emulator/state" >"$W/state.json"
/usr/bin/python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))
g = [g for g in s["groups"] if g["id"] == sys.argv[2]][0]
assert sorted(g["members"]) == sorted([sys.argv[3], sys.argv[4]]), g
assert sys.argv[5] in [d["id"] for d in s["deleted"]]
assert all("passwordProfile" not in u for u in s["users"])' "$W/state.json" "$GID" "$ANN" "$BOB" "$OB"
ok $? "control: state lists groups with members and the soft-deleted objects"

# ---------------------------------------------------------------- $batch
reqs=$(/usr/bin/python3 -c 'import json
print(json.dumps({"requests": [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]}))')
req POST '/v1.0/$batch' "$reqs"
check 400 "batch: more than 20 requests is 400" 'b["error"]["code"] == "BadRequest"'
req POST '/v1.0/$batch' '{"requests":[{"id":"a","method":"GET","url":"/users"},{"id":"A","method":"GET","url":"/groups"}]}'
check 400 "batch: ids must be unique, case-insensitively" 'b["error"]["code"] == "BadRequest"'
req POST '/v1.0/$batch' '{"requests":[{"id":"1","method":"POST","url":"/groups","body":{"displayName":"x"}}]}'
check 400 "batch: a body without headers is 400" 'b["error"]["code"] == "BadRequest"'
req POST '/v1.0/$batch' '{"requests":[{"id":"1","method":"GET","url":"https://graph.microsoft.com/v1.0/users"}]}'
check 400 "batch: absolute urls are refused" 'b["error"]["code"] == "BadRequest"'
cat >"$W/batch.json" <<EOF
{"requests":[
 {"id":"1","method":"POST","url":"/users","headers":{"Content-Type":"application/json"},
  "body":{"displayName":"no nick"}},
 {"id":"2","method":"PATCH","url":"/users/$ANN","dependsOn":["1"],
  "headers":{"Content-Type":"application/json"},"body":{"jobTitle":"never"}},
 {"id":"3","method":"GET","url":"users/$ANN?\$select=id,jobTitle"},
 {"id":"4","method":"POST","url":"/groups","headers":{"Content-Type":"application/json"},
  "body":{"displayName":"Batch G","mailEnabled":false,"mailNickname":"bg","securityEnabled":true}},
 {"id":"5","method":"POST","url":"/groups/$GID/members/\$ref","dependsOn":["4"],
  "headers":{"Content-Type":"application/json"},
  "body":{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/$BOB"}},
 {"id":"6","method":"GET","url":"/v1.0/users"}
]}
EOF
req POST '/v1.0/$batch' "$(cat "$W/batch.json")"
check 200 "batch: outer 200 with per-request statuses; failed dependency gives 424" \
	'{r["id"]: r["status"] for r in b["responses"]} == {"1": 400, "2": 424, "3": 200, "4": 201, "5": 400, "6": 400} and [r for r in b["responses"] if r["id"] == "3"][0]["body"]["jobTitle"] == "Boss" and [r for r in b["responses"] if r["id"] == "1"][0]["body"]["error"]["code"] == "Request_BadRequest"'
cp "$W/b" "$W/batch1.out"
ctl faults '{"seed": 42}'
req POST '/v1.0/$batch' "$reqs"
reqs=$(/usr/bin/python3 -c 'import json
print(json.dumps({"requests": [{"id": str(i), "method": "GET", "url": "/users?$top=1&$select=id"} for i in range(20)]}))')
req POST '/v1.0/$batch' "$reqs"
order1=$(val '",".join(r["id"] for r in b["responses"])')
ctl faults '{"seed": 42}'
req POST '/v1.0/$batch' "$reqs"
order2=$(val '",".join(r["id"] for r in b["responses"])')
[ "$order1" = "$order2" ] && [ "$order1" != "$(seq -s, 0 19)" ]
ok $? "batch: responses come shuffled, reproducibly for a seed"
ctl faults '{"rules":[{"method":"GET","path":"^/v1.0/users/","action":"429","retry_after":"3","times":1}]}'
req POST '/v1.0/$batch' "{\"requests\":[{\"id\":\"1\",\"method\":\"GET\",\"url\":\"/users/$ANN\"},{\"id\":\"2\",\"method\":\"GET\",\"url\":\"/users/$BOB\"}]}"
check 200 "batch: an inner 429 carries Retry-After in the inner headers, outer stays 200" \
	'sorted(r["status"] for r in b["responses"]) == [200, 429] and [r for r in b["responses"] if r["status"] == 429][0]["headers"]["Retry-After"] == "3"'
ctl faults '{"write_limit": 5, "write_window": 30}'
reqs=$(/usr/bin/python3 -c 'import json
print(json.dumps({"requests": [{"id": str(i), "method": "PATCH", "url": "/users/'"$BOB"'", "headers": {"Content-Type": "application/json"}, "body": {"jobTitle": "t%d" % i}} for i in range(8)]}))')
req POST '/v1.0/$batch' "$reqs"
check 200 "quota: writes inside a batch count individually" \
	'sorted(r["status"] for r in b["responses"]) == [204] * 5 + [429] * 3 and all(r["headers"]["x-ms-throttle-information"] == "WriteLimitExceeded" and 1 <= int(r["headers"]["Retry-After"]) <= 30 for r in b["responses"] if r["status"] == 429)'
req PATCH "/v1.0/users/$BOB" '{"jobTitle":"x"}'
check 429 "quota: exceeding the write quota is 429 WriteLimitExceeded with Retry-After" \
	'b["error"]["code"] == "TooManyRequests" and "x-ms-throttle-information: writelimitexceeded" in h and "retry-after:" in h'
req GET "/v1.0/users/$BOB"
check 200 "quota: reads are not writes" 'b["id"] == "'"$BOB"'"'
ctl faults '{"write_limit": 3000, "write_window": 150}'

# ---------------------------------------------------------------- delta
ctl faults '{"page_size": 50}'
req GET "/v1.0/users/delta?\$select=id,displayName,onPremisesImmutableId"
check 200 "delta: first page has a nextLink" 'len(b["value"]) == 50 and "/v1.0/users/delta?$skiptoken=" in b["@odata.nextLink"]'
NEXT=$(val 'b["@odata.nextLink"]')
while :; do
	req GET "${NEXT#http://127.0.0.1:$PORT}"
	NEXT=$(val 'b.get("@odata.nextLink", "")')
	[ -n "$NEXT" ] || break
done
check 200 "delta: the last page carries a deltaLink" '"$deltatoken=" in b["@odata.deltaLink"] and set(b["value"][-1]) == {"id", "displayName", "onPremisesImmutableId"}'
DL=$(val 'b["@odata.deltaLink"]')
req PATCH "/v1.0/users/$ANN" '{"displayName":"Ann X"}'
req PATCH "/v1.0/users/$BOB" '{"jobTitle":"not tracked"}'
req DELETE "/v1.0/users/$ANN"
req POST /v1.0/users "{$U,\"displayName\":\"Dee\",\"mailNickname\":\"dee\",\"userPrincipalName\":\"dee@contoso.test\"}"
DEE=$(val 'b["id"]')
req GET "${DL#http://127.0.0.1:$PORT}"
check 200 "delta: changes since the deltaLink; removed objects as @removed; untracked property changes do not surface" \
	'sorted(b["value"], key=lambda x: x["id"]) == sorted([{"id": "'"$ANN"'", "@removed": {"reason": "changed"}}, {"id": "'"$DEE"'", "displayName": "Dee", "onPremisesImmutableId": None}], key=lambda x: x["id"]) and "@odata.deltaLink" in b'
ctl faults '{"delta_replay": 1.0, "page_size": 200}'
req GET "/v1.0/users/delta?\$select=id"
check 200 "delta: replays send objects twice within a round" \
	'len(b["value"]) == 2 * len({u["id"] for u in b["value"]}) and "@odata.deltaLink" in b'
ctl faults '{"delta_replay": 0, "page_size": 50}'
req GET "/v1.0/users/delta?\$deltatoken=latest"
check 200 "delta: \$deltatoken=latest returns only a deltaLink" 'b["value"] == [] and "@odata.deltaLink" in b'
ctl faults '{"delta_link_base": "http://127.0.0.2:1"}'
req GET "/v1.0/users/delta?\$deltatoken=latest"
check 200 "hostile: delta_link_base sends every deltaLink elsewhere" \
	'b["@odata.deltaLink"].startswith("http://127.0.0.2:1/v1.0/users/delta?$deltatoken=")'
ctl faults '{"delta_link_base": ""}'
req GET "/v1.0/groups/delta?\$select=displayName,members"
check 200 "delta: groups carry members@delta" \
	'[g for g in b["value"] if g["id"] == "'"$GID"'"][0]["members@delta"] and "@odata.deltaLink" in b'
GDL=$(val 'b["@odata.deltaLink"]')
req POST /v1.0/users "{$U,\"displayName\":\"Eve\",\"mailNickname\":\"eve\",\"userPrincipalName\":\"eve@contoso.test\"}"
EVE=$(val 'b["id"]')
req POST "/v1.0/groups/$GID/members/\$ref" "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/$EVE\"}"
req DELETE "/v1.0/groups/$GID/members/$BOB/\$ref"
req GET "${GDL#http://127.0.0.1:$PORT}"
check 200 "delta: members@delta lists added members and removed ones tagged @removed" \
	'[g for g in b["value"] if g["id"] == "'"$GID"'"][0]["members@delta"] == [{"@odata.type": "#microsoft.graph.user", "id": "'"$EVE"'"}, {"@odata.type": "#microsoft.graph.user", "id": "'"$BOB"'", "@removed": {"reason": "deleted"}}]'
ctl faults '{"delta_members_chunk": 1, "page_size": 2}'
req POST /v1.0/groups "{$G,\"displayName\":\"Trio\",\"mailNickname\":\"trio\",\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$BOB\",\"https://graph.microsoft.com/v1.0/directoryObjects/$EVE\",\"https://graph.microsoft.com/v1.0/directoryObjects/$DEE\"]}"
TRIO=$(val 'b["id"]')
: >"$W/pages"
NEXT=/v1.0/groups/delta
while [ -n "$NEXT" ]; do
	req GET "${NEXT#http://127.0.0.1:$PORT}"
	cat "$W/b" >>"$W/pages"
	echo >>"$W/pages"
	NEXT=$(val 'b.get("@odata.nextLink", "")')
done
/usr/bin/python3 -c 'import json, sys
items = [i for l in open(sys.argv[1]) if l.strip() for i in json.loads(l)["value"]]
trio = [i for i in items if i["id"] == sys.argv[2]]
assert len(trio) == 3, trio
assert all(t["displayName"] == "Trio" for t in trio)
assert sorted(m["id"] for t in trio for m in t["members@delta"]) == sorted(sys.argv[3:]), trio' \
	"$W/pages" "$TRIO" "$BOB" "$EVE" "$DEE"
ok $? "delta: a large group's members@delta spans several items repeating the group"
ctl faults '{"delta_members_chunk": 100, "page_size": 50}'
req GET "/v1.0/users/delta?\$deltatoken=bogus"
check 400 "delta: an unreadable token is 400 syncStateNotFound" 'b["error"]["code"] == "syncStateNotFound"'
ctl faults '{"delta_token_lifetime": 0}'
req GET "${DL#http://127.0.0.1:$PORT}"
check 410 "delta: an expired token is 410 Gone with a Location for a fresh start" \
	'b["error"]["code"] == "syncStateNotFound" and "location: http://127.0.0.1:'"$PORT"'/v1.0/users/delta" in h'
ctl faults '{"delta_token_lifetime": 604800, "page_size": 100}'

# ---------------------------------------------------------------- faults
ctl faults '{"fault_429": 1.0, "retry_after": "2.5"}'
req GET "/v1.0/users/$BOB"
check 429 "faults: 429 with a fractional Retry-After" \
	'b["error"]["code"] == "TooManyRequests" and "retry-after: 2.5" in h'
code=$(token -d client_id=app1 --data-urlencode 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 200 "faults: the token endpoint is excluded by default" 'b["token_type"] == "Bearer"'
ctl faults '{"fault_429": 0, "fault_503": 1.0}'
req GET "/v1.0/users/$BOB"
check 503 "faults: 503" 'b["error"]["code"] == "serviceNotAvailable" and "retry-after: 2.5" in h'
ctl faults '{"fault_token": true}'
code=$(token -d client_id=app1 --data-urlencode 'client_secret=s3cr+et/=' \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" \
	"$BASE/contoso.test/oauth2/v2.0/token")
check 503 "faults: the token endpoint can be included, failing in the OAuth shape" \
	'b["error"] == "temporarily_unavailable" and b["error_codes"] == [90033]'
ctl faults '{"fault_token": false}'
ctl faults '{"fault_503": 0, "fault_drop": 1.0}'
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1.0/users/$BOB"
[ $? = 52 ]
ok $? "faults: dropped connection (curl: empty reply)"
curl -s -o /dev/null -w '%{http_code}' "$BASE/_emulator/health" >"$W/cs"
check_ctl
ok $? "faults: the control API is never faulted"
ctl faults '{"fault_drop": 0, "fault_429": 0.5, "seed": 7}'
s1=
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	req GET "/v1.0/users/$BOB"
	s1="$s1$code "
done
ctl faults '{"seed": 7}'
s2=
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	req GET "/v1.0/users/$BOB"
	s2="$s2$code "
done
case $s1 in *429*200*|*200*429*) mixed=0 ;; *) mixed=1 ;; esac
[ "$s1" = "$s2" ] && [ $mixed = 0 ]
ok $? "faults: a seed makes the 429 pattern reproducible ($s1)"
ctl faults '{"fault_429": 0, "fault_slow": 1.0, "slow_ms": 2000}'
code=$(curl -s -o /dev/null -w '%{http_code}' -m 0.5 -H "Authorization: Bearer $TOKEN" "$BASE/v1.0/users/$BOB")
[ "$code" = 000 ]
ok $? "faults: slow responses trip a client timeout"
ctl faults '{"fault_slow": 0, "latency_ms": 300}'
t=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$BASE/v1.0/users/$BOB")
/usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 0.3 else 1)' "$t"
ok $? "faults: fixed latency per request ($t s)"
# Long enough that a loaded machine still reads within the window.
ctl faults '{"latency_ms": 0, "eventual_404": 4}'
req POST /v1.0/users "{$U,\"displayName\":\"Fay\",\"mailNickname\":\"fay\",\"userPrincipalName\":\"fay@contoso.test\"}"
FAY=$(val 'b["id"]')
req GET "/v1.0/users/$FAY"
check 404 "faults: a new object 404s for a moment when read" 'b["error"]["code"] == "Request_ResourceNotFound"'
req POST "/v1.0/groups/$GID/members/\$ref" "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/$FAY\"}"
check 404 "faults: ... and when referenced" 'b["error"]["code"] == "Request_ResourceNotFound"'
sleep 4.1
req POST "/v1.0/groups/$GID/members/\$ref" "{\"@odata.id\":\"https://graph.microsoft.com/v1.0/directoryObjects/$FAY\"}"
check 204 "faults: ... and is there afterwards" 'b is None'
req POST /v1.0/users "{$U,\"displayName\":\"Hal\",\"mailNickname\":\"hal\",\"userPrincipalName\":\"hal@contoso.test\"}"
HAL=$(val 'b["id"]')
req GET "/v1.0/users?\$filter=userPrincipalName%20eq%20'hal@contoso.test'&\$select=id"
check 200 "faults: ... a new object is missing from lists meanwhile" 'b["value"] == []'
sleep 4.1
req GET "/v1.0/users?\$filter=userPrincipalName%20eq%20'hal@contoso.test'&\$select=id"
check 200 "faults: ... and listed afterwards" 'len(b["value"]) == 1'
ctl faults '{"eventual_404": 0, "rules": [{"method": "POST", "path": "^/v1.0/users$", "action": "drop_after", "times": 1}]}'
curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	--data-binary "{$U,\"displayName\":\"Ida\",\"mailNickname\":\"ida\",\"userPrincipalName\":\"ida@contoso.test\"}" "$BASE/v1.0/users"
[ $? = 52 ]
ok $? "faults: drop_after closes the connection without an answer"
req GET "/v1.0/users/ida@contoso.test?\$select=userPrincipalName"
check 200 "faults: ... after the request ran" 'b["userPrincipalName"] == "ida@contoso.test"'
ctl faults '{"rules": [{"method": "POST", "path": "^/v1.0/users$", "action": "504_after", "times": 1, "body": "jon@"}]}'
req POST /v1.0/users "{$U,\"displayName\":\"Kim\",\"mailNickname\":\"kim\",\"userPrincipalName\":\"kim@contoso.test\"}"
check 201 "faults: a rule's body pattern picks the requests it fails" 'b["displayName"] == "Kim"'
req POST /v1.0/users "{$U,\"displayName\":\"Jon\",\"mailNickname\":\"jon\",\"userPrincipalName\":\"jon@contoso.test\"}"
check 504 "faults: 504_after answers 504" 'b["error"]["code"] == "GatewayTimeout"'
req GET "/v1.0/users/jon@contoso.test?\$select=userPrincipalName"
check 200 "faults: ... after the request ran" 'b["userPrincipalName"] == "jon@contoso.test"'
ctl faults '{"rules": [], "fault_504": 1.0}'
req POST '/v1.0/$batch' "{\"requests\":[{\"id\":\"1\",\"method\":\"POST\",\"url\":\"/users\",\"headers\":{\"Content-Type\":\"application/json\"},\"body\":{$U,\"displayName\":\"Lea\",\"mailNickname\":\"lea\",\"userPrincipalName\":\"lea@contoso.test\"}}]}"
check 504 "faults: fault_504 strikes after the request ran" 'b["error"]["code"] == "GatewayTimeout"'
ctl faults '{"fault_504": 0}'
req GET "/v1.0/users/lea@contoso.test?\$select=userPrincipalName"
check 200 "faults: ... (the batch and the user in it were applied)" 'b["userPrincipalName"] == "lea@contoso.test"'
curl -s "$BASE/_emulator/log" >"$W/log504.json"
/usr/bin/python3 -c 'import json, sys
log = json.load(open(sys.argv[1]))
e = [x for x in log if x.get("fault") == "504" and x["path"] == "/v1.0/users" and x.get("in_batch")]
assert e and e[-1]["applied_status"] == 201 and e[-1]["status"] == 504, e
d = [x for x in log if x.get("fault") == "drop_after"]
assert d and d[-1]["applied_status"] == 201 and d[-1]["status"] is None, d' "$W/log504.json"
ok $? "faults: the log keeps the status a late fault hid (applied_status)"
ctl faults '{"eventual_404": 0, "rules": [{"method": "POST", "path": "^/v1.0/users$", "action": "503", "times": 1}]}'
req POST /v1.0/users "{$U,\"displayName\":\"Gus\",\"mailNickname\":\"gus\",\"userPrincipalName\":\"gus@contoso.test\"}"
c1=$code
req POST /v1.0/users "{$U,\"displayName\":\"Gus\",\"mailNickname\":\"gus\",\"userPrincipalName\":\"gus@contoso.test\"}"
[ "$c1 $code" = "503 201" ]
ok $? "faults: scripted rules fail the next N matching requests"

# ---------------------------------------------------------------- seed / synced
ctl seed '{"users":[{"id":"aaaaaaaa-0000-0000-0000-000000000001","displayName":"Synced","userPrincipalName":"synced@contoso.test","onPremisesSyncEnabled":true,"accountEnabled":true}],"groups":[{"displayName":"Cloud admins","mailNickname":"ca","securityEnabled":true,"mailEnabled":false,"members":["synced@contoso.test","'"$BOB"'"]}]}'
check_ctl
ok $? "control: seed loads groups with members by id or UPN"
req PATCH /v1.0/users/aaaaaaaa-0000-0000-0000-000000000001 '{"displayName":"x"}'
check 400 "users: AD-mastered properties of synced users cannot be written" \
	'"on-premises mastered" in b["error"]["message"]'
req PATCH /v1.0/users/aaaaaaaa-0000-0000-0000-000000000001 '{"usageLocation":"FR"}'
check 204 "users: cloud-mastered properties of synced users can" 'b is None'

# ---------------------------------------------------------------- log
curl -s "$BASE/_emulator/log" >"$W/log.json"
/usr/bin/python3 -c 'import json, sys
log = json.load(open(sys.argv[1]))
p = [e for e in log if e["method"] == "PATCH" and e["path"] == "/v1.0/users/" + sys.argv[2] and e["status"] == 204][0]
assert p["authorization"] is True and p["body"] == {"department": "Sales", "jobTitle": "Boss"}, p
t = [e for e in log if e["path"].endswith("/oauth2/v2.0/token")][0]
assert t["body"]["client_secret"] == "<redacted>", t
c = [e for e in log if e["method"] == "POST" and e["path"] == "/v1.0/users" and e["status"] == 201][0]
assert c["body"]["passwordProfile"]["password"] == "<redacted>", c
assert any(e.get("in_batch") for e in log)
assert any(e.get("fault") == "drop" for e in log)
lines = [json.loads(l) for l in open(sys.argv[3])]
assert len(lines) >= len(log)' "$W/log.json" "$ANN" "$W/emu.jsonl"
ok $? "log: every request is logged (GET /_emulator/log and the JSON Lines file)"

# ---------------------------------------------------------------- reset
ctl reset '{}'
req GET "/v1.0/users?\$select=id"
check 200 "control: reset empties the directory" 'b["value"] == []'
req GET "${DL#http://127.0.0.1:$PORT}"
check 410 "delta: tokens from before a reset are 410 Gone" 'b["error"]["code"] == "syncStateNotFound"'

# ---------------------------------------------------------------- keep-alive, parallel
curl -s -v -o /dev/null -o /dev/null -H "Authorization: Bearer $TOKEN" \
	"$BASE/v1.0/users" "$BASE/v1.0/groups" 2>"$W/kv"
grep -q 'Re-using existing connection' "$W/kv"
ok $? "http: keep-alive connections are reused"
ctl faults '{"latency_ms": 500}'
t0=$(date +%s.%N)
cpids=
for i in 1 2 3 4 5 6; do
	curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE/v1.0/users" &
	cpids="$cpids $!"
done
for p in $cpids; do wait "$p"; done
t1=$(date +%s.%N)
/usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) - float(sys.argv[1]) < 2.0 else 1)' "$t0" "$t1"
ok $? "http: parallel requests are served concurrently"
ctl faults '{"latency_ms": 0}'

# ---------------------------------------------------------------- CLI, TLS, SIGTERM, state
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/tls.key" -out "$W/tls.crt" -days 2 \
	-subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' >/dev/null 2>&1
echo '[{"client_id": "f", "secret": "g"}]' >"$W/apps.json"
start tls --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" --apps-file "$W/apps.json" --fault-503 1 \
	--state "$W/state.json.db"
TLSPID=$LASTPID
curl -s -o "$W/b" -w '%{http_code}' --cacert "$W/tls.crt" "https://127.0.0.1:$PORT/_emulator/health" >"$W/cs"
check_ctl
ok $? "tls: HTTPS with --tls-cert/--tls-key, verified against the CA"
curl -s -o /dev/null "https://127.0.0.1:$PORT/_emulator/health"
[ $? = 60 ]
ok $? "tls: an untrusted certificate fails verification"
code=$(curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' --cacert "$W/tls.crt" -H 'Authorization: Bearer x' "https://127.0.0.1:$PORT/v1.0/users")
check 503 "cli: --fault-503 on the command line"
code=$(curl -s -o "$W/b" -D "$W/h" -w '%{http_code}' --cacert "$W/tls.crt" -d client_id=f -d client_secret=g \
	-d grant_type=client_credentials --data-urlencode "scope=$GSCOPE" "https://127.0.0.1:$PORT/t/oauth2/v2.0/token")
check 200 "cli: --apps-file registers apps; the token endpoint is not faulted" 'b["token_type"] == "Bearer"'

curl -s -o /dev/null --cacert "$W/tls.crt" -X POST -H 'Content-Type: application/json' \
	--data-binary '{"users":[{"displayName":"Kept","userPrincipalName":"kept@contoso.test"}]}' \
	"https://127.0.0.1:$PORT/_emulator/seed"
kill -TERM "$TLSPID"
i=0
while kill -0 "$TLSPID" 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
wait "$TLSPID"
rc=$?
[ $rc = 0 ]
ok $? "signals: SIGTERM stops the emulator cleanly (status $rc)"
start tls2 --tls-cert "$W/tls.crt" --tls-key "$W/tls.key" --state "$W/state.json.db"
curl -s --cacert "$W/tls.crt" "https://127.0.0.1:$PORT/_emulator/state" >"$W/b"
code=200
check 200 "state: --state persists objects across a restart" \
	'[u["userPrincipalName"] for u in b["users"]] == ["kept@contoso.test"]'

echo "1..$n"
