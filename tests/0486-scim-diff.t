#!/bin/sh
# sync-diff with a SCIM target (sync-changeset(5), SCIM targets): the
# anchor stamped in externalId (the connector's anchor) on created and
# soft-matched objects, so that joins are derived from the service's own
# data; members by SCIM id, new ones by anchor; objects without
# externalId left alone; target attribute names checked; a SCIM snapshot
# read by the real import joins the same way.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/scim.sh"

D=$TOP/tests/data/scim
cd "$D" || bail "no $D"

test_expect_code 1 "changes: exit 1" sync-diff -c sync.yaml ad.snap app.snap
test_cmp "the change set" plan.json "$T/out"
cp "$T/out" "$T/plan"
test_expect_code 1 "text view" sync-diff -f text -c sync.yaml ad.snap app.snap
test_cmp "the text plan" plan.txt "$T/out"

test_grep "add: externalId stamped with the anchor, no anchor key in the flow" \
	'^\{"anchor":"Qk9C","attrs":\{"active":\{"new":\["false"\]\}.*"emails\[type eq \\"work\\"\]\.value":\{"new":\["bob@example\.com"\]\},"externalId":\{"new":\["Qk9C"\]\},"name\.familyName":\{"new":\["Builder"\]\},"name\.givenName":\{"new":\["Bob"\]\},"userName":\{"new":\["bob@example\.com"\]\}\},"flow":"users","name":"Bob Builder","op":"add"' "$T/plan"
test_grep "hard match on externalId: only what differs" \
	'^\{"anchor":"QUxJQ0U=","attrs":\{"displayName":\{"new":\["Alice Liddell"\],"old":\["Alice"\]\}\},"flow":"users","id":"s-alice","join":"anchor"' "$T/plan"
test_grep "soft match on userName stamps externalId" \
	'^\{"anchor":"RlJBTks=","attrs":\{"externalId":\{"new":\["RlJBTks="\],"old":\[\]\}.*"id":"s-frank","join":"userName".*"op":"update"' "$T/plan"
test_grep "delete carries the old externalId" \
	'^\{"anchor":"REFWRQ==","attrs":\{"externalId":\{"old":\["REFWRQ=="\]\}\},"flow":"users","id":"s-dave".*"op":"delete"' "$T/plan"
test_no_grep "an object without externalId is left alone" 's-admin' "$T/plan"
test_grep "members: SCIM ids added and removed, a new user by anchor" \
	'"members":\{"add":\["s-frank"\],"add_anchors":\["Qk9C"\],"add_names":\["Frank","Bob Builder"\],"remove":\["s-dave"\],"remove_names":\["Dave"\]\}\},"flow":"groups","id":"s-staff"' "$T/plan"
test_grep "a new group: externalId stamped, members by anchor" \
	'^\{"anchor":"TkVX","attrs":\{"displayName":\{"new":\["New"\]\},"externalId":\{"new":\["TkVX"\]\},"members":\{"add_anchors":\["Qk9C"\],"add_names":\["Bob Builder"\]\}\}.*"op":"add"' "$T/plan"

# An anchor mapping with a source and no target keeps the default
# (it used to crash sync-diff).
sed 's/^    join:$/    anchor: { source: "[anchor]" }\n    join:/' sync.yaml >"$T/src-anchor.yaml"
(cd "$D" && sync-diff -c "$T/src-anchor.yaml" ad.snap app.snap) >"$T/out2" 2>"$T/err2"
test "$?" = 1 && pass "anchor with only a source: exit 1" || fail "anchor with only a source: exit 1" "$(cat "$T/err2")"
test_grep "... and externalId is still the target" '"externalId":\{"new":\["Qk9C"\]\}' "$T/out2"

# Target attribute names are checked where the config says them.
# badattr NAME LINE EXPECTED: the users flow with the attribute NAME
# added must be refused with EXPECTED after "sync-diff: FILE:LINE:7: ".
badattr() {
	awk -v a="$1" '{ print } /^    attributes:$/ && !done { print "      " a ": \"[mail]\""; done = 1 }' \
		sync.yaml >"$T/bad.yaml"
	(cd "$D" && sync-diff -c "$T/bad.yaml" ad.snap app.snap) >/dev/null 2>"$T/bad.err"
	_rc=$?
	printf 'sync-diff: %s:%s:7: %s\n' "$T/bad.yaml" "$2" "$3" >"$T/bad.want"
	if [ $_rc = 2 ] && cmp -s "$T/bad.want" "$T/bad.err"; then
		pass "refused: $1"
	else
		fail "refused: $1" "exit $_rc: $(cat "$T/bad.err")"
	fi
}
badattr mail 23 "'mail' is not an attribute of the SCIM core schema of User (RFC 7643); extension attributes are written urn:<schema>:<attribute>"
badattr emails 23 "'emails' must be emails.<sub-attribute>, emails[type eq \"<type>\"].<sub-attribute> or emails[primary eq true].<sub-attribute>"
badattr "'emails[type eq work].value'" 23 "'emails[type eq work].value' must be emails.<sub-attribute>, emails[type eq \"<type>\"].<sub-attribute> or emails[primary eq true].<sub-attribute>"
badattr name 23 "'name' must name a sub-attribute of 'name' (formatted familyName givenName middleName honorificPrefix honorificSuffix)"
badattr groups 23 "'groups' is read-only (the service sets it)"
badattr meta.version 23 "'meta.version' is read-only (the service sets it)"
badattr enterprise:manager 23 "'enterprise:manager' must name a sub-attribute of 'manager' (value)"
badattr enterprise:badge 23 "'enterprise:badge' is not an attribute of the SCIM enterprise extension (RFC 7643); extension attributes are written urn:<schema>:<attribute>"
awk '{ print } /^    attributes:$/ { n++ } n == 1 && /^    attributes:$/ { print "      \"urn:example:params:scim:schemas:extension:acme:2.0:User:badge\": \"[mail]\"" }' \
	sync.yaml >"$T/ext.yaml"
(cd "$D" && sync-diff -c "$T/ext.yaml" ad.snap app.snap) >"$T/ext.out" 2>"$T/ext.err"
test_grep "a custom extension attribute is taken as it is" '"urn:example:params:scim:schemas:extension:acme:2.0:User:badge":\{"new":\["bob@example.com"\]\}' "$T/ext.out"

# SCIM has no contacts.
sed 's/from: ad.group/from: ad.contact/; s/to: app.group/to: app.contact/' sync.yaml >"$T/contact.yaml"
test_expect_code 2 "a contact flow to SCIM is refused" sync-diff -c "$T/contact.yaml" ad.snap app.snap
test_grep "with its position" "contact.yaml:32:9: flow 'groups': contacts cannot be written to connector 'app': SCIM has no contacts" "$T/err"

# The snapshot names are usable in expressions (a SCIM source).
printf '%s\n' '{"emails[type eq \"work\"].value":["a@example.com"],"name.givenName":["Al"],"enterprise:department":["R&D"]}' >"$T/in.json"
test_expect_code 0 "[emails[type eq \"work\"].value] in an expression" \
	sync-diff -e '[emails[type eq "work"].value] & "/" & [name.givenName] & "/" & [enterprise:department]' "$T/in.json"
echo '["a@example.com/Al/R&D"]' >"$T/want"
test_cmp "the values" "$T/want" "$T/out"

# The same flows against a real SCIM snapshot: what the service holds is
# what joins (externalId), the import reads what the flows write.
cd "$T" || bail "no $T"
ok "the SCIM server starts" scim_start scim || bail "no SCIM server"
U=urn:ietf:params:scim:schemas:core:2.0:User
E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
scim_req POST /Users "{\"schemas\":[\"$U\",\"$E\"],\"userName\":\"alice@example.com\",\"externalId\":\"QUxJQ0U=\",\"active\":true,\"displayName\":\"Alice Liddell\",\"name\":{\"givenName\":\"Alice\",\"familyName\":\"Liddell\"},\"emails\":[{\"type\":\"work\",\"value\":\"alice@example.com\"}],\"$E\":{\"department\":\"Wonderland\"}}" >"$T/code"
scim_req POST /Users "{\"schemas\":[\"$U\"],\"userName\":\"admin@example.com\",\"displayName\":\"App admin\"}" >>"$T/code"
test_grep "two users created" '^201$' "$T/code"
sed -e "s|url: https://app.example.com/scim/v2|url: $SCIM_BASE\n    allow_http: true|" \
	-e "s|token_file: /etc/sync/app.token|token_file: $SCIM_TOKEN_FILE|" \
	-e "s|^connectors:|state_dir: $T/state\nconnectors:|" \
	"$D/sync.yaml" >"$T/live.yaml"
# Only the attributes the flows write are asked to be kept.
awk '{ print } /^    token_file:/ { print "    objects:\n      user:\n        attributes: [ userName ]\n      group:\n        attributes: [ displayName ]" }' \
	"$T/live.yaml" >"$T/live2.yaml"
test_expect_code 0 "import of the SCIM target" sync-import -c "$T/live2.yaml" -o "$T/live.snap" app
test_grep "the flows' attributes are read" '"emails\[type eq \\"work\\"\]\.value":\["alice@example.com"\],"enterprise:department":\["Wonderland"\],"externalId":\["QUxJQ0U="\]' "$T/live.snap"
test_no_grep "others are not" '"emails.value"' "$T/live.snap"
test_expect_code 0 "import without attribute lists" sync-import -c "$T/live.yaml" -o "$T/all.snap" app
test_grep "... keeps everything, the flows' attributes do not narrow it" '"emails\.value":\["alice@example.com"\]' "$T/all.snap"
test_expect_code 1 "diff against it" sync-diff -c "$T/live2.yaml" "$D/ad.snap" "$T/live.snap"
cp "$T/out" "$T/live.plan"
test_no_grep "alice, already as the flows want, is joined and unchanged" 'QUxJQ0U=' "$T/live.plan"
test_no_grep "the admin without externalId is left alone" 'admin@example.com' "$T/live.plan"
test_grep "bob and frank are created with externalId" '"externalId":\{"new":\["RlJBTks="\]\}.*"op":"add"' "$T/live.plan"

done_testing
