#!/bin/sh
# bench/expr-chain.sh: the cost of a long chain of one operator in an
# expression (tests/0305-expr-limits.t runs the same chains for their
# values, with a time limit): EXPR_TERMS (60000) terms joined by & (one
# string grown to 60,000 characters) and by + (a number), each evaluated
# once by `sync-diff -e` under GNU time, for each build in EXPR_BUILDS
# (default: build/bin, the normal build, and build-san/bin, the
# sanitizer build of `make SANITIZE=address,undefined`, when it is
# there).  One line per build and chain: wall seconds, CPU seconds (user
# and system), peak RSS.
. "$(dirname "$0")/../tests/lib.sh"

N=${EXPR_TERMS:-60000}
BUILDS=${EXPR_BUILDS:-"$TOP/build/bin $TOP/build-san/bin"}
command -v /usr/bin/time >/dev/null 2>&1 || {
	echo "bench/expr-chain.sh: no GNU time (apt-get install time)" >&2
	exit 2
}
echo '{"givenName":["Ada"]}' >"$T/ada.json"
printf '%s\n' "# $N terms; $(git -C "$TOP" describe --always --dirty 2>/dev/null)"
for b in $BUILDS; do
	[ -x "$b/sync-diff" ] || { echo "# no $b/sync-diff" >&2; continue; }
	for op in '&' '+'; do
		e=$(awk -v n="$N" -v op="$op" 'BEGIN {
			for (i = 0; i < n; i++) printf "%s%s", i ? op : "", 1 }')
		/usr/bin/time -f "%e %U %S %M" -o "$T/time" \
			"$b/sync-diff" -e "$e" "$T/ada.json" >"$T/out" 2>"$T/err" ||
			{ cat "$T/err" >&2; exit 2; }
		read -r wall user sys rss <"$T/time"
		printf '%s %s: %s s wall, %.2f s CPU, %d MB peak\n' \
			"${b#$TOP/}" "$op" "$wall" \
			"$(echo "$user + $sys" | bc)" $((rss / 1024))
	done
done
lib_quiet
exit 0
