#!/bin/sh
# ci-dry-run.sh: what would a change to the sync rules do?  Imports
# nothing: runs sync-diff(1) with the old and with the new rules on
# recorded snapshots and prints, as Markdown for a pull request comment,
# both summaries and the difference between the two plans.
#
#   ci-dry-run.sh OLD.yaml NEW.yaml SOURCE.snap... TARGET.snap
#
# Exit status: 0 when the two plans are the same, 1 when they differ,
# 2 on error (a config that does not load, a malformed snapshot).
# SYNC_DIFF names the sync-diff binary (default: sync-diff in PATH).
set -u

prog=ci-dry-run.sh
if [ $# -lt 4 ]; then
	echo "usage: $prog old.yaml new.yaml source... target" >&2
	exit 2
fi
old=$1 new=$2
shift 2
diff=${SYNC_DIFF:-sync-diff}
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM

# plan_run NAME CONFIG SNAPSHOT...: the text plan in $tmp/NAME.txt and its
# last line in $tmp/NAME.sum; sync-diff's exit 0 and 1 are both fine here.
plan_run() {
	n=$1 c=$2
	shift 2
	"$diff" -f text -c "$c" -o "$tmp/$n.txt" "$@" 2>"$tmp/$n.err"
	rc=$?
	if [ "$rc" -gt 1 ]; then
		echo "$prog: with the $n rules: $(sed 's/^sync-diff: //' "$tmp/$n.err")" >&2
		exit 2
	fi
	tail -n 1 "$tmp/$n.txt" >"$tmp/$n.sum"
}
plan_run old "$old" "$@"
plan_run new "$new" "$@"

echo "### sync-diff dry run"
echo
echo "| rules | plan |"
echo "|---|---|"
printf '| old (`%s`) | %s |\n' "$old" "$(sed 's/^Plan: //' "$tmp/old.sum")"
printf '| new (`%s`) | %s |\n' "$new" "$(sed 's/^Plan: //' "$tmp/new.sum")"
echo
if cmp -s "$tmp/old.txt" "$tmp/new.txt"; then
	echo "The new rules change nothing in the plan."
	exit 0
fi
echo "What the rule change does to the plan (\`-\` old, \`+\` new):"
echo
echo '```diff'
diff -u --label old --label new "$tmp/old.txt" "$tmp/new.txt"
echo '```'
exit 1
