#!/bin/sh
# bench/scim-faults.sh: does every change land exactly once, in one run,
# when a SCIM service fails?  For each seed, a plan of SCIM_USERS users
# and SCIM_GROUPS groups (with their members) is exported into the empty
# SCIM test server (tests/scim-server.js), then a second plan
# (tests/export-src.py churn: a rename, four users deleted, three added,
# a member dropped), each run once while the server strikes requests at
# random (seeded): 5% dropped after they ran, 5% answered 500 and 3% 504
# after they ran, 3% dropped before, 15% 429 and 5% 503 (Retry-After
# FAULT_RA, default 1 s).  After each run: the state and the log against
# the source (tests/scim-export-check.py: every object once with its
# values, members once, no create that ran twice), and from the log the
# creates that ran but whose answer was lost, each of which a client that
# resends blindly would have made twice.
#
# Environment: FAULT_SEEDS ("1 2 ... 10"), SCIM_USERS (100), SCIM_GROUPS
# (10), FAULT_RA (1), CONNECTIONS (4), FAULT_SETTLE (create_settle; empty:
# the connector's default, 10 s), SYNC_BIN, KEEP_TMP=1.
# Needs node (tests/scim-deps.sh), python3 and curl.

. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/scim.sh"

SEEDS=${FAULT_SEEDS:-1 2 3 4 5 6 7 8 9 10}
NUSERS=${SCIM_USERS:-100}
NGROUPS=${SCIM_GROUPS:-10}
RA=${FAULT_RA:-1}

bench_need bench/scim-faults.sh sync-export
sh "$TOP/tests/scim-deps.sh" || exit 2
scim_start scim || { echo "bench/scim-faults.sh: the SCIM server does not start" >&2; exit 2; }
. "$TOP/tests/scim-export.sh"
sx_conf "${CONNECTIONS:-4}" 300 "${FAULT_SETTLE:-}"
sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1
sx_gen "$T/base.snap" "$NUSERS" "$NGROUPS"
sx_gen "$T/churn.snap" "$NUSERS" "$NGROUPS" churn
printf '%s\n' "# $NUSERS users, $NGROUPS groups; seeds $SEEDS; $(git -C "$TOP" describe --always --dirty 2>/dev/null)"

# run NAME SEED: one export under the storm of SEED, one JSON line
run() {
	# The server's log file has a line per request: the run's are after.
	since=$(wc -l <"$T/scim.log")
	sx_storm "$2" "$RA"
	s=$(date +%s.%N)
	sync-export -S "$T/$1.sum" -c "$T/sync.yaml" "$T/$1.plan" 2>"$T/$1.err"
	rc=$?
	e=$(date +%s.%N)
	sx_check
	ck=$?
	scim_ctl "/log?since=$since" >"$T/run.json"
	python3 - "$T/run.json" "$T/$1.sum" "$T/check.out" "$1" "$2" "$rc" "$ck" "$s" "$e" <<'PY' | tee -a "$T/results.jsonl"
import json, sys
log = [r for r in json.load(open(sys.argv[1])) if not r.get('control')]
s = json.load(open(sys.argv[2]))
ran = [r for r in log if r['method'] == 'POST'
       and (r.get('applied_status') or r.get('status')) == 201]
lost = [r for r in ran if r.get('status') != 201]
print(json.dumps({'run': sys.argv[4], 'seed': int(sys.argv[5]),
    'exit': int(sys.argv[6]), 'creates_run': len(ran),
    'lost_answers': len(lost), 'applied': s['applied'], 'failed': s['failed'],
    'throttled': s['throttled'], 'retries': s['retries'],
    'differences': 0 if sys.argv[7] == '0' else len(open(sys.argv[3]).read().splitlines()),
    'seconds': round(float(sys.argv[9]) - float(sys.argv[8]), 1)}))
PY
}

for seed in $SEEDS; do
	sx_fresh
	cp "$T/base.snap" "$T/src.snap"
	sx_plan c$seed || { echo "seed $seed: no plan" >&2; exit 2; }
	run c$seed "$seed"
	cp "$T/churn.snap" "$T/src.snap"
	sx_plan h$seed || { echo "seed $seed: no churn plan" >&2; exit 2; }
	run h$seed $((seed + 100))
done
python3 - "$T/results.jsonl" <<'PY'
import json, sys, statistics
rs = [json.loads(l) for l in open(sys.argv[1])]
for kind, name in (('c', 'create'), ('h', 'churn')):
    r = [x for x in rs if x['run'].startswith(kind)]
    sec = [x['seconds'] for x in r]
    print('# %s: %d runs, exit 0 in %d, creates run %s, lost answers %d, '
          'differences %d, seconds %.1f / %.1f / %.1f' % (name, len(r),
          sum(x['exit'] == 0 for x in r),
          sorted(set(x['creates_run'] for x in r)),
          sum(x['lost_answers'] for x in r),
          sum(x['differences'] for x in r),
          min(sec), statistics.median(sec), max(sec)))
PY
[ -n "$KEEP_TMP" ] && echo "data and logs in $T" >&2
lib_quiet
exit 0
