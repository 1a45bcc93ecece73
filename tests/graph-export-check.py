#!/usr/bin/env python3
"""graph-export-check.py SOURCE-SNAPSHOT STATE-JSON ANCHOR-ATTR

The oracle of the export tests: the emulator's state (GET /_emulator/state)
must hold exactly the objects the source snapshot says, once each:
every source user as one Entra user whose onPremisesImmutableId is its
anchor, with the mapped properties; every source group as one group whose
ANCHOR-ATTR is its anchor, with exactly the members the source names (by
DN) that are in the snapshot; and nothing else of ours.  Objects without
an anchor (cloud-only) are listed so that tests can check them apart.
Prints one line per difference; exits 1 if there is any.
"""
import json, sys

snap, state, gattr = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(snap, 'rb').read().split(b'\n')[1:-1]
src = [json.loads(l) for l in lines]
st = json.load(open(state))
bad = []

users = {}
for u in st['users']:
    a = u.get('onPremisesImmutableId')
    if a:
        users.setdefault(a, []).append(u)
groups = {}
for g in st['groups']:
    a = g.get(gattr)
    if a:
        groups.setdefault(a, []).append(g)

dn2anchor = {o['dn']: o['anchor'] for o in src}
want_users = {o['anchor']: o for o in src if o['type'] == 'user'}
want_groups = {o['anchor']: o for o in src if o['type'] == 'group'}

for a, o in sorted(want_users.items()):
    got = users.get(a, [])
    if len(got) != 1:
        bad.append('user %s: %d objects' % (a, len(got)))
        continue
    u = got[0]
    for src_attr, tgt_attr in (('displayName', 'displayName'),
                               ('uid', 'mailNickname')):
        want = o['attrs'].get(src_attr, [None])[0]
        if u.get(tgt_attr) != want:
            bad.append('user %s: %s is %r, want %r' % (a, tgt_attr,
                                                      u.get(tgt_attr), want))
for a in sorted(set(users) - set(want_users)):
    bad.append('user %s: not in the source' % a)

id_of = {a: us[0]['id'] for a, us in users.items() if len(us) == 1}
for a, o in sorted(want_groups.items()):
    got = groups.get(a, [])
    if len(got) != 1:
        bad.append('group %s: %d objects' % (a, len(got)))
        continue
    g = got[0]
    want = sorted(id_of.get(dn2anchor.get(dn), 'missing:' + dn)
                  for dn in o['attrs'].get('member', []) if dn in dn2anchor)
    have = sorted(g.get('members', []))
    if want != have:
        bad.append('group %s: members %s, want %s' % (a, have, want))
    if g.get('displayName') != o['attrs']['cn'][0]:
        bad.append('group %s: displayName %r' % (a, g.get('displayName')))
for a in sorted(set(groups) - set(want_groups)):
    bad.append('group %s: not in the source' % a)

for line in bad:
    print(line)
sys.exit(1 if bad else 0)
