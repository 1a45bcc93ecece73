#!/usr/bin/python3
"""samba-ldbadd.py SMB_CONF LDIF...: apply LDIF records (add, or
changetype: modify) directly to the sam.ldb named by SMB_CONF, through
Samba's full module stack (objectGUID, objectSid/RID allocation, password
hashing, linked attributes all as over LDAP), in one transaction.  Works
with the DC stopped or running (ldb locking).  Like ldbadd, without needing
the ldb-tools package.  Debian's /usr/bin/python3 has the samba bindings."""
import sys

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__ + "\n")
        return 2
    lp = LoadParm()
    lp.load(sys.argv[1])
    db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
    n = 0
    db.transaction_start()
    try:
        for path in sys.argv[2:]:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for changetype, msg in db.parse_ldif(text):
                if changetype == ldb.CHANGETYPE_MODIFY:
                    db.modify(msg)
                elif changetype == ldb.CHANGETYPE_DELETE:
                    db.delete(msg.dn)
                else:
                    db.add(msg)
                n += 1
    except Exception:
        db.transaction_cancel()
        raise
    db.transaction_commit()
    print("%d records applied" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
