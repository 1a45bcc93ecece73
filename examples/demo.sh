#!/bin/sh
# make demo: the whole story on a built-in example.
#
# Starts a throw-away OpenLDAP directory seeded with sample people and
# groups (examples/demo-directory.ldif) and a local Entra ID (the Graph
# emulator, tests/graph-emulator.py) with one cloud-only admin in it.
# Then, with two servers sharing one config (examples/demo.yaml) and one
# lease: a staging cycle and its plan, the promotion of the first server,
# the export, a second cycle with nothing to do, and a rule change tried
# on the second, staging, server, whose plan shows its effect.  Everything
# runs in a scratch directory removed at the end (KEEP_TMP=1 keeps it).
. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/graph.sh"
lib_quiet
exec 1>&3 2>&3

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
as() { _s=$1; shift; printf '[%s] ' "$_s"; SYNC_SERVER=$_s run "$@"; }

say "Starting a throw-away OpenLDAP directory with sample people and groups"
slapd_start
slapd_add "$TOP/examples/demo-directory.ldif" || { echo "demo: cannot seed slapd" >&2; exit 2; }
cp "$SLAPD_PWFILE" "$T/ldap.pw"
echo "directory: $SLAPD_LDAPS_URL (TLS, checked against a test CA)"

say "Starting a local Entra ID (the Graph emulator) with one cloud-only admin"
EMU=$TOP/tests/graph-emulator.py TENANT=demo.example
emu_app 6f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11 "$T/entra.secret"
emu_start graph || { echo "demo: the Graph emulator does not start" >&2; exit 2; }
DEMO_GRAPH=http://127.0.0.1:$(cat "$T/graph.port")
curl -sf -X POST -H 'Content-Type: application/json' "$DEMO_GRAPH/_emulator/seed" \
	-d '{"users":[{"displayName":"Cloud Admin","userPrincipalName":"admin@demo.example","mailNickname":"admin","accountEnabled":true}]}' >/dev/null
echo "Entra ID: $DEMO_GRAPH (tenant demo.example)"

DEMO_DIR=$T DEMO_LDAP_URL=$SLAPD_LDAPS_URL DEMO_CA=$SLAPD_CA
export DEMO_DIR DEMO_LDAP_URL DEMO_CA DEMO_GRAPH
cd "$T" || exit 2
cp "$TOP/examples/demo.yaml" sync.yaml
SYNC_CONFIG=$T/sync.yaml
export SYNC_CONFIG

# show_entra: the tenant's users and groups, as the emulator holds them
show_entra() {
	curl -sf "$DEMO_GRAPH/_emulator/state" | python3 -c '
import json, sys
st = json.load(sys.stdin)
names = {o["id"]: o["displayName"] for o in st["users"] + st["groups"]}
for u in sorted(st["users"], key=lambda u: u["displayName"]):
    print("  user  %-22s %-26s %s" % (u["displayName"], u["userPrincipalName"],
          "synced, anchor " + u["onPremisesImmutableId"]
          if u.get("onPremisesImmutableId") else "cloud-only"))
for g in sorted(st["groups"], key=lambda g: g["displayName"]):
    print("  group %-22s members: %s" % (g["displayName"],
          ", ".join(sorted(names.get(m, m) for m in g.get("members", [])))))'
}

say "sync1 is a new server: staging"
as sync1 sync-role

say "A staging cycle on sync1: import both sides, compute the plan"
as sync1 sync-import -o corp.snap corp
as sync1 sync-import -o entra.snap entra
as sync1 sync-diff -f text -o plan.txt corp.snap entra.snap
as sync1 sync-diff -o plan.json corp.snap entra.snap
echo
echo "The plan, as a person reads it (plan.json holds the same for jq and sync-export):"
sed 's/^/  /' plan.txt

say "Staging mode is the pipeline without the export step"
as sync1 sync-export plan.json
echo "(exit status $?: nothing was sent to Entra ID)"

say "Promote sync1 to active (it takes the lease; sync2 could not now)"
as sync1 sync-role promote
as sync2 sync-role promote
echo "(exit status $?: sync2 stays staging while sync1 holds the lease)"

say "Export on the active server"
as sync1 sync-export plan.json
echo
echo "Entra ID now holds:"
show_entra

say "The next cycle, as cron runs it (examples/sync-cycle): nothing to do"
as sync1 "$TOP/examples/sync-cycle" -w cycle entra corp
echo "(exit status $?; sync-diff found no change, so nothing was exported)"

say "A rule change tried on sync2, a second staging server"
sed "s/displayName: '\[displayName\]'/displayName: '[displayName] \& \" (\" \& [departmentNumber] \& \")\"'/" \
	sync.yaml >new-rules.yaml
diff -u sync.yaml new-rules.yaml | sed -n '/^[-+] /p' | sed 's/^/  /'
as sync2 sync-import -q -c new-rules.yaml -o entra.snap entra
as sync2 sync-diff -c new-rules.yaml -f text corp.snap entra.snap
echo
echo "The effect shows before anyone applies it; sync2 is staging and sends nothing:"
as sync2 sync-diff -c new-rules.yaml -o plan3.json corp.snap entra.snap 2>/dev/null
as sync2 sync-export -c new-rules.yaml plan3.json

say "Done; scratch directory $T is removed (KEEP_TMP=1 keeps it)"
exit 0
