#!/bin/sh
# bench/delta.sh: what a delta import of Entra ID costs against a full one.
#
# The Graph emulator (tests/graph-emulator.py) is seeded with DELTA_USERS
# users (default 20000) and DELTA_GROUPS groups (default 200) of 50
# members, with LATENCY_MS (default 20) of latency per request.  Timed:
# a full `sync-import`, then DELTA_CHANGES changes (default 20: users
# renamed, deleted and created, members added and removed) made through
# the Graph API, then `sync-import -d` from the full snapshot, and a full
# import again; the two last snapshots must hold the same lines.  Each
# line gives the wall time, the requests the emulator served, and the
# peak RSS.  Environment: the counts above, SYNC_BIN (default bin/),
# KEEP_TMP=1 keeps the data in tests/tmp.  Needs python3, curl and GNU
# time.

. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/graph.sh"
lib_quiet       # not a test: no TAP at exit

NUSERS=${DELTA_USERS:-20000}
NGROUPS=${DELTA_GROUPS:-200}
NCHANGES=${DELTA_CHANGES:-20}
LATENCY_MS=${LATENCY_MS:-20}

bench_need bench/delta.sh sync-import

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/secret"
emu_start emu --latency-ms "$LATENCY_MS" || { echo "bench/delta.sh: the emulator does not start" >&2; exit 2; }
BASE=http://127.0.0.1:$(cat "$T/emu.port")

python3 - "$NUSERS" "$NGROUPS" >"$T/seed.json" <<'EOF'
import json, sys
nu, ng = int(sys.argv[1]), int(sys.argv[2])
users = [{"id": "00000000-0000-4000-8000-%012d" % i, "displayName": "User %d" % i,
          "userPrincipalName": "u%d@contoso.example" % i, "mailNickname": "u%d" % i,
          "accountEnabled": True, "givenName": "Given%d" % i} for i in range(nu)]
groups = [{"id": "10000000-0000-4000-8000-%012d" % g, "displayName": "Group %d" % g,
           "mailNickname": "g%d" % g, "mailEnabled": False, "securityEnabled": True,
           "members": [users[(g * 50 + k) % nu]["id"] for k in range(50)]}
          for g in range(ng)]
print(json.dumps({"users": users, "groups": groups}))
EOF
curl -sf -X POST -H 'Content-Type: application/json' --data-binary @"$T/seed.json" \
	"$BASE/_emulator/seed" >/dev/null || { echo "bench/delta.sh: seeding failed" >&2; exit 2; }
emu_conf "$T/sync.yaml" "timeout: 120"

served() {
	ctl /_emulator/log | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

# run LABEL ARGS...: one timed sync-import
run() {
	_label=$1
	shift
	_n0=$(served)
	/usr/bin/time -f '%e %M' -o "$T/time" "$BIN/sync-import" -c "$T/sync.yaml" "$@" \
		2>"$T/err" || { cat "$T/err" >&2; echo "bench/delta.sh: $_label failed" >&2; exit 2; }
	_n1=$(served)
	tail -n 1 "$T/time" | {
		read -r wall kb
		printf '%s: %s s wall, %d requests, peak %d MiB; %s\n' "$_label" "$wall" \
		    $((_n1 - _n0)) $((kb / 1024)) "$(grep '^sync-import: entra: [0-9]' "$T/err")"
	}
}

echo "$NUSERS users, $NGROUPS groups of 50, $LATENCY_MS ms a request, $NCHANGES changes"
run "full import" -o "$T/full1.snap" entra
python3 - "$NUSERS" "$NGROUPS" "$NCHANGES" >"$T/changes" <<'EOF'
import sys
nu, ng, n = map(int, sys.argv[1:4])
ref = '{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/%s"}'
u = lambda i: "00000000-0000-4000-8000-%012d" % i
g = lambda i: "10000000-0000-4000-8000-%012d" % i
for k in range(n):
    i = (k * 7919) % nu
    kind = k % 5
    if kind == 0:
        print('PATCH /users/%s {"displayName": "Renamed %d"}' % (u(i), k))
    elif kind == 1:
        # from the end: users in no group (when there are more users
        # than group places), so that no removal below meets them
        print('DELETE /users/%s' % u(nu - 1 - k))
    elif kind == 2:
        print('POST /users {"displayName": "New %d", "userPrincipalName": "new%d@contoso.example", '
              '"mailNickname": "new%d", "accountEnabled": true, '
              '"passwordProfile": {"password": "Xy!12345678"}}' % (k, k, k))
    elif kind == 3:
        print('POST /groups/%s/members/$ref %s' % (g(k % ng), ref % u((k * 31 + 7) % nu)))
    else:
        print('DELETE /groups/%s/members/%s/$ref' % (g(k % ng), u(((k % ng) * 50 + k // 5) % nu)))
EOF
graph_call "$CID" "$SECRET" <"$T/changes" >"$T/calls" ||
	{ cat "$T/calls" >&2; echo "bench/delta.sh: the changes failed" >&2; exit 2; }
run "delta import" -d "$T/full1.snap" -o "$T/delta.snap" entra
run "full import again" -o "$T/full2.snap" entra
tail -n +2 "$T/delta.snap" >"$T/a"
tail -n +2 "$T/full2.snap" >"$T/b"
rc=0
if cmp -s "$T/a" "$T/b"; then
	echo "the delta snapshot and the full one: the same $(wc -l <"$T/a") objects"
else
	echo "bench/delta.sh: the delta snapshot differs from the full one" >&2
	rc=2
fi
[ -n "$KEEP_TMP" ] && echo "data and logs in $T" >&2
exit "$rc"
