#!/usr/bin/python3
"""Generate tests/data/slapd-seed.ldif and tests/data/samba-seed.ldif.

Run from anywhere:  /usr/bin/python3 tests/data/gen-seed.py
The outputs are committed; re-run only when changing the seed.  Both files
describe the same people, contacts and groups; see the headers of the
generated files for the resulting DNs and counts.
"""
import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# A tiny real JPEG (1x1 grey pixel, baseline): has NULs and bytes >= 0x80.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD/"
    "yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k=")

SEED_PASSWORD = "Seed-Passw0rd!"   # Samba seed users' password (AD complexity)

# key, cn (RDN value), givenName, sn, extra dict
PEOPLE = [
    ("alice", "Alice Smith", "Alice", "Smith",
     dict(mail=["alice@example.org", "alice.smith@example.org", "a.smith@example.org"],
          phone=["+1 555 0100", "+1 555 0101"], title="Engineer", emp="1001",
          photo=True)),
    ("jsmith", "Smith, John", "John", "Smith",
     dict(mail=["john.smith@example.org"], phone=["+1 555 0102"], title="Manager", emp="1002")),
    ("qname", '"Quoted" Name', "Quoted", "Name",
     dict(mail=["quoted@example.org"], emp="1003")),
    ("bslash", "Back\\slash User", "Back", "Slash",
     dict(mail=["backslash@example.org"], emp="1004")),
    ("spaces", " Leading and Trailing ", "Leading", "Trailing",
     dict(mail=["spaces@example.org"], emp="1005")),
    ("cpp", "C++ Developer", "Cee", "Plusplus",
     dict(mail=["cpp@example.org", "c.plusplus@example.org"], phone=["+1 555 0106", "+1 555 0107", "+1 555 0108"],
          emp="1006")),
    ("emilie", "Émilie Straße-Ωmega", "Émilie", "Straße",
     dict(mail=["emilie@example.org"], title="Ingénieure", emp="1007")),
    ("hash", "#hash; <angle> user", "Hash", "Angle",
     dict(mail=["hash@example.org"], emp="1008")),
    ("dave", "Dave Disabled", "Dave", "Disabled",
     dict(mail=["dave@example.org"], emp="1009", disabled=True)),
]

CONTACTS = [
    ("carl", "Carl Contact", "Carl", "Contact", dict(mail=["carl@partner.example"], phone=["+44 20 7946 0000"])),
    ("eva", "Extern, Eva", "Eva", "Extern", dict(mail=["eva@partner.example", "eva.extern@partner.example"])),
]

EXCLUDED = [
    ("eve", "Eve Excluded", "Eve", "Excluded", dict(mail=["eve@example.org"], emp="9001")),
    ("xavier", "Xavier Excluded", "Xavier", "Excluded", dict(mail=["xavier@example.org"], emp="9002")),
]

# name, sAMAccountName, members (keys; "g:" = group, "c:" = contact, "x:" = excluded)
GROUPS = [
    ("Staff", "staff", ["alice", "jsmith", "qname", "bslash", "spaces", "cpp", "emilie", "hash"]),
    ("R&D, Europe", "rnd-europe", ["emilie", "cpp"]),
    ("All People", "all-people", ["g:Staff", "g:R&D, Europe", "dave", "c:carl"]),
    ("Mixed Scope", "mixed-scope", ["alice", "x:eve"]),
]


def esc_rdn(v):
    """RFC 4514 escaping of an attribute value in a DN."""
    out = []
    for i, ch in enumerate(v):
        if ch in ',+"\\<>;':
            out.append("\\" + ch)
        elif ch == "#" and i == 0:
            out.append("\\#")
        elif ch == " " and (i == 0 or i == len(v) - 1):
            out.append("\\ ")
        else:
            out.append(ch)
    return "".join(out)


def safe(v):
    if isinstance(v, bytes):
        return False
    if v == "" or v[0] in " :<" or v[-1] == " ":
        return False
    return all(0x20 <= ord(c) < 0x7f for c in v)


def line(attr, v):
    if safe(v):
        return "%s: %s" % (attr, v)
    b = v if isinstance(v, bytes) else v.encode("utf-8")
    return "%s:: %s" % (attr, base64.b64encode(b).decode())


def entry(dn, attrs):
    out = [line("dn", dn)]
    for a, vals in attrs:
        if not isinstance(vals, list):
            vals = [vals]
        for v in vals:
            out.append(line(a, v))
    return "\n".join(out) + "\n\n"


def gen_slapd():
    base = "dc=example,dc=org"
    ous = ["People", "Groups", "Contacts", "Excluded"]
    dns = {}
    body = []
    for ou in ous:
        body.append(entry("ou=%s,%s" % (ou, base), [("objectClass", "organizationalUnit"), ("ou", ou)]))

    def person(key, cn, gn, sn, x, ou, with_uid=True):
        if key == "alice":
            dn = "uid=alice,ou=%s,%s" % (ou, base)
        else:
            dn = "cn=%s,ou=%s,%s" % (esc_rdn(cn), ou, base)
        a = [("objectClass", ["inetOrgPerson"]), ("cn", cn), ("sn", sn), ("givenName", gn),
             ("displayName", "%s %s" % (gn, sn))]
        if with_uid:
            a.append(("uid", key))
        if x.get("mail"):
            a.append(("mail", x["mail"]))
        if x.get("phone"):
            a.append(("telephoneNumber", x["phone"]))
        if x.get("title"):
            a.append(("title", x["title"]))
        if x.get("emp"):
            a.append(("employeeNumber", x["emp"]))
        if x.get("disabled"):
            a.append(("description", "disabled account"))
        if x.get("photo"):
            a.append(("jpegPhoto", JPEG))
        return dn, a

    for key, cn, gn, sn, x in PEOPLE:
        dn, a = person(key, cn, gn, sn, x, "People")
        dns[key] = dn
        body.append(entry(dn, a))
    # a multi-valued RDN (cn+uid); only OpenLDAP has those
    dn = "cn=Ann Lee+uid=ann,ou=People,%s" % base
    dns["ann"] = dn
    body.append(entry(dn, [("objectClass", "inetOrgPerson"), ("cn", "Ann Lee"), ("uid", "ann"),
                           ("sn", "Lee"), ("givenName", "Ann"), ("mail", "ann@example.org")]))
    # a posixAccount (nis schema)
    dn = "uid=pat,ou=People,%s" % base
    dns["pat"] = dn
    body.append(entry(dn, [("objectClass", ["inetOrgPerson", "posixAccount"]), ("cn", "Pat Posix"),
                           ("uid", "pat"), ("sn", "Posix"), ("uidNumber", "10001"), ("gidNumber", "10001"),
                           ("homeDirectory", "/home/pat"), ("loginShell", "/bin/sh"),
                           ("mail", "pat@example.org")]))
    for key, cn, gn, sn, x in CONTACTS:
        dn, a = person(key, cn, gn, sn, x, "Contacts", with_uid=False)
        dns["c:" + key] = dn
        body.append(entry(dn, a))
    for key, cn, gn, sn, x in EXCLUDED:
        dn, a = person(key, cn, gn, sn, x, "Excluded")
        dns["x:" + key] = dn
        body.append(entry(dn, a))
    for name, sam, members in GROUPS:
        dn = "cn=%s,ou=Groups,%s" % (esc_rdn(name), base)
        dns["g:" + name] = dn
        body.append(entry(dn, [("objectClass", "groupOfNames"), ("cn", name),
                               ("description", "seed group " + sam),
                               ("member", [dns[m] for m in members])]))
    npeople = len(PEOPLE) + 2
    head = """# OpenLDAP seed for the tests: generated by tests/data/gen-seed.py, do not edit.
# Loaded by slapd_seed (tests/slapd.sh) under the base entry dc=example,dc=org.
#
# ou=People,dc=example,dc=org    %d inetOrgPerson users (one also posixAccount)
# ou=Contacts,dc=example,dc=org  %d inetOrgPerson contacts (no uid)
# ou=Excluded,dc=example,dc=org  %d inetOrgPerson users (to be scoped out)
# ou=Groups,dc=example,dc=org    %d groupOfNames (nested, one references ou=Excluded)
# total entries in this file: %d (4 OUs)
#
# Tricky DNs (RFC 4514 escaped as written here; values are base64 in LDIF
# where needed):
""" % (npeople, len(CONTACTS), len(EXCLUDED), len(GROUPS),
       4 + npeople + len(CONTACTS) + len(EXCLUDED) + len(GROUPS))
    for k in ["alice", "jsmith", "qname", "bslash", "spaces", "cpp", "emilie", "hash", "dave", "ann", "pat",
              "c:carl", "c:eva", "x:eve", "x:xavier"] + ["g:" + g[0] for g in GROUPS]:
        head += "#   %-10s %s\n" % (k, dns[k])
    head += """#
# Multi-valued: alice has 3 mail, 2 telephoneNumber; cpp 2 mail, 3 telephoneNumber.
# Binary: alice jpegPhoto (%d-byte JPEG with NULs and bytes >= 0x80).
# Groups: Staff (8 users), R&D, Europe (2), All People (2 groups + dave +
# contact carl), Mixed Scope (alice + excluded eve).
# The 5,000-member group is separate: tests/data/gen-big-group.sh.

""" % len(JPEG)
    return head + "".join(body)


def gen_samba():
    base = "DC=samdom,DC=test"
    dns = {}
    body = []
    for ou in ["People", "Groups", "Contacts", "Excluded"]:
        body.append(entry("OU=%s,%s" % (ou, base), [("objectClass", "organizationalUnit"), ("ou", ou)]))
    pw = ('"%s"' % SEED_PASSWORD).encode("utf-16-le")

    def user(key, cn, gn, sn, x, ou):
        dn = "CN=%s,OU=%s,%s" % (esc_rdn(cn), ou, base)
        mails = x.get("mail", [])
        dom = [m.replace("example.org", "samdom.test") for m in mails]
        a = [("objectClass", "user"), ("sAMAccountName", key),
             ("userPrincipalName", "%s@samdom.test" % key), ("givenName", gn), ("sn", sn),
             ("displayName", "%s %s" % (gn, sn))]
        if dom:
            a.append(("mail", dom[0]))
            a.append(("proxyAddresses", ["SMTP:" + dom[0]] + ["smtp:" + m for m in dom[1:]]))
            if len(dom) > 1:
                a.append(("otherMailbox", dom[1:]))
        ph = x.get("phone", [])
        if ph:
            a.append(("telephoneNumber", ph[0]))
            if len(ph) > 1:
                a.append(("otherTelephone", ph[1:]))
        if x.get("title"):
            a.append(("title", x["title"]))
        if x.get("emp"):
            a.append(("employeeID", x["emp"]))
        if x.get("photo"):
            a.append(("jpegPhoto", JPEG))
            a.append(("thumbnailPhoto", JPEG))
        a.append(("unicodePwd", pw))
        a.append(("userAccountControl", "514" if x.get("disabled") else "512"))
        return dn, a

    for key, cn, gn, sn, x in PEOPLE:
        dn, a = user(key, cn, gn, sn, x, "People")
        dns[key] = dn
        body.append(entry(dn, a))
    for key, cn, gn, sn, x in CONTACTS:
        dn = "CN=%s,OU=Contacts,%s" % (esc_rdn(cn), base)
        dns["c:" + key] = dn
        a = [("objectClass", "contact"), ("givenName", gn), ("sn", sn),
             ("displayName", "%s %s" % (gn, sn)), ("mail", x["mail"][0]),
             ("proxyAddresses", ["SMTP:" + x["mail"][0]] + ["smtp:" + m for m in x["mail"][1:]])]
        if len(x["mail"]) > 1:
            a.append(("otherMailbox", x["mail"][1:]))
        if x.get("phone"):
            a.append(("telephoneNumber", x["phone"][0]))
        body.append(entry(dn, a))
    for key, cn, gn, sn, x in EXCLUDED:
        dn, a = user(key, cn, gn, sn, x, "Excluded")
        dns["x:" + key] = dn
        body.append(entry(dn, a))
    for name, sam, members in GROUPS:
        dn = "CN=%s,OU=Groups,%s" % (esc_rdn(name), base)
        dns["g:" + name] = dn
        body.append(entry(dn, [("objectClass", "group"), ("sAMAccountName", sam),
                               ("description", "seed group " + sam),
                               ("member", [dns[m] for m in members])]))
    n = 4 + len(PEOPLE) + len(CONTACTS) + len(EXCLUDED) + len(GROUPS)
    head = """# Samba AD seed for the tests: generated by tests/data/gen-seed.py, do not edit.
# Loaded by samba_seed (tests/samba.sh) over LDAPS as Administrator.
#
# OU=People,DC=samdom,DC=test    %d users (userAccountControl 512; dave 514 = disabled)
# OU=Contacts,DC=samdom,DC=test  %d contacts (objectClass contact)
# OU=Excluded,DC=samdom,DC=test  %d users (to be scoped out)
# OU=Groups,DC=samdom,DC=test    %d groups (nested, one references OU=Excluded and a contact)
# total entries in this file: %d (4 OUs)
# All seed users' password: %s ; sAMAccountName = the key below,
# userPrincipalName = key@samdom.test.
#
""" % (len(PEOPLE), len(CONTACTS), len(EXCLUDED), len(GROUPS), n, SEED_PASSWORD)
    for k in [p[0] for p in PEOPLE] + ["c:carl", "c:eva", "x:eve", "x:xavier"] + ["g:" + g[0] for g in GROUPS]:
        head += "#   %-10s %s\n" % (k, dns[k])
    head += """#
# Multi-valued: alice proxyAddresses (3), otherMailbox (2), otherTelephone (1);
# cpp otherTelephone (2).  AD's mail and telephoneNumber are single-valued.
# Binary: alice jpegPhoto and thumbnailPhoto (%d-byte JPEG).
# Groups: Staff (8 users), R&D, Europe (2), All People (2 groups + dave +
# contact carl), Mixed Scope (alice + excluded eve).
# The 5,000-member group is separate: tests/data/gen-big-group.sh.

""" % len(JPEG)
    return head + "".join(body)


if __name__ == "__main__":
    with open(os.path.join(HERE, "slapd-seed.ldif"), "w", encoding="utf-8") as f:
        f.write(gen_slapd())
    with open(os.path.join(HERE, "samba-seed.ldif"), "w", encoding="utf-8") as f:
        f.write(gen_samba())
