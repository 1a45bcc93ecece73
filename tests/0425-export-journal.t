#!/bin/sh
# sync-export's journal and state directory, against the Graph emulator:
# a journal record without a valid change is an error naming file and
# line (never "change 0", which would skip a change never applied); a
# journal or lock that is a symbolic link is refused and what it points
# to left alone; a state directory others can write, or that another
# user owns, is refused.  Nothing is sent in any of these cases.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/secret"
emu_start emu || _lib_fatal "start the Graph emulator"
BASE=http://127.0.0.1:$(cat "$T/emu.port")

emu_conf "$T/sync.yaml"
cat >>"$T/sync.yaml" <<EOF
  src:
    type: ldap
    url: ldapi:///
    base_dn: dc=example,dc=org
role:
  server: alpha
  duration: 300
  lease:
    file: lease
EOF
cat "$TOP/tests/data/graph-export-flows.yaml" >>"$T/sync.yaml"

# Three users to add.
{
	printf '%s\n' '{"connector":"src","connector_type":"ldap","cookie":null,"counts":{"contact":0,"group":0,"user":3},"format":"sync-snapshot","kind":"full","source":"ldapi:///","time":"2026-11-25T00:00:00Z","version":1}'
	for u in 1 2 3; do
		printf '{"anchor":"dXNlcg%04d==","attrs":{"displayName":["User %d"],"uid":["u%d"]},"dn":"uid=u%d,ou=People,dc=example,dc=org","id":"u%d","type":"user"}\n' "$u" "$u" "$u" "$u" "$u"
	done
} >"$T/src.snap"
ok "import the (empty) target" \
	sync-import -q -c "$T/sync.yaml" -o "$T/entra.snap" entra
test_expect_code 1 "a plan with three adds" \
	sync-diff -c "$T/sync.yaml" -o "$T/plan.json" "$T/src.snap" "$T/entra.snap"
ok "promote this server" sync-role -c "$T/sync.yaml" promote
SHA=$(sha256sum <"$T/plan.json" | cut -c1-64)
HDR="{\"format\":\"sync-journal\",\"plan\":\"$SHA\",\"started\":\"2026-11-25T00:00:00Z\",\"version\":1}"

# writes: the requests that changed something in the emulator so far
writes() {
	ctl /_emulator/log | python3 -c 'import json, sys
print(len([r for r in json.load(sys.stdin) if r["method"] != "GET"
           and not r.get("control") and "/oauth2/" not in r["path"]]))'
}
nothing_sent() {
	writes >"$T/writes"
	echo 0 >"$T/want"
	test_cmp "... nothing was sent" "$T/want" "$T/writes"
}

# ------------------------------------------------------------ records
# badj NAME RECORD MESSAGE: a journal of the header and RECORD
badj() {
	printf '%s\n%s\n' "$HDR" "$2" >"$T/$1.jsonl"
	test_expect_code 2 "a journal record $1: exit 2" \
		sync-export -c "$T/sync.yaml" -j "$T/$1.jsonl" "$T/plan.json"
	printf 'sync-export: %s\n' "$3" >"$T/want"
	test_cmp "... names file and line" "$T/want" "$T/err"
	nothing_sent
}
badj nochange '{"anchor":"dXNlcg0001==","op":"add","outcome":"applied","type":"user"}' \
	"$T/nochange.jsonl:2: a record without \"change\""
badj string '{"change":"x","outcome":"applied"}' \
	"$T/string.jsonl:2: \"change\" is not an integer"
badj fraction '{"change":0.5,"outcome":"applied"}' \
	"$T/fraction.jsonl:2: \"change\" is not an integer"
badj negative '{"change":-1,"outcome":"applied"}' \
	"$T/negative.jsonl:2: record for no change of this plan (change -1, the plan has 3)"
badj beyond '{"change":3,"outcome":"applied"}' \
	"$T/beyond.jsonl:2: record for no change of this plan (change 3, the plan has 3)"
badj outcome '{"change":1,"outcome":"done"}' \
	"$T/outcome.jsonl:2: \"outcome\" must be applied, skipped or failed"

# ------------------------------------------------------------ links
# The plan's own journal, in the state directory, a link to another
# file (without a newline: a torn journal is truncated on repair).
mkdir -p "$T/state/journal"
chmod 700 "$T/state/journal"
printf 'precious' >"$T/other"
ln -s "$T/other" "$T/state/journal/$SHA.jsonl"
test_expect_code 2 "a journal that is a symbolic link: exit 2" \
	sync-export -c "$T/sync.yaml" "$T/plan.json"
echo "sync-export: cannot open journal '$T/state/journal/$SHA.jsonl': it is a symbolic link" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
printf 'precious' >"$T/want"
test_cmp "... the file it points to is untouched" "$T/want" "$T/other"
nothing_sent
rm "$T/state/journal/$SHA.jsonl"

rm -f "$T/state/export.lock"   # the runs above made it
ln -s "$T/elsewhere.lock" "$T/state/export.lock"
test_expect_code 2 "a lock file that is a symbolic link: exit 2" \
	sync-export -c "$T/sync.yaml" "$T/plan.json"
echo "sync-export: cannot open lock file '$T/state/export.lock': it is a symbolic link" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
if [ -e "$T/elsewhere.lock" ]; then fail "... creates nothing where it points"; else
	pass "... creates nothing where it points"; fi
rm "$T/state/export.lock"

# ------------------------------------------------------------ state dir
chmod 777 "$T/state"
test_expect_code 2 "a state directory of mode 0777: exit 2" \
	sync-export -c "$T/sync.yaml" "$T/plan.json"
echo "sync-export: state directory '$T/state' is writable by group or others (mode 0777); chmod 700 it" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
nothing_sent
test_expect_code 2 "... sync-import refuses it too" \
	sync-import -q -c "$T/sync.yaml" -o "$T/x.snap" entra
echo "sync-import: state directory '$T/state' is writable by group or others (mode 0777); chmod 700 it" >"$T/want"
test_cmp "... and says so" "$T/want" "$T/err"
chmod 700 "$T/state"

chown 1234 "$T/state"
test_expect_code 2 "a state directory of another user: exit 2" \
	sync-export -c "$T/sync.yaml" "$T/plan.json"
echo "sync-export: state directory '$T/state' is owned by uid 1234, not by this user (uid $(id -u)) or root" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
nothing_sent
chown "$(id -u)" "$T/state"

# ------------------------------------------------------------ and then
test_expect_code 0 "with all that put right, the plan is applied" \
	sync-export -c "$T/sync.yaml" "$T/plan.json"
test_grep "... all three changes" \
	'^sync-export: 3 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
if [ -f "$T/state/journal/$SHA.jsonl" ] && [ ! -L "$T/state/journal/$SHA.jsonl" ]; then
	pass "... its journal a file of its own"; else fail "... its journal a file of its own"; fi
echo 600 >"$T/want"
stat -c %a "$T/state/journal/$SHA.jsonl" >"$T/got"
test_cmp "... of mode 0600" "$T/want" "$T/got"

done_testing
