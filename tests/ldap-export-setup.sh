# tests/ldap-export-setup.sh - shared by the LDAP export tests and
# bench/ldap-*.sh (sourced after lib.sh): one slapd holding source
# subtrees and target subtrees of the same base, a configuration with
# flows from one to the other, and helpers.
#
#   lx_setup [WINDOW]      start slapd (with the accesslog overlay, log in
#                          cn=log, and refint on member, so that renames
#                          and moves follow as on AD), write
#                          $T/sync.yaml, promote (LX_NO_ACCESSLOG=1:
#                          no accesslog); SRC_BASE
#                          and DST_BASE (exported) pick the subtrees
#   lx_tree DN             create the subtree DN with ou=People, ou=Staff
#                          and ou=Groups under it
#   lx_ldif FILE           ldapmodify as the root DN (LDIF with changetype)
#   lx_users DN FROM TO [VARIANT]  LDIF on stdout: add users uFROM..uTO
#                          under ou=People,DN (VARIANT b: other values)
#   lx_cycle NAME          import both, diff: the plan in $T/NAME.plan
#   lx_dump FILE           the target subtree as sorted LDIF
#   lx_log FILE            the write operations logged under DST_BASE
#                          since the last lx_log_mark, one a line:
#                          "TYPE RESULT DN" (accesslog)
#   lx_log_mark            remember now for lx_log
#   lx_proxy ARGS...       start tests/ldap-proxy.py in front of slapd's
#                          ldap port (or of PROXY_UPSTREAM, HOST:PORT);
#                          PROXY_URL, PROXY_PID, PROXY_LOG
#
# Users: uid=U,ou=People,SRC -> uid=U,ou=People|Staff,DST (their
# departmentNumber picks the OU), the source anchor employeeNumber
# stamped in employeeNumber; groups: groupOfNames cn=G,ou=Groups,SRC ->
# cn=G,ou=Groups,DST, anchor businessCategory.

lx_tree() {
	cat >"$T/tree.ldif" <<EOF
dn: $1
changetype: add
objectClass: organizationalUnit
ou: $(printf '%s' "$1" | sed 's/^ou=\([^,]*\),.*/\1/')

dn: ou=People,$1
changetype: add
objectClass: organizationalUnit
ou: People

dn: ou=Staff,$1
changetype: add
objectClass: organizationalUnit
ou: Staff

dn: ou=Groups,$1
changetype: add
objectClass: organizationalUnit
ou: Groups
EOF
	slapd_modify "$T/tree.ldif" >/dev/null
}

lx_ldif() { slapd_modify "$1" >/dev/null; }

# lx_users DN FROM TO [VARIANT]
lx_users() {
	awk -v base="$1" -v from="$2" -v to="$3" -v var="${4:-a}" 'BEGIN {
		for (i = from; i <= to; i++) {
			u = sprintf("u%04d", i)
			printf "dn: uid=%s,ou=People,%s\nchangetype: add\n", u, base
			printf "objectClass: inetOrgPerson\ncn: User %d\nsn: %s\n", i, u
			printf "uid: %s\nemployeeNumber: %s\n", u, u
			printf "description: %s %d\nmail: %s@example.org\n\n", var, i, u
		}
	}'
}

lx_setup() {
	slapd_start || return 1
	mkdir -p "$SLAPD_DIR/alog"
	: >"$T/accesslog.ldif"
	[ -n "$LX_NO_ACCESSLOG" ] || cat >"$T/accesslog.ldif" <<EOF
dn: olcDatabase={2}mdb,cn=config
changetype: add
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {2}mdb
olcSuffix: cn=log
olcRootDN: $SLAPD_ROOTDN
olcDbDirectory: $SLAPD_DIR/alog
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcDbIndex: reqStart eq
olcLimits: {0}* size=unlimited time=unlimited
olcAccess: {0}to * by dn.exact="$SLAPD_ROOTDN" read by * none

dn: olcOverlay=accesslog,olcDatabase={1}mdb,cn=config
changetype: add
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: accesslog
olcAccessLogDB: cn=log
olcAccessLogOps: writes

EOF
	cat >>"$T/accesslog.ldif" <<EOF
dn: olcDatabase={1}mdb,cn=config
changetype: modify
add: olcDbIndex
olcDbIndex: employeeNumber,businessCategory eq

dn: cn=module{0},cn=config
changetype: modify
add: olcModuleLoad
olcModuleLoad: refint

dn: olcOverlay=refint,olcDatabase={1}mdb,cn=config
changetype: add
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: refint
olcRefintAttribute: member
EOF
	slapd_modify "$T/accesslog.ldif" >/dev/null || return 1
	cat >"$T/sync.yaml" <<EOF
state_dir: \${SYNC_STATE}
connectors:
  src:
    type: ldap
    url: "$SLAPD_LDAPI_URL"
    sasl_mech: EXTERNAL
    base_dn: \${SRC_BASE}
    anchor: [employeeNumber, businessCategory]
    objects:
      user: {}
      group: {}
  dst:
    type: ldap
    url: \${DST_URL}
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    allow_cleartext_bind: true
    base_dn: \${DST_BASE}
    write_window: \${WRITE_WINDOW}
    timeout: 20
    objects:
      user: {}
      group: {}
flows:
  - name: people
    from: src.user
    to: dst.user
    out_of_scope: delete
    anchor:
      target: employeeNumber
    dn: '"uid=" & [uid] & ",ou=" & IIF(IsPresent([departmentNumber]), [departmentNumber], "People") & ",\${DST_BASE}"'
    attributes:
      objectClass: '"inetOrgPerson"'
      cn: '[cn]'
      sn: '[sn]'
      uid: '[uid]'
      description: '[description]'
      mail: '[mail]'
      jpegPhoto: '[jpegPhoto]'
  - name: teams
    from: src.group
    to: dst.group
    out_of_scope: delete
    anchor:
      target: businessCategory
    dn: '"cn=" & [cn] & ",ou=Groups,\${DST_BASE}"'
    attributes:
      objectClass: '"groupOfNames"'
      cn: '[cn]'
      description: '[description]'
      member: { value: '[member]', reference: true }
policy:
  delete_threshold: \${DELETE_THRESHOLD}
role:
  server: \${SYNC_SERVER}
  duration: 300
  lease:
    file: lease
EOF
	DST_URL=${DST_URL:-$SLAPD_LDAPI_URL}
	SRC_BASE=${SRC_BASE:-ou=Src,$SLAPD_BASE}
	DST_BASE=${DST_BASE:-ou=Dst,$SLAPD_BASE}
	WRITE_WINDOW=${1:-16} DELETE_THRESHOLD=${DELETE_THRESHOLD:-500}
	SYNC_SERVER=alpha SYNC_STATE=$T/state
	export DST_URL SRC_BASE DST_BASE WRITE_WINDOW DELETE_THRESHOLD \
		SYNC_SERVER SYNC_STATE
	sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1
}

lx_cycle() {
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.src" src 2>"$T/$1.err1" &&
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.dst" dst 2>"$T/$1.err2" ||
		return 2
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/$1.src" \
		"$T/$1.dst" 2>"$T/$1.err3"
	_rc=$?
	[ $_rc -le 1 ] && return 0
	return $_rc
}

# lx_dump FILE: the target subtree as LDIF, entries and values sorted
lx_dump() {
	slapd_search -b "$DST_BASE" '(objectClass=*)' '*' >"$1.raw" || return 1
	python3 - "$1.raw" >"$1" <<'PY'
import sys
ents, cur = [], []
for line in open(sys.argv[1], encoding='utf-8', errors='surrogateescape'):
    line = line.rstrip('\n')
    if not line:
        if cur: ents.append(cur)
        cur = []
        continue
    cur.append(line)
if cur: ents.append(cur)
out = []
for e in ents:
    out.append('\n'.join([e[0].lower()] + sorted(e[1:])))
print('\n\n'.join(sorted(out)))
PY
}

# Every write before the call is logged before the mark.
lx_log_mark() {
	sleep 1
	LX_MARK=$(date -u +%Y%m%d%H%M%S).000000Z
}

# lx_log FILE: "TYPE RESULT DN" per logged write under DST_BASE
lx_log() {
	slapd_search -b cn=log "(&(objectClass=auditWriteObject)(reqStart>=${LX_MARK:-0}))" \
		reqType reqResult reqDN >"$1.raw" || return 1
	python3 - "$1.raw" "$DST_BASE" >"$1" <<'PY'
import base64, sys
recs, cur = [], {}
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if not line:
        if cur: recs.append(cur)
        cur = {}
        continue
    k, sep, v = line.partition(': ')
    if k.endswith(':'):
        k, v = k[:-1], base64.b64decode(line.partition(':: ')[2]).decode()
    cur[k] = v
if cur: recs.append(cur)
base = sys.argv[2].lower()
for r in recs:
    dn = r.get('reqDN', '')
    if dn.lower().endswith(base) and dn.lower() != base:
        print(r.get('reqType'), r.get('reqResult'), dn)
PY
}

lx_proxy() {
	PROXY_LOG=$T/proxy.$(date +%s%N).log
	rm -f "$T/proxy.port"
	python3 "$TOP/tests/ldap-proxy.py" --upstream "${PROXY_UPSTREAM:-127.0.0.1:$SLAPD_PORT}" \
		--port-file "$T/proxy.port" --log "$PROXY_LOG" "$@" \
		>"$T/proxy.out" 2>&1 3>&- &
	PROXY_PID=$!
	_lib_pids="$_lib_pids $PROXY_PID"
	_i=0
	while [ ! -s "$T/proxy.port" ]; do
		_i=$((_i + 1))
		[ $_i -gt 200 ] && return 1
		sleep 0.05
	done
	PROXY_URL=ldap://127.0.0.1:$(cat "$T/proxy.port")
	: >>"$PROXY_LOG"
}

lx_proxy_stop() {
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
}
