#!/usr/bin/env python3
# bench/writeback/gen.py N DIR: snapshots for the writeback diff of
# examples/ad-to-entra.yaml: DIR/ad.snap with N AD users (half with an
# mS-DS-ConsistencyGuid, the others to be written) and N/100 groups
# written back before (a tenth of them one member short), and
# DIR/entra.snap with the N users synced from AD, N/10 cloud-only users
# and N/100 cloud security groups of 100 members (one cloud-only each);
# a tenth of the groups are new.
import base64, json, os, sys

n, d = int(sys.argv[1]), sys.argv[2]
BASE = "DC=example,DC=com"


def line(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) + "\n"


def guid(i):
    return i.to_bytes(8, "big") + bytes.fromhex("5a5a5a5a5a5a5a5a")


def b64(b):
    return base64.b64encode(b).decode()


def gs(b):
    h = b.hex()
    le = lambda x: bytes.fromhex(x)[::-1].hex()
    return "%s-%s-%s-%s-%s" % (le(h[0:8]), le(h[8:12]), le(h[12:16]),
                               h[16:20], h[20:32])


def eid(kind, i):
    return "%08x-0000-4000-8000-%012x" % (kind, i)


def udn(i):
    return "CN=User %d,OU=Staff,%s" % (i, BASE)


ngroups = max(n // 100, 1)


def write(path, conn, ctype, src, objs):
    objs.sort(key=lambda o: o["anchor"].encode())
    counts = {"contact": 0, "group": 0, "user": 0}
    for o in objs:
        counts[o["type"]] += 1
    with open(path, "w") as f:
        f.write(line({"connector": conn, "connector_type": ctype,
                      "cookie": None, "counts": counts,
                      "format": "sync-snapshot", "kind": "full",
                      "source": src, "time": "2026-04-01T00:00:00Z",
                      "version": 1}))
        for o in objs:
            f.write(line(o))


ad = []
for i in range(n):
    g = guid(i)
    a = {"cn": ["User %d" % i], "displayName": ["User %d" % i],
         "objectGUID": [b64(g)], "sAMAccountName": ["u%d" % i],
         "userPrincipalName": ["u%d@example.com" % i],
         "userAccountControl": ["512"]}
    binary = ["objectGUID"]
    if i % 2:
        a["mS-DS-ConsistencyGuid"] = [b64(g)]
        binary.append("mS-DS-ConsistencyGuid")
    ad.append({"anchor": b64(g), "attrs": a, "binary": sorted(binary),
               "dn": udn(i), "id": gs(g), "type": "user"})
en = []
for i in range(n):
    en.append({"anchor": eid(1, i), "id": eid(1, i), "type": "user",
               "attrs": {"accountEnabled": ["true"],
                         "displayName": ["User %d" % i],
                         "onPremisesImmutableId": [b64(guid(i))],
                         "onPremisesSyncEnabled": ["true"],
                         "userPrincipalName": ["u%d@example.com" % i]}})
for i in range(n // 10):
    en.append({"anchor": eid(2, i), "id": eid(2, i), "type": "user",
               "attrs": {"accountEnabled": ["true"],
                         "displayName": ["Cloud %d" % i],
                         "userPrincipalName": ["c%d@example.onmicrosoft.com" % i]}})
for k in range(ngroups):
    gid = eid(3, k)
    members = [(k * 100 + j) % n for j in range(100)]
    en.append({"anchor": gid, "id": gid, "type": "group",
               "attrs": {"displayName": ["Group %d" % k],
                         "mailEnabled": ["false"],
                         "mailNickname": ["g%d" % k],
                         "members": sorted([eid(1, m) for m in members] +
                                           [eid(2, k % max(n // 10, 1))]),
                         "securityEnabled": ["true"]}})
    if k % 10 == 9:
        continue        # new: not written back yet
    have = members[:-1] if k % 10 == 0 else members
    cn = "Group %d_%s" % (k, gid[-12:])
    g = guid(n + k)
    ad.append({"anchor": b64(g), "binary": ["objectGUID"], "type": "group",
               "dn": "CN=%s,OU=Cloud Groups,%s" % (cn, BASE), "id": gs(g),
               "attrs": {"adminDescription": ["Group_" + gid],
                         "cn": [cn], "displayName": ["Group %d" % k],
                         "groupType": ["-2147483640"],
                         "member": sorted(udn(m) for m in set(have)),
                         "objectClass": ["group", "top"],
                         "objectGUID": [b64(g)],
                         "sAMAccountName": ["Group_" + gid.replace("-", "")]}})
os.makedirs(d, exist_ok=True)
write(os.path.join(d, "ad.snap"), "ad", "ad", "ldaps://dc.example.com", ad)
write(os.path.join(d, "entra.snap"), "entra", "graph",
      "https://graph.microsoft.com/v1.0", en)
