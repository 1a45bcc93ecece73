#!/usr/bin/env python3
"""scim-export-check.py SRC STATE [LOG]

Compares the SCIM test server's state (GET /_scim/state, in STATE) with
the source snapshot SRC that tests/data/scim-export-flows.yaml maps to
it, and prints each difference: every source user and group held exactly
once (by externalId) with the flows' values, no other object with an externalId, group members as the source says and none twice.
With LOG (GET /_scim/log), also that no object was created twice: at most
one POST per externalId ran (answered or not).  Exit 1 on a difference.
"""
import json, sys
from collections import Counter

src = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()[1:]]
st = json.load(open(sys.argv[2]))
ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
bad = []

# Objects without externalId are not the sync's (cloud-only): left out.
users = Counter(u['externalId'] for u in st['users'] if u.get('externalId'))
groups = Counter(g['externalId'] for g in st['groups']
                 if g.get('externalId'))
for k, n in list(users.items()) + list(groups.items()):
    if n > 1:
        bad.append('%r is held %d times' % (k, n))
byanchor = {u.get('externalId'): u for u in st['users']}
gbyanchor = {g.get('externalId'): g for g in st['groups']}
dn2anchor = {o['dn']: o['anchor'] for o in src}
want_users = {o['anchor'] for o in src if o['type'] == 'user'}
want_groups = {o['anchor'] for o in src if o['type'] == 'group'}
for a in users:
    if a not in want_users:
        bad.append('user %r is not in the source' % a)
for a in groups:
    if a not in want_groups:
        bad.append('group %r is not in the source' % a)
for o in src:
    if o['type'] == 'user':
        u = byanchor.get(o['anchor'])
        if u is None:
            bad.append('user %r is missing' % o['anchor'])
            continue
        uid = o['attrs']['uid'][0]
        name = o['attrs']['displayName'][0]
        want = {'userName': uid + '@example.org', 'displayName': name,
                'active': True, 'familyName': name,
                'email': [uid + '@mail.example.org'],
                'department': 'Dept ' + uid}
        have = {'userName': u.get('userName'),
                'displayName': u.get('displayName'),
                'active': u.get('active'),
                'familyName': (u.get('name') or {}).get('familyName'),
                'email': [e.get('value') for e in u.get('emails', [])
                          if e.get('type') == 'work'],
                'department': (u.get(ENT) or {}).get('department')}
        for k in want:
            if want[k] != have[k]:
                bad.append('user %r: %s is %r, not %r' %
                           (o['anchor'], k, have[k], want[k]))
    elif o['type'] == 'group':
        g = gbyanchor.get(o['anchor'])
        if g is None:
            bad.append('group %r is missing' % o['anchor'])
            continue
        if g.get('displayName') != o['attrs']['cn'][0]:
            bad.append('group %r: displayName is %r' %
                       (o['anchor'], g.get('displayName')))
        vals = [m.get('value') for m in g.get('members', [])]
        for v, n in Counter(vals).items():
            if n > 1:
                bad.append('group %r holds member %s %d times' %
                           (o['anchor'], v, n))
        want = set()
        for dn in o['attrs'].get('member', []):
            u = byanchor.get(dn2anchor.get(dn))
            want.add(u['id'] if u else 'missing:' + dn)
        if set(vals) != want:
            bad.append('group %r: members %d, want %d (%d missing, %d extra)'
                       % (o['anchor'], len(set(vals)), len(want),
                          len(want - set(vals)), len(set(vals) - want)))
if len(sys.argv) > 3:
    posts = Counter()
    for r in json.load(open(sys.argv[3])):
        if r.get('control') or r['method'] != 'POST':
            continue
        ran = r.get('applied_status') or r.get('status')
        if ran in (200, 201) and isinstance(r.get('body'), dict):
            posts[(r['path'], r['body'].get('externalId'))] += 1
    for (p, a), n in posts.items():
        if n > 1:
            bad.append('POST %s of %r ran %d times' % (p, a, n))
for b in bad[:40]:
    print(b)
if len(bad) > 40:
    print('... and %d more' % (len(bad) - 40))
sys.exit(1 if bad else 0)
