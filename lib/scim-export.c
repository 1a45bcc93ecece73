/*
 * scim-export.c: applying a plan to a SCIM 2.0 service (RFC 7643,
 * RFC 7644).
 *
 * The run has four phases, as on Graph (graph-export.c), each a set of
 * units, one per change, run to the end by a pool of connections:
 *
 *   0. reads: each change's object as it is now (adds: looked up with
 *      filter=ANCHORATTR eq "ANCHOR", so that a re-run after a crash
 *      finds what it created); the plan is refused as a whole if the
 *      target moved since the plan was made;
 *   1. users (POST, PATCH, DELETE), then 2. groups;
 *   3. memberships (PATCH with add and remove operations), which need
 *      the ids that phases 1 and 2 assigned.
 *
 * SCIM has no $batch that every service offers, so a unit is a short
 * conversation: the requests of one change, one after the other, on one
 * connection, each decided from the answer to the last.  That is what
 * makes the guards simple to state:
 *
 *  - a POST whose answer is lost (a dropped connection, a 500, 502 or
 *    504) may have created the object: before it is sent again the
 *    object is looked up by its anchor, for create_settle seconds while
 *    it is not found (a service may list it late), and adopted when it
 *    is there; every POST goes over a fresh connection, since libcurl
 *    resends by itself a request whose reused connection died;
 *  - writes to an object carry If-Match with the version read, when the
 *    service gives versions (ETag, meta.version); a 412 makes the unit
 *    read the object again, and a change whose old values no longer hold
 *    fails as stale instead of overwriting;
 *  - member adds and removals are computed against the members read
 *    last: after a lost answer or a 412 they are read again, so that
 *    nothing is added twice.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conn.h"
#include "export.h"
#include "http.h"
#include "scim.h"

#define MAXATTEMPTS 40          /* requests of one unit answered badly */
#define MEMBER_OPS 100          /* members added or removed by one PATCH */
#define MAXSEG 8                /* segments of an attribute path */
#define SYNC_EVERY 32           /* outcomes between journal flushes */

/* What the writer knows of one change. */
struct schange {
	struct xchange *x;
	const char *coll;       /* the endpoint: "/Users", "/Groups" */
	int group;
	const char *schema;     /* the core schema URN of the resource */
	int skip;               /* 1: never applied; 2: in place */
	int failed;
	int stale;
	char *stalewhy;
	json_t *error;          /* new reference */
	char *tid;              /* the target id, known or assigned */
	json_t *cur;            /* the object as last read, or NULL */
	char *etag;             /* its version, or NULL */
	int versioned;          /* the service gave a version once */
	int exists;
	json_t *members;        /* current member ids (an object as a set) */
	int wrote;              /* a write succeeded */
	int last_phase;         /* the phase after which it is complete */
	int recorded;           /* its outcome is in the journal */
};

struct sx {
	struct xplan *p;
	struct sync_scim_conf *sc;
	struct sync_scim *scim;         /* the client (scim.c) */
	struct sync_retry *retry;       /* its budget (borrowed) */
	int nconn;
	struct schange *g;
	size_t n;
	json_t *anchors;        /* anchor -> target id (locked) */

	pthread_mutex_t mu;
	int phase;
	size_t *q, nq, next, done;      /* the units of the phase */
	int abort;
	struct sync_err abort_err;
	int put;                /* the service has no PATCH: PUT instead */
	size_t unsynced;        /* outcomes since the last journal flush */
	unsigned long requests, writes;
};

/* ------------------------------------------------------------- helpers */

/* Percent-encodes s for a URL's path or query (unreserved kept). */
static void
pct(struct sync_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			sync_buf_addc(b, c);
		else {
			sync_buf_addc(b, '%');
			sync_buf_addc(b, hex[c >> 4]);
			sync_buf_addc(b, hex[c & 15]);
		}
	}
}

/* A SCIM filter string literal: a JSON string (RFC 7644 3.4.2.2). */
static void
scim_str(struct sync_buf *b, const char *s)
{
	json_t *j = json_string(s);
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	sync_buf_adds(b, t ? t : "\"\"");
	free(t);
	json_decref(j);
}

/* Member key of obj equal to key without regard to case (borrowed). */
static json_t *
get_ci(json_t *obj, const char *key, const char **realkey)
{
	const char *k;
	json_t *v;

	if (!json_is_object(obj))
		return NULL;
	if ((v = json_object_get(obj, key)) != NULL) {
		if (realkey)
			*realkey = key;
		return v;
	}
	json_object_foreach(obj, k, v)
		if (strcasecmp(k, key) == 0) {
			if (realkey)
				*realkey = k;
			return v;
		}
	return NULL;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A JSON scalar as a snapshot's string, appended to out. */
static void
leaf_add(json_t *out, json_t *v)
{
	char buf[64];

	if (json_is_object(v))
		v = get_ci(v, "value", NULL);
	if (json_is_string(v))
		json_array_append(out, v);
	else if (json_is_true(v))
		json_array_append_new(out, json_string("true"));
	else if (json_is_false(v))
		json_array_append_new(out, json_string("false"));
	else if (json_is_integer(v)) {
		snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		json_array_append_new(out, json_string(buf));
	} else if (json_is_real(v)) {
		snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
		json_array_append_new(out, json_string(buf));
	}
}

/* a sorted, as a new array (the snapshot's order). */
static json_t *
sorted_strings(json_t *a)
{
	const char **s;
	json_t *out = json_array(), *e;
	size_t i, n = 0;

	if ((s = calloc(json_array_size(a) + 1, sizeof *s)) == NULL)
		return out;
	json_array_foreach(a, i, e)
		if (json_is_string(e))
			s[n++] = json_string_value(e);
	qsort(s, n, sizeof *s, str_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(out, json_string(s[i]));
	free(s);
	return out;
}

static int
same(json_t *a, json_t *b)
{
	json_t *sa = sorted_strings(a), *sb = sorted_strings(b);
	int eq = json_equal(sa, sb);

	json_decref(sa);
	json_decref(sb);
	return eq;
}

/* ------------------------------------------------ attribute paths */

/*
 * An attribute of the plan is a SCIM attribute path (RFC 7644 3.10):
 * an optional schema URN, then attribute names joined by dots, each
 * with an optional value filter of equalities joined by "and":
 *   displayName, name.givenName, emails[type eq "work"].value,
 *   urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
 */
struct fterm {
	char *sub;
	json_t *val;            /* the literal (new reference) */
};

struct spath {
	char *urn;              /* NULL: the resource's own attributes */
	char *top;              /* urn:...:seg0 or seg0, for a PATCH path */
	size_t nseg;
	char *seg[MAXSEG];
	struct fterm *f[MAXSEG];
	size_t nf[MAXSEG];
	char *buf;
};

static void
spath_release(struct spath *sp)
{
	size_t i, j;

	for (i = 0; i < sp->nseg; i++) {
		free(sp->seg[i]);
		for (j = 0; j < sp->nf[i]; j++) {
			free(sp->f[i][j].sub);
			json_decref(sp->f[i][j].val);
		}
		free(sp->f[i]);
	}
	free(sp->urn);
	free(sp->top);
	free(sp->buf);
	memset(sp, 0, sizeof *sp);
}

static const char *
skip_ws(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* Parses "a eq "x" and b eq "y"" into sp's terms of segment i. */
static int
filter_parse(struct spath *sp, size_t i, const char *s, const char *end)
{
	for (;;) {
		const char *a = skip_ws(s), *e;
		struct fterm *nf;
		json_error_t jerr;
		size_t len;

		for (e = a; e < end && *e != ' '; e++)
			;
		if (e == a || e >= end)
			return -1;
		if ((nf = realloc(sp->f[i], (sp->nf[i] + 1) * sizeof *nf)) ==
		    NULL)
			return -1;
		sp->f[i] = nf;
		nf = &sp->f[i][sp->nf[i]];
		if ((nf->sub = strndup(a, (size_t)(e - a))) == NULL)
			return -1;
		nf->val = NULL;
		sp->nf[i]++;
		a = skip_ws(e);
		if (end - a < 3 || strncasecmp(a, "eq ", 3) != 0)
			return -1;
		a = skip_ws(a + 3);
		/* The literal: a JSON string, or true, false, a number. */
		if (*a == '"') {
			for (e = a + 1; e < end && *e != '"'; e++)
				if (*e == '\\' && e + 1 < end)
					e++;
			if (e >= end)
				return -1;
			e++;
		} else
			for (e = a; e < end && *e != ' '; e++)
				;
		len = (size_t)(e - a);
		nf->val = json_loadb(a, len, JSON_DECODE_ANY, &jerr);
		if (nf->val == NULL)
			return -1;
		a = skip_ws(e);
		if (a >= end)
			return 0;
		if (end - a < 4 || strncasecmp(a, "and ", 4) != 0)
			return -1;
		s = a + 4;
	}
}

/* Parses name into sp (released by spath_release); -1: not supported. */
static int
spath_parse(struct spath *sp, const char *name)
{
	const char *s;
	struct sync_buf top = { 0 };

	memset(sp, 0, sizeof *sp);
	s = name;
	if (strncmp(name, SYNC_SCIM_ENTERPRISE_PREFIX,
	    strlen(SYNC_SCIM_ENTERPRISE_PREFIX)) == 0) {
		/* The snapshots' short name of the enterprise extension. */
		if ((sp->urn = sync_strdup(SYNC_SCIM_ENTERPRISE)) == NULL)
			return -1;
		s = name + strlen(SYNC_SCIM_ENTERPRISE_PREFIX);
	} else if ((s = sync_scim_urn_end(name)) != name) {
		if (*s == '\0')
			return -1;
		if ((sp->urn = strndup(name, (size_t)(s - 1 - name))) == NULL)
			return -1;
	}
	while (*s) {
		const char *e = s, *f = NULL, *fe = NULL;

		if (sp->nseg == MAXSEG)
			goto bad;
		while (*e && *e != '.' && *e != '[')
			e++;
		if (e == s)
			goto bad;
		if (*e == '[') {
			int inq = 0;

			f = e + 1;
			for (fe = f; *fe && (inq || *fe != ']'); fe++) {
				if (*fe == '\\' && inq && fe[1])
					fe++;
				else if (*fe == '"')
					inq = !inq;
			}
			if (*fe != ']')
				goto bad;
		}
		if ((sp->seg[sp->nseg] = strndup(s, (size_t)(e - s))) == NULL)
			goto bad;
		sp->nseg++;
		if (f && filter_parse(sp, sp->nseg - 1, f, fe) == -1)
			goto bad;
		s = f ? fe + 1 : e;
		if (*s == '.')
			s++;
		else if (*s)
			goto bad;
	}
	if (sp->nseg == 0)
		goto bad;
	if (sp->urn)
		sync_buf_addf(&top, "%s:", sp->urn);
	sync_buf_adds(&top, sp->seg[0]);
	sp->top = sync_buf_detach(&top);
	return sp->top ? 0 : -1;
bad:
	sync_buf_release(&top);
	spath_release(sp);
	return -1;
}

/* 1 when element v matches every term of segment i. */
static int
fmatch(const struct spath *sp, size_t i, json_t *v)
{
	size_t j;

	for (j = 0; j < sp->nf[i]; j++) {
		json_t *have = get_ci(v, sp->f[i][j].sub, NULL);

		if (have == NULL)
			return 0;
		/* Filters on strings ignore case unless caseExact; types
		 * ("work") are not case-exact. */
		if (json_is_string(have) && json_is_string(sp->f[i][j].val)) {
			if (strcasecmp(json_string_value(have),
			    json_string_value(sp->f[i][j].val)) != 0)
				return 0;
		} else if (!json_equal(have, sp->f[i][j].val))
			return 0;
	}
	return 1;
}

/* The object under the path's schema URN (borrowed), or NULL. */
static json_t *
urn_root(json_t *obj, const struct spath *sp, const char *schema)
{
	json_t *v;

	if (sp->urn == NULL)
		return obj;
	if ((v = get_ci(obj, sp->urn, NULL)) != NULL)
		return v;
	/* The resource's core schema: its attributes are at the top. */
	if (schema && strcasecmp(sp->urn, schema) == 0)
		return obj;
	return NULL;
}

/* The values of attribute name in obj as a sorted list of strings. */
static json_t *
from_scim(json_t *obj, const char *name, const char *schema)
{
	struct spath sp;
	json_t *nodes, *next, *n, *v, *e, *out;
	size_t i, j, k;

	out = json_array();
	if (obj == NULL || spath_parse(&sp, name) == -1)
		return out;
	nodes = json_array();
	if ((v = urn_root(obj, &sp, schema)) != NULL)
		json_array_append(nodes, v);
	for (i = 0; i < sp.nseg; i++) {
		next = json_array();
		json_array_foreach(nodes, j, n) {
			if ((v = get_ci(n, sp.seg[i], NULL)) == NULL ||
			    json_is_null(v))
				continue;
			if (json_is_array(v)) {
				json_array_foreach(v, k, e)
					if (fmatch(&sp, i, e))
						json_array_append(next, e);
			} else if (fmatch(&sp, i, v))
				json_array_append(next, v);
		}
		json_decref(nodes);
		nodes = next;
	}
	json_array_foreach(nodes, j, n)
		leaf_add(out, n);
	json_decref(nodes);
	spath_release(&sp);
	next = sorted_strings(out);
	json_decref(out);
	return next;
}

/* RFC 7643 multi-valued attributes of the core schemas. */
static const char *const multi[] = { "emails", "phoneNumbers", "ims",
    "photos", "addresses", "groups", "entitlements", "roles",
    "x509Certificates", "members", NULL };
/* Booleans of the core schemas; the rest are written as strings, unless
 * the target already holds another type. */
static const char *const bools[] = { "active", "primary", NULL };

static int
in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcasecmp(*l, s) == 0)
			return 1;
	return 0;
}

/* Value v of the plan (a string) as JSON like have, or by name. */
static json_t *
typed(const char *name, json_t *v, json_t *have)
{
	const char *s = json_string_value(v);
	char *end;

	if (s == NULL)
		return json_null();
	if (json_is_boolean(have) || (have == NULL && in_list(bools, name))) {
		if (strcasecmp(s, "true") == 0)
			return json_true();
		if (strcasecmp(s, "false") == 0)
			return json_false();
	}
	if (json_is_integer(have)) {
		long long l = strtoll(s, &end, 10);

		if (*s && *end == '\0')
			return json_integer(l);
	}
	return json_incref(v);
}

/*
 * Sets attribute name of the resource root to the plan's values vals
 * (an empty list removes it).  A filtered segment finds or adds the
 * element of the multi-valued attribute that matches it; a last
 * segment of a multi-valued complex attribute (emails, members, or
 * any attribute the resource holds as a list of objects) keeps the
 * elements whose value is in vals and adds the others.
 * *schemas: set when a schema extension was added to root.
 */
static int
to_scim(json_t *root, const char *name, json_t *vals, const char *schema,
    int *schemas)
{
	struct spath sp;
	json_t *node, *child, *e, *v, *arr;
	const char *rk;
	size_t i, j, k;

	if (spath_parse(&sp, name) == -1)
		return -1;
	node = urn_root(root, &sp, schema);
	if (node == NULL) {
		if (json_array_size(vals) == 0) {
			spath_release(&sp);
			return 0;
		}
		node = json_object();
		json_object_set_new(root, sp.urn, node);
		*schemas = 1;
	}
	for (i = 0; i < sp.nseg; i++) {
		int last = i + 1 == sp.nseg;

		child = get_ci(node, sp.seg[i], &rk);
		if (sp.nf[i]) {
			/* attr[filter]: the element it matches. */
			if (!json_is_array(child)) {
				child = json_array();
				json_object_set_new(node, sp.seg[i], child);
			}
			e = NULL;
			json_array_foreach(child, j, v)
				if (fmatch(&sp, i, v)) {
					e = v;
					break;
				}
			if (e == NULL) {
				if (json_array_size(vals) == 0)
					break;
				e = json_object();
				for (k = 0; k < sp.nf[i]; k++)
					json_object_set(e, sp.f[i][k].sub,
					    sp.f[i][k].val);
				json_array_append_new(child, e);
			}
			if (!last) {
				node = e;
				continue;
			}
			/* attr[filter] alone: the element's value. */
			v = get_ci(e, "value", &rk);
			if (json_array_size(vals) == 0) {
				json_array_remove(child, j);
				break;
			}
			json_object_set_new(e, v ? rk : "value", typed("value",
			    json_array_get(vals, 0), v));
			break;
		}
		if (!last && json_is_array(child)) {
			/* attr.sub of a multi-valued attribute: one element
			 * per value, those already there kept. */
			const char *sub = sp.seg[i + 1];

			if (i + 2 != sp.nseg)
				goto bad;
			arr = json_array();
			json_array_foreach(child, j, e) {
				json_t *have = json_array();

				leaf_add(have, get_ci(e, sub, NULL));
				for (k = 0; k < json_array_size(vals); k++)
					if (json_array_size(have) &&
					    json_equal(json_array_get(have, 0),
					    json_array_get(vals, k)))
						break;
				if (k < json_array_size(vals))
					json_array_append(arr, e);
				json_decref(have);
			}
			json_array_foreach(vals, k, v) {
				int found = 0;

				json_array_foreach(arr, j, e) {
					json_t *h = json_array();

					leaf_add(h, get_ci(e, sub, NULL));
					if (json_equal(json_array_get(h, 0), v))
						found = 1;
					json_decref(h);
				}
				if (!found)
					json_array_append_new(arr, json_pack(
					    "{s:O}", sub, v));
			}
			if (json_array_size(arr))
				json_object_set_new(node, rk, arr);
			else {
				json_decref(arr);
				json_object_del(node, rk);
			}
			break;
		}
		if (!last) {
			if (!json_is_object(child)) {
				if (json_array_size(vals) == 0)
					break;
				child = json_object();
				json_object_set_new(node, sp.seg[i], child);
			}
			node = child;
			continue;
		}
		/* The last segment. */
		if (json_array_size(vals) == 0) {
			if (child)
				json_object_del(node, rk);
			break;
		}
		if (json_is_array(child) || in_list(multi, sp.seg[i])) {
			int complex = child == NULL ||
			    json_is_object(json_array_get(child, 0));

			arr = json_array();
			json_array_foreach(vals, k, v) {
				if (complex)
					json_array_append_new(arr, json_pack(
					    "{s:O}", "value", v));
				else
					json_array_append(arr, v);
			}
			json_object_set_new(node, child ? rk : sp.seg[i], arr);
			break;
		}
		json_object_set_new(node, child ? rk : sp.seg[i],
		    typed(sp.seg[i], json_array_get(vals, 0), child));
	}
	spath_release(&sp);
	return 0;
bad:
	spath_release(&sp);
	return -1;
}

/* ------------------------------------------------------- the client */

/*
 * One request on connection conn (sync_scim_call): path is relative to
 * the service's URL; body JSON or NULL; ifmatch the version to send in
 * If-Match, or NULL.  Returns 0 when an answer came, whatever its status
 * or body (r filled, released first), -1 with err set when none did
 * (after the HTTP layer's retries, for an idempotent request).
 */
static int
call(struct sx *s, int conn, const char *method, const char *path,
    json_t *body, const char *ifmatch, int flags, struct sync_scim_resp *r,
    struct sync_err *err)
{
	struct sync_buf im = { 0 };
	const char *hdrs[2] = { NULL, NULL };
	char *text = NULL;
	int rc;

	if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return sync_errf(err, "%s: out of memory", s->p->target->name);
	if (ifmatch) {
		sync_buf_addf(&im, "If-Match: %s", ifmatch);
		hdrs[0] = im.p;
	}
	rc = sync_scim_call(s->scim, conn, method, path, text, hdrs,
	    flags | SYNC_SCIM_ANYSTATUS, r, err);
	free(text);
	sync_buf_release(&im);
	if (rc == -1)
		return -1;
	__atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
	if (strcmp(method, "GET") != 0)
		__atomic_add_fetch(&s->writes, 1, __ATOMIC_RELAXED);
	return 0;
}

/* The version of a resource read: ETag, else meta.version, or NULL. */
static const char *
version_of(struct sync_scim_resp *r, json_t *res)
{
	const char *v;

	if (r && r->etag && r->etag[0])
		return r->etag;
	v = json_string_value(json_object_get(json_object_get(res, "meta"),
	    "version"));
	return v;
}

/*
 * The journal's error of a response: status, scimType, detail (the
 * service's), and a message "METHOD PATH: STATUS scimType: detail".
 */
static json_t *
scim_error(const char *method, const char *path,
    struct sync_scim_resp *r)
{
	const char *type, *detail;
	struct sync_buf m = { 0 };
	json_t *e;

	type = json_string_value(get_ci(r->json, "scimType", NULL));
	detail = json_string_value(get_ci(r->json, "detail", NULL));
	sync_buf_addf(&m, "%s %s: %ld", method, path, r->status);
	if (type)
		sync_buf_addf(&m, " %s", type);
	if (detail)
		sync_buf_addf(&m, ": %s", detail);
	if (r->budget_spent)
		sync_buf_adds(&m, " (the retry budget is spent)");
	e = json_pack("{s:I, s:s}", "status", (json_int_t)r->status,
	    "message", m.p ? m.p : "");
	if (e && type)
		json_object_set_new(e, "scimType", json_string(type));
	if (e && detail)
		json_object_set_new(e, "detail", json_string(detail));
	sync_buf_release(&m);
	return e;
}

static void
fail(struct schange *g, json_t *error)
{
	if (!g->failed) {
		g->failed = 1;
		json_decref(g->error);
		g->error = error;
	} else
		json_decref(error);
}

static void
fail_msg(struct schange *g, const char *msg)
{
	fail(g, json_pack("{s:s}", "message", msg));
}

static void
set_anchor_id(struct sx *s, struct schange *g)
{
	pthread_mutex_lock(&s->mu);
	if (g->tid)
		json_object_set_new(s->anchors, g->x->anchor,
		    json_string(g->tid));
	pthread_mutex_unlock(&s->mu);
}

/* Takes res (borrowed) as g's current object, with version ver. */
static void
take_object(struct schange *g, json_t *res, const char *ver)
{
	json_t *m, *v;
	size_t i;

	json_decref(g->cur);
	g->cur = json_incref(res);
	free(g->etag);
	g->etag = ver ? sync_strdup(ver) : NULL;
	if (ver)
		g->versioned = 1;
	/* A full representation: no members is none. */
	m = get_ci(res, "members", NULL);
	if (g->members == NULL)
		g->members = json_object();
	else
		json_object_clear(g->members);
	json_array_foreach(m, i, v) {
		const char *id = json_string_value(get_ci(v, "value", NULL));

		if (id)
			json_object_set_new(g->members, id, json_true());
	}
}

/*
 * Reads g's object by its id: 0 (g->exists says whether it is there),
 * or -1 with err set when no answer came (g failed on a refusal).
 */
static int
read_object(struct sx *s, int conn, struct schange *g, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct sync_scim_resp r = { 0 };
	int rc = 0;

	sync_buf_addf(&b, "%s/", g->coll);
	pct(&b, g->tid);
	if (call(s, conn, "GET", b.p, NULL, NULL, SYNC_HTTP_IDEMPOTENT, &r,
	    err) == -1)
		rc = -1;
	else if (r.status == 404)
		g->exists = 0;
	else if (r.status != 200 || !json_is_object(r.json))
		fail(g, scim_error("GET", b.p, &r));
	else {
		g->exists = 1;
		take_object(g, r.json, version_of(&r, r.json));
	}
	sync_scim_resp_release(&r);
	sync_buf_release(&b);
	return rc;
}

/*
 * Looks g's object up by its anchor (filter=ANCHORATTR eq "ANCHOR"):
 * 0 with g->exists set (and its object taken), or -1 with err set when
 * no answer came.  Several objects with the anchor fail the change.
 */
static int
lookup(struct sx *s, int conn, struct schange *g, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct sync_scim_resp r = { 0 };
	json_t *o, *a, *want, *hit = NULL;
	size_t i, nfound = 0;
	int rc = 0;

	if (sync_buf_addf(&b, "%s?filter=", g->coll) == -1 ||
	    sync_scim_filter_eq(&b, g->x->anchorattr, g->x->anchor) == -1) {
		sync_buf_release(&b);
		return sync_errf(err, "out of memory");
	}
	if (call(s, conn, "GET", b.p, NULL, NULL, SYNC_HTTP_IDEMPOTENT, &r,
	    err) == -1) {
		rc = -1;
		goto out;
	}
	if (r.status != 200) {
		fail(g, scim_error("GET", b.p, &r));
		goto out;
	}
	want = json_pack("[s]", g->x->anchor);
	json_array_foreach(get_ci(r.json, "Resources", NULL), i, o) {
		/* The service's filter may ignore case: compare exactly. */
		a = from_scim(o, g->x->anchorattr, g->schema);
		if (json_equal(a, want)) {
			nfound++;
			hit = o;
		}
		json_decref(a);
	}
	json_decref(want);
	if (nfound > 1) {
		fail_msg(g, "several target objects carry this anchor");
		goto out;
	}
	g->exists = nfound == 1;
	if (hit == NULL)
		goto out;
	free(g->tid);
	g->tid = sync_strdup(json_string_value(json_object_get(hit, "id")));
	if (g->tid == NULL) {
		fail_msg(g, "an object found by its anchor has no id");
		goto out;
	}
	set_anchor_id(s, g);
	/* A list may leave members out: read the group itself. */
	if (g->group && get_ci(hit, "members",
	    NULL) == NULL && json_object_get(json_object_get(g->x->c,
	    "attrs"), "members"))
		rc = read_object(s, conn, g, err);
	else
		take_object(g, hit, version_of(NULL, hit));
out:
	sync_scim_resp_release(&r);
	sync_buf_release(&b);
	return rc;
}

/* ----------------------------------------------------- plan vs target */

static int
applicable(struct schange *g)
{
	return !g->skip && !g->failed && !g->x->done && xplan_is_write(g->x);
}

/*
 * The plan against what was read: an attribute whose value is neither
 * the plan's old one nor its new one means the target moved since (see
 * the Graph writer).  Sets g->stale and g->stalewhy.
 */
static void
check_stale(struct schange *g)
{
	json_t *attrs = json_object_get(g->x->c, "attrs"), *a, *cur;
	const char *k, *op = g->x->op;
	struct sync_buf why = { 0 };

	g->stale = 0;
	free(g->stalewhy);
	g->stalewhy = NULL;
	if (strcmp(op, "add") == 0)
		return;
	if (!g->exists) {
		if (strcmp(op, "delete") == 0)
			g->skip = 2;    /* already gone: in place */
		else
			sync_buf_addf(&why, "the object no longer exists");
		goto out;
	}
	if (strcmp(op, "delete") == 0) {
		json_t *want = json_pack("[s]", g->x->anchor);

		/* Still ours: the anchor attribute holds this anchor. */
		cur = from_scim(g->cur, g->x->anchorattr, g->schema);
		if (!json_equal(cur, want)) {
			char *c = json_dumps(cur, JSON_COMPACT);

			sync_buf_addf(&why, "%s is %s, not the plan's anchor",
			    g->x->anchorattr, c ? c : "?");
			free(c);
		}
		json_decref(cur);
		json_decref(want);
		goto out;
	}
	json_object_foreach(attrs, k, a) {
		json_t *old = json_object_get(a, "old"), *nw = json_object_get(a,
		    "new");

		if (strcmp(k, "members") == 0 || old == NULL)
			continue;
		cur = from_scim(g->cur, k, g->schema);
		if (!(nw && same(cur, nw)) && !same(cur, old)) {
			char *c = json_dumps(cur, JSON_COMPACT);
			char *o = json_dumps(old, JSON_COMPACT);

			sync_buf_addf(&why, "%s%s is %s, the plan expected %s",
			    why.len ? "; " : "", k, c ? c : "?", o ? o : "?");
			free(c);
			free(o);
		}
		json_decref(cur);
	}
out:
	if (why.len) {
		g->stale = 1;
		g->stalewhy = sync_buf_detach(&why);
	}
	sync_buf_release(&why);
}

/* A change found stale while it was written: it fails, with why. */
static void
fail_stale(struct schange *g, long status)
{
	struct sync_buf m = { 0 };

	sync_buf_addf(&m, "the target changed since the plan was made: %s; "
	    "not overwritten", g->stalewhy ? g->stalewhy : "?");
	fail(g, json_pack("{s:s, s:b, s:I}", "message", m.p ? m.p : "",
	    "stale", 1, "status", (json_int_t)status));
	sync_buf_release(&m);
}

/*
 * The body of a create: the plan's new values, the anchor attribute
 * when the plan does not set it, the schemas (new reference).
 */
static json_t *
create_body(struct schange *g)
{
	json_t *attrs = json_object_get(g->x->c, "attrs"), *a, *body, *sch;
	const char *k;
	int ext = 0;

	body = json_object();
	sch = json_array();
	json_array_append_new(sch, json_string(g->schema));
	json_object_set_new(body, "schemas", sch);
	json_object_foreach(attrs, k, a) {
		json_t *nw = json_object_get(a, "new");

		if (strcmp(k, "members") == 0 || nw == NULL)
			continue;
		if (to_scim(body, k, nw, g->schema, &ext) == -1) {
			json_decref(body);
			return NULL;
		}
	}
	if (g->x->anchorattr) {
		json_t *have = from_scim(body, g->x->anchorattr, g->schema);
		json_t *v = json_pack("[s]", g->x->anchor);

		if (json_array_size(have) == 0)
			to_scim(body, g->x->anchorattr, v, g->schema, &ext);
		json_decref(v);
		json_decref(have);
	}
	/* Extensions used name their schema. */
	{
		const char *key;
		json_t *val;

		json_object_foreach(body, key, val)
			if (strncasecmp(key, "urn:", 4) == 0 &&
			    json_is_object(val))
				json_array_append_new(sch, json_string(key));
	}
	return body;
}

/*
 * The PATCH operations that bring g->cur to the plan's new values: one
 * replace (or remove) per top-level attribute that differs, with its
 * whole new value, so that complex and multi-valued attributes are
 * written the same way on every service.  NULL with *bad set when an
 * attribute path cannot be written; an empty array when nothing
 * differs (new reference).
 */
static json_t *
patch_ops(struct schange *g, int *bad, json_t **newres)
{
	json_t *attrs = json_object_get(g->x->c, "attrs"), *a, *copy, *ops,
	    *tops, *cur, *v, *root;
	const char *k, *top;
	int ext = 0;

	*bad = 0;
	copy = g->cur ? json_deep_copy(g->cur) : json_object();
	tops = json_object();
	json_object_foreach(attrs, k, a) {
		json_t *nw = json_object_get(a, "new");
		struct spath sp;

		if (strcmp(k, "members") == 0 || nw == NULL)
			continue;
		cur = from_scim(g->cur, k, g->schema);
		if (same(cur, nw)) {
			json_decref(cur);
			continue;
		}
		json_decref(cur);
		if (spath_parse(&sp, k) == -1) {
			*bad = 1;
			json_decref(copy);
			json_decref(tops);
			return NULL;
		}
		if (to_scim(copy, k, nw, g->schema, &ext) == -1) {
			*bad = 1;
			spath_release(&sp);
			json_decref(copy);
			json_decref(tops);
			return NULL;
		}
		json_object_set_new(tops, sp.top, json_pack("{s:s, s:s*}",
		    "urn", sp.urn ? sp.urn : "", "seg", sp.seg[0]));
		spath_release(&sp);
	}
	ops = json_array();
	json_object_foreach(tops, top, v) {
		const char *urn = json_string_value(json_object_get(v, "urn"));
		const char *seg = json_string_value(json_object_get(v, "seg"));
		json_t *nv;

		root = copy;
		if (urn && *urn) {
			root = get_ci(copy, urn, NULL);
			if (root == NULL && strcasecmp(urn, g->schema) == 0)
				root = copy;
		}
		nv = get_ci(root, seg, NULL);
		if (nv == NULL || json_is_null(nv) || (json_is_array(nv) &&
		    json_array_size(nv) == 0) || (json_is_object(nv) &&
		    json_object_size(nv) == 0))
			json_array_append_new(ops, json_pack("{s:s, s:s}",
			    "op", "remove", "path", top));
		else
			json_array_append_new(ops, json_pack("{s:s, s:s, s:O}",
			    "op", "replace", "path", top, "value", nv));
	}
	json_decref(tops);
	if (newres)
		*newres = copy;
	else
		json_decref(copy);
	return ops;
}

/*
 * The body of a PUT that replaces the resource with res (borrowed):
 * what the service owns left out (meta, a user's groups), the schemas
 * naming each extension it holds (new reference).
 */
static json_t *
put_body(struct schange *g, json_t *res)
{
	json_t *b = json_deep_copy(res), *sch, *v;
	const char *k;
	size_t i;

	json_object_del(b, "meta");
	if (!g->group)
		json_object_del(b, "groups");
	if (!json_is_array(sch = json_object_get(b, "schemas"))) {
		sch = json_pack("[s]", g->schema);
		json_object_set_new(b, "schemas", sch);
	}
	json_object_foreach(b, k, v) {
		if (strncasecmp(k, "urn:", 4) != 0 || !json_is_object(v))
			continue;
		json_array_foreach(sch, i, v)
			if (json_is_string(v) &&
			    strcasecmp(json_string_value(v), k) == 0)
				break;
		if (i == json_array_size(sch))
			json_array_append_new(sch, json_string(k));
	}
	return b;
}

static json_t *
patch_body(json_t *ops)
{
	return json_pack("{s:[s], s:o}", "schemas",
	    "urn:ietf:params:scim:api:messages:2.0:PatchOp", "Operations", ops);
}

/* ----------------------------------------------------------- the units */

struct unit {
	struct sx *s;
	int conn;
	int leased;             /* the lease was checked for this unit */
	int attempts;
};

/* Before a write: the lease, once per unit.  0, or -1 to stop. */
static int
may_write(struct unit *u, struct sync_err *err)
{
	int rc;

	if (u->leased)
		return 0;
	rc = xplan_lease(u->s->p, err);
	if (rc == 1)
		return sync_errf(err, "the lease was lost: this server is no "
		    "longer the active one; stopped before the next write");
	if (rc == -1)
		return -1;
	u->leased = 1;
	return 0;
}

/*
 * Sleeps d seconds before the unit's next request, taken from the retry
 * budget: 0, or -1 with g failed with why when the budget cannot pay.
 */
static int
pause_for(struct unit *u, struct schange *g, double d, const char *why)
{
	if (sync_retry_take(u->s->retry, d) == -1) {
		struct sync_buf m = { 0 };

		sync_buf_addf(&m, "%s (gave up: the retry budget of %.0f s is "
		    "spent)", why, u->s->retry->total);
		fail_msg(g, m.p ? m.p : why);
		sync_buf_release(&m);
		return -1;
	}
	sync_sleep_for(d);
	return 0;
}

/* The wait before the unit's next try: exponential, jittered, budgeted. */
static int
backoff(struct unit *u, struct schange *g, const char *why)
{
	double d = 0.25 * pow(2, u->attempts < 5 ? u->attempts : 5) *
	    (0.75 + 0.5 * (double)(rand() % 1000) / 1000.0);

	if (++u->attempts >= MAXATTEMPTS) {
		fail_msg(g, why);
		return -1;
	}
	return pause_for(u, g, d, why);
}

static int
is_lost(long status)
{
	return status == 500 || status == 502 || status == 504;
}

/* Phase 0: reads. */
static int
unit_read(struct unit *u, struct schange *g, struct sync_err *err)
{
	if (strcmp(g->x->op, "add") == 0)
		return lookup(u->s, u->conn, g, err);
	return read_object(u->s, u->conn, g, err);
}

/*
 * A create, exactly once: a POST over a fresh connection; when its
 * outcome is unknown, a look-up by anchor before any resend, made again
 * until create_settle seconds have passed since the lost answer while
 * it finds nothing (a new object may not be listed yet: see
 * xsettle_start).  Unlike Graph's users, users too: not every SCIM
 * service refuses a second user with the same userName.  A 409 after a
 * lost answer is likely the lost create itself: looked for the same
 * way, and the change fails with it when nothing is found.
 */
static int
unit_create(struct unit *u, struct schange *g, struct sync_err *err)
{
	struct sx *s = u->s;
	struct sync_buf path = { 0 };
	struct sync_scim_resp r = { 0 };
	json_t *body, *conflict = NULL;
	double settle = 0, wait;
	int uncertain = 0, rc = 0;
	char why[SYNC_ERRMAX];

	if ((body = create_body(g)) == NULL) {
		fail_msg(g, "an attribute path of the plan cannot be written");
		return 0;
	}
	sync_buf_addf(&path, "%s", g->coll);
	for (;;) {
		if (uncertain) {
			if (lookup(s, u->conn, g, err) == -1) {
				rc = -1;
				break;
			}
			if (g->failed)
				break;
			if (g->exists) {
				/* The lost create was applied: adopt it. */
				g->wrote = 1;
				break;
			}
			if (xsettle_wait(settle, &wait)) {
				if (pause_for(u, g, wait, why) == -1)
					break;
				continue;
			}
			if (conflict) {
				/* Not ours after all: the conflict stands. */
				fail(g, conflict);
				conflict = NULL;
				break;
			}
		}
		if (may_write(u, err) == -1) {
			rc = -1;
			break;
		}
		/* Not idempotent: a fresh connection, no resend by libcurl. */
		if (call(s, u->conn, "POST", path.p, body, NULL, 0, &r,
		    err) == -1) {
			snprintf(why, sizeof why, "%s", err->msg);
			uncertain = 1;
			settle = xsettle_start(s->sc->create_settle);
			if (backoff(u, g, why) == -1)
				break;
			continue;
		}
		if (r.status == 201 || r.status == 200) {
			free(g->tid);
			g->tid = sync_strdup(json_string_value(json_object_get(
			    r.json, "id")));
			if (g->tid == NULL) {
				fail_msg(g, "the service created the object "
				    "but gave no id");
				break;
			}
			g->exists = 1;
			g->wrote = 1;
			take_object(g, r.json, version_of(&r, r.json));
			set_anchor_id(s, g);
			break;
		}
		if (is_lost(r.status) && !r.budget_spent) {
			/* It may have been applied before the error. */
			json_t *e = scim_error("POST", path.p, &r);

			snprintf(why, sizeof why, "%s", json_string_value(
			    json_object_get(e, "message")));
			json_decref(e);
			uncertain = 1;
			settle = xsettle_start(s->sc->create_settle);
			if (backoff(u, g, why) == -1)
				break;
			continue;
		}
		if (r.status == 409 && uncertain && conflict == NULL) {
			/* Likely the lost create itself: look for it. */
			conflict = scim_error("POST", path.p, &r);
			snprintf(why, sizeof why, "%s", json_string_value(
			    json_object_get(conflict, "message")));
			settle = xsettle_start(s->sc->create_settle);
			continue;
		}
		fail(g, scim_error("POST", path.p, &r));
		break;
	}
	json_decref(conflict);
	json_decref(body);
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	if (g->wrote)
		set_anchor_id(s, g);
	return rc;
}

/*
 * A 412 or a lost answer to a write: the object is read again, and the
 * change checked against it again.  0 to try again, 1 when the change
 * is over (failed stale, or an object gone), -1 with err set.
 */
static int
reread(struct unit *u, struct schange *g, long status,
    struct sync_err *err)
{
	if (read_object(u->s, u->conn, g, err) == -1)
		return -1;
	if (g->failed)
		return 1;
	if (!g->exists && strcmp(g->x->op, "delete") == 0) {
		if (!g->wrote)
			g->skip = 2;
		return 1;
	}
	if (!g->exists && u->s->phase == 3) {
		fail_msg(g, "the group no longer exists");
		return 1;
	}
	if (strcmp(g->x->op, "add") == 0 && g->exists)
		return 0;
	check_stale(g);
	if (g->stale) {
		fail_stale(g, status);
		return 1;
	}
	return 0;
}

/* A delete: DELETE with If-Match; gone already is in place. */
static int
unit_delete(struct unit *u, struct schange *g, struct sync_err *err)
{
	struct sync_buf path = { 0 };
	struct sync_scim_resp r = { 0 };
	int rc = 0, st;

	sync_buf_addf(&path, "%s/", g->coll);
	pct(&path, g->tid);
	for (;;) {
		if (may_write(u, err) == -1) {
			rc = -1;
			break;
		}
		if (call(u->s, u->conn, "DELETE", path.p, NULL, g->etag,
		    SYNC_HTTP_IDEMPOTENT, &r, err) == -1) {
			rc = -1;
			break;
		}
		if (r.status == 204 || r.status == 200) {
			g->wrote = 1;
			break;
		}
		if (r.status == 404) {
			/* Gone: by this request when it was sent again
			 * after a lost answer, else before it. */
			if (r.attempts > 1 || u->attempts > 0)
				g->wrote = 1;
			else
				g->skip = 2;
			break;
		}
		if (r.status == 412 && u->attempts < MAXATTEMPTS) {
			u->attempts++;
			if ((st = reread(u, g, 412, err)) != 0) {
				rc = st == -1 ? -1 : 0;
				break;
			}
			continue;
		}
		fail(g, scim_error("DELETE", path.p, &r));
		break;
	}
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	return rc;
}

/* An update (or an add found by its anchor): PATCH what differs. */
static int
unit_update(struct unit *u, struct schange *g, struct sync_err *err)
{
	struct sx *s = u->s;
	struct sync_buf path = { 0 };
	struct sync_scim_resp r = { 0 };
	json_t *ops, *body, *res;
	const char *method = s->put ? "PUT" : "PATCH";
	int rc = 0, st, bad, sent = 0;

	sync_buf_addf(&path, "%s/", g->coll);
	pct(&path, g->tid);
	for (;;) {
		/* A PUT replaces the whole resource: from a fresh read. */
		if (s->put && g->cur == NULL &&
		    (st = reread(u, g, 0, err)) != 0) {
			rc = st == -1 ? -1 : 0;
			break;
		}
		res = NULL;
		ops = patch_ops(g, &bad, s->put ? &res : NULL);
		if (bad) {
			fail_msg(g, "an attribute path of the plan cannot be "
			    "written");
			break;
		}
		if (json_array_size(ops) == 0) {
			/* In place; after a write whose answer was lost (a
			 * 412 to its resend), by that write. */
			if (sent)
				g->wrote = 1;
			json_decref(ops);
			json_decref(res);
			break;
		}
		if (s->put) {
			body = put_body(g, res);
			json_decref(ops);
		} else
			body = patch_body(ops);
		json_decref(res);
		if (may_write(u, err) == -1) {
			json_decref(body);
			rc = -1;
			break;
		}
		/* Replacing values is idempotent: the HTTP layer resends. */
		st = call(s, u->conn, method, path.p, body, g->etag,
		    SYNC_HTTP_IDEMPOTENT, &r, err);
		json_decref(body);
		sent = 1;
		if (st == -1) {
			rc = -1;
			break;
		}
		if (r.status == 200 || r.status == 204) {
			g->wrote = 1;
			if (r.status == 200 && json_is_object(r.json))
				take_object(g, r.json, version_of(&r, r.json));
			else {
				/* No representation: the values are the plan's;
				 * the version is unknown until read again. */
				free(g->etag);
				g->etag = r.etag ? sync_strdup(r.etag) : NULL;
				json_decref(g->cur);
				g->cur = NULL;
			}
			break;
		}
		if (r.status == 412 && u->attempts < MAXATTEMPTS) {
			u->attempts++;
			if ((st = reread(u, g, 412, err)) != 0) {
				rc = st == -1 ? -1 : 0;
				break;
			}
			continue;
		}
		fail(g, scim_error(method, path.p, &r));
		break;
	}
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	return rc;
}

/* The member ids the plan adds to g (resolved anchors too), new array. */
static json_t *
members_wanted(struct sx *s, struct schange *g, json_t *m)
{
	json_t *add = json_array(), *v, *id;
	size_t j;

	json_array_foreach(json_object_get(m, "add"), j, v)
		json_array_append(add, v);
	json_array_foreach(json_object_get(m, "new"), j, v)
		json_array_append(add, v);
	json_array_foreach(json_object_get(m, "add_anchors"), j, v) {
		pthread_mutex_lock(&s->mu);
		id = json_object_get(s->anchors, json_string_value(v));
		if (id)
			json_array_append(add, id);
		pthread_mutex_unlock(&s->mu);
		if (id == NULL && !g->failed) {
			g->failed = 1;
			g->error = json_pack("{s:s, s:s}", "message", "a member "
			    "created by this plan has no id (its creation "
			    "failed)", "anchor", json_string_value(v));
		}
	}
	return add;
}

/* The member ids the plan removes from g, new array. */
static json_t *
members_unwanted(json_t *m)
{
	json_t *rm = json_array(), *v, *nw = json_object_get(m, "new");
	size_t j, k;

	json_array_foreach(json_object_get(m, "remove"), j, v)
		json_array_append(rm, v);
	/* A full list: the old values not in the new one. */
	json_array_foreach(json_object_get(m, "old"), j, v) {
		for (k = 0; k < json_array_size(nw); k++)
			if (json_equal(json_array_get(nw, k), v))
				break;
		if (k == json_array_size(nw))
			json_array_append(rm, v);
	}
	return rm;
}

/*
 * The next member PATCH of g: up to MEMBER_OPS members, those to add
 * that are not members (one add operation) and those to remove that are
 * (one remove operation each, with a value filter: a remove of
 * "members" without one would remove them all).  NULL when nothing is
 * left to do.  *added, *removed: the ids it carries (new arrays).
 */
static json_t *
member_patch(struct schange *g, json_t *add, json_t *rm, json_t **added,
    json_t **removed)
{
	json_t *ops = json_array(), *vals = json_array(), *v;
	struct sync_buf p = { 0 };
	size_t j, n = 0;

	*added = json_array();
	*removed = json_array();
	json_array_foreach(add, j, v) {
		const char *id = json_string_value(v);

		if (n == MEMBER_OPS)
			break;
		if (id == NULL || json_object_get(g->members, id))
			continue;
		{
			size_t k;

			for (k = 0; k < json_array_size(*added); k++)
				if (json_equal(json_array_get(*added, k), v))
					break;
			if (k < json_array_size(*added))
				continue;
		}
		json_array_append_new(vals, json_pack("{s:s}", "value", id));
		json_array_append(*added, v);
		n++;
	}
	if (json_array_size(vals))
		json_array_append_new(ops, json_pack("{s:s, s:s, s:O}", "op",
		    "add", "path", "members", "value", vals));
	json_decref(vals);
	json_array_foreach(rm, j, v) {
		const char *id = json_string_value(v);

		if (n == MEMBER_OPS)
			break;
		if (id == NULL || !json_object_get(g->members, id))
			continue;       /* not a member: nothing to do */
		sync_buf_reset(&p);
		sync_buf_adds(&p, "members[value eq ");
		scim_str(&p, id);
		sync_buf_adds(&p, "]");
		json_array_append_new(ops, json_pack("{s:s, s:s}", "op",
		    "remove", "path", p.p));
		json_array_append(*removed, v);
		n++;
	}
	sync_buf_release(&p);
	if (json_array_size(ops) == 0) {
		json_decref(ops);
		json_decref(*added);
		json_decref(*removed);
		*added = *removed = NULL;
		return NULL;
	}
	return patch_body(ops);
}

/*
 * Phase 3 on a service without PATCH: the group is written whole, its
 * members those read last less the plan's removals plus its additions;
 * PUT sets the list, so sending it again is harmless.  A 412 or a lost
 * answer reads the group again.
 */
static int
unit_members_put(struct unit *u, struct schange *g, json_t *add, json_t *rm,
    struct sync_err *err)
{
	struct sx *s = u->s;
	struct sync_buf path = { 0 };
	struct sync_scim_resp r = { 0 };
	json_t *list, *seen, *res, *body, *v;
	size_t i, k;
	int rc = 0, st, sent = 0, changed;

	sync_buf_addf(&path, "%s/", g->coll);
	pct(&path, g->tid);
	for (;;) {
		if (g->cur == NULL && (st = reread(u, g, 0, err)) != 0) {
			rc = st == -1 ? -1 : 0;
			break;
		}
		list = json_array();
		seen = json_object();
		changed = 0;
		json_array_foreach(get_ci(g->cur, "members", NULL), i, v) {
			const char *id = json_string_value(get_ci(v, "value",
			    NULL));

			for (k = 0; id && k < json_array_size(rm); k++)
				if (strcmp(id, json_string_value(
				    json_array_get(rm, k))) == 0)
					break;
			if (id == NULL || k < json_array_size(rm) ||
			    json_object_get(seen, id)) {
				changed = 1;
				continue;
			}
			json_object_set_new(seen, id, json_true());
			json_array_append(list, v);
		}
		json_array_foreach(add, i, v) {
			const char *id = json_string_value(v);

			if (id == NULL || json_object_get(seen, id))
				continue;
			json_object_set_new(seen, id, json_true());
			json_array_append_new(list, json_pack("{s:s}", "value",
			    id));
			changed = 1;
		}
		json_decref(seen);
		if (!changed) {
			if (sent)
				g->wrote = 1;
			json_decref(list);
			break;
		}
		res = json_deep_copy(g->cur);
		json_object_set_new(res, "members", list);
		body = put_body(g, res);
		json_decref(res);
		if (may_write(u, err) == -1) {
			json_decref(body);
			rc = -1;
			break;
		}
		st = call(s, u->conn, "PUT", path.p, body, g->etag,
		    SYNC_HTTP_IDEMPOTENT, &r, err);
		json_decref(body);
		sent = 1;
		if (st == -1) {
			rc = -1;
			break;
		}
		if (r.status == 200 || r.status == 204) {
			g->wrote = 1;
			json_decref(g->cur);
			g->cur = NULL;
			if (r.status == 200 && json_is_object(r.json))
				take_object(g, r.json, version_of(&r, r.json));
			continue;       /* until nothing is left to do */
		}
		if ((r.status == 412 || (is_lost(r.status) &&
		    !r.budget_spent)) && ++u->attempts < MAXATTEMPTS) {
			json_decref(g->cur);
			g->cur = NULL;
			continue;
		}
		fail(g, scim_error("PUT", path.p, &r));
		break;
	}
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	return rc;
}

/*
 * Phase 3: a group's members, by PATCH.  A member add is not sent
 * twice blindly (a service may keep a member twice): after a lost
 * answer, a 412 or a 5xx, the group is read again and what is still to
 * do is computed anew.
 */
static int
unit_members(struct unit *u, struct schange *g, struct sync_err *err)
{
	struct sx *s = u->s;
	struct sync_buf path = { 0 };
	struct sync_scim_resp r = { 0 };
	json_t *m, *add, *rm, *body, *added, *removed, *v;
	size_t j;
	int rc = 0, st, fresh = 0, sent = 0;
	char why[SYNC_ERRMAX];

	m = json_object_get(json_object_get(g->x->c, "attrs"), "members");
	add = members_wanted(s, g, m);
	rm = members_unwanted(m);
	if (s->put) {
		rc = unit_members_put(u, g, add, rm, err);
		json_decref(add);
		json_decref(rm);
		return rc;
	}
	if (g->members == NULL)
		g->members = json_object();
	sync_buf_addf(&path, "%s/", g->coll);
	pct(&path, g->tid);
	for (;;) {
		/* A version spent by an earlier write: read the new one. */
		if (g->versioned && g->etag == NULL && !fresh) {
			if ((st = reread(u, g, 0, err)) != 0) {
				rc = st == -1 ? -1 : 0;
				break;
			}
		}
		fresh = 0;
		if ((body = member_patch(g, add, rm, &added, &removed)) ==
		    NULL) {
			/* Done; by a PATCH whose answer was lost, maybe. */
			if (sent)
				g->wrote = 1;
			break;
		}
		if (may_write(u, err) == -1) {
			json_decref(body);
			json_decref(added);
			json_decref(removed);
			rc = -1;
			break;
		}
		st = call(s, u->conn, "PATCH", path.p, body, g->etag,
		    json_array_size(added) ? 0 : SYNC_HTTP_IDEMPOTENT, &r, err);
		json_decref(body);
		sent = 1;
		if (st == 0 && (r.status == 200 || r.status == 204)) {
			g->wrote = 1;
			json_array_foreach(added, j, v)
				json_object_set_new(g->members,
				    json_string_value(v), json_true());
			json_array_foreach(removed, j, v)
				json_object_del(g->members, json_string_value(v));
			free(g->etag);
			g->etag = NULL;
			if (r.status == 200 && json_is_object(r.json) &&
			    version_of(&r, r.json)) {
				take_object(g, r.json, version_of(&r, r.json));
				fresh = 1;
			} else if (r.etag) {
				g->etag = sync_strdup(r.etag);
				fresh = 1;
			}
		} else if (st == -1 || (is_lost(r.status) && !r.budget_spent) ||
		    r.status == 412) {
			/* Unknown, or the group moved: read it, go on. */
			if (st == -1)
				snprintf(why, sizeof why, "%s", err->msg);
			else {
				json_t *e = scim_error("PATCH", path.p, &r);

				snprintf(why, sizeof why, "%s", json_string_value(
				    json_object_get(e, "message")));
				json_decref(e);
			}
			if (r.status != 412 && backoff(u, g, why) == -1) {
				json_decref(added);
				json_decref(removed);
				break;
			}
			if (r.status == 412 && ++u->attempts >= MAXATTEMPTS) {
				fail_msg(g, why);
				json_decref(added);
				json_decref(removed);
				break;
			}
			if ((st = reread(u, g, 412, err)) != 0) {
				json_decref(added);
				json_decref(removed);
				rc = st == -1 ? -1 : 0;
				break;
			}
			fresh = 1;
		} else {
			fail(g, scim_error("PATCH", path.p, &r));
			json_decref(added);
			json_decref(removed);
			break;
		}
		json_decref(added);
		json_decref(removed);
	}
	json_decref(add);
	json_decref(rm);
	sync_scim_resp_release(&r);
	sync_buf_release(&path);
	return rc;
}

/* ----------------------------------------------------------- outcomes */

static int
record(struct sx *s, struct schange *g, struct sync_err *err)
{
	return xplan_outcome(s->p, g->x, &g->recorded, g->skip == 1,
	    g->failed, g->skip == 2 || !g->wrote, g->tid, g->error, err);
}

static void
progress(struct sx *s, const char *notice, int end)
{
	struct sync_export_progress pr;

	if (s->p->o->progress == NULL)
		return;
	memset(&pr, 0, sizeof pr);
	pthread_mutex_lock(&s->mu);
	pr.phase = s->phase;
	pr.done = s->done;
	pr.total = s->nq;
	pthread_mutex_unlock(&s->mu);
	/* Twenty requests for a batch: a log gets a line about as often
	 * as for Graph's batches of twenty. */
	pr.batches = __atomic_load_n(&s->requests, __ATOMIC_RELAXED) / 20;
	pr.retries = s->scim ? sync_scim_retries(s->scim, NULL) : 0;
	pr.what = xplan_phase_what(pr.phase);
	pr.notice = notice;
	pr.end = end;
	xplan_progress(s->p, &pr);
}

static void
on_notice(void *ctx, const char *msg)
{
	progress(ctx, msg, 0);
}

/* Runs the unit of change g in the current phase. */
static int
unit_run(struct unit *u, struct schange *g, struct sync_err *err)
{
	struct sx *s = u->s;
	const char *op = g->x->op;

	switch (s->phase) {
	case 0:
		return unit_read(u, g, err);
	case 3:
		return unit_members(u, g, err);
	default:
		if (strcmp(op, "delete") == 0)
			return unit_delete(u, g, err);
		if (strcmp(op, "add") == 0 && !g->exists)
			return unit_create(u, g, err);
		return unit_update(u, g, err);
	}
}

static void
work(void *arg, int conn)
{
	struct sx *s = arg;
	struct sync_err err;
	struct schange *g;
	struct unit u;
	int rc, sync;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		if (s->abort || s->next == s->nq) {
			pthread_mutex_unlock(&s->mu);
			return;
		}
		g = &s->g[s->q[s->next++]];
		pthread_mutex_unlock(&s->mu);
		memset(&u, 0, sizeof u);
		u.s = s;
		u.conn = conn;
		rc = unit_run(&u, g, &err);
		if (rc == 0 && (g->failed || (s->phase > 0 &&
		    s->phase >= g->last_phase)))
			rc = record(s, g, &err);
		pthread_mutex_lock(&s->mu);
		s->done++;
		sync = rc == 0 && ++s->unsynced >= SYNC_EVERY;
		if (sync)
			s->unsynced = 0;
		if (rc == -1 && !s->abort) {
			s->abort = 1;
			s->abort_err = err;
		}
		pthread_mutex_unlock(&s->mu);
		if (sync && xplan_sync(s->p, &err) == -1) {
			pthread_mutex_lock(&s->mu);
			if (!s->abort) {
				s->abort = 1;
				s->abort_err = err;
			}
			pthread_mutex_unlock(&s->mu);
		}
		progress(s, NULL, 0);
	}
}

/* Runs the queued units on every connection, then flushes the journal. */
static int
run_phase(struct sx *s, struct sync_err *err)
{
	int nth = s->nconn;
	size_t k;

	s->next = s->done = 0;
	if (s->nq > 0) {
		progress(s, NULL, 0);
		if (nth > 64)
			nth = 64;
		if ((size_t)nth > s->nq)
			nth = (int)s->nq;
		xplan_workers(nth, work, s);
		progress(s, NULL, 1);
	}
	if (s->abort) {
		*err = s->abort_err;
		xplan_sync(s->p, NULL);
		return -1;
	}
	/* The changes this phase completed without a request of theirs. */
	for (k = 0; s->phase > 0 && k < s->n; k++)
		if ((s->g[k].last_phase <= s->phase || s->g[k].failed) &&
		    record(s, &s->g[k], err) == -1)
			return -1;
	return xplan_sync(s->p, err);
}

/* Queues the changes of the phase. */
static int
queue(struct sx *s, int phase)
{
	size_t i;

	s->phase = phase;
	s->nq = 0;
	for (i = 0; i < s->n; i++) {
		struct schange *g = &s->g[i];
		int is_group = g->group;

		if (!applicable(g))
			continue;
		if (phase == 1 && is_group)
			continue;
		if (phase == 2 && !is_group)
			continue;
		if (phase == 3 && (!is_group || g->last_phase != 3 ||
		    g->tid == NULL))
			continue;
		s->q[s->nq++] = i;
	}
	return 0;
}

/* ---------------------------------------------------------- dry run */

static void
dry_line(FILE *fp, const char *method, const char *path, json_t *body)
{
	char *t = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	fprintf(fp, "%s ", method);
	sync_fputs_esc(path, fp);
	if (t) {
		fputc(' ', fp);
		sync_fputs_esc(t, fp);
	}
	fputc('\n', fp);
	free(t);
}

/* --dry-run: the writes of phases 1 to 3, as if nothing were in place. */
static int
dry_run(struct sx *s, FILE *fp, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct schange *g;
	json_t *body, *ops, *add, *rm, *added, *removed, *v2;
	size_t i, i2;
	int phase, bad;

	for (i = 0; i < s->n; i++)
		if (applicable(&s->g[i]) && s->g[i].tid == NULL) {
			sync_buf_reset(&b);
			sync_buf_addf(&b, "{new-%s}", s->g[i].x->anchor);
			s->g[i].tid = sync_buf_detach(&b);
			json_object_set_new(s->anchors, s->g[i].x->anchor,
			    json_string(s->g[i].tid));
		}
	for (phase = 1; phase <= 3; phase++) {
		queue(s, phase);
		for (i = 0; i < s->nq; i++) {
			g = &s->g[s->q[i]];
			sync_buf_reset(&b);
			sync_buf_addf(&b, "%s", g->coll);
			if (phase < 3 && strcmp(g->x->op, "add") == 0) {
				body = create_body(g);
				dry_line(fp, "POST", b.p, body);
				json_decref(body);
				continue;
			}
			sync_buf_addc(&b, '/');
			pct(&b, g->tid);
			if (phase < 3 && strcmp(g->x->op, "delete") == 0) {
				dry_line(fp, "DELETE", b.p, NULL);
				continue;
			}
			if (phase < 3) {
				ops = patch_ops(g, &bad, NULL);
				if (json_array_size(ops)) {
					body = patch_body(ops);
					dry_line(fp, "PATCH", b.p, body);
					json_decref(body);
				} else
					json_decref(ops);
				continue;
			}
			{
				json_t *m = json_object_get(json_object_get(
				    g->x->c, "attrs"), "members");

				if (g->members == NULL)
					g->members = json_object();
				add = members_wanted(s, g, m);
				rm = members_unwanted(m);
				/* As if every removal were a member. */
				json_array_foreach(rm, i2, v2)
					json_object_set_new(g->members,
					    json_string_value(v2), json_true());
				while ((body = member_patch(g, add, rm, &added,
				    &removed)) != NULL) {
					size_t j;
					json_t *v;

					dry_line(fp, "PATCH", b.p, body);
					json_decref(body);
					json_array_foreach(added, j, v)
						json_object_set_new(g->members,
						    json_string_value(v),
						    json_true());
					json_array_foreach(removed, j, v)
						json_object_del(g->members,
						    json_string_value(v));
					json_decref(added);
					json_decref(removed);
				}
				json_decref(add);
				json_decref(rm);
			}
		}
	}
	sync_buf_release(&b);
	if (ferror(fp))
		return sync_errno(err, "cannot write the dry run");
	return 0;
}

/* -------------------------------------------------------------- run */

static int
sx_open(struct sx *s, struct sync_err *err)
{
	struct sync_scim_conf *sc = s->sc;

	s->nconn = (int)(sc->connections > 0 ? sc->connections : 4);
	if (s->nconn > 64)
		s->nconn = 64;
	if ((s->scim = sync_scim_open(s->p->target, s->nconn, err)) == NULL)
		return -1;
	s->retry = sync_scim_retry(s->scim);
	if (s->p->o->progress) {
		s->retry->notify = on_notice;
		s->retry->notify_ctx = s;
	}
	return 0;
}

/*
 * What the service offers (RFC 7643 5): without PATCH, updates and
 * members are written with PUT.  A service that does not answer
 * /ServiceProviderConfig is taken to have PATCH, as RFC 7644 wants of
 * a service with groups.
 */
static int
discover(struct sx *s, struct sync_err *err)
{
	struct sync_scim_resp r = { 0 };
	json_t *patch;

	if (call(s, 0, "GET", "/ServiceProviderConfig", NULL, NULL,
	    SYNC_HTTP_IDEMPOTENT, &r, err) == -1)
		return -1;
	patch = get_ci(get_ci(r.json, "patch", NULL), "supported", NULL);
	if (r.status == 200 && json_is_false(patch))
		s->put = 1;
	sync_scim_resp_release(&r);
	return 0;
}

int
sync_scim_export(struct xplan *p, struct sync_err *err)
{
	struct sx s;
	struct sync_buf why = { 0 };
	size_t i, nstale = 0;
	int rc = -1, ph;

	memset(&s, 0, sizeof s);
	s.p = p;
	s.sc = p->target->scim;
	s.n = p->n;
	s.anchors = json_object();
	pthread_mutex_init(&s.mu, NULL);
	if ((s.g = calloc(s.n ? s.n : 1, sizeof *s.g)) == NULL ||
	    (s.q = calloc(s.n ? s.n : 1, sizeof *s.q)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < s.n; i++) {
		struct schange *g = &s.g[i];
		struct xchange *x = &p->ch[i];
		int is_group = strcmp(x->type, "group") == 0;

		g->x = x;
		g->group = is_group;
		g->coll = s.sc->endpoint[is_group ? SYNC_GROUP : SYNC_USER];
		if (g->coll == NULL)
			g->coll = is_group ? "/Groups" : "/Users";
		g->schema = is_group ? SYNC_SCIM_GROUP_SCHEMA :
		    SYNC_SCIM_USER_SCHEMA;
		g->last_phase = !is_group ? 1 : strcmp(x->op, "delete") != 0 &&
		    json_object_get(json_object_get(x->c, "attrs"),
		    "members") ? 3 : 2;
		g->tid = xplan_start_id(p, x, s.anchors);
		if (x->done)
			continue;
		if (!xplan_is_write(x)) {
			/* conflict, error: reported, never applied. */
			g->skip = 1;
			p->st->notapplied++;
			continue;
		}
		if (strcmp(x->type, "contact") == 0)
			fail_msg(g, "contacts cannot be written to a SCIM "
			    "service (RFC 7643 has users and groups only)");
		else if (x->anchorattr == NULL)
			fail_msg(g, "the plan's flow is not in the "
			    "configuration");
		else if (strcmp(x->op, "add") != 0 && g->tid == NULL)
			fail_msg(g, "the change has no target id");
	}
	if (p->o->dry_run) {
		rc = dry_run(&s, p->o->dry_out, err);
		goto out;
	}
	if (sx_open(&s, err) == -1)
		goto out;

	if (discover(&s, err) == -1)
		goto out;
	/* 0: what is there now, and whether the plan still fits it. */
	queue(&s, 0);
	if (run_phase(&s, err) == -1)
		goto out;
	for (i = 0; i < s.n; i++) {
		if (!applicable(&s.g[i]))
			continue;
		check_stale(&s.g[i]);
		if (s.g[i].stale)
			xplan_stale(s.g[i].x, s.g[i].stalewhy, &nstale, &why);
	}
	if (nstale) {
		xplan_stale_refuse(p, nstale, &why, err);
		goto out;
	}
	for (i = 0; i < s.n; i++)
		if ((s.g[i].skip == 2 || s.g[i].failed) &&
		    record(&s, &s.g[i], err) == -1)
			goto out;

	/* 1, 2: objects; 3: memberships.  After a stop, a re-run resumes. */
	for (ph = 1, rc = 0; ph <= 3 && rc == 0; ph++) {
		queue(&s, ph);
		rc = run_phase(&s, err);
	}
out:
	for (i = 0; s.g && i < s.n; i++) {
		free(s.g[i].tid);
		free(s.g[i].stalewhy);
		free(s.g[i].etag);
		json_decref(s.g[i].cur);
		json_decref(s.g[i].error);
		json_decref(s.g[i].members);
	}
	free(s.g);
	free(s.q);
	json_decref(s.anchors);
	sync_buf_release(&why);
	p->st->batches = s.requests;
	p->st->writes = s.writes;
	if (s.scim)
		p->st->retries = sync_scim_retries(s.scim, &p->st->throttled);
	sync_scim_close(s.scim);
	pthread_mutex_destroy(&s.mu);
	return rc;
}
