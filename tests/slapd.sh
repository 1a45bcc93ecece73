# tests/slapd.sh - a throw-away OpenLDAP slapd for the tests (sourced by lib.sh)
#
# slapd_start [NAME]   start slapd in $T/NAME (default $T/slapd): cn=config
#                      (slapadd'ed), one mdb database for dc=example,dc=org with
#                      only the base entry, modules back_mdb, syncprov,
#                      memberof, accesslog loaded (configure overlays with
#                      slapd_modify on cn=config), listening on
#                      ldap://127.0.0.1:PORT, ldaps://127.0.0.1:PORT2 and
#                      ldapi://<socket in $T>; StartTLS on the ldap port.
#                      Exports SLAPD_URL SLAPD_LDAPS_URL SLAPD_LDAPI_URL
#                      SLAPD_BASE SLAPD_ROOTDN SLAPD_PWFILE SLAPD_CA SLAPD_PID
#                      SLAPD_DIR SLAPD_PORT SLAPD_LDAPS_PORT.  A second call
#                      with another NAME starts another server and overwrites
#                      the variables (save them first).  On failure it prints
#                      the log as TAP comments, records "not ok" and ends the
#                      test file.
# slapd_seed           add tests/data/slapd-seed.ldif (see its header)
# slapd_seed_big [N]   add ou=Bulk with N (5000) users and cn=Big Group with all
#                      of them as members
# slapd_add FILE       ldapadd  as the root DN over ldapi (SASL EXTERNAL)
# slapd_modify FILE    ldapmodify as the root DN over ldapi; also works on
#                      cn=config (the root DN has manage access there)
# slapd_overlay syncprov|memberof [DB]
#                      add the overlay (defaults) to olcDatabase={1}mdb (or DB)
# slapd_search ARGS... ldapsearch -LLL -o ldif-wrap=no over ldapi as root DN
# slapd_stop           SIGTERM, wait for exit
# slapd_kill           SIGKILL (failure tests), wait for exit
#
# Identities: the rootDN cn=admin,dc=example,dc=org with the password in
# $SLAPD_PWFILE (mode 0600; use ldapsearch -x -D "$SLAPD_ROOTDN" -y
# "$SLAPD_PWFILE"); SASL EXTERNAL over ldapi by the uid/gid running the test
# is mapped to the root DN.  Size limit is unlimited.

SLAPD_MODULEPATH=${SLAPD_MODULEPATH:-/usr/lib/ldap}
SLAPD_SCHEMADIR=${SLAPD_SCHEMADIR:-/etc/ldap/schema}

# _slapd_url_escape PATH: percent-encode a socket path for an ldapi:// URL
_slapd_url_escape() {
	printf '%s' "$1" | sed -e 's/%/%25/g' -e 's,/,%2F,g' -e 's/ /%20/g' \
		-e 's/,/%2C/g' -e 's/:/%3A/g'
}

_slapd_config_ldif() {
	_d=$1 _pw=$2
	_uid=$(id -u) _gid=$(id -g)
	cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $_d/slapd.pid
olcArgsFile: $_d/slapd.args
olcTLSCACertificateFile: $_d/ca.pem
olcTLSCertificateFile: $_d/server.pem
olcTLSCertificateKeyFile: $_d/server.key
olcAuthzRegexp: {0}"gidNumber=$_gid\\+uidNumber=$_uid,cn=peercred,cn=external,cn=auth" "cn=admin,dc=example,dc=org"
olcSizeLimit: unlimited
olcTimeLimit: unlimited

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $SLAPD_MODULEPATH
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}syncprov
olcModuleLoad: {2}memberof
olcModuleLoad: {3}accesslog

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

EOF
	for _s in core cosine inetorgperson nis; do
		cat "$SLAPD_SCHEMADIR/$_s.ldif"
		echo
	done
	cat <<EOF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact="cn=admin,dc=example,dc=org" manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: dc=example,dc=org
olcRootDN: cn=admin,dc=example,dc=org
olcRootPW: $_pw
olcDbDirectory: $_d/db
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryUUID,entryCSN eq
olcDbIndex: cn,uid,mail eq
olcDbIndex: member eq
olcLimits: {0}* size=unlimited time=unlimited
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by users read by * none

EOF
}

slapd_start() {
	_name=${1:-slapd}
	SLAPD_DIR=$T/$_name
	rm -rf "$SLAPD_DIR"
	mkdir -p "$SLAPD_DIR/slapd.d" "$SLAPD_DIR/db" || _lib_fatal "slapd_start: mkdir $SLAPD_DIR"
	chmod 700 "$SLAPD_DIR"
	_t0=$(date +%s%N)

	SLAPD_BASE=dc=example,dc=org
	SLAPD_ROOTDN=cn=admin,dc=example,dc=org
	SLAPD_PWFILE=$SLAPD_DIR/rootpw
	(umask 077 && new_password | tr -d '\n' >"$SLAPD_PWFILE")

	pki_server_cert "$_name" "IP:127.0.0.1,DNS:localhost" ||
		_lib_fatal "slapd_start: cannot make certificates"
	cp "$T/pki/ca.pem" "$SLAPD_DIR/ca.pem"
	cp "$T/pki/$_name.pem" "$SLAPD_DIR/server.pem"
	cp "$T/pki/$_name.key" "$SLAPD_DIR/server.key"
	SLAPD_CA=$SLAPD_DIR/ca.pem

	_slapd_config_ldif "$SLAPD_DIR" "$(cat "$SLAPD_PWFILE")" >"$SLAPD_DIR/config.ldif"
	if ! slapadd -n0 -F "$SLAPD_DIR/slapd.d" -l "$SLAPD_DIR/config.ldif" \
		>"$SLAPD_DIR/slapadd.log" 2>&1; then
		note_file "$SLAPD_DIR/slapadd.log"
		_lib_fatal "slapd_start: slapadd of cn=config failed"
	fi
	printf 'dn: dc=example,dc=org\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example Org\n' \
		>"$SLAPD_DIR/base.ldif"
	if ! slapadd -q -n1 -F "$SLAPD_DIR/slapd.d" -l "$SLAPD_DIR/base.ldif" \
		>>"$SLAPD_DIR/slapadd.log" 2>&1; then
		note_file "$SLAPD_DIR/slapadd.log"
		_lib_fatal "slapd_start: slapadd of the base entry failed"
	fi

	# ldapi socket path must fit in sun_path (108 bytes)
	_sock=$SLAPD_DIR/ldapi
	if [ ${#_sock} -gt 100 ]; then
		_sock=$(mktemp -d /tmp/slapd.XXXXXX)/ldapi
		at_exit "rm -rf '${_sock%/ldapi}'"
	fi
	SLAPD_LDAPI_URL=ldapi://$(_slapd_url_escape "$_sock")

	_try=0
	while :; do
		_try=$((_try + 1))
		SLAPD_PORT=$(random_port)
		SLAPD_LDAPS_PORT=$(random_port)
		[ "$SLAPD_PORT" = "$SLAPD_LDAPS_PORT" ] && continue
		SLAPD_URL=ldap://127.0.0.1:$SLAPD_PORT
		SLAPD_LDAPS_URL=ldaps://127.0.0.1:$SLAPD_LDAPS_PORT
		rm -f "$_sock"
		slapd -d stats -F "$SLAPD_DIR/slapd.d" \
			-h "$SLAPD_URL $SLAPD_LDAPS_URL $SLAPD_LDAPI_URL" \
			</dev/null >"$SLAPD_DIR/log" 2>&1 3>&- &
		SLAPD_PID=$!
		_lib_pids="$_lib_pids $SLAPD_PID"
		_i=0
		while [ $_i -lt 200 ]; do
			if ! _lib_pid_alive "$SLAPD_PID"; then
				break
			fi
			if ldapsearch -x -H "$SLAPD_LDAPI_URL" -s base -b "" \
				-o nettimeout=1 -l 2 namingContexts >/dev/null 2>&1 &&
			   ldapsearch -x -H "$SLAPD_URL" -s base -b "" \
				-o nettimeout=1 -l 2 namingContexts >/dev/null 2>&1; then
				break
			fi
			_i=$((_i + 1))
			sleep 0.02
		done
		if _lib_pid_alive "$SLAPD_PID" && [ $_i -lt 200 ]; then
			break
		fi
		stop_pid "$SLAPD_PID" KILL
		if grep -q 'bind(.*failed\|errno=98' "$SLAPD_DIR/log" && [ $_try -lt 5 ]; then
			continue        # port taken meanwhile: retry with others
		fi
		note_file "$SLAPD_DIR/log"
		_lib_fatal "slapd_start: slapd did not start ($SLAPD_URL)"
	done
	_t1=$(date +%s%N)
	SLAPD_START_MS=$(( (_t1 - _t0) / 1000000 ))
	export SLAPD_URL SLAPD_LDAPS_URL SLAPD_LDAPI_URL SLAPD_BASE SLAPD_ROOTDN \
		SLAPD_PWFILE SLAPD_CA SLAPD_PID SLAPD_DIR SLAPD_PORT SLAPD_LDAPS_PORT \
		SLAPD_START_MS
	return 0
}

slapd_add() {
	ldapadd -Q -Y EXTERNAL -H "$SLAPD_LDAPI_URL" -f "$1" >"$T/slapd_add.log" 2>&1 ||
		{ note_file "$T/slapd_add.log" 20; return 1; }
}

slapd_modify() {
	ldapmodify -Q -Y EXTERNAL -H "$SLAPD_LDAPI_URL" -f "$1" >"$T/slapd_modify.log" 2>&1 ||
		{ note_file "$T/slapd_modify.log" 20; return 1; }
}

slapd_search() {
	ldapsearch -Q -Y EXTERNAL -H "$SLAPD_LDAPI_URL" -LLL -o ldif-wrap=no "$@"
}

slapd_overlay() {
	_db=${2:-'{1}mdb'}
	case $1 in
	syncprov) _oc=olcSyncProvConfig ;;
	memberof) _oc=olcMemberOfConfig ;;
	*) echo "slapd_overlay: unsupported overlay $1" >&2; return 2 ;;
	esac
	printf 'dn: olcOverlay=%s,olcDatabase=%s,cn=config\nobjectClass: olcOverlayConfig\nobjectClass: %s\nolcOverlay: %s\n' \
		"$1" "$_db" "$_oc" "$1" >"$T/overlay-$1.ldif"
	slapd_add "$T/overlay-$1.ldif"
}

slapd_seed() {
	slapd_add "$TOP/tests/data/slapd-seed.ldif"
}

slapd_seed_big() {
	sh "$TOP/tests/data/gen-big-group.sh" slapd "${1:-5000}" >"$T/slapd-big.ldif" &&
	slapd_add "$T/slapd-big.ldif"
}

slapd_stop() {
	stop_pid "$SLAPD_PID" TERM 100
}

slapd_kill() {
	stop_pid "$SLAPD_PID" KILL
}
