/*
 * graph.c: the Microsoft Graph connector (Entra ID): the client (token,
 * connections, errors) and the full import of users and groups.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "conn.h"
#include "graph.h"
#include "http.h"

struct sync_graph {
	struct sync_connector *c;
	struct sync_graph_conf *gc;
	struct sync_retry retry;
	struct sync_graph_auth *auth;
	struct sync_http **conns;
	char *base;             /* graph_url without a trailing slash */
	long *gens;             /* per connection: generation of its token */
	int nconn;
};

/* ---------------------------------------------------------- the client */

struct sync_graph *
sync_graph_open(struct sync_connector *c, int nconn, struct sync_err *err)
{
	struct sync_graph_conf *gc = c->graph;
	struct sync_http_opts o = { 0 };
	struct sync_graph *g;
	int i;

	if (nconn < 1)
		nconn = 1;
	if ((g = calloc(1, sizeof *g)) == NULL ||
	    (g->conns = calloc((size_t)nconn, sizeof *g->conns)) == NULL ||
	    (g->gens = calloc((size_t)nconn, sizeof *g->gens)) == NULL) {
		sync_errno(err, "%s: cannot start", c->name);
		if (g)
			free(g->conns);
		free(g);
		return NULL;
	}
	g->c = c;
	g->gc = gc;
	g->nconn = nconn;
	sync_retry_init(&g->retry, (double)gc->retry_budget);
	g->retry.notify = c->notify;
	g->retry.notify_ctx = c->notify_ctx;
	if ((g->base = sync_strdup(gc->graph_url)) == NULL) {
		sync_errf(err, "%s: out of memory", c->name);
		goto fail;
	}
	while (*g->base && g->base[strlen(g->base) - 1] == '/')
		g->base[strlen(g->base) - 1] = '\0';
	o.who = c->name;
	o.ca_file = gc->ca_file;
	o.tls_verify = gc->tls_verify;
	o.timeout = gc->timeout;
	o.retry = &g->retry;
	for (i = 0; i < nconn; i++)
		if ((g->conns[i] = sync_http_new(&o, err)) == NULL)
			goto fail;
	if ((g->auth = sync_graph_auth_new(c, err)) == NULL)
		goto fail;
	return g;
fail:
	sync_graph_close(g);
	return NULL;
}

void
sync_graph_close(struct sync_graph *g)
{
	int i;

	if (g == NULL)
		return;
	for (i = 0; i < g->nconn; i++)
		sync_http_free(g->conns[i]);
	sync_graph_auth_free(g->auth);
	sync_retry_release(&g->retry);
	free(g->conns);
	free(g->base);
	free(g->gens);
	free(g);
}

unsigned long
sync_graph_retries(struct sync_graph *g, double *left,
    unsigned long *throttled)
{
	unsigned long n;

	pthread_mutex_lock(&g->retry.mu);
	n = g->retry.retries;
	if (left)
		*left = g->retry.left;
	if (throttled)
		*throttled = g->retry.throttled;
	pthread_mutex_unlock(&g->retry.mu);
	return n;
}

void
sync_graph_set_notify(struct sync_graph *g, void (*fn)(void *, const char *),
    void *ctx)
{
	g->retry.notify = fn;
	g->retry.notify_ctx = ctx;
}

void
sync_graph_notice(struct sync_graph *g, const char *msg)
{
	sync_retry_notice(&g->retry, 0, msg);
}

int
sync_graph_budget_take(struct sync_graph *g, double seconds,
    struct sync_err *err)
{
	if (seconds < 0)
		seconds = 0;
	if (sync_retry_take(&g->retry, seconds) == -1)
		return sync_errf(err, "%s: the retry budget of %ld s is spent",
		    g->c->name, g->gc->retry_budget);
	return 0;
}

void
sync_graph_resp_release(struct sync_graph_resp *r)
{
	json_decref(r->json);
	free(r->location);
	memset(r, 0, sizeof *r);
	r->retry_after = -1;
}

int
sync_graph_errf(struct sync_err *err, struct sync_graph *g,
    const char *method, const char *url, const struct sync_graph_resp *r)
{
	json_t *e = json_object_get(r->json, "error");
	json_t *code = json_object_get(e, "code");
	json_t *msg = json_object_get(e, "message");
	char u[512], spent[128] = "";

	sync_http_url_trim(url, u, sizeof u);
	if (r->budget_spent)
		snprintf(spent, sizeof spent, " (gave up after %d attempts: the "
		    "retry budget of %ld s is spent)", r->attempts,
		    g->gc->retry_budget);
	return sync_errf(err, "%s: %s %s failed: %ld%s%s%s%.800s%s%s%s%s",
	    g->c->name, method, u, r->status,
	    json_is_string(code) ? " " : "",
	    json_is_string(code) ? json_string_value(code) : "",
	    json_is_string(msg) ? ": " : "",
	    json_is_string(msg) ? json_string_value(msg) : "",
	    r->request_id[0] ? " (request-id " : "", r->request_id,
	    r->request_id[0] ? ")" : "", spent);
}

/* Where an http(s) URL leads, as libcurl reads it (the parts are its). */
struct where {
	char *scheme, *host, *port, *path;
};

static void
where_release(struct where *w)
{
	curl_free(w->scheme);
	curl_free(w->host);
	curl_free(w->port);
	curl_free(w->path);
}

/* 0, or -1 when url is no absolute http(s) URL (w released either way). */
static int
where_get(const char *url, struct where *w)
{
	CURLU *u;
	int rc = -1;

	memset(w, 0, sizeof *w);
	if ((u = curl_url()) == NULL)
		return -1;
	/* The port the scheme implies when there is none: https and
	 * https:443 are the same service. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &w->scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &w->host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &w->port, CURLU_DEFAULT_PORT) ==
	    CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &w->path, 0) == CURLUE_OK &&
	    (strcasecmp(w->scheme, "https") == 0 ||
	    strcasecmp(w->scheme, "http") == 0))
		rc = 0;
	curl_url_cleanup(u);
	if (rc == -1)
		where_release(w);
	return rc;
}

int
sync_graph_link_check(struct sync_connector *c, const char *what,
    const char *link, struct sync_err *err)
{
	struct where base, to;
	size_t n;
	int rc = -1;

	if (where_get(c->graph->graph_url, &base) == -1)
		return sync_errf(err, "%s: graph_url '%s' is not an http(s) URL",
		    c->name, c->graph->graph_url);
	if (where_get(link, &to) == -1) {
		/* not printed: it is the service's, and may be anything */
		sync_errf(err, "%s: refusing to follow %s that is not an "
		    "http(s) URL", c->name, what);
		where_release(&base);
		return -1;
	}
	/* graph_url's path as a prefix ending in a slash: /v1.0/ */
	n = strlen(base.path);
	while (n > 0 && base.path[n - 1] == '/')
		n--;
	if (strcasecmp(to.scheme, base.scheme) != 0 ||
	    strcasecmp(to.host, base.host) != 0 ||
	    strcmp(to.port, base.port) != 0)
		sync_errf(err, "%s: refusing to follow %s to '%s://%s:%s': not "
		    "the scheme, host and port of graph_url", c->name, what,
		    to.scheme, to.host, to.port);
	else if (strncasecmp(to.path, base.path, n) != 0 || to.path[n] != '/')
		sync_errf(err, "%s: refusing to follow %s to '%.200s': not "
		    "under '%.*s/', the path of graph_url", c->name, what,
		    to.path, (int)n, base.path);
	else
		rc = 0;
	where_release(&base);
	where_release(&to);
	return rc;
}

int
sync_graph_call(struct sync_graph *g, int conn, const char *method,
    const char *path, const char *body, const char *const *headers,
    int flags, struct sync_graph_resp *r, struct sync_err *err)
{
	struct sync_http_req q = { 0 };
	struct sync_http_resp hr = { 0 };
	struct sync_buf url = { 0 };
	struct sync_http *h;
	char *authz = NULL;
	int renew, rc = -1;

	sync_graph_resp_release(r);
	if (conn < 0 || conn >= g->nconn)
		return sync_errf(err, "%s: no connection %d", g->c->name, conn);
	h = g->conns[conn];
	if (strncmp(path, "https://", 8) == 0 ||
	    strncmp(path, "http://", 7) == 0) {
		/* the token goes with it: to graph_url's service only */
		if (sync_graph_link_check(g->c, "a link", path, err) == -1)
			return -1;
		sync_buf_adds(&url, path);
	} else
		sync_buf_addf(&url, "%s%s%s", g->base, *path == '/' ? "" : "/",
		    path);
	if (url.p == NULL)
		return sync_errf(err, "%s: out of memory", g->c->name);
	q.method = method;
	q.url = url.p;
	q.body = body;
	q.bodylen = body ? strlen(body) : 0;
	q.content_type = "application/json";
	q.headers = headers;
	q.flags = flags & SYNC_HTTP_IDEMPOTENT;
	/*
	 * A 401 means the token went bad before its time (revoked, a clock
	 * off): renew it once and try again.  The request was refused
	 * before it ran, so this is safe for any method.
	 */
	for (renew = 0; renew < 2; renew++) {
		if (sync_graph_auth_header(g->auth, h, renew, &g->gens[conn],
		    &authz, err) == -1)
			goto out;
		q.authorization = authz;
		rc = sync_http_send(h, &q, &hr, err);
		sync_secret_free(authz);
		authz = NULL;
		if (rc == -1)
			goto out;
		rc = -1;
		if (hr.status != 401)
			break;
	}
	r->status = hr.status;
	r->retry_after = hr.retry_after;
	r->attempts = hr.attempts;
	r->budget_spent = hr.budget_spent;
	memcpy(r->request_id, hr.request_id, sizeof r->request_id);
	r->location = hr.location;
	hr.location = NULL;
	if (hr.body.len > 0)
		r->json = json_loadb(hr.body.p, hr.body.len, 0, NULL);
	if (r->status >= 400 && !(flags & SYNC_GRAPH_ANYSTATUS)) {
		sync_graph_errf(err, g, method, url.p, r);
		goto out;
	}
	if (hr.body.len > 0 && r->json == NULL && r->status < 300) {
		char u[512];

		sync_http_url_trim(url.p, u, sizeof u);
		sync_errf(err, "%s: %s %s: the answer is not JSON "
		    "(request-id %s)", g->c->name, method, u,
		    r->request_id[0] ? r->request_id : "none");
		goto out;
	}
	rc = 0;
out:
	sync_http_resp_release(&hr);
	sync_buf_release(&url);
	return rc;
}

/* ------------------------------------------------------------- import */

/*
 * What is always read: the id, the anchor of users, and what the diff
 * joins and compares on.  Without configured attributes, a default list
 * that covers the properties Entra Connect writes.
 */
static const char *const user_always[] = { "id", "onPremisesImmutableId",
    "userPrincipalName", "displayName", "mail", "mailNickname",
    "accountEnabled", NULL };
static const char *const user_default[] = { "givenName", "surname",
    "proxyAddresses", "otherMails", "onPremisesSyncEnabled", "jobTitle",
    "department", "companyName", "employeeId", "usageLocation", "userType",
    "businessPhones", "mobilePhone", "officeLocation", "streetAddress",
    "city", "state", "postalCode", "country", "preferredLanguage",
    "onPremisesExtensionAttributes", NULL };
static const char *const group_always[] = { "id", "displayName", "mail",
    "mailNickname", "mailEnabled", "securityEnabled", "groupTypes", NULL };
static const char *const group_default[] = { "description",
    "proxyAddresses", "onPremisesSyncEnabled", NULL };

/* Adds name to the $select list unless there already. */
static int
select_add(struct sync_strv *sel, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sel->n; i++)
		if (strlen(sel->v[i]) == len &&
		    strncasecmp(sel->v[i], name, len) == 0)
			return 0;
	return sync_strv_addn(sel, name, len);
}

/*
 * The $select list of a type.  A configured "a.b" (a flattened nested
 * property) selects its parent "a"; "members" is not a property to
 * select, the members are read on their own.
 */
int
sync_graph_select(struct sync_connector *c, enum sync_objtype t,
    struct sync_buf *out, struct sync_err *err)
{
	struct sync_graph_conf *gc = c->graph;
	const char *const *always = t == SYNC_USER ? user_always : group_always;
	const char *const *defl = t == SYNC_USER ? user_default : group_default;
	struct sync_strv sel = { 0 };
	const char *a;
	size_t i, n;
	int rc = -1;

	for (i = 0; always[i]; i++)
		if (select_add(&sel, always[i], strlen(always[i])) == -1)
			goto nomem;
	for (i = 0; gc->attrs[t].n == 0 && defl[i]; i++)
		if (select_add(&sel, defl[i], strlen(defl[i])) == -1)
			goto nomem;
	for (i = 0; i < gc->attrs[t].n + gc->extra[t].n; i++) {
		a = i < gc->attrs[t].n ? gc->attrs[t].v[i] :
		    gc->extra[t].v[i - gc->attrs[t].n];
		n = strcspn(a, ".");
		if (n == 0 || strspn(a, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n ||
		    (a[n] == '.' && a[n + 1] == '\0')) {
			sync_errf(err, "%s: %s attribute '%s' is not a Graph "
			    "property name", c->name, sync_objtype_name(t), a);
			goto out;
		}
		if (n == 7 && strncasecmp(a, "members", 7) == 0)
			continue;
		if (select_add(&sel, a, n) == -1)
			goto nomem;
	}
	for (i = 0; i < sel.n; i++)
		if (sync_buf_addf(out, "%s%s", i ? "," : "", sel.v[i]) == -1)
			goto nomem;
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", c->name);
out:
	sync_strv_release(&sel);
	return rc;
}

static int add_prop(struct sync_obj *o, struct sync_buf *name, json_t *v);

/* One value: scalars as text, objects inside arrays as compact JSON. */
static int
add_scalar(struct sync_obj *o, const char *name, json_t *v)
{
	char num[64], *s;
	int rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return sync_obj_addval(o, name, json_string_value(v),
		    json_string_length(v), 0);
	case JSON_TRUE:
		return sync_obj_addval(o, name, "true", 4, 0);
	case JSON_FALSE:
		return sync_obj_addval(o, name, "false", 5, 0);
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return sync_obj_addval(o, name, num, strlen(num), 0);
	case JSON_NULL:
		return 0;
	default:
		/* Reals, and objects or arrays inside arrays. */
		if ((s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS |
		    JSON_ENCODE_ANY)) == NULL)
			return -1;
		rc = sync_obj_addval(o, name, s, strlen(s), 0);
		free(s);
		return rc;
	}
}

/*
 * A property: null is no attribute, an array one value per element, a
 * nested object flattened as "name.key" (onPremisesExtensionAttributes).
 */
static int
add_prop(struct sync_obj *o, struct sync_buf *name, json_t *v)
{
	const char *k;
	json_t *e;
	size_t i, len = name->len;

	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (add_scalar(o, name->p, e) == -1)
				return -1;
		return 0;
	}
	if (!json_is_object(v))
		return add_scalar(o, name->p, v);
	json_object_foreach(v, k, e) {
		if (strncmp(k, "@odata.", 7) == 0)
			continue;
		if (sync_buf_addf(name, ".%s", k) == -1 ||
		    add_prop(o, name, e) == -1)
			return -1;
		name->len = len;
		name->p[len] = '\0';
	}
	return 0;
}

int
sync_graph_obj_props(struct sync_obj *o, json_t *e, struct sync_buf *name,
    const struct sync_strv *only)
{
	const char *k;
	json_t *v;

	json_object_foreach(e, k, v) {
		if (strcmp(k, "id") == 0 || strncmp(k, "@odata.", 7) == 0 ||
		    strcmp(k, "@removed") == 0 || strcmp(k, "members@delta") == 0 ||
		    (only != NULL && !sync_strv_casecontains(only, k)))
			continue;
		sync_buf_reset(name);
		if (sync_buf_adds(name, k) == -1 || add_prop(o, name, v) == -1)
			return -1;
	}
	return 0;
}

struct mjob;

struct import {
	struct sync_connector *c;
	enum sync_objtype type;         /* what object_item reads */
	struct mjob *batch;             /* groups whose members are to read */
	size_t nbatch;
	struct sync_graph *g;
	sync_obj_fn fn;
	void *ctx;
	struct sync_obj o;
	struct sync_buf name;
};

int
sync_graph_pages(struct sync_graph *g, int conn, const char *first,
    int (*item)(void *, json_t *, struct sync_err *), void *arg,
    char **deltalink, struct sync_err *err)
{
	struct sync_graph_resp r = { 0 };
	json_t *val, *e, *next, *dlink, *code;
	char *url, *prev = NULL, u[512];
	size_t i;
	long pages = 0;
	int rc = -1, same = 0;

	if ((url = sync_strdup(first)) == NULL)
		return sync_errf(err, "%s: out of memory", g->c->name);
	while (url) {
		if (sync_graph_call(g, conn, "GET", url, NULL, NULL,
		    SYNC_HTTP_IDEMPOTENT | (deltalink ? SYNC_GRAPH_ANYSTATUS :
		    0), &r, err) == -1)
			goto out;
		pages++;
		code = json_object_get(json_object_get(r.json, "error"),
		    "code");
		if (deltalink && (r.status == 410 || (r.status >= 400 &&
		    r.status < 500 && json_is_string(code) &&
		    strcmp(json_string_value(code), "syncStateNotFound") == 0))) {
			sync_errf(err, "%ld %s", r.status, json_is_string(code) ?
			    json_string_value(code) : "");
			rc = 1;
			goto out;
		}
		if (r.status >= 400) {
			sync_graph_errf(err, g, "GET", url, &r);
			goto out;
		}
		val = json_object_get(r.json, "value");
		if (!json_is_array(val)) {
			sync_http_url_trim(url, u, sizeof u);
			sync_errf(err, "%s: GET %s: the answer has no 'value' "
			    "array (request-id %s)", g->c->name, u,
			    r.request_id[0] ? r.request_id : "none");
			goto out;
		}
		json_array_foreach(val, i, e)
			if (item(arg, e, err) == -1)
				goto out;
		free(prev);
		prev = url;
		url = NULL;
		next = json_object_get(r.json, "@odata.nextLink");
		dlink = json_object_get(r.json, "@odata.deltaLink");
		if (json_is_string(next)) {
			/*
			 * Follow the nextLink verbatim: a page may be empty
			 * and have a nextLink to the same place.  Only a
			 * service gone wrong does that without end, or sends
			 * pages without end.
			 */
			same = strcmp(json_string_value(next), prev) == 0 ?
			    same + 1 : 0;
			if (same >= SYNC_GRAPH_SAME_MAX) {
				sync_http_url_trim(prev, u, sizeof u);
				sync_errf(err, "%s: GET %s: a nextLink to the page "
				    "itself %d times in a row", g->c->name, u,
				    same);
				goto out;
			}
			if (pages >= g->gc->max_pages) {
				/* the listing, as its first page was asked */
				struct sync_buf b = { 0 };

				sync_buf_addf(&b, "%s%s", *first == '/' ?
				    g->base : "", first);
				sync_http_url_trim(b.p ? b.p : first, u, sizeof u);
				sync_buf_release(&b);
				sync_errf(err, "%s: GET %s: more than %ld pages "
				    "(max_pages)", g->c->name, u, pages);
				goto out;
			}
			if (sync_graph_link_check(g->c, "a nextLink",
			    json_string_value(next), err) == -1)
				goto out;
			if ((url = sync_strdup(json_string_value(next))) == NULL) {
				sync_errf(err, "%s: out of memory", g->c->name);
				goto out;
			}
		} else if (deltalink && !json_is_string(dlink)) {
			sync_errf(err, "%s: a delta page with neither a nextLink "
			    "nor a deltaLink (request-id %s)", g->c->name,
			    r.request_id[0] ? r.request_id : "none");
			goto out;
		} else if (deltalink) {
			if (sync_graph_link_check(g->c, "a deltaLink",
			    json_string_value(dlink), err) == -1)
				goto out;
			if ((*deltalink = sync_strdup(json_string_value(dlink))) ==
			    NULL) {
				sync_errf(err, "%s: out of memory", g->c->name);
				goto out;
			}
		}
	}
	rc = 0;
out:
	free(url);
	free(prev);
	sync_graph_resp_release(&r);
	return rc;
}

/*
 * Groups are read GROUP_BATCH at a time: their members are read over all
 * the client's connections at once (a request per group and page of
 * members, each a round trip), then the groups are handed on in the order
 * the service listed them.
 */
#define GROUP_BATCH 256

struct mjob {
	json_t *item;                   /* the group as listed */
	struct sync_strv members;
	struct sync_err err;
	int failed;
};

struct mwork {
	struct import *im;
	struct mjob *jobs;
	size_t n, next;                 /* next: the next job to take */
	int stop;                       /* a job failed: take no more */
	pthread_mutex_t mu;
};

struct mthread {
	struct mwork *w;
	int conn;
};

static int
member_item(void *arg, json_t *e, struct sync_err *err)
{
	struct mjob *j = arg;
	json_t *id = json_object_get(e, "id");

	if (json_is_string(id) && sync_strv_addn(&j->members,
	    json_string_value(id), json_string_length(id)) == -1)
		return sync_errf(err, "out of memory");
	return 0;
}

/* Reads the members of the groups of w, one group at a time, over conn. */
static void *
member_worker(void *arg)
{
	struct mthread *mt = arg;
	struct mwork *w = mt->w;
	struct sync_graph *g = w->im->g;
	struct sync_buf url = { 0 };
	struct mjob *j;
	char *eid;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		j = w->stop || w->next == w->n ? NULL : &w->jobs[w->next++];
		pthread_mutex_unlock(&w->mu);
		if (j == NULL)
			break;
		sync_buf_reset(&url);
		eid = curl_easy_escape(NULL, json_string_value(json_object_get(
		    j->item, "id")), 0);
		if (eid == NULL || sync_buf_addf(&url,
		    "/groups/%s/members?$select=id&$top=%ld", eid,
		    g->gc->page_size) == -1) {
			sync_errf(&j->err, "%s: out of memory", w->im->c->name);
			j->failed = 1;
		} else if (sync_graph_pages(g, mt->conn, url.p, member_item, j,
		    NULL, &j->err) == -1)
			j->failed = 1;
		curl_free(eid);
		if (j->failed) {
			pthread_mutex_lock(&w->mu);
			w->stop = 1;
			pthread_mutex_unlock(&w->mu);
		}
	}
	sync_buf_release(&url);
	return NULL;
}

/* The members of the batch's groups, then the groups handed on. */
static int
flush_groups(struct import *im, struct sync_err *err)
{
	struct mwork w = { 0 };
	struct mthread mt[64];
	pthread_t tid[64];
	int started[64] = { 0 };
	struct sync_obj *o = &im->o;
	size_t i, k;
	int nt, t, rc = -1;

	if (im->nbatch == 0)
		return 0;
	w.im = im;
	w.jobs = im->batch;
	w.n = im->nbatch;
	pthread_mutex_init(&w.mu, NULL);
	nt = im->g->nconn < (int)w.n ? im->g->nconn : (int)w.n;
	for (t = 0; t < nt; t++) {
		mt[t].w = &w;
		mt[t].conn = t;
		started[t] = t > 0 && pthread_create(&tid[t], NULL,
		    member_worker, &mt[t]) == 0;
	}
	member_worker(&mt[0]);
	for (t = 1; t < nt; t++)
		if (started[t])
			pthread_join(tid[t], NULL);
	pthread_mutex_destroy(&w.mu);
	for (i = 0; i < w.n; i++) {
		struct mjob *j = &w.jobs[i];

		/* jobs are taken in order: before a job that was never
		 * taken (after a failure) comes the one that failed */
		if (j->failed) {
			*err = j->err;
			goto out;
		}
		sync_obj_release(o);
		o->type = SYNC_GROUP;
		if ((o->anchor = sync_strdup(json_string_value(json_object_get(
		    j->item, "id")))) == NULL || (o->id =
		    sync_strdup(o->anchor)) == NULL ||
		    sync_graph_obj_props(o, j->item, &im->name, NULL) == -1) {
			sync_errf(err, "%s: out of memory", im->c->name);
			goto out;
		}
		for (k = 0; k < j->members.n; k++)
			if (sync_obj_addval(o, "members", j->members.v[k],
			    strlen(j->members.v[k]), 0) == -1) {
				sync_errf(err, "%s: out of memory", im->c->name);
				goto out;
			}
		if (im->fn(im->ctx, o, err) == -1)
			goto out;
	}
	rc = 0;
out:
	for (i = 0; i < im->nbatch; i++) {
		json_decref(im->batch[i].item);
		sync_strv_release(&im->batch[i].members);
	}
	im->nbatch = 0;
	return rc;
}

static int
object_item(void *arg, json_t *e, struct sync_err *err)
{
	struct import *im = arg;
	enum sync_objtype t = im->type;
	struct sync_obj *o = &im->o;
	json_t *id = json_object_get(e, "id");

	if (!json_is_string(id) || json_string_length(id) == 0)
		return sync_errf(err, "%s: a %s without an id in the answer",
		    im->c->name, sync_objtype_name(t));
	if (t == SYNC_GROUP) {
		struct mjob *j = &im->batch[im->nbatch++];

		memset(j, 0, sizeof *j);
		j->item = json_incref(e);
		return im->nbatch == GROUP_BATCH ? flush_groups(im, err) : 0;
	}
	sync_obj_release(o);
	o->type = t;
	if ((o->anchor = sync_strdup(json_string_value(id))) == NULL ||
	    (o->id = sync_strdup(json_string_value(id))) == NULL)
		return sync_errf(err, "%s: out of memory", im->c->name);
	if (sync_graph_obj_props(o, e, &im->name, NULL) == -1)
		return sync_errf(err, "%s: out of memory", im->c->name);
	return im->fn(im->ctx, o, err);
}

/*
 * The deltaLink that tracks changes of type t from now on, with the same
 * $select as the import (and the members of groups), appended to the
 * cookie as a line.  Asked before the objects are read: what changes
 * while they are read comes again in the next delta round, and applying
 * it again changes nothing.
 */
static int
delta_latest(struct import *im, enum sync_objtype t, const char *sel,
    struct sync_buf *cookie, struct sync_err *err)
{
	struct sync_graph_resp r = { 0 };
	struct sync_buf url = { 0 };
	json_t *link;
	int rc = -1;

	if (sync_buf_addf(&url, "/%s/delta?$select=%s%s&$deltatoken=latest",
	    t == SYNC_USER ? "users" : "groups", sel,
	    t == SYNC_GROUP ? ",members" : "") == -1) {
		sync_errf(err, "%s: out of memory", im->c->name);
		goto out;
	}
	if (sync_graph_call(im->g, 0, "GET", url.p, NULL, NULL,
	    SYNC_HTTP_IDEMPOTENT, &r, err) == -1)
		goto out;
	link = json_object_get(r.json, "@odata.deltaLink");
	if (!json_is_string(link)) {
		sync_errf(err, "%s: GET /%s/delta: the answer has no deltaLink "
		    "(request-id %s)", im->c->name, t == SYNC_USER ? "users" :
		    "groups", r.request_id[0] ? r.request_id : "none");
		goto out;
	}
	/* followed by the next delta import: checked now, not written */
	if (sync_graph_link_check(im->c, "a deltaLink", json_string_value(link),
	    err) == -1)
		goto out;
	if (sync_buf_addf(cookie, "\n%s", json_string_value(link)) == -1) {
		sync_errf(err, "%s: out of memory", im->c->name);
		goto out;
	}
	rc = 0;
out:
	sync_graph_resp_release(&r);
	sync_buf_release(&url);
	return rc;
}

int
sync_graph_delta_digest(struct sync_connector *c, struct sync_buf *out,
    struct sync_err *err)
{
	static const enum sync_objtype types[] = { SYNC_USER, SYNC_GROUP };
	struct sync_buf sel = { 0 };
	unsigned char md[32];
	size_t i;
	int k;

	/* the service too: a deltaLink of another is no use */
	if (sync_buf_addf(&sel, "%s\n", c->graph->graph_url) == -1)
		goto nomem;
	for (i = 0; i < sizeof types / sizeof *types; i++) {
		if (!c->graph->enabled[types[i]])
			continue;
		if (sync_buf_addf(&sel, "%s:", sync_objtype_name(types[i])) ==
		    -1)
			goto nomem;
		if (sync_graph_select(c, types[i], &sel, err) == -1) {
			sync_buf_release(&sel);
			return -1;
		}
		if (sync_buf_addc(&sel, '\n') == -1)
			goto nomem;
	}
	sync_sha256(sel.p ? sel.p : "", sel.len, md);
	sync_buf_release(&sel);
	if (sync_buf_adds(out, "select ") == -1)
		return sync_errf(err, "%s: out of memory", c->name);
	for (k = 0; k < 32; k++)
		if (sync_buf_addf(out, "%02x", md[k]) == -1)
			return sync_errf(err, "%s: out of memory", c->name);
	return 0;
nomem:
	sync_buf_release(&sel);
	return sync_errf(err, "%s: out of memory", c->name);
}

int
sync_graph_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err)
{
	static const enum sync_objtype types[] = { SYNC_USER, SYNC_GROUP };
	struct sync_graph_conf *gc = c->graph;
	struct import im = { 0 };
	struct sync_buf url = { 0 }, sel = { 0 }, ck = { 0 };
	enum sync_objtype t;
	size_t i;
	int rc = -1;

	*cookie = NULL;

	if (gc->enabled[SYNC_CONTACT])
		return sync_errf(err, "%s: contact objects cannot be read "
		    "from Microsoft Graph yet", c->name);
	im.c = c;
	im.fn = fn;
	im.ctx = ctx;
	if ((im.batch = calloc(GROUP_BATCH, sizeof *im.batch)) == NULL)
		return sync_errf(err, "%s: out of memory", c->name);
	if ((im.g = sync_graph_open(c, (int)gc->connections, err)) == NULL) {
		free(im.batch);
		return -1;
	}
	if (sync_graph_delta_digest(c, &ck, err) == -1)
		goto out;
	for (i = 0; i < sizeof types / sizeof *types; i++) {
		t = types[i];
		if (!gc->enabled[t])
			continue;
		sync_buf_reset(&sel);
		if (sync_graph_select(c, t, &sel, err) == -1 ||
		    delta_latest(&im, t, sel.p, &ck, err) == -1)
			goto out;
		sync_buf_reset(&url);
		if (sync_buf_addf(&url, "/%s?$select=%s&$top=%ld",
		    t == SYNC_USER ? "users" : "groups", sel.p,
		    gc->page_size) == -1) {
			sync_errf(err, "%s: out of memory", c->name);
			goto out;
		}
		im.type = t;
		if (sync_graph_pages(im.g, 0, url.p, object_item, &im, NULL,
		    err) == -1 || flush_groups(&im, err) == -1)
			goto out;
	}
	*cookie = sync_buf_detach(&ck);
	rc = 0;
out:
	for (i = 0; i < im.nbatch; i++) {
		json_decref(im.batch[i].item);
		sync_strv_release(&im.batch[i].members);
	}
	free(im.batch);
	sync_obj_release(&im.o);
	sync_buf_release(&im.name);
	sync_buf_release(&url);
	sync_buf_release(&sel);
	sync_buf_release(&ck);
	sync_graph_close(im.g);
	return rc;
}
