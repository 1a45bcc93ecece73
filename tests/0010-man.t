#!/bin/sh
# 0010-man: the manual pages are the reference.  For every binary in bin/,
# the usage line it prints for a bad option, and the one --help prints,
# must be the SYNOPSIS of its page, word for word; and every page must be clean for mandoc -T lint at
# the warning level (style notes, such as references to pages that are
# not installed, are allowed).
. "$(dirname "$0")/lib.sh"

command -v mandoc >/dev/null 2>&1 ||
	_lib_fatal "mandoc is installed (apt-get install mandoc)"

bs=$(printf '\b')

# synopsis PAGE: the SYNOPSIS section rendered as plain text on one line,
# whitespace squeezed.
synopsis() {
	mandoc -T ascii -O width=1000 "$1" >"$T/render" 2>"$T/render.err" ||
		return 1
	sed "s/.$bs//g" "$T/render" |
	    awk '/^[^ ]/ { on = ($0 == "SYNOPSIS"); next } on' |
	    tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

# usage_of FILE: the "usage:" line and its continuation lines (indented)
# from FILE, without "usage:", whitespace squeezed.
usage_of() {
	awk '/^usage:/ { on = 1; sub(/^usage:/, ""); print; next }
	    on && /^[ \t]/ { print; next } { on = 0 }' "$1" |
	    tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

for b in "$BIN"/*; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	name=$(basename "$b")
	page=$TOP/man/$name.1
	if [ ! -f "$page" ]; then
		fail "$name: has a manual page man/$name.1"
		continue
	fi
	# -/ is an option no tool takes: usage on stderr, exit 2.
	test_expect_code 2 "$name: a bad option exits 2" "$b" -/
	cp "$T/err" "$T/usage.$name"
	test_grep "$name: a bad option prints a usage line" '^usage: ' \
	    "$T/usage.$name"
	usage_of "$T/usage.$name" >"$T/usage.$name.want"
	if synopsis "$page" >"$T/synopsis.$name"; then
		test_cmp "$name: usage line matches SYNOPSIS of $name.1" \
		    "$T/usage.$name.want" "$T/synopsis.$name"
	else
		fail "$name: mandoc renders $name.1"
		note_file "$T/render.err"
	fi
	test_expect_code 0 "$name --help exits 0" "$b" --help
	usage_of "$T/out" >"$T/help.$name.want"
	test_cmp "$name: the usage of --help matches SYNOPSIS of $name.1" \
	    "$T/help.$name.want" "$T/synopsis.$name"
done

for page in "$TOP"/man/*.[1-9]; do
	[ -f "$page" ] || continue
	ok "$(basename "$page"): mandoc -T lint -W warning is clean" \
	    mandoc -T lint -W warning "$page"
done

done_testing
