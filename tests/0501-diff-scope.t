#!/bin/sh
# sync-diff: objects moving into and out of scope (OUs, group membership),
# and the three out-of-scope actions.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"

conf() {  # conf OOS [MEMBER-LINE] > file
	sed -e "s/@OOS@/$1/" -e "s/@MEMBER@/${2:-}/" scope.yaml.in
}
conf delete >"$T/delete.yaml"
conf disable >"$T/disable.yaml"
conf leave >"$T/leave.yaml"
conf delete 'member_of: "CN=Pilot,OU=Groups,DC=example,DC=com"' >"$T/pilot.yaml"

test_expect_code 0 "in sync before the moves: exit 0" \
	sync-diff -c "$T/delete.yaml" scope-before.snap scope-entra.snap
test_expect_code 1 "after the moves: changes" \
	sync-diff -c "$T/delete.yaml" -f text scope-after.snap scope-entra.snap
cat >"$T/want" <<'X'
+ add user "Three" (anchor "u3", flow users, source "CN=U3,OU=Staff,DC=example,DC=com")
    displayName: "Three"
    onPremisesImmutableId: "u3"

- delete user "Two" (anchor "u2", id "t2", flow users, join anchor, reason out of scope, source "CN=U2,OU=Other,DC=example,DC=com")
    onPremisesImmutableId: "u2" -> (deleted)

Plan: 1 to add, 0 to update, 1 to delete, 0 to move, 0 to rename, 0 conflicts, 0 errors; deletion threshold 500 not exceeded.
X
test_cmp "moved out: deleted; moved in: added" "$T/want" "$T/out"

test_expect_code 1 "out_of_scope: disable" \
	sync-diff -c "$T/disable.yaml" scope-after.snap scope-entra.snap
test_grep "disable sets the flow's disable attributes" \
	'^\{"anchor":"u2","attrs":\{"accountEnabled":\{"new":\["false"\],"old":\["true"\]\}\},"disable":true,"flow":"users","id":"t2","join":"anchor","name":"Two","op":"update","reason":"out of scope"' "$T/out"
test_no_grep "disable deletes nothing" '"op":"delete"' "$T/out"

test_expect_code 1 "out_of_scope: leave" \
	sync-diff -c "$T/leave.yaml" scope-after.snap scope-entra.snap
test_no_grep "leave: the object that left scope is not touched" '"u2"' "$T/out"
test_grep "leave: the object that came into scope is added" '"anchor":"u3".*"op":"add"' "$T/out"

test_expect_code 1 "scope by group membership" \
	sync-diff -c "$T/pilot.yaml" scope-before.snap scope-entra.snap
test_grep "a user outside the group leaves scope" '"anchor":"u2".*"op":"delete","reason":"out of scope"' "$T/out"
test_no_grep "the group member stays" '"anchor":"u1"' "$T/out"

# A disabled object already disabled needs nothing.
sed 's/"accountEnabled":\["true"\],"displayName":\["Two"\]/"accountEnabled":["false"],"displayName":["Two"]/' \
	scope-entra.snap >"$T/disabled.snap"
test_expect_code 1 "disable is idempotent" \
	sync-diff -c "$T/disable.yaml" scope-after.snap "$T/disabled.snap"
test_no_grep "nothing to disable twice" '"u2"' "$T/out"

done_testing
