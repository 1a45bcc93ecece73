/*
 * ldap-export.c: applying a plan to an LDAP directory (OpenLDAP, Active
 * Directory, Samba AD).
 *
 * Every change becomes one or a few LDAP operations, each guarded so
 * that it is applied at most once and never over a target that moved
 * since the plan was made:
 *
 *   add      an add of the plan's DN; entryAlreadyExists is in place
 *            when the entry there carries the change's anchor;
 *   update   one modify that deletes the exact old values and adds the
 *            new ones (the compare-and-swap of RFC 4511 section 4.6: a
 *            value that is no longer there fails the whole modify with
 *            noSuchAttribute, one already there with
 *            attributeOrValueExists); members and other attributes the
 *            plan gives as values added and removed are deleted and
 *            added by value;
 *   rename, move  a modrdn (with newSuperior for a move), guarded as a
 *            delete is, then the change's attributes as for an update;
 *   delete   a delete, guarded by the anchor: with the assertion control
 *            where the server offers it (RFC 4528), else (AD) after a
 *            read.
 *
 * A refusal that may mean "already done" (entryAlreadyExists,
 * noSuchAttribute, attributeOrValueExists, noSuchObject), and an answer
 * lost with a dropped connection, are settled by reading the entry: in
 * place, the change is done (skipped); in the plan's old state, the
 * write is sent again (only what is missing); in neither, the change is
 * stale and fails.
 *
 * Before any write, phase 0 reads the entry of every update, rename,
 * move and delete (ldap-read.c), and refuses the whole plan if one of
 * them no longer fits it, as the Graph and SCIM writers do; the guards
 * above catch what moves after that.
 *
 * Operations are asynchronous: up to write_window of them are
 * outstanding on the one connection, and the lease is checked before
 * every window of writes.  Three phases of writes, each finished before
 * the next: renames and moves, then adds (entries, then groups, whose
 * new members must exist first); updates; deletes.
 */
#include <sys/time.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ldap.h>

#include "conn.h"
#include "export.h"
#include "ldap-mods.h"

#define MAXATTEMPTS 6           /* sends of one operation of a change */
#define MAXRECONNECT 8          /* reconnections in a row */
#define NSUB 3                  /* steps inside a phase */
#define SYNC_EVERY 64           /* outcomes between journal flushes */
#define SYNC_SECONDS 1.0        /* at most between journal flushes */

enum kind { K_ADD, K_UPDATE, K_RENAME, K_DELETE };
enum step { ST_ADD, ST_MODIFY, ST_RENAME, ST_DELETE, ST_CHECK };

/* What the writer knows of one change. */
struct lchange {
	struct xchange *x;
	enum kind kind;
	int phase;              /* 1 adds, 2 updates and renames, 3 deletes;
	                           0: nothing to do */
	int sub;                /* order inside the phase */
	const char *dn, *new_dn;
	json_t *attrs;          /* borrowed from the plan */
	json_t *binary;         /* borrowed: attributes in base64 */
	char *newrdn, *newsup;  /* for a rename or move */
	json_t *rdnold, *rdnnew;        /* lower-case type -> values */

	int state;              /* 0 to send, 1 in flight, 2 finished */
	enum step step;         /* the operation to send or in flight */
	enum step wstep;        /* the write a ST_CHECK settles */
	int checknew;           /* ST_CHECK reads new_dn, not dn */
	int renamed;            /* the DN change is in place */
	int checked;            /* the anchor was read (no assertion) */
	int inplace;            /* phase 0 found it done (a delete) */
	int wrote;              /* a write of this run succeeded */
	int uncertain;          /* a write's answer was lost */
	int attempts;
	int losses;             /* connections lost with it in flight */
	int msgid;
	double not_before;
	int found;              /* the check found the entry */
	json_t *cur;            /* what the check read, or NULL */
	json_t *readerr;        /* the check's entry could not be read */
	json_t *lasterr;        /* the refusal a check follows, or NULL */
	json_t *deferr;         /* a failure known before the write */
	int failed;
	json_t *error;
	int recorded;
};

struct lexp {
	struct xplan *p;
	struct sync_connector *c;
	struct sync_ldap_conf *lc;
	struct sync_ldap l;
	int connected;
	int has_assert;         /* the server offers RFC 4528 */
	int asked;              /* has_assert is known */
	struct lchange *g;
	size_t n;
	json_t *adds;           /* anchor -> index of its add, as integer */
	json_t *noattrs;        /* {}: the attrs of a change without */
	json_t *moved;          /* DN key -> new DN, of the renames done */
	size_t window;
	struct lchange **fly;   /* the operations outstanding: window slots */
	size_t inflight;
	int dry;                /* a dry run: adds resolve to their DNs */
	size_t since_lease;     /* writes sent since the last lease check */
	size_t since_sync;      /* outcomes since the last journal flush */
	double last_sync;
	int phase;
	size_t pdone, ptotal;
	size_t batches;
	unsigned long writes, retries;
	int abort;
	struct sync_err abort_err;
};

/* ------------------------------------------------------------- helpers */

static int
is_binary(struct lchange *c, const char *attr)
{
	size_t i;
	json_t *v;

	json_array_foreach(c->binary, i, v)
		if (json_string_value(v) &&
		    strcasecmp(json_string_value(v), attr) == 0)
			return 1;
	return 0;
}

/*
 * Renames and moves go first, so that the adds and updates that name
 * their objects can name them by their new DNs: notes that c's entry is
 * at new_dn now.
 */
static void
moved(struct lexp *e, struct lchange *c)
{
	char *k = lx_valkey(c->dn, 0);

	if (k && c->new_dn)
		json_object_set_new(e->moved, k, json_string(c->new_dn));
	free(k);
}

/*
 * Reference values to add (a new array): those of an entry the plan
 * renamed or moved, by the new DN.
 */
static json_t *
refs_add(struct lexp *e, json_t *vals)
{
	json_t *out = json_array(), *v, *to;
	size_t i;
	char *k;

	json_array_foreach(vals, i, v) {
		k = json_is_string(v) ? lx_valkey(json_string_value(v), 0) : NULL;
		to = k ? json_object_get(e->moved, k) : NULL;
		json_array_append(out, to ? to : v);
		free(k);
	}
	return out;
}

/*
 * Reference values to remove (a new array): those of an entry the plan
 * renamed or moved by both DNs, since a directory with referential
 * integrity (AD, slapd with refint) has followed the rename and one
 * without has not; only the value present is removed (build_modify,
 * after a read).
 */
static json_t *
refs_remove(struct lexp *e, json_t *vals)
{
	json_t *out = json_array(), *v, *to;
	size_t i;
	char *k;

	json_array_foreach(vals, i, v) {
		k = json_is_string(v) ? lx_valkey(json_string_value(v), 0) : NULL;
		to = k ? json_object_get(e->moved, k) : NULL;
		json_array_append(out, v);
		if (to)
			json_array_append(out, to);
		free(k);
	}
	return out;
}

/* 1 when c removes values given as removed (members, large ones). */
static int
removes_refs(struct lchange *c)
{
	const char *k;
	json_t *a;

	json_object_foreach(c->attrs, k, a)
		if (json_array_size(json_object_get(a, "remove")))
			return 1;
	return 0;
}

/* 1 when c removes a reference to an entry the plan renamed or moved. */
static int
removes_moved(struct lexp *e, struct lchange *c)
{
	const char *k;
	json_t *a, *v;
	size_t i;
	char *key;
	int hit = 0;

	if (json_object_size(e->moved) == 0)
		return 0;
	json_object_foreach(c->attrs, k, a)
		json_array_foreach(json_object_get(a, "remove"), i, v) {
			key = json_is_string(v) ? lx_valkey(json_string_value(v),
			    0) : NULL;
			if (key && json_object_get(e->moved, key))
				hit = 1;
			free(key);
		}
	return hit;
}

/* ------------------------------------------------------ modifications */

/*
 * The DNs of the plan's adds whose anchors are in anchors (add_anchors)
 * into out.  An add that failed, or is not in the plan, leaves its
 * member out and sets c->deferr (the change fails once the rest is
 * written).
 */
static void
resolve_anchors(struct lexp *e, struct lchange *c, json_t *anchors,
    struct sync_strv *out)
{
	json_t *v, *ix;
	size_t i;

	json_array_foreach(anchors, i, v) {
		const char *a = json_string_value(v), *dn = NULL, *jid;
		struct lchange *t;

		ix = a ? json_object_get(e->adds, a) : NULL;
		if (ix) {
			t = &e->g[json_integer_value(ix)];
			if (t->x->done) {
				jid = sync_journal_id(e->p->journal, t->x->idx);
				dn = jid ? jid : t->dn;
			} else if ((t->state == 2 && !t->failed) || e->dry)
				dn = t->dn;
		}
		if (dn) {
			if (sync_strv_add(out, dn) == -1)
				return;
			continue;
		}
		if (c->deferr == NULL)
			c->deferr = json_pack("{s:s, s:s?}", "message", "a member "
			    "created by this plan has no DN (its creation "
			    "failed)", "anchor", a);
	}
}

/*
 * The entry's attributes after the modrdn of a rename, from the plan's
 * old values: the old RDN's values gone, the new RDN's there (a new
 * array, or a new reference to old when the RDNs do not name name).
 */
static json_t *
after_rename(struct lchange *c, const char *name, json_t *old)
{
	char *k = lx_lower(name);
	json_t *ro = json_object_get(c->rdnold, k), *rn = json_object_get(
	    c->rdnnew, k), *s, *out, *v;
	size_t i;

	free(k);
	if (ro == NULL && rn == NULL)
		return json_incref(old);
	s = lx_keyset(ro, 0);
	out = lx_minus(old ? old : ro, s, 0);
	json_decref(s);
	s = lx_keyset(out, 0);
	json_array_foreach(rn, i, v)
		if (!lx_has_key(s, json_string_value(v), 0))
			json_array_append(out, v);
	json_decref(s);
	return out;
}

/*
 * The modifications of an update (or of the attributes of a rename).
 * cur NULL: from the plan alone (each attribute's old values deleted,
 * its new ones added).  cur (what a read found): only the attributes
 * not yet in place; *stale, when not NULL, gets what no longer fits the
 * plan (new string), and nothing is built.  Returns the number of
 * attributes to write.
 */
static size_t
build_modify(struct lexp *e, struct lchange *c, json_t *cur,
    struct lx_mods *mv, char **stale)
{
	struct sync_buf why = { 0 };
	struct sync_strv extra = { 0 };
	const char *k;
	json_t *a;
	size_t n = 0;

	*stale = NULL;
	json_object_foreach(c->attrs, k, a) {
		json_t *old = json_object_get(a, "old"), *nw = json_object_get(a,
		    "new"), *now_ = NULL, *set, *ad, *rm;
		int bin = is_binary(c, k);
		char *lk;

		if (cur) {
			lk = lx_lower(k);
			now_ = json_object_get(cur, lk);
			free(lk);
			if (now_ == NULL)
				now_ = json_array();
			else
				json_incref(now_);
		}
		if (old || nw) {
			json_t *was = c->kind == K_RENAME && c->renamed ?
			    after_rename(c, k, old) : json_incref(old);

			if (was == NULL)
				was = json_array();
			if (nw == NULL)
				nw = json_array();
			if (lx_same_set(was, nw, bin)) {
				json_decref(was);
				json_decref(now_);
				continue;
			}
			if (now_ && lx_same_set(now_, nw, bin)) {
				json_decref(was);
				json_decref(now_);
				continue;       /* in place */
			}
			if (now_ && !lx_same_set(now_, was, bin)) {
				char *cs = json_dumps(now_, JSON_COMPACT);
				char *os = json_dumps(was, JSON_COMPACT);

				sync_buf_addf(&why, "%s%s is %s, the plan expected %s",
				    why.len ? "; " : "", k, cs ? cs : "?",
				    os ? os : "?");
				free(cs);
				free(os);
				json_decref(was);
				json_decref(now_);
				continue;
			}
			/*
			 * Compare-and-swap: the old values must all be there
			 * (or the modify fails with noSuchAttribute), the new
			 * ones must not be (attributeOrValueExists); values in
			 * both are deleted and added again, which checks them.
			 */
			if (json_array_size(was))
				lx_mods_add(mv, LDAP_MOD_DELETE, k, was, NULL, bin);
			lx_mods_add(mv, LDAP_MOD_ADD, k, nw, NULL, bin);
			json_decref(was);
			json_decref(now_);
			n++;
			continue;
		}
		/* Values added and removed: members, large attributes. */
		sync_strv_release(&extra);
		resolve_anchors(e, c, json_object_get(a, "add_anchors"), &extra);
		ad = refs_add(e, json_object_get(a, "add"));
		rm = refs_remove(e, json_object_get(a, "remove"));
		if (now_) {
			struct sync_strv left = { 0 };
			json_t *ad0 = ad, *rm0 = rm;
			size_t i;

			set = lx_keyset(now_, bin);
			ad = lx_minus(ad0, set, bin);
			rm = lx_inter(rm0, set, bin);
			json_decref(ad0);
			json_decref(rm0);
			/* mods_add copies extra's strings, not ad's: keep apart. */
			for (i = 0; i < extra.n; i++)
				if (!lx_has_key(set, extra.v[i], bin))
					sync_strv_add(&left, extra.v[i]);
			sync_strv_release(&extra);
			extra = left;
			json_decref(set);
		}
		if (json_array_size(rm) + json_array_size(ad) + extra.n > 0) {
			lx_mods_add(mv, LDAP_MOD_DELETE, k, rm, NULL, bin);
			lx_mods_add(mv, LDAP_MOD_ADD, k, ad, &extra, bin);
			n++;
		}
		json_decref(ad);
		json_decref(rm);
		json_decref(now_);
	}
	sync_strv_release(&extra);
	if (why.len) {
		*stale = sync_buf_detach(&why);
		n = 0;
	}
	sync_buf_release(&why);
	return n;
}

/* The values the entry's anchor attribute must hold for change c. */
static json_t *
anchor_vals(struct lchange *c)
{
	json_t *a = lx_attr_get(c->attrs, c->x->anchorattr), *v;

	if (a && (v = json_object_get(a, c->kind == K_DELETE ? "old" :
	    "new")) != NULL && json_array_size(v))
		return json_incref(v);
	return json_pack("[s]", c->x->anchor);
}

/*
 * 1 when the entry read (c->cur) carries the change's anchor.  An
 * anchor attribute the connector holds as binary may have been read as
 * text (bytes that happen to be UTF-8): its base64 is compared too.
 */
static int
anchor_ok(struct lexp *e, struct lchange *c)
{
	json_t *want = anchor_vals(c), *have, *v;
	char *k = lx_lower(c->x->anchorattr);
	int bin = is_binary(c, c->x->anchorattr), rc = 0;
	int cbin = sync_strv_casecontains(&e->lc->binary, c->x->anchorattr);
	size_t i;
	json_t *set;

	have = json_object_get(c->cur, k);
	free(k);
	set = lx_keyset(have, bin);
	if (cbin && !bin)
		json_array_foreach(have, i, v) {
			const char *h = json_string_value(v);
			char *b = h ? sync_base64_encode(h, strlen(h)) : NULL;

			if (b)
				json_object_set_new(set, b, json_true());
			free(b);
		}
	json_array_foreach(want, i, v)
		if (json_is_string(v) && (lx_has_key(set, json_string_value(v), bin) ||
		    (cbin && json_object_get(set, json_string_value(v)))))
			rc = 1;
	json_decref(set);
	json_decref(want);
	return rc;
}

/* The modifications of an add (the whole entry). */
static void
build_add(struct lexp *e, struct lchange *c, struct lx_mods *mv)
{
	struct sync_strv extra = { 0 };
	const char *k;
	json_t *a;

	json_object_foreach(c->attrs, k, a) {
		json_t *nw = json_object_get(a, "new");
		int bin = is_binary(c, k);

		sync_strv_release(&extra);
		if (nw == NULL) {
			resolve_anchors(e, c, json_object_get(a, "add_anchors"),
			    &extra);
			nw = refs_add(e, json_object_get(a, "add"));
		} else
			nw = refs_add(e, nw);
		if (json_array_size(nw) + extra.n)
			lx_mods_add(mv, LDAP_MOD_ADD, k, nw, &extra, bin);
		json_decref(nw);        /* its strings are the plan's */
	}
	sync_strv_release(&extra);
	/*
	 * An entry needs its structural class; a plan whose flow does not
	 * set objectClass gets the kind's usual one (AD: user, group,
	 * contact), since a flow cannot write objectClass to AD without
	 * planning an update every cycle (AD reads back its superclasses).
	 */
	if (lx_attr_get(c->attrs, "objectClass") == NULL) {
		static const char *const oc[2][3] = {
			{ "inetOrgPerson", "groupOfNames", "inetOrgPerson" },
			{ "user", "group", "contact" },
		};
		int ad = e->c->kind == SYNC_CONN_AD;
		int t = strcmp(c->x->type, "group") == 0 ? 1 :
		    strcmp(c->x->type, "contact") == 0 ? 2 : 0;
		struct sync_strv v = { 0 };

		if (sync_strv_add(&v, oc[ad][t]) == 0)
			lx_mods_add(mv, LDAP_MOD_ADD, "objectClass", NULL, &v, 0);
		sync_strv_release(&v);
	}
	/* The anchor is what finds the entry again: stamp it. */
	if (c->x->anchorattr && lx_attr_get(c->attrs, c->x->anchorattr) == NULL) {
		struct sync_strv v = { 0 };

		if (sync_strv_add(&v, c->x->anchor) == 0)
			lx_mods_add(mv, LDAP_MOD_ADD, c->x->anchorattr, NULL, &v, 0);
		sync_strv_release(&v);
	}
}

/* ------------------------------------------------------------ outcomes */

struct lexp;
static int fail_why(struct lexp *e, struct lchange *c, json_t *le,
    const char *why, int stale, struct sync_err *err);

static int
record(struct lexp *e, struct lchange *c, struct sync_err *err)
{
	int rc;

	if (c->recorded)
		return 0;
	c->recorded = 1;
	if (c->failed)
		rc = xplan_record(e->p, c->x, "failed", c->dn, c->error, err);
	else
		rc = xplan_record(e->p, c->x, c->wrote || c->uncertain ?
		    "applied" : "skipped", c->kind == K_RENAME ? c->new_dn :
		    c->dn, NULL, err);
	if (rc == -1)
		return -1;
	/*
	 * The journal reaches the disk every SYNC_EVERY outcomes or
	 * SYNC_SECONDS, not after every window: an fsync costs more than
	 * an LDAP operation, and an outcome lost with a crash costs only a
	 * read on the next run (every write is guarded).
	 */
	if (++e->since_sync >= SYNC_EVERY || sync_mono_now() - e->last_sync >=
	    SYNC_SECONDS) {
		e->since_sync = 0;
		e->last_sync = sync_mono_now();
		return xplan_sync(e->p, err);
	}
	return 0;
}

static void
progress(struct lexp *e, int end)
{
	static const char *const what[] = { "reads", "renames and adds",
	    "updates",
	    "deletes" };
	struct sync_export_progress pr;

	memset(&pr, 0, sizeof pr);
	pr.phase = e->phase;
	pr.what = what[e->phase];
	pr.done = e->pdone;
	pr.total = e->ptotal;
	pr.batches = e->batches;
	pr.retries = e->retries;
	pr.end = end;
	xplan_progress(e->p, &pr);
}

/* The change is over: done (in place), or failed with error (stolen). */
static int
finish(struct lexp *e, struct lchange *c, json_t *error,
    struct sync_err *err)
{
	c->state = 2;
	e->pdone++;
	if (error == NULL && c->deferr) {
		error = c->deferr;
		c->deferr = NULL;
	}
	if (error) {
		c->failed = 1;
		json_decref(c->error);
		c->error = error;
	} else if (c->kind == K_RENAME)
		moved(e, c);
	json_decref(c->cur);
	c->cur = NULL;
	json_decref(c->lasterr);
	c->lasterr = NULL;
	return record(e, c, err);
}

/* ---------------------------------------------------------- operations */

static const char *
step_name(enum step s)
{
	static const char *const n[] = { "add", "modify", "modrdn", "delete",
	    "read" };

	return n[s];
}

/* The DN an operation of c goes to. */
static const char *
target_dn(struct lchange *c)
{
	if (c->step == ST_CHECK && c->wstep == ST_RENAME)
		return c->checknew ? c->new_dn : c->dn;
	return c->renamed ? c->new_dn : c->dn;
}

/* Reads the entry for a check: the change's attributes and the anchor. */
static int
send_check(struct lexp *e, struct lchange *c, int *msgid)
{
	const char *k;
	json_t *a;
	char **attrs, win[300];
	size_t n = 0;
	int rc;

	attrs = calloc(json_object_size(c->attrs) + 3, sizeof *attrs);
	if (attrs == NULL)
		return LDAP_NO_MEMORY;
	json_object_foreach(c->attrs, k, a)
		attrs[n++] = (char *)sync_ldap_window(&e->l, k, win, sizeof win);
	if (c->x->anchorattr)
		attrs[n++] = (char *)c->x->anchorattr;
	if (n == 0)
		attrs[n++] = (char *)LDAP_NO_ATTRS;
	rc = ldap_search_ext(e->l.ld, target_dn(c), LDAP_SCOPE_BASE,
	    "(objectClass=*)", attrs, 0, NULL, NULL, NULL, 0, msgid);
	free(attrs);
	return rc;
}

/* An assertion control (anchorattr=value) for a delete, or NULL. */
static LDAPControl *
assertion(struct lexp *e, struct lchange *c)
{
	struct sync_buf f = { 0 };
	LDAPControl *ctl = NULL;
	json_t *want = anchor_vals(c), *v;
	size_t i;
	int bin = is_binary(c, c->x->anchorattr);

	sync_buf_adds(&f, json_array_size(want) > 1 ? "(|" : "");
	json_array_foreach(want, i, v) {
		struct berval in, out = { 0, NULL };
		unsigned char *raw = NULL;
		size_t len;

		if (bin && sync_base64_decode(json_string_value(v),
		    strlen(json_string_value(v)), &raw, &len, NULL) == 0) {
			in.bv_val = (char *)raw;
			in.bv_len = len;
		} else {
			in.bv_val = (char *)json_string_value(v);
			in.bv_len = strlen(in.bv_val);
		}
		if (ldap_bv2escaped_filter_value(&in, &out) == 0) {
			sync_buf_addf(&f, "(%s=%s)", c->x->anchorattr, out.bv_val);
			ber_memfree(out.bv_val);
		}
		free(raw);
	}
	sync_buf_adds(&f, json_array_size(want) > 1 ? ")" : "");
	json_decref(want);
	if (f.p == NULL || ldap_create_assertion_control(e->l.ld, f.p, 1,
	    &ctl) != LDAP_SUCCESS)
		ctl = NULL;
	sync_buf_release(&f);
	return ctl;
}

static int
is_write(enum step s)
{
	return s != ST_CHECK;
}

/*
 * Sends c's next operation.  Returns the LDAP code of the send: success,
 * or an error of the connection (the caller reconnects), or another
 * (the change failed, recorded here).  A change found to have nothing
 * left to write is finished here: *finished is set.
 */
static int
send_op(struct lexp *e, struct lchange *c, int *finished,
    struct sync_err *err)
{
	struct lx_mods mv = { 0 };
	LDAPControl *ctl = NULL, *ctls[2] = { NULL, NULL };
	char *stale = NULL;
	int rc = LDAP_SUCCESS, msgid = -1;

	*finished = 0;
	c->attempts++;
	switch (c->step) {
	case ST_ADD:
		build_add(e, c, &mv);
		break;
	case ST_MODIFY:
		if (c->cur == NULL && removes_moved(e, c)) {
			/* Which DN the group holds: read, then remove that. */
			c->wstep = ST_MODIFY;
			c->step = ST_CHECK;
			c->checknew = 0;
			break;
		}
		if (build_modify(e, c, c->cur, &mv, &stale) == 0 && stale == NULL &&
		    !mv.bad) {
			*finished = 1;
			lx_mods_free(&mv);
			return finish(e, c, NULL, err) == -1 ? LDAP_OTHER :
			    LDAP_SUCCESS;
		}
		if (stale) {
			struct sync_buf b = { 0 };

			sync_buf_addf(&b, "the target changed since the plan was "
			    "made: %s", stale);
			free(stale);
			*finished = 1;
			lx_mods_free(&mv);
			rc = fail_why(e, c, c->lasterr, b.p, 1, err);
			sync_buf_release(&b);
			return rc == -1 ? LDAP_OTHER : LDAP_SUCCESS;
		}
		break;
	default:
		break;
	}
	if (mv.bad) {
		*finished = 1;
		rc = finish(e, c, lx_merror(mv.why ? mv.why : "out of memory"), err);
		lx_mods_free(&mv);
		return rc == -1 ? LDAP_OTHER : LDAP_SUCCESS;
	}
	json_decref(c->cur);
	c->cur = NULL;
	json_decref(c->readerr);
	c->readerr = NULL;
	c->found = 0;
	switch (c->step) {
	case ST_ADD:
		rc = ldap_add_ext(e->l.ld, c->dn, mv.m, NULL, NULL, &msgid);
		break;
	case ST_MODIFY:
		rc = ldap_modify_ext(e->l.ld, target_dn(c), mv.m, NULL, NULL,
		    &msgid);
		break;
	case ST_RENAME:
		if (!e->has_assert && !c->checked) {
			/*
			 * No assertion control: read first, as for a delete,
			 * the new DN (the modrdn may be in place already) and
			 * then the DN, which must still be this change's entry.
			 */
			c->wstep = ST_RENAME;
			c->step = ST_CHECK;
			c->checknew = !sync_dn_equal(c->dn, c->new_dn);
			rc = send_check(e, c, &msgid);
			break;
		}
		/* Guarded as a delete is: still this change's entry. */
		if (e->has_assert && c->x->anchorattr &&
		    (ctl = assertion(e, c)) != NULL)
			ctls[0] = ctl;
		rc = ldap_rename(e->l.ld, c->dn, c->newrdn, c->kind == K_RENAME &&
		    c->newsup && strcmp(c->x->op, "move") == 0 ? c->newsup : NULL,
		    1, ctl ? ctls : NULL, NULL, &msgid);
		ldap_control_free(ctl);
		break;
	case ST_DELETE:
		if (!e->has_assert && !c->checked) {
			/* No assertion control: read the anchor first. */
			c->wstep = ST_DELETE;
			c->step = ST_CHECK;
			c->checknew = 0;
			rc = send_check(e, c, &msgid);
			break;
		}
		if (e->has_assert && c->x->anchorattr &&
		    (ctl = assertion(e, c)) != NULL)
			ctls[0] = ctl;
		rc = ldap_delete_ext(e->l.ld, c->dn, ctl ? ctls : NULL, NULL,
		    &msgid);
		ldap_control_free(ctl);
		break;
	case ST_CHECK:
		rc = send_check(e, c, &msgid);
		break;
	}
	lx_mods_free(&mv);
	if (rc == LDAP_SUCCESS) {
		size_t i;

		for (i = 0; i < e->window && e->fly[i]; i++)
			;
		e->fly[i] = c;  /* there is a free slot: inflight < window */
		c->msgid = msgid;
		c->state = 1;
		e->inflight++;
		if (is_write(c->step))
			e->writes++;
	}
	return rc;
}

/* The connection is gone: what was in flight is settled by reading. */
static void
lost(struct lexp *e)
{
	size_t i;

	for (i = 0; i < e->window; i++) {
		struct lchange *c = e->fly[i];

		if (c == NULL)
			continue;
		e->fly[i] = NULL;
		c->state = 0;
		c->attempts = 0;
		c->losses++;
		if (is_write(c->step)) {
			c->uncertain = 1;
			c->wstep = c->step;
			c->checknew = c->step == ST_RENAME;
			c->step = ST_CHECK;
		}
	}
	e->inflight = 0;
	if (e->connected)
		sync_ldap_close(&e->l);
	e->connected = 0;
}

/* 1 when the server lists the assertion control in its root DSE. */
static int
server_asserts(LDAP *ld)
{
	char sc[] = "supportedControl";
	char *attrs[] = { sc, NULL };
	LDAPMessage *res = NULL, *m;
	struct berval **v;
	struct timeval tv = { 30, 0 };
	int found = 0, i;

	if (ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs,
	    0, NULL, NULL, &tv, 0, &res) != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return 0;
	}
	if ((m = ldap_first_entry(ld, res)) != NULL &&
	    (v = ldap_get_values_len(ld, m, "supportedControl")) != NULL) {
		for (i = 0; v[i]; i++)
			if (v[i]->bv_len == strlen(LDAP_CONTROL_ASSERT) &&
			    memcmp(v[i]->bv_val, LDAP_CONTROL_ASSERT,
			    v[i]->bv_len) == 0)
				found = 1;
		ldap_value_free_len(v);
	}
	ldap_msgfree(res);
	return found;
}

/* Connects, again after a loss, with a backoff. */
static int
connect_target(struct lexp *e, struct sync_err *err)
{
	double wait = 0.25;
	int tries;

	for (tries = 0; ; tries++) {
		if (sync_ldap_open(&e->l, e->c, err) == 0) {
			e->connected = 1;
			if (!e->asked) {
				e->has_assert = server_asserts(e->l.ld);
				e->asked = 1;
			}
			return 0;
		}
		if (tries + 1 >= MAXRECONNECT)
			return -1;
		e->retries++;
		sync_sleep_for(wait);
		if ((wait *= 2) > 8)
			wait = 8;
	}
}

static int
retryable(int rc)
{
	return rc == LDAP_BUSY || rc == LDAP_UNAVAILABLE;
}

/* After a write that may mean "already done": read the entry. */
static void
to_check(struct lchange *c, json_t *error, int checknew)
{
	c->wstep = c->step;
	c->step = ST_CHECK;
	c->checknew = checknew;
	c->state = 0;
	json_decref(c->lasterr);
	c->lasterr = error;
}

/*
 * Fails c with le (the refusal that led here, stolen; or NULL) and the
 * sentence why: the message becomes "LE-MESSAGE; WHY", or WHY alone.
 */
static int
fail_why(struct lexp *e, struct lchange *c, json_t *le, const char *why,
    int stale, struct sync_err *err)
{
	struct sync_buf m = { 0 };
	const char *lm = json_string_value(json_object_get(le, "message"));

	if (le == NULL)
		le = json_object();
	if (lm && why)
		sync_buf_addf(&m, "%s; %s", lm, why);
	else
		sync_buf_adds(&m, why ? why : lm ? lm : "unknown error");
	json_object_set_new(le, "message", json_string(m.p ? m.p : ""));
	if (stale)
		json_object_set_new(le, "stale", json_true());
	sync_buf_release(&m);
	if (c->lasterr == le)
		c->lasterr = NULL;
	return finish(e, c, le, err);
}

/* The anchor attribute's values as read, as JSON text (new string). */
static char *
anchor_now(struct lchange *c)
{
	char *k = lx_lower(c->x->anchorattr), *s;
	json_t *v = json_object_get(c->cur, k);

	s = v ? json_dumps(v, JSON_COMPACT) : sync_strdup("[]");
	free(k);
	return s;
}

/*
 * Fails c as stale: the entry read holds another anchor.  After a read
 * first (no assertion control), with no refusal (le) to name the entry,
 * the message names it: "OP 'DN': the target changed ...".
 */
static int
fail_anchor(struct lexp *e, struct lchange *c, json_t *le,
    struct sync_err *err)
{
	struct sync_buf b = { 0 };
	char *s = anchor_now(c);
	int rc;

	if (le == NULL)
		sync_buf_addf(&b, "%s '%s': ", step_name(c->wstep), c->dn);
	sync_buf_addf(&b, "the target changed since the plan was made: %s is "
	    "%s, not the plan's anchor", c->x->anchorattr, s ? s : "?");
	free(s);
	rc = fail_why(e, c, le, b.p, 1, err);
	sync_buf_release(&b);
	return rc;
}

/* What to do after a check, by the write it settles. */
static int
after_check(struct lexp *e, struct lchange *c, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	json_t *le = c->lasterr;
	char *s;
	int rc;

	c->lasterr = NULL;
	c->state = 0;
	switch (c->wstep) {
	case ST_ADD:
		if (c->found && anchor_ok(e, c)) {
			json_decref(le);
			return finish(e, c, NULL, err);         /* in place */
		}
		if (c->found) {
			s = anchor_now(c);
			sync_buf_addf(&b, "the entry there is not this change's "
			    "object: %s is %s", c->x->anchorattr, s ? s : "?");
			free(s);
			rc = fail_why(e, c, le, b.p, 0, err);
			sync_buf_release(&b);
			return rc;
		}
		json_decref(le);
		c->step = ST_ADD;       /* not there: the add was not applied */
		return 0;
	case ST_MODIFY:
		if (!c->found)
			return fail_why(e, c, le, "the object no longer exists", 1,
			    err);
		c->lasterr = le;        /* for the message, if stale */
		c->step = ST_MODIFY;    /* send_op compares with c->cur */
		return 0;
	case ST_DELETE:
		if (!c->found) {
			json_decref(le);
			return finish(e, c, NULL, err);         /* gone already */
		}
		if (!anchor_ok(e, c))
			return fail_anchor(e, c, le, err);
		json_decref(le);
		c->checked = 1;
		c->step = ST_DELETE;
		return 0;
	case ST_RENAME:
		if (c->checknew && c->found && anchor_ok(e, c)) {
			json_decref(le);
			c->renamed = 1;
			json_decref(c->cur);
			c->cur = NULL;
			if (json_object_size(c->attrs) == 0)
				return finish(e, c, NULL, err);
			c->step = ST_MODIFY;
			return 0;
		}
		if (c->checknew && c->found) {
			sync_buf_addf(&b, "'%s' is another entry, not this "
			    "change's object", c->new_dn);
			rc = fail_why(e, c, le, b.p, 0, err);
			sync_buf_release(&b);
			return rc;
		}
		if (c->checknew) {
			/* Not at the new DN: still at the old one? */
			c->lasterr = le;
			c->checknew = 0;
			c->step = ST_CHECK;
			return 0;
		}
		if (c->found && anchor_ok(e, c)) {
			json_decref(c->cur);
			c->cur = NULL;
			if ((!e->has_assert && !c->checked) ||
			    (c->uncertain && c->attempts < MAXATTEMPTS)) {
				/*
				 * Still this change's entry, read first (no
				 * assertion control); or a modrdn whose answer
				 * was lost, not applied: send it.
				 */
				json_decref(le);
				c->checked = 1;
				c->step = ST_RENAME;
				return 0;
			}
			/* Refused for another reason: a new parent missing. */
			return fail_why(e, c, le, NULL, 0, err);
		}
		if (c->found)
			return fail_anchor(e, c, le, err);
		if (c->uncertain && c->attempts < MAXATTEMPTS) {
			/*
			 * At neither DN: the server may still be applying the
			 * modrdn sent on the lost connection between the two
			 * reads.  Look again shortly.
			 */
			c->lasterr = le;
			c->checknew = 1;
			c->step = ST_CHECK;
			c->not_before = sync_mono_now() + 0.1 * c->attempts;
			return 0;
		}
		if (le == NULL) {
			/* Read first (no assertion control): name the entry. */
			sync_buf_addf(&b, "modrdn '%s': the object no longer exists",
			    c->dn);
			rc = fail_why(e, c, NULL, b.p, 1, err);
			sync_buf_release(&b);
			return rc;
		}
		return fail_why(e, c, le, "the object no longer exists", 1, err);
	default:
		break;
	}
	json_decref(le);
	return 0;
}

/* Handles one message of the server for change c. */
static int
handle(struct lexp *e, struct lchange *c, LDAPMessage *m,
    struct sync_err *err)
{
	char *matched = NULL, *diag = NULL;
	int rc = LDAP_OTHER, type = ldap_msgtype(m), r;
	json_t *le;

	if (type == LDAP_RES_SEARCH_ENTRY) {
		if (c->step == ST_CHECK && c->cur == NULL && c->readerr == NULL) {
			struct sync_err rerr;

			/* (a ranged attribute is read to its end here) */
			c->cur = sync_ldap_entry_json(&e->l, (struct ldapmsg *)m,
			    c->binary, &rerr);
			if (c->cur == NULL)
				c->readerr = lx_merror(rerr.msg);
			c->found = c->cur != NULL;
		}
		return 0;
	}
	if (type == LDAP_RES_SEARCH_REFERENCE || type == LDAP_RES_INTERMEDIATE)
		return 0;
	c->state = 0;
	e->inflight--;
	r = ldap_parse_result(e->l.ld, m, &rc, &matched, &diag, NULL, NULL, 0);
	if (r != LDAP_SUCCESS)
		rc = r;
	le = lx_error(step_name(c->step), target_dn(c), rc, diag, matched, NULL);
	ldap_memfree(matched);
	ldap_memfree(diag);
	if (c->step != ST_CHECK && retryable(rc) && c->attempts < MAXATTEMPTS) {
		json_decref(le);
		e->retries++;
		c->not_before = sync_mono_now() + 0.2 * (1 << c->attempts);
		return 0;
	}
	switch (c->step) {
	case ST_ADD:
		if (rc == LDAP_SUCCESS) {
			json_decref(le);
			c->wrote = 1;
			return finish(e, c, NULL, err);
		}
		if (rc == LDAP_ALREADY_EXISTS && c->attempts < MAXATTEMPTS) {
			to_check(c, le, 0);
			return 0;
		}
		return finish(e, c, le, err);
	case ST_MODIFY:
		if (rc == LDAP_SUCCESS) {
			json_decref(le);
			c->wrote = 1;
			return finish(e, c, NULL, err);
		}
		/*
		 * AD refuses to remove a member whose entry is gone with
		 * unwillingToPerform ("Unable to find GUID"): read the
		 * members, and remove only those still there.  Samba
		 * refuses a member already there with entryAlreadyExists
		 * ("Attribute member already exists for target GUID").
		 */
		if ((rc == LDAP_NO_SUCH_ATTRIBUTE ||
		    rc == LDAP_TYPE_OR_VALUE_EXISTS ||
		    rc == LDAP_ALREADY_EXISTS ||
		    rc == LDAP_NO_SUCH_OBJECT ||
		    (rc == LDAP_UNWILLING_TO_PERFORM && removes_refs(c))) &&
		    c->attempts < MAXATTEMPTS) {
			to_check(c, le, 0);
			return 0;
		}
		return finish(e, c, le, err);
	case ST_RENAME:
		if (rc == LDAP_SUCCESS) {
			json_decref(le);
			c->wrote = 1;
			c->renamed = 1;
			c->attempts = 0;
			if (json_object_size(c->attrs) == 0)
				return finish(e, c, NULL, err);
			c->step = ST_MODIFY;
			return 0;
		}
		if ((rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_ALREADY_EXISTS) &&
		    c->attempts < MAXATTEMPTS) {
			to_check(c, le, 1);
			return 0;
		}
		if (rc == LDAP_ASSERTION_FAILED && c->attempts < MAXATTEMPTS) {
			to_check(c, le, 0);         /* say what it is now */
			return 0;
		}
		return finish(e, c, le, err);
	case ST_DELETE:
		if (rc == LDAP_SUCCESS) {
			json_decref(le);
			c->wrote = 1;
			return finish(e, c, NULL, err);
		}
		if (rc == LDAP_NO_SUCH_OBJECT) {
			json_decref(le);
			return finish(e, c, NULL, err);         /* gone already */
		}
		if (rc == LDAP_ASSERTION_FAILED && c->attempts < MAXATTEMPTS) {
			/* Read it, to say what the anchor is now. */
			to_check(c, le, 0);
			return 0;
		}
		return finish(e, c, le, err);
	case ST_CHECK:
		if (c->readerr) {
			json_decref(le);
			le = c->readerr;
			c->readerr = NULL;
			rc = LDAP_OTHER;
		}
		if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
			json_decref(c->lasterr);
			c->lasterr = NULL;
			return finish(e, c, le, err);
		}
		json_decref(le);
		return after_check(e, c, err);
	}
	json_decref(le);
	return 0;
}

/* --------------------------------------------------------------- phases */

static int
stop(struct lexp *e, struct sync_err *err)
{
	if (!e->abort) {
		e->abort = 1;
		e->abort_err = *err;
	}
	return -1;
}


static int
ready(struct lexp *e, struct lchange *c, int sub, double t, int force)
{
	const char *k;
	json_t *a, *v;
	size_t i;

	if (c->state != 0 || c->phase != e->phase || c->sub != sub ||
	    c->not_before > t)
		return 0;
	if (force)
		return 1;
	/* A group waits for the new members of the plan it names. */
	json_object_foreach(c->attrs, k, a)
		json_array_foreach(json_object_get(a, "add_anchors"), i, v) {
			json_t *ix = json_object_get(e->adds,
			    json_string_value(v));
			struct lchange *t2;

			if (ix == NULL)
				continue;
			t2 = &e->g[json_integer_value(ix)];
			if (t2 != c && t2->phase && t2->state != 2 &&
			    !t2->x->done)
				return 0;
		}
	return 1;
}

/*
 * Waits for the next message of the server and hands it to its change.
 * A connection lost, or silent for the connector's timeout, leaves the
 * outcomes in flight unknown: they are settled by reading (lost).
 */
static int
wait_one(struct lexp *e, struct sync_err *err)
{
	struct timeval tv = { e->lc->timeout, 0 };
	LDAPMessage *m = NULL;
	struct lchange *c = NULL;
	size_t i, slot = 0;
	int type, id, rc;

	type = ldap_result(e->l.ld, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &m);
	if (type <= 0) {
		ldap_msgfree(m);
		lost(e);
		e->retries++;
		return 0;
	}
	id = ldap_msgid(m);
	for (i = 0; i < e->window; i++)
		if (e->fly[i] && e->fly[i]->msgid == id) {
			c = e->fly[i];
			slot = i;
			break;
		}
	if (c == NULL) {
		/* A notice of disconnection (message id 0), or a stray. */
		if (id == 0) {
			lost(e);
			e->retries++;
		}
		ldap_msgfree(m);
		return 0;
	}
	rc = handle(e, c, m, err);
	ldap_msgfree(m);
	if (c->state != 1)
		e->fly[slot] = NULL;
	if (rc == -1)
		return stop(e, err);
	return 0;
}

/* Checks the lease before a window of writes; -1 (and a stop) if lost. */
static int
lease_window(struct lexp *e)
{
	struct sync_err lerr;
	int lease;

	if (e->since_lease != 0 && e->since_lease < e->window)
		return 0;
	lease = xplan_lease(e->p, &lerr);
	if (lease == 1)
		sync_errf(&lerr, "the lease was lost: this server is no longer "
		    "the active one; stopped before the next batch");
	if (lease != 0)
		return stop(e, &lerr);
	e->since_lease = 0;
	e->batches++;
	progress(e, 0);
	return 0;
}

/*
 * Sends what is ready of idx[lo..n) until the window is full.  Returns
 * -1 on a stop.
 */
static int
fill(struct lexp *e, size_t *idx, size_t *lo, size_t n, int sub, int force)
{
	struct sync_err lerr;
	double t = sync_mono_now();
	size_t i;
	int fin, rc;

	while (*lo < n && e->g[idx[*lo]].state == 2)
		(*lo)++;
	for (i = *lo; i < n && !e->abort && e->inflight < e->window; i++) {
		struct lchange *c = &e->g[idx[i]];

		if (!ready(e, c, sub, t, force))
			continue;
		if (c->losses > 2 * MAXATTEMPTS) {
			struct sync_buf b = { 0 };

			sync_buf_addf(&b, "%s: the connection was lost %d times "
			    "while this change was in flight", e->c->name,
			    c->losses);
			rc = finish(e, c, lx_merror(b.p ? b.p : "out of memory"),
			    &lerr);
			sync_buf_release(&b);
			if (rc == -1)
				return stop(e, &lerr);
			continue;
		}
		if (!e->connected && connect_target(e, &lerr) == -1)
			return stop(e, &lerr);
		if (is_write(c->step) && lease_window(e) == -1)
			return -1;
		rc = send_op(e, c, &fin, &lerr);
		if (fin) {
			if (rc == LDAP_OTHER)
				return stop(e, &lerr);
			continue;
		}
		if (rc == LDAP_SUCCESS) {
			if (is_write(c->step))
				e->since_lease++;
			continue;
		}
		if (rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT ||
		    rc == LDAP_CONNECT_ERROR) {
			/* Perhaps sent: settle it by reading. */
			lost(e);
			if (is_write(c->step)) {
				c->uncertain = 1;
				c->wstep = c->step;
				c->checknew = c->step == ST_RENAME;
				c->step = ST_CHECK;
			}
			c->attempts = 0;
			c->losses++;
			e->retries++;
			return 0;
		}
		if (finish(e, c, lx_error(step_name(c->step), target_dn(c), rc,
		    NULL, NULL, NULL), &lerr) == -1)
			return stop(e, &lerr);
	}
	return 0;
}

/* Runs the changes of phase e->phase to the end, or to a stop. */
static int
run_phase(struct lexp *e, struct sync_err *err)
{
	size_t i, n, lo, *idx;
	int sub, force;

	e->pdone = e->ptotal = 0;
	for (i = 0; i < e->n; i++)
		if (e->g[i].phase == e->phase && e->g[i].state != 2)
			e->ptotal++;
	if (e->ptotal == 0)
		return 0;
	if ((idx = calloc(e->ptotal, sizeof *idx)) == NULL)
		return sync_errf(err, "out of memory");
	progress(e, 0);
	for (sub = 0; sub < NSUB && !e->abort; sub++) {
		for (i = n = 0; i < e->n; i++)
			if (e->g[i].phase == e->phase && e->g[i].sub == sub &&
			    e->g[i].state != 2)
				idx[n++] = i;
		lo = 0;
		force = 0;
		for (;;) {
			double wake = 0, t = sync_mono_now();
			size_t left = 0;

			if (!e->abort && fill(e, idx, &lo, n, sub, force) == -1 &&
			    e->inflight == 0)
				break;
			if (e->inflight > 0) {
				force = 0;
				if (wait_one(e, err) == -1 && e->inflight == 0)
					break;
				continue;
			}
			if (e->abort)
				break;
			for (i = lo; i < n; i++) {
				struct lchange *c = &e->g[idx[i]];

				if (c->state == 2)
					continue;
				left++;
				if (c->not_before > t &&
				    (wake == 0 || c->not_before < wake))
					wake = c->not_before;
			}
			if (left == 0)
				break;
			if (wake > 0) {
				sync_sleep_for(wake - sync_mono_now());
				continue;
			}
			/* Groups that name each other: go on anyway. */
			force = 1;
		}
	}
	free(idx);
	if (e->abort) {
		*err = e->abort_err;
		return -1;
	}
	if (xplan_sync(e->p, err) == -1)
		return -1;
	progress(e, 1);
	return 0;
}

/* ------------------------------------------------------------- phase 0 */

/*
 * What phase 0 reads of c: the attributes the plan gives old or new
 * values of (members and other attributes given as values added and
 * removed are not compared), and the anchor.  A new array of borrowed
 * names, NULL-terminated, or NULL.
 */
static char **
read_attrs(struct lchange *c)
{
	const char *k;
	json_t *a;
	char **v;
	size_t n = 0;

	if ((v = calloc(json_object_size(c->attrs) + 2, sizeof *v)) == NULL)
		return NULL;
	if (c->kind != K_DELETE)
		json_object_foreach(c->attrs, k, a)
			if (json_object_get(a, "old") || json_object_get(a, "new"))
				v[n++] = (char *)k;
	v[n++] = (char *)c->x->anchorattr;
	return v;
}

/* 1 when the entry read (c->cur) is not this change's: another anchor. */
static int
foreign(struct lexp *e, struct lchange *c, json_t *cur)
{
	int rc;

	c->cur = cur;
	rc = !anchor_ok(e, c);
	c->cur = NULL;
	return rc;
}

/*
 * Whether c still fits the target: cur is its entry at its DN and ncur
 * at its new DN (a rename or move), NULL where there is none.  Returns
 * NULL, or why it does not (a new string, for xplan_stale).  A delete
 * whose entry is gone is in place: c->inplace.
 */
static char *
stale_why(struct lexp *e, struct lchange *c, json_t *cur, json_t *ncur)
{
	struct sync_buf b = { 0 };
	struct lx_mods mv = { 0 };
	json_t *held;
	char *why = NULL, *s;
	int dry = e->dry;

	if (c->kind == K_RENAME && cur == NULL && ncur && !foreign(e, c, ncur)) {
		/* Renamed already (by a run that lost its journal). */
		cur = ncur;
		ncur = NULL;
		c->renamed = 1;
	}
	if (cur == NULL) {
		if (c->kind == K_DELETE)
			c->inplace = 1;
		else
			why = sync_strdup("the object no longer exists");
	} else if ((held = c->kind != K_UPDATE && foreign(e, c, cur) ? cur :
	    ncur && foreign(e, c, ncur) ? ncur : NULL) != NULL) {
		c->cur = held;
		s = anchor_now(c);
		c->cur = NULL;
		if (held == ncur)
			sync_buf_addf(&b, "'%s' is held by another entry: ",
			    c->new_dn);
		sync_buf_addf(&b, "%s is %s, not the plan's anchor",
		    c->x->anchorattr, s ? s : "?");
		free(s);
		why = sync_buf_detach(&b);
	} else if (c->kind != K_DELETE) {
		/* As a settling read would compare (members left out). */
		e->dry = 1;
		build_modify(e, c, cur, &mv, &why);
		e->dry = dry;
		lx_mods_free(&mv);
	}
	c->renamed = 0;
	sync_buf_release(&b);
	return why;
}

/*
 * Phase 0: every update, rename, move and delete reads its entry (a
 * rename or move also its new DN), and if any of them no longer fits
 * the target, the whole plan is refused before anything is written, as
 * on Graph and SCIM.  A change whose read is refused fails; the others
 * go on.
 */
static int
read_phase(struct lexp *e, struct sync_err *err)
{
	struct sync_ldap_read *r = NULL;
	struct sync_buf why = { 0 };
	size_t i, k, nr = 0, nstale = 0, *of = NULL;
	int rc = -1, lost = 0, t;

	for (i = 0; i < e->n; i++)
		if (e->g[i].phase != 0 && e->g[i].state != 2 &&
		    e->g[i].kind != K_ADD)
			nr += 1 + (e->g[i].kind == K_RENAME);
	if (nr == 0)
		return 0;
	if ((r = calloc(nr, sizeof *r)) == NULL ||
	    (of = calloc(nr, sizeof *of)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	for (i = k = 0; i < e->n; i++) {
		struct lchange *c = &e->g[i];

		if (c->phase == 0 || c->state == 2 || c->kind == K_ADD)
			continue;
		of[k] = i;
		r[k].dn = c->dn;
		r[k].binary = c->binary;
		if ((r[k++].attrs = read_attrs(c)) == NULL) {
			sync_errf(err, "out of memory");
			goto out;
		}
		if (c->kind != K_RENAME)
			continue;
		of[k] = i;
		r[k].dn = c->new_dn;
		r[k].binary = c->binary;
		r[k].attrs = r[k - 1].attrs;    /* (freed with the first) */
		k++;
	}
	e->phase = 0;
	e->pdone = 0;
	e->ptotal = nr;
	progress(e, 0);
	for (;;) {
		if (!e->connected && connect_target(e, err) == -1)
			goto out;
		if ((t = sync_ldap_read_many(&e->l, r, nr, e->window, err)) == -1)
			goto out;
		if (t == 0)
			break;
		/* Lost: connect again, and read what is not read yet. */
		sync_ldap_close(&e->l);
		e->connected = 0;
		e->retries++;
		if (++lost >= MAXRECONNECT) {
			sync_errf(err, "%s: the connection was lost %d times while "
			    "reading the entries of the plan; nothing was changed",
			    e->c->name, lost);
			goto out;
		}
	}
	for (k = 0; k < nr; k++) {
		struct lchange *c = &e->g[of[k]];
		struct sync_ldap_read *nw = c->kind == K_RENAME ? &r[k + 1] : NULL;
		struct sync_ldap_read *bad = r[k].rc ? &r[k] : nw && nw->rc ? nw :
		    NULL;
		char *w;

		if (bad) {
			c->error = lx_error("read", bad->dn, bad->rc, bad->diag,
			    bad->matched, NULL);
			c->failed = 1;
			c->state = 2;
		} else if ((w = stale_why(e, c, r[k].entry, nw ? nw->entry :
		    NULL)) != NULL) {
			xplan_stale(c->x, w, &nstale, &why);
			free(w);
		} else if (c->inplace)
			c->state = 2;
		k += nw != NULL;
	}
	if (nstale) {
		xplan_stale_refuse(e->p, nstale, &why, err);
		goto out;
	}
	e->pdone = nr;
	progress(e, 1);
	rc = 0;
out:
	for (k = 0; r && k < nr; k++) {
		if (k == 0 || r[k].attrs != r[k - 1].attrs)
			free(r[k].attrs);
		sync_ldap_read_release(&r[k]);
	}
	free(r);
	free(of);
	sync_buf_release(&why);
	return rc;
}

/* ------------------------------------------------------------- dry run */

/*
 * -n: the writes as LDIF change records (RFC 2849), phase by phase, as
 * if the target were as the plan expects it.
 */
static int
dry_run(struct lexp *e, FILE *fp, struct sync_err *err)
{
	size_t i;
	int ph, sub;

	for (ph = 1; ph <= 3; ph++)
		for (sub = 0; sub < NSUB; sub++)
			for (i = 0; i < e->n; i++) {
				struct lchange *c = &e->g[i];
				struct lx_mods mv = { 0 };
				char *stale;

				if (c->phase != ph || c->sub != sub || c->failed)
					continue;
				lx_ldif_line(fp, "dn", c->dn, strlen(c->dn));
				switch (c->kind) {
				case K_ADD:
					fputs("changetype: add\n", fp);
					build_add(e, c, &mv);
					lx_ldif_mods(fp, &mv, 1);
					break;
				case K_DELETE:
					fputs("changetype: delete\n", fp);
					break;
				case K_RENAME:
					fputs("changetype: modrdn\n", fp);
					lx_ldif_line(fp, "newrdn", c->newrdn,
					    strlen(c->newrdn));
					fputs("deleteoldrdn: 1\n", fp);
					if (strcmp(c->x->op, "move") == 0)
						lx_ldif_line(fp, "newsuperior", c->newsup,
						    strlen(c->newsup));
					c->renamed = 1;
					build_modify(e, c, NULL, &mv, &stale);
					free(stale);
					if (mv.n == 0)
						break;
					fputc('\n', fp);
					lx_ldif_line(fp, "dn", c->new_dn,
					    strlen(c->new_dn));
					/* FALLTHROUGH */
				case K_UPDATE:
					if (c->kind == K_UPDATE) {
						build_modify(e, c, NULL, &mv, &stale);
						free(stale);
					}
					fputs("changetype: modify\n", fp);
					lx_ldif_mods(fp, &mv, 0);
					break;
				}
				fputc('\n', fp);
				lx_mods_free(&mv);
			}
	if (ferror(fp))
		return sync_errno(err, "cannot write the dry run");
	return 0;
}

/* ----------------------------------------------------------- the writer */

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Sets up c for change x; a change that cannot be applied fails here. */
static void
prepare(struct lexp *e, struct lchange *c, struct xchange *x, size_t i)
{
	const char *op = x->op;
	char *rdn, *parent;

	c->x = x;
	c->attrs = json_object_get(x->c, "attrs");
	if (c->attrs == NULL)
		c->attrs = e->noattrs;
	c->binary = json_object_get(x->c, "binary");
	c->dn = str(x->c, "dn") ? str(x->c, "dn") : x->id;
	c->new_dn = str(x->c, "new_dn");
	if (strcmp(op, "add") == 0) {
		c->kind = K_ADD;
		c->phase = 1;
		c->sub = 1 + (strcmp(x->type, "group") == 0);
		c->step = ST_ADD;
		if (x->anchor && json_object_get(e->adds, x->anchor) == NULL)
			json_object_set_new(e->adds, x->anchor,
			    json_integer((json_int_t)i));
	} else if (strcmp(op, "update") == 0) {
		c->kind = K_UPDATE;
		c->phase = 2;
		c->step = ST_MODIFY;
	} else if (strcmp(op, "rename") == 0 || strcmp(op, "move") == 0) {
		c->kind = K_RENAME;
		c->phase = 1;
		c->sub = 0;
		c->step = ST_RENAME;
	} else if (strcmp(op, "delete") == 0) {
		c->kind = K_DELETE;
		c->phase = 3;
		c->step = ST_DELETE;
	} else {
		/* conflict, error: reported, never applied. */
		e->p->st->notapplied++;
		return;
	}
	if (x->done) {
		/* Done by an earlier run: its new DN still names it. */
		if (c->kind == K_RENAME && c->dn && c->new_dn)
			moved(e, c);
		c->phase = 0;
		return;
	}
	if (x->anchorattr == NULL)
		c->error = lx_merror("the plan's flow is not in the configuration");
	else if (c->dn == NULL)
		c->error = lx_merror("the change has no DN (dn)");
	else if (c->kind == K_RENAME) {
		if (c->new_dn == NULL)
			c->error = lx_merror("a rename or move without new_dn");
		else if (lx_split_dn(c->new_dn, &c->newrdn, &c->newsup,
		    &c->rdnnew) == -1 || lx_split_dn(c->dn, &rdn, &parent,
		    &c->rdnold) == -1)
			c->error = lx_merror("the DN or new_dn is not a DN");
		else {
			free(rdn);
			free(parent);
			if (c->newsup == NULL && strcmp(op, "move") == 0)
				c->error = lx_merror("a move to no parent");
		}
	}
	if (c->error) {
		c->failed = 1;
		c->state = 2;
	}
}

int
sync_ldap_export(struct xplan *p, struct sync_err *err)
{
	struct lexp e;
	struct timespec zero = { 0, 0 };
	sigset_t pipe, old;
	size_t i;
	int rc = -1;

	/*
	 * A write to a connection the server (or the network) dropped
	 * raises SIGPIPE, which would end the process: blocked for this
	 * thread while it writes, so that the write fails with EPIPE and
	 * the loss is handled; taken off before it is unblocked.  The
	 * process's handlers are left as they are.
	 */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	memset(&e, 0, sizeof e);
	e.p = p;
	e.c = p->target;
	e.lc = p->target->ldap;
	e.n = p->n;
	e.window = (size_t)(e.lc->write_window > 0 ? e.lc->write_window : 16);
	e.adds = json_object();
	e.noattrs = json_object();
	e.moved = json_object();
	e.g = calloc(e.n ? e.n : 1, sizeof *e.g);
	e.fly = calloc(e.window, sizeof *e.fly);
	if (e.adds == NULL || e.noattrs == NULL || e.moved == NULL || e.g == NULL || e.fly == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < e.n; i++)
		prepare(&e, &e.g[i], &p->ch[i], i);
	if (p->o->dry_run) {
		e.dry = 1;
		rc = dry_run(&e, p->o->dry_out, err);
		goto out;
	}
	if (read_phase(&e, err) == -1)
		goto out;
	for (i = 0; i < e.n; i++)
		if ((e.g[i].failed || e.g[i].inplace) &&
		    record(&e, &e.g[i], err) == -1)
			goto out;
	if (xplan_sync(p, err) == -1)
		goto out;
	for (e.phase = 1; e.phase <= 3; e.phase++) {
		for (i = 0; i < e.n && e.g[i].phase != e.phase; i++)
			;
		if (i == e.n)
			continue;
		if (!e.connected && connect_target(&e, err) == -1)
			goto out;
		if (run_phase(&e, err) == -1) {
			if (e.abort)
				*err = e.abort_err;
			goto out;
		}
	}
	rc = 0;
	/* After a stop, what was not reached is left for a re-run. */
out:
	if (e.connected)
		sync_ldap_close(&e.l);
	for (i = 0; e.g && i < e.n; i++) {
		struct lchange *c = &e.g[i];

		free(c->newrdn);
		free(c->newsup);
		json_decref(c->rdnold);
		json_decref(c->rdnnew);
		json_decref(c->cur);
		json_decref(c->readerr);
		json_decref(c->lasterr);
		json_decref(c->deferr);
		json_decref(c->error);
	}
	free(e.g);
	free(e.fly);
	json_decref(e.adds);
	json_decref(e.noattrs);
	json_decref(e.moved);
	p->st->batches = e.batches;
	p->st->writes = e.writes;
	p->st->retries = e.retries;
	while (sigtimedwait(&pipe, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}
