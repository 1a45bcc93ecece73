/*
 * scim.c: the SCIM 2.0 connector (RFC 7643, RFC 7644): the client (the
 * bearer token, connections, errors) and the full import of users and
 * groups.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "conn.h"
#include "http.h"
#include "scim.h"

struct sync_scim {
	struct sync_connector *c;
	struct sync_scim_conf *sc;
	struct sync_retry retry;
	struct sync_http **conns;
	char *authz;            /* "Bearer <token>", wiped at close */
	int nconn;
};

/* ---------------------------------------------------------- the client */

struct sync_scim *
sync_scim_open(struct sync_connector *c, int nconn, struct sync_err *err)
{
	struct sync_scim_conf *sc = c->scim;
	struct sync_http_opts o = { 0 };
	struct sync_buf b = { 0 };
	struct sync_scim *s;
	char *tok;
	int i;

	if (nconn < 1)
		nconn = 1;
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->conns = calloc((size_t)nconn, sizeof *s->conns)) == NULL) {
		sync_errno(err, "%s: cannot start", c->name);
		free(s);
		return NULL;
	}
	s->c = c;
	s->sc = sc;
	s->nconn = nconn;
	sync_retry_init(&s->retry, (double)sc->retry_budget);
	s->retry.notify = c->notify;
	s->retry.notify_ctx = c->notify_ctx;
	o.who = c->name;
	o.ca_file = sc->ca_file;
	o.tls_verify = sc->tls_verify;
	o.timeout = sc->timeout;
	o.retry = &s->retry;
	for (i = 0; i < nconn; i++)
		if ((s->conns[i] = sync_http_new(&o, err)) == NULL)
			goto fail;
	if ((tok = sync_secret_read(sc->token_file, err)) == NULL) {
		char m[SYNC_ERRMAX];

		memcpy(m, err->msg, sizeof m);
		sync_errf(err, "%s: %s", c->name, m);
		goto fail;
	}
	/* A token is sent in a header: a line break would end it early. */
	if (strpbrk(tok, "\r\n") != NULL || *tok == '\0') {
		sync_secret_free(tok);
		sync_errf(err, "%s: the token in '%s' is not one line",
		    c->name, sc->token_file);
		goto fail;
	}
	sync_buf_addf(&b, "Bearer %s", tok);
	sync_secret_free(tok);
	if (b.p == NULL) {
		sync_errf(err, "%s: out of memory", c->name);
		goto fail;
	}
	s->authz = sync_buf_detach(&b);
	return s;
fail:
	sync_scim_close(s);
	return NULL;
}

void
sync_scim_close(struct sync_scim *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nconn; i++)
		sync_http_free(s->conns[i]);
	sync_retry_release(&s->retry);
	if (s->authz)
		sync_secret_free(s->authz);
	free(s->conns);
	free(s);
}

unsigned long
sync_scim_retries(struct sync_scim *s, unsigned long *throttled)
{
	unsigned long n;

	pthread_mutex_lock(&s->retry.mu);
	n = s->retry.retries;
	if (throttled)
		*throttled = s->retry.throttled;
	pthread_mutex_unlock(&s->retry.mu);
	return n;
}

struct sync_retry *
sync_scim_retry(struct sync_scim *s)
{
	return &s->retry;
}

void
sync_scim_resp_release(struct sync_scim_resp *r)
{
	json_decref(r->json);
	free(r->etag);
	free(r->location);
	memset(r, 0, sizeof *r);
}

/* A SCIM error's status is a string (RFC 7644 3.12), or a number from
 * some services. */
int
sync_scim_errf(struct sync_err *err, struct sync_scim *s, const char *method,
    const char *path, const struct sync_scim_resp *r)
{
	json_t *type = json_object_get(r->json, "scimType");
	json_t *detail = json_object_get(r->json, "detail");
	char u[512], hint[64] = "";

	sync_http_url_trim(path, u, sizeof u);
	if (r->status == 401 || r->status == 403)
		snprintf(hint, sizeof hint, " (is the token in token_file "
		    "right?)");
	return sync_errf(err, "%s: %s %s%s failed: %ld%s%s%s%.800s%s",
	    s->c->name, method, s->sc->url, u, r->status,
	    json_is_string(type) ? " " : "",
	    json_is_string(type) ? json_string_value(type) : "",
	    json_is_string(detail) ? ": " : "",
	    json_is_string(detail) ? json_string_value(detail) : "", hint);
}

int
sync_scim_call(struct sync_scim *s, int conn, const char *method,
    const char *path, const char *body, const char *const *headers,
    int flags, struct sync_scim_resp *r, struct sync_err *err)
{
	struct sync_http_req q = { 0 };
	struct sync_http_resp hr = { 0 };
	struct sync_buf url = { 0 };
	int rc = -1;

	sync_scim_resp_release(r);
	if (conn < 0 || conn >= s->nconn)
		return sync_errf(err, "%s: no connection %d", s->c->name, conn);
	/* Only paths under the base URL: the token goes nowhere else. */
	if (*path != '/')
		return sync_errf(err, "%s: '%.200s' is not a path", s->c->name,
		    path);
	if (sync_buf_addf(&url, "%s%s", s->sc->url, path) == -1)
		return sync_errf(err, "%s: out of memory", s->c->name);
	for (;;) {
		double t = sync_mono_now(), until;

		pthread_mutex_lock(&s->retry.mu);
		until = s->retry.throttled_until;
		pthread_mutex_unlock(&s->retry.mu);
		if (until <= t)
			break;
		sync_sleep_for(until - t);
	}
	q.method = method;
	q.url = url.p;
	q.body = body;
	q.bodylen = body ? strlen(body) : 0;
	q.content_type = "application/scim+json";
	q.accept = "application/scim+json, application/json";
	q.authorization = s->authz;
	q.headers = headers;
	q.flags = flags & SYNC_HTTP_IDEMPOTENT;
	if (sync_http_send(s->conns[conn], &q, &hr, err) == -1)
		goto out;
	r->status = hr.status;
	r->attempts = hr.attempts;
	r->budget_spent = hr.budget_spent;
	r->location = hr.location;
	hr.location = NULL;
	if (hr.etag[0] && (r->etag = sync_strdup(hr.etag)) == NULL) {
		sync_errf(err, "%s: out of memory", s->c->name);
		goto out;
	}
	if (hr.body.len > 0)
		r->json = json_loadb(hr.body.p, hr.body.len, 0, NULL);
	if (r->status >= 400 && !(flags & SYNC_SCIM_ANYSTATUS)) {
		sync_scim_errf(err, s, method, path, r);
		if (hr.budget_spent) {
			size_t n = strlen(err->msg);

			snprintf(err->msg + n, sizeof err->msg - n, " (gave "
			    "up after %d attempts: the retry budget of %ld s "
			    "is spent)", r->attempts, s->sc->retry_budget);
		}
		goto out;
	}
	if (hr.body.len > 0 && r->json == NULL && r->status < 300 &&
	    !(flags & SYNC_SCIM_ANYSTATUS)) {
		char u[512];

		sync_http_url_trim(path, u, sizeof u);
		sync_errf(err, "%s: %s %s%s: the answer is not JSON",
		    s->c->name, method, s->sc->url, u);
		goto out;
	}
	rc = 0;
out:
	sync_http_resp_release(&hr);
	sync_buf_release(&url);
	return rc;
}

/* Percent-encodes s into b (RFC 3986 unreserved characters kept). */
static int
addenc(struct sync_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		    ('0' <= *p && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~') {
			if (sync_buf_addc(b, *p) == -1)
				return -1;
		} else if (sync_buf_addc(b, '%') == -1 ||
		    sync_buf_addc(b, hex[*p >> 4]) == -1 ||
		    sync_buf_addc(b, hex[*p & 15]) == -1)
			return -1;
	}
	return 0;
}

int
sync_scim_filter_eq(struct sync_buf *b, const char *attr, const char *value)
{
	json_t *j;
	char *lit;
	int rc;

	/* The literal is a JSON string (RFC 7644 3.4.2.2): the encoder
	 * escapes quotes, backslashes and control characters. */
	if ((j = json_string(value)) == NULL)
		return -1;
	lit = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	if (lit == NULL)
		return -1;
	rc = addenc(b, attr) == -1 || sync_buf_adds(b, "%20eq%20") == -1 ||
	    addenc(b, lit) == -1 ? -1 : 0;
	free(lit);
	return rc;
}

const char *
sync_scim_urn_end(const char *name)
{
	const char *p, *br, *a = name;

	if (strncasecmp(name, "urn:", 4) != 0)
		return name;
	br = strchr(name, '[');
	for (p = name; *p && (br == NULL || p < br); p++)
		if (*p == ':')
			a = p + 1;
	return a;
}

/* ------------------------------------------------------------ flatten */

/* Adds value v to attribute name unless it is there already: a service
 * may list a value twice (scimmy does for members added twice). */
static int
addval(struct sync_obj *o, const char *name, const char *v, size_t len)
{
	struct sync_objattr *a = sync_obj_attr(o, name);
	size_t i;

	for (i = 0; a && i < a->n; i++)
		if (a->v[i].len == len && memcmp(a->v[i].p, v, len) == 0)
			return 0;
	return sync_obj_addval(o, name, v, len, 0);
}

/* A scalar as a string: strings as they are, booleans "true" and
 * "false", numbers as JSON writes them, objects and arrays as compact
 * JSON with sorted keys.  Nothing for null. */
static int
addjson(struct sync_obj *o, const char *name, json_t *v)
{
	char *s;
	int rc;

	switch (json_typeof(v)) {
	case JSON_NULL:
		return 0;
	case JSON_STRING:
		return addval(o, name, json_string_value(v),
		    json_string_length(v));
	case JSON_TRUE:
		return addval(o, name, "true", 4);
	case JSON_FALSE:
		return addval(o, name, "false", 5);
	default:
		break;
	}
	if ((s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
	    JSON_ENCODE_ANY)) == NULL)
		return -1;
	rc = addval(o, name, s, strlen(s));
	free(s);
	return rc;
}

struct flat {
	struct sync_obj *o;
	const struct sync_strv *keep;
	int group;              /* members are read apart */
	struct sync_buf name;
};

/* Whether attribute n is kept: keep is empty, or one of its names is n
 * or a prefix of n followed by '.' or '[' ("emails" keeps
 * "emails[type eq \"work\"].value"), compared without regard to case. */
static int
kept(const struct sync_strv *keep, const char *n)
{
	static const char *const always[] = {
		"userName", "displayName", "active", "members", "meta.version",
		NULL
	};
	size_t i, l;

	if (keep == NULL || keep->n == 0)
		return 1;
	for (i = 0; always[i]; i++)
		if (strcasecmp(always[i], n) == 0)
			return 1;
	for (i = 0; i < keep->n; i++) {
		l = strlen(keep->v[i]);
		if (strncasecmp(keep->v[i], n, l) == 0 && (n[l] == '\0' ||
		    n[l] == '.' || n[l] == '['))
			return 1;
	}
	return 0;
}

static int
flat_add(struct flat *f, size_t at, const char *suffix, json_t *v)
{
	int rc;

	f->name.len = at;
	if (sync_buf_adds(&f->name, suffix) == -1)
		return -1;
	rc = kept(f->keep, f->name.p) ? addjson(f->o, f->name.p, v) : 0;
	f->name.len = at;
	f->name.p[at] = '\0';
	return rc;
}

/*
 * One element of a multi-valued complex attribute A (prefix at f->name
 * [0..at)): each sub-attribute k as "A.k", and also as
 * "A[type eq \"T\"].k" when the element has a type T and as
 * "A[primary eq true].k" when it is the primary one.
 */
static int
flat_element(struct flat *f, size_t at, json_t *e)
{
	json_t *type = json_object_get(e, "type"), *v;
	int primary = json_is_true(json_object_get(e, "primary"));
	const char *k;
	char *tlit = NULL;
	struct sync_buf sfx = { 0 };
	int rc = -1;

	if (json_is_string(type) &&
	    (tlit = json_dumps(type, JSON_ENCODE_ANY)) == NULL)
		return -1;
	json_object_foreach(e, k, v) {
		if (strcmp(k, "type") == 0 || strcmp(k, "primary") == 0 ||
		    strcmp(k, "$ref") == 0)
			continue;
		sync_buf_reset(&sfx);
		if (sync_buf_addf(&sfx, ".%s", k) == -1 ||
		    flat_add(f, at, sfx.p, v) == -1)
			goto out;
		sync_buf_reset(&sfx);
		if (tlit && (sync_buf_addf(&sfx, "[type eq %s].%s", tlit,
		    k) == -1 || flat_add(f, at, sfx.p, v) == -1))
			goto out;
		sync_buf_reset(&sfx);
		if (primary && (sync_buf_addf(&sfx, "[primary eq true].%s",
		    k) == -1 || flat_add(f, at, sfx.p, v) == -1))
			goto out;
	}
	rc = 0;
out:
	free(tlit);
	sync_buf_release(&sfx);
	return rc;
}

/* The attributes of object j under the prefix f->name[0..at). */
static int
flat_object(struct flat *f, size_t at, json_t *j, int depth)
{
	const char *k;
	json_t *v, *e;
	size_t i, here;

	json_object_foreach(j, k, v) {
		if (depth == 0 && (strcmp(k, "id") == 0 ||
		    strcmp(k, "schemas") == 0 || strcmp(k, "groups") == 0 ||
		    (f->group && strcmp(k, "members") == 0)))
			continue;
		if (strcmp(k, "$ref") == 0)
			continue;
		f->name.len = at;
		if ((at > 0 && f->name.p[at - 1] != ':' &&
		    sync_buf_addc(&f->name, '.') == -1) ||
		    sync_buf_adds(&f->name, k) == -1)
			return -1;
		here = f->name.len;
		if (depth == 0 && strncasecmp(k, "urn:", 4) == 0 &&
		    json_is_object(v)) {
			/* An extension (RFC 7643 3.3): the enterprise one
			 * under a short prefix, others under their URN. */
			f->name.len = at;
			if (strcasecmp(k, SYNC_SCIM_ENTERPRISE) == 0) {
				if (sync_buf_adds(&f->name,
				    SYNC_SCIM_ENTERPRISE_PREFIX) == -1)
					return -1;
			} else if (sync_buf_addf(&f->name, "%s:", k) == -1)
				return -1;
			if (flat_object(f, f->name.len, v, depth + 1) == -1)
				return -1;
			continue;
		}
		if (depth == 0 && strcmp(k, "meta") == 0) {
			/* Only what says when and which version: location
			 * and resourceType say nothing of the object. */
			static const char *const mk[] = {
				"created", "lastModified", "version", NULL
			};
			int m;

			for (m = 0; mk[m]; m++)
				if (json_object_get(v, mk[m]) != NULL) {
					char sfx[32];

					snprintf(sfx, sizeof sfx, ".%s", mk[m]);
					if (flat_add(f, here, sfx,
					    json_object_get(v, mk[m])) == -1)
						return -1;
				}
			continue;
		}
		if (json_is_object(v) && depth < 3) {
			if (flat_object(f, here, v, depth + 1) == -1)
				return -1;
			continue;
		}
		if (json_is_array(v)) {
			json_array_foreach(v, i, e) {
				if (json_is_object(e) && depth < 3) {
					if (flat_element(f, here, e) == -1)
						return -1;
				} else if (flat_add(f, here, "", e) == -1)
					return -1;
			}
			continue;
		}
		if (flat_add(f, here, "", v) == -1)
			return -1;
	}
	f->name.len = at;
	if (f->name.p)
		f->name.p[at] = '\0';
	return 0;
}

int
sync_scim_flatten(json_t *res, enum sync_objtype t,
    const struct sync_strv *keep, struct sync_obj *o, struct sync_err *err)
{
	struct flat f = { o, keep, t == SYNC_GROUP, { 0 } };
	json_t *id = json_object_get(res, "id"), *m, *e;
	size_t i;
	int rc = -1;

	sync_obj_release(o);
	o->type = t;
	if (!json_is_string(id) || json_string_length(id) == 0)
		return sync_errf(err, "a %s without an id",
		    sync_objtype_name(t));
	if ((o->anchor = sync_strdup(json_string_value(id))) == NULL ||
	    (o->id = sync_strdup(o->anchor)) == NULL ||
	    sync_buf_adds(&f.name, "") == -1)
		goto oom;
	if (t == SYNC_GROUP) {
		/* Members are references, as DNs are on LDAP: the SCIM ids
		 * of the member resources, whatever their type. */
		m = json_object_get(res, "members");
		json_array_foreach(m, i, e) {
			json_t *v = json_object_get(e, "value");

			if (json_is_string(v) && json_string_length(v) > 0 &&
			    addval(o, "members", json_string_value(v),
			    json_string_length(v)) == -1)
				goto oom;
		}
	}
	rc = flat_object(&f, 0, res, 0);
	sync_buf_release(&f.name);
	if (rc == -1)
		goto oom;
	return 0;
oom:
	sync_buf_release(&f.name);
	return sync_errf(err, "out of memory");
}

/* ------------------------------------------------------------- import */

/* A set of strings (the ids seen), open addressing. */
struct idset {
	char **v;
	size_t n, cap;
};

static uint64_t
strhash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* 1 when s was added, 0 when it was there, -1 when out of memory. */
static int
idset_add(struct idset *set, const char *s)
{
	size_t i;

	if (set->n * 2 >= set->cap) {
		struct idset ns = { NULL, 0, set->cap ? set->cap * 2 : 1024 };

		if ((ns.v = calloc(ns.cap, sizeof *ns.v)) == NULL)
			return -1;
		for (i = 0; i < set->cap; i++)
			if (set->v[i]) {
				size_t j = strhash(set->v[i]) & (ns.cap - 1);

				while (ns.v[j])
					j = (j + 1) & (ns.cap - 1);
				ns.v[j] = set->v[i];
				ns.n++;
			}
		free(set->v);
		*set = ns;
	}
	for (i = strhash(s) & (set->cap - 1); set->v[i];
	    i = (i + 1) & (set->cap - 1))
		if (strcmp(set->v[i], s) == 0)
			return 0;
	if ((set->v[i] = sync_strdup(s)) == NULL)
		return -1;
	set->n++;
	return 1;
}

static void
idset_release(struct idset *set)
{
	size_t i;

	for (i = 0; i < set->cap; i++)
		free(set->v[i]);
	free(set->v);
	memset(set, 0, sizeof *set);
}

/* A count in a ListResponse: a number, or a string of one from some
 * services; -1 when absent or not a count. */
static long long
jcount(json_t *j)
{
	char *end;
	long long v;

	if (json_is_integer(j))
		return json_integer_value(j) >= 0 ? json_integer_value(j) : -1;
	if (json_is_string(j)) {
		v = strtoll(json_string_value(j), &end, 10);
		if (end != json_string_value(j) && *end == '\0' && v >= 0)
			return v;
	}
	return -1;
}

/* The passes over a listing before its pages are taken to be moving
 * for good. */
#define SCIM_PASSES 3

struct listing {
	struct sync_scim *s;
	struct sync_connector *c;
	enum sync_objtype t;
	sync_obj_fn fn;
	void *ctx;
	struct idset seen;
	struct sync_strv keep;
	struct sync_obj o;
	char *attrq;            /* "&attributes=..." for each page, or NULL */
};

/*
 * The name to ask for in attributes= (RFC 7644 3.4.2.5) of a snapshot
 * attribute name, appended to b: its top-level attribute, in the
 * standard notation of RFC 7644 3.10 (no value filter), with the URN of
 * its extension ("enterprise:manager.value" is
 * "urn:...:enterprise:2.0:User:manager").  A whole attribute rather
 * than a sub-attribute: a filtered name ("emails[type eq \"work\"]")
 * needs the type and primary of every element, and services honour
 * top-level names best.  -1 when out of memory.
 */
static int
attr_request(struct sync_buf *b, const char *name)
{
	const char *a = name;

	if (strncmp(name, SYNC_SCIM_ENTERPRISE_PREFIX,
	    strlen(SYNC_SCIM_ENTERPRISE_PREFIX)) == 0) {
		if (sync_buf_adds(b, SYNC_SCIM_ENTERPRISE ":") == -1)
			return -1;
		a = name + strlen(SYNC_SCIM_ENTERPRISE_PREFIX);
	} else if ((a = sync_scim_urn_end(name)) != name &&
	    sync_buf_add(b, name, (size_t)(a - name)) == -1)
		return -1;
	return sync_buf_add(b, a, strcspn(a, ".["));
}

/*
 * The attributes= of a listing of type t: what the snapshot keeps (the
 * configured attributes, those the flows into the connector write, the
 * anchor, and what sync_scim_flatten always keeps of the type), each
 * name once.  NULL in *q without an attribute list: every attribute is
 * read, as the service returns them by default.  -1 when out of memory.
 */
static int
attr_query(struct sync_scim_conf *sc, enum sync_objtype t,
    const struct sync_strv *keep, char **q)
{
	static const char *const user[] = {
		"userName", "displayName", "active", "meta", NULL
	};
	static const char *const group[] = {
		"displayName", "members", "meta", NULL
	};
	const char *const *always = t == SYNC_GROUP ? group : user;
	struct sync_strv names = { 0 };
	struct sync_buf one = { 0 }, b = { 0 };
	size_t i, j, n;
	int rc = -1;

	*q = NULL;
	if (sc->attrs[t].n == 0)
		return 0;
	for (n = 0; always[n]; n++)
		;
	for (i = 0; i < n + keep->n; i++) {
		sync_buf_reset(&one);
		if (i < n ? sync_buf_adds(&one, always[i]) == -1 :
		    attr_request(&one, keep->v[i - n]) == -1)
			goto out;
		if (one.len == 0)
			continue;
		for (j = 0; j < names.n; j++)
			if (strcasecmp(names.v[j], one.p) == 0)
				break;
		if (j < names.n)
			continue;
		if (sync_strv_add(&names, one.p) == -1 ||
		    sync_buf_adds(&b, names.n == 1 ? "&attributes=" :
		    ",") == -1 || addenc(&b, one.p) == -1)
			goto out;
	}
	*q = sync_buf_detach(&b);
	rc = *q ? 0 : -1;
out:
	sync_strv_release(&names);
	sync_buf_release(&one);
	sync_buf_release(&b);
	return rc;
}

/*
 * One pass over the listing of l->t: every page from startIndex 1 on,
 * new ids handed to fn.  *total: the totalResults of the last page,
 * *moved: 1 when it changed between pages.
 */
static int
list_pass(struct listing *l, long long *total, int *moved,
    struct sync_err *err)
{
	struct sync_scim_conf *sc = l->c->scim;
	struct sync_scim_resp r = { 0 };
	struct sync_buf path = { 0 };
	long long start = 1, first = -1, tot, n;
	long pages = 0;
	json_t *res, *e;
	size_t i;
	int rc = -1, added;

	*moved = 0;
	for (;;) {
		if (++pages > sc->max_pages) {
			sync_errf(err, "%s: more than %ld pages of %s: "
			    "max_pages (see sync.conf(5))", l->c->name,
			    sc->max_pages, sc->endpoint[l->t]);
			goto out;
		}
		sync_buf_reset(&path);
		if (sync_buf_addf(&path, "%s?startIndex=%lld&count=%ld%s",
		    sc->endpoint[l->t], start, sc->page_size,
		    l->attrq ? l->attrq : "") == -1) {
			sync_errf(err, "%s: out of memory", l->c->name);
			goto out;
		}
		if (sync_scim_call(l->s, 0, "GET", path.p, NULL, NULL,
		    SYNC_HTTP_IDEMPOTENT, &r, err) == -1) {
			if (r.status != 400 || l->attrq == NULL)
				goto out;
			/*
			 * A service that cannot serve the attributes asked
			 * for (scimmy fails on an extension's): the listing
			 * goes on with every attribute, which the snapshot
			 * trims as it would have.
			 */
			if (l->c->notify) {
				char m[SYNC_ERRMAX + 64];

				snprintf(m, sizeof m, "%s (every attribute "
				    "is read instead)", err->msg);
				l->c->notify(l->c->notify_ctx, m);
			}
			free(l->attrq);
			l->attrq = NULL;
			pages--;
			continue;
		}
		tot = jcount(json_object_get(r.json, "totalResults"));
		res = json_object_get(r.json, "Resources");
		if (!json_is_object(r.json) || tot < 0 ||
		    (res != NULL && !json_is_array(res))) {
			sync_errf(err, "%s: GET %s%s: not a SCIM ListResponse "
			    "(no totalResults or Resources)", l->c->name,
			    sc->url, path.p);
			goto out;
		}
		if (first == -1)
			first = tot;
		else if (tot != first)
			*moved = 1;
		*total = tot;
		n = (long long)json_array_size(res);
		json_array_foreach(res, i, e) {
			const char *id = json_string_value(json_object_get(e,
			    "id"));

			if (id == NULL || *id == '\0') {
				sync_errf(err, "%s: GET %s%s: a %s without an "
				    "id", l->c->name, sc->url, path.p,
				    sync_objtype_name(l->t));
				goto out;
			}
			if ((added = idset_add(&l->seen, id)) == -1) {
				sync_errf(err, "%s: out of memory", l->c->name);
				goto out;
			}
			if (added == 0)
				continue;       /* a page moved under us */
			if (sync_scim_flatten(e, l->t, &l->keep, &l->o,
			    err) == -1) {
				char m[SYNC_ERRMAX];

				memcpy(m, err->msg, sizeof m);
				sync_errf(err, "%s: %s '%s': %s", l->c->name,
				    sync_objtype_name(l->t), id, m);
				goto out;
			}
			if (l->fn(l->ctx, &l->o, err) == -1)
				goto out;
		}
		/*
		 * The end: an empty page, or past totalResults.  The second
		 * matters: some services (scimmy) answer a startIndex past
		 * the end with the first page again.  The next page starts
		 * after what came, whatever count the service honoured.
		 */
		if (n == 0 || start + n > tot)
			break;
		start += n;
	}
	rc = 0;
out:
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	return rc;
}

static int
import_type(struct listing *l, struct sync_err *err)
{
	struct sync_scim_conf *sc = l->c->scim;
	long long total = 0;
	int pass, moved;
	size_t i;

	/* What is kept: the configured attributes, those the flows write
	 * and the anchor; without a list, everything. */
	for (i = 0; sc->attrs[l->t].n > 0 && i < sc->extra[l->t].n; i++)
		if (sync_strv_add(&l->keep, sc->extra[l->t].v[i]) == -1)
			return sync_errf(err, "%s: out of memory", l->c->name);
	for (i = 0; i < sc->attrs[l->t].n; i++)
		if (sync_strv_add(&l->keep, sc->attrs[l->t].v[i]) == -1)
			return sync_errf(err, "%s: out of memory", l->c->name);
	if (sc->attrs[l->t].n > 0 && sync_strv_add(&l->keep, sc->anchor) == -1)
		return sync_errf(err, "%s: out of memory", l->c->name);
	if (attr_query(sc, l->t, &l->keep, &l->attrq) == -1)
		return sync_errf(err, "%s: out of memory", l->c->name);
	/*
	 * Pages are index-based (RFC 7644 3.4.2.4): objects created or
	 * deleted during the listing shift them, so that an object can
	 * come twice (dropped: the ids are remembered) or not at all.  A
	 * missing object would make the diff create it again, so a
	 * listing whose total moved, or that brought fewer objects than
	 * its total, is read again for what it missed.
	 */
	for (pass = 0; pass < SCIM_PASSES; pass++) {
		if (list_pass(l, &total, &moved, err) == -1)
			return -1;
		if (!moved && (long long)l->seen.n >= total)
			return 0;
	}
	return sync_errf(err, "%s: the listing of %s kept changing while it "
	    "was read (%zu objects seen, the service counts %lld after %d "
	    "passes); try again later", l->c->name, sc->endpoint[l->t],
	    l->seen.n, total, SCIM_PASSES);
}

int
sync_scim_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err)
{
	struct sync_scim *s;
	int t, rc = 0;

	*cookie = NULL;         /* SCIM has no delta */
	if ((s = sync_scim_open(c, 1, err)) == NULL)
		return -1;
	for (t = 0; t < SYNC_NOBJTYPES && rc == 0; t++) {
		struct listing l = { 0 };

		if (!c->scim->enabled[t])
			continue;
		l.s = s;
		l.c = c;
		l.t = t;
		l.fn = fn;
		l.ctx = ctx;
		rc = import_type(&l, err);
		idset_release(&l.seen);
		sync_strv_release(&l.keep);
		free(l.attrq);
		sync_obj_release(&l.o);
	}
	sync_scim_close(s);
	return rc;
}
