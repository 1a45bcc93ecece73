#!/usr/bin/env python3
"""export-src.py FILE USERS GROUPS [VARIANT]

A source snapshot for the export tests (tests/0420, 0450, bench/faults.sh):
USERS users u1..uN and GROUPS groups; group g holds users g, g+GROUPS,
g+2*GROUPS...  Every fifth display name needs OData quoting; user 7's
anchor needs quoting and URL encoding in a $filter.

Variants:
  v2     renames user 1, drops user 2 from every group, adds user USERS+1
  gone   drops users 1..3
  bad    user 4's uid has a space (the service refuses its
         userPrincipalName, which sync-diff does not check)
  esc    like bad, and user 4's anchor holds ESC [31m and a newline (an
         anchor that would recolour a terminal and forge a line)
  churn  all at once, for the fault runs: renames user 5, drops user 6
         from every group, adds users USERS+1..USERS+3, drops users 1..4
         (so that a group loses two deleted members: the second removal
         depends on the first, which answers 404)
"""
import json, sys

path, nu, ng = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
var = sys.argv[4] if len(sys.argv) > 4 else ''
users = list(range(1, nu + 1))
if var == 'v2':
    users.append(nu + 1)
if var == 'gone':
    users = [u for u in users if u > 3]
if var == 'churn':
    users = [u for u in users if u > 4] + [nu + 1, nu + 2, nu + 3]
renamed = {'v2': 1, 'churn': 5}.get(var)
dropped = {'v2': 2, 'churn': 6}.get(var)
objs = []
for u in users:
    name = "O'Brien %d" % u if u % 5 == 0 else 'Zoë Müller %d' % u
    if u == renamed:
        name = 'Renamed One'
    # One anchor needs OData quoting and URL encoding in a $filter.
    anchor = "dXNlcg0007'Åsa+/=" if u == 7 else 'dXNlcg%04d==' % u
    if var == 'esc' and u == 4:
        anchor = 'dXNl\x1b[31m\nforged'
    objs.append({'anchor': anchor, 'type': 'user',
                 'dn': 'uid=u%d,ou=People,dc=example,dc=org' % u,
                 'id': 'u%d' % u,
                 'attrs': {'uid': ['u 4' if var in ('bad', 'esc') and u == 4 else
                                   'u%d' % u], 'displayName': [name]}})
for g in range(1, ng + 1):
    members = ['uid=u%d,ou=People,dc=example,dc=org' % u for u in users
               if (u - 1) % ng == g - 1 and u != dropped]
    objs.append({'anchor': 'Z3JvdXA%03d' % g, 'type': 'group',
                 'dn': 'cn=Team %d,ou=Groups,dc=example,dc=org' % g,
                 'id': 'g%d' % g,
                 'attrs': {'cn': ['Team %d' % g], 'member': sorted(members)}})
objs.sort(key=lambda o: o['anchor'].encode())
counts = {'user': 0, 'group': 0, 'contact': 0}
for o in objs:
    counts[o['type']] += 1
hdr = {'connector': 'src', 'connector_type': 'ldap', 'cookie': None,
       'counts': counts, 'format': 'sync-snapshot', 'kind': 'full',
       'source': 'ldapi:///', 'time': '2026-11-25T00:00:00Z', 'version': 1}
with open(path, 'w') as f:
    for o in [hdr] + objs:
        f.write(json.dumps(o, sort_keys=True, separators=(',', ':'),
                           ensure_ascii=False) + '\n')
