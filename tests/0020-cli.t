#!/bin/sh
# 0020-cli: the long options every binary takes.  --help prints the usage
# and a line for each option of the SYNOPSIS on standard output and exits
# 0 (tests/0010-man.t checks the usage against the manual page);
# --version prints "NAME VERSION", the version of the build (the
# Makefile's $(OUT)/version, from git describe or lib/sync.h), and the
# libraries; an unknown long option is a usage error; a failed write of
# standard output is an error.
. "$(dirname "$0")/lib.sh"

version=$(cat "$BIN/../version") || fail "the build wrote its version file"
: >"$T/empty"
base=$(sed -n 's/^#define SYNC_VERSION "\(.*\)"$/\1/p' "$TOP/lib/sync.h")

for name in sync-import sync-diff sync-export sync-role; do
	b=$BIN/$name
	test_expect_code 0 "$name --help exits 0" "$b" --help
	cp "$T/out" "$T/help"
	test_cmp "$name --help: nothing on standard error" "$T/empty" "$T/err"
	test_grep "$name --help: starts with the usage" "^usage: $name " "$T/help"
	# Every option letter of the usage has its line, "  -x ...", or for
	# a command's own option (sync-role check [-v]) "command [-x]".
	sed -n 's/^usage: //p; s/^       //p' "$T/help" | tr -d '[]|' |
	    tr ' ' '\n' | sed -n 's/^-\([A-Za-z][A-Za-z]*\)$/\1/p' |
	    fold -w1 | sort -u >"$T/letters"
	missing=
	for l in $(cat "$T/letters"); do
		grep -Eq "^  -$l |\[-$l\]" "$T/help" || missing="$missing -$l"
	done
	[ -s "$T/letters" ] || missing="(no option letters found in the usage)"
	if [ -z "$missing" ]; then
		pass "$name --help: a line for every option letter"
	else
		fail "$name --help: a line for every option letter" "missing:$missing"
	fi
	test_grep "$name --help: a line for --help" '^  --help ' "$T/help"
	test_grep "$name --help: a line for --version" '^  --version ' "$T/help"

	test_expect_code 0 "$name --version exits 0" "$b" --version
	sed -n 1p "$T/out" >"$T/v1"
	echo "$name $version" >"$T/want"
	test_cmp "$name --version: \"$name VERSION\" with the build's version" \
	    "$T/want" "$T/v1"
	test_grep "$name --version: the libraries on the second line" \
	    "^libsync $base, libcurl [0-9.]+, jansson [0-9.]+, libyaml [0-9.]+, OpenLDAP [0-9.]+, OpenSSL [0-9.]+$" \
	    "$T/out"

	test_expect_code 2 "$name --bogus: a usage error" "$b" --bogus
	test_grep "$name --bogus: the usage on standard error" "^usage: $name " "$T/err"
	test_cmp "$name --bogus: nothing on standard output" "$T/empty" "$T/out"

	test_expect_code 2 "$name --help >/dev/full: exit 2" \
	    sh -c '"$1" --help >/dev/full' sh "$b"
	test_grep "$name --help >/dev/full: says so" \
	    "^$name: cannot write to standard output" "$T/err"
	test_expect_code 2 "$name --version >/dev/full: exit 2" \
	    sh -c '"$1" --version >/dev/full' sh "$b"
done

# The version: git describe in a checkout, else lib/sync.h's.
case $version in
"$base" | "$base"-* | [0-9]*) pass "the version starts with a release number" ;;
*) fail "the version starts with a release number" "'$version'" ;;
esac

done_testing
