#!/bin/sh
# The SCIM test server (tests/scim-server.js over scimmy) behaves as
# tests/scim-server.md says: bearer token, filters, paging, ETags and
# If-Match, scripted faults, the request log.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/scim.sh"

# jget FILE EXPR: a JavaScript expression over the JSON in FILE (as d).
jget() {
	node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
process.stdout.write(String(eval(process.argv[2])) + "\n")' "$1" "$2"
}

ok "the server starts" scim_start scim || bail "no SCIM server"
ok "health answers" scim_ctl /health

U='"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]'
E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User

# Authentication.
code=$(curl -s -o "$T/b" -w '%{http_code}' "$SCIM_BASE/Users")
test "$code" = 401 && pass "no token: 401" || fail "no token: 401" "got $code"
code=$(curl -s -o "$T/b" -w '%{http_code}' -H 'Authorization: Bearer nope' "$SCIM_BASE/Users")
test "$code" = 401 && pass "wrong token: 401" || fail "wrong token: 401" "got $code"
test_grep "the 401 is a SCIM error" '"status":"401"' "$T/b"

# Create, with the enterprise extension.
code=$(scim_req POST /Users "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\",\"$E\"],\"userName\":\"Alice\",\"externalId\":\"A-1\",\"name\":{\"givenName\":\"Alice\"},\"$E\":{\"employeeNumber\":\"42\"}}")
test "$code" = 201 && pass "POST /Users: 201" || fail "POST /Users: 201" "got $code"
alice=$(jget "$T/scim.body" d.id)
v1=$(jget "$T/scim.body" d.meta.version)
test_grep "the ETag header is meta.version" "^ETag: $(printf '%s' "$v1" | sed 's/[]\\.[*^$"/]/\\&/g')" "$T/scim.hdr"
test_grep "the extension is kept" '"employeeNumber":"42"' "$T/scim.body"
code=$(scim_req POST /Users "{$U,\"userName\":\"alice\"}")
test "$code" = 409 && pass "userName is unique, case-insensitively: 409" || fail "userName unique: 409" "got $code"

for i in 1 2 3 4 5 6; do
	scim_req POST /Users "{$U,\"userName\":\"u$i\",\"externalId\":\"x$i\"}" >"$T/code"
done
test_grep "six more users" '^201$' "$T/code"

# Filters.
scim_req GET '/Users?filter=externalId%20eq%20%22A-1%22' >/dev/null
test "$(jget "$T/scim.body" 'd.totalResults + " " + d.Resources[0].id')" = "1 $alice" &&
	pass "filter externalId eq" || fail "filter externalId eq"
scim_req GET '/Users?filter=externalId%20eq%20%22a-1%22' >/dev/null
test "$(jget "$T/scim.body" d.totalResults)" = 0 &&
	pass "externalId is caseExact" || fail "externalId is caseExact" "$(cat "$T/scim.body")"
scim_req GET '/Users?filter=userName%20eq%20%22ALICE%22' >/dev/null
test "$(jget "$T/scim.body" d.totalResults)" = 0 &&
	pass "filter userName eq compares case (scimmy; RFC 7643 says it should not)" ||
	fail "filter userName eq compares case" "scimmy changed? update tests/scim-server.md"
scim_req GET '/Users?filter=userName%20eq%20%22Alice%22' >/dev/null
test "$(jget "$T/scim.body" d.totalResults)" = 1 &&
	pass "filter userName eq" || fail "filter userName eq"

# Paging: 7 users, pages of 3.
scim_req GET '/Users?startIndex=1&count=3' >/dev/null
p1=$(jget "$T/scim.body" 'd.totalResults + " " + d.itemsPerPage + " " + d.Resources.map(r => r.userName).join(",")')
scim_req GET '/Users?startIndex=4&count=3' >/dev/null
p2=$(jget "$T/scim.body" 'd.Resources.map(r => r.userName).join(",")')
scim_req GET '/Users?startIndex=7&count=3' >/dev/null
p3=$(jget "$T/scim.body" 'd.Resources.map(r => r.userName).join(",")')
test "$p1|$p2|$p3" = "7 3 Alice,u1,u2|u3,u4,u5|u6" &&
	pass "pages of 3 by startIndex" || fail "pages of 3 by startIndex" "$p1|$p2|$p3"
scim_req GET '/Users?count=0' >/dev/null
test "$(jget "$T/scim.body" 'd.totalResults + " " + d.Resources.length')" = "7 0" &&
	pass "count=0: only totalResults" || fail "count=0: only totalResults"

# ETags and If-Match.
P='"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]'
code=$(scim_req PATCH "/Users/$alice" "{$P,\"Operations\":[{\"op\":\"replace\",\"path\":\"displayName\",\"value\":\"A\"}]}")
v2=$(jget "$T/scim.body" d.meta.version)
test "$code" = 200 && test "$v2" != "$v1" && pass "PATCH: 200, a new version" ||
	fail "PATCH: 200, a new version" "$code $v1 $v2"
code=$(curl -s -o "$T/b" -w '%{http_code}' -X PATCH -H "Authorization: Bearer $SCIM_TOKEN" \
	-H 'Content-Type: application/scim+json' -H "If-Match: $v1" \
	-d "{$P,\"Operations\":[{\"op\":\"replace\",\"path\":\"displayName\",\"value\":\"B\"}]}" \
	"$SCIM_BASE/Users/$alice")
test "$code" = 412 && pass "If-Match with the old version: 412" || fail "If-Match old: 412" "got $code"
code=$(curl -s -o "$T/b" -w '%{http_code}' -X PATCH -H "Authorization: Bearer $SCIM_TOKEN" \
	-H 'Content-Type: application/scim+json' -H "If-Match: $v2" \
	-d "{$P,\"Operations\":[{\"op\":\"replace\",\"path\":\"displayName\",\"value\":\"B\"}]}" \
	"$SCIM_BASE/Users/$alice")
test "$code" = 200 && pass "If-Match with the current version: 200" || fail "If-Match current: 200" "got $code"
v3=$(jget "$T/b" d.meta.version)
code=$(scim_req PATCH "/Users/$alice" "{$P,\"Operations\":[{\"op\":\"replace\",\"path\":\"displayName\",\"value\":\"B\"}]}")
scim_req GET "/Users/$alice" >/dev/null
test "$code $(jget "$T/scim.body" d.meta.version)" = "204 $v3" &&
	pass "a PATCH that changes nothing: 204, version kept" ||
	fail "a PATCH that changes nothing: 204, version kept" "$code $v3"
code=$(curl -s -o "$T/b" -w '%{http_code}' -X DELETE -H "Authorization: Bearer $SCIM_TOKEN" \
	-H "If-Match: $v1" "$SCIM_BASE/Users/$alice")
test "$code" = 412 && pass "DELETE with a stale If-Match: 412" || fail "DELETE stale If-Match: 412" "got $code"

# Groups and members.
u1=$(scim_ctl /state >"$T/st" && jget "$T/st" 'd.users.find(u => u.userName == "u1").id')
code=$(scim_req POST /Groups "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"g1\",\"externalId\":\"G-1\",\"members\":[{\"value\":\"$alice\"},{\"value\":\"$u1\"}]}")
g1=$(jget "$T/scim.body" d.id)
test "$code $(jget "$T/scim.body" d.members.length)" = "201 2" &&
	pass "POST /Groups with two members" || fail "POST /Groups with two members" "$code"
code=$(scim_req PATCH "/Groups/$g1" "{$P,\"Operations\":[{\"op\":\"remove\",\"path\":\"members[value eq \\\"$u1\\\"]\"}]}")
test "$code $(jget "$T/scim.body" 'd.members.map(m => m.value).join()')" = "200 $alice" &&
	pass "PATCH remove members[value eq ...]" || fail "PATCH remove member" "$code"
scim_req GET "/Users/$alice" >/dev/null
test "$(jget "$T/scim.body" 'd.groups[0].value')" = "$g1" &&
	pass "a user's groups are computed" || fail "a user's groups are computed"
code=$(scim_req POST /Groups "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"g2\",\"members\":[{\"value\":\"nosuch\"}]}")
test "$code" = 400 && pass "an unknown member: 400" || fail "an unknown member: 400" "got $code"

# Faults.
scim_ctl /faults '{"rules":[{"method":"GET","path":"^/Users","action":"429","retry_after":"3"}]}' >/dev/null
code=$(scim_req GET /Users)
test "$code" = 429 && pass "rule 429" || fail "rule 429" "got $code"
test_grep "429 carries Retry-After" '^Retry-After: 3' "$T/scim.hdr"
code=$(scim_req GET /Users)
test "$code" = 200 && pass "a rule strikes its number of times" || fail "rule times" "got $code"
scim_ctl /faults '{"rules":[{"path":"^/Groups","action":"500"}]}' >/dev/null
code=$(scim_req GET /Groups)
test "$code" = 500 && pass "rule 500" || fail "rule 500" "got $code"
scim_ctl /faults '{"rules":[{"method":"GET","action":"drop"}]}' >/dev/null
test_expect_code 52 "rule drop: no response (curl 52)" \
	curl -s -H "Authorization: Bearer $SCIM_TOKEN" "$SCIM_BASE/Users"
scim_ctl /faults '{"rules":[{"method":"POST","path":"^/Users$","action":"drop_after"}]}' >/dev/null
test_expect_code 52 "rule drop_after: no response" \
	curl -s -X POST -H "Authorization: Bearer $SCIM_TOKEN" -H 'Content-Type: application/scim+json' \
	-d "{$U,\"userName\":\"dropped\"}" "$SCIM_BASE/Users"
scim_ctl /state >"$T/st"
test "$(jget "$T/st" 'd.users.filter(u => u.userName == "dropped").length')" = 1 &&
	pass "drop_after: the write was applied" || fail "drop_after: the write was applied"
scim_ctl /faults '{"rules":[{"method":"GET","path":"startIndex=4","action":"shift","seed":{"users":[{"userName":"early"}]}}]}' >/dev/null
scim_req GET '/Users?startIndex=1&count=3' >/dev/null
a=$(jget "$T/scim.body" 'd.Resources.map(r => r.userName).join()')
scim_req GET '/Users?startIndex=4&count=3' >/dev/null
b=$(jget "$T/scim.body" 'd.Resources.map(r => r.userName).join()')
test "$a|$b" = "Alice,u1,u2|u2,u3,u4" &&
	pass "shift: a user inserted in front moves the next page" || fail "shift" "$a|$b"
scim_ctl /faults '{"max_count":2}' >/dev/null
scim_req GET '/Users?count=50' >/dev/null
test "$(jget "$T/scim.body" 'd.Resources.length + " " + d.itemsPerPage')" = "2 2" &&
	pass "max_count caps the page size" || fail "max_count caps the page size"

# hide_new: a new object is missing from reads and from the uniqueness
# check for that many seconds (eventual consistency).
scim_ctl /faults '{"max_count":0,"hide_new":2}' >/dev/null
code=$(scim_req POST /Users "{$U,\"userName\":\"late\",\"externalId\":\"L-1\"}")
late=$(jget "$T/scim.body" d.id)
test "$code" = 201 && pass "hide_new: the create answers 201" || fail "hide_new: 201" "got $code"
scim_req GET '/Users?filter=externalId%20eq%20%22L-1%22' >/dev/null
test "$(jget "$T/scim.body" d.totalResults)" = 0 &&
	pass "... the new user is not listed at once" || fail "... not listed at once" "$(cat "$T/scim.body")"
code=$(scim_req GET "/Users/$late")
test "$code" = 404 && pass "... nor read by its id" || fail "... nor read by its id" "got $code"
code=$(scim_req POST /Users "{$U,\"userName\":\"late\",\"externalId\":\"L-1\"}")
test "$code" = 201 && pass "... nor seen by the uniqueness check" || fail "... uniqueness" "got $code"
scim_ctl /faults '{"hide_new":0}' >/dev/null
sleep 3
scim_req GET '/Users?filter=externalId%20eq%20%22L-1%22' >/dev/null
test "$(jget "$T/scim.body" d.totalResults)" = 2 &&
	pass "... both are listed once the time has passed" || fail "... listed later" "$(cat "$T/scim.body")"

# attributes= (scimmy) and ignore_attributes; the log's returned.
scim_req GET '/Users?filter=externalId%20eq%20%22A-1%22&attributes=userName' >/dev/null
test "$(jget "$T/scim.body" 'Object.keys(d.Resources[0]).sort().join()')" = "id,userName" &&
	pass "attributes=userName: only id and userName" || fail "attributes=userName" "$(cat "$T/scim.body")"
scim_ctl /faults '{"ignore_attributes":true}' >/dev/null
scim_req GET '/Users?filter=externalId%20eq%20%22A-1%22&attributes=userName' >/dev/null
test_grep "ignore_attributes: every attribute" '"externalId":"A-1"' "$T/scim.body"
scim_ctl /faults '{"ignore_attributes":false}' >/dev/null
scim_ctl /log >"$T/log.json"
test "$(jget "$T/log.json" 'd.filter(e => /attributes=userName/.test(e.path)).map(e => e.returned.includes("externalId")).join()')" = "false,true" &&
	pass "the log says which attributes a listing returned" || fail "the log's returned"

# The log.
scim_ctl /log >"$T/log.json"
test "$(jget "$T/log.json" 'd.filter(e => e.status == 412).length')" = 2 &&
	pass "the log has the two 412s" || fail "the log has the two 412s"
test "$(jget "$T/log.json" 'd.filter(e => e.fault == "drop" && e.status === null).length')" = 1 &&
	pass "the log shows the dropped request with no status" || fail "dropped in the log"
test_no_grep "the log never holds the token" "$SCIM_TOKEN" "$T/scim.log"
test_grep "the log file has the requests" '"path":"/Users\?filter=externalId' "$T/scim.log"

done_testing
