/*
 * graph-delta.c: the delta import of a Graph connector.
 *
 * A full import leaves a cookie in its snapshot: a digest of what it
 * selected, then the deltaLink of each collection it read (taken with
 * $deltatoken=latest before reading, see graph.c).  A delta run follows
 * each deltaLink to the end of its round, keeps the changes (by object id:
 * a round may return an object several times, a large group's members in
 * pieces, and replay items), then walks the previous snapshot in order,
 * replacing what changed, dropping what was removed, and adds the new
 * objects.  Graph returns a changed object with all its selected
 * properties; a group's members come as changes only (members@delta,
 * "@removed" on those that left) and are applied to the previous list.
 *
 * What is read from the service is proportional to what changed; the
 * previous snapshot is read from its file.  Nothing is handed on until
 * every round is complete, so that when the service no longer honours a
 * deltaLink (410 Gone, syncStateNotFound) the caller can still do a full
 * import instead.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "diff.h"
#include "graph.h"

struct delta {
	struct sync_connector *c;
	struct sync_graph *g;
	/* per type, the properties a full import selects: a round's items
	 * are cut down to them (where a service gave more with a deltaLink
	 * from $deltatoken=latest, the snapshot must not show it) */
	struct sync_strv sel[SYNC_NOBJTYPES];
	json_t *chg;            /* id -> { "t", "gone", "props", "mem" } */
	struct sync_buf cookie, name;
	struct sync_import_res *res;
};

/* Records one item of a round: the latest wins, members accumulate. */
static int
record(struct delta *dl, enum sync_objtype t, json_t *e, struct sync_err *err)
{
	json_t *id = json_object_get(e, "id"), *rec, *mem, *md, *m, *mid;
	size_t i;

	if (!json_is_string(id) || json_string_length(id) == 0)
		return sync_errf(err, "%s: a %s without an id in a delta round",
		    dl->c->name, sync_objtype_name(t));
	if ((rec = json_object_get(dl->chg, json_string_value(id))) == NULL) {
		if ((rec = json_pack("{s:i, s:b, s:o}", "t", (int)t, "gone", 0,
		    "mem", json_object())) == NULL ||
		    json_object_set_new(dl->chg, json_string_value(id), rec) ==
		    -1)
			return sync_errf(err, "%s: out of memory", dl->c->name);
	}
	if (json_object_get(e, "@removed") != NULL) {
		/* gone (deleted, or soft-deleted: "changed"), until an item
		 * later in the round brings it back */
		if (json_object_set_new(rec, "gone", json_true()) == -1 ||
		    json_object_set_new(rec, "mem", json_object()) == -1)
			return sync_errf(err, "%s: out of memory", dl->c->name);
		json_object_del(rec, "props");
		return 0;
	}
	if (json_object_set_new(rec, "gone", json_false()) == -1 ||
	    json_object_set(rec, "props", e) == -1)
		return sync_errf(err, "%s: out of memory", dl->c->name);
	mem = json_object_get(rec, "mem");
	md = json_object_get(e, "members@delta");
	json_array_foreach(md, i, m) {
		mid = json_object_get(m, "id");
		if (!json_is_string(mid))
			continue;
		if (json_object_set_new(mem, json_string_value(mid),
		    json_boolean(json_object_get(m, "@removed") == NULL)) == -1)
			return sync_errf(err, "%s: out of memory", dl->c->name);
	}
	return 0;
}

struct item_arg {
	struct delta *dl;
	enum sync_objtype t;
};

static int
item(void *arg, json_t *e, struct sync_err *err)
{
	struct item_arg *ia = arg;

	return record(ia->dl, ia->t, e, err);
}

/*
 * Follows the deltaLink of type t to the end of its round.  Returns 0,
 * 1 when the service refuses the link (a full import is needed), -1.
 */
static int
delta_round(struct delta *dl, enum sync_objtype t, const char *link,
    struct sync_err *err)
{
	struct item_arg ia = { dl, t };
	char *next = NULL;
	int rc;

	rc = sync_graph_pages(dl->g, 0, link, item, &ia, &next, err);
	if (rc == 1)
		snprintf(dl->res->why, sizeof dl->res->why, "the service no "
		    "longer honours the %s deltaLink (%.64s)",
		    sync_objtype_name(t), err->msg);
	if (rc == 0 && sync_buf_addf(&dl->cookie, "\n%s", next) == -1)
		rc = sync_errf(err, "%s: out of memory", dl->c->name);
	free(next);
	return rc;
}

/*
 * 1 when the round removed object (p, len).  A removed (or soft-deleted)
 * user or group is no member of any group either, as a full import
 * would find, whether or not the round also says so of each group.
 */
static int
gone(const struct delta *dl, const char *p, size_t len)
{
	json_t *rec = json_object_getn(dl->chg, p, len);

	return rec != NULL && json_is_true(json_object_get(rec, "gone"));
}

/* The object at o of snapshot s as a sync_obj (released first), less
 * the members the round removed. */
static int
from_snap(const struct delta *dl, const struct snap *s, const struct dobj *d,
    struct sync_obj *o)
{
	uint32_t i, v;

	sync_obj_release(o);
	o->type = (enum sync_objtype)d->type;
	if ((o->anchor = sync_strdup(s->buf + d->anchor)) == NULL ||
	    (o->id = sync_strdup(s->buf + d->id)) == NULL ||
	    (d->dn && (o->dn = sync_strdup(s->buf + d->dn)) == NULL))
		return -1;
	for (i = d->a; i < d->a + d->na; i++) {
		const struct dattr *a = &s->attrs[i];
		int members = d->type == SYNC_GROUP &&
		    strcmp(s->names.v[a->name], "members") == 0;

		for (v = a->v; v < a->v + dattr_nv(a); v++)
			if (!(members && gone(dl, s->buf + s->vals[v].off,
			    s->vals[v].len)) &&
			    sync_obj_addval(o, s->names.v[a->name],
			    s->buf + s->vals[v].off, s->vals[v].len,
			    (int)a->binary) == -1)
				return -1;
	}
	return 0;
}

/* 1 when from_snap would drop some of d's members: its line changes. */
static int
loses_members(const struct delta *dl, const struct snap *s,
    const struct dobj *d)
{
	uint32_t i, v;

	if (d->type != SYNC_GROUP)
		return 0;
	for (i = d->a; i < d->a + d->na; i++) {
		const struct dattr *a = &s->attrs[i];

		if (strcmp(s->names.v[a->name], "members") != 0)
			continue;
		for (v = a->v; v < a->v + dattr_nv(a); v++)
			if (gone(dl, s->buf + s->vals[v].off, s->vals[v].len))
				return 1;
	}
	return 0;
}

/*
 * The changed object rec (id) as a sync_obj: its properties as the round
 * gave them (an item that is not a removal carries every selected
 * property), and for a group the members of prev (NULL for a new group)
 * with the round's member changes applied, less those the round
 * removed.
 */
static int
from_change(struct delta *dl, const char *id, json_t *rec,
    const struct snap *s, const struct dobj *prev, struct sync_obj *o)
{
	json_t *mem = json_object_get(rec, "mem"), *in;
	const struct dattr *a = NULL;
	const char *m;
	uint32_t i, v;

	sync_obj_release(o);
	o->type = (enum sync_objtype)json_integer_value(json_object_get(rec,
	    "t"));
	if ((o->anchor = sync_strdup(id)) == NULL ||
	    (o->id = sync_strdup(id)) == NULL ||
	    sync_graph_obj_props(o, json_object_get(rec, "props"),
	    &dl->name, &dl->sel[o->type]) == -1)
		return -1;
	if (o->type != SYNC_GROUP)
		return 0;
	for (i = prev ? prev->a : 0; prev && i < prev->a + prev->na; i++)
		if (strcmp(s->names.v[s->attrs[i].name], "members") == 0)
			a = &s->attrs[i];
	for (v = a ? a->v : 0; a && v < a->v + dattr_nv(a); v++) {
		char *mv = strndup(s->buf + s->vals[v].off, s->vals[v].len);

		if (mv == NULL)
			return -1;
		in = json_object_get(mem, mv);
		if (!json_is_false(in) && !gone(dl, mv, strlen(mv)) &&
		    sync_obj_addval(o, "members", mv, strlen(mv), 0) == -1) {
			free(mv);
			return -1;
		}
		/* done with it: what is left in mem is new */
		if (in != NULL)
			json_object_del(mem, mv);
		free(mv);
	}
	json_object_foreach(mem, m, in)
		if (json_is_true(in) && !gone(dl, m, strlen(m)) &&
		    sync_obj_addval(o, "members", m, strlen(m), 0) == -1)
			return -1;
	return 0;
}

/* The $select list of type t as a set of names. */
static int
select_set(struct sync_connector *c, enum sync_objtype t,
    struct sync_strv *out, struct sync_err *err)
{
	struct sync_buf sel = { 0 };
	const char *p, *q;
	int rc = 0;

	if (sync_graph_select(c, t, &sel, err) == -1)
		return -1;
	for (p = sel.p; p && *p && rc == 0; p = *q ? q + 1 : q) {
		q = p + strcspn(p, ",");
		rc = sync_strv_addn(out, p, (size_t)(q - p));
	}
	sync_buf_release(&sel);
	if (rc == -1)
		return sync_errf(err, "%s: out of memory", c->name);
	return 0;
}

/* The previous snapshot's cookie checked against c; 1 with res->why set
 * when it cannot be used. */
static int
check_cookie(struct delta *dl, const struct snap *s, const char *prev,
    const char *links[SYNC_NOBJTYPES], char **copy, struct sync_err *err)
{
	struct sync_import_res *res = dl->res;
	struct sync_buf digest = { 0 };
	char *line, *save = NULL;
	int t;

	if (s->cookie == NULL) {
		snprintf(res->why, sizeof res->why, "%s has no delta cookie",
		    prev);
		return 1;
	}
	if (sync_graph_delta_digest(dl->c, &digest, err) == -1)
		return -1;
	if ((*copy = sync_strdup(s->cookie)) == NULL) {
		sync_buf_release(&digest);
		return sync_errf(err, "out of memory");
	}
	line = strtok_r(*copy, "\n", &save);
	if (line == NULL || strcmp(line, digest.p) != 0) {
		snprintf(res->why, sizeof res->why, "the service or the "
		    "attributes read have changed since %s was written", prev);
		sync_buf_release(&digest);
		return 1;
	}
	sync_buf_release(&digest);
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		if (strstr(line, "/users/delta") != NULL)
			links[SYNC_USER] = line;
		else if (strstr(line, "/groups/delta") != NULL)
			links[SYNC_GROUP] = line;
	}
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if (dl->c->graph->enabled[t] && links[t] == NULL) {
			snprintf(res->why, sizeof res->why, "the cookie of %s "
			    "has no deltaLink for %ss", prev,
			    sync_objtype_name(t));
			return 1;
		}
	/*
	 * The snapshot is a file anyone who can write it may have edited:
	 * a deltaLink to elsewhere is an error, not a reason for a full
	 * import, and is refused before any request is sent.
	 */
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		char what[512];

		if (!dl->c->graph->enabled[t])
			continue;
		snprintf(what, sizeof what, "the %s deltaLink of '%s'",
		    sync_objtype_name(t), prev);
		if (sync_graph_link_check(dl->c, what, links[t], err) == -1)
			return -1;
	}
	return 0;
}

int
sync_graph_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err)
{
	static const enum sync_objtype types[] = { SYNC_USER, SYNC_GROUP };
	struct delta dl = { 0 };
	struct sync_obj o = { 0 };
	struct sync_lines *kl = NULL;
	const char *links[SYNC_NOBJTYPES] = { NULL };
	struct snap *s;
	char *copy = NULL;
	const char *id;
	json_t *rec;
	size_t i;
	int rc = -1;

	if (c->graph->enabled[SYNC_CONTACT])
		return sync_errf(err, "%s: contact objects cannot be read "
		    "from Microsoft Graph yet", c->name);
	if ((s = snap_load(prev, err)) == NULL)
		return -1;
	if (snap_delta_base(s, prev, c->name, err) == -1) {
		snap_free(s);
		return -1;
	}
	dl.c = c;
	dl.res = res;
	if ((rc = check_cookie(&dl, s, prev, links, &copy, err)) != 0)
		goto out;
	rc = -1;
	if ((dl.chg = json_object()) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	if ((dl.g = sync_graph_open(c, 1, err)) == NULL ||
	    sync_graph_delta_digest(c, &dl.cookie, err) == -1)
		goto out;
	for (i = 0; i < sizeof types / sizeof *types; i++)
		if (c->graph->enabled[types[i]] &&
		    select_set(c, types[i], &dl.sel[types[i]], err) == -1)
			goto out;
	for (i = 0; i < sizeof types / sizeof *types; i++)
		if (c->graph->enabled[types[i]] &&
		    (rc = delta_round(&dl, types[i], links[types[i]], err)) != 0)
			goto out;
	rc = -1;
	/*
	 * prev, with the changes applied, then the new objects; the lines
	 * of prev that stay as they are are left for the writer to copy
	 * (res->kept), which costs a fraction of serialising them again.
	 */
	if ((kl = snap_lines_new(s)) == NULL)
		goto nomem;
	for (i = 0; i < s->nobjs; i++) {
		const struct dobj *d = &s->objs[i];

		if (!c->graph->enabled[d->type])
			continue;
		rec = json_object_get(dl.chg, s->buf + d->anchor);
		if (rec == NULL && !loses_members(&dl, s, d)) {
			if (snap_lines_add(kl, s, i) == -1)
				goto nomem;
			continue;
		}
		if (rec == NULL) {
			if (from_snap(&dl, s, d, &o) == -1)
				goto nomem;
		} else {
			json_object_set_new(rec, "done", json_true());
			res->changed++;
			if (json_is_true(json_object_get(rec, "gone")))
				continue;
			if (from_change(&dl, s->buf + d->anchor, rec, s, d, &o) ==
			    -1)
				goto nomem;
		}
		if (fn(ctx, &o, err) == -1)
			goto out;
	}
	json_object_foreach(dl.chg, id, rec) {
		if (json_object_get(rec, "done") != NULL ||
		    json_is_true(json_object_get(rec, "gone")))
			continue;
		res->changed++;
		if (from_change(&dl, id, rec, NULL, NULL, &o) == -1)
			goto nomem;
		if (fn(ctx, &o, err) == -1)
			goto out;
	}
	res->cookie = sync_buf_detach(&dl.cookie);
	res->delta = 1;
	snap_lines_take(kl, s);
	s = NULL;
	res->kept = kl;
	kl = NULL;
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", c->name);
out:
	for (i = 0; i < SYNC_NOBJTYPES; i++)
		sync_strv_release(&dl.sel[i]);
	sync_obj_release(&o);
	json_decref(dl.chg);
	sync_buf_release(&dl.cookie);
	sync_buf_release(&dl.name);
	sync_graph_close(dl.g);
	free(copy);
	sync_lines_free(kl);
	snap_free(s);
	return rc;
}
