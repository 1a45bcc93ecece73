#!/bin/sh
# sync-import from a SCIM 2.0 service (the scimmy test server): users with
# complex, multi-valued and enterprise attributes flattened as
# sync-snapshot(5) says, groups with members by SCIM id, paging across
# pages (a service that ignores count, pages that shift under the
# listing), 429/500/dropped connections retried, the retry budget, a bad
# token, a token file others can read, TLS verification.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/scim.sh"

jget() {
	node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
process.stdout.write(String(eval(process.argv[2])) + "\n")' "$1" "$2"
}

ok "the SCIM server starts" scim_start scim || bail "no SCIM server"

U=urn:ietf:params:scim:schemas:core:2.0:User
G=urn:ietf:params:scim:schemas:core:2.0:Group
E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User

# post NAME PATH JSON: creates through the SCIM API, the id in $T/id.NAME
post() {
	_c=$(scim_req POST "$2" "$3")
	if [ "$_c" != 201 ]; then
		fail "create $1" "$_c $(cat "$T/scim.body")"
		return 1
	fi
	jget "$T/scim.body" d.id >"$T/id.$1"
}

post alice /Users "{\"schemas\":[\"$U\",\"$E\"],\"userName\":\"alice@example.com\",\"externalId\":\"QUxJQ0U=\",\"active\":true,\"displayName\":\"Alice Liddell\",\"name\":{\"givenName\":\"Alice\",\"familyName\":\"Liddell\"},\"emails\":[{\"type\":\"work\",\"value\":\"alice@example.com\",\"primary\":true},{\"type\":\"home\",\"value\":\"alice@home.example\"}],\"phoneNumbers\":[{\"value\":\"+44 1865 000000\"}],\"$E\":{\"employeeNumber\":\"701\",\"department\":\"Wonderland\"}}"
post bob /Users "{\"schemas\":[\"$U\"],\"userName\":\"bob@example.com\",\"active\":false,\"name\":{\"givenName\":\"Bob\"}}"
post carol /Users "{\"schemas\":[\"$U\",\"$E\"],\"userName\":\"carol@example.com\",\"externalId\":\"Q0FST0w=\",\"$E\":{\"manager\":{\"value\":\"$(cat "$T/id.alice")\"}}}"
for i in 1 2 3 4; do
	post "u$i" /Users "{\"schemas\":[\"$U\"],\"userName\":\"user$i@example.com\",\"externalId\":\"x$i\"}"
done
post staff /Groups "{\"schemas\":[\"$G\"],\"displayName\":\"Staff\",\"externalId\":\"U1RBRkY=\",\"members\":[{\"value\":\"$(cat "$T/id.alice")\"},{\"value\":\"$(cat "$T/id.bob")\"}]}"
post all /Groups "{\"schemas\":[\"$G\"],\"displayName\":\"All\",\"members\":[{\"value\":\"$(cat "$T/id.staff")\"},{\"value\":\"$(cat "$T/id.carol")\"}]}"
post empty /Groups "{\"schemas\":[\"$G\"],\"displayName\":\"Empty\"}"

# ids SNAPSHOT OUT: the snapshot with every SCIM id replaced by its name,
# for exact comparisons.
ids() {
	cp "$1" "$2"
	for f in "$T"/id.*; do
		sed -i "s/$(cat "$f")/<${f##*/id.}>/g" "$2"
	done
}

# norm IDS OUT: the objects of a snapshot (ids replaced), without
# meta.version, values sorted, lines sorted.
norm() {
	node -e 'const fs = require("fs");
const out = fs.readFileSync(process.argv[1], "utf8").split("\n").slice(1)
    .filter(l => l).map(l => { const o = JSON.parse(l);
	delete o.attrs["meta.version"];
	for (const k in o.attrs) o.attrs[k].sort();
	return JSON.stringify(o); }).sort();
fs.writeFileSync(process.argv[2], out.join("\n") + "\n");' "$1" "$2"
}

# A full import, everything the service returns.
scim_conf "$T/all.yaml" "page_size: 3"
test_expect_code 0 "import of everything" sync-import -c "$T/all.yaml" -o "$T/all.snap" app
test_grep "the header names the connector type and the base URL" \
	"\"connector_type\":\"scim\".*\"counts\":\\{\"contact\":0,\"group\":3,\"user\":7\\}.*\"kind\":\"full\",\"source\":\"$SCIM_BASE\"" "$T/all.snap"
ids "$T/all.snap" "$T/all.ids"
test_grep "complex attributes as name.givenName" '"<alice>".*"name.givenName":\["Alice"\]' "$T/all.ids"
test_grep "typed multi-valued ones as emails[type eq \"work\"].value" \
	'"emails\[type eq \\"work\\"\]\.value":\["alice@example.com"\]' "$T/all.ids"
test_grep "all values as emails.value" '"emails\.value":\["alice@example\.com","alice@home\.example"\]' "$T/all.ids"
test_grep "the primary one" '"emails\[primary eq true\]\.value":\["alice@example\.com"\]' "$T/all.ids"
test_grep "untyped ones as phoneNumbers.value" '"phoneNumbers\.value":\["\+44 1865 000000"\]' "$T/all.ids"
test_grep "the enterprise extension under enterprise:" '"enterprise:department":\["Wonderland"\],"enterprise:employeeNumber":\["701"\]' "$T/all.ids"
test_grep "a manager reference" '"enterprise:manager\.value":\["<alice>"\]' "$T/all.ids"
test_grep "booleans as true and false" '"active":\["false"\].*"<bob>"' "$T/all.ids"
test_grep "meta.version, the ETag" '"meta\.version":\["W/\\"[0-9]*\\""\]' "$T/all.ids"
test_no_grep "no schemas, no meta.location, no groups, no \$ref" 'schemas|location|"groups|\$ref' "$T/all.ids"

# The same with attribute lists: exact lines.
scim_conf "$T/some.yaml" "page_size: 3" "objects:" \
	"  user:" "    attributes: [ name.givenName, emails, enterprise:manager.value ]" \
	"  group:" "    attributes: [ externalId ]"
scim_ctl /log >"$T/log0.json"
since=$(jget "$T/log0.json" 'd[d.length - 1].seq')
test_expect_code 0 "import with attribute lists" sync-import -c "$T/some.yaml" -o "$T/some.snap" app
ids "$T/some.snap" "$T/some.ids"
norm "$T/some.ids" "$T/some.got"
sort >"$T/some.want" <<'EOF'
{"anchor":"<alice>","attrs":{"active":["true"],"displayName":["Alice Liddell"],"emails.value":["alice@example.com","alice@home.example"],"emails[primary eq true].value":["alice@example.com"],"emails[type eq \"home\"].value":["alice@home.example"],"emails[type eq \"work\"].value":["alice@example.com"],"externalId":["QUxJQ0U="],"name.givenName":["Alice"],"userName":["alice@example.com"]},"id":"<alice>","type":"user"}
{"anchor":"<bob>","attrs":{"active":["false"],"name.givenName":["Bob"],"userName":["bob@example.com"]},"id":"<bob>","type":"user"}
{"anchor":"<carol>","attrs":{"enterprise:manager.value":["<alice>"],"externalId":["Q0FST0w="],"userName":["carol@example.com"]},"id":"<carol>","type":"user"}
{"anchor":"<u1>","attrs":{"externalId":["x1"],"userName":["user1@example.com"]},"id":"<u1>","type":"user"}
{"anchor":"<u2>","attrs":{"externalId":["x2"],"userName":["user2@example.com"]},"id":"<u2>","type":"user"}
{"anchor":"<u3>","attrs":{"externalId":["x3"],"userName":["user3@example.com"]},"id":"<u3>","type":"user"}
{"anchor":"<u4>","attrs":{"externalId":["x4"],"userName":["user4@example.com"]},"id":"<u4>","type":"user"}
{"anchor":"<staff>","attrs":{"displayName":["Staff"],"externalId":["U1RBRkY="],"members":["<alice>","<bob>"]},"id":"<staff>","type":"group"}
{"anchor":"<all>","attrs":{"displayName":["All"],"members":["<carol>","<staff>"]},"id":"<all>","type":"group"}
{"anchor":"<empty>","attrs":{"displayName":["Empty"]},"id":"<empty>","type":"group"}
EOF
test_cmp "users and groups, members by SCIM id" "$T/some.want" "$T/some.got"

# Paging: 7 users in pages of 3 are 3 requests, startIndex 1, 4, 7.
scim_ctl /log >"$T/log.json"
jget "$T/log.json" 'd.filter(e => /^\/Users\?/.test(e.path)).map(e => e.path).slice(-3).join(" ")' >"$T/pages"
echo "/Users?startIndex=1&count=3 /Users?startIndex=4&count=3 /Users?startIndex=7&count=3" >"$T/pages.want"
test_cmp "pages by startIndex and count" "$T/pages.want" "$T/pages"
test_grep "the SCIM media type is accepted" '"accept":"application/scim\+json' "$T/scim.log"
test_grep "the bearer token is sent" '"authorization":true' "$T/scim.log"

# attributes= (RFC 7644 3.4.2.5): only what the snapshot keeps is asked
# for, by top-level name.  scimmy cannot serve the enterprise extension's
# manager (a 400): the page is asked again without it, every attribute
# comes and the snapshot is trimmed as before (above).
scim_ctl "/log?since=$since" >"$T/log1.json"
jget "$T/log1.json" 'd.map(e => e.path + " " + e.status).join("\n")' >"$T/attrq"
cat >"$T/attrq.want" <<'EOF'
/Users?startIndex=1&count=3&attributes=userName,displayName,active,meta,name,emails,urn%3Aietf%3Aparams%3Ascim%3Aschemas%3Aextension%3Aenterprise%3A2.0%3AUser%3Amanager,externalId 400
/Users?startIndex=1&count=3 200
/Users?startIndex=4&count=3 200
/Users?startIndex=7&count=3 200
/Groups?startIndex=1&count=3&attributes=displayName,members,meta,externalId 200
EOF
test_cmp "attributes= asks for what is kept; refused, every attribute" "$T/attrq.want" "$T/attrq"
test_grep "the refusal is said" "^sync-import: app: GET $SCIM_BASE/Users\\?startIndex=1&count=3&attributes=[^ ]* failed: 400 invalidValue: .* \\(every attribute is read instead\\)\$" "$T/err"

# Without the extension scimmy serves attributes=: the users come with
# what was asked for only (the log's "returned"), the same snapshot.
scim_conf "$T/core.yaml" "page_size: 10" "objects:" \
	"  user:" "    attributes: [ name.givenName, phoneNumbers.value ]" \
	"  group:" "    attributes: [ externalId ]"
# Alice, Bob and Carol as their attributes differ; the others as before.
{
	cat <<'EOF'
{"anchor":"<alice>","attrs":{"active":["true"],"displayName":["Alice Liddell"],"externalId":["QUxJQ0U="],"name.givenName":["Alice"],"phoneNumbers.value":["+44 1865 000000"],"userName":["alice@example.com"]},"id":"<alice>","type":"user"}
{"anchor":"<bob>","attrs":{"active":["false"],"name.givenName":["Bob"],"userName":["bob@example.com"]},"id":"<bob>","type":"user"}
{"anchor":"<carol>","attrs":{"externalId":["Q0FST0w="],"userName":["carol@example.com"]},"id":"<carol>","type":"user"}
EOF
	grep -v '"anchor":"<\(alice\|bob\|carol\)>"' "$T/some.want"
} | sort >"$T/core.want"
for mode in honoured ignored; do
	[ $mode = ignored ] && scim_ctl /faults '{"ignore_attributes":true}' >/dev/null
	scim_ctl /log >"$T/log0.json"
	since=$(jget "$T/log0.json" 'd[d.length - 1].seq')
	test_expect_code 0 "attributes= $mode: import" sync-import -c "$T/core.yaml" -o "$T/core.snap" app
	ids "$T/core.snap" "$T/core.ids"
	norm "$T/core.ids" "$T/core.got"
	test_cmp "... the snapshot" "$T/core.want" "$T/core.got"
	scim_ctl "/log?since=$since" >"$T/log1.json"
	jget "$T/log1.json" 'd.map(e => e.path + " " + e.status + " " + e.returned.join()).join("\n")' >"$T/core.log"
	test_grep "... attributes= asked for" '^/Users\?startIndex=1&count=10&attributes=userName,displayName,active,meta,name,phoneNumbers,externalId 200 ' "$T/core.log"
	if [ $mode = honoured ]; then
		test_grep "... the users came with those only" \
			'^/Users.* 200 active,displayName,externalId,id,meta,name,phoneNumbers,userName$' "$T/core.log"
	else
		test_grep "... the users came with every attribute" \
			'^/Users.* 200 .*emails,.*urn:ietf:params:scim:schemas:extension:enterprise:2.0:User' "$T/core.log"
	fi
done
scim_ctl /faults '{"ignore_attributes":false}' >/dev/null

# A service that ignores count (sends 2 a page): pages follow what came.
scim_ctl /faults '{"max_count":2}' >/dev/null
test_expect_code 0 "a service that sends fewer than count" sync-import -c "$T/some.yaml" -o "$T/few.snap" app
ids "$T/few.snap" "$T/few.ids"
norm "$T/few.ids" "$T/few.got"
test_cmp "the same objects" "$T/some.want" "$T/few.got"
scim_ctl /faults '{"max_count":0}' >/dev/null

# Pages that shift: a user created in front while the listing is at its
# second page moves u1 from page 1 to page 2 (a duplicate, dropped) and
# the last user past the end of the pass (missed): a second pass finds it.
scim_ctl /faults '{"rules":[{"method":"GET","path":"^/Users\\?startIndex=4","action":"shift","seed":{"users":[{"userName":"late@example.com","externalId":"late"}]}}]}' >/dev/null
scim_ctl /log >"$T/log0.json"
since=$(jget "$T/log0.json" 'd.length ? d[d.length - 1].seq : 0')
test_expect_code 0 "import while a user is created in front" sync-import -c "$T/some.yaml" -o "$T/shift.snap" app
test_grep "all 8 users, once each" '"counts":\{"contact":0,"group":3,"user":8\}' "$T/shift.snap"
test_grep "the late user too" '"userName":\["late@example.com"\]' "$T/shift.snap"
scim_ctl "/log?since=$since" >"$T/log1.json"
test "$(jget "$T/log1.json" 'd.filter(e => e.path == "/Users?startIndex=1&count=3").length')" = 2 &&
	pass "the listing was read a second time" || fail "the listing was read a second time"

# Throttling and failures are retried.
scim_ctl /log >"$T/log0.json"
since=$(jget "$T/log0.json" 'd[d.length - 1].seq')
scim_ctl /faults '{"rules":[{"method":"GET","path":"^/Users\\?startIndex=4","action":"429","retry_after":"1","times":2},{"method":"GET","path":"^/Groups","action":"500"},{"method":"GET","path":"^/Users\\?startIndex=7","action":"drop"}]}' >/dev/null
test_expect_code 0 "429 twice, a 500 and a dropped connection: retried" \
	sync-import -c "$T/some.yaml" -o "$T/retry.snap" app
ids "$T/retry.snap" "$T/retry.ids"
norm "$T/retry.ids" "$T/retry.all"
grep -v late "$T/retry.all" >"$T/retry.got"
test_cmp "the same objects after the retries" "$T/some.want" "$T/retry.got"
scim_ctl "/log?since=$since" >"$T/log2.json"
test "$(jget "$T/log2.json" 'd.filter(e => e.path == "/Users?startIndex=4&count=3").map(e => e.status).join()')" = "429,429,200" &&
	pass "the throttled page was asked three times" || fail "the throttled page was asked three times" "$(jget "$T/log2.json" 'd.map(e => e.path + " " + e.status).join(", ")')"

# The retry budget: a 429 that asks for 5 s with a budget of 2 fails.
scim_ctl /faults '{"rules":[{"method":"GET","path":"^/Users","action":"429","retry_after":"5","times":10}]}' >/dev/null
scim_conf "$T/budget.yaml" "retry_budget: 2"
test_expect_code 2 "retry budget spent: exit 2" sync-import -c "$T/budget.yaml" -o "$T/budget.snap" app
test_grep "the message says why" "app: GET $SCIM_BASE/Users\\?startIndex=1&count=100 failed: 429.*retry budget of 2 s is spent" "$T/err"
ok "no snapshot written" test ! -e "$T/budget.snap"
scim_ctl /faults '{"rules":[]}' >/dev/null

# A bad token: a clear error, exit 2.
printf 'not-the-token\n' >"$T/bad.token"
chmod 600 "$T/bad.token"
sed "s|token_file: .*|token_file: $T/bad.token|" "$T/all.yaml" >"$T/bad.yaml"
test_expect_code 2 "a bad token: exit 2" sync-import -c "$T/bad.yaml" -o "$T/bad.snap" app
test_grep "401 with the service's detail and a hint" \
	"^sync-import: app: GET $SCIM_BASE/Users\\?startIndex=1&count=3 failed: 401: Authorization failure \\(is the token in token_file right\\?\\)$" "$T/err"
test_no_grep "the token is never printed" "not-the-token" "$T/err"
ok "no snapshot" test ! -e "$T/bad.snap"

# A token file others can read is refused before any request.
cp "$SCIM_TOKEN_FILE" "$T/open.token"
chmod 644 "$T/open.token"
sed "s|token_file: .*|token_file: $T/open.token|" "$T/all.yaml" >"$T/open.yaml"
test_expect_code 2 "a token file others can read: exit 2" sync-import -c "$T/open.yaml" app
test_grep "refused with its mode" "app: secret file '$T/open.token' is accessible by group or others \\(mode 0644\\)" "$T/err"

# TLS: verified against ca_file; without it the test CA is unknown.
ok "a server certificate for localhost" pki_server_cert scim "DNS:localhost,IP:127.0.0.1"
ok "an HTTPS SCIM server" scim_start tls --tls-cert "$T/pki/scim.pem" --tls-key "$T/pki/scim.key"
post tlsuser /Users "{\"schemas\":[\"$U\"],\"userName\":\"tls@example.com\"}"
scim_conf "$T/tls.yaml" "ca_file: $TEST_CA"
sed -i '/allow_http: true/d' "$T/tls.yaml"
test_expect_code 0 "HTTPS with ca_file" sync-import -c "$T/tls.yaml" -o "$T/tls.snap" app
test_grep "one user" '"userName":\["tls@example.com"\]' "$T/tls.snap"
sed '/ca_file/d' "$T/tls.yaml" >"$T/noca.yaml"
test_expect_code 2 "HTTPS without the CA: the certificate is refused" sync-import -c "$T/noca.yaml" app
test_grep "a TLS error" 'app: GET https://localhost:[0-9]*/Users.*(certificate|SSL|issuer)' "$T/err"

done_testing
