# tests/ldap-export-setup.sh - shared by the LDAP export tests (sourced
# after lib.sh): one slapd holding a source subtree (ou=Src) and a target
# subtree (ou=Dst) of the same base, a configuration with flows from one
# to the other, and helpers.
#
#   lx_setup [WINDOW]      start slapd, write $T/sync.yaml, promote
#   lx_src FILE            ldapmodify the source (LDIF with changetype)
#   lx_dst FILE            ldapmodify the target
#   lx_cycle NAME          import both, diff: the plan in $T/NAME.plan
#                          (sync-diff's exit status: 0 or 1 is fine)
#   lx_dump FILE           the target as sorted LDIF (no operational attributes)
#   lx_check               sync-diff of a fresh cycle says no change
#
# Users: uid=...,ou=People,ou=Src -> uid=...,ou=People|Staff,ou=Dst
# (departmentNumber picks the OU), anchor in employeeNumber; groups:
# groupOfNames cn=...,ou=Groups,ou=Src -> cn=...,ou=Groups,ou=Dst, anchor
# in businessCategory.

lx_setup() {
	slapd_start || return 1
	cat >"$T/base.ldif" <<EOF
dn: ou=Src,$SLAPD_BASE
objectClass: organizationalUnit
ou: Src

dn: ou=People,ou=Src,$SLAPD_BASE
objectClass: organizationalUnit
ou: People

dn: ou=Groups,ou=Src,$SLAPD_BASE
objectClass: organizationalUnit
ou: Groups

dn: ou=Dst,$SLAPD_BASE
objectClass: organizationalUnit
ou: Dst

dn: ou=People,ou=Dst,$SLAPD_BASE
objectClass: organizationalUnit
ou: People

dn: ou=Staff,ou=Dst,$SLAPD_BASE
objectClass: organizationalUnit
ou: Staff

dn: ou=Groups,ou=Dst,$SLAPD_BASE
objectClass: organizationalUnit
ou: Groups
EOF
	slapd_add "$T/base.ldif" >/dev/null || return 1
	cat >"$T/index.ldif" <<EOF
dn: olcDatabase={1}mdb,cn=config
changetype: modify
add: olcDbIndex
olcDbIndex: employeeNumber,businessCategory eq
EOF
	slapd_modify "$T/index.ldif" >/dev/null || return 1
	cat >"$T/sync.yaml" <<EOF
state_dir: \${SYNC_STATE}
connectors:
  src:
    type: ldap
    url: "$SLAPD_LDAPI_URL"
    sasl_mech: EXTERNAL
    base_dn: ou=Src,$SLAPD_BASE
    objects:
      user: {}
      group: {}
  dst:
    type: ldap
    url: \${DST_URL}
    sasl_mech: EXTERNAL
    base_dn: ou=Dst,$SLAPD_BASE
    write_window: \${WRITE_WINDOW}
    timeout: 10
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
    dn: '"uid=" & [uid] & ",ou=" & IIF(IsPresent([departmentNumber]), [departmentNumber], "People") & ",ou=Dst,$SLAPD_BASE"'
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
    dn: '"cn=" & [cn] & ",ou=Groups,ou=Dst,$SLAPD_BASE"'
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
	WRITE_WINDOW=${1:-16} DELETE_THRESHOLD=${DELETE_THRESHOLD:-500}
	SYNC_SERVER=alpha SYNC_STATE=$T/state
	export DST_URL WRITE_WINDOW DELETE_THRESHOLD SYNC_SERVER SYNC_STATE
	sync-role -c "$T/sync.yaml" promote >/dev/null 2>&1
}

lx_src() { slapd_modify "$1" >/dev/null; }
lx_dst() { slapd_modify "$1" >/dev/null; }

lx_cycle() {
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.src" src &&
	sync-import -q -c "$T/sync.yaml" -o "$T/$1.dst" dst || return 2
	sync-diff -c "$T/sync.yaml" -o "$T/$1.plan" "$T/$1.src" "$T/$1.dst"
	_rc=$?
	[ $_rc -le 1 ] && return 0
	return $_rc
}

# lx_dump FILE: the target subtree as LDIF, entries and values sorted
lx_dump() {
	slapd_search -b "ou=Dst,$SLAPD_BASE" '(objectClass=*)' '*' >"$1.raw" || return 1
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
