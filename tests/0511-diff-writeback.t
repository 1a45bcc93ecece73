#!/bin/sh
# The writeback to Active Directory on recorded snapshots, with the
# flows of examples/ad-to-entra.yaml: mS-DS-ConsistencyGuid written where
# it is empty (a flow from AD's users to themselves, 'link: join': update
# only), and Entra ID's cloud security groups written into an OU, their
# members translated to the DNs of the AD users the Entra ID users were
# synced from (a join-only flow).  What the plan holds, what it leaves
# alone, and that the directory once the plan is applied plans nothing.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
EX=$TOP/examples
cd "$D" || bail "no $D"
AD_URL=ldaps://dc.example.com AD_BASE=DC=example,DC=com
ENTRA_TENANT=example.onmicrosoft.com ENTRA_CLIENT_ID=1
SYNC_APP_ID=0123456789abcdef0123456789abcdef
export AD_URL AD_BASE ENTRA_TENANT ENTRA_CLIENT_ID SYNC_APP_ID
C=$EX/ad-to-entra.yaml

# --- the plan: sources AD and Entra ID, target AD
test_expect_code 1 "writeback: changes" \
	sync-diff -f text -c "$C" wb-ad.snap wb-entra.snap wb-ad.snap
test_cmp "writeback: the plan" wb-ad.txt "$T/out"
cp "$T/out" "$T/plan.txt"
cp "$T/err" "$T/plan.err"
test_grep "mS-DS-ConsistencyGuid gets objectGUID's value where it is empty" \
	'^    mS-DS-ConsistencyGuid: \(none\) -> "EREREREREREREREREREREQ=="$' "$T/plan.txt"
test_grep "... on the user joined on its own objectGUID, by the consistency-guid flow" \
	'^~ update user "jdoe@example.com" \(anchor "EREREREREREREREREREREQ==", id "11111111-1111-1111-1111-111111111111", flow consistency-guid, join anchor, ' \
	"$T/plan.txt"
test_no_grep "a value already there (equal, or a user moved from another forest) stays" \
	'^~ update user "(asmith|mved)@' "$T/plan.txt"
test_no_grep "no AD user is created or deleted: critical objects out of scope are left" \
	'^[+-] (add|delete) user|krbtgt' "$T/plan.txt"
test_no_grep "the cloud-users flow only joins: it writes nothing" \
	'flow cloud-users' "$T/plan.txt"
test_no_grep "an AD group without the anchor is never touched" \
	'"Staff"|OU=Groups' "$T/plan.txt"
test_grep "a new cloud group is added in the OU, its DN from the flow's dn" \
	'^    dn: "CN=Team B_000000000a02,OU=Cloud Groups,DC=example,DC=com"$' "$T/plan.txt"
test_grep "... with the anchor stamped in adminDescription" \
	'^    adminDescription: "Group_0a1b2c3d-0000-4000-8000-000000000a02"$' "$T/plan.txt"
test_grep "... a sAMAccountName derived from its id" \
	'^    sAMAccountName: "Group_0a1b2c3d000040008000000000000a02"$' "$T/plan.txt"
test_grep "... members: the AD user a synced user came from (hard match on mS-DS-ConsistencyGuid), a written-back group" \
	'^    member: \+"Team A" \+"mved@example.com"$' "$T/plan.txt"
test_grep "... a group to be created in the same plan, by its anchor" \
	'^    member: \+new:"Team B"$' "$T/plan.txt"
test_grep "an existing written-back group gets the member it lacks (joined by objectGUID: mS-DS-ConsistencyGuid still empty)" \
	'^    member: \+"asmith@example.com"$' "$T/plan.txt"
test_grep "a written-back group whose cloud group is gone is deleted" \
	'^- delete group "Old Team" \(anchor "Group_0a1b2c3d-0000-4000-8000-000000000a09", .*reason deleted at the source\)$' \
	"$T/plan.txt"
test_no_grep "an AD group whose adminDescription is a note, not Group_..., is not ours: never deleted" \
	'Legacy' "$T/plan.txt"
sed '/prefix: Group_/d' "$C" >"$T/nopfx.yaml"
test_expect_code 1 "... the same rules without the anchor's prefix" \
	sync-diff -f text -c "$T/nopfx.yaml" wb-ad.snap wb-entra.snap wb-ad.snap
test_grep "... would take it for an orphan of ours and delete it" \
	'^- delete group "CN=Legacy,OU=Cloud Groups,DC=example,DC=com" \(anchor "do not delete: legacy ACLs"' \
	"$T/out"
test_no_grep "groups synced from AD and Microsoft 365 groups are not written back" \
	'Synced Group|All Hands' "$T/plan.txt"
cat >"$T/want" <<'X'
sync-diff: DIR/examples/ad-to-entra.yaml:LINE:7: warning: flow 'group-writeback', group 'Team A': 1 value of 'member' left out, with no object in connector 'ad': 'cloudy@example.onmicrosoft.com'
sync-diff: DIR/examples/ad-to-entra.yaml:LINE:7: warning: flow 'group-writeback', group 'Team B': 2 values of 'member' left out, with no object in connector 'ad': 'gone@example.com', '0a1b2c3d-0000-4000-8000-00000000d001'
sync-diff: 2 to add, 2 to update, 1 to delete, 0 to move, 0 to rename, 0 conflicts, 0 errors; deletion threshold 500 not exceeded
X
sed -e "s|$TOP|DIR|" -e 's|yaml:[0-9]*:7:|yaml:LINE:7:|' "$T/plan.err" >"$T/got"
test_cmp "members with no AD counterpart (cloud-only, a user gone from AD, a device) are left out with a warning, not an error" \
	"$T/want" "$T/got"

test_expect_code 1 "the JSON plan" \
	sync-diff -c "$C" wb-ad.snap wb-entra.snap wb-ad.snap
sed -n 2p "$T/out" >"$T/got"
cat >"$T/want" <<'X'
{"anchor":"EREREREREREREREREREREQ==","attrs":{"mS-DS-ConsistencyGuid":{"new":["EREREREREREREREREREREQ=="],"old":[]}},"binary":["mS-DS-ConsistencyGuid"],"dn":"CN=John Doe,OU=Staff,DC=example,DC=com","flow":"consistency-guid","id":"11111111-1111-1111-1111-111111111111","join":"anchor","name":"jdoe@example.com","op":"update","source":"CN=John Doe,OU=Staff,DC=example,DC=com","type":"user"}
X
test_cmp "... the binary value travels base64, marked binary, with its old state (none)" \
	"$T/want" "$T/got"
cp "$T/out" "$T/plan1.json"
test_expect_code 1 "... the same with 4 threads" \
	sync-diff -j 4 -c "$C" wb-ad.snap wb-entra.snap wb-ad.snap
test_cmp "... byte for byte" "$T/plan1.json" "$T/out"

# --- an AD group that is not ours holds the DN a new group would take
test_expect_code 1 "the DN of a new group is taken" \
	sync-diff -f text -c "$C" wb-ad-taken.snap wb-entra.snap wb-ad-taken.snap
test_grep "... a conflict naming the group there, not an add that would fail" \
	'^! conflict group "Team C" \(anchor "Group_0a1b2c3d-0000-4000-8000-000000000a03", flow group-writeback, reason the DN is taken by a target object that is not this one.s, ' \
	"$T/out"
test_grep "... its candidate" '^    candidates: "dddddddd-dddd-dddd-dddd-dddddddddddd"$' "$T/out"
test_grep "... the rest of the plan goes on, the group there untouched" \
	'^Plan: 1 to add, 2 to update, 1 to delete, 0 to move, 0 to rename, 1 conflicts, 0 errors;' "$T/out"
cp "$T/out" "$T/taken1"
test_expect_code 1 "... the same with 4 threads" \
	sync-diff -j 4 -f text -c "$C" wb-ad-taken.snap wb-entra.snap wb-ad-taken.snap
test_cmp "... byte for byte" "$T/taken1" "$T/out"

# --- a rename onto a DN another object holds: Team A renamed Team Z in
# Entra ID, and the group that is not ours sits at Team Z's DN
sed 's/"displayName":\["Team A"\]/"displayName":["Team Z"]/' wb-entra.snap >"$T/z-entra.snap"
sed 's/Team C_000000000a03/Team Z_000000000a01/g' wb-ad-taken.snap >"$T/z-ad.snap"
test_expect_code 1 "the new DN of a renamed group is taken" \
	sync-diff -f text -c "$C" "$T/z-ad.snap" "$T/z-entra.snap" "$T/z-ad.snap"
test_grep "... a conflict naming the group there, as for an add, not a rename that would fail" \
	'^! conflict group "Team A" \(anchor "Group_0a1b2c3d-0000-4000-8000-000000000a01", flow group-writeback, join anchor, reason the DN is taken by a target object that is not this one.s, ' \
	"$T/out"
test_grep "... its candidate" '^    candidates: "dddddddd-dddd-dddd-dddd-dddddddddddd"$' "$T/out"
test_no_grep "... no rename" '^[>~] (rename|move|update) group "Team [AZ]"' "$T/out"
test_grep "... the group stays a member of Team B by its DN where it is" \
	'^    member: \+"Team A" \+"mved@example.com"$' "$T/out"
test_grep "... the rest of the plan goes on" \
	'^Plan: 2 to add, 1 to update, 1 to delete, 0 to move, 0 to rename, 1 conflicts, 0 errors;' "$T/out"
cp "$T/out" "$T/z1"
test_expect_code 1 "... the same with 4 threads" \
	sync-diff -j 4 -f text -c "$C" "$T/z-ad.snap" "$T/z-entra.snap" "$T/z-ad.snap"
test_cmp "... byte for byte" "$T/z1" "$T/out"

# --- the directory once the plan is applied: nothing more to do
test_expect_code 0 "after the export: the writeback plans nothing" \
	sync-diff -f text -c "$C" wb-ad-after.snap wb-entra.snap wb-ad-after.snap
test_grep "... 0 changes" '^Plan: 0 to add, 0 to update, 0 to delete' "$T/out"
# and the forward flows do not take the written-back groups to Entra ID
test_expect_code 1 "the forward diff from that directory" \
	sync-diff -f text -c "$C" wb-ad-after.snap wb-entra.snap
test_no_grep "... does not sync the written-back groups (adminDescription Group_) back" \
	'Team [ABC]' "$T/out"

# --- the rules: link, and what it excludes, at file:line:column
cat >"$T/base.yaml" <<'X'
connectors:
  ad: { type: ad, url: ldaps://dc.example.com, base_dn: "DC=example,DC=com" }
  entra: { type: graph, tenant: t, client_id: c, client_secret_file: /dev/null }
flows:
  - name: cg
    from: ad.user
    to: ad.user
X
bad() {
	_d=$1 _want=$2
	shift 2
	{ cat "$T/base.yaml"; printf '%s\n' "$@"; } >"$T/bad.yaml"
	test_expect_code 2 "$_d" sync-diff -c "$T/bad.yaml" wb-ad.snap wb-ad.snap
	test_grep "... at file:line:column" "^sync-diff: $T/bad.yaml:$_want" "$T/err"
}
bad "link: an unknown value" "8:11: 'link' must be provision or join$" \
	"    link: sometimes"
bad "link: join with out_of_scope: delete" \
	"9:19: flow 'cg': 'link: join' never deletes or disables: 'out_of_scope' can only be 'leave' there$" \
	"    link: join" "    out_of_scope: delete"
bad "anchor: an empty prefix" "9:43: 'prefix' must not be empty$" \
	"    anchor:" "      { target: adminDescription, prefix: '' }"
bad "link: join with a create-only attribute" \
	"10:7: flow 'cg': attribute 'c' is for objects being created \('when: create'\), and a flow with 'link: join' creates none$" \
	"    link: join" "    attributes:" "      c: { value: '\"x\"', when: create }"

# --- link: join against a directory that lacks two users of the source
# and has one the source lacks: the joined user is updated, nothing is
# created or deleted; the same flow with link: provision would create
# the two and delete the other, and the critical object out of scope
{ cat "$T/base.yaml"; cat <<'X'; } >"$T/j.yaml"
    link: join
    scope:
      filter: 'Not(IsPresent([isCriticalSystemObject]))'
    anchor: { source: '[objectGUID]', target: objectGUID }
    attributes:
      mS-DS-ConsistencyGuid: 'IIF(IsPresent([mS-DS-ConsistencyGuid]), IgnoreThisFlow, [objectGUID])'
X
test_expect_code 1 "link: join against another directory" \
	sync-diff -f text -c "$T/j.yaml" wb-ad.snap wb-ad-other.snap
test_grep "... updates the user it joins, creates and deletes nothing" \
	'^Plan: 0 to add, 1 to update, 0 to delete' "$T/out"
sed '/link: join/d' "$T/j.yaml" >"$T/p.yaml"
test_expect_code 1 "the same flow with link: provision" \
	sync-diff -f text -c "$T/p.yaml" wb-ad.snap wb-ad-other.snap
test_grep "... creates and deletes" '^Plan: 2 to add, 1 to update, 2 to delete' "$T/out"

done_testing
