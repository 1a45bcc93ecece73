#!/bin/sh
# make demo: the sync cycle on a built-in example.  Starts a throw-away
# OpenLDAP directory seeded with examples/demo-directory.ldif, then runs
# the steps of a cycle and shows what each produced.  Everything runs in
# a scratch directory that is removed at the end (KEEP_TMP=1 keeps it).
. "$(dirname "$0")/../tests/lib.sh"
lib_quiet
exec 1>&3

say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Starting a throw-away OpenLDAP directory with sample people and groups"
slapd_start
slapd_add "$TOP/examples/demo-directory.ldif" || { echo "demo: cannot seed slapd" >&2; exit 2; }
DEMO_DIR=$T DEMO_LDAP_URL=$SLAPD_LDAPS_URL DEMO_CA=$SLAPD_CA
export DEMO_DIR DEMO_LDAP_URL DEMO_CA
cp "$SLAPD_PWFILE" "$T/ldap.pw"
echo "directory: $SLAPD_LDAPS_URL (TLS, certificate checked against a test CA)"
cd "$T" || exit 2
cp "$TOP/examples/demo.yaml" sync.yaml

say "Import: sync-import reads the directory into a snapshot"
run sync-import -c sync.yaml -o corp.snap corp || exit 2
echo
echo "The snapshot: a header, then one object per line, sorted by anchor (entryUUID):"
head -c 600 corp.snap; echo " ..."
echo
python3 - corp.snap <<'PY'
import json, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[1:-1]
print('%-7s %-22s %s' % ('type', 'name', 'attributes'))
for o in sorted((json.loads(l) for l in lines), key=lambda o: (o['type'], o['dn'])):
    a = o['attrs']
    print('%-7s %-22s %s' % (o['type'], a.get('displayName', a['cn'])[0],
          ', '.join('%s=%d' % (k, len(v)) if len(v) > 1 else k for k, v in sorted(a.items())
                    if k not in ('objectClass', 'entryUUID'))))
PY
echo
echo "(ou=Leavers is excluded by the config, so Olga is not in the snapshot.)"
say "Done; scratch directory $T is removed (KEEP_TMP=1 keeps it)"
