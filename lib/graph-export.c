/*
 * graph-export.c: applying a plan to Entra ID through Microsoft Graph.
 *
 * The run has four phases, each a set of units (the requests of one
 * change, in order) sent in JSON batches of at most 20 requests over
 * several connections at once:
 *
 *   0. reads: each change's object as it is now (adds: looked up by the
 *      anchor, so that a re-run after a crash finds what it created);
 *      then the plan is checked against them and refused as a whole if
 *      the target moved since the plan was made;
 *   1. users (create, update, delete), then 2. groups;
 *   3. memberships, which need the ids that phases 1 and 2 assigned.
 *
 * Graph's $batch cannot carry an id from one response into another
 * request, hence the phases; within a unit the requests are chained with
 * dependsOn so that they are applied in order.  Throttled requests (429,
 * also inside a batch) wait for their Retry-After, and all connections
 * pause with them; a limiter keeps writes under the documented
 * quota (a sliding window, as Graph counts) so that throttling is the
 * exception.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "export.h"
#include "graph.h"
#include "http.h"

#define BATCH 20
#define MEMBER_CHUNK 20
#define MAXATTEMPTS 40
#define BACKOFF_CAP 8.0         /* seconds, the longest wait without Retry-After */
#define REF_RETRIES 6           /* member adds refused for a member not yet seen */

enum kind { R_FINDMANY, R_GET, R_MEMBERS, R_CREATE, R_PATCH, R_DELETE,
    R_MEMBER_ADD, R_MEMBER_DEL };

struct req {
	enum kind kind;
	const char *method;
	char *url;              /* relative to the Graph base, e.g. /users/ID */
	json_t *body;           /* new reference, or NULL */
	struct gchange **many;  /* R_FINDMANY: the adds it looks up (owned) */
	size_t nmany;
};

#define FINDMANY 15             /* anchors in one "in (...)" lookup */

/* What the writer knows of one change. */
struct gchange {
	struct xchange *x;
	const char *coll;       /* "users" or "groups" */
	int skip;               /* nothing to do: done earlier, or not ours */
	int failed;
	int stale;
	char *stalewhy;
	json_t *error;          /* new reference */
	char *tid;              /* the target id, known or assigned */
	json_t *cur;            /* the object as read in phase 0, or NULL */
	int exists;
	json_t *members;        /* current member ids (object as a set) */
	int wrote;              /* a write succeeded */
	int needs_write;
	int last_phase;         /* the phase after which it is complete */
	int recorded;           /* its outcome is in the journal */
};

struct unit {
	struct gchange *g;
	struct req *r;
	size_t n, next;
	double not_before;
	int attempts;
	int inflight;
	int finished;
	int throttled;          /* the last retry was for a 429 */
	int free_retry;         /* the next retry is not a failed attempt */
	int refretries;         /* member adds refused: a member not seen yet */
	size_t weight;          /* changes it stands for, for progress */

	/*
	 * A create whose outcome is unknown (its answer lost, a 5xx) may
	 * have been applied: sending it again could create the object
	 * twice.  A group is looked up by its anchor first (verify), and
	 * sent again only when settle_until passed without finding it; a
	 * user is sent again at once, since the service refuses a second
	 * user with the same userPrincipalName, and that refusal starts the
	 * look-up (conflict holds it, the error if nothing is found).
	 */
	int uncertain;
	int verify;
	double settle_until;
	json_t *conflict;       /* new reference, or NULL */
};

struct gexp {
	struct xplan *p;
	struct sync_graph_conf *gc;
	struct sync_graph *graph;
	struct gchange *g;
	size_t n;
	json_t *anchors;        /* anchor -> target id, for add_anchors */

	/* the queue of the running phase */
	int phase;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct unit *u;
	size_t nu, left;
	int abort;
	int nomem;              /* a unit could not be queued */
	struct sync_err abort_err;
	double pause_until;     /* all connections wait after a 429 */

	/*
	 * The write quota: a sliding window of cap writes per window
	 * seconds, as Graph counts them.  Writes in flight count until
	 * their $batch answered; then they leave the window window
	 * seconds after the answer (an upper bound on when the service
	 * counted them).
	 */
	double cap, window;
	struct wentry { double t; size_t n; } *wq;
	size_t wqhead, wqlen, wqcap;    /* answered writes, oldest first */
	size_t inwin, inflight;         /* writes in wq; writes not answered */
	unsigned long writes, throttled;

	/* progress: changes of the phase done and queued, batches answered */
	size_t wdone, wtotal, batches;
	char notice[512];       /* a long pause after a 429, to tell */
};

/* ------------------------------------------------------------- helpers */

static const char *const gbool[] = { "accountEnabled", "mailEnabled",
    "securityEnabled", "showInAddressList", "isAssignableToRole", NULL };
static const char *const gcoll[] = { "businessPhones", "otherMails",
    "imAddresses", "proxyAddresses", "groupTypes", NULL };

static int
in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (strcmp(*l, s) == 0)
			return 1;
	return 0;
}

/* The plan's values for attribute name, as the JSON Graph takes. */
static json_t *
to_graph(const char *name, json_t *vals)
{
	const char *dot = strrchr(name, '.');
	const char *leaf = dot ? dot + 1 : name;
	json_t *v, *a;
	size_t i;

	if (in_list(gcoll, leaf)) {
		a = json_array();
		for (i = 0; i < json_array_size(vals); i++)
			json_array_append(a, json_array_get(vals, i));
		return a;
	}
	v = json_array_get(vals, 0);
	if (v == NULL)
		return json_null();
	if (in_list(gbool, leaf))
		return json_boolean(strcmp(json_string_value(v), "true") == 0);
	return json_incref(v);
}

/* Sets name (a.b for nested objects) in body to value (stolen). */
static void
body_set(json_t *body, const char *name, json_t *value)
{
	const char *dot = strchr(name, '.');
	char head[256];
	json_t *sub;

	if (dot == NULL || (size_t)(dot - name) >= sizeof head) {
		json_object_set_new(body, name, value);
		return;
	}
	memcpy(head, name, (size_t)(dot - name));
	head[dot - name] = '\0';
	if ((sub = json_object_get(body, head)) == NULL ||
	    !json_is_object(sub)) {
		sub = json_object();
		json_object_set_new(body, head, sub);
	}
	body_set(sub, dot + 1, value);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A Graph property as the sorted list of strings a snapshot would hold. */
static json_t *
from_graph(json_t *obj, const char *name)
{
	const char *dot = strchr(name, '.');
	json_t *v, *out = json_array(), *e;
	const char **s;
	char buf[64];
	size_t i, n = 0;
	char head[256];

	if (dot && (size_t)(dot - name) < sizeof head) {
		memcpy(head, name, (size_t)(dot - name));
		head[dot - name] = '\0';
		json_decref(out);
		return from_graph(json_object_get(obj, head), dot + 1);
	}
	v = json_object_get(obj, name);
	if (v == NULL || json_is_null(v))
		return out;
	if (!json_is_array(v)) {
		e = v;
		v = json_array();
		json_array_append(v, e);
	} else
		json_incref(v);
	s = calloc(json_array_size(v) + 1, sizeof *s);
	json_array_foreach(v, i, e) {
		if (json_is_string(e))
			json_array_append(out, e);
		else if (json_is_true(e))
			json_array_append_new(out, json_string("true"));
		else if (json_is_false(e))
			json_array_append_new(out, json_string("false"));
		else if (json_is_integer(e)) {
			snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
			    json_integer_value(e));
			json_array_append_new(out, json_string(buf));
		}
	}
	json_decref(v);
	/* Sorted, as the snapshot's values are. */
	json_array_foreach(out, i, e)
		if (s)
			s[n++] = json_string_value(e);
	if (s) {
		json_t *sorted = json_array();

		qsort(s, n, sizeof *s, str_cmp);
		for (i = 0; i < n; i++)
			json_array_append_new(sorted, json_string(s[i]));
		free(s);
		json_decref(out);
		out = sorted;
	}
	return out;
}

/* The plan's list, sorted, to compare with from_graph's. */
static json_t *
sorted(json_t *vals)
{
	json_t *fake = json_object(), *out;

	json_object_set(fake, "v", vals ? vals : json_null());
	out = from_graph(fake, "v");
	json_decref(fake);
	return out;
}

static int
same(json_t *a, json_t *b)
{
	json_t *sa = sorted(a), *sb = sorted(b);
	int eq = json_equal(sa, sb);

	json_decref(sa);
	json_decref(sb);
	return eq;
}

/* Percent-encodes s for a URL's query (RFC 3986 unreserved kept). */
static void
pct(struct sync_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || c == ',')
			sync_buf_addc(b, c);
		else {
			sync_buf_addc(b, '%');
			sync_buf_addc(b, hex[c >> 4]);
			sync_buf_addc(b, hex[c & 15]);
		}
	}
}

/* An OData string literal: quoted, with ' doubled. */
static void
odata_str(struct sync_buf *b, const char *s)
{
	sync_buf_addc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			sync_buf_addc(b, '\'');
		sync_buf_addc(b, *s);
	}
	sync_buf_addc(b, '\'');
}

/* The $select list: id, the anchor attribute, the change's attributes. */
static void
select_list(struct gchange *g, struct sync_buf *sel)
{
	struct sync_strv names = { 0 };
	const char *k;
	json_t *v;
	size_t i;

	sync_strv_add(&names, "id");
	if (g->x->anchorattr)
		sync_strv_add(&names, g->x->anchorattr);
	json_object_foreach(json_object_get(g->x->c, "attrs"), k, v) {
		char head[256];
		size_t len = strcspn(k, ".");

		if (strcmp(k, "members") == 0 || len >= sizeof head)
			continue;
		memcpy(head, k, len);
		head[len] = '\0';
		if (!sync_strv_contains(&names, head))
			sync_strv_add(&names, head);
	}
	for (i = 0; i < names.n; i++) {
		if (i)
			sync_buf_addc(sel, ',');
		sync_buf_adds(sel, names.v[i]);
	}
	sync_strv_release(&names);
}

/* A strong random initial password: 24 characters of four classes. */
static char *
random_password(void)
{
	static const char *const cls[4] = { "ABCDEFGHJKLMNPQRSTUVWXYZ",
	    "abcdefghijkmnopqrstuvwxyz", "23456789", "!#%+-.:=?@^_~" };
	unsigned char r[48];
	char *pw = malloc(25);
	int fd, i;

	if (pw == NULL)
		return NULL;
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1 ||
	    read(fd, r, sizeof r) != (ssize_t)sizeof r) {
		if (fd != -1)
			close(fd);
		free(pw);
		return NULL;
	}
	close(fd);
	for (i = 0; i < 24; i++) {
		const char *c = cls[i < 4 ? i : r[24 + i] % 4];

		pw[i] = c[r[i] % strlen(c)];
	}
	pw[24] = '\0';
	explicit_bzero(r, sizeof r);
	return pw;
}

/* ---------------------------------------------------------- the queue */

static void
unit_add(struct gexp *e, struct gchange *g, enum kind kind,
    const char *method, char *url, json_t *body)
{
	struct unit *u = NULL;

	/*
	 * The requests of a change in one phase form one unit; they are
	 * queued one after the other, so only the last unit can be its.
	 */
	if (e->nu > 0 && e->u[e->nu - 1].g == g)
		u = &e->u[e->nu - 1];
	if (u == NULL) {
		struct unit *nu = realloc(e->u, (e->nu + 1) * sizeof *e->u);

		if (nu == NULL)
			goto nomem;
		e->u = nu;
		u = &e->u[e->nu++];
		memset(u, 0, sizeof *u);
		u->g = g;
	}
	{
		struct req *nr = realloc(u->r, (u->n + 1) * sizeof *u->r);

		if (nr == NULL)
			goto nomem;
		u->r = nr;
	}
	if (url == NULL && kind != R_FINDMANY)
		goto nomem;
	u->r[u->n].kind = kind;
	u->r[u->n].method = method;
	u->r[u->n].url = url;
	u->r[u->n].body = body;
	u->r[u->n].many = NULL;
	u->r[u->n].nmany = 0;
	u->n++;
	return;
nomem:
	/* The phase does not start: its caller sees e->nomem. */
	e->nomem = 1;
	free(url);
	json_decref(body);
}

static void
units_free(struct gexp *e)
{
	size_t i, j;

	for (i = 0; i < e->nu; i++) {
		for (j = 0; j < e->u[i].n; j++) {
			free(e->u[i].r[j].url);
			json_decref(e->u[i].r[j].body);
			free(e->u[i].r[j].many);
		}
		free(e->u[i].r);
		json_decref(e->u[i].conflict);
	}
	free(e->u);
	e->u = NULL;
	e->nu = 0;
}

static int
is_write(enum kind k)
{
	return k >= R_CREATE;
}

/* Drops from the window the writes older than it; with the lock held. */
static void
quota_expire(struct gexp *e, double t)
{
	while (e->wqlen && e->wq[e->wqhead].t <= t - e->window) {
		e->inwin -= e->wq[e->wqhead].n;
		e->wqhead++;
		e->wqlen--;
	}
	if (e->wqlen == 0)
		e->wqhead = 0;
}

/* Waits until n more writes fit in the quota; without the lock held. */
static void
take_tokens(struct gexp *e, size_t n)
{
	double t, wait;

	if (e->window <= 0)
		return;
	for (;;) {
		pthread_mutex_lock(&e->mu);
		t = sync_mono_now();
		quota_expire(e, t);
		/* A batch larger than the quota goes alone. */
		if ((double)(e->inwin + e->inflight + n) <= e->cap ||
		    (e->inwin == 0 && e->inflight == 0)) {
			e->inflight += n;
			pthread_mutex_unlock(&e->mu);
			return;
		}
		/* Until the oldest answered write leaves, or a batch answers. */
		wait = e->wqlen ? e->wq[e->wqhead].t + e->window - t : 0.05;
		if (wait > 0.05 && e->inflight)
			wait = 0.05;
		pthread_mutex_unlock(&e->mu);
		/* A long pause of the writer's own: say why. */
		if (wait >= SYNC_RETRY_NOTICE) {
			char msg[256];

			snprintf(msg, sizeof msg, "%s: the write quota of %.0f "
			    "writes per %.0f s is used up; writes wait %.0f s",
			    e->p->target->name, e->cap, e->window, wait);
			sync_graph_notice(e->graph, msg);
		}
		sync_sleep_for(wait > 0.001 ? wait : 0.001);
	}
}

/* The n writes of a batch were answered (or lost); with the lock held. */
static void
quota_done(struct gexp *e, size_t n)
{
	if (e->window <= 0 || n == 0)
		return;
	e->inflight -= n;
	if (e->wqhead + e->wqlen == e->wqcap) {
		if (e->wqhead > 0) {
			memmove(e->wq, e->wq + e->wqhead, e->wqlen * sizeof *e->wq);
			e->wqhead = 0;
		} else {
			size_t nc = e->wqcap ? 2 * e->wqcap : 256;
			struct wentry *nq = realloc(e->wq, nc * sizeof *nq);

			if (nq == NULL) {
				/* Forget the oldest: a 429 may follow. */
				e->inwin -= e->wq[0].n;
				memmove(e->wq, e->wq + 1, --e->wqlen * sizeof *e->wq);
			} else {
				e->wq = nq;
				e->wqcap = nc;
			}
		}
	}
	e->wq[e->wqhead + e->wqlen].t = sync_mono_now();
	e->wq[e->wqhead + e->wqlen].n = n;
	e->wqlen++;
	e->inwin += n;
}

static json_t *
graph_error(json_t *body, long status, const char *request_id)
{
	json_t *err = json_object_get(body, "error");
	json_t *inner = json_object_get(err, "innerError");
	const char *rid = json_string_value(json_object_get(inner, "request-id"));

	return json_pack("{s:I, s:s, s:s, s:s}", "status", (json_int_t)status,
	    "code", json_string_value(json_object_get(err, "code")) ?
	    json_string_value(json_object_get(err, "code")) : "",
	    "message", json_string_value(json_object_get(err, "message")) ?
	    json_string_value(json_object_get(err, "message")) : "",
	    "request_id", rid ? rid : request_id ? request_id : "");
}

static int record(struct gexp *e, struct gchange *g, struct sync_err *err);

/* Adds the id of member v to the set arg. */
static int
member_id(void *arg, json_t *v, struct sync_err *err)
{
	const char *id = json_string_value(json_object_get(v, "id"));

	if (id != NULL && json_object_set_new(arg, id, json_true()) == -1)
		return sync_errf(err, "out of memory");
	return 0;
}

/*
 * Reads every member id of a group from its first page (borrowed), then
 * the pages its nextLink leads to (outside any batch: a nextLink is an
 * absolute URL, which sync_graph_call checks), as a listing is read,
 * with the same bounds.
 */
static int
read_members(struct gexp *e, int conn, struct gchange *g, json_t *page,
    struct sync_err *err)
{
	json_t *v;
	const char *next;
	size_t i;

	if (g->members == NULL && (g->members = json_object()) == NULL)
		return sync_errf(err, "out of memory");
	json_array_foreach(json_object_get(page, "value"), i, v)
		if (member_id(g->members, v, err) == -1)
			return -1;
	next = json_string_value(json_object_get(page, "@odata.nextLink"));
	if (next == NULL)
		return 0;
	return sync_graph_pages(e->graph, conn, next, member_id, g->members,
	    NULL, err);
}

/* Reads the current members of g (an existing group) directly. */
static int
members_of(struct gexp *e, int conn, struct gchange *g, struct sync_err *err)
{
	struct sync_graph_resp r = { 0 };
	struct sync_buf b = { 0 };
	int rc;

	sync_buf_adds(&b, "/groups/");
	pct(&b, g->tid);
	sync_buf_adds(&b, "/members?$select=id&$top=999");
	rc = sync_graph_call(e->graph, conn, "GET", b.p, NULL, NULL,
	    SYNC_HTTP_IDEMPOTENT, &r, err);
	if (rc == 0)
		rc = read_members(e, conn, g, r.json, err);
	sync_graph_resp_release(&r);
	sync_buf_release(&b);
	return rc;
}

/*
 * The answer to a lookup of several anchors at once: each object found is
 * matched to its change by the anchor attribute's value.
 */
static int
found_many(struct gexp *e, int conn, struct req *q, json_t *body,
    struct sync_err *err)
{
	json_t *v, *o, *a;
	size_t i, k;

	v = json_object_get(body, "value");
	json_array_foreach(v, i, o) {
		struct gchange *g = NULL;

		a = from_graph(o, q->many[0]->x->anchorattr);
		for (k = 0; k < q->nmany && json_array_size(a) == 1; k++)
			if (strcmp(q->many[k]->x->anchor,
			    json_string_value(json_array_get(a, 0))) == 0)
				g = q->many[k];
		json_decref(a);
		if (g == NULL || g->failed)
			continue;
		if (g->exists) {
			g->failed = 1;
			g->error = json_pack("{s:s}", "message", "several target "
			    "objects carry this anchor");
			continue;
		}
		g->exists = 1;
		g->cur = json_incref(o);
		free(g->tid);
		g->tid = sync_strdup(json_string_value(json_object_get(o, "id")));
		/* Found, not created: members refer to it all the same. */
		pthread_mutex_lock(&e->mu);
		if (g->tid)
			json_object_set_new(e->anchors, g->x->anchor,
			    json_string(g->tid));
		pthread_mutex_unlock(&e->mu);
		/* A group a crashed run created may have members already. */
		if (strcmp(g->coll, "groups") == 0 && g->tid &&
		    json_object_get(json_object_get(g->x->c, "attrs"),
		    "members") && members_of(e, conn, g, err) == -1) {
			g->failed = 1;
			g->error = json_pack("{s:s}", "message", err->msg);
		}
	}
	if (json_object_get(body, "@odata.nextLink"))
		return sync_errf(err, "a lookup of %zu anchors came back in "
		    "pages", q->nmany);
	return 0;
}

/* The wait before a retry without Retry-After: exponential, jittered. */
static double
backoff(const struct unit *u)
{
	return 0.5 * pow(2, u->attempts < 4 ? u->attempts : 4) *
	    (0.75 + 0.5 * (double)(rand() % 1000) / 1000.0);
}

/* The error message of a Graph error body, or "". */
static const char *
error_message(json_t *body)
{
	const char *m = json_string_value(json_object_get(json_object_get(body,
	    "error"), "message"));

	return m ? m : "";
}

/* A create refused because another object holds a unique value. */
static int
is_conflict(long status, json_t *body)
{
	json_t *d;
	size_t i;

	if (status != 400 && status != 409)
		return 0;
	json_array_foreach(json_object_get(json_object_get(body, "error"),
	    "details"), i, d)
		if (json_is_string(json_object_get(d, "code")) &&
		    strcmp(json_string_value(json_object_get(d, "code")),
		    "ObjectConflict") == 0)
			return 1;
	return strstr(error_message(body), "already exists") != NULL;
}

/*
 * The unit's next request may have been applied though no answer said
 * so: a create is not sent again blindly (see struct unit).
 */
static void
mark_uncertain(struct gexp *e, struct unit *u)
{
	if (u->next >= u->n || u->r[u->next].kind != R_CREATE)
		return;
	u->uncertain = 1;
	if (strcmp(u->g->coll, "groups") == 0 && !u->verify) {
		u->verify = 1;
		u->settle_until = xsettle_start(e->gc->create_settle);
	}
}

/* The look-up of g's object by its anchor: a new string. */
static char *
lookup_url(struct gchange *g)
{
	struct sync_buf b = { 0 }, f = { 0 };

	sync_buf_adds(&f, g->x->anchorattr);
	sync_buf_adds(&f, " eq ");
	odata_str(&f, g->x->anchor);
	sync_buf_addf(&b, "/%s?$filter=", g->coll);
	if (f.p)
		pct(&b, f.p);
	sync_buf_adds(&b, "&$select=id,");
	pct(&b, g->x->anchorattr);
	sync_buf_release(&f);
	return sync_buf_detach(&b);
}

/*
 * A response to retry: the wait is its Retry-After, else the backoff.
 * Returns 1, or -1 (the change failed with it) past MAXATTEMPTS.
 */
static int
retry_after(struct gexp *e, struct unit *u, long status, json_t *body,
    json_t *headers, double *wait)
{
	const char *ra;

	ra = json_string_value(json_object_get(headers, "Retry-After"));
	if (ra == NULL)
		ra = json_string_value(json_object_get(headers, "retry-after"));
	*wait = ra ? sync_http_retry_after(ra) : -1;
	if (*wait < 0)
		*wait = backoff(u);
	if (status == 429) {
		/* Outside the lock: other threads count too. */
		__atomic_add_fetch(&e->throttled, 1, __ATOMIC_RELAXED);
		u->throttled = 1;
	}
	if (u->attempts + 1 >= MAXATTEMPTS) {
		u->g->error = graph_error(body, status, NULL);
		return -1;
	}
	return 1;
}

/*
 * The answer to a unit's look-up before a create is sent again.  Found:
 * the create was applied after all.  Not found: look again until the
 * settle time passed, then create (or, after a conflict, fail with it).
 */
static int
verified(struct gexp *e, struct unit *u, long status, json_t *body,
    json_t *headers, double *wait)
{
	struct gchange *g = u->g;
	json_t *o, *a;
	const char *id = NULL;
	size_t i, nfound = 0;

	if (status == 429 || status >= 500)
		return retry_after(e, u, status, body, headers, wait);
	if (status != 200) {
		g->error = graph_error(body, status, NULL);
		return -1;
	}
	json_array_foreach(json_object_get(body, "value"), i, o) {
		a = from_graph(o, g->x->anchorattr);
		if (json_array_size(a) == 1 && strcmp(json_string_value(
		    json_array_get(a, 0)), g->x->anchor) == 0) {
			nfound++;
			id = json_string_value(json_object_get(o, "id"));
		}
		json_decref(a);
	}
	if (nfound > 1) {
		g->error = json_pack("{s:s}", "message", "several target "
		    "objects carry this anchor");
		return -1;
	}
	if (nfound == 1 && id) {
		free(g->tid);
		g->tid = sync_strdup(id);
		g->wrote = 1;
		u->verify = 0;
		pthread_mutex_lock(&e->mu);
		if (g->tid)
			json_object_set_new(e->anchors, g->x->anchor,
			    json_string(g->tid));
		pthread_mutex_unlock(&e->mu);
		return 0;
	}
	u->free_retry = 1;
	if (xsettle_wait(u->settle_until, wait))
		return 1;
	if (u->conflict) {
		/* Not ours after all: the conflict stands. */
		g->error = json_incref(u->conflict);
		return -1;
	}
	u->verify = 0;          /* not applied: create it */
	*wait = 0;
	return 1;
}

/*
 * A member add refused because a member is there already: after a lost
 * answer, or someone else added it.  The group's members are read again
 * and the request keeps only those still missing.  Returns 0 when none
 * is, 1 to send the rest, -1 on a failed read.
 */
static int
members_again(struct gexp *e, int conn, struct unit *u, struct req *q,
    struct sync_err *err)
{
	json_t *refs = json_object_get(q->body, "members@odata.bind"), *keep, *v;
	size_t i;

	if (u->g->members)
		json_object_clear(u->g->members);
	if (members_of(e, conn, u->g, err) == -1)
		return -1;
	keep = json_array();
	json_array_foreach(refs, i, v) {
		const char *ref = json_string_value(v), *slash;

		slash = ref ? strrchr(ref, '/') : NULL;
		if (slash && json_object_get(u->g->members, slash + 1))
			continue;
		json_array_append(keep, v);
	}
	if (json_array_size(keep) == 0) {
		json_decref(keep);
		return 0;
	}
	json_object_set_new(q->body, "members@odata.bind", keep);
	return 1;
}

/*
 * One response of a batch, for request q of unit u.  Returns 0 when the
 * unit may go on, 1 to retry it from q after *wait seconds, -1 when the
 * change failed (g->error set).
 */
static int
handle(struct gexp *e, int conn, struct unit *u, struct req *q, long status,
    json_t *body, json_t *headers, double *wait, struct sync_err *err)
{
	struct gchange *g = u->g;

	/* A 503 is a refusal (throttled, unavailable); other 5xx may not be. */
	if (q->kind == R_CREATE && status >= 500 && status != 503)
		mark_uncertain(e, u);
	if (q->kind == R_CREATE && u->uncertain && u->conflict == NULL &&
	    is_conflict(status, body)) {
		/* Likely the lost create itself: look for it. */
		u->conflict = graph_error(body, status, NULL);
		u->verify = 1;
		u->settle_until = xsettle_start(e->gc->create_settle);
		u->free_retry = 1;
		*wait = 0;
		return 1;
	}
	if (q->kind == R_MEMBER_ADD && status == 400 &&
	    strstr(error_message(body), "already exist")) {
		switch (members_again(e, conn, u, q, err)) {
		case 0:
			if (u->uncertain)
				g->wrote = 1;
			return 0;
		case 1:
			u->free_retry = 1;
			*wait = 0;
			return 1;
		default:
			g->error = json_pack("{s:s}", "message", err->msg);
			return -1;
		}
	}
	if (q->kind == R_MEMBER_ADD && status == 400 &&
	    u->refretries < REF_RETRIES &&
	    (strstr(error_message(body), "Invalid object identifier") ||
	    strstr(error_message(body), "do not exist"))) {
		/* A member created moments ago, not yet seen everywhere. */
		u->refretries++;
		*wait = backoff(u);
		return 1;
	}
	if (status == 429 || status == 503 || status == 502 || status == 504 ||
	    status == 500 ||
	    (status == 404 && (q->kind == R_MEMBER_ADD ||
	    (q->kind == R_PATCH && g->x->op[0] == 'a')))) {
		/* Throttled, transient, or an object not yet visible. */
		return retry_after(e, u, status, body, headers, wait);
	}
	if (status == 404 && (q->kind == R_DELETE || q->kind == R_MEMBER_DEL))
		return 0;       /* already gone */
	if (status == 404 && q->kind == R_GET) {
		g->exists = 0;
		return 0;
	}
	if (status >= 400 && q->kind == R_FINDMANY) {
		/* The lookup failed for every change it stood for. */
		size_t k;

		for (k = 0; k < q->nmany; k++) {
			q->many[k]->failed = 1;
			json_decref(q->many[k]->error);
			q->many[k]->error = graph_error(body, status, NULL);
		}
		return 0;
	}
	if (status >= 400) {
		g->error = graph_error(body, status, NULL);
		return -1;
	}
	switch (q->kind) {
	case R_FINDMANY:
		if (found_many(e, conn, q, body, err) == -1)
			return -1;
		break;
	case R_GET:
		g->exists = 1;
		g->cur = json_incref(body);
		break;
	case R_MEMBERS:
		if (read_members(e, conn, g, body, err) == -1) {
			g->error = json_pack("{s:s}", "message", err->msg);
			return -1;
		}
		break;
	case R_CREATE:
		free(g->tid);
		g->tid = sync_strdup(json_string_value(json_object_get(body, "id")));
		g->wrote = 1;
		pthread_mutex_lock(&e->mu);
		if (g->tid)
			json_object_set_new(e->anchors, g->x->anchor,
			    json_string(g->tid));
		pthread_mutex_unlock(&e->mu);
		break;
	default:
		g->wrote = 1;
		break;
	}
	return 0;
}

/*
 * After a unit's requests in one batch: st 0 (all done), 1 (retry from
 * the first not done after wait), -1 (failed).  With the lock held.
 */
static void
unit_after(struct gexp *e, struct unit *u, size_t done, int st, double wait,
    struct sync_err *err)
{
	u->next += done;
	u->inflight = 0;
	if (st == 1) {
		if (!u->free_retry)
			u->attempts++;
		u->free_retry = 0;
		u->not_before = sync_mono_now() + wait;
		/* One budget for these waits and the HTTP layer's. */
		if (sync_graph_budget_take(e->graph, wait, err) == -1) {
			json_decref(u->g->error);
			u->g->error = json_pack("{s:s}", "message", err->msg);
			st = -1;
		}
		/* A throttled service: every connection waits. */
		if (st == 1 && u->throttled && e->pause_until < u->not_before) {
			if (wait >= SYNC_RETRY_NOTICE)
				snprintf(e->notice, sizeof e->notice, "%s: POST "
				    "%s/$batch: a request throttled (429); "
				    "every connection waits %.0f s (attempt %d)",
				    e->p->target->name, e->gc->graph_url, wait,
				    u->attempts + 1);
			e->pause_until = u->not_before;
		}
		u->throttled = 0;
	}
	if (st == -1) {
		u->g->failed = 1;
		u->next = u->n;
	}
	if (u->next == u->n) {
		u->finished = 1;
		e->left--;
		e->wdone += u->weight;
		/* Complete (or failed): into the journal now. */
		if ((u->g->failed || e->phase >= u->g->last_phase) &&
		    record(e, u->g, err) == -1 && !e->abort) {
			e->abort = 1;
			e->abort_err = *err;
		}
	}
}

/*
 * A batch holding a create got no answer, or a 5xx: the service may
 * have applied any part of it.  Every unit is retried; creates go
 * through the look-up first (mark_uncertain), and the rest is safe to
 * send again (updates set values; a delete or member removal already
 * done answers 404, a member add already done "already exist").
 */
static void
batch_lost(struct gexp *e, struct unit **us, size_t nus,
    const struct sync_err *why)
{
	struct sync_err err;
	size_t i;

	pthread_mutex_lock(&e->mu);
	for (i = 0; i < nus; i++) {
		struct unit *u = us[i];
		int st = 1;

		mark_uncertain(e, u);
		if (u->attempts + 1 >= MAXATTEMPTS) {
			/* The last lost answer is the change's error. */
			json_decref(u->g->error);
			u->g->error = json_pack("{s:s}", "message", why->msg);
			st = -1;
		}
		unit_after(e, u, 0, st, backoff(u), &err);
	}
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

/* Where the run stands, to the caller's progress callback. */
static void
progress(struct gexp *e, const char *notice, int end)
{
	struct sync_export_progress pr;

	if (e->p->o->progress == NULL)
		return;
	memset(&pr, 0, sizeof pr);
	pthread_mutex_lock(&e->mu);
	pr.phase = e->phase;
	pr.done = e->wdone;
	pr.total = e->wtotal;
	pr.batches = e->batches;
	pthread_mutex_unlock(&e->mu);
	pr.what = xplan_phase_what(pr.phase);
	pr.retries = sync_graph_retries(e->graph, NULL, NULL);
	pr.notice = notice;
	pr.end = end;
	xplan_progress(e->p, &pr);
}

/* The HTTP layer's notices of long waits, as progress. */
static void
on_notice(void *ctx, const char *msg)
{
	progress(ctx, msg, 0);
}

/* Sends the requests picked from units us[0..nus) as one $batch. */
static int
send_batch(struct gexp *e, int conn, struct unit **us, size_t *take,
    size_t nus, struct sync_err *err)
{
	struct sync_graph_resp r = { 0 };
	json_t *reqs = json_array(), *batch, *resp, *byid = json_object();
	char id[16], prev[16], note[sizeof e->notice];
	size_t i, j, k = 0, nwrites = 0;
	char *text;
	int rc, idem = 1;

	for (i = 0; i < nus; i++) {
		prev[0] = '\0';
		for (j = 0; j < take[i]; j++) {
			struct req *q = &us[i]->r[us[i]->next + j];
			json_t *o;

			snprintf(id, sizeof id, "%zu", ++k);
			if (us[i]->verify && q->kind == R_CREATE) {
				char *url = lookup_url(us[i]->g);

				o = json_pack("{s:s, s:s, s:s}", "id", id,
				    "method", "GET", "url", url ? url : "/");
				free(url);
				json_array_append_new(reqs, o);
				continue;
			}
			o = json_pack("{s:s, s:s, s:s}", "id", id, "method",
			    q->method, "url", q->url);
			if (q->body) {
				json_object_set(o, "body", q->body);
				json_object_set_new(o, "headers", json_pack(
				    "{s:s}", "Content-Type", "application/json"));
			}
			if (prev[0])
				json_object_set_new(o, "dependsOn",
				    json_pack("[s]", prev));
			memcpy(prev, id, sizeof prev);
			json_array_append_new(reqs, o);
			if (is_write(q->kind))
				nwrites++;
			if (strcmp(q->method, "POST") == 0)
				idem = 0;
		}
	}
	if (nwrites)
		take_tokens(e, nwrites);
	batch = json_pack("{s:o}", "requests", reqs);
	text = json_dumps(batch, JSON_COMPACT);
	json_decref(batch);
	if (text == NULL) {
		pthread_mutex_lock(&e->mu);
		quota_done(e, nwrites);
		pthread_mutex_unlock(&e->mu);
		json_decref(byid);
		return sync_errf(err, "%s: out of memory", e->p->target->name);
	}
	rc = sync_graph_call(e->graph, conn, "POST", "/$batch", text, NULL,
	    idem ? SYNC_HTTP_IDEMPOTENT : 0, &r, err);
	free(text);
	pthread_mutex_lock(&e->mu);
	quota_done(e, nwrites);
	if (rc == 0) {
		e->writes += nwrites;
		e->batches++;
	}
	pthread_mutex_unlock(&e->mu);
	if (rc == -1 && !idem && (r.status == 0 || r.status >= 500)) {
		/* No answer, or not the batch's: the outcome is unknown. */
		batch_lost(e, us, nus, err);
		json_decref(byid);
		sync_graph_resp_release(&r);
		return xplan_sync(e->p, err);
	}
	if (rc == -1) {
		json_decref(byid);
		sync_graph_resp_release(&r);
		return -1;
	}
	json_array_foreach(json_object_get(r.json, "responses"), i, resp)
		if (json_string_value(json_object_get(resp, "id")))
			json_object_set(byid, json_string_value(json_object_get(
			    resp, "id")), resp);
	k = 0;
	for (i = 0; i < nus; i++) {
		struct unit *u = us[i];
		size_t done = 0;
		double wait = 0;
		int st = 0;

		for (j = 0; j < take[i]; j++) {
			struct req *q = &u->r[u->next + j];
			long status;

			snprintf(id, sizeof id, "%zu", ++k);
			resp = json_object_get(byid, id);
			if (st != 0)
				continue;
			if (resp == NULL) {
				/* Unanswered: as good as lost. */
				if (q->kind == R_CREATE && !u->verify)
					mark_uncertain(e, u);
				st = 1;
				wait = 1;
				continue;
			}
			status = (long)json_integer_value(json_object_get(resp,
			    "status"));
			if (u->verify && q->kind == R_CREATE) {
				st = verified(e, u, status, json_object_get(resp,
				    "body"), json_object_get(resp, "headers"), &wait);
				if (st == 0)
					done++;
				continue;
			}
			if (status == 424 && j > 0) {
				/*
				 * The request it depends on was answered in a
				 * way this unit takes as done (a 404 for what is
				 * gone already), which the service counts as a
				 * failure: send the rest again.
				 */
				st = 1;
				wait = 0;
				u->free_retry = 1;
				continue;
			}
			st = handle(e, conn, u, q, status, json_object_get(resp,
			    "body"), json_object_get(resp, "headers"), &wait, err);
			if (st == 0)
				done++;
		}
		pthread_mutex_lock(&e->mu);
		unit_after(e, u, done, st, wait, err);
		pthread_cond_broadcast(&e->cv);
		pthread_mutex_unlock(&e->mu);
	}
	json_decref(byid);
	sync_graph_resp_release(&r);
	/* The journal reaches the disk after every batch. */
	if (xplan_sync(e->p, err) == -1)
		return -1;
	pthread_mutex_lock(&e->mu);
	memcpy(note, e->notice, sizeof note);
	e->notice[0] = '\0';
	pthread_mutex_unlock(&e->mu);
	if (note[0])
		sync_graph_notice(e->graph, note);
	progress(e, NULL, 0);
	return 0;
}

static void
work(void *arg, int conn)
{
	struct gexp *e = arg;
	struct unit *us[BATCH];
	size_t take[BATCH], nus, count, i, rest;
	struct sync_err err;
	double t, next;
	int writes, lease;

	for (;;) {
		pthread_mutex_lock(&e->mu);
		if (e->abort || e->left == 0) {
			pthread_mutex_unlock(&e->mu);
			return;
		}
		t = sync_mono_now();
		nus = count = 0;
		next = 0;
		writes = 0;
		if (e->pause_until <= t) {
			for (i = 0; i < e->nu && count < BATCH; i++) {
				struct unit *u = &e->u[i];

				if (u->finished || u->inflight)
					continue;
				if (u->not_before > t) {
					if (next == 0 || u->not_before < next)
						next = u->not_before;
					continue;
				}
				rest = u->n - u->next;
				if (rest > BATCH - count) {
					if (count > 0)
						continue;
					rest = BATCH;
				}
				u->inflight = 1;
				us[nus] = u;
				take[nus++] = rest;
				count += rest;
				writes |= is_write(u->r[u->next].kind);
			}
		} else
			next = e->pause_until;
		if (nus == 0) {
			struct timespec ts;
			double until = next > 0 ? next : t + 0.05;

			/* Nothing ready: wait for a unit or its time. */
			clock_gettime(CLOCK_REALTIME, &ts);
			until = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 +
			    (until - t);
			ts.tv_sec = (time_t)until;
			ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&e->cv, &e->mu, &ts);
			pthread_mutex_unlock(&e->mu);
			continue;
		}
		pthread_mutex_unlock(&e->mu);
		if (writes) {
			lease = xplan_lease(e->p, &err);
			if (lease != 0) {
				pthread_mutex_lock(&e->mu);
				for (i = 0; i < nus; i++)
					us[i]->inflight = 0;
				if (!e->abort) {
					e->abort = 1;
					if (lease == 1)
						sync_errf(&e->abort_err, "the lease "
						    "was lost: this server is no "
						    "longer the active one; stopped "
						    "before the next batch");
					else
						e->abort_err = err;
				}
				pthread_cond_broadcast(&e->cv);
				pthread_mutex_unlock(&e->mu);
				return;
			}
		}
		if (send_batch(e, conn, us, take, nus, &err) == -1) {
			pthread_mutex_lock(&e->mu);
			for (i = 0; i < nus; i++)
				us[i]->inflight = 0;
			if (!e->abort) {
				e->abort = 1;
				e->abort_err = err;
			}
			pthread_cond_broadcast(&e->cv);
			pthread_mutex_unlock(&e->mu);
			return;
		}
	}
}

/* ----------------------------------------------------------- outcomes */

static int
record(struct gexp *e, struct gchange *g, struct sync_err *err)
{
	return xplan_outcome(e->p, g->x, &g->recorded, g->skip == 1,
	    g->failed, g->skip == 2 || !g->wrote, g->tid, g->error, err);
}

/* After a phase: the changes it completed without a request of its own. */
static int
finish_phase(struct gexp *e, struct sync_err *err)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (e->g[i].last_phase <= e->phase &&
		    record(e, &e->g[i], err) == -1)
			return -1;
	return xplan_sync(e->p, err);
}

/* Runs the queued units to the end (or an abort) on every connection. */
static int
run_phase(struct gexp *e, struct sync_err *err)
{
	size_t k;

	for (k = 0; k < e->nu && !e->nomem; k++)
		if (e->u[k].n == 0 || e->u[k].r[0].url == NULL)
			e->nomem = 1;
	if (e->nomem)
		return sync_errf(err, "%s: out of memory", e->p->target->name);
	e->left = e->nu;
	if (e->left == 0)
		return finish_phase(e, err);
	e->wdone = e->wtotal = 0;
	for (k = 0; k < e->nu; k++) {
		struct req *q = &e->u[k].r[0];

		e->u[k].weight = q->kind == R_FINDMANY ? q->nmany : 1;
		e->wtotal += e->u[k].weight;
	}
	progress(e, NULL, 0);
	xplan_workers((int)e->gc->connections, work, e);
	progress(e, NULL, 1);
	if (e->abort) {
		*err = e->abort_err;
		return -1;
	}
	return finish_phase(e, err);
}

/* ------------------------------------------------------------ phases */

static int
applicable(struct gchange *g)
{
	return !g->skip && !g->failed && !g->x->done && xplan_is_write(g->x);
}

/*
 * Adds are looked up by their anchor, up to FINDMANY at a time with
 * "attr in ('a', 'b', ...)": one request instead of fifteen.  A lookup
 * gathers the adds of one collection and anchor attribute.
 */
static void
queue_find(struct gexp *e, struct gchange *g, struct sync_buf *sel)
{
	struct sync_buf b = { 0 }, f = { 0 };
	struct unit *u = e->nu ? &e->u[e->nu - 1] : NULL;
	struct req *q = u && u->n == 1 ? &u->r[0] : NULL;
	size_t k;

	if (q && q->kind == R_FINDMANY && q->nmany < FINDMANY &&
	    strcmp(q->many[0]->coll, g->coll) == 0 &&
	    strcmp(q->many[0]->x->anchorattr, g->x->anchorattr) == 0)
		q->many[q->nmany++] = g;
	else {
		size_t before = e->nu;

		unit_add(e, g, R_FINDMANY, "GET", NULL, NULL);
		if (e->nomem || e->nu == before)
			return;
		q = &e->u[e->nu - 1].r[0];
		if ((q->many = calloc(FINDMANY, sizeof *q->many)) == NULL) {
			e->nomem = 1;
			return;
		}
		q->many[q->nmany++] = g;
	}
	/* The URL, rebuilt as the list grows; $select covers them all. */
	sync_buf_reset(sel);
	{
		struct sync_strv names = { 0 };
		struct sync_buf one = { 0 };
		char *tok, *save = NULL;

		for (k = 0; k < q->nmany; k++) {
			sync_buf_reset(&one);
			select_list(q->many[k], &one);
			for (tok = strtok_r(one.p, ",", &save); tok;
			    tok = strtok_r(NULL, ",", &save))
				if (!sync_strv_contains(&names, tok))
					sync_strv_add(&names, tok);
		}
		for (k = 0; k < names.n; k++)
			sync_buf_addf(sel, "%s%s", k ? "," : "", names.v[k]);
		sync_strv_release(&names);
		sync_buf_release(&one);
	}
	sync_buf_adds(&f, g->x->anchorattr);
	sync_buf_adds(&f, " in (");
	for (k = 0; k < q->nmany; k++) {
		if (k)
			sync_buf_addc(&f, ',');
		odata_str(&f, q->many[k]->x->anchor);
	}
	sync_buf_addc(&f, ')');
	sync_buf_addf(&b, "/%s?$filter=", g->coll);
	pct(&b, f.p);
	sync_buf_adds(&b, "&$select=");
	pct(&b, sel->p);
	sync_buf_adds(&b, "&$top=999");
	free(q->url);
	q->url = sync_buf_detach(&b);
	sync_buf_release(&f);
}

static void
queue_reads(struct gexp *e)
{
	struct sync_buf b = { 0 }, sel = { 0 };
	struct gchange *g;
	size_t i;

	for (i = 0; i < e->n; i++) {
		g = &e->g[i];
		if (!applicable(g))
			continue;
		sync_buf_reset(&sel);
		select_list(g, &sel);
		sync_buf_reset(&b);
		if (strcmp(g->x->op, "add") == 0) {
			queue_find(e, g, &sel);
		} else {
			sync_buf_addf(&b, "/%s/", g->coll);
			pct(&b, g->x->id);
			sync_buf_adds(&b, "?$select=");
			pct(&b, sel.p);
			unit_add(e, g, R_GET, "GET", sync_strdup(b.p), NULL);
		}
		if (strcmp(g->coll, "groups") == 0 && g->x->id &&
		    json_object_get(json_object_get(g->x->c, "attrs"), "members")) {
			sync_buf_reset(&b);
			sync_buf_adds(&b, "/groups/");
			pct(&b, g->x->id);
			sync_buf_adds(&b, "/members?$select=id&$top=999");
			unit_add(e, g, R_MEMBERS, "GET", sync_strdup(b.p), NULL);
		}
	}
	sync_buf_release(&b);
	sync_buf_release(&sel);
}

/*
 * The plan against what was read: an attribute whose value is neither
 * the plan's old one nor its new one means the target moved since.
 */
static void
check_stale(struct gchange *g)
{
	json_t *attrs = json_object_get(g->x->c, "attrs"), *a, *cur;
	const char *k, *op = g->x->op;
	struct sync_buf why = { 0 };

	if (strcmp(op, "add") == 0)
		return;
	if (!g->exists) {
		if (strcmp(op, "delete") == 0)
			g->skip = 2;    /* already gone: in place */
		else
			sync_buf_addf(&why, "the object no longer exists");
		goto out;
	}
	/* Still ours: the anchor attribute holds this anchor. */
	if (strcmp(op, "delete") == 0 && g->x->anchorattr) {
		json_t *want = json_pack("[s]", g->x->anchor);

		cur = from_graph(g->cur, g->x->anchorattr);
		if (!same(cur, want)) {
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

		if (strcmp(k, "members") == 0 || (old == NULL && nw == NULL))
			continue;
		cur = from_graph(g->cur, k);
		if (nw && same(cur, nw)) {
			json_decref(cur);
			continue;
		}
		if (old && !same(cur, old)) {
			char *c = json_dumps(cur, JSON_COMPACT);
			char *o = json_dumps(old, JSON_COMPACT);

			sync_buf_addf(&why, "%s%s is %s, the plan expected %s",
			    why.len ? "; " : "", k, c, o);
			free(c);
			free(o);
		} else
			g->needs_write = 1;
		json_decref(cur);
	}
out:
	if (why.len) {
		g->stale = 1;
		g->stalewhy = sync_buf_detach(&why);
	}
	sync_buf_release(&why);
}

/* The body of a create or of a PATCH (only what differs when patching). */
static json_t *
write_body(struct gexp *e, struct gchange *g, int create, int *nattrs)
{
	json_t *attrs = json_object_get(g->x->c, "attrs"), *a, *body, *cur;
	const char *k;
	char *pw;

	body = json_object();
	*nattrs = 0;
	json_object_foreach(attrs, k, a) {
		json_t *nw = json_object_get(a, "new");

		if (strcmp(k, "members") == 0 || nw == NULL)
			continue;
		if (!create && g->cur) {
			cur = from_graph(g->cur, k);
			if (same(cur, nw)) {
				json_decref(cur);
				continue;
			}
			json_decref(cur);
		}
		body_set(body, k, to_graph(k, nw));
		(*nattrs)++;
	}
	if (!create)
		return body;
	/* What Graph requires of a new object, where the plan is silent. */
	if (g->x->anchorattr && json_object_get(body, g->x->anchorattr) == NULL)
		body_set(body, g->x->anchorattr, json_string(g->x->anchor));
	if (strcmp(g->coll, "users") == 0) {
		if (json_object_get(body, "accountEnabled") == NULL)
			json_object_set_new(body, "accountEnabled", json_true());
		if ((pw = random_password()) != NULL) {
			json_object_set_new(body, "passwordProfile", json_pack(
			    "{s:s, s:b}", "password", pw,
			    "forceChangePasswordNextSignIn", 1));
			explicit_bzero(pw, strlen(pw));
			free(pw);
		}
	} else {
		if (json_object_get(body, "securityEnabled") == NULL)
			json_object_set_new(body, "securityEnabled", json_true());
		if (json_object_get(body, "mailEnabled") == NULL)
			json_object_set_new(body, "mailEnabled", json_false());
	}
	(void)e;
	return body;
}

static void
queue_writes(struct gexp *e, const char *coll)
{
	struct sync_buf b = { 0 };
	struct gchange *g;
	json_t *body;
	size_t i;
	int n;

	for (i = 0; i < e->n; i++) {
		g = &e->g[i];
		if (!applicable(g) || strcmp(g->coll, coll) != 0)
			continue;
		sync_buf_reset(&b);
		if (strcmp(g->x->op, "delete") == 0) {
			sync_buf_addf(&b, "/%s/", coll);
			pct(&b, g->tid);
			unit_add(e, g, R_DELETE, "DELETE", sync_strdup(b.p), NULL);
			continue;
		}
		if (strcmp(g->x->op, "add") == 0 && !g->exists) {
			sync_buf_addf(&b, "/%s", coll);
			unit_add(e, g, R_CREATE, "POST", sync_strdup(b.p),
			    write_body(e, g, 1, &n));
			continue;
		}
		body = write_body(e, g, 0, &n);
		if (n == 0) {
			json_decref(body);
			continue;
		}
		sync_buf_addf(&b, "/%s/", coll);
		pct(&b, g->tid);
		unit_add(e, g, R_PATCH, "PATCH", sync_strdup(b.p), body);
	}
	sync_buf_release(&b);
}

/* Member ids to add: the plan's ids and the ids of anchors it created. */
static void
queue_members(struct gexp *e)
{
	struct sync_buf b = { 0 }, ref = { 0 };
	struct gchange *g;
	json_t *m, *v, *add, *chunk;
	size_t i, j;

	for (i = 0; i < e->n; i++) {
		g = &e->g[i];
		if (!applicable(g) || strcmp(g->coll, "groups") != 0 ||
		    strcmp(g->x->op, "delete") == 0 || g->tid == NULL)
			continue;
		m = json_object_get(json_object_get(g->x->c, "attrs"), "members");
		if (m == NULL)
			continue;
		add = json_array();
		json_array_foreach(json_object_get(m, "add"), j, v)
			json_array_append(add, v);
		json_array_foreach(json_object_get(m, "new"), j, v)
			json_array_append(add, v);
		json_array_foreach(json_object_get(m, "add_anchors"), j, v) {
			json_t *id = json_object_get(e->anchors,
			    json_string_value(v));

			if (id)
				json_array_append(add, id);
			else if (!g->failed) {
				g->failed = 1;
				g->error = json_pack("{s:s, s:s}", "message",
				    "a member created by this plan has no id "
				    "(its creation failed)", "anchor",
				    json_string_value(v));
			}
		}
		chunk = NULL;
		json_array_foreach(add, j, v) {
			const char *id = json_string_value(v);

			if (id == NULL || (g->members &&
			    json_object_get(g->members, id)))
				continue;       /* already a member */
			if (chunk == NULL)
				chunk = json_array();
			sync_buf_reset(&ref);
			/* The service's own base: national clouds differ. */
			sync_buf_addf(&ref, "%s/directoryObjects/%s",
			    e->gc->graph_url, id);
			json_array_append_new(chunk, json_string(ref.p));
			if (json_array_size(chunk) == MEMBER_CHUNK) {
				sync_buf_reset(&b);
				sync_buf_adds(&b, "/groups/");
				pct(&b, g->tid);
				unit_add(e, g, R_MEMBER_ADD, "PATCH",
				    sync_strdup(b.p), json_pack("{s:o}",
				    "members@odata.bind", chunk));
				chunk = NULL;
			}
		}
		if (chunk) {
			sync_buf_reset(&b);
			sync_buf_adds(&b, "/groups/");
			pct(&b, g->tid);
			unit_add(e, g, R_MEMBER_ADD, "PATCH", sync_strdup(b.p),
			    json_pack("{s:o}", "members@odata.bind", chunk));
		}
		json_decref(add);
		json_array_foreach(json_object_get(m, "remove"), j, v) {
			const char *id = json_string_value(v);

			if (id == NULL || (g->members &&
			    !json_object_get(g->members, id)))
				continue;       /* not a member: nothing to do */
			/* Never without /$ref: that deletes the member itself. */
			sync_buf_reset(&b);
			sync_buf_adds(&b, "/groups/");
			pct(&b, g->tid);
			sync_buf_adds(&b, "/members/");
			pct(&b, id);
			sync_buf_adds(&b, "/$ref");
			unit_add(e, g, R_MEMBER_DEL, "DELETE", sync_strdup(b.p),
			    NULL);
		}
	}
	sync_buf_release(&b);
	sync_buf_release(&ref);
}

/* --dry-run: the writes of phases 1 to 3, as if nothing were in place. */
static int
dry_run(struct gexp *e, FILE *fp, struct sync_err *err)
{
	size_t i, j;
	const char *colls[2] = { "users", "groups" };
	int c;

	for (i = 0; i < e->n; i++)
		if (applicable(&e->g[i]) && e->g[i].tid == NULL) {
			struct sync_buf b = { 0 };

			sync_buf_addf(&b, "{new-%s}", e->g[i].x->anchor);
			e->g[i].tid = sync_buf_detach(&b);
			json_object_set_new(e->anchors, e->g[i].x->anchor,
			    json_string(e->g[i].tid));
		}
	for (c = 0; c < 3; c++) {
		if (c < 2)
			queue_writes(e, colls[c]);
		else
			queue_members(e);
		for (i = 0; i < e->nu; i++)
			for (j = 0; j < e->u[i].n; j++) {
				struct req *q = &e->u[i].r[j];
				json_t *pp;
				char *body = NULL;

				/* No password in a printout. */
				if (q->body && (pp = json_object_get(q->body,
				    "passwordProfile")))
					json_object_set_new(pp, "password",
					    json_string("(random)"));
				if (q->body)
					body = json_dumps(q->body, JSON_COMPACT |
					    JSON_SORT_KEYS);
				/* Values from the plan: DEL and C1 made visible. */
				fprintf(fp, "%s ", q->method);
				sync_fputs_esc(q->url, fp);
				if (body) {
					fputc(' ', fp);
					sync_fputs_esc(body, fp);
				}
				fputc('\n', fp);
				free(body);
			}
		units_free(e);
	}
	if (ferror(fp))
		return sync_errno(err, "cannot write the dry run");
	return 0;
}

int
sync_graph_export(struct xplan *p, struct sync_err *err)
{
	struct gexp e;
	struct sync_buf why = { 0 };
	size_t i, nstale = 0;
	int rc = -1;

	memset(&e, 0, sizeof e);
	e.p = p;
	e.gc = p->target->graph;
	e.n = p->n;
	e.anchors = json_object();
	pthread_mutex_init(&e.mu, NULL);
	pthread_cond_init(&e.cv, NULL);
	e.cap = (double)e.gc->write_limit;
	e.window = (double)e.gc->write_window;
	if ((e.g = calloc(e.n ? e.n : 1, sizeof *e.g)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < e.n; i++) {
		struct gchange *g = &e.g[i];
		struct xchange *x = &p->ch[i];

		g->x = x;
		g->coll = strcmp(x->type, "group") == 0 ? "groups" : "users";
		g->last_phase = strcmp(g->coll, "users") == 0 ? 1 :
		    strcmp(x->op, "delete") != 0 && json_object_get(
		    json_object_get(x->c, "attrs"), "members") ? 3 : 2;
		g->tid = xplan_start_id(p, x, e.anchors);
		if (x->done)
			continue;
		if (!xplan_is_write(x)) {
			/* conflict, error: reported, never applied. */
			g->skip = 1;
			p->st->notapplied++;
			continue;
		}
		if (strcmp(x->type, "contact") == 0) {
			g->failed = 1;
			g->error = json_pack("{s:s}", "message", "contacts "
			    "(orgContact) cannot be written through Microsoft "
			    "Graph");
			continue;
		}
		if (x->anchorattr == NULL) {
			g->failed = 1;
			g->error = json_pack("{s:s}", "message", "the plan's "
			    "flow is not in the configuration");
		}
	}
	if (p->o->dry_run) {
		rc = dry_run(&e, p->o->dry_out, err);
		goto out;
	}
	if ((e.graph = sync_graph_open(p->target, (int)e.gc->connections,
	    err)) == NULL)
		goto out;
	if (p->o->progress)
		sync_graph_set_notify(e.graph, on_notice, &e);

	/* 0: what is there now, and whether the plan still fits it. */
	e.phase = 0;
	queue_reads(&e);
	if (run_phase(&e, err) == -1)
		goto out;
	units_free(&e);
	for (i = 0; i < e.n; i++) {
		if (!applicable(&e.g[i]))
			continue;
		check_stale(&e.g[i]);
		if (e.g[i].stale)
			xplan_stale(e.g[i].x, e.g[i].stalewhy, &nstale, &why);
	}
	if (nstale) {
		xplan_stale_refuse(p, nstale, &why, err);
		goto out;
	}
	for (i = 0; i < e.n; i++)
		if ((e.g[i].skip == 2 || e.g[i].failed) &&
		    record(&e, &e.g[i], err) == -1)
			goto out;

	/* 1, 2: objects; 3: memberships. */
	e.phase = 1;
	queue_writes(&e, "users");
	rc = run_phase(&e, err);
	units_free(&e);
	if (rc == 0) {
		e.phase = 2;
		queue_writes(&e, "groups");
		rc = run_phase(&e, err);
		units_free(&e);
	}
	if (rc == 0) {
		e.phase = 3;
		queue_members(&e);
		rc = run_phase(&e, err);
		units_free(&e);
	}
	/* After a stop, what was not reached is left for a re-run. */
out:
	units_free(&e);
	for (i = 0; e.g && i < e.n; i++) {
		free(e.g[i].tid);
		free(e.g[i].stalewhy);
		json_decref(e.g[i].cur);
		json_decref(e.g[i].error);
		json_decref(e.g[i].members);
	}
	free(e.g);
	free(e.wq);
	json_decref(e.anchors);
	sync_buf_release(&why);
	p->st->batches = e.batches;
	p->st->writes = e.writes;
	p->st->throttled = e.throttled;
	if (e.graph) {
		unsigned long outer = 0;

		p->st->retries = sync_graph_retries(e.graph, NULL, &outer);
		p->st->throttled += outer;
		sync_graph_close(e.graph);
	}
	pthread_cond_destroy(&e.cv);
	pthread_mutex_destroy(&e.mu);
	return rc;
}
