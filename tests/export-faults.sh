# tests/export-faults.sh - sync-export against a faulty Graph emulator,
# for tests/0450-graph-export-faults.t and bench/faults.sh.  Source it
# after lib.sh and graph.sh, once the emulator runs ($BASE set).
#
#   fx_conf CONNS BUDGET [SETTLE]  $T/sync.yaml: connector "entra" with CONNS
#                                connections, retry_budget BUDGET and
#                                create_settle SETTLE; "src" (LDAP); the
#                                flows of tests/data/graph-export-flows.yaml;
#                                a file lease
#   fx_gen FILE USERS GROUPS [VARIANT]
#                                a source snapshot (tests/export-src.py)
#   fx_calm                      no faults, no scripted rules
#   fx_fresh                     an empty tenant and no journal
#   fx_plan NAME                 calm, import the target, plan $T/NAME.plan
#                                from $T/src.snap; fails unless there are
#                                changes
#   fx_storm SEED RETRY_AFTER    the storm of issue 9: 30% 429, 10% 503, 5%
#                                504 after the service ran the request, 5%
#                                of connections dropped before and 5% after
#                                it ran, new objects unseen for 2 s
#   fx_applied KIND [SINCE]      how many inner creates of KIND (users,
#                                groups) the service ran, answered or not
#                                (after log entry SINCE)
#   fx_seq                       the number of the emulator's last log entry
#   fx_check                     calm; the state against $T/src.snap
#                                (tests/graph-export-check.py), its output
#                                in $T/check.out; exit 1 on a difference
EXT=extension_0123456789abcdef0123456789abcdef_syncAnchor

fx_conf() {
	# No SETTLE: no create_settle line (for builds that predate it).
	emu_conf "$T/sync.yaml" "connections: $1" "retry_budget: $2" \
		${3:+"create_settle: $3"}
	printf '%s\n' "  src:" "    type: ldap" "    url: ldapi:///" \
		"    base_dn: dc=example,dc=org" "role:" "  server: alpha" \
		"  duration: 3600" "  lease:" "    file: lease" >>"$T/sync.yaml"
	cat "$TOP/tests/data/graph-export-flows.yaml" >>"$T/sync.yaml"
}

fx_gen() { python3 "$TOP/tests/export-src.py" "$@"; }

fx_calm() {
	ctl /_emulator/faults '{"rules": [], "fault_429": 0, "fault_503": 0, "fault_504": 0, "fault_drop": 0, "fault_drop_after": 0, "eventual_404": 0}' >/dev/null
}

fx_fresh() {
	ctl /_emulator/reset '{}' >/dev/null
	rm -rf "$T/state/journal"
}

fx_plan() {
	fx_calm &&
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.entra" entra &&
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/src.snap" "$T/$1.entra" 2>"$T/plan.err"
	[ $? -eq 1 ]
}

fx_storm() {
	ctl /_emulator/faults "{\"seed\": $1, \"fault_429\": 0.3, \"fault_503\": 0.1, \"fault_504\": 0.05, \"fault_drop\": 0.05, \"fault_drop_after\": 0.05, \"eventual_404\": 2, \"retry_after\": \"$2\"}" >/dev/null
}

fx_applied() {
	ctl "/_emulator/log?since=${2:-0}" >"$T/log.json"
	python3 - "$T/log.json" "$1" <<'PY'
import json, sys
log, kind = json.load(open(sys.argv[1])), sys.argv[2]
print(sum(1 for r in log if r.get("in_batch") and r["method"] == "POST"
          and r["path"] == "/v1.0/" + kind
          and (r.get("applied_status") or r.get("status")) == 201))
PY
}

fx_seq() {
	ctl /_emulator/log >"$T/log.json"
	python3 -c 'import json, sys; print(max([r.get("seq", 0) for r in json.load(open(sys.argv[1]))] + [0]))' "$T/log.json"
}

fx_check() {
	fx_calm
	ctl /_emulator/state >"$T/state.json" &&
	python3 "$TOP/tests/graph-export-check.py" "$T/src.snap" \
		"$T/state.json" "$EXT" >"$T/check.out"
}
