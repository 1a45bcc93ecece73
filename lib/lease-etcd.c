/*
 * lease-etcd.c: the role lease in etcd (v3), through the JSON gateway
 * every etcd member serves on its client URLs (POST /v3/kv/range,
 * /v3/kv/txn, /v3/lease/grant, /v3/lease/revoke, /v3/auth/authenticate;
 * keys and values base64 in the JSON).
 *
 * etcd replicates every write through Raft to a majority of its
 * members before it answers, and its reads (range without
 * serializable) are linearizable, so one cluster spread over several
 * sites gives one lease that all servers see alike, whichever member
 * each one talks to: unlike the multi-master directories, there is no
 * member on which a compare-and-swap is atomic and another on which it
 * is not.  Without a majority a member refuses to read or write, and
 * the lease cannot be taken or renewed anywhere.
 *
 * Two keys: PREFIX/lease holds the value ("holder=...;fence=...;
 * expires=...") and is attached to an etcd lease granted with the
 * role's duration as its TTL, so that the key of a holder that stopped
 * renewing disappears by itself; PREFIX/fence holds the fencing number
 * and never expires, so that a new holder after an expiry still takes a
 * number larger than every one taken before.  Both are read by one
 * range and written by one transaction that compares the mod_revision
 * of each with the revision read (0: absent), so a server that lost a
 * race changes nothing.  An absent PREFIX/lease reads as a lease
 * nobody holds, with the fencing number of PREFIX/fence.
 *
 * A renewal grants a new etcd lease, moves the key to it in the
 * transaction, and revokes the old one: the key's TTL always matches
 * the expiry in its value.
 *
 * Endpoints are tried in order, from the last one that answered: a
 * member that cannot be reached, times out or has no leader is passed
 * over.  A transaction resent to another member after a timeout is
 * safe: if the first one was applied, the compare of the second fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "role.h"

struct lease_etcd {
	struct lease_store s;           /* first: the store is the keys */
	const struct sync_role_conf *rc;
	struct sync_http *http;
	size_t cur;                     /* the endpoint that answered last */
	char *token;                    /* auth token, or NULL */
	char *lkey, *fkey;              /* PREFIX/lease, PREFIX/fence */
	/* What the last read saw. */
	int have;
	char *value;
	int64_t lrev, frev;             /* mod_revision, 0: absent */
	int64_t lease;                  /* PREFIX/lease's etcd lease, or 0 */
};

/* A gRPC status code in the gateway's error answers. */
#define GRPC_DEADLINE 4
#define GRPC_UNAVAILABLE 14
#define GRPC_UNAUTHENTICATED 16

/* ------------------------------------------------------------- JSON bits */

/* An int64 the gateway writes as a string (or a number); 0 if absent. */
static int64_t
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static json_t *
jb64(const char *s)
{
	char *b = sync_base64_encode(s, strlen(s));
	json_t *v;

	if (b == NULL)
		return NULL;
	v = json_string(b);
	free(b);
	return v;
}

static json_t *
jrev(int64_t n)
{
	char s[24];

	snprintf(s, sizeof s, "%" PRId64, n);
	return json_string(s);
}

/* A base64 field of o decoded (a new string), or NULL. */
static char *
jdecode(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	unsigned char *out = NULL;
	struct sync_err ignored;
	size_t n;

	if (s == NULL)
		return sync_strdup("");
	if (sync_base64_decode(s, strlen(s), &out, &n, &ignored) == -1)
		return NULL;
	if (memchr(out, '\0', n) != NULL) {
		free(out);
		return NULL;
	}
	return (char *)out;
}

/* ------------------------------------------------------------- requests */

/* Transient: a timeout, no leader, a member shutting down. */
static int
unavailable(long code, const char *msg)
{
	return code == GRPC_UNAVAILABLE || code == GRPC_DEADLINE ||
	    strstr(msg, "context deadline exceeded") != NULL ||
	    strstr(msg, "no leader") != NULL ||
	    strstr(msg, "timed out") != NULL ||
	    strstr(msg, "leader changed") != NULL;
}

/*
 * A failure that says a member was reached but could not answer in
 * time: what a member without a majority of its cluster does.
 */
static int
waited(const char *msg)
{
	return strstr(msg, "timed out") != NULL ||
	    strstr(msg, "deadline exceeded") != NULL ||
	    strstr(msg, "no leader") != NULL ||
	    strstr(msg, "leader changed") != NULL;
}

static int authenticate(struct lease_etcd *l, const char *url,
    struct sync_err *err);

/*
 * POSTs body (consumed) to path on one endpoint after the other until
 * one answers; *out is the answer (a new reference).  0, or -1 with err
 * set.
 */
static int
request(struct lease_etcd *l, const char *path, json_t *body, json_t **out,
    struct sync_err *err)
{
	const struct sync_role_conf *rc = l->rc;
	struct sync_http_resp resp = { 0 };
	struct sync_http_req q = { 0 };
	struct sync_buf url = { 0 };
	struct sync_err last = { 0 }, e;
	char *text = NULL;
	json_t *ans;
	json_error_t je;
	const char *msg;
	size_t i, ep, down = 0;
	int quorum = 0;
	long code;
	int authed = 0, rv = -1;

	*out = NULL;
	if (body == NULL || (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		json_decref(body);
		return sync_errf(err, "out of memory");
	}
	json_decref(body);
	sync_http_resp_release(&resp);
	for (i = 0; i < rc->endpoints.n; i++) {
		ep = (l->cur + i) % rc->endpoints.n;
		sync_buf_reset(&url);
		if (sync_buf_addf(&url, "%s%s", rc->endpoints.v[ep],
		    path) == -1) {
			sync_errf(err, "out of memory");
			goto out;
		}
again:
		if (rc->user && l->token == NULL) {
			if ((rv = authenticate(l, rc->endpoints.v[ep],
			    &last)) == -2) {
				rv = -1;
				quorum |= waited(last.msg);
				down++;
				continue;
			}
			if (rv == -1) {
				*err = last;
				goto out;
			}
			rv = -1;
		}
		q.method = "POST";
		q.url = url.p;
		q.body = text;
		q.bodylen = strlen(text);
		q.content_type = "application/json";
		q.authorization = l->token;
		if (sync_http_send(l->http, &q, &resp, &last) == -1) {
			quorum |= waited(last.msg);
			/*
			 * A member that requires client certificates drops
			 * a client without one, after or during the TLS
			 * handshake, in words that vary.
			 */
			if (rc->cert_file == NULL && !waited(last.msg) &&
			    strncmp(url.p, "https://", 8) == 0 &&
			    strstr(last.msg, "refused") == NULL &&
			    strstr(last.msg, "not trusted") == NULL) {
				e = last;
				sync_errf(&last, "%s (does the cluster require "
				    "client certificates? set cert_file and "
				    "key_file)", e.msg);
			}
			down++;
			continue;       /* not reached, or no answer in time */
		}
		ans = json_loadb(resp.body.p, resp.body.len, 0, &je);
		if (resp.status == 200 && json_is_object(ans)) {
			l->cur = ep;
			*out = ans;
			rv = 0;
			goto out;
		}
		msg = json_string_value(json_object_get(ans, "error"));
		if (msg == NULL)
			msg = json_string_value(json_object_get(ans, "message"));
		code = (long)jint(ans, "code");
		sync_errf(&last, "etcd: %s: %s", url.p, msg ? msg :
		    "not an etcd answer");
		if (msg && resp.status != 200 && unavailable(code, msg)) {
			json_decref(ans);
			quorum = 1;
			down++;
			continue;
		}
		/* An expired token (or a restarted member's): once more. */
		if (msg && rc->user && !authed &&
		    (code == GRPC_UNAUTHENTICATED ||
		    strstr(msg, "invalid auth token") != NULL)) {
			json_decref(ans);
			authed = 1;
			sync_secret_free(l->token);
			l->token = NULL;
			goto again;
		}
		if (msg && rc->user == NULL && (strstr(msg, "user name is "
		    "empty") != NULL || code == GRPC_UNAUTHENTICATED))
			sync_errf(&last, "etcd: %s: %s (authentication is "
			    "enabled on the cluster: set 'user' and "
			    "'password_file')", url.p, msg);
		json_decref(ans);
		*err = last;
		goto out;
	}
	if (down == rc->endpoints.n && quorum)
		sync_errf(err, "etcd: no member answered (no quorum? a "
		    "member without a majority of its cluster neither reads "
		    "nor writes): %s", last.msg);
	else if (down == rc->endpoints.n && rc->endpoints.n > 1)
		sync_errf(err, "etcd: no member could be reached: %s",
		    last.msg);
	else
		*err = last;
out:
	free(text);
	sync_buf_release(&url);
	sync_http_resp_release(&resp);
	return rv;
}

/*
 * Trades user and password for a token on the endpoint base.  0, -1
 * with err set, or -2 when the member could not be reached or could not
 * answer (the next one may).
 */
static int
authenticate(struct lease_etcd *l, const char *base, struct sync_err *err)
{
	const struct sync_role_conf *rc = l->rc;
	struct sync_http_resp resp = { 0 };
	struct sync_http_req q = { 0 };
	struct sync_buf url = { 0 };
	char *pw, *text = NULL;
	const char *msg, *tok;
	json_t *body, *ans = NULL;
	json_error_t je;
	int rv = -1;

	if ((pw = sync_secret_read(rc->password_file, err)) == NULL)
		return sync_errpre(err, "etcd");
	body = json_pack("{s:s, s:s}", "name", rc->user, "password", pw);
	if (body)
		text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	sync_secret_free(pw);
	if (text == NULL || sync_buf_addf(&url, "%s/v3/auth/authenticate",
	    base) == -1) {
		sync_errf(err, "out of memory");
		goto out;
	}
	sync_http_resp_release(&resp);
	q.method = "POST";
	q.url = url.p;
	q.body = text;
	q.bodylen = strlen(text);
	q.content_type = "application/json";
	if (sync_http_send(l->http, &q, &resp, err) == -1) {
		rv = -2;
		goto out;
	}
	ans = json_loadb(resp.body.p, resp.body.len, 0, &je);
	tok = json_string_value(json_object_get(ans, "token"));
	if (resp.status == 200 && tok != NULL) {
		if ((l->token = sync_strdup(tok)) == NULL)
			sync_errf(err, "out of memory");
		else
			rv = 0;
		goto out;
	}
	msg = json_string_value(json_object_get(ans, "error"));
	if (msg && unavailable((long)jint(ans, "code"), msg)) {
		sync_errf(err, "etcd: %s: %s", url.p, msg);
		rv = -2;
	} else
		sync_errf(err, "etcd: %s: user '%s': %s", url.p, rc->user,
		    msg ? msg : "no token in the answer");
out:
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	json_decref(ans);
	sync_buf_release(&url);
	sync_http_resp_release(&resp);
	return rv;
}

/* ---------------------------------------------------------------- store */

static int
etcd_read(struct lease_store *s, char **value, struct sync_err *err)
{
	struct lease_etcd *l = (struct lease_etcd *)s;
	struct sync_buf b = { 0 };
	char *end, *key, *v, *lval = NULL, *fval = NULL;
	json_t *ans, *kvs, *kv;
	size_t i;
	int64_t lrev = 0, frev = 0, lease = 0;
	int rc;

	*value = NULL;
	l->have = 0;
	/*
	 * [PREFIX/fence, PREFIX/lease + NUL): both keys in one linearizable
	 * read (the range end is the lease key with its NUL byte).
	 */
	if ((end = sync_base64_encode(l->lkey, strlen(l->lkey) + 1)) == NULL)
		return sync_errf(err, "out of memory");
	rc = request(l, "/v3/kv/range", json_pack("{s:o, s:s}", "key",
	    jb64(l->fkey), "range_end", end), &ans, err);
	free(end);
	if (rc == -1)
		return -1;
	kvs = json_object_get(ans, "kvs");
	json_array_foreach(kvs, i, kv) {
		if ((key = jdecode(kv, "key")) == NULL)
			continue;
		if (strcmp(key, l->lkey) == 0 || strcmp(key, l->fkey) == 0) {
			if ((v = jdecode(kv, "value")) == NULL) {
				sync_errf(err, "etcd: key '%s' holds a value "
				    "that is not text", key);
				free(key);
				goto fail;
			}
			if (strcmp(key, l->lkey) == 0) {
				free(lval);
				lval = v;
				lrev = jint(kv, "mod_revision");
				lease = jint(kv, "lease");
			} else {
				free(fval);
				fval = v;
				frev = jint(kv, "mod_revision");
			}
		}
		free(key);
	}
	if (fval && (fval[0] == '\0' || strspn(fval, "0123456789") !=
	    strlen(fval))) {
		sync_errf(err, "etcd: key '%s' holds '%.40s', not a fencing "
		    "number", l->fkey, fval);
		goto fail;
	}
	if (lval == NULL) {
		/* Never taken, or expired and deleted by etcd: nobody's. */
		if (sync_buf_addf(&b, "holder=;fence=%s;expires=0",
		    fval ? fval : "0") == -1) {
			sync_errf(err, "out of memory");
			goto fail;
		}
		lval = sync_buf_detach(&b);
	}
	free(fval);
	json_decref(ans);
	free(l->value);
	if ((l->value = sync_strdup(lval)) == NULL) {
		free(lval);
		return sync_errf(err, "out of memory");
	}
	l->lrev = lrev;
	l->frev = frev;
	l->lease = lease;
	l->have = 1;
	*value = lval;
	return 0;
fail:
	free(lval);
	free(fval);
	json_decref(ans);
	return -1;
}

static void
revoke(struct lease_etcd *l, int64_t id)
{
	struct sync_err ignored;
	json_t *ans;

	/* Best effort: an etcd lease not revoked ends with its TTL. */
	if (id != 0 && request(l, "/v3/lease/revoke", json_pack("{s:o}", "ID",
	    jrev(id)), &ans, &ignored) == 0)
		json_decref(ans);
}

static int
etcd_cas(struct lease_store *s, const char *old, const char *new,
    struct sync_err *err)
{
	struct lease_etcd *l = (struct lease_etcd *)s;
	const char *f = strstr(new, ";fence=");
	char fence[24], *cur;
	json_t *ans, *cmp, *ops, *txn;
	int64_t id, oldlease;
	size_t n;
	int won;

	if (f == NULL || (n = strspn(f + 7, "0123456789")) == 0 ||
	    n >= sizeof fence)
		return sync_errf(err, "etcd: no fencing number in '%.200s'", new);
	memcpy(fence, f + 7, n);
	fence[n] = '\0';
	/* The revisions to compare are those of the value old. */
	if (!l->have || strcmp(old, l->value) != 0) {
		if (etcd_read(s, &cur, err) == -1)
			return -1;
		won = strcmp(cur, old) == 0;
		free(cur);
		if (!won)
			return 1;
	}
	l->have = 0;
	if (request(l, "/v3/lease/grant", json_pack("{s:I}", "TTL",
	    (json_int_t)l->rc->duration), &ans, err) == -1)
		return sync_errpre(err, "taking an etcd lease");
	id = jint(ans, "ID");
	json_decref(ans);
	if (id == 0)
		return sync_errf(err, "etcd: lease grant: no lease ID in the "
		    "answer");
	cmp = json_pack("[{s:o, s:s, s:s, s:o}, {s:o, s:s, s:s, s:o}]",
	    "key", jb64(l->lkey), "target", "MOD", "result", "EQUAL",
	    "mod_revision", jrev(l->lrev),
	    "key", jb64(l->fkey), "target", "MOD", "result", "EQUAL",
	    "mod_revision", jrev(l->frev));
	ops = json_pack("[{s:{s:o, s:o, s:o}}, {s:{s:o, s:o}}]",
	    "request_put", "key", jb64(l->lkey), "value", jb64(new),
	    "lease", jrev(id),
	    "request_put", "key", jb64(l->fkey), "value", jb64(fence));
	/* json_pack takes the references, and fails on a NULL one. */
	txn = json_pack("{s:o, s:o}", "compare", cmp, "success", ops);
	if (request(l, "/v3/kv/txn", txn, &ans, err) == -1) {
		/* Applied or not: unknown.  The next read tells. */
		return sync_errpre(err, "writing the lease");
	}
	won = json_is_true(json_object_get(ans, "succeeded"));
	json_decref(ans);
	oldlease = l->lease;
	if (!won) {
		revoke(l, id);
		return 1;
	}
	/* The key is on the new etcd lease now: the old one has no key. */
	revoke(l, oldlease);
	return 0;
}

static void
etcd_free(struct lease_store *s)
{
	struct lease_etcd *l = (struct lease_etcd *)s;

	sync_http_free(l->http);
	sync_secret_free(l->token);
	free(l->lkey);
	free(l->fkey);
	free(l->value);
	free(l);
}

struct lease_store *
lease_etcd_open(const struct sync_role_conf *rc, struct sync_err *err)
{
	struct sync_http_opts o = { 0 };
	struct lease_etcd *l;
	struct sync_buf b = { 0 };

	if ((l = calloc(1, sizeof *l)) == NULL) {
		sync_errno(err, "lease");
		return NULL;
	}
	l->rc = rc;
	l->s.read = etcd_read;
	l->s.cas = etcd_cas;
	l->s.free = etcd_free;
	if (sync_buf_addf(&b, "%s/lease", rc->prefix) == -1 ||
	    (l->lkey = sync_buf_detach(&b)) == NULL ||
	    sync_buf_addf(&b, "%s/fence", rc->prefix) == -1 ||
	    (l->fkey = sync_buf_detach(&b)) == NULL) {
		sync_buf_release(&b);
		sync_errno(err, "lease");
		etcd_free(&l->s);
		return NULL;
	}
	o.who = "etcd";
	o.ca_file = rc->ca_file;
	o.cert_file = rc->cert_file;
	o.key_file = rc->key_file;
	o.tls_verify = 1;
	o.timeout = rc->timeout;
	if ((l->http = sync_http_new(&o, err)) == NULL) {
		etcd_free(&l->s);
		return NULL;
	}
	return &l->s;
}
