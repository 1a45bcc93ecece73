#!/usr/bin/python3
"""graph-emulator: a Microsoft Graph / Entra ID stand-in for tests and demos.

Python 3 standard library only (plus the openssl CLI for certificate
client assertions).  It reproduces the documented behaviour a directory-sync
tool relies on, quirks included (see reference/protocols.md section A), and
can fail the way the service fails.  tests/graph-emulator.md is the long
form of this text.

SYNOPSIS
    graph-emulator.py [--port N] [--port-file F] [--bind ADDR]
        [--tls-cert PEM --tls-key PEM] [--app ID:SECRET]... [--app-cert ID:CERT.pem]...
        [--apps-file F]
        [--tenant T] [--domain D]... [--token-lifetime S]
        [--delta-token-lifetime S] [--log F] [--state F] [--seed N]
        [--latency-ms MS] [--fault-429 P] [--fault-503 P] [--fault-drop P]
        [--fault-slow P] [--slow-ms MS] [--fault-504 P] [--fault-drop-after P]
        [--retry-after V] [--eventual-404 S]
        [--write-limit N] [--write-window S] [--fault-token] [--no-shuffle]
        [--page-size N] [--delta-members-chunk N] [--empty-page P]
        [--delta-replay P] [--next-link-base URL] [--delta-link-base URL]
        [--next-link-loop]

SERVICE ENDPOINTS
    POST /{tenant}/oauth2/v2.0/token     client credentials (secret or JWT
                                         client assertion, RS256/PS256)
    /v1.0/users, /v1.0/users/{id|upn}, /v1.0/users/delta
    /v1.0/groups, /v1.0/groups/{id}, /v1.0/groups/delta
    /v1.0/groups/{id}/members[/microsoft.graph.user|group]
    /v1.0/groups/{id}/members/$ref, /v1.0/groups/{id}/members/{mid}/$ref
    DELETE /v1.0/groups/{id}/members/{mid}   (trap: deletes the member object)
    /v1.0/directoryObjects/{id}, POST /v1.0/directoryObjects/getByIds
    POST /v1.0/$batch

CONTROL API (never faulted, never needs a token)
    GET  /_emulator/health           {"ok":true}
    GET  /_emulator/log[?since=N]    served requests as a JSON array
    GET  /_emulator/state            users, groups (with member ids), deleted
    POST /_emulator/reset            forget objects, log, quotas, delta state
    POST /_emulator/seed             {"users":[...],"groups":[...]} loaded as-is
    GET|POST /_emulator/faults       read / merge fault and tuning settings
    POST /_emulator/apps             {"client_id","secret"|"cert_pem"}

DECISIONS WHERE THE SERVICE IS VAGUE
  * A nextLink of an advanced query (ne, not, endswith, $count, $orderby with
    $filter) fetched without "ConsistencyLevel: eventual" fails exactly like
    the first request would: 400 Request_UnsupportedQuery.
  * Delta tokens: a token that does not decode or fails its integrity check
    -> 400 with code syncStateNotFound.  A well-formed token that has expired
    (--delta-token-lifetime) or predates a reset -> 410 Gone, code
    syncStateNotFound, Location header = fresh initial delta URL.
  * Fault decisions are a hash of (seed, fault kind, method, url, body, n)
    where n counts identical requests; so they are deterministic for a seed
    whatever the interleaving of parallel connections, and a retry of the
    same request gets a fresh draw.
  * The write quota counts every authenticated write request (POST, PATCH,
    PUT, DELETE), accepted or not, per app id; inner $batch writes count
    individually; a write refused with 429 by the quota is not counted.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import math
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRAPH = "https://graph.microsoft.com"

USER_DEFAULT = ["businessPhones", "displayName", "givenName", "jobTitle", "mail",
                "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                "userPrincipalName", "id"]
GROUP_DEFAULT = ["id", "deletedDateTime", "classification", "createdDateTime",
                 "creationOptions", "description", "displayName", "expirationDateTime",
                 "groupTypes", "isAssignableToRole", "mail", "mailEnabled", "mailNickname",
                 "membershipRule", "membershipRuleProcessingState", "onPremisesDomainName",
                 "onPremisesLastSyncDateTime", "onPremisesNetBiosName",
                 "onPremisesSamAccountName", "onPremisesSecurityIdentifier",
                 "onPremisesSyncEnabled", "preferredDataLocation", "preferredLanguage",
                 "proxyAddresses", "renewedDateTime", "resourceBehaviorOptions",
                 "resourceProvisioningOptions", "securityEnabled", "securityIdentifier",
                 "theme", "visibility", "onPremisesProvisioningErrors"]
LIST_DEFAULTS = {"businessPhones": [], "groupTypes": [], "proxyAddresses": [],
                 "creationOptions": [], "resourceBehaviorOptions": [],
                 "resourceProvisioningOptions": [], "onPremisesProvisioningErrors": [],
                 "otherMails": []}

USER_WRITABLE = {"accountEnabled", "ageGroup", "businessPhones", "city", "companyName",
                 "consentProvidedForMinor", "country", "department", "displayName",
                 "employeeId", "employeeType", "employeeHireDate", "employeeLeaveDateTime",
                 "employeeOrgData", "faxNumber", "givenName", "jobTitle", "mail",
                 "mailNickname", "mobilePhone", "officeLocation", "onPremisesImmutableId",
                 "onPremisesExtensionAttributes", "otherMails", "passwordPolicies",
                 "passwordProfile", "postalCode", "preferredLanguage", "state",
                 "streetAddress", "surname", "usageLocation", "userPrincipalName",
                 "userType", "showInAddressList", "preferredDataLocation", "aboutMe",
                 "birthday", "interests", "mySite", "pastProjects", "responsibilities",
                 "schools", "skills", "preferredName"}
USER_READONLY = {"id", "proxyAddresses", "createdDateTime", "deletedDateTime",
                 "onPremisesDistinguishedName", "onPremisesDomainName",
                 "onPremisesSamAccountName", "onPremisesSecurityIdentifier",
                 "onPremisesUserPrincipalName", "onPremisesLastSyncDateTime",
                 "onPremisesSyncEnabled", "onPremisesProvisioningErrors",
                 "securityIdentifier", "imAddresses"}
USER_CLOUD_MASTERED = {"usageLocation", "preferredDataLocation"}
GROUP_WRITABLE = {"classification", "description", "displayName", "groupTypes",
                  "isAssignableToRole", "mailEnabled", "mailNickname", "membershipRule",
                  "membershipRuleProcessingState", "preferredDataLocation",
                  "preferredLanguage", "securityEnabled", "theme", "visibility",
                  "resourceBehaviorOptions", "resourceProvisioningOptions"}
GROUP_READONLY = {"id", "createdDateTime", "deletedDateTime", "mail", "proxyAddresses",
                  "onPremisesDomainName", "onPremisesLastSyncDateTime",
                  "onPremisesNetBiosName", "onPremisesSamAccountName",
                  "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
                  "onPremisesProvisioningErrors", "securityIdentifier", "expirationDateTime",
                  "renewedDateTime", "creationOptions"}
KNOWN_PROPS = (set(USER_DEFAULT) | set(GROUP_DEFAULT) | USER_WRITABLE | USER_READONLY |
               GROUP_WRITABLE | GROUP_READONLY |
               {"members", "owners", "creationType", "identities", "externalUserState",
                "lastPasswordChangeDateTime", "signInActivity", "assignedLicenses",
                "licenseAssignmentStates", "memberOf", "manager", "directReports",
                "signInSessionsValidFromDateTime", "isResourceAccount",
                "onPremisesSipInfo", "serviceProvisioningErrors", "securityIdentifier",
                "uniqueName", "writebackConfiguration", "membershipRule"})
UPN_LOCAL_RE = re.compile(r"^[A-Za-z0-9'.\-_!#^~]+$")
MAILNICK_BAD = set('@()\\[]";:.<>, ')
GRAPH_APP_SCOPES = ("https://graph.microsoft.com/.default",
                    "00000003-0000-0000-c000-000000000000/.default",
                    "https://graph.microsoft.com//.default")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    s = s + "=" * (-len(s) % 4)
    return base64.urlsafe_b64decode(s.encode())


class GraphError(Exception):
    """A Graph-shaped error response."""

    def __init__(self, status, code, message, headers=None, details=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


class OAuthError(Exception):
    def __init__(self, status, error, aadsts, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description


def not_found(oid):
    return GraphError(404, "Request_ResourceNotFound",
                      "Resource '%s' does not exist or one of its queried reference-property "
                      "objects are not present." % oid)


def bad(message, code="Request_BadRequest", status=400, details=None):
    return GraphError(status, code, message, details=details)


def unsupported(message="Unsupported Query."):
    return GraphError(400, "Request_UnsupportedQuery", message)


# --------------------------------------------------------------------------
# OData $filter

class FilterSyntax(Exception):
    pass


TOKEN_RE = re.compile(r"\s*(?:('(?:[^']|'')*')|(\()|(\))|(,)|(:)|"
                      r"(-?\d+(?:\.\d+)?(?![A-Za-z0-9_]))|"
                      r"([A-Za-z_$@][A-Za-z0-9_./@$-]*))")
COMPARE_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def tokenize(s):
    toks = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = TOKEN_RE.match(s, pos)
        if not m or m.end() == pos:
            raise FilterSyntax("Syntax error at position %d in '%s'." % (pos, s))
        pos = m.end()
        if m.group(1) is not None:
            toks.append(("str", m.group(1)[1:-1].replace("''", "'")))
        elif m.group(2):
            toks.append(("(", "("))
        elif m.group(3):
            toks.append((")", ")"))
        elif m.group(4):
            toks.append((",", ","))
        elif m.group(5):
            toks.append((":", ":"))
        elif m.group(6) is not None:
            v = m.group(6)
            toks.append(("num", float(v) if "." in v else int(v)))
        else:
            toks.append(("id", m.group(7)))
    return toks


class FilterParser:
    """Recursive descent over tokens; produces a tuple AST.

    Sets self.advanced when the expression needs the advanced query
    capabilities (ConsistencyLevel: eventual + $count=true)."""

    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0
        self.advanced = False
        self.uses_ne = False
        self.text = text

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def take(self, kind=None, value=None):
        t = self.peek()
        if t[0] is None or (kind and t[0] != kind) or \
                (value is not None and (t[1] or "").lower() != value):
            raise FilterSyntax("Syntax error: unexpected '%s' in '%s'." % (t[1], self.text))
        self.i += 1
        return t

    def parse(self):
        e = self.p_or()
        if self.i != len(self.toks):
            raise FilterSyntax("Syntax error: character '%s' is not valid at position %d in '%s'."
                               % (self.peek()[1], self.i, self.text))
        return e

    def kw(self, word):
        t = self.peek()
        return t[0] == "id" and t[1].lower() == word

    def p_or(self):
        e = self.p_and()
        while self.kw("or"):
            self.i += 1
            e = ("or", e, self.p_and())
        return e

    def p_and(self):
        e = self.p_unary()
        while self.kw("and"):
            self.i += 1
            e = ("and", e, self.p_unary())
        return e

    def p_unary(self):
        if self.kw("not"):
            self.i += 1
            self.advanced = True
            return ("not", self.p_unary())
        return self.p_primary()

    def literal(self):
        t = self.take()
        if t[0] in ("str", "num"):
            return t[1]
        if t[0] == "id" and t[1].lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[t[1].lower()]
        raise FilterSyntax("Syntax error: expected a literal, found '%s'." % t[1])

    def p_primary(self):
        t = self.peek()
        if t[0] == "(":
            self.i += 1
            e = self.p_or()
            self.take(")")
            return e
        if t[0] != "id":
            raise FilterSyntax("Syntax error: unexpected '%s' in '%s'." % (t[1], self.text))
        name = t[1]
        low = name.lower()
        if low in ("startswith", "endswith") and self.peek(1)[0] == "(":
            self.i += 2
            prop = self.take("id")[1]
            self.take(",")
            val = self.literal()
            self.take(")")
            if low == "endswith":
                self.advanced = True
            return (low, prop, val)
        self.i += 1
        if low.endswith("/any") and self.peek()[0] == "(":
            self.take("(")
            var = self.take("id")[1]
            self.take(":")
            inner_prop = self.take("id")[1]
            if inner_prop != var:
                raise FilterSyntax("Syntax error in lambda '%s'." % self.text)
            op = self.take("id")[1].lower()
            if op not in ("eq", "startswith"):
                raise FilterSyntax("Unsupported lambda operator '%s'." % op)
            val = self.literal()
            self.take(")")
            return ("any", name[:-4], op, val)
        if self.kw("in"):
            self.i += 1
            self.take("(")
            vals = [self.literal()]
            while self.peek()[0] == ",":
                self.i += 1
                vals.append(self.literal())
            self.take(")")
            return ("in", name, vals)
        op = self.take("id")[1].lower()
        if op not in COMPARE_OPS:
            raise FilterSyntax("Syntax error: unknown operator '%s' in '%s'." % (op, self.text))
        if op == "ne":
            self.advanced = True
            self.uses_ne = True
        if name.startswith("onPremisesExtensionAttributes/"):
            self.advanced = True
        return (op, name, self.literal())


CASE_SENSITIVE = {"onPremisesImmutableId"}


def getprop(obj, path):
    cur = obj
    for part in path.split("/"):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def norm(prop, v):
    if isinstance(v, str) and prop.split("/")[-1] not in CASE_SENSITIVE:
        return v.lower()
    return v


def cmp(op, a, b):
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
    except TypeError:
        return False


def evaluate(ast, obj):
    k = ast[0]
    if k == "or":
        return evaluate(ast[1], obj) or evaluate(ast[2], obj)
    if k == "and":
        return evaluate(ast[1], obj) and evaluate(ast[2], obj)
    if k == "not":
        return not evaluate(ast[1], obj)
    if k in ("startswith", "endswith"):
        v = getprop(obj, ast[1])
        if not isinstance(v, str) or not isinstance(ast[2], str):
            return False
        a, b = norm(ast[1], v), norm(ast[1], ast[2])
        return a.startswith(b) if k == "startswith" else a.endswith(b)
    if k == "in":
        v = norm(ast[1], getprop(obj, ast[1]))
        return any(v == norm(ast[1], x) for x in ast[2])
    if k == "any":
        vals = getprop(obj, ast[1]) or []
        want = ast[3].lower() if isinstance(ast[3], str) else ast[3]
        for v in vals:
            v = v.lower() if isinstance(v, str) else v
            if (ast[2] == "eq" and v == want) or \
                    (ast[2] == "startswith" and isinstance(v, str) and v.startswith(want)):
                return True
        return False
    v = getprop(obj, ast[1])
    return cmp(k, norm(ast[1], v), norm(ast[1], ast[2]))


def filter_props(ast, out):
    k = ast[0]
    if k in ("or", "and"):
        filter_props(ast[1], out)
        filter_props(ast[2], out)
    elif k == "not":
        filter_props(ast[1], out)
    else:
        out.add(ast[1])
    return out


# --------------------------------------------------------------------------
# The directory

class Directory:
    """All objects, their indexes and the change log that feeds delta.

    Callers hold self.lock around every method."""

    def __init__(self):
        self.lock = threading.RLock()
        self.reset()

    def reset(self):
        self.users = {}          # id -> properties (public + passwordProfile)
        self.groups = {}
        self.kind = {}           # id -> "user" | "group" for live objects
        self.deleted = {}        # id -> (kind, obj, time)
        self.upn_idx = {}        # lower(upn) -> id
        self.imm_idx = {}        # immutableId -> id
        self.order = {"user": [], "group": []}   # creation order, append-only
        self.members = {}        # group id -> dict(member id -> None), ordered
        self.member_of = collections.defaultdict(set)
        self.owners = {}
        self.seq = 0
        self.change_seqs = []
        self.changes = []        # (seq, kind, id, props|None, added, removed)
        self.epoch = uuid.uuid4().hex[:12]
        self.visible_at = {}     # id -> time before which reads 404
        self.created_seq = {}    # id -> seq of its creation

    # -- change log
    def log_change(self, kind, oid, props=None, added=(), removed=(), created=False,
                   deleted=False):
        self.seq += 1
        self.change_seqs.append(self.seq)
        tag = "created" if created else ("deleted" if deleted else None)
        self.changes.append((self.seq, kind, oid, frozenset(props or ()), tuple(added),
                             tuple(removed), tag))

    def get(self, oid):
        k = self.kind.get(oid)
        if k == "user":
            return "user", self.users[oid]
        if k == "group":
            return "group", self.groups[oid]
        return None, None

    def add_object(self, kind, obj):
        oid = obj["id"]
        self.kind[oid] = kind
        if kind == "user":
            self.users[oid] = obj
            if obj.get("userPrincipalName"):
                self.upn_idx[obj["userPrincipalName"].lower()] = oid
            if obj.get("onPremisesImmutableId"):
                self.imm_idx[obj["onPremisesImmutableId"]] = oid
        else:
            self.groups[oid] = obj
            self.members[oid] = {}
            self.owners[oid] = {}
        self.order[kind].append(oid)
        self.log_change(kind, oid, obj.keys(), created=True)
        self.created_seq[oid] = self.seq

    def created_after(self, oid, seq):
        # Objects created after the start of an initial delta round are left
        # for the next round, so a round is a consistent cut.
        return self.created_seq.get(oid, 0) > seq

    def remove_object(self, oid):
        kind, obj = self.get(oid)
        if kind is None:
            return
        for gid in list(self.member_of.get(oid, ())):
            self.remove_member(gid, oid)
        self.member_of.pop(oid, None)
        if kind == "user":
            del self.users[oid]
            if obj.get("userPrincipalName"):
                self.upn_idx.pop(obj["userPrincipalName"].lower(), None)
            if obj.get("onPremisesImmutableId"):
                self.imm_idx.pop(obj["onPremisesImmutableId"], None)
        else:
            for mid in list(self.members[oid]):
                self.remove_member(oid, mid)
            del self.groups[oid]
            del self.members[oid]
            self.owners.pop(oid, None)
        del self.kind[oid]
        obj["deletedDateTime"] = now_iso()
        self.deleted[oid] = (kind, obj, time.time())
        self.log_change(kind, oid, deleted=True)

    def add_member(self, gid, mid, log=True):
        self.members[gid][mid] = None
        self.member_of[mid].add(gid)
        if log:
            self.log_change("group", gid, ("members",), added=(mid,))

    def remove_member(self, gid, mid):
        self.members[gid].pop(mid, None)
        s = self.member_of.get(mid)
        if s:
            s.discard(gid)
        self.log_change("group", gid, ("members",), removed=(mid,))

    def state(self):
        users = [dict(u) for u in (self.users[i] for i in self.order["user"] if i in self.users)]
        for u in users:
            u.pop("passwordProfile", None)
        groups = []
        for gid in self.order["group"]:
            if gid in self.groups:
                g = dict(self.groups[gid])
                g["members"] = list(self.members[gid])
                g["owners"] = list(self.owners[gid])
                groups.append(g)
        deleted = [{"id": i, "kind": k, "object": o} for i, (k, o, _t) in self.deleted.items()]
        return {"users": users, "groups": groups, "deleted": deleted,
                "seq": self.seq, "epoch": self.epoch}


# --------------------------------------------------------------------------
# Settings / faults

DEFAULT_FAULTS = {
    "seed": 0, "latency_ms": 0, "fault_429": 0.0, "fault_503": 0.0, "fault_drop": 0.0,
    "fault_slow": 0.0, "slow_ms": 5000, "retry_after": "1", "eventual_404": 0.0,
    "write_limit": 3000, "write_window": 150.0, "fault_token": False,
    "token_lifetime": 3599, "delta_token_lifetime": 7 * 86400, "shuffle": True,
    "page_size": 100, "rules": [], "delta_members_chunk": 100, "empty_page": 0.0,
    "delta_replay": 0.0, "fault_504": 0.0, "fault_drop_after": 0.0,
    "next_link_base": "", "delta_link_base": "", "next_link_loop": False,
}


class Emulator:
    def __init__(self, opts):
        self.dir = Directory()
        self.faults = dict(DEFAULT_FAULTS)
        self.apps = {}           # client id -> {"secret":..., "cert": {...}}
        self.tenant = opts.tenant
        self.tenant_id = opts.tenant_id or str(uuid.UUID(bytes=hashlib.md5(
            (opts.tenant or "emulator").encode()).digest()))
        self.domains = [d.lower() for d in (opts.domain or [])]
        # A fixed key per tenant: access tokens survive a restart (as real
        # ones do), while delta tokens still die with the directory epoch.
        self.secret = hashlib.sha256(("graph-emulator|" + self.tenant_id).encode()).digest()
        self.flock = threading.Lock()
        self.occurrences = collections.Counter()
        self.writes = collections.defaultdict(collections.deque)
        self.log = []
        self.log_lock = threading.Lock()
        self.log_file = open(opts.log, "a", buffering=1) if opts.log else None
        self.tls = bool(opts.tls_cert)
        self.batch_rng = random.Random(0)
        self.delta_cache = collections.OrderedDict()

    # -- settings
    def set_faults(self, d):
        for k, v in d.items():
            if k not in DEFAULT_FAULTS:
                raise ValueError("unknown setting '%s'" % k)
            if k == "retry_after":
                v = str(v)
                float(v)
            elif k == "rules":
                if not isinstance(v, list):
                    raise ValueError("rules must be a list")
                v = [dict(r) for r in v]
            elif isinstance(DEFAULT_FAULTS[k], bool):
                v = bool(v)
            elif isinstance(DEFAULT_FAULTS[k], int):
                v = int(v)
            elif isinstance(DEFAULT_FAULTS[k], float):
                v = float(v)
            elif k in ("next_link_base", "delta_link_base"):
                v = str(v)
                if v and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*$", v):
                    raise ValueError("%s must be empty or scheme://host[:port]" % k)
            self.faults[k] = v
            if k in ("write_limit", "write_window"):
                self.writes.clear()
            if k == "seed":
                self.batch_rng = random.Random(v)
                self.occurrences.clear()

    def draw(self, kind, key):
        """A deterministic number in [0,1) for this fault kind and request."""
        n = self.occurrences[(kind, key)]
        self.occurrences[(kind, key)] = n + 1
        h = hashlib.sha256(("%s|%s|%s|%d" % (self.faults["seed"], kind, key, n)).encode())
        return int.from_bytes(h.digest()[:8], "big") / 2.0 ** 64

    def pick_fault(self, method, path, body, inner=False):
        """Return None or one of 'drop', '503', '429', 'slow', ('status', N)."""
        f = self.faults
        key = "%s %s %s" % (method, path, hashlib.sha1(body or b"").hexdigest())
        with self.flock:
            for r in f["rules"]:
                if r.get("times", 1) <= 0:
                    continue
                if r.get("method") and r["method"].upper() != method:
                    continue
                if r.get("path") and not re.search(r["path"], path):
                    continue
                if r.get("body") and not re.search(
                        r["body"], (body or b"").decode("utf-8", "replace")):
                    continue
                if inner and not r.get("in_batch", True):
                    continue
                if not inner and r.get("batch_only"):
                    continue
                r["times"] = r.get("times", 1) - 1
                a = str(r.get("action", "429"))
                if a.isdigit():
                    return ("status", int(a), r.get("retry_after"))
                return (a, None, r.get("retry_after"))
            if not inner and f["fault_drop"] and self.draw("drop", key) < f["fault_drop"]:
                return ("drop", None, None)
            if f["fault_503"] and self.draw("503", key) < f["fault_503"]:
                return ("503", None, None)
            if f["fault_429"] and self.draw("429", key) < f["fault_429"]:
                return ("429", None, None)
            if not inner and f["fault_slow"] and self.draw("slow", key) < f["fault_slow"]:
                return ("slow", None, None)
        return None

    def pick_late_fault(self, method, path, body, inner=False):
        """Faults that strike after the request ran: None, 'drop_after' (the
        connection closes before the response is sent) or '504' (a gateway
        timed out waiting for the answer).  The service applied the request
        all the same, so the client cannot know whether it did."""
        f = self.faults
        key = "%s %s %s" % (method, path, hashlib.sha1(body or b"").hexdigest())
        with self.flock:
            if not inner and f["fault_drop_after"] and \
                    self.draw("drop_after", key) < f["fault_drop_after"]:
                return "drop_after"
            if f["fault_504"] and self.draw("504", key) < f["fault_504"]:
                return "504"
        return None

    def take_write(self, app):
        """Count one write for app; raise 429 if the window is full."""
        lim, win = self.faults["write_limit"], self.faults["write_window"]
        if lim <= 0:
            return
        with self.flock:
            q = self.writes[app]
            t = time.monotonic()
            while q and q[0] <= t - win:
                q.popleft()
            if len(q) >= lim:
                wait = max(1, math.ceil(q[0] + win - t))
                raise GraphError(429, "TooManyRequests",
                                 "Too many requests. The write limit for this application "
                                 "and tenant has been exceeded.",
                                 headers={"Retry-After": str(wait),
                                          "x-ms-throttle-information": "WriteLimitExceeded",
                                          "x-ms-throttle-scope":
                                          "Tenant_Application/ReadWrite/%s/%s"
                                          % (app, self.tenant_id)})
            q.append(t)

    def record(self, entry):
        with self.log_lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry, sort_keys=True) + "\n")

    # -- tokens
    def make_token(self, app):
        now = int(time.time())
        head = b64u(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "emulator"}).encode())
        claims = {"aud": GRAPH, "iss": "https://sts.windows.net/%s/" % self.tenant_id,
                  "iat": now, "nbf": now, "exp": now + self.faults["token_lifetime"],
                  "appid": app, "tid": self.tenant_id, "roles": ["User.ReadWrite.All",
                                                                 "Group.ReadWrite.All"],
                  "emu": self.dir.epoch, "uti": uuid.uuid4().hex}
        body = b64u(json.dumps(claims, separators=(",", ":")).encode())
        sig = b64u(hmac.new(self.secret, ("%s.%s" % (head, body)).encode(),
                            hashlib.sha256).digest())
        return "%s.%s.%s" % (head, body, sig)

    def check_token(self, authz):
        if not authz:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        parts = authz.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure. Invalid audience.")
        tok = parts[1].strip().split(".")
        try:
            if len(tok) != 3:
                raise ValueError
            sig = b64u(hmac.new(self.secret, ("%s.%s" % (tok[0], tok[1])).encode(),
                                hashlib.sha256).digest())
            if not hmac.compare_digest(sig, tok[2]):
                raise ValueError
            claims = json.loads(b64u_dec(tok[1]))
        except (ValueError, TypeError):
            raise GraphError(401, "InvalidAuthenticationToken",
                             "IDX14100: JWT is not well formed, there are no dots (.).")
        if claims["exp"] <= time.time():
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Lifetime validation failed, the token is expired.")
        return claims["appid"]

    # -- opaque tokens for paging/delta
    def seal(self, d):
        raw = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self.secret, raw, hashlib.sha256).digest()[:12]
        return b64u(mac + raw)

    def unseal(self, s):
        try:
            data = b64u_dec(s)
            mac, raw = data[:12], data[12:]
            if not hmac.compare_digest(mac, hmac.new(self.secret, raw,
                                                     hashlib.sha256).digest()[:12]):
                return None
            return json.loads(raw)
        except (ValueError, TypeError):
            return None


# --------------------------------------------------------------------------
# Request context and routing

class Req:
    def __init__(self, method, path, query, headers, body, base, app=None, inner=False,
                 raw=None):
        self.method = method
        self.path = path          # decoded, without /v1.0
        self.raw = raw            # path and query as received, with /v1.0
        self.query = query        # dict of decoded query options
        self.headers = headers    # dict lower-case name -> value
        self.body = body
        self.base = base          # e.g. http://127.0.0.1:8080
        self.app = app
        self.inner = inner

    def json(self):
        if not self.body:
            raise bad("Unable to read JSON request payload. Please ensure Content-Type header "
                      "is set and payload is of valid JSON format.", code="BadRequest")
        ct = self.headers.get("content-type", "")
        if "json" not in ct.lower():
            raise bad("Unable to read JSON request payload. Please ensure Content-Type header "
                      "is set and payload is of valid JSON format.", code="BadRequest")
        try:
            v = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise bad("Unable to read JSON request payload. Please ensure Content-Type header "
                      "is set and payload is of valid JSON format.", code="BadRequest")
        if not isinstance(v, dict):
            raise bad("Unable to read JSON request payload. Please ensure Content-Type header "
                      "is set and payload is of valid JSON format.", code="BadRequest")
        return v

    def advanced_ok(self):
        return (self.headers.get("consistencylevel", "").lower() == "eventual")


def parse_query(qs):
    """Decode a query string once, as a server does ('+' becomes a space)."""
    out = {}
    if not qs:
        return out
    for part in qs.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        k = urllib.parse.unquote_plus(k)
        v = urllib.parse.unquote_plus(v)
        if k.lower() in ("$filter", "$select", "$top", "$count", "$skiptoken",
                         "$deltatoken", "$orderby", "$expand", "$search", "$skip"):
            k = k.lower()
        if k in out:
            raise bad("Query option '%s' was specified more than once, but it must be "
                      "specified at most once." % k, code="BadRequest")
        out[k] = v
    return out


def refid(odata_id):
    """The object id at the end of an @odata.id URL, or None."""
    if not isinstance(odata_id, str):
        return None
    m = re.match(r"^(?:https?://[^/]+)?(?:/(?:v1\.0|beta))?/(?:directoryObjects|users|groups)"
                 r"/([^/?#]+)$", odata_id)
    return urllib.parse.unquote(m.group(1)) if m else None


class Service:
    """Graph semantics over the Directory; every method returns (status, headers, body)."""

    def __init__(self, emu):
        self.emu = emu
        self.d = emu.dir

    # -- visibility (eventual consistency)
    def visible(self, oid):
        t = self.d.visible_at.get(oid)
        if t is None:
            return True
        if time.time() >= t:
            self.d.visible_at.pop(oid, None)
            return True
        return False

    def lookup(self, kind, key):
        """Live object by id (or UPN for users); raise 404."""
        oid = key
        if kind == "user" and "@" in key:
            oid = self.d.upn_idx.get(key.lower())
        k = self.d.kind.get(oid) if oid else None
        if k is None or (kind and k != kind) or not self.visible(oid):
            raise not_found(key)
        return oid, (self.d.users[oid] if k == "user" else self.d.groups[oid])

    def ref_object(self, oid):
        if oid is None:
            raise bad("Invalid object identifier '%s'." % oid)
        k = self.d.kind.get(oid)
        if k is None or not self.visible(oid):
            raise not_found(oid)
        return k

    def created(self, oid):
        e404 = self.emu.faults["eventual_404"]
        if e404 > 0:
            self.d.visible_at[oid] = time.time() + e404

    # -- projections
    def project(self, kind, obj, select, typed=False):
        if select is None:
            props = USER_DEFAULT if kind == "user" else GROUP_DEFAULT
        else:
            props = select
        out = {}
        if typed:
            out["@odata.type"] = "#microsoft.graph." + kind
        for p in props:
            if p == "passwordProfile":
                out[p] = None
            elif p in obj:
                out[p] = obj[p]
            elif p in LIST_DEFAULTS:
                out[p] = list(LIST_DEFAULTS[p])
            else:
                out[p] = None
        if "id" not in out:
            out["id"] = obj["id"]
        return out

    def parse_select(self, q, kind):
        s = q.get("$select")
        if s is None:
            return None
        props = [p.strip() for p in s.split(",") if p.strip()]
        for p in props:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", p):
                raise bad("Parsing OData Select and Expand failed: Term '%s' is not valid in a "
                          "$select or $expand expression." % p, code="BadRequest")
            if p not in KNOWN_PROPS and not p.startswith("extension_"):
                raise bad("Could not find a property named '%s' on type 'microsoft.graph.%s'."
                          % (p, kind or "directoryObject"), code="BadRequest")
        return props

    def context(self, req, what):
        return "%s/v1.0/$metadata#%s" % (req.base, what)

    # -- validation helpers
    def check_upn(self, upn, self_id=None):
        if not isinstance(upn, str) or upn.count("@") != 1:
            raise bad("Invalid value specified for property 'userPrincipalName' of resource "
                      "'User'.")
        local, domain = upn.split("@")
        if not local or not UPN_LOCAL_RE.match(local) or local.startswith(".") \
                or local.endswith(".") or not domain:
            raise bad("Invalid value specified for property 'userPrincipalName' of resource "
                      "'User'.")
        if self.emu.domains and domain.lower() not in self.emu.domains:
            raise bad("The domain portion of the userPrincipalName property is invalid. You must "
                      "use one of the verified domain names in your organization.")
        other = self.d.upn_idx.get(upn.lower())
        if other and other != self_id:
            raise bad("Another object with the same value for property userPrincipalName "
                      "already exists.", details=[{"code": "ObjectConflict",
                                                   "message": "Another object with the same "
                                                   "value for property userPrincipalName "
                                                   "already exists.",
                                                   "target": "userPrincipalName"}])

    def check_immutable(self, v, self_id=None):
        if v is None:
            return
        if not isinstance(v, str) or "$" in v or "_" in v or not v:
            raise bad("Invalid value specified for property 'onPremisesImmutableId' of "
                      "resource 'User'.")
        other = self.d.imm_idx.get(v)
        if other and other != self_id:
            raise bad("Another object with the same value for property onPremisesImmutableId "
                      "already exists.", details=[{"code": "ObjectConflict",
                                                   "message": "Another object with the same "
                                                   "value for property onPremisesImmutableId "
                                                   "already exists.",
                                                   "target": "onPremisesImmutableId"}])

    def check_props(self, kind, body, writable, readonly):
        for k in body:
            if k in writable or k.startswith("extension_") or k == "@odata.type" \
                    or k.endswith("@odata.bind"):
                continue
            if k in readonly:
                raise bad("Property '%s' is read-only and cannot be set." % k)
            raise bad("Property '%s' does not exist as a declared property or extension "
                      "property." % k)

    def check_mailnick(self, v, kind):
        res = "User" if kind == "user" else "Group"
        # The group documentation lists '.' among the characters refused;
        # user aliases like first.last are ordinary (Exchange allows dots
        # inside an alias).
        bad_chars = MAILNICK_BAD if kind != "user" else MAILNICK_BAD - {"."}
        if not isinstance(v, str) or not v or len(v) > 64 or \
                any(c in bad_chars or ord(c) > 127 for c in v):
            raise bad("Invalid value specified for property 'mailNickname' of resource '%s'."
                      % res)

    def binds(self, body, key, limit=20):
        v = body.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise bad("Invalid value for '%s': an array of URLs is expected." % key)
        ids = []
        for u in v:
            oid = refid(u)
            if oid is None:
                raise bad("Invalid object identifier '%s'." % u)
            ids.append(oid)
        return ids

    # -- users
    def create_user(self, req):
        body = req.json()
        self.check_props("user", body, USER_WRITABLE, USER_READONLY)
        for p in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName",
                  "passwordProfile"):
            if body.get(p) is None or body.get(p) == "":
                raise bad("Property '%s' is required when creating the object." % p
                          if p != "passwordProfile" else
                          "Property 'passwordProfile' is required when creating the object.")
        if not isinstance(body["accountEnabled"], bool):
            raise bad("Invalid value specified for property 'accountEnabled' of resource 'User'.")
        pp = body["passwordProfile"]
        if not isinstance(pp, dict) or not pp.get("password"):
            raise bad("Invalid value specified for property 'passwordProfile' of resource "
                      "'User'.")
        self.check_mailnick(body["mailNickname"], "user")
        self.check_upn(body["userPrincipalName"])
        self.check_immutable(body.get("onPremisesImmutableId"))
        obj = dict(body)
        obj.pop("@odata.type", None)
        obj["id"] = str(uuid.uuid4())
        obj["createdDateTime"] = now_iso()
        self.d.add_object("user", obj)
        self.created(obj["id"])
        out = self.project("user", obj, None)
        out = {"@odata.context": self.context(req, "users/$entity"), **out}
        return 201, {"Location": "%s/v1.0/users/%s" % (GRAPH, obj["id"])}, out

    def apply_patch(self, kind, oid, obj, body):
        changed = []
        for k, v in body.items():
            if k.endswith("@odata.bind") or k == "@odata.type":
                continue
            if k == "onPremisesExtensionAttributes" and isinstance(v, dict):
                cur = dict(obj.get(k) or {})
                cur.update(v)
                v = cur
            if obj.get(k) != v:
                changed.append(k)
            if v is None:
                obj.pop(k, None)
            else:
                obj[k] = v
        if changed:
            self.d.log_change(kind, oid, changed)
        return changed

    def patch_user(self, req, key):
        oid, obj = self.lookup("user", key)
        body = req.json()
        self.check_props("user", body, USER_WRITABLE, USER_READONLY)
        if obj.get("onPremisesSyncEnabled") is True:
            bad_props = [k for k in body if k not in USER_CLOUD_MASTERED
                         and not k.startswith("extension_")]
            if bad_props:
                raise bad("Unable to update the specified properties for on-premises mastered "
                          "Directory Sync objects or objects currently undergoing migration.")
        if "displayName" in body and not body["displayName"]:
            raise bad("Invalid value specified for property 'displayName' of resource 'User'.")
        if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
            raise bad("Invalid value specified for property 'accountEnabled' of resource 'User'.")
        if "mailNickname" in body:
            self.check_mailnick(body["mailNickname"], "user")
        if "userPrincipalName" in body:
            self.check_upn(body["userPrincipalName"], oid)
        if "onPremisesImmutableId" in body:
            self.check_immutable(body["onPremisesImmutableId"], oid)
        if "passwordProfile" in body and (not isinstance(body["passwordProfile"], dict) or
                                          not body["passwordProfile"].get("password")):
            raise bad("Invalid value specified for property 'passwordProfile' of resource "
                      "'User'.")
        old_upn, old_imm = obj.get("userPrincipalName"), obj.get("onPremisesImmutableId")
        self.apply_patch("user", oid, obj, body)
        if obj.get("userPrincipalName") != old_upn:
            if old_upn:
                self.d.upn_idx.pop(old_upn.lower(), None)
            self.d.upn_idx[obj["userPrincipalName"].lower()] = oid
        if obj.get("onPremisesImmutableId") != old_imm:
            if old_imm:
                self.d.imm_idx.pop(old_imm, None)
            if obj.get("onPremisesImmutableId"):
                self.d.imm_idx[obj["onPremisesImmutableId"]] = oid
        return 204, {}, None

    def delete_object(self, kind, key):
        oid, _obj = self.lookup(kind, key)
        self.d.remove_object(oid)
        return 204, {}, None

    def get_one(self, req, kind, key):
        oid, obj = self.lookup(kind, key)
        sel = self.parse_select(req.query, kind)
        out = self.project(kind, obj, sel)
        ctx = ("users" if kind == "user" else "groups") + \
            ("(%s)/$entity" % ",".join(sel) if sel else "/$entity")
        return 200, {}, {"@odata.context": self.context(req, ctx), **out}

    # -- groups
    def create_group(self, req):
        body = req.json()
        self.check_props("group", body, GROUP_WRITABLE, GROUP_READONLY)
        for p in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
            if body.get(p) is None or body.get(p) == "":
                raise bad("Property '%s' is required when creating the object." % p)
        for p in ("mailEnabled", "securityEnabled"):
            if not isinstance(body[p], bool):
                raise bad("Invalid value specified for property '%s' of resource 'Group'." % p)
        if not isinstance(body["displayName"], str) or len(body["displayName"]) > 256:
            raise bad("Invalid value specified for property 'displayName' of resource 'Group'.")
        self.check_mailnick(body["mailNickname"], "group")
        gt = body.get("groupTypes") or []
        if body["mailEnabled"] and "Unified" not in gt:
            raise bad("Creating mail-enabled security groups and distribution lists is not "
                      "supported.", code="Request_BadRequest")
        members = self.binds(body, "members@odata.bind")
        owners = self.binds(body, "owners@odata.bind")
        if len(members) + len(owners) > 20:
            raise bad("A maximum of 20 relationships (owners and members) can be added in the "
                      "same request.")
        for oid in members + owners:
            if self.d.kind.get(oid) is None or not self.visible(oid):
                raise bad("Invalid object identifier '%s'." % oid)
        if len(set(members)) != len(members):
            raise bad("One or more added object references already exist for the following "
                      "modified properties: 'members'.")
        obj = {k: v for k, v in body.items() if not k.endswith("@odata.bind")
               and k != "@odata.type"}
        obj["id"] = str(uuid.uuid4())
        obj["createdDateTime"] = now_iso()
        obj.setdefault("groupTypes", [])
        self.d.add_object("group", obj)
        for m in members:
            self.d.add_member(obj["id"], m, log=False)
        for o in owners:
            self.d.owners[obj["id"]][o] = None
        if members:
            self.d.log_change("group", obj["id"], ("members",), added=members)
        self.created(obj["id"])
        out = self.project("group", obj, None)
        out = {"@odata.context": self.context(req, "groups/$entity"), **out}
        return 201, {"Location": "%s/v1.0/groups/%s" % (GRAPH, obj["id"])}, out

    def patch_group(self, req, key):
        gid, obj = self.lookup("group", key)
        body = req.json()
        self.check_props("group", body, GROUP_WRITABLE, GROUP_READONLY)
        if obj.get("onPremisesSyncEnabled") is True:
            if any(not k.endswith("@odata.bind") for k in body):
                raise bad("Unable to update the specified properties for on-premises mastered "
                          "Directory Sync objects or objects currently undergoing migration.")
        if "displayName" in body and not body["displayName"]:
            raise bad("Invalid value specified for property 'displayName' of resource 'Group'.")
        if "mailNickname" in body:
            self.check_mailnick(body["mailNickname"], "group")
        members = self.binds(body, "members@odata.bind")
        owners = self.binds(body, "owners@odata.bind")
        if len(members) > 20:
            raise bad("Up to 20 members can be added in a single request. Request contains %d."
                      % len(members))
        for oid in members + owners:
            if self.d.kind.get(oid) is None or not self.visible(oid):
                # All or nothing: an unknown reference fails the whole request with 400.
                raise bad("Invalid object identifier '%s'." % oid)
        cur = self.d.members[gid]
        if len(set(members)) != len(members) or any(m in cur for m in members):
            raise bad("One or more added object references already exist for the following "
                      "modified properties: 'members'.")
        if gid in members:
            raise bad("Invalid object identifier '%s'." % gid)
        self.apply_patch("group", gid, obj, body)
        for m in members:
            self.d.add_member(gid, m, log=False)
        if members:
            self.d.log_change("group", gid, ("members",), added=members)
        for o in owners:
            self.d.owners[gid][o] = None
        return 204, {}, None

    def add_member_ref(self, req, key):
        gid, _obj = self.lookup("group", key)
        body = req.json()
        if set(body) - {"@odata.id"}:
            raise bad("Property '%s' does not exist as a declared property or extension "
                      "property." % sorted(set(body) - {"@odata.id"})[0])
        mid = refid(body.get("@odata.id"))
        if mid is None:
            raise bad("Invalid object identifier '%s'." % body.get("@odata.id"))
        self.ref_object(mid)
        if mid == gid:
            raise bad("Invalid object identifier '%s'." % mid)
        if mid in self.d.members[gid]:
            raise bad("One or more added object references already exist for the following "
                      "modified properties: 'members'.")
        self.d.add_member(gid, mid)
        return 204, {}, None

    def remove_member_ref(self, req, key, mid):
        gid, _obj = self.lookup("group", key)
        if mid not in self.d.members[gid]:
            raise not_found(mid)
        self.d.remove_member(gid, mid)
        return 204, {}, None

    def list_members(self, req, key, cast=None):
        gid, _obj = self.lookup("group", key)
        sel = self.parse_select(req.query, "user")
        top = self.parse_top(req.query)
        count = (req.query.get("$count") or "").lower() == "true"
        if "$filter" in req.query or (count and not req.advanced_ok()) or \
                req.query.get("$count", "true").lower() not in ("true", "false"):
            raise unsupported()
        pos = 0
        tok = req.query.get("$skiptoken")
        if tok is not None:
            t = self.emu.unseal(tok)
            if not t or t.get("k") != "members" or t.get("g") != gid:
                raise bad("Invalid skip token.", code="Request_BadRequest")
            pos, top = t["p"], t["t"]
        ids = list(self.d.members[gid])
        page = []
        i = pos
        while i < len(ids) and len(page) < top:
            mid = ids[i]
            i += 1
            k, obj = self.d.get(mid)
            if k is None or (cast and k != cast):
                continue
            page.append(self.project(k, obj, sel, typed=True))
        out = {"@odata.context": self.context(req, "directoryObjects")}
        if count and tok is None:
            out["@odata.count"] = sum(1 for m in ids if not cast or self.d.kind.get(m) == cast)
        out["value"] = page
        if i < len(ids):
            out["@odata.nextLink"] = "%s/v1.0/groups/%s/members%s?%s" % (
                req.base, gid, "/microsoft.graph." + cast if cast else "",
                self.qs(req.query, {"k": "members", "g": gid, "p": i, "t": top}))
        return 200, {}, out

    def qs(self, query, token):
        parts = []
        if "$select" in query:
            parts.append("$select=" + urllib.parse.quote(query["$select"], safe=",/"))
        parts.append("$skiptoken=" + self.emu.seal(token))
        return "&".join(parts)

    def parse_top(self, q):
        if "$top" not in q:
            return self.emu.faults["page_size"]
        try:
            top = int(q["$top"])
        except ValueError:
            raise bad("Invalid value '%s' for query option $top." % q["$top"], code="BadRequest")
        if top < 1 or top > 999:
            raise bad("Invalid page size specified: '%d'. Must be between 1 and 999 inclusive."
                      % top, code="Request_UnsupportedQuery")
        return top

    # -- lists
    INDEXED = {"id", "userPrincipalName", "onPremisesImmutableId"}

    def candidates(self, kind, ast):
        """Ids from an index when the filter allows it, else None (full scan)."""
        if ast is None:
            return None
        op = ast[0]
        if op in ("eq", "in") and ast[1] in self.INDEXED:
            vals = [ast[2]] if op == "eq" else ast[2]
            out = []
            for v in vals:
                if not isinstance(v, str):
                    continue
                if ast[1] == "id":
                    oid = v
                elif ast[1] == "userPrincipalName":
                    oid = self.d.upn_idx.get(v.lower())
                else:
                    oid = self.d.imm_idx.get(v)
                if oid and self.d.kind.get(oid) == kind and oid not in out:
                    out.append(oid)
            return out
        if op == "or":
            a, b = self.candidates(kind, ast[1]), self.candidates(kind, ast[2])
            if a is None or b is None:
                return None
            return a + [x for x in b if x not in a]
        if op == "and":
            a = self.candidates(kind, ast[1])
            return a if a is not None else self.candidates(kind, ast[2])
        return None

    FILTERABLE = {
        "user": {"id", "userPrincipalName", "onPremisesImmutableId", "displayName", "mail",
                 "mailNickname", "givenName", "surname", "accountEnabled", "employeeId",
                 "department", "jobTitle", "companyName", "userType", "usageLocation",
                 "onPremisesSyncEnabled", "onPremisesSamAccountName", "proxyAddresses",
                 "otherMails", "city", "country", "state", "createdDateTime",
                 "onPremisesSecurityIdentifier", "onPremisesUserPrincipalName",
                 "employeeType", "officeLocation", "preferredLanguage", "creationType",
                 "imAddresses", "identities", "mobilePhone", "businessPhones",
                 "onPremisesDistinguishedName", "onPremisesDomainName", "faxNumber",
                 "postalCode", "streetAddress", "employeeHireDate"},
        "group": {"id", "displayName", "mail", "mailNickname", "mailEnabled",
                  "securityEnabled", "groupTypes", "onPremisesSyncEnabled",
                  "onPremisesSecurityIdentifier", "onPremisesSamAccountName", "proxyAddresses",
                  "description", "createdDateTime", "classification", "visibility",
                  "isAssignableToRole", "membershipRuleProcessingState"},
    }

    def list_objects(self, req, kind):
        q = req.query
        tok = q.get("$skiptoken")
        if tok is not None:
            t = self.emu.unseal(tok)
            if not t or t.get("k") != "list" or t.get("kind") != kind:
                raise bad("Invalid skip token.", code="Request_BadRequest")
            q = t["q"]
            pos = t["p"]
        else:
            pos = 0
            for k in q:
                if k.startswith("$") and k not in ("$filter", "$select", "$top", "$count",
                                                   "$orderby", "$search"):
                    raise bad("Query option '%s' is not allowed." % k, code="BadRequest")
        adv_needed = False
        ast = None
        if q.get("$filter") is not None:
            try:
                fp = FilterParser(q["$filter"])
                ast = fp.parse()
            except FilterSyntax as e:
                raise bad("Invalid filter clause: %s" % e, code="BadRequest")
            adv_needed = fp.advanced
            for p in filter_props(ast, set()):
                top_p = p.split("/")[0]
                if top_p == "onPremisesExtensionAttributes" and kind == "user":
                    continue
                # Directory extension properties take eq like the rest
                # (the service documents $filter on them for users and
                # groups without advanced query headers).
                if top_p not in self.FILTERABLE[kind] and \
                        not top_p.startswith("extension_"):
                    raise bad("Property '%s' does not exist as a declared property or "
                              "extension property." % p)
        count = q.get("$count")
        if count is not None:
            if count.lower() not in ("true", "false"):
                raise bad("Invalid value '%s' for query option $count." % count,
                          code="BadRequest")
            if count.lower() == "true":
                adv_needed = True
        orderby = q.get("$orderby")
        if orderby:
            m = re.match(r"^(displayName|userPrincipalName)(?:\s+(asc|desc))?$", orderby.strip())
            if not m:
                raise unsupported("Sorting not supported for '%s'." % orderby)
            if ast is not None:
                adv_needed = True
        if "$search" in q:
            raise unsupported("Request with $search query parameter only works through MSGraph "
                              "with a special request header: 'ConsistencyLevel: eventual'"
                              if not req.advanced_ok() else "Unsupported Query.")
        if adv_needed:
            if not req.advanced_ok() or (q.get("$count") or "").lower() != "true":
                if ast is not None and fp.uses_ne:
                    raise unsupported("Operator 'ne' is not supported because the required "
                                      "parameters might be missing. Try adding $count=true "
                                      "query parameter and ConsistencyLevel:eventual header. "
                                      "Refer to https://aka.ms/graph-docs/advanced-queries for "
                                      "more information")
                raise unsupported()
        top = self.parse_top(q)
        sel = self.parse_select(q, kind)
        coll = "users" if kind == "user" else "groups"
        # The draw's key leaves out req.base (the port changes from run
        # to run), so that a seed gives the same pages in every run.
        if self.emu.faults["empty_page"] and \
                self.emu.draw("empty", req.path + json.dumps(q) + str(pos)) < \
                self.emu.faults["empty_page"]:
            # "A page may be empty and still have a nextLink."
            return 200, {}, {"@odata.context": self.context(req, coll), "value": [],
                             "@odata.nextLink": "%s/v1.0/%s?%s" % (
                                 req.base, coll,
                                 self.qs(q, {"k": "list", "kind": kind, "p": pos, "q": q}))}
        cand = self.candidates(kind, ast)
        objs = self.d.users if kind == "user" else self.d.groups
        ids = cand if cand is not None else self.d.order[kind]
        if orderby:
            key = m.group(1)
            live = [i for i in ids if i in objs]
            live.sort(key=lambda i: ((objs[i].get(key) or "").lower(), i),
                      reverse=(m.group(2) == "desc"))
            ids = live
        page = []
        i = pos
        total = None
        while i < len(ids) and len(page) < top:
            oid = ids[i]
            i += 1
            obj = objs.get(oid)
            # A new object is missing from lists as long as it 404s:
            # the replica that answers may not have it yet.
            if obj is None or (ast is not None and not evaluate(ast, obj)) or \
                    not self.visible(oid):
                continue
            page.append(self.project(kind, obj, sel))
        more = False
        j = i
        while j < len(ids):
            obj = objs.get(ids[j])
            if obj is not None and (ast is None or evaluate(ast, obj)):
                more = True
                break
            j += 1
        i = j
        if pos == 0 and count and count.lower() == "true":
            total = sum(1 for oid in ids if oid in objs and (ast is None or
                                                             evaluate(ast, objs[oid])))
        coll = "users" if kind == "user" else "groups"
        out = {"@odata.context": self.context(req, coll + ("(%s)" % ",".join(sel) if sel
                                                           else ""))}
        if total is not None:
            out["@odata.count"] = total
        out["value"] = page
        if more:
            out["@odata.nextLink"] = "%s/v1.0/%s?%s" % (
                req.base, coll, self.qs(q, {"k": "list", "kind": kind, "p": i, "q": q}))
        return 200, {}, out

    # -- delta
    def delta(self, req, kind):
        q = req.query
        coll = "users" if kind == "user" else "groups"
        initial_url = "%s/v1.0/%s/delta" % (req.base, coll)
        if "$deltatoken" in q or "$skiptoken" in q:
            raw = q.get("$deltatoken", q.get("$skiptoken"))
            if raw == "latest" and "$deltatoken" in q:
                sel = self.parse_select(q, kind)
                tok = {"k": "delta", "kind": kind, "from": self.d.seq, "sel": sel,
                       "e": self.d.epoch, "at": time.time()}
                return 200, {}, {"@odata.context": self.context(req, coll),
                                 "value": [],
                                 "@odata.deltaLink": "%s?$deltatoken=%s" % (
                                     initial_url, self.emu.seal(tok))}
            t = self.emu.unseal(raw)
            if not t or t.get("kind") != kind or t.get("k") not in ("delta", "dpage"):
                raise bad("The sync state is not found or is invalid.", code="syncStateNotFound")
            if t["e"] != self.d.epoch or \
                    time.time() - t["at"] > self.emu.faults["delta_token_lifetime"]:
                raise GraphError(410, "syncStateNotFound",
                                 "The sync state generation is outdated or has expired. "
                                 "Resync is required.", headers={"Location": initial_url})
        else:
            for k in q:
                if k.startswith("$") and k not in ("$select",):
                    raise bad("Query option '%s' is not supported with delta." % k,
                              code="Request_UnsupportedQuery")
            sel = self.parse_select(q, kind)
            t = {"k": "dpage", "kind": kind, "from": None, "to": self.d.seq, "p": 0,
                 "sel": sel, "e": self.d.epoch, "at": time.time()}
        sel = t["sel"]
        if t["k"] == "delta":
            t = {"k": "dpage", "kind": kind, "from": t["from"], "to": self.d.seq, "p": 0,
                 "sel": sel, "e": self.d.epoch, "at": t["at"]}
        top = self.emu.faults["page_size"]
        with_members = kind == "group" and (sel is None or "members" in sel)
        objsel = [p for p in sel if p != "members"] if sel else None
        objs = self.d.users if kind == "user" else self.d.groups
        page = []
        chunk = max(1, self.emu.faults["delta_members_chunk"])
        sub = 0
        if t["from"] is None:
            ids = self.d.order[kind]
            i, sub = t["p"], t.get("s", 0)
            while i < len(ids) and len(page) < top:
                oid = ids[i]
                obj = objs.get(oid)
                if obj is None or self.d.created_after(oid, t["to"]):
                    i, sub = i + 1, 0
                    continue
                if not with_members:
                    page.append(self.project(kind, obj, objsel))
                    i += 1
                    continue
                # A large group's members@delta spans several items (and
                # pages) that repeat the same group object, as Graph does.
                mem = list(self.d.members[oid])
                nchunks = max(1, -(-len(mem) // chunk))
                while sub < nchunks and len(page) < top:
                    item = self.project(kind, obj, objsel)
                    item["members@delta"] = [
                        {"@odata.type": "#microsoft.graph." + (self.d.kind.get(m) or "user"),
                         "id": m} for m in mem[sub * chunk:(sub + 1) * chunk]]
                    page.append(item)
                    sub += 1
                if sub >= nchunks:
                    i, sub = i + 1, 0
            done = i >= len(ids)
        else:
            items = self.delta_changes(kind, t["from"], t["to"], sel, with_members, objsel)
            i = t["p"]
            page = items[i:i + top]
            i += len(page)
            done = i >= len(items)
        if self.emu.faults["delta_replay"]:
            # "Replays and duplicates within a round are possible."
            replayed = []
            for item in page:
                replayed.append(item)
                if self.emu.draw("replay", json.dumps(item, sort_keys=True)) < \
                        self.emu.faults["delta_replay"]:
                    replayed.append(dict(item))
            page = replayed
        out = {"@odata.context": self.context(req, coll), "value": page}
        if done:
            nt = {"k": "delta", "kind": kind, "from": t["to"], "sel": sel, "e": self.d.epoch,
                  "at": time.time()}
            out["@odata.deltaLink"] = "%s?$deltatoken=%s" % (initial_url, self.emu.seal(nt))
        else:
            t = dict(t, p=i, s=sub)
            out["@odata.nextLink"] = "%s?$skiptoken=%s" % (initial_url, self.emu.seal(t))
        return 200, {}, out

    def delta_changes(self, kind, frm, to, sel, with_members, objsel):
        key = (kind, frm, to, json.dumps(sel), self.d.epoch)
        cache = self.emu.delta_cache
        if key in cache:
            return cache[key]
        import bisect
        lo = bisect.bisect_right(self.d.change_seqs, frm)
        hi = bisect.bisect_right(self.d.change_seqs, to)
        per = collections.OrderedDict()
        for (_s, k, oid, props, added, removed, tag) in self.d.changes[lo:hi]:
            if k != kind:
                continue
            e = per.setdefault(oid, {"props": set(), "mem": collections.OrderedDict(),
                                     "created": False})
            e["props"] |= props
            if tag == "created":
                e["created"] = True
            for m in added:
                e["mem"][m] = True
            for m in removed:
                e["mem"][m] = False if e["mem"].get(m) is not True else None
        objs = self.d.users if kind == "user" else self.d.groups
        items = []
        for oid, e in per.items():
            obj = objs.get(oid)
            if obj is None:
                if oid in self.d.deleted:
                    items.append({"id": oid, "@removed": {"reason": "changed"}})
                continue
            memchg = [(m, a) for m, a in e["mem"].items() if a is not None]
            tracked = e["created"] or sel is None or bool(e["props"] & set(sel))
            if not tracked and not (with_members and memchg):
                continue
            item = self.project(kind, obj, objsel)
            if with_members:
                md = []
                for m, a in memchg:
                    mk = self.d.kind.get(m) or (self.d.deleted.get(m, ("user",))[0])
                    ent = {"@odata.type": "#microsoft.graph." + mk, "id": m}
                    if not a:
                        ent["@removed"] = {"reason": "deleted"}
                    md.append(ent)
                item["members@delta"] = md
            items.append(item)
        chunk = max(1, self.emu.faults["delta_members_chunk"])
        flat = []
        for item in items:
            md = item.get("members@delta")
            if md is None or len(md) <= chunk:
                flat.append(item)
                continue
            for c in range(0, len(md), chunk):
                flat.append(dict(item, **{"members@delta": md[c:c + chunk]}))
        items = flat
        cache[key] = items
        while len(cache) > 16:
            cache.popitem(last=False)
        return items

    # -- getByIds
    def get_by_ids(self, req):
        body = req.json()
        ids = body.get("ids")
        if not isinstance(ids, list) or len(ids) > 1000:
            raise bad("Invalid value for 'ids': at most 1000 ids are allowed.")
        types = [t.lower() for t in body.get("types") or []]
        out = []
        for oid in ids:
            k, obj = self.d.get(oid)
            if k is None or not self.visible(oid) or (types and k not in types):
                continue
            out.append(self.project(k, obj, self.parse_select(req.query, k), typed=True))
        return 200, {}, {"@odata.context": self.context(req, "directoryObjects"), "value": out}

    # -- router
    WRITE = {"POST", "PATCH", "PUT", "DELETE"}

    def route(self, req):
        p = req.path.rstrip("/") or "/"
        seg = p.strip("/").split("/")
        m = req.method
        n = len(seg)
        head = seg[0]
        if head in ("users", "groups"):
            kind = "user" if head == "users" else "group"
            if n == 1:
                if m == "GET":
                    return self.list_objects(req, kind)
                if m == "POST":
                    return self.create_user(req) if kind == "user" else self.create_group(req)
                raise self.not_allowed()
            if n == 2 and seg[1] == "delta":
                if m == "GET":
                    return self.delta(req, kind)
                raise self.not_allowed()
            if n == 2:
                if m == "GET":
                    return self.get_one(req, kind, seg[1])
                if m == "PATCH":
                    return self.patch_user(req, seg[1]) if kind == "user" \
                        else self.patch_group(req, seg[1])
                if m == "DELETE":
                    return self.delete_object(kind, seg[1])
                raise self.not_allowed()
            if kind == "group" and seg[2] == "members":
                if n == 3:
                    if m == "GET":
                        return self.list_members(req, seg[1])
                    if m == "POST":
                        raise bad("Unsupported resource type 'DirectoryObject' for operation "
                                  "'Create'.", code="Request_BadRequest", status=405)
                    raise self.not_allowed()
                if n == 4 and seg[3] == "$ref":
                    if m == "POST":
                        return self.add_member_ref(req, seg[1])
                    raise self.not_allowed()
                if n == 4 and seg[3] in ("microsoft.graph.user", "microsoft.graph.group"):
                    if m == "GET":
                        return self.list_members(req, seg[1], cast=seg[3].split(".")[-1])
                    raise self.not_allowed()
                if n == 5 and seg[4] == "$ref":
                    if m == "DELETE":
                        return self.remove_member_ref(req, seg[1], seg[3])
                    raise self.not_allowed()
                if n == 4:
                    # The trap: no /$ref, so the member object itself is deleted.
                    gid, _g = self.lookup("group", seg[1])
                    if seg[3] not in self.d.members[gid]:
                        raise not_found(seg[3])
                    if m == "DELETE":
                        k = self.d.kind[seg[3]]
                        return self.delete_object(k, seg[3])
                    if m == "GET":
                        k, obj = self.d.get(seg[3])
                        return 200, {}, self.project(k, obj, self.parse_select(req.query, k),
                                                     typed=True)
                    raise self.not_allowed()
            if kind == "user" and n == 3 and seg[2] == "memberOf" and m == "GET":
                oid, _u = self.lookup("user", seg[1])
                vals = [self.project("group", self.d.groups[g], None, typed=True)
                        for g in self.d.member_of.get(oid, ())]
                return 200, {}, {"@odata.context": self.context(req, "directoryObjects"),
                                 "value": vals}
        if head == "directoryObjects":
            if n == 2 and seg[1] == "getByIds" and m == "POST":
                return self.get_by_ids(req)
            if n == 2 and m == "GET":
                oid, obj = self.lookup(None, seg[1])
                k = self.d.kind[oid]
                return 200, {}, self.project(k, obj, self.parse_select(req.query, k),
                                             typed=True)
            if n == 2 and m == "DELETE":
                k = self.d.kind.get(seg[1])
                if k is None:
                    raise not_found(seg[1])
                return self.delete_object(k, seg[1])
        bad_seg = seg[0] if head not in ("users", "groups", "directoryObjects") else seg[-1]
        raise bad("Resource not found for the segment '%s'." % bad_seg, code="BadRequest")

    def not_allowed(self):
        return GraphError(405, "Request_BadRequest",
                          "Specified HTTP method is not allowed for the request target.")


def graph_error_body(e, rid, crid):
    err = {"code": e.code, "message": e.message,
           "innerError": {"date": now_iso(), "request-id": rid, "client-request-id": crid}}
    if e.details:
        err["details"] = e.details
    return {"error": err}


# --------------------------------------------------------------------------
# HTTP layer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "graph-emulator/1.0"
    sys_version = ""

    timeout = 120   # idle keep-alive connections are closed, as servers do

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            # TLS handshake here, in the connection's own thread.
            self.connection.do_handshake()

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_GET

    # -- helpers
    def send(self, status, headers, body, rid=None, crid=None):
        data = b""
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
                headers.setdefault("Content-Type",
                                   "application/json;odata.metadata=minimal;"
                                   "odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
        self.send_response(status)
        if rid:
            self.send_header("request-id", rid)
            self.send_header("client-request-id", crid)
            self.send_header("x-ms-ags-diagnostic",
                             '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E"}}')
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in one write: two small segments would
        # meet the client's delayed ACK and cost 40 ms per response.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n:
            return self.rfile.read(int(n))
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def base(self):
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        return ("https://" if EMU.tls else "http://") + host

    def dispatch(self):
        emu = EMU
        t0 = time.time()
        body = self.read_body()
        raw = self.path
        path, _, qs = raw.partition("?")
        rid = str(uuid.uuid4())
        crid = self.headers.get("client-request-id") or rid
        entry = {"time": now_iso(t0), "method": self.command, "path": raw,
                 "authorization": "Authorization" in self.headers,
                 "headers": {k.lower(): v for k, v in self.headers.items()
                             if k.lower() in ("content-type", "consistencylevel",
                                              "client-request-id", "prefer", "user-agent",
                                              "x-ms-throttle-priority", "if-match")},
                 "request_id": rid}
        entry["body"] = log_body(body, entry["headers"].get("content-type", ""))
        try:
            if path.startswith("/_emulator/"):
                status, hdrs, out = self.control(path, qs, body)
                entry["control"] = True
                self.send(status, hdrs, out)
                entry["status"] = status
                if path != "/_emulator/log":
                    emu.record(entry)
                return
            is_token = re.match(r"^/[^/]+/oauth2/v2\.0/token$", path) is not None
            fault = None
            late = None
            if not is_token or emu.faults["fault_token"]:
                fault = emu.pick_fault(self.command, raw, body)
                if not fault:
                    late = emu.pick_late_fault(self.command, raw, body)
                elif fault[0] in ("drop_after", "504_after"):
                    fault, late = None, fault[0].replace("_after", "") \
                        if fault[0] == "504_after" else "drop_after"
            if emu.faults["latency_ms"]:
                time.sleep(emu.faults["latency_ms"] / 1000.0)
            if fault and fault[0] == "slow":
                time.sleep(emu.faults["slow_ms"] / 1000.0)
                fault = None
            if fault and fault[0] == "drop":
                entry["status"] = None
                entry["fault"] = "drop"
                emu.record(entry)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault:
                entry["fault"] = fault[0] if fault[0] != "status" else str(fault[1])
                e = fault_error(emu, fault)
                if is_token:
                    status, hdrs, out = e.status, dict(e.headers), {
                        "error": "temporarily_unavailable", "error_description":
                        "AADSTS90033: A transient error has occurred. Please try again.",
                        "error_codes": [90033], "timestamp": now_iso().replace("T", " "),
                        "trace_id": rid,
                        "correlation_id": crid}
                else:
                    status, hdrs, out = e.status, dict(e.headers), graph_error_body(e, rid,
                                                                                     crid)
            elif is_token:
                status, hdrs, out = self.token(path, body, rid, crid)
            else:
                status, hdrs, out = self.graph(path, qs, body, rid, crid, entry)
            if late == "drop_after":
                entry["applied_status"] = status
                entry["status"] = None
                entry["fault"] = "drop_after"
                emu.record(entry)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if late == "504":
                entry["fault"] = "504"
                entry["applied_status"] = status
                e = fault_error(emu, ("status", 504, None))
                status, hdrs, out = e.status, dict(e.headers), graph_error_body(e, rid, crid)
        except Exception as ex:  # a bug in the emulator is a 500, never a hang
            import traceback
            traceback.print_exc()
            status, hdrs = 500, {}
            out = graph_error_body(GraphError(500, "InternalServerError",
                                              "emulator: %s" % ex), rid, crid)
        entry["status"] = status
        entry["ms"] = int((time.time() - t0) * 1000)
        emu.record(entry)
        self.send(status, hdrs, out, rid, crid)

    # -- token endpoint
    def token(self, path, body, rid, crid):
        emu = EMU
        tenant = path.split("/")[1]
        hdrs = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache",
                "Content-Type": "application/json; charset=utf-8"}
        try:
            if self.command != "POST":
                raise OAuthError(405, "invalid_request", 900561,
                                 "The endpoint only accepts POST requests.")
            if emu.tenant and tenant.lower() not in (emu.tenant.lower(), emu.tenant_id):
                raise OAuthError(400, "invalid_request", 90002,
                                 "Tenant '%s' not found. Check to make sure you have the "
                                 "correct tenant ID and are signing into the correct cloud."
                                 % tenant)
            ct = (self.headers.get("Content-Type") or "").lower()
            if "application/x-www-form-urlencoded" not in ct:
                raise OAuthError(400, "invalid_request", 900144,
                                 "The request body must contain the following parameter: "
                                 "'grant_type'.")
            form = {}
            for part in body.decode("utf-8", "replace").split("&"):
                if part:
                    k, _, v = part.partition("=")
                    form[urllib.parse.unquote_plus(k)] = urllib.parse.unquote_plus(v)
            basic = self.headers.get("Authorization") or ""
            if basic.lower().startswith("basic "):
                try:
                    cid, _, sec = base64.b64decode(basic[6:]).decode().partition(":")
                    form.setdefault("client_id", urllib.parse.unquote_plus(cid))
                    form.setdefault("client_secret", urllib.parse.unquote_plus(sec))
                except ValueError:
                    pass
            for p in ("grant_type", "client_id", "scope"):
                if not form.get(p):
                    raise OAuthError(400, "invalid_request", 900144,
                                     "The request body must contain the following parameter: "
                                     "'%s'." % p)
            if form["grant_type"] != "client_credentials":
                raise OAuthError(400, "unsupported_grant_type", 70003,
                                 "The app requested an unsupported grant type '%s'."
                                 % form["grant_type"])
            scope = form["scope"]
            if not scope.endswith("/.default"):
                raise OAuthError(400, "invalid_scope", 1002012,
                                 "The provided value for scope %s is not valid. Client "
                                 "credential flows must have a scope value with /.default "
                                 "suffixed to the resource identifier (application ID URI)."
                                 % scope)
            if scope not in GRAPH_APP_SCOPES:
                raise OAuthError(400, "invalid_resource", 500011,
                                 "The resource principal named %s was not found in the "
                                 "tenant." % scope[:-len("/.default")])
            cid = form["client_id"]
            app = emu.apps.get(cid)
            if app is None:
                raise OAuthError(400, "unauthorized_client", 700016,
                                 "Application with identifier '%s' was not found in the "
                                 "directory." % cid)
            if form.get("client_assertion") or form.get("client_assertion_type"):
                if form.get("client_assertion_type") != JWT_BEARER:
                    raise OAuthError(400, "invalid_request", 50027,
                                     "Invalid client_assertion_type '%s'."
                                     % form.get("client_assertion_type"))
                check_assertion(app, cid, form.get("client_assertion") or "", tenant,
                                self.base())
            elif "client_secret" in form:
                if app.get("secret") is None or not hmac.compare_digest(
                        app["secret"].encode(), form["client_secret"].encode()):
                    raise OAuthError(401, "invalid_client", 7000215,
                                     "Invalid client secret provided. Ensure the secret being "
                                     "sent in the request is the client secret value, not the "
                                     "client secret ID, for a secret added to app '%s'." % cid)
            else:
                raise OAuthError(401, "invalid_client", 7000218,
                                 "The request body must contain the following parameter: "
                                 "'client_assertion' or 'client_secret'.")
            life = emu.faults["token_lifetime"]
            return 200, hdrs, {"token_type": "Bearer", "expires_in": life,
                               "ext_expires_in": life, "access_token": emu.make_token(cid)}
        except OAuthError as e:
            return e.status, hdrs, {
                "error": e.error,
                "error_description": "AADSTS%d: %s Trace ID: %s Correlation ID: %s "
                                     "Timestamp: %s" % (e.aadsts, e.description, rid, crid,
                                                        now_iso().replace("T", " ")),
                "error_codes": [e.aadsts], "timestamp": now_iso().replace("T", " "),
                "trace_id": rid, "correlation_id": crid}

    # -- Graph
    def graph(self, path, qs, body, rid, crid, entry):
        emu = EMU
        try:
            if not path.startswith("/v1.0/") and path != "/v1.0":
                if path.startswith("/beta/"):
                    raise bad("The emulator serves v1.0 only.", code="BadRequest")
                raise bad("Invalid version: %s" % path.split("/")[1], code="BadRequest",
                          status=400)
            app = emu.check_token(self.headers.get("Authorization"))
            entry["app"] = app
            hdr = {k.lower(): v for k, v in self.headers.items()}
            dpath = urllib.parse.unquote(path[len("/v1.0"):])
            query = parse_query(qs)
            req = Req(self.command, dpath, query, hdr, body, self.base(), app, raw=self.path)
            if dpath.rstrip("/") == "/$batch":
                if self.command != "POST":
                    raise Service(emu).not_allowed()
                return self.batch(req, rid, crid)
            return run_one(emu, req, rid, crid)
        except GraphError as e:
            h = dict(e.headers)
            if e.status == 401:
                h["WWW-Authenticate"] = ('Bearer realm="", authorization_uri='
                                         '"https://login.microsoftonline.com/common/oauth2/'
                                         'authorize", client_id="00000003-0000-0000-c000-'
                                         '000000000000"')
            return e.status, h, graph_error_body(e, rid, crid)

    def batch(self, req, rid, crid):
        emu = EMU
        body = req.json()
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            raise bad("Invalid batch payload format.", code="BadRequest")
        if len(reqs) > 20:
            raise bad("The number of batch requests in the payload exceeds the limit of 20.",
                      code="BadRequest")
        seen = {}
        for r in reqs:
            if not isinstance(r, dict) or not isinstance(r.get("id"), str) or not r["id"] \
                    or not isinstance(r.get("method"), str) or not isinstance(r.get("url"), str):
                raise bad("Invalid batch payload format.", code="BadRequest")
            low = r["id"].lower()
            if low in seen:
                raise bad("Batch request ids must be unique. Request id '%s' is a duplicate."
                          % r["id"], code="BadRequest")
            seen[low] = r
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", r["url"]):
                raise bad("Invalid request URL '%s': batch requests must use relative URLs."
                          % r["url"], code="BadRequest")
            if "body" in r and r["body"] is not None:
                h = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
                if "content-type" not in h:
                    raise bad("Write request id : %s does not contain Content-Type header or "
                              "body." % r["id"], code="BadRequest")
            dep = r.get("dependsOn")
            if dep is not None:
                if not isinstance(dep, list) or any(not isinstance(x, str) for x in dep):
                    raise bad("Invalid batch payload format.", code="BadRequest")
        for r in reqs:
            for dname in r.get("dependsOn") or []:
                if dname.lower() not in seen or dname.lower() == r["id"].lower():
                    raise bad("Request dependsOn id '%s' is not defined in the batch."
                              % dname, code="BadRequest")
        results = {}
        order = []
        pending = list(reqs)
        while pending:
            progressed = False
            for r in list(pending):
                deps = [d.lower() for d in r.get("dependsOn") or []]
                if any(d not in results for d in deps):
                    continue
                pending.remove(r)
                progressed = True
                irid = str(uuid.uuid4())
                failed = [d for d in deps if not 200 <= results[d]["status"] < 300]
                if failed:
                    e = GraphError(424, "FailedDependency",
                                   "Failed dependency: request '%s' failed." % seen[failed[0]]["id"])
                    res = {"id": r["id"], "status": 424,
                           "headers": {"Content-Type": "application/json"},
                           "body": graph_error_body(e, irid, crid)}
                else:
                    res = run_inner(emu, req, r, irid, crid)
                results[r["id"].lower()] = res
                order.append(res)
            if not progressed:
                raise bad("Batch dependsOn contains a cycle.", code="BadRequest")
        if emu.faults["shuffle"]:
            with emu.flock:
                emu.batch_rng.shuffle(order)
        return 200, {}, {"responses": order}

    # -- control API
    def control(self, path, qs, body):
        emu = EMU
        q = urllib.parse.parse_qs(qs)
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return 400, {}, {"error": "invalid JSON"}
        m = self.command
        if path == "/_emulator/health":
            return 200, {}, {"ok": True, "port": self.server.server_address[1]}
        if path == "/_emulator/log" and m == "GET":
            since = int(q.get("since", ["0"])[0])
            with emu.log_lock:
                return 200, {}, emu.log[since:]
        if path == "/_emulator/state" and m == "GET":
            with emu.dir.lock:
                return 200, {}, emu.dir.state()
        if path == "/_emulator/reset" and m == "POST":
            with emu.dir.lock:
                emu.dir.reset()
            with emu.log_lock:
                emu.log = []
            with emu.flock:
                emu.writes.clear()
                emu.occurrences.clear()
                emu.delta_cache.clear()
            if data.get("faults"):
                emu.faults = dict(DEFAULT_FAULTS)
            return 200, {}, {"ok": True}
        if path == "/_emulator/faults":
            if m == "GET":
                return 200, {}, emu.faults
            if m == "POST":
                try:
                    emu.set_faults(data)
                except (ValueError, TypeError) as e:
                    return 400, {}, {"error": str(e)}
                return 200, {}, emu.faults
        if path == "/_emulator/apps" and m == "POST":
            try:
                register_app(emu, data["client_id"], data.get("secret"), data.get("cert_pem"))
            except (KeyError, ValueError) as e:
                return 400, {}, {"error": str(e)}
            return 200, {}, {"ok": True}
        if path == "/_emulator/seed" and m == "POST":
            try:
                with emu.dir.lock:
                    ids = seed(emu, data)
            except (KeyError, ValueError, TypeError) as e:
                return 400, {}, {"error": "seed: %s" % e}
            return 200, {}, {"ids": ids}
        return 404, {}, {"error": "no such control endpoint"}


def log_body(body, ct):
    if not body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode()}
    if "json" in ct:
        try:
            v = json.loads(text)
        except ValueError:
            return text
        # Passwords never reach the log; their presence does.
        if isinstance(v, dict) and isinstance(v.get("passwordProfile"), dict) and \
                "password" in v["passwordProfile"]:
            v["passwordProfile"] = dict(v["passwordProfile"], password="<redacted>")
        if isinstance(v, dict) and isinstance(v.get("requests"), list):
            for r in v["requests"]:
                b = r.get("body") if isinstance(r, dict) else None
                if isinstance(b, dict) and isinstance(b.get("passwordProfile"), dict):
                    b["passwordProfile"] = dict(b["passwordProfile"], password="<redacted>")
        return v
    if "x-www-form-urlencoded" in ct:
        form = urllib.parse.parse_qs(text, keep_blank_values=True)
        return {k: ("<redacted>" if k in ("client_secret", "client_assertion") else v[0])
                for k, v in form.items()}
    return text


def fault_error(emu, fault):
    kind, st, ra = fault
    ra = str(ra) if ra is not None else emu.faults["retry_after"]
    if kind == "503":
        return GraphError(503, "serviceNotAvailable",
                          "Service is temporarily unavailable. Please retry later.",
                          headers={"Retry-After": ra})
    if kind == "429":
        return GraphError(429, "TooManyRequests",
                          "Too many requests. Please retry after the time given in the "
                          "Retry-After header.",
                          headers={"Retry-After": ra, "x-ms-throttle-information":
                                   "ResourceUnitLimitExceeded"})
    if kind == "status":
        codes = {500: "InternalServerError", 502: "BadGateway", 504: "GatewayTimeout",
                 409: "Conflict", 404: "Request_ResourceNotFound"}
        h = {"Retry-After": ra} if fault[2] is not None else {}
        return GraphError(st, codes.get(st, "UnknownError"), "Injected failure.", headers=h)
    return GraphError(500, "InternalServerError", "Injected failure '%s'." % kind)


def run_one(emu, req, rid, crid):
    """Run one Graph request (outer or inner) with the write quota."""
    svc = Service(emu)
    try:
        if req.method in Service.WRITE:
            emu.take_write(req.app)
        with emu.dir.lock:
            status, hdrs, out = svc.route(req)
        if status == 200 and isinstance(out, dict):
            relink(emu, req, out)
        return status, hdrs, out
    except GraphError as e:
        return e.status, dict(e.headers), graph_error_body(e, rid, crid)


def relink(emu, req, out):
    """The hostile links of next_link_base, delta_link_base and next_link_loop."""
    f = emu.faults
    nl = out.get("@odata.nextLink")
    if nl and f["next_link_loop"] and req.raw:
        nl = out["@odata.nextLink"] = req.base + req.raw
    if nl and f["next_link_base"]:
        u = urllib.parse.urlsplit(nl)
        out["@odata.nextLink"] = f["next_link_base"] + nl[len(u.scheme) + 3 + len(u.netloc):]
    dl = out.get("@odata.deltaLink")
    if dl and f["delta_link_base"]:
        u = urllib.parse.urlsplit(dl)
        out["@odata.deltaLink"] = f["delta_link_base"] + dl[len(u.scheme) + 3 + len(u.netloc):]


def run_inner(emu, outer, r, irid, crid):
    url = r["url"]
    if not url.startswith("/"):
        url = "/" + url
    path, _, qs = url.partition("?")
    method = r["method"].upper()
    ihdr = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
    body = None
    if r.get("body") is not None:
        b = r["body"]
        body = b.encode() if isinstance(b, str) and "json" not in ihdr.get("content-type", "") \
            else json.dumps(b).encode()
        if isinstance(b, str) and "json" in ihdr.get("content-type", ""):
            body = b.encode()
    entry = {"time": now_iso(), "method": method, "path": "/v1.0" + url, "in_batch": True,
             "authorization": True, "headers": ihdr, "request_id": irid,
             "body": log_body(body, ihdr.get("content-type", "")), "app": outer.app}
    fault = emu.pick_fault(method, "/v1.0" + url, body, inner=True)
    late = None if fault else emu.pick_late_fault(method, "/v1.0" + url, body, inner=True)
    if fault and fault[0] == "504_after":
        fault, late = None, "504"
    if fault:
        e = fault_error(emu, fault)
        entry["fault"] = fault[0] if fault[0] != "status" else str(fault[1])
        status, hdrs, out = e.status, dict(e.headers), graph_error_body(e, irid, crid)
    elif path.startswith("/v1.0/") or path.startswith("/beta/"):
        e = bad("Resource not found for the segment '%s'." % path.split("/")[1],
                code="BadRequest")
        status, hdrs, out = e.status, {}, graph_error_body(e, irid, crid)
    else:
        try:
            q = parse_query(qs)
            req = Req(method, urllib.parse.unquote(path), q, ihdr, body, outer.base, outer.app,
                      inner=True, raw="/v1.0" + url)
            status, hdrs, out = run_one(emu, req, irid, crid)
        except GraphError as e:
            status, hdrs, out = e.status, dict(e.headers), graph_error_body(e, irid, crid)
    if late == "504":
        entry["fault"] = "504"
        entry["applied_status"] = status
        e = fault_error(emu, ("status", 504, None))
        status, hdrs, out = e.status, dict(e.headers), graph_error_body(e, irid, crid)
    entry["status"] = status
    emu.record(entry)
    res = {"id": r["id"], "status": status, "headers": dict(hdrs)}
    if out is not None:
        res["headers"].setdefault("Content-Type", "application/json")
        res["body"] = out
    return res


def register_app(emu, cid, secret=None, cert_pem=None):
    app = {"secret": secret}
    if cert_pem:
        der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=cert_pem.encode(),
                             capture_output=True)
        if der.returncode != 0:
            raise ValueError("not a PEM certificate")
        pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=cert_pem.encode(),
                             capture_output=True)
        app["cert"] = {"x5t": b64u(hashlib.sha1(der.stdout).digest()),
                       "x5t#S256": b64u(hashlib.sha256(der.stdout).digest()),
                       "pubkey": pub.stdout}
    emu.apps[cid] = app


def check_assertion(app, cid, assertion, tenant, base):
    def fail(code, msg, error="invalid_client", status=401):
        raise OAuthError(status, error, code, msg)
    parts = assertion.split(".")
    if len(parts) != 3:
        fail(50027, "JWT token is invalid or malformed.", "invalid_request", 400)
    try:
        header = json.loads(b64u_dec(parts[0]))
        claims = json.loads(b64u_dec(parts[1]))
        sig = b64u_dec(parts[2])
    except (ValueError, TypeError):
        fail(50027, "JWT token is invalid or malformed.", "invalid_request", 400)
    if not isinstance(header, dict) or not isinstance(claims, dict):
        fail(50027, "JWT token is invalid or malformed.", "invalid_request", 400)
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        fail(5002738, "Invalid JWT token. '%s' is not a supported signature algorithm." % alg)
    thumb = header.get("x5t#S256") or header.get("x5t")
    if not thumb:
        fail(700027, "Client assertion contains an invalid signature. [Reason - The key was not "
             "found., Thumbprint of key used by client: '']")
    if claims.get("iss") != cid or claims.get("sub") != cid:
        fail(700021, "Client assertion application identifier doesn't match 'client_id' "
             "parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/"
             "active-directory/develop/active-directory-certificate-credentials .")
    auds = ("https://login.microsoftonline.com/%s/oauth2/v2.0/token" % tenant,
            "%s/%s/oauth2/v2.0/token" % (base, tenant))
    if claims.get("aud") not in auds:
        fail(700212, "No matching federated identity record found for presented assertion "
             "audience '%s'." % claims.get("aud"))
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
    if not isinstance(exp, (int, float)) or exp <= now - 300 or \
            (isinstance(nbf, (int, float)) and nbf > now + 300):
        fail(700024, "Client assertion is not within its valid time range. Current time: %s, "
             "assertion valid from %s, expiry time of assertion %s."
             % (now_iso(now), nbf, exp))
    cert = app.get("cert")
    if cert is None:
        if app.get("secret") is not None:
            fail(700027, "Client assertion failed signature validation. No certificate is "
                 "registered for the application.")
        return
    key = "x5t#S256" if "x5t#S256" in header else "x5t"
    if header[key] != cert[key]:
        fail(700027, "Client assertion contains an invalid signature. [Reason - The key was not "
             "found., Thumbprint of key used by client: '%s']" % header[key])
    with tempfile.TemporaryDirectory() as td:
        pk, sg, dt = (os.path.join(td, n) for n in ("pub.pem", "sig", "data"))
        with open(pk, "wb") as f:
            f.write(cert["pubkey"])
        with open(sg, "wb") as f:
            f.write(sig)
        with open(dt, "wb") as f:
            f.write(("%s.%s" % (parts[0], parts[1])).encode())
        cmd = ["openssl", "dgst", "-sha256", "-verify", pk, "-signature", sg]
        if alg == "PS256":
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-2"]
        r = subprocess.run(cmd + [dt], capture_output=True)
    if r.returncode != 0:
        fail(700027, "Client assertion failed signature validation.")


def seed(emu, data):
    """Load objects as-is (no required-property checks): cloud-only or synced objects."""
    d = emu.dir
    ids = {"users": [], "groups": []}
    for u in data.get("users") or []:
        obj = dict(u)
        obj.setdefault("id", str(uuid.uuid4()))
        obj.setdefault("createdDateTime", now_iso())
        if obj["id"] in d.kind:
            raise ValueError("duplicate id %s" % obj["id"])
        if obj.get("userPrincipalName") and obj["userPrincipalName"].lower() in d.upn_idx:
            raise ValueError("duplicate userPrincipalName %s" % obj["userPrincipalName"])
        d.add_object("user", obj)
        ids["users"].append(obj["id"])
    pending = []
    for g in data.get("groups") or []:
        obj = dict(g)
        members = obj.pop("members", []) or []
        owners = obj.pop("owners", []) or []
        obj.setdefault("id", str(uuid.uuid4()))
        obj.setdefault("createdDateTime", now_iso())
        obj.setdefault("groupTypes", [])
        if obj["id"] in d.kind:
            raise ValueError("duplicate id %s" % obj["id"])
        d.add_object("group", obj)
        ids["groups"].append(obj["id"])
        pending.append((obj["id"], members, owners))
    for gid, members, owners in pending:
        added = []
        for m in members:
            mid = d.upn_idx.get(m.lower(), m) if "@" in m else m
            if mid not in d.kind:
                raise ValueError("unknown member %s" % m)
            d.add_member(gid, mid, log=False)
            added.append(mid)
        for o in owners:
            d.owners[gid][d.upn_idx.get(o.lower(), o)] = None
        if added:
            d.log_change("group", gid, ("members",), added=added)
    return ids




# --------------------------------------------------------------------------
# Persistence and main

def save_state(emu, path):
    d = emu.dir
    with d.lock:
        st = d.state()
        for u in st["users"]:
            pp = d.users[u["id"]].get("passwordProfile")
            if pp:
                u["passwordProfile"] = pp
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"users": st["users"], "groups": st["groups"]}, f)
    os.replace(tmp, path)


def load_state(emu, path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return
    with emu.dir.lock:
        seed(emu, data)


EMU = None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that hang up or fail the TLS handshake are not our bug.
        ex = sys.exc_info()[1]
        if isinstance(ex, (ConnectionError, ssl.SSLError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    global EMU
    ap = argparse.ArgumentParser(description="Microsoft Graph emulator for tests")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--app", action="append", default=[], help="CLIENT_ID:SECRET")
    ap.add_argument("--app-cert", action="append", default=[], help="CLIENT_ID:CERT.pem")
    ap.add_argument("--apps-file", help='JSON: [{"client_id", "secret", "cert_file"}]')
    ap.add_argument("--tenant")
    ap.add_argument("--tenant-id")
    ap.add_argument("--domain", action="append")
    ap.add_argument("--log")
    ap.add_argument("--state")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--latency-ms", type=int)
    ap.add_argument("--fault-429", type=float)
    ap.add_argument("--fault-503", type=float)
    ap.add_argument("--fault-drop", type=float)
    ap.add_argument("--fault-slow", type=float)
    ap.add_argument("--fault-504", type=float)
    ap.add_argument("--fault-drop-after", type=float)
    ap.add_argument("--slow-ms", type=int)
    ap.add_argument("--retry-after")
    ap.add_argument("--eventual-404", type=float)
    ap.add_argument("--write-limit", type=int)
    ap.add_argument("--write-window", type=float)
    ap.add_argument("--token-lifetime", type=int)
    ap.add_argument("--delta-token-lifetime", type=int)
    ap.add_argument("--page-size", type=int)
    ap.add_argument("--delta-members-chunk", type=int)
    ap.add_argument("--empty-page", type=float)
    ap.add_argument("--delta-replay", type=float)
    ap.add_argument("--next-link-base")
    ap.add_argument("--delta-link-base")
    ap.add_argument("--next-link-loop", action="store_true", default=None)
    ap.add_argument("--fault-token", action="store_true", default=None)
    ap.add_argument("--no-shuffle", dest="shuffle", action="store_false", default=None)
    opts = ap.parse_args(argv)
    if bool(opts.tls_cert) != bool(opts.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    EMU = emu = Emulator(opts)
    emu.set_faults({k: v for k, v in vars(opts).items()
                    if k in DEFAULT_FAULTS and v is not None})
    for a in opts.app:
        cid, sep, sec = a.partition(":")
        if not sep:
            ap.error("--app wants CLIENT_ID:SECRET")
        register_app(emu, cid, sec)
    if opts.apps_file:
        with open(opts.apps_file) as f:
            for a in json.load(f):
                pem = None
                if a.get("cert_file"):
                    with open(a["cert_file"]) as c:
                        pem = c.read()
                register_app(emu, a["client_id"], a.get("secret"), pem)
    for a in opts.app_cert:
        cid, sep, fn = a.partition(":")
        if not sep:
            ap.error("--app-cert wants CLIENT_ID:CERT.pem")
        with open(fn) as f:
            register_app(emu, cid, emu.apps.get(cid, {}).get("secret"), f.read())
    if opts.state:
        try:
            load_state(emu, opts.state)
        except (ValueError, KeyError, TypeError) as ex:
            sys.stderr.write("graph-emulator: cannot load state '%s': %s\n" % (opts.state, ex))
            return 2
    try:
        srv = Server((opts.bind, opts.port), Handler)
    except OSError as ex:
        sys.stderr.write("graph-emulator: cannot listen on %s:%d: %s\n"
                         % (opts.bind, opts.port, ex.strerror or ex))
        return 2
    if opts.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        ctx.set_alpn_protocols(["http/1.1"])
        # The handshake happens in the handler thread on first read, so a
        # slow or failing client does not stall the accept loop.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    port = srv.server_address[1]
    if opts.port_file:
        tmp = opts.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, opts.port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                          daemon=True)
    th.start()
    while not stop.wait(1.0):
        pass
    srv.shutdown()
    srv.server_close()
    if opts.state:
        save_state(emu, opts.state)
    if emu.log_file:
        emu.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
