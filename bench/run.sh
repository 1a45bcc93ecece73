#!/bin/sh
# bench/run.sh: runs every bench/*.sh but itself, one after the other
# (`make bench`).  They get no arguments: each takes its settings from
# the environment (see its header).  Exits 2 if any of them failed.
cd "$(dirname "$0")/.." || exit 2
rc=0
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	echo "== $b" >&2
	sh "$b" || rc=2
done
exit "$rc"
