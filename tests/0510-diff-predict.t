#!/bin/sh
# sync-diff predicts at plan time what sync-export would hit on a Graph
# target: values Graph keeps unique (userPrincipalName, mail and
# proxyAddresses, a user's mailNickname, onPremisesImmutableId) given to
# two objects become conflicts naming the other object; a mailNickname
# Graph refuses is an error record; a source attribute that no object has
# is a warning with the flow attribute's position; an unknown Graph
# property and contacts to a Graph target are config errors.
. "$(dirname "$0")/lib.sh"

cd "$T" || bail "no $T"
cat >connectors.yaml <<'YAML'
connectors:
  ad: { type: ad, url: "ldaps://dc.example.com", base_dn: "DC=example,DC=com" }
  ldap: { type: ldap, url: "ldap://ldap.example.org", base_dn: "dc=example,dc=org" }
  entra:
    type: graph
    tenant: example.onmicrosoft.com
    client_id: "1"
    client_secret_file: /etc/sync/entra.secret
YAML
{ cat connectors.yaml; cat <<'YAML'; } >sync.yaml
flows:
  - name: users
    from: ad.user
    to: entra.user
    attributes:
      userPrincipalName: '[userPrincipalName]'
      displayName: '[displayName]'
      mail: '[mail]'
      proxyAddresses: '[proxyAddresses]'
      mailNickname: '[mailNickname]'
      jobTitle: '[titel]'
  - name: groups
    from: ad.group
    to: entra.group
    anchor: { target: extension_sync_anchor }
    attributes:
      displayName: '[displayName]'
      mailNickname: '[mailNickname]'
      members: { value: '[member]', reference: true }
YAML

# user ANCHOR NAME MAIL NICKNAME UPN [PROXY]: a source user line
user() {
	printf '{"anchor":"%s","attrs":{"displayName":["%s"],"mail":["%s"],"mailNickname":["%s"]%s,"userPrincipalName":["%s"]},"dn":"CN=%s,OU=Staff,DC=example,DC=com","id":"%s","type":"user"}\n' \
	    "$1" "$2" "$3" "$4" "${6:+,\"proxyAddresses\":[\"$6\"]}" "$5" "$2" "$1"
}
# Sorted by anchor, as snapshots are.
{
	printf '{"connector":"ad","connector_type":"ad","cookie":null,"counts":{"contact":0,"group":2,"user":10},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:00:00Z","version":1}\n'
	printf '{"anchor":"g-dots","attrs":{"displayName":["Dots"],"mailNickname":["team.dots"]},"dn":"CN=Dots,OU=Groups,DC=example,DC=com","id":"g-dots","type":"group"}\n'
	printf '{"anchor":"g-team","attrs":{"displayName":["Team"],"mailNickname":["team"],"member":["CN=Ada Lovelace,OU=Staff,DC=example,DC=com","CN=Hal Dot,OU=Staff,DC=example,DC=com"]},"dn":"CN=Team,OU=Groups,DC=example,DC=com","id":"g-team","type":"group"}\n'
	user u-ada "Ada Lovelace" ada@example.com ada ada@example.com
	user u-bo1 "Bo One" bo@example.com bo1 bo1@example.com
	user u-bo2 "Bo Two" BO@Example.com bo2 bo2@example.com
	user u-cy "Cy Young" cy@example.com cy cy@example.com
	user u-ed "Ed New" ed@example.com ed ed@example.com
	user u-fay "Fay Wray" fay@example.com "fay wray" fay@example.com
	user u-gus "Gus Grün" gus@example.com "grün" gus@example.com
	user u-hal "Hal Dot" hal@example.com "hal.dot" hal@example.com
	user u-ivy "Ivy Proxy" ivy@example.com ivy ivy@example.com "smtp:jo@example.com"
	user u-jo "Jo Mail" jo@example.com jo jo@example.com "SMTP:jo@example.com"
} >ad.snap
{
	printf '{"connector":"entra","connector_type":"graph","cookie":null,"counts":{"contact":0,"group":0,"user":4},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:05:00Z","version":1}\n'
	# A cloud-only admin holds Ada's UPN (in another case).
	printf '{"anchor":"t-admin","attrs":{"displayName":["Cloud Ada"],"userPrincipalName":["ADA@example.com"]},"id":"t-admin","type":"user"}\n'
	# Dee has cy@example.com among her proxyAddresses.
	printf '{"anchor":"t-dee","attrs":{"displayName":["Dee Cloud"],"mail":["dee@example.com"],"proxyAddresses":["SMTP:dee@example.com","smtp:cy@example.com"],"userPrincipalName":["dee@example.com"]},"id":"t-dee","type":"user"}\n'
	printf '{"anchor":"t-fay","attrs":{"displayName":["Fay Wray"],"mail":["fay@example.com"],"mailNickname":["fay"],"onPremisesImmutableId":["u-fay"],"userPrincipalName":["fay@example.com"]},"id":"t-fay","type":"user"}\n'
	# Ed's old account, deleted by this plan, frees ed@example.com.
	printf '{"anchor":"t-old","attrs":{"displayName":["Ed Old"],"onPremisesImmutableId":["u-ed-old"],"userPrincipalName":["ed@example.com"]},"id":"t-old","type":"user"}\n'
} >entra.snap

test_expect_code 2 "error records: exit 2" sync-diff -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.json
cp "$T/err" plan.err
grep -v '^{"config"' plan.json >got
cat >want <<'X'
{"anchor":"u-ada","candidates":["t-admin"],"flow":"users","name":"ada@example.com","op":"conflict","reason":"userPrincipalName 'ada@example.com' is already used by user 'ADA@example.com' (id 't-admin')","source":"CN=Ada Lovelace,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-bo1","flow":"users","name":"bo1@example.com","op":"conflict","reason":"mail 'bo@example.com' would also be given to user 'bo2@example.com' (anchor 'u-bo2')","source":"CN=Bo One,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-bo2","flow":"users","name":"bo2@example.com","op":"conflict","reason":"mail 'BO@Example.com' would also be given to user 'bo1@example.com' (anchor 'u-bo1')","source":"CN=Bo Two,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-cy","candidates":["t-dee"],"flow":"users","name":"cy@example.com","op":"conflict","reason":"mail 'cy@example.com' is already used by user 'dee@example.com' (id 't-dee', in proxyAddresses)","source":"CN=Cy Young,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-ed","attrs":{"displayName":{"new":["Ed New"]},"mail":{"new":["ed@example.com"]},"mailNickname":{"new":["ed"]},"onPremisesImmutableId":{"new":["u-ed"]},"userPrincipalName":{"new":["ed@example.com"]}},"flow":"users","name":"ed@example.com","op":"add","source":"CN=Ed New,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-ed-old","attrs":{"onPremisesImmutableId":{"old":["u-ed-old"]}},"flow":"users","id":"t-old","join":"anchor","name":"ed@example.com","op":"delete","reason":"deleted at the source","type":"user"}
{"anchor":"u-fay","flow":"users","name":"fay@example.com","op":"error","reason":"mailNickname 'fay wray' would be refused by Microsoft Graph: it has a space (at most 64 ASCII characters, none of @ ( ) \\ [ ] \" ; : < > , or a space)","source":"CN=Fay Wray,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-gus","flow":"users","name":"gus@example.com","op":"error","reason":"mailNickname 'grün' would be refused by Microsoft Graph: it has a character that is not ASCII (at most 64 ASCII characters, none of @ ( ) \\ [ ] \" ; : < > , or a space)","source":"CN=Gus Grün,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-hal","attrs":{"displayName":{"new":["Hal Dot"]},"mail":{"new":["hal@example.com"]},"mailNickname":{"new":["hal.dot"]},"onPremisesImmutableId":{"new":["u-hal"]},"userPrincipalName":{"new":["hal@example.com"]}},"flow":"users","name":"hal@example.com","op":"add","source":"CN=Hal Dot,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-ivy","flow":"users","name":"ivy@example.com","op":"conflict","reason":"proxyAddresses 'jo@example.com' would also be given to user 'jo@example.com' (anchor 'u-jo', in mail)","source":"CN=Ivy Proxy,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"u-jo","flow":"users","name":"jo@example.com","op":"conflict","reason":"mail 'jo@example.com' would also be given to user 'ivy@example.com' (anchor 'u-ivy', in proxyAddresses)","source":"CN=Jo Mail,OU=Staff,DC=example,DC=com","type":"user"}
{"anchor":"g-dots","flow":"groups","name":"Dots","op":"error","reason":"mailNickname 'team.dots' would be refused by Microsoft Graph: it has a character Graph does not allow there (at most 64 ASCII characters, none of @ ( ) \\ [ ] \" ; : < > , or a space, no period in a group's)","source":"CN=Dots,OU=Groups,DC=example,DC=com","type":"group"}
{"anchor":"g-team","attrs":{"displayName":{"new":["Team"]},"extension_sync_anchor":{"new":["g-team"]},"mailNickname":{"new":["team"]},"members":{"add_anchors":["u-hal"],"add_names":["hal@example.com"]}},"flow":"groups","name":"Team","op":"add","source":"CN=Team,OU=Groups,DC=example,DC=com","type":"group"}
X
test_cmp "each prediction, as the exact record" want got
test_grep "the header counts the predicted conflicts" \
	'"counts":\{"add":3,"conflict":6,"delete":1,"error":3,' plan.json
test_no_grep "a group's member whose add became a conflict is not added" \
	'"add_anchors":\[[^]]*"u-ada"' plan.json
test_grep "the warning names the flow attribute's file:line:column" \
	"^sync-diff: sync.yaml:19:7: warning: flow 'users', attribute 'jobTitle': no object in 'ad.snap' has the source attribute 'titel'\$" plan.err
test_grep "... and the plan is still made" \
	'^sync-diff: 3 to add, 0 to update, 1 to delete, 0 to move, 0 to rename, 6 conflicts, 3 errors' plan.err
grep -c 'warning:' plan.err >n
echo 1 >want
test_cmp "one warning: an attribute some object has is not reported" want n

for j in 1 3; do
	test_expect_code 2 "-j $j" sync-diff -j "$j" -c sync.yaml ad.snap entra.snap
	test_cmp "-j $j: the same predictions, byte for byte" plan.json "$T/out"
done

# The text view shows the conflict's reason with the other object's name.
test_expect_code 2 "text view" sync-diff -f text -c sync.yaml ad.snap entra.snap
test_grep "a conflict in the text view" \
	"^! conflict user \"ada@example.com\" \\(anchor \"u-ada\", flow users, reason userPrincipalName 'ada@example.com' is already used by user 'ADA@example.com' \\(id 't-admin'\\), source \"CN=Ada Lovelace,OU=Staff,DC=example,DC=com\"\\)\$" "$T/out"

# ------------------------------------------------ not a Graph target: none
{ cat connectors.yaml; cat <<'YAML'; } >ldap.yaml
flows:
  - name: people
    from: ad.user
    to: ldap.user
    anchor: { target: employeeNumber }
    dn: '"uid=" & [mailNickname] & ",ou=people,dc=example,dc=org"'
    attributes:
      mail: '[mail]'
      uid: '[mailNickname]'
YAML
{
	printf '{"connector":"ad","connector_type":"ad","cookie":null,"counts":{"contact":0,"group":0,"user":2},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:00:00Z","version":1}\n'
	user u-bo1 "Bo One" bo@example.com bo1 bo1@example.com
	user u-bo2 "Bo Two" bo@example.com "bo 2" bo2@example.com
} >two.snap
printf '{"connector":"ldap","connector_type":"ldap","cookie":null,"counts":{"contact":0,"group":0,"user":0},"format":"sync-snapshot","kind":"full","time":"2026-01-01T00:05:00Z","version":1}\n' >ldap.snap
test_expect_code 1 "an LDAP target: same mail, a space in uid" \
	sync-diff -c ldap.yaml two.snap ldap.snap
test_grep "... two adds, no prediction of Graph's rules" '"add":2,"conflict":0,"delete":0,"error":0' "$T/out"

# ---------------------------------------------------------- config errors
{ cat connectors.yaml; cat <<'YAML'; } >typo.yaml
flows:
  - name: users
    from: ad.user
    to: entra.user
    attributes:
      displayName: '[displayName]'
      givenname: '[givenName]'
YAML
test_expect_code 2 "a Graph property in the wrong case: a config error" \
	sync-diff -c typo.yaml ad.snap entra.snap
echo "sync-diff: typo.yaml:15:7: 'givenname' is not a Microsoft Graph property (did you mean 'givenName'?)" >want
test_cmp "... at the attribute, with the right spelling" want "$T/err"

{ cat connectors.yaml; cat <<'YAML'; } >unknown.yaml
flows:
  - name: users
    from: ad.user
    to: entra.user
    attributes:
      displayName: '[displayName]'
      extension_0123456789abcdef0123456789abcdef_costCenter: '[mail]'
      onPremisesExtensionAttributes.extensionAttribute1: '[mail]'
      telephoneNumber: '[telephoneNumber]'
YAML
test_expect_code 2 "an unknown Graph property: a config error" \
	sync-diff -c unknown.yaml ad.snap entra.snap
echo "sync-diff: unknown.yaml:17:7: 'telephoneNumber' is not a Microsoft Graph user or group property (see sync.conf(5), FLOWS; directory extensions are written extension_<app id>_<name>)" >want
test_cmp "... naming it, after a directory extension and a nested property that pass" want "$T/err"
test_expect_code 2 "sync-import reads the same rules: the same error" \
	sync-import -c unknown.yaml entra
sed 's/^sync-diff/sync-import/' want >want.import
test_cmp "... from sync-import" want.import "$T/err"

{ cat connectors.yaml; cat <<'YAML'; } >contacts.yaml
flows:
  - name: contacts
    from: ad.contact
    to: entra.contact
    attributes:
      displayName: '[displayName]'
YAML
test_expect_code 2 "contacts to a Graph target: a config error" \
	sync-diff -c contacts.yaml ad.snap entra.snap
echo "sync-diff: contacts.yaml:12:9: flow 'contacts': contacts cannot be written to connector 'entra': Microsoft Graph cannot create or change organizational contacts" >want
test_cmp "... at the flow's 'to'" want "$T/err"

{ cat connectors.yaml; cat <<'YAML'; } >ldapcontacts.yaml
flows:
  - name: contacts
    from: ad.contact
    to: ldap.contact
    anchor: { target: employeeNumber }
    dn: '"cn=" & [cn] & ",ou=contacts,dc=example,dc=org"'
    attributes:
      telephoneNumber: '[telephoneNumber]'
YAML
test_expect_code 0 "contacts to an LDAP target, any attribute name: fine" \
	sync-diff -c ldapcontacts.yaml ad.snap ldap.snap

done_testing
