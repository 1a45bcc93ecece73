# tests/etcd.sh - a throw-away etcd cluster on loopback for the tests;
# source it after lib.sh.  Needs /usr/bin/etcd (Debian etcd-server) and,
# for etcd_ctl, /usr/bin/etcdctl (etcd-client).
#
#   etcd_start [N]
#       starts an N-member cluster (3 by default) on 127.0.0.1, each
#       member with its own free client and peer ports and its data in
#       $T/etcd/mI, and waits until every member says it is healthy.
#       Sets ETCD_N, ETCD_ENDPOINTS (the client URLs, comma-separated),
#       ETCD_URL_I and ETCD_PID_I for I in 1..N.  Short heartbeats and
#       elections (50 and 500 ms) so that a killed leader is replaced
#       within a second.  The members are stopped at exit.
#       With ETCD_TLS=1: https client URLs with a certificate of the
#       test CA ($TEST_CA), and client certificates required
#       (--client-cert-auth): $T/pki/etcd-client.pem and .key are one.
#   etcd_kill I
#       kill -9 of member I (no goodbye to its peers), reaped.
#   etcd_leader
#       prints I, the member that leads the cluster now.
#   etcd_ctl ARGS...
#       etcdctl (API v3) on all the endpoints, as root when
#       ETCD_ROOT_PW is set (once auth is enabled).

_etcd_launch() {
	_i=1
	_cluster=
	while [ "$_i" -le "$ETCD_N" ]; do
		_c=$(random_port)
		_p=$(random_port)
		[ "$_c" = "$_p" ] && continue
		eval "ETCD_URL_$_i=$_etcd_scheme://127.0.0.1:$_c _etcd_peer_$_i=http://127.0.0.1:$_p"
		_cluster="${_cluster:+$_cluster,}m$_i=http://127.0.0.1:$_p"
		_i=$((_i + 1))
	done
	ETCD_ENDPOINTS=
	_i=1
	while [ "$_i" -le "$ETCD_N" ]; do
		eval "_url=\$ETCD_URL_$_i _peer=\$_etcd_peer_$_i"
		ETCD_ENDPOINTS="${ETCD_ENDPOINTS:+$ETCD_ENDPOINTS,}$_url"
		rm -rf "$T/etcd/m$_i"
		etcd --name "m$_i" --data-dir "$T/etcd/m$_i" \
			--listen-client-urls "$_url" --advertise-client-urls "$_url" \
			--listen-peer-urls "$_peer" \
			--initial-advertise-peer-urls "$_peer" \
			--initial-cluster "$_cluster" \
			--initial-cluster-state new \
			--initial-cluster-token "sync-test-$$" \
			--heartbeat-interval 50 --election-timeout 500 \
			$_etcd_tls \
			</dev/null >"$T/etcd/m$_i.log" 2>&1 3>&- &
		eval "ETCD_PID_$_i=$!"
		_lib_pids="$_lib_pids $!"
		_i=$((_i + 1))
	done
	# Healthy: every member answers and the cluster has a leader.
	_w=0
	while [ "$_w" -lt 300 ]; do
		_up=0
		_i=1
		while [ "$_i" -le "$ETCD_N" ]; do
			eval "_url=\$ETCD_URL_$_i _pid=\$ETCD_PID_$_i"
			_lib_pid_alive "$_pid" || return 1
			curl -s -m 2 $_etcd_curl "$_url/health" 2>/dev/null |
				grep -q '"health":"true"' && _up=$((_up + 1))
			_i=$((_i + 1))
		done
		[ "$_up" -eq "$ETCD_N" ] && return 0
		sleep 0.1
		_w=$((_w + 1))
	done
	return 1
}

etcd_start() {
	ETCD_N=${1:-3}
	mkdir -p "$T/etcd"
	_etcd_scheme=http _etcd_tls= _etcd_curl= _etcd_ctl_tls=
	if [ "${ETCD_TLS:-0}" = 1 ]; then
		pki_init &&
		_etcd_cert etcd serverAuth,clientAuth \
			"subjectAltName=IP:127.0.0.1,DNS:localhost" &&
		_etcd_cert etcd-client clientAuth ||
			bail "etcd: cannot make certificates"
		_etcd_scheme=https
		_etcd_tls="--cert-file $T/pki/etcd.pem --key-file $T/pki/etcd.key --client-cert-auth --trusted-ca-file $TEST_CA"
		_etcd_curl="--cacert $TEST_CA --cert $T/pki/etcd-client.pem --key $T/pki/etcd-client.key"
		_etcd_ctl_tls="--cacert $TEST_CA --cert $T/pki/etcd-client.pem --key $T/pki/etcd-client.key"
	fi
	_try=0
	while [ "$_try" -lt 5 ]; do
		_try=$((_try + 1))
		_etcd_launch && { export ETCD_ENDPOINTS; return 0; }
		# A port taken meanwhile, or too slow: start over on new ports
		# (not with _i: stop_pid counts with it).
		_ek=1
		while [ "$_ek" -le "$ETCD_N" ]; do
			eval "stop_pid \$ETCD_PID_$_ek KILL"
			_ek=$((_ek + 1))
		done
	done
	for _i in $(seq "$ETCD_N"); do
		note_file "$T/etcd/m$_i.log" 10
	done
	bail "etcd: cannot start a $ETCD_N-member cluster"
}

# _etcd_cert NAME USAGES [EXT]: $T/pki/NAME.pem and .key, signed by the
# test CA for the extended key USAGES.  A member's own certificate needs
# clientAuth too: with --client-cert-auth, its JSON gateway connects to
# its gRPC server with it.
_etcd_cert() {
	printf 'extendedKeyUsage=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' \
		"$2" "${3:-}" >"$T/pki/$1.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$T/pki/$1.key" -out "$T/pki/$1.csr" -subj "/CN=$1" \
		>>"$T/pki/openssl.log" 2>&1 &&
	openssl x509 -req -in "$T/pki/$1.csr" -CA "$T/pki/ca.pem" \
		-CAkey "$T/pki/ca.key" -CAcreateserial -days 3 \
		-extfile "$T/pki/$1.ext" -out "$T/pki/$1.pem" \
		>>"$T/pki/openssl.log" 2>&1 || { note_file "$T/pki/openssl.log"; return 1; }
	chmod 600 "$T/pki/$1.key"
}

etcd_kill() {
	eval "stop_pid \$ETCD_PID_$1 KILL"
}

etcd_ctl() {
	ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" $_etcd_ctl_tls \
		${ETCD_ROOT_PW:+--user=root:$ETCD_ROOT_PW} "$@"
}

# etcd_leader: the number I of the member that leads, as the live members
# say; empty when none does.
etcd_leader() {
	_i=1
	while [ "$_i" -le "$ETCD_N" ]; do
		eval "_url=\$ETCD_URL_$_i"
		curl -s -m 2 -X POST -d '{}' "$_url/v3/maintenance/status" \
			>"$T/etcd/status" 2>/dev/null
		_me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' "$T/etcd/status")
		_ld=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' "$T/etcd/status")
		if [ -n "$_me" ] && [ "$_me" = "$_ld" ]; then
			echo "$_i"
			return 0
		fi
		_i=$((_i + 1))
	done
}
