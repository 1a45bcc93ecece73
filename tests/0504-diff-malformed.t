#!/bin/sh
# sync-diff: malformed snapshots and configs fail with file:line:column,
# exit 2 and no output file.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"
H=$(head -n 1 ad.snap)
L2=$(sed -n 2p ad.snap)

bad() {  # bad NAME EXPECTED-MESSAGE: sync-diff on $T/NAME as the source
	rm -f "$T/plan.json"
	test_expect_code 2 "$1: exit 2" \
		sync-diff -c sync.yaml -o "$T/plan.json" "$T/$1" entra.snap
	printf 'sync-diff: %s\n' "$2" >"$T/want"
	test_cmp "$1: the message" "$T/want" "$T/err"
	if [ -e "$T/plan.json" ]; then fail "$1: no output file"; else pass "$1: no output file"; fi
}

{ echo "$H"; printf '%s' "$L2" | head -c 60; } >"$T/truncated.snap"
bad truncated.snap "$T/truncated.snap:2:61: truncated line (no newline at the end of the file)"

{ echo "$H"; printf '%s\n' "$L2" | cut -c 1-60; } >"$T/cut.snap"
bad cut.snap "$T/cut.snap:2:61: unexpected end of line in a string"

echo "$H" | sed 's/"version":1/"version":2/' >"$T/version.snap"
bad version.snap "$T/version.snap:1:1: unsupported snapshot version 2 (expected 1)"

echo '{"format":"sync-changeset","version":1}' >"$T/format.snap"
bad format.snap "$T/format.snap:1:1: not a snapshot (the header's format is not \"sync-snapshot\")"

# A file cut after a complete line parses line by line: the header's
# counts catch it, before the missing objects are taken for deleted ones.
head -n 1 ad.snap >"$T/headonly.snap"
bad headonly.snap "$T/headonly.snap:2: the file ends with 0 users but its header counts 10 (a truncated or altered snapshot)"
head -n 12 ad.snap >"$T/short.snap"
bad short.snap "$T/short.snap:13: the file ends with 9 users but its header counts 10 (a truncated or altered snapshot)"
{ cat ad.snap; printf '%s\n' '{"anchor":"u-zed","attrs":{},"id":"u-zed","type":"contact"}'; } >"$T/long.snap"
bad long.snap "$T/long.snap:15: the file ends with 1 contact but its header counts 0 (a truncated or altered snapshot)"

# The header is read as strictly as the objects.
sed '1s/"cookie":null,/"cookie":null,"comment":"x",/' ad.snap >"$T/hkey.snap"
bad hkey.snap "$T/hkey.snap:1:55: unknown header key 'comment'"
sed '1s/"kind":"full"/"kind":"partial"/' ad.snap >"$T/kind.snap"
bad kind.snap "$T/kind.snap:1:123: header: \"kind\" must be \"full\" or \"delta\""
sed '1s/"connector_type":"ad"/"connector_type":"samba"/' ad.snap >"$T/ctype.snap"
bad ctype.snap "$T/ctype.snap:1:19: header: \"connector_type\" must be ldap, ad, graph or scim"
sed '1s/"counts":{[^}]*},//' ad.snap >"$T/nocounts.snap"
bad nocounts.snap "$T/nocounts.snap:1:1: the header has no \"counts\""
sed '1s/"group":2,/"group":2,"printer":0,/' ad.snap >"$T/ctypes.snap"
bad ctypes.snap "$T/ctypes.snap:1:55: header: \"counts\" must be an object with the keys contact, group and user"
sed '1s/"user":10/"user":-1/' ad.snap >"$T/negcount.snap"
bad negcount.snap "$T/negcount.snap:1:55: header: \"counts\" must be an object with the keys contact, group and user, each a number of objects"
# A delta snapshot lacks what did not change: not a side of a diff.
sed '1s/"kind":"full"/"kind":"delta"/' ad.snap >"$T/delta.snap"
bad delta.snap "$T/delta.snap: a delta snapshot (kind \"delta\") holds only what changed; sync-diff needs a full one"

sed -n '1,4p;4p' ad.snap >"$T/dup.snap"
bad dup.snap "$T/dup.snap:5:1: duplicate anchor 'u-alice' (also on line 4)"

{ sed -n 1p ad.snap; sed -n 4p ad.snap; sed -n 2p ad.snap; } >"$T/order.snap"
bad order.snap "$T/order.snap:3:1: anchor 'g-all' is out of order (snapshots are sorted by anchor)"

{ echo "$H"; printf '{"anchor":"u1","attrs":{"cn":["ab\377c"]},"id":"u1","type":"user"}\n'; } >"$T/utf8.snap"
bad utf8.snap "$T/utf8.snap:2:34: invalid UTF-8"

{ echo "$H"; printf '{"anchor":"u1","attrs":{"cn":["\\ud800"]},"id":"u1","type":"user"}\n'; } >"$T/surrogate.snap"
bad surrogate.snap "$T/surrogate.snap:2:32: lone high surrogate"

{ echo "$H"; printf '{"anchor":"u1","attrs":{"objectGUID":["!!"]},"binary":["objectGUID"],"id":"u1","type":"user"}\n'; } >"$T/b64.snap"
bad b64.snap "$T/b64.snap:2:55: attribute 'objectGUID': invalid base64"

# "QR==" is not what any encoder writes for "A" ("QQ=="): the bits the
# padding drops must be zero, or two texts would decode to one value
{ echo "$H"; printf '{"anchor":"u1","attrs":{"objectGUID":["QUJD","QR=="]},"binary":["objectGUID"],"id":"u1","type":"user"}\n'; } >"$T/b64pad.snap"
bad b64pad.snap "$T/b64pad.snap:2:64: attribute 'objectGUID': invalid base64"

{ echo "$H"; printf '{"anchor":"u1","attrs":{"cn":"x"},"id":"u1","type":"user"}\n'; } >"$T/notarray.snap"
bad notarray.snap "$T/notarray.snap:2:30: expected '['"

{ echo "$H"; printf '{"anchor":"u1","attrs":{},"id":"u1","kind":"user"}\n'; } >"$T/key.snap"
bad key.snap "$T/key.snap:2:37: unknown key 'kind'"

{ echo "$H"; printf '{"anchor":"u1","attrs":{},"id":"u1","type":"printer"}\n'; } >"$T/type.snap"
bad type.snap "$T/type.snap:2:37: unknown object type 'printer'"

{ echo "$H"; echo; } >"$T/empty-line.snap"
bad empty-line.snap "$T/empty-line.snap:2:1: empty line"

: >"$T/empty.snap"
bad empty.snap "$T/empty.snap:1:1: empty file: not a snapshot"

bad missing.snap "cannot open '$T/missing.snap': No such file or directory"

# The target snapshot is checked the same way.
test_expect_code 2 "a malformed target" sync-diff -c sync.yaml ad.snap "$T/dup.snap"
test_grep "names the target file" "dup.snap:5:1: duplicate anchor" "$T/err"

# Configs: the flows and policy sections are read strictly.
badconf() {  # badconf NAME MESSAGE-REGEX (config in $T/NAME.yaml)
	test_expect_code 2 "config $1: exit 2" \
		sync-diff -c "$T/$1.yaml" ad.snap entra.snap
	test_grep "config $1: the message" "$2" "$T/err"
}
head -n 11 sync.yaml >"$T/conns"
{ cat "$T/conns"; cat <<'X'; } >"$T/expr.yaml"
flows:
  - name: users
    from: ad.user
    to: entra.user
    attributes:
      displayName: '[displayName] & & "x"'
X
badconf expr "^sync-diff: $T/expr.yaml:17:37: attribute flow: unexpected .&."
{ cat "$T/conns"; cat <<'X'; } >"$T/key.yaml"
flows:
  - name: users
    from: ad.user
    to: entra.user
    scpoe: {}
X
badconf key "^sync-diff: $T/key.yaml:16:5: unknown key 'scpoe'"
{ cat "$T/conns"; cat <<'X'; } >"$T/conn.yaml"
flows:
  - name: users
    from: ad2.user
    to: entra.user
X
badconf conn "^sync-diff: $T/conn.yaml:14:11: no connector named 'ad2'"
{ cat "$T/conns"; cat <<'X'; } >"$T/type.yaml"
flows:
  - name: users
    from: ad.person
    to: entra.user
X
badconf type "^sync-diff: $T/type.yaml:14:11: 'ad.person': expected 'connector.type'"
{ cat "$T/conns"; cat <<'X'; } >"$T/oos.yaml"
flows:
  - name: users
    from: ad.user
    to: entra.user
    out_of_scope: purge
X
badconf oos "^sync-diff: $T/oos.yaml:16:19: 'out_of_scope' must be delete, disable or leave"
{ cat "$T/conns"; cat <<'X'; } >"$T/join.yaml"
flows:
  - name: users
    from: ad.user
    to: entra.user
    join:
      - { name: upn, source: 'Left([upn]', target: userPrincipalName }
X
badconf join "^sync-diff: $T/join.yaml:17:41: join source: expected"
{ cat "$T/conns"; echo 'flows: []'; } >"$T/noflows.yaml"
badconf noflows "flows.* must be a non-empty list"

done_testing
