#!/bin/sh
# bench/writeback.sh: the writeback diff of examples/ad-to-entra.yaml
# (sources AD and Entra ID, target AD) on generated snapshots of N AD
# users, N synced and N/10 cloud-only Entra ID users and N/100 cloud
# groups of 100 members (bench/writeback/gen.py): half of the users get
# mS-DS-ConsistencyGuid, a tenth of the groups are new and a tenth lack a
# member.  Prints wall, CPU and peak memory per size and thread count.
#
# Environment: WB_SIZES (default "100000"), BENCH_DIR (default
# /tmp/sync-bench-writeback; the data is kept and reused).
cd "$(dirname "$0")/.." || exit 2
sizes=${WB_SIZES:-100000}
dir=${BENCH_DIR:-/tmp/sync-bench-writeback}
AD_URL=ldaps://dc.example.com AD_BASE=DC=example,DC=com
ENTRA_TENANT=example.onmicrosoft.com ENTRA_CLIENT_ID=1
SYNC_APP_ID=0123456789abcdef0123456789abcdef
export AD_URL AD_BASE ENTRA_TENANT ENTRA_CLIENT_ID SYNC_APP_ID
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
	tail -n 1 "$dir/time" | {
		read -r wall user sys kb
		printf '%s: %s s wall, %s s user, %s s sys, peak %d MiB\n' \
		    "$label" "$wall" "$user" "$sys" $((kb / 1024))
	}
}

for n in $sizes; do
	d=$dir/$n
	mkdir -p "$d" || exit 2
	[ -s "$d/entra.snap" ] || python3 bench/writeback/gen.py "$n" "$d" || exit 2
	printf '%s AD users: ad.snap %d MB, entra.snap %d MB\n' "$n" \
	    $(($(wc -c <"$d/ad.snap") / 1000000)) $(($(wc -c <"$d/entra.snap") / 1000000))
	for j in 2 1; do
		measure "sync-diff -j $j, writeback, $n users" bin/sync-diff -j "$j" \
		    -c examples/ad-to-entra.yaml -o "$d/plan.json" \
		    "$d/ad.snap" "$d/entra.snap" "$d/ad.snap"
	done
	tail -n 1 "$dir/err"
done
exit $rc
