#!/bin/sh
# sync-diff names every change for people: "name" is a user's
# userPrincipalName (planned, else the target's), else displayName, else a
# DN; deletes are named from the target snapshot; group members are named
# (add_names, remove_names) in the change set, and by name in the text and
# CSV views; the text view is sorted by object type, then name, and sums
# up long member lists; the CSV has name and dn columns.  sync-export
# reads the new fields.
. "$(dirname "$0")/lib.sh"

cd "$T" || bail "no $T"
cat >sync.yaml <<'YAML'
connectors:
  ad: { type: ad, url: "ldaps://dc.example.com", base_dn: "DC=example,DC=com" }
  entra:
    type: graph
    tenant: example.onmicrosoft.com
    client_id: "1"
    client_secret_file: /etc/sync/entra.secret
flows:
  - name: users
    from: ad.user
    to: entra.user
    scope: { include: "OU=Staff,DC=example,DC=com" }
    attributes:
      userPrincipalName: '[userPrincipalName]'
      displayName: '[displayName]'
  - name: groups
    from: ad.group
    to: entra.group
    scope: { include: "OU=Groups,DC=example,DC=com" }
    anchor: { target: extension_sync_anchor }
    attributes:
      displayName: '[displayName]'
      members: { value: '[member]', reference: true }
YAML

# user ANCHOR CN DISPLAYNAME [UPN]: a source user in OU=Staff
user() {
	printf '{"anchor":"%s","attrs":{"displayName":["%s"]%s},"dn":"CN=%s,OU=Staff,DC=example,DC=com","id":"%s","type":"user"}\n' \
	    "$1" "$3" "${4:+,\"userPrincipalName\":[\"$4\"]}" "$2" "$1"
}
members=
i=1
while [ $i -le 25 ]; do
	n=$(printf '%02d' $i)
	members="$members${members:+,}\"CN=M$n,OU=Staff,DC=example,DC=com\""
	i=$((i + 1))
done
{
	printf '{"connector":"ad","connector_type":"ad","cookie":null,"counts":{"contact":0,"group":3,"user":30},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:00:00Z","version":1}\n'
	printf '{"anchor":"g-big","attrs":{"displayName":["Big"],"member":[%s]},"dn":"CN=Big,OU=Groups,DC=example,DC=com","id":"g-big","type":"group"}\n' "$members"
	printf '{"anchor":"g-gone","attrs":{"displayName":["Gone"]},"dn":"CN=Gone,OU=Elsewhere,DC=example,DC=com","id":"g-gone","type":"group"}\n'
	printf '{"anchor":"g-ops","attrs":{"displayName":["Ops"],"member":["CN=Amy,OU=Staff,DC=example,DC=com","CN=Cat,OU=Staff,DC=example,DC=com"]},"dn":"CN=Ops,OU=Groups,DC=example,DC=com","id":"g-ops","type":"group"}\n'
	user u-amy Amy "Amy Adams" amy@example.com
	user u-ben Ben "Ben Barnes" benjamin@example.com
	user u-cat Cat "Cat Cole" cat@example.com
	user u-esc Esc '\u001b[2Jwiped'
	user u-evil Evil '=HYPERLINK(\"http://x\")'
	i=1
	while [ $i -le 25 ]; do
		n=$(printf '%02d' $i)
		user "u-m$n" "M$n" "Member $n" "m$n@example.com"
		i=$((i + 1))
	done
} >ad.snap
{
	printf '{"connector":"entra","connector_type":"graph","cookie":null,"counts":{"contact":0,"group":3,"user":4},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:05:00Z","version":1}\n'
	printf '{"anchor":"t-amy","attrs":{"displayName":["Amy A."],"onPremisesImmutableId":["u-amy"],"userPrincipalName":["amy@example.com"]},"id":"t-amy","type":"user"}\n'
	printf '{"anchor":"t-ben","attrs":{"displayName":["Ben Barnes"],"onPremisesImmutableId":["u-ben"],"userPrincipalName":["ben@example.com"]},"id":"t-ben","type":"user"}\n'
	printf '{"anchor":"t-gone","attrs":{"displayName":["Gone Group"],"extension_sync_anchor":["g-gone"]},"id":"t-gone","type":"group"}\n'
	printf '{"anchor":"t-old","attrs":{"displayName":["Old Group"],"extension_sync_anchor":["g-old"]},"id":"t-old","type":"group"}\n'
	printf '{"anchor":"t-ops","attrs":{"displayName":["Ops"],"extension_sync_anchor":["g-ops"],"members":["t-zed"]},"id":"t-ops","type":"group"}\n'
	printf '{"anchor":"t-pat","attrs":{"displayName":["Pat NoUPN"],"onPremisesImmutableId":["u-pat"]},"id":"t-pat","type":"user"}\n'
	printf '{"anchor":"t-zed","attrs":{"displayName":["Zed Z."],"onPremisesImmutableId":["u-zed"],"userPrincipalName":["zed@example.com"]},"id":"t-zed","type":"user"}\n'
} >entra.snap

test_expect_code 1 "changes" sync-diff -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.json
python3 -c 'import json, sys
for l in open(sys.argv[1]).readlines()[1:]:
    c = json.loads(l)
    print(c["anchor"], c["op"], json.dumps(c["name"]))' plan.json >names
cat >want <<'X'
u-amy update "amy@example.com"
u-ben update "benjamin@example.com"
u-cat add "cat@example.com"
u-esc add "\u001b[2Jwiped"
u-evil add "=HYPERLINK(\"http://x\")"
X
i=1
while [ $i -le 25 ]; do
	n=$(printf '%02d' $i)
	printf 'u-m%s add "m%s@example.com"\n' "$n" "$n"
	i=$((i + 1))
done >>want
cat >>want <<'X'
u-pat delete "Pat NoUPN"
u-zed delete "zed@example.com"
g-big add "Big"
g-gone delete "Gone Group"
g-old delete "Old Group"
g-ops update "Ops"
X
test_cmp "every change named: the target's UPN, the planned one, displayName; deletes from the target" want names

test_grep "group members named: by the target's names, the new one by its planned name" \
	'^\{"anchor":"g-ops","attrs":\{"members":\{"add":\["t-amy"\],"add_anchors":\["u-cat"\],"add_names":\["amy@example.com","cat@example.com"\],"remove":\["t-zed"\],"remove_names":\["zed@example.com"\]\}\},"flow":"groups","id":"t-ops","join":"anchor","name":"Ops","op":"update","source":"CN=Ops,OU=Groups,DC=example,DC=com","type":"group"\}$' plan.json
test_grep "a delete out of scope, named from the target, counted once" \
	'"counts":\{"add":29,"conflict":0,"delete":4,"error":0,"move":0,"rename":0,"update":3\}' plan.json
grep -c '"anchor":"g-gone"' plan.json >n
echo 1 >want
test_cmp "... its record written once (a flow with references)" want n

# ------------------------------------------------------------- text view
test_expect_code 1 "text view" sync-diff -f text -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.txt
grep '^[-+~!x>] ' plan.txt | sed 's/ (anchor.*//' >order
cat >want <<'X'
+ add user "\u001B[2Jwiped"
+ add user "=HYPERLINK(\"http://x\")"
~ update user "amy@example.com"
~ update user "benjamin@example.com"
+ add user "cat@example.com"
X
i=1
while [ $i -le 25 ]; do
	printf '+ add user "m%02d@example.com"\n' $i
	i=$((i + 1))
done >>want
cat >>want <<'X'
- delete user "Pat NoUPN"
- delete user "zed@example.com"
+ add group "Big"
- delete group "Gone Group"
- delete group "Old Group"
~ update group "Ops"
X
test_cmp "sorted by type, then name (bytes, case ignored); a name with ESC escaped" want order
test_grep "a change: its name, then anchor and id" \
	'^~ update user "benjamin@example.com" \(anchor "u-ben", id "t-ben", flow users, join anchor, source "CN=Ben,OU=Staff,DC=example,DC=com"\)$' plan.txt
test_grep "members by name, the new one marked" \
	'^    members: \+"amy@example.com" \+new:"cat@example.com" -"zed@example.com"$' plan.txt
cat >want <<'X'
    members:
      + 25: new:"m01@example.com", new:"m02@example.com", new:"m03@example.com", new:"m04@example.com", new:"m05@example.com", new:"m06@example.com", new:"m07@example.com", new:"m08@example.com", new:"m09@example.com", new:"m10@example.com", new:"m11@example.com", new:"m12@example.com", new:"m13@example.com", new:"m14@example.com", new:"m15@example.com", new:"m16@example.com", new:"m17@example.com", new:"m18@example.com", new:"m19@example.com", new:"m20@example.com", ... and 5 more
X
sed -n '/^+ add group "Big"/,/^$/p' plan.txt | sed -n '/^    members:/,/^      +/p' >got
test_cmp "more than 20 members: counted, 20 names and how many more" want got
test_grep "... the change set keeps every id and name" \
	'"add_names":\["m01@example.com",.*"m25@example.com"\]' plan.json

# -------------------------------------------------------------- CSV view
test_expect_code 1 "CSV view" sync-diff -f csv -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.csv
CR=$(printf '\r')
test_grep "header: name and dn columns" \
	"^op,type,name,dn,anchor,id,flow,join,attribute,old,new,added,removed,reason$CR\$" plan.csv
test_grep "a row: the name and the source DN" \
	"^update,user,benjamin@example.com,\"CN=Ben,OU=Staff,DC=example,DC=com\",u-ben,t-ben,users,anchor,userPrincipalName,ben@example.com,benjamin@example.com,,,$CR\$" plan.csv
test_grep "a name that is a formula is neutralised" \
	"^add,user,\"'=HYPERLINK\\(\"\"http://x\"\"\\)\",\"CN=Evil,OU=Staff,DC=example,DC=com\",u-evil," plan.csv
test_grep "members: name (id)" \
	"^update,group,Ops,\"CN=Ops,OU=Groups,DC=example,DC=com\",g-ops,t-ops,groups,anchor,members,,,\"amy@example.com \\(t-amy\\)$" plan.csv
test_grep "a delete named from the target" \
	"^delete,user,zed@example.com,,u-zed,t-zed,users,anchor,onPremisesImmutableId,u-zed,,,,deleted at the source$CR\$" plan.csv

# ----------------------------------------------------------- determinism
for j in 1 4; do
	test_expect_code 1 "-j $j" sync-diff -j "$j" -c sync.yaml ad.snap entra.snap
	test_cmp "-j $j: the same bytes" plan.json "$T/out"
	test_expect_code 1 "-j $j text" sync-diff -j "$j" -f text -c sync.yaml ad.snap entra.snap
	test_cmp "-j $j: the same text" plan.txt "$T/out"
done

# ------------------------------------------------- sync-export reads them
test_expect_code 0 "sync-export -n reads a plan with names" \
	sync-export -n -c sync.yaml plan.json
test_grep "... and shows what it would send" '^PATCH /users/t-ben \{"userPrincipalName":"benjamin@example.com"\}$' "$T/out"
sed 's/"name":"Ops"/"name":["Ops"]/' plan.json >bad.json
test_expect_code 2 "a name that is not a string is refused" \
	sync-export -n -c sync.yaml bad.json
echo "sync-export: bad.json:37:1: \"name\" must be a string" >want
test_cmp "... naming the line" want "$T/err"

done_testing
