#!/bin/sh
# ci-truncate.sh: cuts a Markdown comment to what GitHub accepts.  GitHub
# refuses a pull request comment of more than 65,536 characters, and a
# dry run of a big rule change is longer than that; the workflow posts
# the start of it and keeps the whole as an artifact.
#
#   ci-truncate.sh MAX NOTE < comment.md > short.md
#
# A comment of at most MAX bytes passes unchanged.  A longer one is cut
# after the last whole line that fits, a code block left open is closed,
# and a last line says that it was cut, how much is shown, and NOTE
# (where the whole of it is).  The output is at most MAX bytes, so at
# most MAX characters.  Exit status: 0, or 2 on error (a MAX too small
# for the note).
set -u
prog=ci-truncate.sh
if [ $# -ne 2 ]; then
	echo "usage: $prog max note <comment.md >short.md" >&2
	exit 2
fi
max=$1 note=$2
case $max in
'' | *[!0-9]*)
	echo "$prog: the limit must be a number of bytes, not '$max'" >&2
	exit 2 ;;
esac
tmp=$(mktemp) || exit 2
trap 'rm -f "$tmp"' EXIT
trap 'exit 2' INT TERM
cat >"$tmp" || exit 2
size=$(wc -c <"$tmp" | tr -d ' ')
if [ "$size" -le "$max" ]; then
	cat "$tmp"
	exit 0
fi
# Bytes, not characters (LC_ALL=C): a cut measured in bytes is within
# the limit in characters whatever the text.
LC_ALL=C awk -v max="$max" -v size="$size" -v note="$note" -v prog="$prog" '
function kb(n) { return int(n / 1000) }
BEGIN {
	# The tail: a closing fence, an empty line and the note, with the
	# sizes at their longest (the kept part is smaller than the whole).
	tmpl = "**Cut here**: this comment shows %d KB of %d KB; GitHub takes no more than 65,536 characters. %s\n"
	tail = length("```\n\n") + length(sprintf(tmpl, kb(size), kb(size), note))
	budget = max - tail
	if (budget < 0) {
		printf "%s: a limit of %d bytes leaves no room for the note\n", prog, max > "/dev/stderr"
		bad = 1
		exit 2
	}
	used = 0
	fence = 0
}
{
	n = length($0) + 1
	if (used + n > budget)
		exit 0
	print
	used += n
	if ($0 ~ /^```/)
		fence = !fence
}
END {
	if (bad)
		exit 2
	if (fence)
		print "```"
	printf "\n" tmpl, kb(used), kb(size), note
}' "$tmp"
