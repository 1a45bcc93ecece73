#!/bin/sh
# sync-diff: how [name] reads an object: the pseudo attributes [anchor],
# [dn] and [id] before real attributes of those names, names in any case,
# names computed at run time (ImportedValue), and two sources whose
# snapshots list their attributes in different orders.  The engine keeps
# each name's resolution per snapshot: these cases would show a stale one.
. "$(dirname "$0")/lib.sh"

cd "$T" || bail "no $T"
cat >connectors.yaml <<'YAML'
connectors:
  ad: { type: ad, url: "ldaps://dc.example.com", base_dn: "DC=example,DC=com" }
  ldap: { type: ldap, url: "ldap://ldap.example.com", base_dn: "dc=example,dc=org" }
  entra:
    type: graph
    tenant: example.onmicrosoft.com
    client_id: "1"
    client_secret_file: /etc/sync/entra.secret
YAML
{ cat connectors.yaml; cat <<'YAML'; } >sync.yaml
flows:
  - name: users
    from: [ad.user, ldap.user]
    to: entra.user
    scope:
      filter: 'IIF(IsPresent([skip]), False, True)'
    attributes:
      displayName: '[DISPLAYNAME]'
      department: '[dn]'
      employeeId: '[Anchor]'
      jobTitle: '[title] & "/" & [ID] & "/" & [DN]'
      city: 'ImportedValue("TITLE")'
      officeLocation: 'ImportedValue(Left("titleXYZ", 5))'
      companyName: '[company]'
YAML
# hdr CONNECTOR TYPE USERS: a header line
hdr() {
	printf '{"connector":"%s","connector_type":"%s","cookie":null,"counts":{"contact":0,"group":0,"user":%d},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:00:00Z","version":1}\n' "$1" "$2" "$3"
}
{
	hdr ad ad 3
	echo '{"anchor":"a1","attrs":{"DN":["not the dn"],"displayName":["Ann"],"title":["Boss"],"company":["AD Corp"]},"dn":"CN=Ann,DC=example,DC=com","id":"CN=Ann,DC=example,DC=com","type":"user"}'
	echo '{"anchor":"a2","attrs":{"company":["AD Corp"],"title":["Clerk"],"displayName":["Bo"]},"dn":"CN=Bo,DC=example,DC=com","id":"ad-id-bo","type":"user"}'
	echo '{"anchor":"a3","attrs":{"displayName":["Cy"],"skip":["1"]},"dn":"CN=Cy,DC=example,DC=com","id":"ad-id-cy","type":"user"}'
} >ad.snap
{
	hdr ldap ldap 2
	echo '{"anchor":"l1","attrs":{"title":["Chef"],"company":["LDAP Inc"],"displayName":["Dee"],"id":["not the id"]},"dn":"uid=dee,dc=example,dc=org","id":"uid=dee,dc=example,dc=org","type":"user"}'
	echo '{"anchor":"l2","attrs":{"displayName":["Eve"]},"dn":"uid=eve,dc=example,dc=org","id":"uid=eve,dc=example,dc=org","type":"user"}'
} >ldap.snap
hdr entra graph 0 >entra.snap

test_expect_code 1 "two sources, all added" \
	sync-diff -j 2 -c sync.yaml ad.snap ldap.snap entra.snap
cp "$T/out" plan-j2.json
test_expect_code 1 "JSON view, one thread (both sources through one evaluator)" \
	sync-diff -j 1 -c sync.yaml ad.snap ldap.snap entra.snap
cp "$T/out" plan.json
test_cmp "the same plan from one thread as from two" plan-j2.json plan.json

# one line per object: anchor and its attributes as "name=value" pairs
python3 - plan.json >got.txt <<'PY'
import json, sys
for line in open(sys.argv[1]).read().splitlines()[1:]:
    c = json.loads(line)
    vals = ["%s=%s" % (k, "|".join(v.get("new", []))) for k, v in sorted(c["attrs"].items())]
    print(c["anchor"], c["op"], " ".join(vals))
PY
cat >want.txt <<'EOF2'
a1 add city=Boss companyName=AD Corp department=CN=Ann,DC=example,DC=com displayName=Ann employeeId=a1 jobTitle=Boss/CN=Ann,DC=example,DC=com/CN=Ann,DC=example,DC=com officeLocation=Boss onPremisesImmutableId=a1
a2 add city=Clerk companyName=AD Corp department=CN=Bo,DC=example,DC=com displayName=Bo employeeId=a2 jobTitle=Clerk/ad-id-bo/CN=Bo,DC=example,DC=com officeLocation=Clerk onPremisesImmutableId=a2
l1 add city=Chef companyName=LDAP Inc department=uid=dee,dc=example,dc=org displayName=Dee employeeId=l1 jobTitle=Chef/uid=dee,dc=example,dc=org/uid=dee,dc=example,dc=org officeLocation=Chef onPremisesImmutableId=l1
l2 add department=uid=eve,dc=example,dc=org displayName=Eve employeeId=l2 jobTitle=/uid=eve,dc=example,dc=org/uid=eve,dc=example,dc=org onPremisesImmutableId=l2
EOF2
test_cmp "pseudo attributes, any case, computed names, per-source order" \
	want.txt got.txt
test_no_grep "the scope filter read [skip] of each object" '"a3"' plan.json
test_no_grep "[dn] is the object's DN, not an attribute called DN" \
	'not the' plan.json

# A flow that writes the anchor attribute itself: the anchor is then not
# stamped apart, except on an update when the flow is for creation only.
{ cat connectors.yaml; cat <<'YAML'; } >anchor.yaml
flows:
  - name: users
    from: ad.user
    to: entra.user
    join:
      - { name: upn, source: '[userPrincipalName]', target: userPrincipalName }
    attributes:
      userPrincipalName: '[userPrincipalName]'
      onPremisesImmutableId: { value: '"X-" & [anchor]', when: WHEN }
YAML
{
	hdr ad ad 2
	echo '{"anchor":"u1","attrs":{"userPrincipalName":["u1@example.com"]},"dn":"CN=U1,DC=example,DC=com","id":"CN=U1,DC=example,DC=com","type":"user"}'
	echo '{"anchor":"u2","attrs":{"userPrincipalName":["u2@example.com"]},"dn":"CN=U2,DC=example,DC=com","id":"CN=U2,DC=example,DC=com","type":"user"}'
} >ad1.snap
{
	hdr entra graph 1
	echo '{"anchor":"t1","attrs":{"userPrincipalName":["u1@example.com"]},"id":"t1","type":"user"}'
} >entra1.snap
for when in create always; do
	sed "s/WHEN/$when/" anchor.yaml >"anchor-$when.yaml"
	test_expect_code 1 "anchor written by a flow ($when)" \
		sync-diff -c "anchor-$when.yaml" ad1.snap entra1.snap
	python3 - "$T/out" >"got-$when.txt" <<'PY'
import json, sys
for line in open(sys.argv[1]).read().splitlines()[1:]:
    c = json.loads(line)
    a = c["attrs"]["onPremisesImmutableId"]
    print(c["anchor"], c["op"], "|".join(a.get("new", [])), "|".join(a.get("old", [])))
PY
done
printf '%s\n' "u1 update u1 " "u2 add X-u2 " >want-create.txt
test_cmp "create-only flow: its value on add, the anchor stamped on the join" \
	want-create.txt got-create.txt
printf '%s\n' "u1 update X-u1 " "u2 add X-u2 " >want-always.txt
test_cmp "a flow for every update: its value, no stamp" \
	want-always.txt got-always.txt

done_testing
