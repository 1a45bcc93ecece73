# tests/scim.sh - the SCIM test server (tests/scim-server.js, scimmy) for
# the test scripts; source it after lib.sh.
#
#   scim_start NAME ARGS...  start a server with a new random bearer token
#                            (in $T/NAME.token, mode 0600, and in
#                            $SCIM_TOKEN); its port is in $T/NAME.port, its
#                            request log in $T/NAME.log; $SCIM_BASE is its
#                            URL (https://localhost:PORT with --tls-cert);
#                            stopped at exit like every server
#   scim_ctl PATH [JSON]     the control API at $SCIM_BASE/_scim (GET, or
#                            POST with a body)
#   scim_req METHOD PATH [JSON]
#                            one SCIM request with the token: the body in
#                            $T/scim.body, the headers in $T/scim.hdr, the
#                            status printed
#   scim_conf FILE [LINE...] a config with one scim connector "app" for the
#                            server at $SCIM_BASE, the token file of the
#                            last scim_start, state in $T/state; each LINE
#                            is added to the connector

SCIM_SERVER=$TOP/tests/scim-server.js

scim_start() {
	_n=$1
	shift
	rm -f "$T/$_n.port"
	SCIM_TOKEN="tok-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
	(umask 077 && printf '%s\n' "$SCIM_TOKEN" >"$T/$_n.token")
	SCIM_TOKEN_FILE=$T/$_n.token
	node "$SCIM_SERVER" --port 0 --port-file "$T/$_n.port" \
		--token-file "$T/$_n.token" --log "$T/$_n.log" "$@" \
		>"$T/$_n.out" 2>&1 3>&- &
	_lib_pids="$_lib_pids $!"
	_i=0
	while [ ! -s "$T/$_n.port" ]; do
		_i=$((_i + 1))
		[ "$_i" -gt 400 ] && { note_file "$T/$_n.out"; return 1; }
		sleep 0.05
	done
	case " $* " in
	*" --tls-cert "*) SCIM_BASE=https://localhost:$(cat "$T/$_n.port") ;;
	*) SCIM_BASE=http://127.0.0.1:$(cat "$T/$_n.port") ;;
	esac
}

scim_ctl() {
	if [ $# -gt 1 ]; then
		curl -sf -X POST -H 'Content-Type: application/json' -d "$2" \
			--cacert "${TEST_CA:-/dev/null}" "$SCIM_BASE/_scim$1"
	else
		curl -sf --cacert "${TEST_CA:-/dev/null}" "$SCIM_BASE/_scim$1"
	fi
}

scim_req() {
	if [ $# -gt 2 ]; then
		curl -s -g -o "$T/scim.body" -D "$T/scim.hdr" -w '%{http_code}\n' \
			--cacert "${TEST_CA:-/dev/null}" \
			-X "$1" -H "Authorization: Bearer $SCIM_TOKEN" \
			-H 'Content-Type: application/scim+json' -d "$3" \
			"$SCIM_BASE$2"
	else
		curl -s -g -o "$T/scim.body" -D "$T/scim.hdr" -w '%{http_code}\n' \
			--cacert "${TEST_CA:-/dev/null}" \
			-X "$1" -H "Authorization: Bearer $SCIM_TOKEN" \
			"$SCIM_BASE$2"
	fi
}

scim_conf() {
	_f=$1
	shift
	{
		echo "state_dir: $T/state"
		echo "connectors:"
		echo "  app:"
		echo "    type: scim"
		echo "    url: $SCIM_BASE"
		echo "    token_file: $SCIM_TOKEN_FILE"
		echo "    allow_http: true"
		for _l in "$@"; do
			echo "    $_l"
		done
	} >"$_f"
}
