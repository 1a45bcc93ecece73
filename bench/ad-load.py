#!/usr/bin/python3
"""ad-load.py SMB_CONF BATCH LDIF...: apply LDIF records (add, or
changetype: modify) to the sam.ldb named by SMB_CONF through Samba's
full module stack (objectGUID, objectSid and RID allocation, linked
attributes and their backlinks, replication metadata and USNs, all as
over LDAP), BATCH records per transaction, with the DC stopped.  For
bench/ad-delta.sh: tests/data/samba-ldbadd.py does the same in one
transaction, which costs more per record as the transaction grows (ldb
copies the index lists a transaction has touched at each record).
Prints the records applied and the CPU time per record every 10 batches,
to stderr."""
import sys
import time

import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__ + "\n")
        return 2
    lp = LoadParm()
    lp.load(sys.argv[1])
    batch = int(sys.argv[2])
    db = SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)
    n = 0
    c0 = time.process_time()
    db.transaction_start()
    try:
        for path in sys.argv[3:]:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for changetype, msg in db.parse_ldif(text):
                if changetype == ldb.CHANGETYPE_MODIFY:
                    db.modify(msg)
                else:
                    db.add(msg)
                n += 1
                if n % batch == 0:
                    db.transaction_commit()
                    db.transaction_start()
                    if n % (10 * batch) == 0:
                        c = time.process_time()
                        sys.stderr.write("%d records, %.1f ms CPU each\n" %
                                         (n, (c - c0) * 1000 / (10 * batch)))
                        c0 = c
    except Exception:
        db.transaction_cancel()
        raise
    db.transaction_commit()
    print("%d records applied" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
