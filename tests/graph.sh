# tests/graph.sh - the Graph emulator for the test scripts; source it after
# lib.sh.  Needs EMU (tests/graph-emulator.py), TENANT and $T/apps.json
# (the apps the emulator knows, see the emulator's --apps-file).
#
#   emu_app CID FILE         one app: a new random secret in FILE (mode
#                            0600, also in $SECRET) and $T/apps.json
#                            naming client CID with it
#   emu_start NAME ARGS...   start an emulator (more ARGS for it); its port
#                            is in $T/NAME.port, its log in $T/NAME.log;
#                            stopped at exit like every server
#   ctl PATH [JSON]          the emulator's control API at $BASE (GET, or
#                            POST with a body); TEST_CA for https
#   emu_conf FILE [LINE...]  a config with one graph connector "entra" for
#                            the emulator at $BASE, app $CID with the
#                            secret in $T/secret, state in $T/state; each
#                            LINE is added to the connector
#   graph_call CID SECRET    reads "METHOD /path [JSON]" lines on stdin and
#                            sends each to $BASE/v1.0 as that app, as a
#                            client of Graph would; prints "METHOD path
#                            STATUS" each, fails at the first error

emu_app() {
	SECRET="S3cr+t&v@lue=~$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
	printf '%s\n' "$SECRET" >"$2"
	chmod 600 "$2"
	printf '[{"client_id": "%s", "secret": "%s"}]\n' "$1" "$SECRET" >"$T/apps.json"
}

emu_start() {
	_n=$1
	shift
	rm -f "$T/$_n.port"
	python3 "$EMU" --port 0 --port-file "$T/$_n.port" --apps-file "$T/apps.json" \
		--tenant "$TENANT" --log "$T/$_n.log" "$@" >"$T/$_n.out" 2>&1 3>&- &
	_lib_pids="$_lib_pids $!"
	_i=0
	while [ ! -s "$T/$_n.port" ]; do
		_i=$((_i + 1))
		[ "$_i" -gt 200 ] && { note_file "$T/$_n.out"; return 1; }
		sleep 0.05
	done
}

ctl() {
	if [ $# -gt 1 ]; then
		curl -sf -X POST -H 'Content-Type: application/json' -d "$2" \
			--cacert "${TEST_CA:-/dev/null}" "$BASE$1"
	else
		curl -sf --cacert "${TEST_CA:-/dev/null}" "$BASE$1"
	fi
}

emu_conf() {
	_f=$1
	shift
	{
		echo "state_dir: $T/state"
		echo "connectors:"
		echo "  entra:"
		echo "    type: graph"
		echo "    tenant: $TENANT"
		echo "    client_id: $CID"
		echo "    client_secret_file: $T/secret"
		echo "    token_url: $BASE/$TENANT/oauth2/v2.0/token"
		echo "    graph_url: $BASE/v1.0"
		echo "    allow_http: true"
		for _l in "$@"; do
			echo "    $_l"
		done
	} >"$_f"
}

graph_call() {
	python3 -c '
import json, sys, urllib.request, urllib.parse, urllib.error
base, tenant, cid, secret = sys.argv[1:5]
form = urllib.parse.urlencode({"client_id": cid, "client_secret": secret,
    "grant_type": "client_credentials",
    "scope": "https://graph.microsoft.com/.default"}).encode()
tok = json.load(urllib.request.urlopen(urllib.request.Request(
    "%s/%s/oauth2/v2.0/token" % (base, tenant), data=form)))["access_token"]
for line in sys.stdin:
    if not line.strip():
        continue
    method, path, *body = line.strip().split(" ", 2)
    req = urllib.request.Request(base + "/v1.0" + path, method=method,
        data=body[0].encode() if body else None,
        headers={"Authorization": "Bearer " + tok,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            print(method, path, r.status)
    except urllib.error.HTTPError as e:
        print(method, path, e.code, e.read().decode()[:300])
        sys.exit(1)
' "$BASE" "$TENANT" "$1" "$2"
}
