#!/bin/sh
# bench/diff.sh: sync-diff on generated snapshots of N objects of which 1%
# differ (0.4% to add, 0.3% to update, 0.3% to delete; bench/diff/gen.py),
# with Entra Connect-like rules (bench/diff/bench.yaml); prints the wall
# time, CPU time and peak memory of each size, and at 100,000 objects
# compares with Debian's ldifdiff.pl on the same data as sorted LDIF.
#
# Environment: DIFF_SIZES (default "100000 1000000"), BENCH_DIR (default
# /tmp/sync-bench-diff; the data is kept and reused), DIFF_THREADS
# (sync-diff -j, default 2), DIFF_LDIFDIFF (default 1: run ldifdiff.pl).
cd "$(dirname "$0")/.." || exit 2
sizes=${DIFF_SIZES:-100000 1000000}
dir=${BENCH_DIR:-/tmp/sync-bench-diff}
threads=${DIFF_THREADS:-2}
ldifdiff=/usr/share/doc/libnet-ldap-perl/examples/ldifdiff.pl
rc=0

# measure LABEL CMD...: one line "LABEL: wall s, user s, sys s, peak MiB"
measure() {
	label=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$@" >/dev/null 2>"$dir/err"
	st=$?
	if [ "$st" -gt 1 ]; then
		echo "$label: failed (exit $st): $(tail -n 1 "$dir/err")"
		rc=2
		return
	fi
	# GNU time puts "Command exited with non-zero status 1" (sync-diff's
	# "changes found") before the figures: they are the last line.
	tail -n 1 "$dir/time" | {
		read -r wall user sys kb
		printf '%s: %s s wall, %s s user, %s s sys, peak %d MiB\n' \
		    "$label" "$wall" "$user" "$sys" $((kb / 1024))
	}
}

for n in $sizes; do
	d=$dir/$n
	mkdir -p "$d" || exit 2
	if [ ! -s "$d/tgt.snap" ]; then
		python3 bench/diff/gen.py "$n" "$d" $([ "$n" -le 100000 ] && echo ldif) ||
		    exit 2
	fi
	printf '%s objects: source %d MB, target %d MB\n' "$n" \
	    $(($(wc -c <"$d/src.snap") / 1000000)) $(($(wc -c <"$d/tgt.snap") / 1000000))
	measure "sync-diff -j $threads, $n objects" bin/sync-diff -j "$threads" \
	    -c bench/diff/bench.yaml -o "$d/plan.json" "$d/src.snap" "$d/tgt.snap"
	measure "sync-diff -j 1, $n objects" bin/sync-diff -j 1 \
	    -c bench/diff/bench.yaml -o "$d/plan1.json" "$d/src.snap" "$d/tgt.snap"
	echo "  $(tail -n 1 "$dir/err")"
	if [ "${DIFF_LDIFDIFF:-1}" = 1 ] && [ -s "$d/src.ldif" ] && [ -r "$ldifdiff" ]; then
		measure "ldifdiff.pl, $n objects" perl "$ldifdiff" -k employeeNumber \
		    "$d/src.ldif" "$d/tgt.ldif"
	fi
done
exit "$rc"
