# tests/scim-export.sh - sync-export to the SCIM test server, for
# tests/0487-scim-export.t, tests/0490-scim-export-faults.t and
# bench/scim-*.sh.  Source it after lib.sh and scim.sh, once the server
# runs (scim_start).
#
#   sx_conf CONNS [BUDGET [SETTLE]]
#                            $T/sync.yaml: connector "app" (the server) with
#                            CONNS connections, retry_budget BUDGET
#                            (default 120) and create_settle SETTLE (none:
#                            the default), "src" (LDAP), the flows of
#                            tests/data/scim-export-flows.yaml, a file
#                            lease; delete_threshold $DELETE_THRESHOLD
#   sx_gen FILE USERS GROUPS [VARIANT]
#                            a source snapshot (tests/export-src.py)
#   sx_calm                  no faults
#   sx_fresh                 an empty server (log and faults too), no journal
#   sx_plan NAME             calm, import the server, plan $T/NAME.plan from
#                            $T/src.snap; fails unless there are changes
#   sx_storm SEED [RA]       random faults on every request: 5% dropped
#                            after they ran, 5% answered 500 and 3% 504
#                            after they ran, 3% dropped before, 15% 429
#                            and 5% 503 with Retry-After RA (default 1)
#   sx_check                 calm; the server's state and log against
#                            $T/src.snap (tests/scim-export-check.py),
#                            its output in $T/check.out; exit 1 on a
#                            difference
DELETE_THRESHOLD=${DELETE_THRESHOLD:-500}
export DELETE_THRESHOLD

sx_conf() {
	scim_conf "$T/sync.yaml" "connections: $1" "retry_budget: ${2:-120}" \
		${3:+"create_settle: $3"}
	cat >>"$T/sync.yaml" <<EOF2
  src:
    type: ldap
    url: ldapi:///
    base_dn: dc=example,dc=org
policy:
  delete_threshold: \${DELETE_THRESHOLD}
role:
  server: alpha
  duration: 3600
  lease:
    file: lease
EOF2
	cat "$TOP/tests/data/scim-export-flows.yaml" >>"$T/sync.yaml"
}

sx_gen() { python3 "$TOP/tests/export-src.py" "$@"; }

sx_calm() {
	scim_ctl /faults '{"rules": [], "random": null}' >/dev/null
}

sx_fresh() {
	scim_ctl /reset '{}' >/dev/null
	rm -rf "$T/state/journal"
}

sx_plan() {
	sx_calm &&
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.app" app &&
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/src.snap" "$T/$1.app" \
		2>"$T/plan.err"
	[ $? -eq 1 ]
}

sx_storm() {
	scim_ctl /faults "{\"random\": {\"seed\": $1, \"retry_after\": \"${2:-1}\", \"p\": {\"drop_after\": 0.05, \"500_after\": 0.05, \"504_after\": 0.03, \"drop\": 0.03, \"429\": 0.15, \"503\": 0.05}}}" >/dev/null
}

sx_check() {
	sx_calm
	scim_ctl /state >"$T/state.json" &&
	scim_ctl /log >"$T/log.json" &&
	python3 "$TOP/tests/scim-export-check.py" "$T/src.snap" \
		"$T/state.json" "$T/log.json" >"$T/check.out"
}
