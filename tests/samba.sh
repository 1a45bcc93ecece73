# tests/samba.sh - a throw-away Samba AD domain controller (sourced by lib.sh)
#
# samba_start [--seeded | --template DIR]
#        start a DC for realm SAMDOM.TEST (NetBIOS SAMDOM, host DC1,
#        rfc2307 schema, no DNS) in $T/samba, on its own loopback address
#        127.0.N.M (added to lo, removed at stop), only the `ldap' service
#        (389 with StartTLS, 636, 3268, 3269), TLS with a certificate from the
#        test CA whose SAN has the IP and DC1.samdom.test.  The domain is a
#        copy of a template provisioned once and cached in
#        $SAMBA_CACHE (default tests/tmp/.samba-cache, keyed by the Samba
#        version and the seed files; safe to delete): provisioning takes ~7 s,
#        a copy well under 1 s.  Every copy has the same domain SID, GUIDs and
#        invocationId.  --seeded: the template also holds
#        tests/data/samba-seed.ldif and the 5,000-member big group
#        (tests/data/gen-big-group.sh samba), loaded through Samba's module
#        stack (tests/data/samba-ldbadd.py): building it the first time takes
#        about a minute (Samba adds ~8 ms per object), later starts are fast.
#        --template DIR: a copy of DIR instead, a domain provisioned and
#        loaded as the templates are (bench/ad-delta.sh keeps one).
#        Exports SAMBA_URL SAMBA_LDAPS_URL SAMBA_IP SAMBA_BASE SAMBA_BINDDN
#        SAMBA_PWFILE SAMBA_CA SAMBA_PID SAMBA_REALM SAMBA_DIR SAMBA_CONF
#        (its smb.conf, for samba-tool -s / samba-ldbadd.py) SAMBA_HOST
#        (DC1.samdom.test, as in the rootDSE) SAMBA_START_MS.  On failure: log as TAP comments,
#        "not ok", end of the test file.
# samba_seed           add tests/data/samba-seed.ldif over LDAPS (~0.5 s)
# samba_seed_big [N]   add OU=Bulk (N contacts, default 5000) and the big group
#                      over LDAPS, members in one modify: slow (~8 ms/object);
#                      prefer samba_start --seeded
# samba_add FILE / samba_modify FILE  ldapadd / ldapmodify over LDAPS as
#                      Administrator (CA verified)
# samba_search ARGS... ldapsearch -LLL -o ldif-wrap=no over LDAPS as Administrator
# samba_stop / samba_kill   SIGTERM (wait) / SIGKILL; removes the address
#
# Simple binds need LDAPS or StartTLS (Samba's default); tools must be told
# the CA: LDAPTLS_CACERT=$SAMBA_CA.

SAMBA_REALM=SAMDOM.TEST
SAMBA_BASE=DC=samdom,DC=test
SAMBA_BINDDN=CN=Administrator,CN=Users,DC=samdom,DC=test
SAMBA_HOST=DC1.samdom.test

_samba_conf() {
	# _samba_conf DIR IP TLSDIR
	cat <<EOF
[global]
	netbios name = DC1
	realm = SAMDOM.TEST
	workgroup = SAMDOM
	server role = active directory domain controller
	private dir = $1/private
	lock directory = $1
	state directory = $1/state
	cache directory = $1/cache
	binddns dir = $1/bind-dns
	pid directory = $1/run
	ncalrpc dir = $1/run/ncalrpc
	interfaces = $2
	bind interfaces only = yes
	server services = ldap
	dcerpc endpoint servers =
	idmap_ldb:use rfc2307 = yes
	log level = 1
	tls enabled = yes
	tls keyfile = $3/key.pem
	tls certfile = $3/cert.pem
	tls cafile = $3/ca.pem
EOF
}

_samba_cache_key() {
	{
		echo "template v1"   # bump when provisioning/seeding changes
		samba -V
		cat "$TOP/tests/data/samba-seed.ldif" \
			"$TOP/tests/data/gen-big-group.sh" "$TOP/tests/data/samba-ldbadd.py"
	} 2>&1 | sha256sum | cut -c1-16
}

# _samba_lock DIR: mkdir lock with stale-owner detection; waits up to 300 s
_samba_lock() {
	_w=0
	while ! mkdir "$1" 2>/dev/null; do
		_o=$(cat "$1/pid" 2>/dev/null)
		if [ -n "$_o" ] && ! kill -0 "$_o" 2>/dev/null; then
			rm -rf "$1"
			continue
		fi
		_w=$((_w + 1))
		[ $_w -gt 3000 ] && return 1
		sleep 0.1
	done
	echo $$ >"$1/pid"
}

# _samba_template bare|seeded: echo the template dir, building it if needed
_samba_template() {
	_cache=${SAMBA_CACHE:-$TOP/tests/tmp/.samba-cache}
	mkdir -p "$_cache" || return 1
	_key=$(_samba_cache_key)
	_tpl=$_cache/$_key-$1
	[ -f "$_tpl/.ready" ] && { echo "$_tpl"; return 0; }
	_samba_lock "$_tpl.lock" || { echo "samba: timeout waiting for $_tpl.lock" >&2; return 1; }
	if [ -f "$_tpl/.ready" ]; then
		rm -rf "$_tpl.lock"
		echo "$_tpl"
		return 0
	fi
	_b=$_tpl.build.$$
	rm -rf "$_b"
	if [ "$1" = bare ]; then
		mkdir -p "$_b/etc" && : >"$_b/empty.conf" &&
		(umask 077 && new_password | tr -d '\n' >"$_b/adminpw") &&
		samba-tool domain provision --configfile="$_b/empty.conf" \
			--targetdir="$_b" --realm=SAMDOM.TEST --domain=SAMDOM \
			--server-role=dc --dns-backend=NONE --use-rfc2307 \
			--host-name=DC1 --adminpass="$(cat "$_b/adminpw")" \
			>"$_b/provision.log" 2>&1 ||
			{ cat "$_b/provision.log" >&2; rm -rf "$_tpl.lock"; return 1; }
	else
		_bare=$(_samba_template bare) || { rm -rf "$_tpl.lock"; return 1; }
		cp -a "$_bare" "$_b" && rm -f "$_b/.ready" &&
		_samba_conf "$_b" 127.0.0.1 "$_b/tls" >"$_b/etc/smb.conf" &&
		sh "$TOP/tests/data/gen-big-group.sh" samba 5000 objects >"$_b/big-objects.ldif" &&
		sh "$TOP/tests/data/gen-big-group.sh" samba 5000 members >"$_b/big-members.ldif" &&
		/usr/bin/python3 "$TOP/tests/data/samba-ldbadd.py" "$_b/etc/smb.conf" \
			"$TOP/tests/data/samba-seed.ldif" "$_b/big-objects.ldif" \
			"$_b/big-members.ldif" >"$_b/seed.log" 2>&1 ||
			{ cat "$_b/seed.log" >&2; rm -rf "$_tpl.lock"; return 1; }
	fi
	rm -f "$_b/etc/smb.conf"
	touch "$_b/.ready"
	rm -rf "$_tpl"
	mv "$_b" "$_tpl"
	rm -rf "$_tpl.lock"
	echo "$_tpl"
}

# _samba_pick_ip: a free 127.0.N.M (N in 100..199), locked for this test file
_samba_pick_ip() {
	_locks=$TOP/tests/tmp/.ip-locks
	mkdir -p "$_locks"
	_seed=$$
	_tries=0
	while [ $_tries -lt 200 ]; do
		_tries=$((_tries + 1))
		_n=$((100 + (_seed / 250) % 100))
		_m=$((2 + _seed % 250))
		_ip=127.0.$_n.$_m
		_seed=$((_seed + 7919))
		if _samba_lock_try "$_locks/$_ip" && ! ss -Hltn 2>/dev/null | awk '{print $4}' | grep -q -F "$_ip:"; then
			echo "$_ip"
			return 0
		fi
	done
	return 1
}

_samba_lock_try() {
	if mkdir "$1" 2>/dev/null; then
		echo $$ >"$1/pid"
		return 0
	fi
	_o=$(cat "$1/pid" 2>/dev/null)
	if [ -n "$_o" ] && ! kill -0 "$_o" 2>/dev/null; then
		rm -rf "$1"
		mkdir "$1" 2>/dev/null && { echo $$ >"$1/pid"; return 0; }
	fi
	return 1
}

samba_start() {
	_t0=$(date +%s%N)
	_kind=bare _given=
	[ "$1" = --seeded ] && _kind=seeded
	[ "$1" = --template ] && _given=$2
	command -v samba >/dev/null || _lib_fatal "samba_start: samba not installed (apt-get install samba)"

	SAMBA_IP=$(_samba_pick_ip) || _lib_fatal "samba_start: no free loopback address"
	_samba_iplock=$TOP/tests/tmp/.ip-locks/$SAMBA_IP
	at_exit "rm -rf '$_samba_iplock'"
	if ! ip -o addr show dev lo | grep -q -F " $SAMBA_IP/"; then
		ip addr add "$SAMBA_IP/32" dev lo 2>"$T/ip.err" ||
			{ note_file "$T/ip.err"; _lib_fatal "samba_start: ip addr add $SAMBA_IP failed (needs root)"; }
		at_exit "ip addr del '$SAMBA_IP/32' dev lo"
	fi

	if [ -n "$_given" ]; then
		_tpl=$_given
	else
		_tpl=$(_samba_template $_kind 2>"$T/samba-template.err") ||
			{ note_file "$T/samba-template.err"; _lib_fatal "samba_start: provisioning failed"; }
	fi
	_t1=$(date +%s%N)

	SAMBA_DIR=$T/samba
	rm -rf "$SAMBA_DIR"
	cp -a "$_tpl" "$SAMBA_DIR" || _lib_fatal "samba_start: cannot copy $_tpl"
	mkdir -p "$SAMBA_DIR/run" "$SAMBA_DIR/tls" "$SAMBA_DIR/etc"
	chmod 700 "$SAMBA_DIR/tls"
	SAMBA_PWFILE=$SAMBA_DIR/adminpw
	chmod 600 "$SAMBA_PWFILE"

	pki_server_cert samba "IP:$SAMBA_IP,DNS:$SAMBA_HOST,DNS:DC1" ||
		_lib_fatal "samba_start: cannot make certificates"
	cp "$T/pki/ca.pem" "$SAMBA_DIR/tls/ca.pem"
	cp "$T/pki/samba.pem" "$SAMBA_DIR/tls/cert.pem"
	cp "$T/pki/samba.key" "$SAMBA_DIR/tls/key.pem"
	chmod 600 "$SAMBA_DIR/tls/key.pem"
	SAMBA_CA=$SAMBA_DIR/tls/ca.pem
	SAMBA_CONF=$SAMBA_DIR/etc/smb.conf
	_samba_conf "$SAMBA_DIR" "$SAMBA_IP" "$SAMBA_DIR/tls" >"$SAMBA_CONF"

	SAMBA_URL=ldap://$SAMBA_IP
	SAMBA_LDAPS_URL=ldaps://$SAMBA_IP
	samba -i -M single -s "$SAMBA_CONF" </dev/null >"$SAMBA_DIR/log" 2>&1 3>&- &
	SAMBA_PID=$!
	_lib_pids="$_lib_pids $SAMBA_PID"
	_i=0
	while [ $_i -lt 300 ]; do
		_lib_pid_alive "$SAMBA_PID" || break
		LDAPTLS_CACERT=$SAMBA_CA ldapsearch -x -H "$SAMBA_LDAPS_URL" -s base -b "" \
			-o nettimeout=1 -l 2 dnsHostName >/dev/null 2>&1 && break
		_i=$((_i + 1))
		sleep 0.05
	done
	if ! _lib_pid_alive "$SAMBA_PID" || [ $_i -ge 300 ]; then
		note_file "$SAMBA_DIR/log"
		stop_pid "$SAMBA_PID" KILL
		_lib_fatal "samba_start: samba did not answer on $SAMBA_LDAPS_URL"
	fi
	_t2=$(date +%s%N)
	SAMBA_START_MS=$(( (_t2 - _t0) / 1000000 ))
	SAMBA_TEMPLATE_MS=$(( (_t1 - _t0) / 1000000 ))
	export SAMBA_URL SAMBA_LDAPS_URL SAMBA_IP SAMBA_BASE SAMBA_BINDDN SAMBA_PWFILE \
		SAMBA_CA SAMBA_PID SAMBA_REALM SAMBA_DIR SAMBA_CONF SAMBA_HOST \
		SAMBA_START_MS SAMBA_TEMPLATE_MS
	return 0
}

_samba_ldap() {
	_tool=$1; shift
	LDAPTLS_CACERT=$SAMBA_CA "$_tool" -x -H "$SAMBA_LDAPS_URL" -D "$SAMBA_BINDDN" \
		-y "$SAMBA_PWFILE" "$@"
}

samba_add() {
	_samba_ldap ldapadd -f "$1" >"$T/samba_add.log" 2>&1 ||
		{ note_file "$T/samba_add.log" 20; return 1; }
}

samba_modify() {
	_samba_ldap ldapmodify -f "$1" >"$T/samba_modify.log" 2>&1 ||
		{ note_file "$T/samba_modify.log" 20; return 1; }
}

samba_search() {
	_samba_ldap ldapsearch -LLL -o ldif-wrap=no "$@"
}

samba_seed() {
	samba_add "$TOP/tests/data/samba-seed.ldif"
}

samba_seed_big() {
	sh "$TOP/tests/data/gen-big-group.sh" samba "${1:-5000}" objects >"$T/samba-big-objects.ldif" &&
	sh "$TOP/tests/data/gen-big-group.sh" samba "${1:-5000}" members >"$T/samba-big-members.ldif" &&
	samba_add "$T/samba-big-objects.ldif" &&
	samba_modify "$T/samba-big-members.ldif"
}

samba_stop() {
	stop_pid "$SAMBA_PID" TERM 100
	ip addr del "$SAMBA_IP/32" dev lo 2>/dev/null
	return 0
}

samba_kill() {
	stop_pid "$SAMBA_PID" KILL
}

# Run directly, `sh tests/samba.sh warm` builds the cached templates (e.g. in
# CI before prove, so that no single test pays the ~45 s first build).
if [ "${0##*/}" = samba.sh ] && [ -z "${_samba_direct:-}" ]; then
	_samba_direct=1
	. "$(dirname "$0")/lib.sh"
	_lib_done=1
	case ${1:-} in
	warm)
		_samba_template seeded || exit 1
		;;
	*)
		echo "usage: sh tests/samba.sh warm" >&2
		exit 2
		;;
	esac
	exit 0
fi
