#!/bin/sh
# bench/export.sh: sync-export of 10,000 users and 1,000 groups of 20
# members to the Graph emulator (issue #4).
#
# One emulator (tests/graph-emulator.py, one app, --no-shuffle off: the
# default shuffled $batch answers) serves every run; before each run it is
# reset and given the run's latency and write quota, the connector's
# `connections`, `write_limit` and `write_window` are set to match, and
# the cycle of tests/0420-graph-export.t is played: `sync-role promote`,
# `sync-import` of the (empty) target, `sync-diff` against a generated
# source snapshot, then the timed
#
#   /usr/bin/time -v sync-export -c sync.yaml plan
#
# Read back from the emulator's log: the $batch requests, the inner
# requests by method (each inner POST/PATCH/DELETE is one write), the
# 429s (inner and outer), and the emulator's CPU (from /proc); the final
# state is checked with tests/graph-export-check.py (every object once,
# the right members).  Each run prints one line (and a JSON line in
# $OUT/results.jsonl) with the theoretical maximum
#
#   writes/s <= min(quota, connections * 20 / latency)
#
# where quota is what a sliding window of write_limit writes per
# write_window seconds lets through for this many writes (all of them at
# once when they fit in write_limit), and also the phase-aware bound that
# counts the preflight reads (phase 0: one GET per change, 20 per $batch)
# and the barriers between the four phases.
#
# Runs (BENCH_EXPORT_RUNS, default "ceiling raised"):
#   ceiling     latency 0, quota off: the emulator's own speed (2 cores)
#   raised      --latency-ms 50, quota 100000 per 150 s: concurrency bound
#   documented  --latency-ms 50, 3000 per 150 s (Graph's documented quota;
#               about 8 minutes for 12,000 writes)
#   conN        like raised, with N connections (e.g. con8)
#   qL/W        --latency-ms 50, a quota of L writes per W s (e.g. q300/15,
#               the documented quota scaled down ten times)
#
# Environment: EXPORT_USERS (10000), EXPORT_GROUPS (1000), EXPORT_MEMBERS (20), CONNECTIONS (4),
# LATENCY_MS (50), BENCH_EXPORT_RUNS, SYNC_BIN (default bin/), KEEP_TMP=1
# keeps the data in tests/tmp.  Needs python3, curl and GNU time.

. "$(dirname "$0")/../tests/lib.sh"

NUSERS=${EXPORT_USERS:-10000}
NGROUPS=${EXPORT_GROUPS:-1000}
NMEMBERS=${EXPORT_MEMBERS:-20}
CONNECTIONS=${CONNECTIONS:-4}
LATENCY_MS=${LATENCY_MS:-50}
RUNS=${BENCH_EXPORT_RUNS:-ceiling raised}

bench_need bench/export.sh sync-export

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
EXT=extension_0123456789abcdef0123456789abcdef_syncAnchor

printf 'bench-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$T/secret"
chmod 600 "$T/secret"
printf '[{"client_id": "%s", "secret": "%s"}]\n' "$CID" "$(cat "$T/secret")" >"$T/apps.json"

rm -f "$T/emu.port"
python3 "$EMU" --port 0 --port-file "$T/emu.port" --apps-file "$T/apps.json" \
	--tenant "$TENANT" --seed 7 >"$T/emu.out" 2>&1 3>&- &
EMU_PID=$!
_lib_pids="$_lib_pids $EMU_PID"
i=0
while [ ! -s "$T/emu.port" ]; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$T/emu.out" >&2; echo "bench/export.sh: the emulator does not start" >&2; exit 2; }
	sleep 0.05
done
BASE=http://127.0.0.1:$(cat "$T/emu.port")

ctl() {
	if [ $# -gt 1 ]; then
		curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$BASE$1"
	else
		curl -sf "$BASE$1"
	fi
}

# emu_cpu: the emulator's user+sys CPU so far, in seconds.
emu_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$EMU_PID/stat"
}

# conf CONNECTIONS WRITE_LIMIT WRITE_WINDOW
conf() {
	cat >"$T/sync.yaml" <<EOF
state_dir: $T/state
connectors:
  src:
    type: ldap
    url: ldapi:///
    base_dn: dc=example,dc=org
  entra:
    type: graph
    tenant: $TENANT
    client_id: $CID
    client_secret_file: secret
    token_url: $BASE/$TENANT/oauth2/v2.0/token
    graph_url: $BASE/v1.0
    allow_http: true
    connections: $1
    write_limit: $2
    write_window: $3
    retry_budget: 3600
    objects:
      user:
        attributes: [ displayName, mailNickname, userPrincipalName, accountEnabled, onPremisesImmutableId ]
      group:
        attributes: [ displayName, mailNickname, $EXT ]
policy:
  delete_threshold: 100000
role:
  server: bench
  duration: 3600
  lease:
    file: lease
EOF
	cat "$TOP/tests/data/graph-export-flows.yaml" >>"$T/sync.yaml"
}

# The source: USERS users, GROUPS groups of MEMBERS members (group g holds
# users (g-1)*NMEMBERS+1 .. g*NMEMBERS, modulo NUSERS).
python3 - "$T/src.snap" "$NUSERS" "$NGROUPS" "$NMEMBERS" <<'PY'
import json, sys
path, nu, ng, nm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
objs = []
for u in range(1, nu + 1):
    name = "O'Brien %d" % u if u % 5 == 0 else 'Zoë Müller %d' % u
    objs.append({'anchor': 'dXNlcg%06d==' % u, 'type': 'user',
                 'dn': 'uid=u%d,ou=People,dc=example,dc=org' % u,
                 'id': 'u%d' % u,
                 'attrs': {'uid': ['u%d' % u], 'displayName': [name]}})
for g in range(1, ng + 1):
    members = sorted({'uid=u%d,ou=People,dc=example,dc=org'
                      % (((g - 1) * nm + k) % nu + 1) for k in range(nm)})
    objs.append({'anchor': 'Z3JvdXA%05d' % g, 'type': 'group',
                 'dn': 'cn=Team %d,ou=Groups,dc=example,dc=org' % g,
                 'id': 'g%d' % g,
                 'attrs': {'cn': ['Team %d' % g], 'member': members}})
objs.sort(key=lambda o: o['anchor'].encode())
hdr = {'connector': 'src', 'connector_type': 'ldap', 'cookie': None,
       'counts': {'user': nu, 'group': ng, 'contact': 0}, 'format': 'sync-snapshot',
       'kind': 'full', 'source': 'ldapi:///', 'time': '2026-11-25T00:00:00Z',
       'version': 1}
with open(path, 'w') as f:
    for o in [hdr] + objs:
        f.write(json.dumps(o, sort_keys=True, separators=(',', ':'),
                           ensure_ascii=False) + '\n')
PY

conf "$CONNECTIONS" 3000 150
sync-role -c "$T/sync.yaml" promote >/dev/null || { echo "bench/export.sh: sync-role promote failed" >&2; exit 2; }

echo "sync-export: $NUSERS users, $NGROUPS groups of $NMEMBERS members; $(nproc) CPUs; sync-export at $(git -C "$TOP" rev-parse --short HEAD 2>/dev/null)" >&2
: >"$T/results.jsonl"
rc=0

# run NAME LATENCY_MS WRITE_LIMIT WRITE_WINDOW CONNECTIONS
run() {
	name=$1 lat=$2 lim=$3 win=$4 con=$5
	ctl /_emulator/reset '{}' >/dev/null &&
		ctl /_emulator/faults "{\"latency_ms\": $lat, \"write_limit\": $lim, \"write_window\": $win}" >/dev/null ||
		{ echo "bench/export.sh: cannot set up the emulator" >&2; return 1; }
	# the connector's limiter follows the emulator's quota (when it has one)
	if [ "$lim" -gt 0 ]; then conf "$con" "$lim" "$win"; else conf "$con" 10000000 0; fi
	rm -rf "$T/state/journal" "$T/$name".*
	sync-import -q -c "$T/sync.yaml" -o "$T/$name.entra" entra || { echo "bench/export.sh: $name: sync-import failed" >&2; return 1; }
	sync-diff -c "$T/sync.yaml" -o "$T/$name.plan" "$T/src.snap" "$T/$name.entra"
	[ $? -eq 1 ] || { echo "bench/export.sh: $name: sync-diff found no changes" >&2; return 1; }
	seq0=$(ctl /_emulator/log | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
	cpu0=$(emu_cpu)
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$T/$name.time" sync-export -c "$T/sync.yaml" "$T/$name.plan" \
		>"$T/$name.out" 2>"$T/$name.err"
	xrc=$?
	t1=$(date +%s.%N)
	cpu1=$(emu_cpu)
	ctl /_emulator/log >"$T/$name.log.json"
	ctl /_emulator/state >"$T/$name.state.json"
	python3 "$TOP/tests/graph-export-check.py" "$T/src.snap" "$T/$name.state.json" "$EXT" \
		>"$T/$name.check" 2>&1
	crc=$?
	python3 - "$name" "$lat" "$lim" "$win" "$con" "$t0" "$t1" "$cpu0" "$cpu1" \
		"$seq0" "$xrc" "$crc" "$T/$name.log.json" "$T/$name.time" "$T/$name.err" \
		>>"$T/results.jsonl" <<'PY'
import json, math, re, sys
(name, lat, lim, win, con, t0, t1, cpu0, cpu1, seq0, xrc, crc,
 logf, timef, errf) = sys.argv[1:]
lat, lim, win, con = float(lat), int(lim), float(win), int(con)
dur = float(t1) - float(t0)
log = [r for r in json.load(open(logf))[int(seq0):] if not r.get('control')]
inner = [r for r in log if r.get('in_batch')]
outer = [r for r in log if not r.get('in_batch')]
batches = [r for r in outer if r['method'] == 'POST' and r['path'].endswith('/$batch')]
W = ('POST', 'PATCH', 'PUT', 'DELETE')
writes = [r for r in inner if r['method'] in W] + \
         [r for r in outer if r['method'] in W and '/$batch' not in r['path']
          and '/oauth2/' not in r['path']]
ok_writes = [r for r in writes if r.get('status') and r['status'] < 400]
reads = [r for r in log if r['method'] == 'GET']
t429 = [r for r in log if r.get('status') == 429]
w429 = [r for r in writes if r.get('status') == 429]
# batches by content
wb = sum(1 for b in batches if any(q.get('method') in W for q in
         (b.get('body') or {}).get('requests', [])))
nw = len(ok_writes)
# the maximum write rate
conc = con * 20 / (lat / 1000) if lat > 0 else math.inf
if lim > 0 and nw > lim:
    # a sliding window: lim at once, the next lim a window later...
    tq = ((nw - 1) // lim) * win
    quota = nw / tq
else:
    quota = math.inf
bound = min(conc, quota)
# phase-aware: reads (20 per $batch) and barriers between the 4 phases
tm = open(timef).read()
rss = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', tm).group(1))
user = float(re.search(r'User time \(seconds\): ([\d.]+)', tm).group(1))
syst = float(re.search(r'System time \(seconds\): ([\d.]+)', tm).group(1))
summary = open(errf).read().strip().splitlines()
summary = [l for l in summary if ' applied, ' in l]
m = re.search(r'(\d+) failed', summary[-1]) if summary else None
out = {'run': name, 'latency_ms': lat, 'write_limit': lim, 'write_window': win,
       'connections': con, 'seconds': round(dur, 2), 'writes': nw,
       'writes_429': len(w429), 'status_429': len(t429),
       'reads': len(reads), 'batches': len(batches), 'write_batches': wb,
       'read_batches': len(batches) - wb,
       'writes_per_s': round(nw / dur, 1),
       'bound_concurrency': None if conc == math.inf else round(conc, 1),
       'bound_quota': None if quota == math.inf else round(quota, 2),
       'max_writes_per_s': None if bound == math.inf else round(bound, 1),
       'pct_of_max': None if bound == math.inf else round(100 * nw / dur / bound, 1),
       'failed': int(m.group(1)) if m else None, 'export_rc': int(xrc),
       'state_ok': int(crc) == 0, 'rss_mib': round(rss / 1024, 1),
       'cpu_user': user, 'cpu_sys': syst,
       'emu_cpu': round(float(cpu1) - float(cpu0), 2),
       'summary': summary[-1] if summary else None}
if lat > 0:
    # the best a 4-phase run can do: each phase ceil(batches/con) rounds
    # of one latency (reads and the three write phases separately)
    def rounds(n): return math.ceil(math.ceil(n / 20) / con)
    ph = [len([r for r in inner if r['method'] == 'GET']),
          len([r for r in ok_writes if r['method'] == 'POST' and r['path'].endswith('/users')]),
          len([r for r in ok_writes if r['method'] == 'POST' and r['path'].endswith('/groups')]),
          len([r for r in ok_writes if r['method'] in ('PATCH', 'DELETE')])]
    tp = rounds(ph[0]) * lat / 1000 + max(sum(rounds(n) for n in ph[1:]) * lat / 1000,
                                          tq if quota != math.inf else 0)
    out['phase_floor_s'] = round(tp, 2)
    out['pct_of_phase_floor'] = round(100 * tp / dur, 1)
print(json.dumps(out))
PY
	tail -n 1 "$T/results.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
pct = "%s%%" % r["pct_of_max"] if r["pct_of_max"] is not None else "-"
print("%-10s lat %3d ms quota %s/%gs con %d: %.2f s, %d writes (%.1f/s) max %s/s = %s; "
      "429s %d (writes %d); reads %d; batches %d; failed %s; state %s; RSS %.1f MiB; "
      "CPU %.2f+%.2f s; emulator CPU %.2f s%s" % (r["run"], r["latency_ms"],
      r["write_limit"] or "off", r["write_window"], r["connections"], r["seconds"],
      r["writes"], r["writes_per_s"], r["max_writes_per_s"], pct, r["status_429"],
      r["writes_429"], r["reads"], r["batches"], r["failed"],
      "ok" if r["state_ok"] else "WRONG", r["rss_mib"], r["cpu_user"], r["cpu_sys"],
      r["emu_cpu"], "; phase floor %.2f s (%.1f%%)" % (r["phase_floor_s"],
      r["pct_of_phase_floor"]) if "phase_floor_s" in r else ""))'
	if [ "$crc" -ne 0 ] || [ "$xrc" -ne 0 ]; then
		echo "bench/export.sh: $name: sync-export exit $xrc; state check:" >&2
		head -n 5 "$T/$name.check" "$T/$name.err" >&2
		return 1
	fi
}

for r in $RUNS; do
	case $r in
	ceiling)    run ceiling 0 0 150 "$CONNECTIONS" || rc=2 ;;
	raised)     run raised "$LATENCY_MS" 100000 150 "$CONNECTIONS" || rc=2 ;;
	documented) run documented "$LATENCY_MS" 3000 150 "$CONNECTIONS" || rc=2 ;;
	con[0-9]*)  run "$r" "$LATENCY_MS" 100000 150 "${r#con}" || rc=2 ;;
	q*/*)       _l=${r#q}; run "q${_l%/*}-${_l#*/}" "$LATENCY_MS" "${_l%/*}" "${_l#*/}" "$CONNECTIONS" || rc=2 ;;
	*) echo "bench/export.sh: unknown run '$r'" >&2; rc=2 ;;
	esac
done
[ -n "$KEEP_TMP" ] && echo "data and logs in $T" >&2
lib_quiet
exit "$rc"
