#!/bin/sh
# sync-diff's views for people and spreadsheets with hostile values: CSV
# cells that a spreadsheet would run as formulas, and control characters
# (ESC sequences, newlines) in the text view and in messages on stderr.
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$T" || bail "no $T"
cp "$D/sync.yaml" . || bail "no $D/sync.yaml"
ESC=$(printf '\033')
CR=$(printf '\r')

H='{"connector":"ad","connector_type":"ad","cookie":null,"counts":{"contact":0,"group":0,"user":6},"format":"sync-snapshot","kind":"full","source":"ldaps://dc.example.com","time":"2026-01-01T00:00:00Z","version":1}'
user() {   # anchor displayName upn
	printf '{"anchor":"%s","attrs":{"displayName":["%s"],"userAccountControl":["512"],"userPrincipalName":["%s"]},"dn":"CN=%s,OU=Staff,DC=example,DC=com","id":"%s","type":"user"}\n' \
	    "$1" "$2" "$3" "$1" "$1"
}
{
	printf '%s\n' "$H"
	user u-at '@SUM(1+1)*cmd|'"'"' /C calc'"'"'!A0' at@example.com
	user u-eq '=cmd|'"'"' /C calc'"'"'!A0' eq@example.com
	user u-esc '\u001b[31mred\nforged line' esc@example.com
	user u-heidi 'Heidi' heidi@example.com
	user u-minus '-2+3+cmd|'"'"' /C calc'"'"'!A0' minus@example.com
	user u-plus '+2+3+cmd|'"'"' /C calc'"'"'!A0' plus@example.com
} >ad.snap
{
	printf '%s\n' '{"connector":"entra","connector_type":"graph","cookie":null,"counts":{"contact":0,"group":0,"user":1},"format":"sync-snapshot","kind":"full","source":"https://graph.microsoft.com","time":"2026-01-01T00:05:00Z","version":1}'
	# Soft-matched by u-heidi, but carrying another anchor, which the
	# conflict's reason quotes: a value with ESC, a newline and a C1 CSI.
	printf '%s\n' '{"anchor":"t-heidi","attrs":{"displayName":["Heidi"],"onPremisesImmutableId":["\u001b[31mevil\nX\u009b2J\u007f"],"userPrincipalName":["heidi@example.com"]},"id":"t-heidi","type":"user"}'
} >entra.snap

# ---------------------------------------------------------------- CSV view
test_expect_code 1 "csv view" sync-diff -f csv -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.csv
test_grep "= at the start of a cell: a quote in front, quoted" \
	"^add,user,eq@example.com,\"CN=u-eq,OU=Staff,DC=example,DC=com\",u-eq,,users,,displayName,,\"'=cmd\\|' /C calc'!A0\",,,$CR\$" plan.csv
test_grep "+ likewise" \
	"^add,user,plus@example.com,\"CN=u-plus,OU=Staff,DC=example,DC=com\",u-plus,,users,,displayName,,\"'\\+2\\+3\\+cmd\\|' /C calc'!A0\",,,$CR\$" plan.csv
test_grep "- likewise" \
	"^add,user,minus@example.com,\"CN=u-minus,OU=Staff,DC=example,DC=com\",u-minus,,users,,displayName,,\"'-2\\+3\\+cmd\\|' /C calc'!A0\",,,$CR\$" plan.csv
test_grep "@ likewise" \
	"^add,user,at@example.com,\"CN=u-at,OU=Staff,DC=example,DC=com\",u-at,,users,,displayName,,\"'@SUM\\(1\\+1\\)\\*cmd\\|' /C calc'!A0\",,,$CR\$" plan.csv
test_grep "an ordinary cell is left alone" \
	"^add,user,eq@example.com,\"CN=u-eq,OU=Staff,DC=example,DC=com\",u-eq,,users,,userPrincipalName,,eq@example.com,,,$CR\$" plan.csv
test_no_grep "no cell starts with a formula character" \
	'(^|,)[=+@-]' plan.csv

# --------------------------------------------------------------- text view
test_expect_code 1 "text view" sync-diff -f text -c sync.yaml ad.snap entra.snap
cp "$T/out" plan.txt
test_no_grep "no raw ESC in the text view" "$ESC" plan.txt
test_grep "a value with ESC and a newline is shown escaped" \
	'^    displayName: "\\u001B\[31mred\\nforged line"$' plan.txt
test_no_grep "the newline forged no line" '^forged line' plan.txt
printf '%s\n' '! conflict user "heidi@example.com" (anchor "u-heidi", flow users, join upn, reason join rule '"'"'upn'"'"' matched a target object that already carries the anchor '"'"'\x1b[31mevil\nX\u009b2J\x7f'"'"', source "CN=u-heidi,OU=Staff,DC=example,DC=com")' >want
grep '^! conflict user "heidi@example.com"' plan.txt >got
test_cmp "a reason quoting a target value: ESC, newline, C1 and DEL escaped" want got

# ------------------------------------------------------ messages on stderr
{
	printf '%s\n' "$H"
	printf '%s\n' '{"anchor":"\u001b]0;pwned\u0007\u001b[2J","attrs":{},"id":"x1","type":"user"}'
	printf '%s\n' '{"anchor":"\u001b]0;pwned\u0007\u001b[2J","attrs":{},"id":"x2","type":"user"}'
} >dup.snap
test_expect_code 2 "a duplicate anchor in a snapshot: an error" \
	sync-diff -c sync.yaml dup.snap entra.snap
printf '%s\n' "sync-diff: dup.snap:3:1: duplicate anchor '\\x1b]0;pwned\\x07\\x1b[2J' (also on line 2)" >want
test_cmp "the anchor in the message is escaped" want "$T/err"

# Valid UTF-8 is not touched: only the C1 range of it is escaped.
{
	printf '%s\n' "$H"
	printf '%s\n' '{"anchor":"Zoë\u009b","attrs":{},"id":"x1","type":"user"}'
	printf '%s\n' '{"anchor":"Zoë\u009b","attrs":{},"id":"x2","type":"user"}'
} >utf8.snap
test_expect_code 2 "a duplicate anchor with UTF-8 and a C1 control" \
	sync-diff -c sync.yaml utf8.snap entra.snap
printf '%s\n' "sync-diff: utf8.snap:3:1: duplicate anchor 'Zoë\\u009b' (also on line 2)" >want
test_cmp "UTF-8 kept, C1 escaped" want "$T/err"

# The expression mode's messages quote the input too.
printf '{"a":1,\033[31m}' >bad.json
test_expect_code 2 "-e: a JSON syntax error" sync-diff -e '[a]' bad.json
test_no_grep "no raw ESC in the message" "$ESC" "$T/err"

done_testing
