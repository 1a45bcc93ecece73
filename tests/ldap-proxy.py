#!/usr/bin/env python3
"""ldap-proxy.py - an LDAP-aware TCP proxy that loses answers, for tests.

Forwards plain LDAP (no TLS: it reads the messages) between clients and
one server, and can drop a client's connection at the worst moment for a
writer: after the server applied a write (add, modify, delete, modrdn)
and before the client sees the answer.  Which writes lose their answer:

  --every N        the Nth, 2Nth, ... write answered (counted over all
                   connections)
  --prob P --seed S  each write answer with probability P, from a
                   random generator seeded with S (the same seed drops
                   the same answers of the same sequence of writes)
  --before P       also drop, with probability P (same generator), the
                   connection instead of forwarding a write request
                   (the server never sees it)
  --max-drops M    drop at most M times, then forward everything
  --latency MS     hold every answer of the server MS milliseconds, each
                   on its own (answers in flight overlap, as over a
                   network with that round trip): a distant or slow
                   server, for tests that act in the middle of a run and
                   for benchmarks

To act in the middle of a run at a moment that does not depend on speed:

  --after-read DN --exec CMD  when the server has answered the first
                   search whose base object is DN (compared without
                   regard to case), run CMD (sh -c) and wait for it
                   before the client sees the end of that answer: what
                   CMD changes, the client's next operations see, its
                   read did not

  --log-reads      log every search request as {"read": BASE, "attrs":
                   [...]}: which attributes (and ranges) a client asked for

  --upstream-ca FILE  talk TLS (LDAPS) to the upstream server, checked
                   against the CA in FILE (the client still speaks plain
                   LDAP to the proxy): for Samba, which wants TLS for
                   simple binds

Each drop is logged to --log as one JSON line: {"drop": "after"|"before",
"op": "add"|..., "msgid": N, "write": N}; the command of --after-read
as {"exec": DN, "status": N}.  The listening port is written
to --port-file once the proxy accepts connections.  Python 3 standard
library only; it runs until killed.
"""

import argparse
import collections
import json
import random
import socket
import ssl
import subprocess
import sys
import threading
import time

# BER tags of the write requests and of their responses (RFC 4511).
REQ = {0x66: "modify", 0x68: "add", 0x4A: "delete", 0x6C: "modrdn"}
RESP = {0x67: "modify", 0x69: "add", 0x6B: "delete", 0x6D: "modrdn"}


class Faults:
    def __init__(self, a):
        self.every = a.every
        self.prob = a.prob
        self.before = a.before
        self.max = a.max_drops
        self.latency = a.latency
        self.rng = random.Random(a.seed)
        self.writes = 0
        self.requests = 0
        self.drops = 0
        self.mu = threading.Lock()
        self.log = open(a.log, "a", buffering=1) if a.log else None
        self.after_read = a.after_read.lower() if a.after_read else None
        self.exec = a.exec
        self.fired = False
        self.log_reads = a.log_reads

    def read(self, base, attrs):
        if self.log_reads and self.log:
            with self.mu:
                self.log.write(json.dumps({"read": base, "attrs": attrs},
                                          sort_keys=True) + "\n")

    def read_done(self, base):
        """Runs the --after-read command once, at the end of its read."""
        with self.mu:
            if self.fired or self.after_read is None or \
                    base.lower() != self.after_read:
                return
            self.fired = True
            st = subprocess.call(["sh", "-c", self.exec])
            if self.log:
                self.log.write(json.dumps({"exec": base, "status": st},
                                          sort_keys=True) + "\n")

    def _note(self, kind, op, msgid, n):
        self.drops += 1
        if self.log:
            self.log.write(json.dumps({"drop": kind, "op": op,
                                       "msgid": msgid, "write": n},
                                      sort_keys=True) + "\n")

    def drop_request(self, op, msgid):
        with self.mu:
            self.requests += 1
            if self.before <= 0 or (self.max >= 0 and self.drops >= self.max):
                return False
            if self.rng.random() < self.before:
                self._note("before", op, msgid, self.requests)
                return True
            return False

    def drop_answer(self, op, msgid):
        with self.mu:
            self.writes += 1
            if self.max >= 0 and self.drops >= self.max:
                return False
            hit = False
            if self.every > 0 and self.writes % self.every == 0:
                hit = True
            elif self.prob > 0 and self.rng.random() < self.prob:
                hit = True
            if hit:
                self._note("after", op, msgid, self.writes)
            return hit


def ber_len(buf, i):
    """The length at buf[i:] and the offset after it, or None if short."""
    if i >= len(buf):
        return None
    b = buf[i]
    if b < 0x80:
        return b, i + 1
    n = b & 0x7F
    if n == 0 or n > 4:
        raise ValueError("bad BER length")
    if i + 1 + n > len(buf):
        return None
    return int.from_bytes(buf[i + 1:i + 1 + n], "big"), i + 1 + n


def messages(buf):
    """Splits whole LDAPMessages off buf: [(bytes, msgid, op tag)], rest."""
    out = []
    while True:
        if len(buf) < 2:
            return out, buf
        if buf[0] != 0x30:
            raise ValueError("not an LDAPMessage")
        r = ber_len(buf, 1)
        if r is None:
            return out, buf
        length, off = r
        end = off + length
        if len(buf) < end:
            return out, buf
        # messageID INTEGER, then the protocolOp's tag
        if buf[off] != 0x02:
            raise ValueError("no messageID")
        r = ber_len(buf, off + 1)
        ilen, ioff = r
        msgid = int.from_bytes(buf[ioff:ioff + ilen], "big", signed=True)
        tag = buf[ioff + ilen]
        out.append((bytes(buf[:end]), msgid, tag))
        buf = buf[end:]


def search_req(raw):
    """The base object and the attributes of the search request raw."""
    r = ber_len(raw, 1)
    off = r[1]
    r = ber_len(raw, off + 1)               # messageID
    off = r[1] + r[0]
    r = ber_len(raw, off + 1)               # the SearchRequest
    off = r[1]
    fields = []
    # baseObject, scope, derefAliases, sizeLimit, timeLimit, typesOnly,
    # filter, attributes: each a TLV
    while off < len(raw) and len(fields) < 8:
        r = ber_len(raw, off + 1)
        fields.append((raw[off], raw[r[1]:r[1] + r[0]]))
        off = r[1] + r[0]
    base = fields[0][1].decode("utf-8", "replace") if fields else ""
    attrs = []
    seq = fields[7][1] if len(fields) == 8 else b""
    i = 0
    while i < len(seq):
        r = ber_len(seq, i + 1)
        attrs.append(seq[r[1]:r[1] + r[0]].decode("utf-8", "replace"))
        i = r[1] + r[0]
    return base, attrs


class Pair:
    def __init__(self, client, upstream, faults):
        self.c = client
        self.s = upstream
        self.f = faults
        self.dead = False
        self.mu = threading.Lock()
        self.cv = threading.Condition()
        self.q = collections.deque()
        self.searches = {}
        if faults.latency > 0:
            threading.Thread(target=self.deliver, daemon=True).start()

    def kill(self):
        with self.mu:
            if self.dead:
                return
            self.dead = True
        for sock in (self.c, self.s):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def later(self, raw):
        """Sends raw to the client latency ms after now, in order."""
        with self.cv:
            self.q.append((time.monotonic() + self.f.latency / 1000.0, raw))
            self.cv.notify()

    def deliver(self):
        while True:
            with self.cv:
                while not self.q and not self.dead:
                    self.cv.wait(0.5)
                if self.dead:
                    return
                due, raw = self.q.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self.c.sendall(raw)
            except OSError:
                self.kill()
                return

    def pump(self, src, dst, up):
        buf = b""
        try:
            while not self.dead:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                msgs, buf = messages(buf)
                for raw, msgid, tag in msgs:
                    if up and tag == 0x63 and (self.f.after_read or
                                               self.f.log_reads):
                        base, attrs = search_req(raw)
                        self.searches[msgid] = base
                        self.f.read(base, attrs)
                    if not up and tag == 0x65 and msgid in self.searches:
                        self.f.read_done(self.searches.pop(msgid))
                    if up and tag in REQ and self.f.drop_request(REQ[tag],
                                                                msgid):
                        self.kill()
                        return
                    if not up and tag in RESP and self.f.drop_answer(
                            RESP[tag], msgid):
                        # The server applied it; the client never knows.
                        self.kill()
                        return
                    if not up and self.f.latency > 0:
                        self.later(raw)
                        continue
                    dst.sendall(raw)
        except (OSError, ValueError):
            pass
        self.kill()


def serve(a):
    faults = Faults(a)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(64)
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % ls.getsockname()[1])
        import os
        os.rename(a.port_file + ".tmp", a.port_file)
    host, port = a.upstream.rsplit(":", 1)
    while True:
        c, _ = ls.accept()
        try:
            s = socket.create_connection((host, int(port)))
            if a.upstream_ca:
                ctx = ssl.create_default_context(cafile=a.upstream_ca)
                s = ctx.wrap_socket(s, server_hostname=host)
        except OSError:
            c.close()
            continue
        p = Pair(c, s, faults)
        threading.Thread(target=p.pump, args=(c, s, True),
                         daemon=True).start()
        threading.Thread(target=p.pump, args=(s, c, False),
                         daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of slapd")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--every", type=int, default=0)
    ap.add_argument("--prob", type=float, default=0.0)
    ap.add_argument("--before", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-drops", type=int, default=-1)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--log")
    ap.add_argument("--after-read")
    ap.add_argument("--exec", default="true")
    ap.add_argument("--upstream-ca")
    ap.add_argument("--log-reads", action="store_true")
    a = ap.parse_args()
    try:
        serve(a)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
