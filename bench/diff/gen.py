#!/usr/bin/env python3
"""gen.py N DIR: writes a synthetic AD source snapshot and an Entra ID
target snapshot of N objects (users, and one group of 100 members per
1,000 users) where 1% differs: 0.4% to add, 0.3% to update, 0.3% to
delete.  Also writes the same data as LDIF sorted by the key attribute
(src.ldif, tgt.ldif) for ldifdiff.pl.  Deterministic (fixed seed)."""
import base64, json, os, random, sys, uuid

n = int(sys.argv[1])
out = sys.argv[2]
ldif = len(sys.argv) > 3 and sys.argv[3] == 'ldif'
rnd = random.Random(42)
first = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Ken', 'Dennis', 'Frances', 'John']
last = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Thompson', 'Ritchie', 'Allen', 'Backus']
dump = lambda o: json.dumps(o, sort_keys=True, separators=(',', ':'), ensure_ascii=False)

ngroups = max(1, n // 1000)
nusers = n - ngroups
users = []
for i in range(nusers):
    g = uuid.UUID(int=rnd.getrandbits(128))
    gn, sn = rnd.choice(first), rnd.choice(last)
    sam = 'u%07d' % i
    users.append({
        'guid': g.bytes_le, 'anchor': base64.b64encode(g.bytes_le).decode(),
        'dn': 'CN=%s %s %d,OU=Staff,DC=example,DC=com' % (gn, sn, i),
        'givenName': gn, 'sn': sn, 'displayName': '%s %s' % (gn, sn),
        'sam': sam, 'upn': sam + '@example.com', 'mail': sam + '@example.com',
        'proxy': ['SMTP:%s@example.com' % sam, 'smtp:%s@example.net' % sam],
        'uac': rnd.choice(['512', '512', '512', '514']),
        'tid': str(uuid.UUID(int=rnd.getrandbits(128))),
    })
groups = []
for i in range(ngroups):
    g = uuid.UUID(int=rnd.getrandbits(128))
    members = sorted(rnd.sample(range(nusers), min(100, nusers)))
    groups.append({'guid': g.bytes_le, 'anchor': base64.b64encode(g.bytes_le).decode(),
                   'dn': 'CN=Team %d,OU=Groups,DC=example,DC=com' % i, 'name': 'team%d' % i,
                   'members': members, 'tid': str(uuid.UUID(int=rnd.getrandbits(128)))})

# 1% differs: adds are in the source only, deletes in the target only,
# updates have another displayName in the target.
idx = list(range(nusers))
rnd.shuffle(idx)
k = max(1, n // 1000)
adds = set(idx[:4 * k])
upds = set(idx[4 * k:7 * k])
dels = set(idx[7 * k:10 * k])

def src_user(u):
    return {'anchor': u['anchor'], 'attrs': {
        'displayName': [u['displayName']], 'givenName': [u['givenName']], 'sn': [u['sn']],
        'mail': [u['mail']], 'proxyAddresses': u['proxy'], 'userPrincipalName': [u['upn']],
        'sAMAccountName': [u['sam']], 'mailNickname': [u['sam']], 'userAccountControl': [u['uac']],
        'objectGUID': [base64.b64encode(u['guid']).decode()]},
        'binary': ['objectGUID'], 'dn': u['dn'], 'id': u['dn'], 'type': 'user'}

def tgt_user(u, i):
    return {'anchor': u['tid'], 'attrs': {
        'accountEnabled': ['false' if u['uac'] == '514' else 'true'],
        'displayName': [u['displayName'] + (' (old)' if i in upds else '')],
        'givenName': [u['givenName']], 'surname': [u['sn']], 'mail': [u['mail']],
        'mailNickname': [u['sam']], 'onPremisesImmutableId': [u['anchor']],
        'proxyAddresses': u['proxy'], 'userPrincipalName': [u['upn']]},
        'id': u['tid'], 'type': 'user'}

def hdr(conn, ctype, time, nu, ng):
    return dump({'connector': conn, 'connector_type': ctype, 'cookie': None,
                 'counts': {'contact': 0, 'group': ng, 'user': nu}, 'format': 'sync-snapshot',
                 'kind': 'full', 'source': 'bench', 'time': time, 'version': 1})

src = [(u['anchor'], dump(src_user(u))) for i, u in enumerate(users) if i not in dels]
src += [(g['anchor'], dump({'anchor': g['anchor'], 'attrs': {
    'displayName': [g['name']], 'sAMAccountName': [g['name']],
    'member': [users[m]['dn'] for m in g['members']],
    'objectGUID': [base64.b64encode(g['guid']).decode()]}, 'binary': ['objectGUID'],
    'dn': g['dn'], 'id': g['dn'], 'type': 'group'})) for g in groups]
src.sort(key=lambda x: x[0].encode())
tgt = [(u['tid'], dump(tgt_user(u, i))) for i, u in enumerate(users) if i not in adds]
tgt += [(g['tid'], dump({'anchor': g['tid'], 'attrs': {
    'displayName': [g['name']], 'mailNickname': [g['name']], 'extension_sync_anchor': [g['anchor']],
    'members': sorted(users[m]['tid'] for m in g['members'] if m not in adds)},
    'id': g['tid'], 'type': 'group'})) for g in groups]
tgt.sort(key=lambda x: x[0].encode())
with open(os.path.join(out, 'src.snap'), 'w') as f:
    f.write(hdr('ad', 'ad', '2026-01-01T00:00:00Z', nusers - len(dels), ngroups) + '\n')
    for _, l in src:
        f.write(l + '\n')
with open(os.path.join(out, 'tgt.snap'), 'w') as f:
    f.write(hdr('entra', 'graph', '2026-01-01T00:01:00Z', nusers - len(adds), ngroups) + '\n')
    for _, l in tgt:
        f.write(l + '\n')

if ldif:
    # The same comparison for ldifdiff.pl: entries keyed and sorted by the
    # immutable id, carrying the target's attribute names.
    def entry(u, i, target):
        a = [('dn', 'uid=%s,ou=people,dc=example,dc=com' % u['sam']), ('objectClass', 'inetOrgPerson'),
             ('employeeNumber', u['anchor']), ('uid', u['sam']),
             ('cn', u['displayName'] + (' (old)' if target and i in upds else '')),
             ('givenName', u['givenName']), ('sn', u['sn']), ('mail', u['mail'])]
        a += [('description', p) for p in u['proxy']]
        a += [('title', 'false' if u['uac'] == '514' else 'true'), ('displayName', u['sam'])]
        return ''.join('%s: %s\n' % kv for kv in a) + '\n'
    for name, skip in (('src.ldif', dels), ('tgt.ldif', adds)):
        ents = sorted(((u['anchor'], entry(u, i, name == 'tgt.ldif')) for i, u in enumerate(users)
                       if i not in skip), key=lambda x: x[0])
        with open(os.path.join(out, name), 'w') as f:
            for _, e in ents:
                f.write(e)
