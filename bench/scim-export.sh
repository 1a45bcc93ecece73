#!/bin/sh
# bench/scim-export.sh: sync-export of N new users and G groups (with
# their members) to the SCIM test server (tests/scim-server.js, scimmy,
# in memory), against what the server itself can take.
#
# For each number of connections in SCIM_CONNS: the server is reset, the
# cycle of tests/0487-scim-export.t is played (sync-import of the empty
# server, sync-diff against a generated source snapshot: N + G adds) and
#
#   /usr/bin/time -v sync-export -c sync.yaml plan
#
# is timed; the requests are counted from the server's log and the state
# is checked with tests/scim-export-check.py (each object once, the right
# values and members, no create run twice).  The ceiling: a node client
# (fetch, kept-alive connections) POSTing the same N user bodies with as
# many requests in flight, no reads, no checks: the server's own speed.
#
# Environment: SCIM_USERS (2000), SCIM_GROUPS (20), SCIM_CONNS ("1 4 8"),
# SYNC_BIN (default bin/), KEEP_TMP=1 keeps the data in tests/tmp.
# Needs node (tests/scim-deps.sh), python3, curl and GNU time.

. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/scim.sh"

NUSERS=${SCIM_USERS:-2000}
NGROUPS=${SCIM_GROUPS:-20}
CONNS=${SCIM_CONNS:-1 4 8}

bench_need bench/scim-export.sh sync-export
sh "$TOP/tests/scim-deps.sh" || exit 2
scim_start scim || { echo "bench/scim-export.sh: the SCIM server does not start" >&2; exit 2; }
. "$TOP/tests/scim-export.sh"
sx_gen "$T/src.snap" "$NUSERS" "$NGROUPS"
printf '%s\n' "# $NUSERS users, $NGROUPS groups; $(nproc) CPUs; $(git -C "$TOP" describe --always --dirty 2>/dev/null)"

for c in $CONNS; do
	sx_conf "$c" 300
	sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1
	sx_fresh
	sx_plan run$c || { echo "bench/scim-export.sh: no plan" >&2; exit 2; }
	/usr/bin/time -v -o "$T/time$c" sync-export -S "$T/sum$c.json" \
		-c "$T/sync.yaml" "$T/run$c.plan" 2>"$T/err$c" || {
		cat "$T/err$c" >&2
		exit 2
	}
	if sx_check; then st=ok; else st="DIFFERS: $(head -1 "$T/check.out")"; fi
	python3 - "$T/time$c" "$T/sum$c.json" "$T/log.json" "$c" "$st" <<'PY' | tee -a "$T/results.jsonl"
import json, re, sys
t = open(sys.argv[1]).read()
def field(name):
    return re.search(re.escape(name) + r': (.*)', t).group(1).strip()
w = field('Elapsed (wall clock) time (h:mm:ss or m:ss)').split(':')
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
s = json.load(open(sys.argv[2]))
log = [r for r in json.load(open(sys.argv[3])) if not r.get('control')]
by = {}
for r in log:
    by[r['method']] = by.get(r['method'], 0) + 1
posts = by.get('POST', 0)
print(json.dumps({'run': 'sync-export', 'connections': int(sys.argv[4]),
    'wall_s': round(wall, 2), 'requests': len(log), 'by_method': by,
    'creates_per_s': round(posts / wall, 1),
    'requests_per_s': round(len(log) / wall, 1),
    'applied': s['applied'], 'failed': s['failed'],
    'peak_rss_mib': round(int(field('Maximum resident set size (kbytes)')) / 1024, 1),
    'cpu_s': round(float(field('User time (seconds)')) + float(field('System time (seconds)')), 2),
    'state': sys.argv[5]}))
PY
done

# The ceiling: the same user creates, straight from node.
for c in $CONNS; do
	sx_fresh
	node - "$SCIM_BASE" "$SCIM_TOKEN_FILE" "$NUSERS" "$c" <<'JS' | tee -a "$T/results.jsonl"
const [base, tokfile, n, conc] = process.argv.slice(2);
const tok = require("fs").readFileSync(tokfile, "utf8").trim();
let next = 0;
const t0 = process.hrtime.bigint();
async function worker() {
	while (next < Number(n)) {
		const i = ++next;
		const r = await fetch(base + "/Users", {method: "POST",
		    headers: {"Authorization": "Bearer " + tok,
		    "Content-Type": "application/scim+json"},
		    body: JSON.stringify({schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
		    userName: `u${i}@example.org`, externalId: `x${i}`,
		    displayName: `User ${i}`, active: true})});
		await r.text();
		if (r.status !== 201) throw new Error(`status ${r.status}`);
	}
}
Promise.all(Array.from({length: Number(conc)}, worker)).then(() => {
	const s = Number(process.hrtime.bigint() - t0) / 1e9;
	console.log(JSON.stringify({run: "node POST only", connections: Number(conc),
	    wall_s: Math.round(s * 100) / 100, creates_per_s: Math.round(n / s * 10) / 10}));
});
JS
done
[ -n "$KEEP_TMP" ] && echo "data and logs in $T" >&2
lib_quiet
exit 0
