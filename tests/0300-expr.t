#!/bin/sh
# The sync-rule expression language (sync-expr(7)): every case of
# tests/expr-cases.txt through "sync-diff -e", exact output compared.
# POSIX sh; run from the repository root after make, e.g. by prove.

cd "$(dirname "$0")/.." || exit 2
BIN=./bin/sync-diff
CASES=tests/expr-cases.txt
T=tests/tmp/0300-expr.$$
mkdir -p "$T" || exit 2
trap 'rm -rf "$T"' EXIT
trap 'exit 2' HUP INT TERM

n=0
failed=0
expr= in= bin= out= err= have=

# Prints the TAP line of one case: its expression, as the test name.
result() {
	n=$((n + 1))
	if [ "$1" = ok ]; then
		printf 'ok %d - %s\n' "$n" "$expr"
	else
		failed=$((failed + 1))
		printf 'not ok %d - %s\n' "$n" "$expr"
		shift
		printf '%s\n' "$@" | sed 's/^/#   /'
	fi
}

runcase() {
	[ -n "$have" ] || return 0
	printf '%s\n' "${in:-{\}}" > "$T/in.json"
	set --
	for b in $bin; do
		set -- "$@" -b "$b"
	done
	"$BIN" -e "$expr" "$@" "$T/in.json" > "$T/out" 2> "$T/err"
	rc=$?
	if [ -n "$err" ]; then
		if [ "$rc" -ne 2 ]; then
			result fail "exit status $rc, expected 2" \
			    "stdout: $(cat "$T/out")" "stderr: $(cat "$T/err")"
		elif [ -s "$T/out" ]; then
			result fail "unexpected stdout: $(cat "$T/out")"
		elif ! grep -F -e "$err" "$T/err" > /dev/null; then
			result fail "stderr: $(cat "$T/err")" "expected: $err"
		else
			result ok
		fi
	else
		printf '%s\n' "$out" > "$T/exp"
		if [ "$rc" -ne 0 ]; then
			result fail "exit status $rc" "stderr: $(cat "$T/err")"
		elif ! cmp -s "$T/exp" "$T/out"; then
			result fail "got:      $(cat "$T/out")" "expected: $out"
		elif [ -s "$T/err" ]; then
			result fail "unexpected stderr: $(cat "$T/err")"
		else
			result ok
		fi
	fi
	expr= in= bin= out= err= have=
}

if [ ! -x "$BIN" ]; then
	echo "1..1"
	echo "not ok 1 - $BIN is missing (run make)"
	exit 1
fi

while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	'#'*)	;;
	'')	runcase ;;
	'expr:'*) expr=${line#expr:}; expr=${expr# }; have=1 ;;
	'in: '*) in=${line#in: } ;;
	'bin: '*) bin=${line#bin: } ;;
	'out: '*) out=${line#out: } ;;
	'err: '*) err=${line#err: } ;;
	*)	echo "Bail out! $CASES: bad line: $line"; exit 2 ;;
	esac
done < "$CASES"
runcase

# Things the table cannot say: standard input, usage, a failed write.
expr='sync-diff -e reads standard input'
printf '{"sn":["Doe"]}\n' | "$BIN" -e 'UCase([sn])' > "$T/out" 2> "$T/err"
rc=$?
printf '["DOE"]\n' > "$T/exp"
if [ "$rc" -eq 0 ] && cmp -s "$T/exp" "$T/out"; then result ok
else result fail "exit $rc: $(cat "$T/out" "$T/err")"; fi

expr='sync-diff without -e is a usage error'
"$BIN" > "$T/out" 2> "$T/err" < /dev/null
rc=$?
if [ "$rc" -eq 2 ] && grep -q '^       sync-diff -e expression' "$T/err"
then result ok; else result fail "exit $rc: $(cat "$T/err")"; fi

expr='sync-diff -e with a missing file'
"$BIN" -e '1' "$T/nonexistent" > "$T/out" 2> "$T/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "^sync-diff: cannot open '.*nonexistent': No such file or directory$" "$T/err"
then result ok; else result fail "exit $rc: $(cat "$T/err")"; fi

if [ -w /dev/full ]; then
	expr='sync-diff -e to a full disk fails'
	printf '{}\n' > "$T/in.json"
	"$BIN" -e '"x"' "$T/in.json" > /dev/full 2> "$T/err"
	rc=$?
	if [ "$rc" -eq 2 ] && grep -q 'cannot write' "$T/err"
	then result ok; else result fail "exit $rc: $(cat "$T/err")"; fi
fi

expr='the fuzz target runs on every case expression'
: > "$T/fuzzlist"
i=0
while IFS= read -r line; do
	case $line in
	'expr:'*) i=$((i + 1)); l=${line#expr:}
		printf '%s' "${l# }" > "$T/fuzz.$i"
		echo "$T/fuzz.$i" >> "$T/fuzzlist" ;;
	esac
done < "$CASES"
if [ -x build/fuzz/expr ] && build/fuzz/expr $(cat "$T/fuzzlist") > "$T/out" 2>&1
then result ok; else result fail "$(cat "$T/out" 2>/dev/null)"; fi

echo "1..$n"
[ "$failed" -eq 0 ]
