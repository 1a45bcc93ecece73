#!/usr/bin/env python3
"""snapcheck.py SNAPSHOT LDIF: compare a snapshot with ldapsearch's view.

LDIF is `ldapsearch -LLL -o ldif-wrap=no` output for the same entries and
attributes.  Every entry of the LDIF must be in the snapshot with exactly
the same attribute values (bytes; attribute names without regard to case),
and the snapshot must hold nothing else.  Binary values are compared as
the bytes they decode to.  Prints each difference; exits 1 if any.
"""
import base64, json, sys

def read_ldif(path):
    entries, cur = [], None
    with open(path, 'rb') as f:
        for raw in f:
            line = raw.rstrip(b'\n')
            if line.startswith(b'#'):
                continue
            if not line:
                if cur is not None:
                    entries.append(cur)
                cur = None
                continue
            name, _, rest = line.partition(b':')
            if rest.startswith(b':'):
                val = base64.b64decode(rest[1:].strip())
            else:
                val = rest[1:] if rest.startswith(b' ') else rest
            name = name.decode()
            if name == 'dn':
                cur = {'dn': val.decode(), 'attrs': {}}
                continue
            # ;range= and ;binary are transfer options; others (language
            # tags) are part of the attribute's name.
            base = ';'.join(o for o in name.split(';')
                            if o.lower() != 'binary' and
                            not o.lower().startswith('range='))
            cur['attrs'].setdefault(base.lower(), []).append(val)
    if cur is not None:
        entries.append(cur)
    return entries

def main():
    snap, ldif = sys.argv[1], sys.argv[2]
    with open(snap, 'rb') as f:
        lines = f.read().split(b'\n')
    assert lines[-1] == b'', 'snapshot does not end with a newline'
    objs = {}
    for line in lines[1:-1]:
        o = json.loads(line)
        binary = set(a.lower() for a in o.get('binary', []))
        attrs = {}
        for k, vs in o['attrs'].items():
            key = k.lower()
            attrs[key] = sorted(base64.b64decode(v) if key in binary
                                else v.encode() for v in vs)
        objs[o['dn'].lower()] = attrs
    bad = 0
    seen = set()
    for e in read_ldif(ldif):
        dn = e['dn'].lower()
        seen.add(dn)
        if dn not in objs:
            print('missing from snapshot: %s' % e['dn'])
            bad += 1
            continue
        want = {k: sorted(v) for k, v in e['attrs'].items()}
        if want != objs[dn]:
            for k in sorted(set(want) | set(objs[dn])):
                if want.get(k) != objs[dn].get(k):
                    print('%s: %s: ldapsearch %r, snapshot %r' % (
                        e['dn'], k, want.get(k, [])[:3],
                        objs[dn].get(k, [])[:3]))
            bad += 1
    for dn in sorted(set(objs) - seen):
        print('only in snapshot: %s' % dn)
        bad += 1
    sys.exit(1 if bad else 0)

main()
