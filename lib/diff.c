/*
 * diff.c: the rules engine.  Given snapshots of the sources and of the
 * target and the flows, computes the change set (sync-changeset(5)).
 *
 * The work runs in phases:
 *   load    every snapshot file in its own thread (snapread.c);
 *   scope   per source object, in parallel: which flow takes it, whether
 *           it is in scope, its anchor;
 *   join    sequentially, with hash tables: hard match on the anchor, soft
 *           matches where configured, claims by two sources, orphans;
 *   flows   per object, in parallel: attribute flows, references, the
 *           change line;
 *   sort    the change lines by object type and anchor.
 * Parsed expressions are immutable and shared by the threads; every
 * thread has its own scratch space and output.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "diff.h"

/* ------------------------------------------------------------ hash maps */

/*
 * A multi-map from byte strings to uint32 values: entries with the same
 * key are chained.  Keys are borrowed.
 */
struct mment {
	const char *k;
	uint32_t klen, val, next;       /* next: entry index + 1 */
};

struct mmap {
	struct mment *e;
	size_t n, cap;
	uint64_t *slot;                 /* hash << 32 | head entry index + 1 */
	size_t nslot;
	int icase;
	char *arena;                    /* keys it owns (base64), or NULL */
};

/* The bytes of w with ASCII upper-case letters in lower case. */
static uint64_t
lower8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull;
	uint64_t b7 = w & 0x7f7f7f7f7f7f7f7full;
	uint64_t ge_a = b7 + ones * (0x80 - 'A');
	uint64_t gt_z = b7 + ones * (0x7f - 'Z');

	return w | ((ge_a & ~gt_z & ~w & ones * 0x80) >> 2);
}

/*
 * Eight bytes at a time: a million keys are hashed once each when an
 * index is built and once each when it is probed, and a byte at a time
 * was a tenth of the diff's CPU time.  The tail is read by bytes so that
 * no read goes past the key.
 */
static uint64_t
hashb(const char *p, size_t n, int icase)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0x243f6a8885a308d3ull ^ n, w;
	size_t i;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		if (icase)
			w = lower8(w);
		h = (h ^ w) * k;
		h ^= h >> 32;
	}
	w = 0;
	for (i = 0; i < n; i++)
		w |= (uint64_t)(unsigned char)p[i] << (8 * i);
	if (icase)
		w = lower8(w);
	h = (h ^ w) * k;
	h ^= h >> 29;
	h *= k;
	return h ^ (h >> 32);
}

static int
keyeq(const struct mmap *m, const struct mment *e, const char *k, size_t n)
{
	return e->klen == n && (m->icase ? strncasecmp(e->k, k, n) == 0 :
	    memcmp(e->k, k, n) == 0);
}

static void
mm_free(struct mmap *m)
{
	free(m->e);
	free(m->slot);
	free(m->arena);
	memset(m, 0, sizeof *m);
}

static int
mm_init(struct mmap *m, size_t expect, int icase)
{
	memset(m, 0, sizeof *m);
	m->icase = icase;
	m->nslot = 64;
	while (m->nslot < expect * 2)
		m->nslot *= 2;
	m->slot = calloc(m->nslot, sizeof *m->slot);
	/* entries sized up front: growing by doubling copied them */
	m->cap = expect > 0 ? expect : 1;
	m->e = malloc(m->cap * sizeof *m->e);
	if (m->slot == NULL || m->e == NULL) {
		mm_free(m);
		return -1;
	}
	return 0;
}

/* The first entry for key, or NULL; follow ->next for the others. */
/*
 * A slot keeps the upper half of the key's hash next to the entry index,
 * so that a probe reads the key (a cache miss into the snapshot) only
 * when the hashes agree.
 */
#define SLOT_IDX(s) ((uint32_t)(s))
#define SLOT_TAG(h) ((h) >> 32)

/* mm_get with the key's hash h = hashb(k, n, m->icase) known. */
static const struct mment *
mm_get_h(const struct mmap *m, const char *k, size_t n, uint64_t h)
{
	size_t i = h & (m->nslot - 1);

	for (; m->slot[i]; i = (i + 1) & (m->nslot - 1))
		if ((m->slot[i] >> 32) == SLOT_TAG(h) &&
		    keyeq(m, &m->e[SLOT_IDX(m->slot[i]) - 1], k, n))
			return &m->e[SLOT_IDX(m->slot[i]) - 1];
	return NULL;
}

static const struct mment *
mm_get(const struct mmap *m, const char *k, size_t n)
{
	return mm_get_h(m, k, n, hashb(k, n, m->icase));
}

/*
 * Prefetches for a look-up of hash h, in steps some look-ups apart:
 * step 0 the slot, step 1 the entry the slot names, step 2 its key.
 */
static void
mm_prefetch(const struct mmap *m, uint64_t h, int step)
{
	uint64_t sl;
	const struct mment *e;

	if (step == 0) {
		__builtin_prefetch(&m->slot[h & (m->nslot - 1)]);
		return;
	}
	sl = m->slot[h & (m->nslot - 1)];
	if (sl == 0 || (sl >> 32) != SLOT_TAG(h))
		return;
	e = &m->e[SLOT_IDX(sl) - 1];
	if (step == 1)
		__builtin_prefetch(e);
	else
		__builtin_prefetch(e->k);
}

/* mm_add with the key's hash h = hashb(k, n, m->icase) known. */
static int
mm_add_h(struct mmap *m, const char *k, size_t n, uint32_t val, uint64_t h)
{
	uint64_t hh;
	size_t i;

	if ((m->n + 1) * 2 > m->nslot) {
		size_t ns = m->nslot * 2, j;
		uint64_t *s = calloc(ns, sizeof *s);

		if (s == NULL)
			return -1;
		for (j = 0; j < m->nslot; j++) {
			size_t p;

			if (!m->slot[j])
				continue;
			hh = hashb(m->e[SLOT_IDX(m->slot[j]) - 1].k,
			    m->e[SLOT_IDX(m->slot[j]) - 1].klen, m->icase);
			p = hh & (ns - 1);
			while (s[p])
				p = (p + 1) & (ns - 1);
			s[p] = m->slot[j];
		}
		free(m->slot);
		m->slot = s;
		m->nslot = ns;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 1024;
		struct mment *ne = realloc(m->e, cap * sizeof *ne);

		if (ne == NULL)
			return -1;
		m->e = ne;
		m->cap = cap;
	}
	m->e[m->n].k = k;
	m->e[m->n].klen = (uint32_t)n;
	m->e[m->n].val = val;
	m->e[m->n].next = 0;
	i = h & (m->nslot - 1);
	for (; m->slot[i]; i = (i + 1) & (m->nslot - 1)) {
		struct mment *e = &m->e[SLOT_IDX(m->slot[i]) - 1];

		if ((m->slot[i] >> 32) == SLOT_TAG(h) && keyeq(m, e, k, n)) {
			/* keep the chain in insertion order: append */
			while (e->next)
				e = &m->e[e->next - 1];
			e->next = (uint32_t)m->n + 1;
			m->n++;
			return 0;
		}
	}
	m->slot[i] = SLOT_TAG(h) << 32 | ((uint64_t)m->n + 1);
	m->n++;
	return 0;
}

static int
mm_add(struct mmap *m, const char *k, size_t n, uint32_t val)
{
	return mm_add_h(m, k, n, val, hashb(k, n, m->icase));
}

/*
 * Building an index of a million keys is a cache miss per insertion
 * (the slot): a batch hashes each key and fetches its slot some
 * insertions before it is made, in order, so that chains keep the
 * insertion order.
 */
#define BATCH 8

struct mmbatch {
	struct mmap *m;
	struct { const char *k; uint32_t n, val; uint64_t h; } w[BATCH];
	size_t head, n;
};

static int
mmb_add(struct mmbatch *b, const char *k, size_t n, uint32_t val)
{
	size_t i;

	if (b->n == BATCH) {
		i = b->head;
		if (mm_add_h(b->m, b->w[i].k, b->w[i].n, b->w[i].val,
		    b->w[i].h) == -1)
			return -1;
		b->head = (b->head + 1) % BATCH;
		b->n--;
	}
	i = (b->head + b->n) % BATCH;
	b->w[i].k = k;
	b->w[i].n = (uint32_t)n;
	b->w[i].val = val;
	b->w[i].h = hashb(k, n, b->m->icase);
	/* the slot table may still grow: then this fetch is wasted */
	__builtin_prefetch(&b->m->slot[b->w[i].h & (b->m->nslot - 1)]);
	b->n++;
	return 0;
}

static int
mmb_flush(struct mmbatch *b)
{
	for (; b->n > 0; b->n--, b->head = (b->head + 1) % BATCH)
		if (mm_add_h(b->m, b->w[b->head].k, b->w[b->head].n,
		    b->w[b->head].val, b->w[b->head].h) == -1)
			return -1;
	return 0;
}

/* -------------------------------------------------------------- context */

/* ST_NOMATCH: in scope of a join flow, which found no target object */
enum state { ST_NONE, ST_OUT, ST_JOIN, ST_ADD, ST_CONFLICT, ST_ERROR,
    ST_NOMATCH };
#define JOIN_NONE (-2)

struct item {
	uint32_t snap, obj;
	int32_t flow;           /* -1: no flow takes this type */
	uint8_t state, inscope, acted;
	int16_t join;           /* -1: hard match; else the soft rule;
	                         * JOIN_NONE: an add that became a conflict */
	uint32_t tgt;           /* target object + 1, 0 for none */
	uint32_t hard;          /* phase 1: first hard match + 1, or 0 */
	uint8_t hardmany;       /* phase 1: the anchor matched several */
	/* flows pass 1: the thread + 1 and record + 1 that hold the planned
	 * name of an object to be created (in padding: costs no memory) */
	uint8_t recout;
	uint32_t rec;
	const char *anchor;     /* borrowed from the snapshot, or anchorbuf */
	char *anchorbuf;
	char *msg;              /* conflict or error message */
	uint32_t *cands;        /* conflict candidates (target objects) */
	uint32_t ncands;
};

/* Per-flow data resolved against the snapshots. */
struct fstate {
	struct mmap *hard;      /* target anchor value -> target objects */
	int own_hard;
	struct mmap *soft;      /* per join rule, built when needed */
	long tanchor;           /* anchor attribute's index in target names */
	long *tattr;            /* per flow attribute: index in target names */
	long **sattr;           /* [source snap][flow attribute] attr_ref */
	int active;             /* targets the run's target connector */
	int has_refs;           /* has reference flows */
	/* an attribute flow writes the anchor attribute: when adding, when
	 * updating (then the anchor is not stamped apart) */
	int anchor_add, anchor_upd;
	/* per flow attribute: a U_* when its values must be unique in a
	 * Graph target (predicted conflicts), else -1; the anchor's too */
	signed char *uniq;
	signed char anchor_uniq;
	long upn_ai, name_ai;   /* the attributes that name an object, or -1 */
	int mailnick_ai;        /* mailNickname, checked for Graph, or -1 */
	int joinonly;           /* link join, no attributes, no dn */
};

/*
 * Values that Microsoft Graph keeps unique across a tenant, checked at
 * plan time so that export does not fail on them: the userPrincipalName,
 * the addresses (mail and proxyAddresses share one space: smtp:a@x in one
 * object's proxyAddresses takes a@x as another's mail), a user's
 * mailNickname, and onPremisesImmutableId.  Each kind is a name space.
 */
enum { U_UPN, U_MAIL, U_PROXY, U_NICK, U_IMMUTABLE, NUNIQ };
static const char *const uniq_names[NUNIQ] = { "userPrincipalName", "mail",
    "proxyAddresses", "mailNickname", "onPremisesImmutableId" };
static const int uniq_ns[NUNIQ] = { 0, 1, 1, 2, 3 };
#define NUNIQNS 4
#define TOVER_DEL 0x80          /* tover: the target object is deleted */

/* A value an add or update gives to an attribute of uniq_names. */
struct claim {
	uint32_t item;          /* the item */
	uint32_t owner;         /* target object, or nobjs + item when added */
	size_t off;             /* the value in tout.ckeys */
	uint32_t len;
	uint8_t u;              /* U_* */
};

struct rec {
	const char *anchor;
	uint32_t anchorlen;
	uint8_t type;
	const char *line;
	size_t len;
	const char *name;       /* the object's name, for the text view */
	size_t namelen;
};

enum op { OP_ADD, OP_UPDATE, OP_DELETE, OP_MOVE, OP_RENAME, OP_CONFLICT,
    OP_ERROR, NOPS };
static const char *const opnames[NOPS] = { "add", "update", "delete", "move",
    "rename", "conflict", "error" };

struct tout {
	struct sync_buf buf;
	struct { size_t aoff, alen, loff, llen, noff, nlen; uint32_t item;
	    uint8_t type, op, dropped; } *recs;
	size_t nrecs, cap;
	size_t counts[NOPS];
	size_t disables;
	int failed;
	struct sync_err err;
	struct claim *claims;   /* pass 1's values to keep unique */
	size_t nclaims, capclaims;
	struct sync_buf ckeys;  /* their bytes */
	struct sync_strv warnings;      /* in the order of the items */
};

struct sync_changeset {
	struct sync_buf header;
	struct tout *outs;      /* per thread; recs point into their bufs */
	size_t nouts;
	struct rec *recs;
	size_t nrecs;
	size_t counts[NOPS];
	long threshold_count, threshold_percent;
	size_t target_objects;
	int exceeded;
	struct sync_strv warnings;      /* for standard error */
};

struct dctx {
	const struct rules *r;
	struct snap **src;
	size_t nsrc;
	struct snap *tgt;
	int tgt_dns;            /* target references are DNs */
	struct fstate *fs;
	struct item *items;
	size_t nitems;
	size_t *snapbase;       /* first item of each source snapshot */
	struct mmap *dnidx;     /* per source snapshot: canonical DN -> obj */
	char **dnarena;         /* per source snapshot: the canonical DNs */
	uint32_t **dncanon;     /* per source object: its DN there + 1, or 0 */
	uint8_t *tclaim;        /* per target object: in-scope claims */
	uint8_t *tjclaim;       /* the same by flows that only join */
	uint8_t *tseen;         /* per target object: matched by a source */
	uint32_t *orphans;      /* target objects owned by no source */
	size_t norphans;
	struct mmap addanchors; /* anchors of objects to be created */
	int nthreads;
	int graph;              /* the target is Microsoft Graph */
	struct tout *outs;      /* the threads' outputs (pass 1's records) */
	long t_upn, t_name;     /* target names' indexes, or -1 */
	long tuniq[NUNIQ];      /* target names of uniq_names, or -1 */
	long *s_upn, *s_name;   /* per source snapshot, the same */
	struct mmap trefs;      /* target id (canonical DN) -> object */
	char *trefarena;        /* the target's canonical DNs */
	uint8_t *tover;         /* per target object: U_* bits the plan
	                         * changes, TOVER_DEL */
	struct sync_strv warnings;
};

/* ------------------------------------------------------------ evaluation */

struct ectx {
	const struct snap *s;
	const struct dobj *o;
	struct sync_bytes *bv;
	size_t bvcap;
	uint32_t first;         /* first value index of o */
	struct sync_bytes pseudo;
	struct sync_bytes param;        /* the value of a %parameter% */
	/* the attribute names looked up last, resolved against snapshot s:
	 * an index in s->names, -1 absent, or a PSEUDO_* */
	struct { const struct snap *s; long idx; uint8_t len; char name[31]; }
	    names[8];
	unsigned nextname;
};

enum { PSEUDO_ANCHOR = -2, PSEUDO_DN = -3, PSEUDO_ID = -4 };

static int
ectx_set(struct ectx *c, const struct snap *s, const struct dobj *o)
{
	uint32_t first, last, i;

	c->s = s;
	c->o = o;
	if (o->na == 0) {
		c->first = 0;
		return 0;
	}
	first = s->attrs[o->a].v;
	last = s->attrs[o->a + o->na].v;
	if (last - first > c->bvcap) {
		struct sync_bytes *nb = realloc(c->bv, (last - first) * sizeof *nb);

		if (nb == NULL)
			return -1;
		c->bv = nb;
		c->bvcap = last - first;
	}
	for (i = first; i < last; i++) {
		c->bv[i - first].p = s->buf + s->vals[i].off;
		c->bv[i - first].len = s->vals[i].len;
	}
	c->first = first;
	return 0;
}

static long attr_ref(const struct snap *s, const char *name);

/* The value of pseudo attribute idx (a PSEUDO_*) of o: 1, or 0 if none. */
static int
pseudo_value(const struct snap *s, const struct dobj *o, long idx,
    struct sync_bytes *out)
{
	uint32_t off = idx == PSEUDO_ANCHOR ? o->anchor : idx == PSEUDO_DN ?
	    o->dn : o->id;

	if (off == 0)
		return 0;
	out->p = s->buf + off;
	out->len = strlen(out->p);
	return 1;
}

/*
 * attr_ref(c->s, name), remembered: every object of a flow looks up the
 * same few names, so the answers are kept rather than found by comparing
 * strings each time.  They are kept by the name's text, not its address:
 * a name may be computed (ImportedValue).
 */
static long
resolve_name(struct ectx *c, const char *name)
{
	size_t len = strlen(name);
	unsigned i;
	long idx;

	for (i = 0; i < sizeof c->names / sizeof *c->names; i++)
		if (c->names[i].s == c->s && c->names[i].len == len &&
		    memcmp(c->names[i].name, name, len) == 0)
			return c->names[i].idx;
	idx = attr_ref(c->s, name);
	if (len < sizeof c->names[0].name) {
		i = c->nextname++ % (sizeof c->names / sizeof *c->names);
		c->names[i].s = c->s;
		c->names[i].idx = idx;
		c->names[i].len = (uint8_t)len;
		memcpy(c->names[i].name, name, len);
	}
	return idx;
}

static const struct dattr *attr_idx(const struct snap *s,
    const struct dobj *o, long idx);

static int
lookup(void *ctx, const char *name, const struct sync_bytes **vals,
    size_t *n, int *binary, struct sync_err *err)
{
	struct ectx *c = ctx;
	const struct dattr *a;
	long idx = resolve_name(c, name);

	if (idx <= PSEUDO_ANCHOR) {
		if (!pseudo_value(c->s, c->o, idx, &c->pseudo))
			return 0;
		*vals = &c->pseudo;
		*n = 1;
		*binary = 0;
		return 1;
	}
	if ((a = attr_idx(c->s, c->o, idx)) == NULL)
		return 0;
	*vals = c->bv + (a->v - c->first);
	*n = dattr_nv(a);
	*binary = (int)a->binary;
	return 1;
}

/* %name%: the parameters of the connector of the object's snapshot. */
static int
param(void *ctx, const char *name, const struct sync_bytes **vals,
    size_t *n, int *binary, struct sync_err *err)
{
	struct ectx *c = ctx;
	const char *v;

	(void)err;
	if (c->s->conn == NULL ||
	    (v = sync_connector_param(c->s->conn, name)) == NULL)
		return 0;
	c->param.p = v;
	c->param.len = strlen(v);
	*vals = &c->param;
	*n = 1;
	*binary = 0;
	return 1;
}

static int
eval(struct ectx *c, const struct sync_expr *e, struct sync_expr_result *res,
    struct sync_err *err)
{
	struct sync_expr_env env = { lookup, param, c };

	return sync_expr_eval(e, &env, res, err);
}

/* A boolean result: one value, true or false. */
static int
eval_bool(struct ectx *c, const struct sync_expr *e, int *out,
    struct sync_err *err)
{
	struct sync_expr_result res;

	if (eval(c, e, &res, err) == -1)
		return -1;
	if (res.status == SYNC_EXPR_VALUES && res.n == 1 &&
	    strcasecmp(res.v[0].p, "true") == 0)
		*out = 1;
	else if (res.status == SYNC_EXPR_VALUES && res.n == 1 &&
	    strcasecmp(res.v[0].p, "false") == 0)
		*out = 0;
	else if (res.status == SYNC_EXPR_NULL)
		*out = 0;
	else {
		sync_expr_result_release(&res);
		return sync_errf(err, "the scope filter did not give True or "
		    "False");
	}
	sync_expr_result_release(&res);
	return 0;
}

/* ----------------------------------------------------------------- scope */

/* 1 when the objects of s have DNs, and references to them are DNs. */
static int
snap_dns(const struct snap *s)
{
	return s->conntype && (strcmp(s->conntype, "ldap") == 0 ||
	    strcmp(s->conntype, "ad") == 0);
}


static long
name_index(const struct snap *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->names.n; i++)
		if (strcasecmp(s->names.v[i], name) == 0)
			return (long)i;
	return -1;
}

/*
 * What [name] in an expression or a direct flow reads from an object of
 * s: a PSEUDO_* for [anchor], [dn] and [id], which name the snapshot's
 * fields and come before real attributes of the same name; else the
 * index in s->names, or -1 when no object has it.
 */
static long
attr_ref(const struct snap *s, const char *name)
{
	if (strcasecmp(name, "anchor") == 0)
		return PSEUDO_ANCHOR;
	if (strcasecmp(name, "dn") == 0)
		return PSEUDO_DN;
	if (strcasecmp(name, "id") == 0)
		return PSEUDO_ID;
	return name_index(s, name);
}

static const struct dattr *
attr_idx(const struct snap *s, const struct dobj *o, long idx)
{
	uint32_t i;

	if (idx < 0)
		return NULL;
	for (i = o->a; i < o->a + o->na; i++)
		if (s->attrs[i].name == (uint32_t)idx)
			return &s->attrs[i];
	return NULL;
}

/* 1 in scope, 0 not, -1 error (in err). */
static int
in_scope(struct dctx *d, const struct flow *f, size_t si, const struct dobj *o,
    struct ectx *ec, struct sync_err *err)
{
	const struct snap *s = d->src[si];
	size_t i;
	int inc = 0;

	if (f->inc_ous.n || f->exc_ous.n || f->member_of) {
		char *dn;

		if (o->dn == 0)
			return 0;
		/* canonical already (prepare_source), else made here */
		if (d->dncanon[si] != NULL)
			dn = d->dnarena[si] + d->dncanon[si][o - s->objs] - 1;
		else if ((dn = dn_canon(s->buf + o->dn)) == NULL)
			return sync_errf(err, "out of memory");
		inc = f->inc_ous.n == 0;
		for (i = 0; i < f->inc_ous.n && !inc; i++)
			inc = dn_canon_under(dn, f->inc_ous.v[i]);
		for (i = 0; i < f->exc_ous.n && inc; i++)
			inc = !dn_canon_under(dn, f->exc_ous.v[i]);
		if (inc && f->member_of) {
			const struct mment *g;
			const struct dattr *m;
			uint32_t v;

			inc = 0;
			g = mm_get(&d->dnidx[si], f->member_of,
			    strlen(f->member_of));
			m = g ? snap_attr(s, &s->objs[g->val], "member") : NULL;
			for (v = m ? m->v : 0; m && v < m->v + dattr_nv(m) && !inc;
			    v++) {
				char *c = dn_canon_n(s->buf + s->vals[v].off,
				    s->vals[v].len);

				if (c == NULL) {
					if (d->dncanon[si] == NULL)
						free(dn);
					return sync_errf(err, "out of memory");
				}
				inc = strcmp(c, dn) == 0;
				free(c);
			}
		}
		if (d->dncanon[si] == NULL)
			free(dn);
		if (!inc)
			return 0;
	}
	if (f->filter) {
		if (eval_bool(ec, f->filter, &inc, err) == -1)
			return -1;
		return inc;
	}
	return 1;
}

static int
flow_takes(const struct flow *f, const struct snap *s, const struct dobj *o)
{
	size_t i;

	for (i = 0; i < f->nfrom; i++)
		if (f->from[i].type == o->type &&
		    strcmp(f->from[i].conn, s->connector) == 0)
			return 1;
	return 0;
}

struct job {
	struct dctx *d;
	size_t lo, hi;
	size_t olo, ohi;        /* orphans, phase 3 */
	int pass;               /* phase 3: 1 or 2 */
	struct tout *out;
	struct ectx ec;
};

/* Marks the item failed with "prefix: msg" (prefix may be NULL). */
static void
item_fail(struct item *it, const char *prefix, const char *msg)
{
	size_t n = (prefix ? strlen(prefix) + 2 : 0) + strlen(msg) + 1;

	it->state = ST_ERROR;
	free(it->msg);
	if ((it->msg = malloc(n)) != NULL)
		snprintf(it->msg, n, "%s%s%s", prefix ? prefix : "",
		    prefix ? ": " : "", msg);
}

/*
 * The hard match's look-ups of items lo..hi, done in the parallel scope
 * phase: each is a few cache misses (hash slot, entry, the target's
 * value), which the sequential join would pay alone.  The hashes are
 * computed 24 items ahead and the slot, entry and key fetched in steps
 * 8 items apart, so that the misses of several look-ups overlap (at 8
 * items ahead and 2 apart, the keys still missed: the steps are only
 * hashing, far shorter than a miss).
 */
#define HARD_AHEAD 24
#define HARD_ENTRY 8            /* fetch the entry 8 items after the slot */
#define HARD_KEY 16             /* and the key 16 items after */

static void
hard_lookups(struct dctx *d, size_t lo, size_t hi)
{
	uint64_t hs[HARD_AHEAD * 2];
	uint32_t ls[HARD_AHEAD * 2];
	size_t i, n = hi - lo;

	/* at step i: item lo + i's hash and slot, lo + i - HARD_ENTRY's
	 * entry, lo + i - HARD_KEY's key, lo + i - HARD_AHEAD's look-up */
	for (i = 0; i < n + HARD_AHEAD; i++) {
		const struct item *pi;
		struct item *it;
		const struct mment *e;
		size_t q;

		if (i < n) {
			q = (lo + i) % (HARD_AHEAD * 2);
			pi = &d->items[lo + i];
			if (pi->anchor != NULL && pi->state != ST_ERROR) {
				ls[q] = (uint32_t)strlen(pi->anchor);
				hs[q] = hashb(pi->anchor, ls[q],
				    d->fs[pi->flow].hard->icase);
				mm_prefetch(d->fs[pi->flow].hard, hs[q], 0);
			}
		}
		if (i >= HARD_ENTRY && i - HARD_ENTRY < n) {
			pi = &d->items[lo + i - HARD_ENTRY];
			if (pi->anchor != NULL && pi->state != ST_ERROR)
				mm_prefetch(d->fs[pi->flow].hard, hs[(lo + i -
				    HARD_ENTRY) % (HARD_AHEAD * 2)], 1);
		}
		if (i >= HARD_KEY && i - HARD_KEY < n) {
			pi = &d->items[lo + i - HARD_KEY];
			if (pi->anchor != NULL && pi->state != ST_ERROR)
				mm_prefetch(d->fs[pi->flow].hard, hs[(lo + i -
				    HARD_KEY) % (HARD_AHEAD * 2)], 2);
		}
		if (i < HARD_AHEAD || i - HARD_AHEAD >= n)
			continue;
		it = &d->items[lo + i - HARD_AHEAD];
		if (it->anchor == NULL || it->state == ST_ERROR)
			continue;
		q = (lo + i - HARD_AHEAD) % (HARD_AHEAD * 2);
		e = mm_get_h(d->fs[it->flow].hard, it->anchor, ls[q], hs[q]);
		it->hard = e ? e->val + 1 : 0;
		it->hardmany = e && e->next;
	}
}

/* Phase 1: flow, scope and anchor of items lo..hi. */
static void *
phase_scope(void *arg)
{
	struct job *j = arg;
	struct dctx *d = j->d;
	struct sync_err err;
	size_t k, fi;

	for (k = j->lo; k < j->hi; k++) {
		struct item *it = &d->items[k];
		const struct snap *s = d->src[it->snap];
		const struct dobj *o = &s->objs[it->obj];
		const struct flow *f;
		int r;

		if (ectx_set(&j->ec, s, o) == -1) {
			item_fail(it, NULL, "out of memory");
			continue;
		}
		for (fi = 0; fi < d->r->nflows; fi++) {
			if (!d->fs[fi].active ||
			    !flow_takes(&d->r->flows[fi], s, o))
				continue;
			if (it->flow < 0)
				it->flow = (int32_t)fi;
			r = in_scope(d, &d->r->flows[fi], it->snap, o, &j->ec,
			    &err);
			if (r == -1) {
				it->flow = (int32_t)fi;
				item_fail(it, "scope", err.msg);
				break;
			}
			if (r == 1) {
				it->flow = (int32_t)fi;
				it->inscope = 1;
				break;
			}
		}
		if (it->flow < 0 || it->state == ST_ERROR)
			continue;
		it->state = it->inscope ? ST_ADD : ST_OUT;
		f = &d->r->flows[it->flow];
		if (f->anchor_src == NULL) {
			it->anchor = s->buf + o->anchor;
		} else {
			struct sync_expr_result res;

			if (eval(&j->ec, f->anchor_src, &res, &err) == -1) {
				if (it->inscope)
					item_fail(it, "anchor", err.msg);
				continue;
			}
			if (res.status == SYNC_EXPR_VALUES && res.n == 1 &&
			    res.v[0].binary && res.v[0].len > 0) {
				/* binary ([objectGUID]): its base64, the form
				 * of anchors and of binary index keys */
				it->anchorbuf = sync_base64_encode(res.v[0].p,
				    res.v[0].len);
				it->anchor = it->anchorbuf;
				if (it->anchor == NULL)
					item_fail(it, NULL, "out of memory");
			} else if (res.status == SYNC_EXPR_VALUES && res.n == 1 &&
			    !res.v[0].binary && res.v[0].len > 0) {
				it->anchorbuf = res.v[0].p;
				res.v[0].p = NULL;
				it->anchor = it->anchorbuf;
			} else if (f->link == LINK_JOIN &&
			    (res.status != SYNC_EXPR_VALUES || res.n == 0)) {
				/* a join flow's object without an anchor (a
				 * cloud-only user) can only be soft-matched */
			} else if (it->inscope)
				item_fail(it, NULL, res.status ==
				    SYNC_EXPR_VALUES && res.n > 1 ?
				    "the anchor expression gave several values" :
				    "the anchor expression gave no text value");
			sync_expr_result_release(&res);
		}
	}
	hard_lookups(d, j->lo, j->hi);
	return NULL;
}

/* ------------------------------------------------------------------ join */

/*
 * The index of the values of target attribute attr of the objects of
 * type.  A binary value (objectGUID, mS-DS-ConsistencyGuid) is keyed by
 * its standard base64, the form anchors and join values have, and an
 * index that holds one is exact, whatever icase asks: base64 is case
 * sensitive.
 */
static int
build_index(struct dctx *d, struct mmap *m, enum sync_objtype type,
    const char *attr, int icase)
{
	const struct snap *t = d->tgt;
	long idx = name_index(t, attr);
	struct mmbatch b = { 0 };
	size_t i, blen = 0, boff = 0;
	const struct dattr *a;
	uint32_t v;

	/* only LDAP directories have binary values: a Graph target of a
	 * million users is not read twice */
	for (i = 0; d->tgt_dns && idx >= 0 && i < t->nobjs; i++)
		if (t->objs[i].type == type &&
		    (a = attr_idx(t, &t->objs[i], idx)) != NULL && a->binary)
			for (v = a->v; v < a->v + dattr_nv(a); v++)
				blen += (t->vals[v].len + 2) / 3 * 4 + 1;
	if (mm_init(m, idx < 0 ? 16 : t->nobjs, blen ? 0 : icase) == -1)
		return -1;
	if (blen && (m->arena = malloc(blen)) == NULL)
		return -1;
	b.m = m;
	if (idx < 0)
		return 0;
	for (i = 0; i < t->nobjs; i++) {
		const struct dobj *o = &t->objs[i];

		/* the keys are a cache miss each, 16 objects apart: fetch
		 * them that far ahead */
		if (i + 16 < t->nobjs && (a = attr_idx(t, o + 16, idx)) !=
		    NULL && dattr_nv(a) > 0)
			__builtin_prefetch(t->buf + t->vals[a->v].off);
		if (o->type != type || (a = attr_idx(t, o, idx)) == NULL)
			continue;
		for (v = a->v; v < a->v + dattr_nv(a); v++) {
			const char *k = t->buf + t->vals[v].off;
			size_t n = t->vals[v].len;

			if (n == 0)
				continue;
			if (a->binary) {
				char *enc = sync_base64_encode(k, n);

				if (enc == NULL)
					return -1;
				n = strlen(enc);
				memcpy(m->arena + boff, enc, n + 1);
				free(enc);
				k = m->arena + boff;
				boff += n + 1;
			}
			if (mmb_add(&b, k, n, (uint32_t)i) == -1)
				return -1;
		}
	}
	return mmb_flush(&b);
}

static int
set_conflict(struct item *it, const char *msg, const uint32_t *cands,
    size_t n)
{
	it->state = ST_CONFLICT;
	free(it->msg);
	free(it->cands);
	it->cands = NULL;
	it->ncands = 0;
	if ((it->msg = sync_strdup(msg)) == NULL)
		return -1;
	if (n) {
		if ((it->cands = malloc(n * sizeof *cands)) == NULL)
			return -1;
		memcpy(it->cands, cands, n * sizeof *cands);
		it->ncands = (uint32_t)n;
	}
	return 0;
}

static int
soft_match(struct dctx *d, struct item *it, struct ectx *ec,
    struct sync_err *err)
{
	const struct flow *f = &d->r->flows[it->flow];
	struct fstate *fs = &d->fs[it->flow];
	const struct snap *s = d->src[it->snap];
	uint32_t cands[16];
	size_t j, v, nc;
	char msg[512];

	if (f->njoins == 0)
		return 0;
	if (ectx_set(ec, s, &s->objs[it->obj]) == -1)
		return sync_errf(err, "out of memory");
	for (j = 0; j < f->njoins; j++) {
		struct sync_expr_result res;
		struct sync_err e2;

		if (fs->soft[j].slot == NULL && build_index(d, &fs->soft[j],
		    f->totype, f->joins[j].target, 1) == -1)
			return sync_errf(err, "out of memory");
		if (eval(ec, f->joins[j].e, &res, &e2) == -1) {
			item_fail(it, "join rule", e2.msg);
			return 0;
		}
		nc = 0;
		for (v = 0; res.status == SYNC_EXPR_VALUES && v < res.n; v++) {
			const struct mment *e;
			const char *k = res.v[v].p;
			char *enc = NULL;

			if (res.v[v].len == 0)
				continue;
			/* binary values are keyed by their base64 */
			if (res.v[v].binary && (k = enc = sync_base64_encode(
			    res.v[v].p, res.v[v].len)) == NULL) {
				sync_expr_result_release(&res);
				return sync_errf(err, "out of memory");
			}
			for (e = mm_get(&fs->soft[j], k, enc ? strlen(enc) :
			    res.v[v].len);
			    e; e = e->next ? &fs->soft[j].e[e->next - 1] : NULL) {
				size_t c;

				for (c = 0; c < nc && cands[c] != e->val; c++)
					;
				if (c == nc && nc < sizeof cands / sizeof *cands)
					cands[nc++] = e->val;
			}
			free(enc);
		}
		sync_expr_result_release(&res);
		if (nc == 0)
			continue;
		if (nc > 1) {
			snprintf(msg, sizeof msg, "join rule '%s' matched %zu "
			    "target objects", f->joins[j].name, nc);
			it->join = (int16_t)j;
			return set_conflict(it, msg, cands, nc) == -1 ?
			    sync_errf(err, "out of memory") : 0;
		}
		if (attr_idx(d->tgt, &d->tgt->objs[cands[0]], fs->tanchor)) {
			const struct dattr *a = attr_idx(d->tgt,
			    &d->tgt->objs[cands[0]], fs->tanchor);

			snprintf(msg, sizeof msg, "join rule '%s' matched a "
			    "target object that already carries the anchor "
			    "'%.*s'", f->joins[j].name, dattr_nv(a) ?
			    (int)(d->tgt->vals[a->v].len < 200 ?
			    d->tgt->vals[a->v].len : 200) : 0, dattr_nv(a) ?
			    d->tgt->buf + d->tgt->vals[a->v].off : "");
			it->join = (int16_t)j;
			return set_conflict(it, msg, cands, 1) == -1 ?
			    sync_errf(err, "out of memory") : 0;
		}
		it->state = ST_JOIN;
		it->join = (int16_t)j;
		it->tgt = cands[0] + 1;
		return 0;
	}
	return 0;
}

/*
 * The flow that owns the target objects of type t that no source has:
 * the first active one to that type that may provision (a join flow
 * never deletes what it did not find), or -1.
 */
static long
orphan_flow(const struct dctx *d, enum sync_objtype t)
{
	size_t fi;

	for (fi = 0; fi < d->r->nflows; fi++)
		if (d->fs[fi].active && d->r->flows[fi].totype == t &&
		    d->r->flows[fi].link == LINK_PROVISION)
			return (long)fi;
	return -1;
}

/*
 * 1 when target object o is ours by flow fi: its anchor attribute holds
 * a value, which starts with the flow's anchor prefix when it has one
 * (adminDescription holds notes of people too: only "Group_..." is
 * ours).  An orphan that is not ours is never deleted.
 */
static int
owned(const struct dctx *d, long fi, const struct dobj *o)
{
	const struct snap *t = d->tgt;
	const char *pfx = d->r->flows[fi].anchor_prefix;
	const struct dattr *a = attr_idx(t, o, d->fs[fi].tanchor);
	size_t n = pfx ? strlen(pfx) : 0;
	uint32_t v;

	if (a == NULL || dattr_nv(a) == 0)
		return 0;
	if (pfx == NULL)
		return 1;
	for (v = a->v; v < a->v + dattr_nv(a); v++)
		if (!a->binary && t->vals[v].len >= n &&
		    memcmp(t->buf + t->vals[v].off, pfx, n) == 0)
			return 1;
	return 0;
}

static int
phase_join(struct dctx *d, struct ectx *ec, struct sync_err *err)
{
	size_t k, i, nc;
	uint32_t cands[16];
	char msg[256];

	for (k = 0; k < d->nitems; k++) {
		struct item *it = &d->items[k];
		const struct mment *e;

		if (it->state != ST_ADD && it->state != ST_OUT)
			continue;
		if (it->anchor == NULL) {
			/* only a join flow's object has none (phase_scope) */
			if (it->state == ST_ADD && soft_match(d, it, ec,
			    err) == -1)
				return -1;
			continue;
		}
		nc = 0;
		if (it->hard && !it->hardmany) {
			cands[nc++] = it->hard - 1;
			d->tseen[it->hard - 1] = 1;
		}
		for (e = it->hardmany ? mm_get(d->fs[it->flow].hard, it->anchor,
		    strlen(it->anchor)) : NULL; e; e = e->next ?
		    &d->fs[it->flow].hard->e[e->next - 1] : NULL) {
			if (nc < sizeof cands / sizeof *cands)
				cands[nc++] = e->val;
			d->tseen[e->val] = 1;
		}
		it->join = -1;
		if (it->state == ST_OUT) {
			if (nc == 1)
				it->tgt = cands[0] + 1;
			continue;
		}
		if (nc == 1) {
			it->state = ST_JOIN;
			it->tgt = cands[0] + 1;
		} else if (nc > 1) {
			snprintf(msg, sizeof msg, "the anchor matched %zu target "
			    "objects", nc);
			if (set_conflict(it, msg, cands, nc) == -1)
				return sync_errf(err, "out of memory");
		} else if (soft_match(d, it, ec, err) == -1)
			return -1;
	}
	/*
	 * A target object claimed by two source objects joins neither.  The
	 * flows that only join (d->fs[].joinonly) write nothing: they count
	 * among themselves, apart from the others, so that a user both
	 * joined for references and written by another flow is no conflict.
	 * A join flow's object that found no target object is left alone.
	 */
	for (k = 0; k < d->nitems; k++) {
		struct item *it = &d->items[k];
		uint8_t *cl;

		if (it->state == ST_ADD && d->r->flows[it->flow].link ==
		    LINK_JOIN)
			it->state = ST_NOMATCH;
		if (it->state != ST_JOIN)
			continue;
		cl = d->fs[it->flow].joinonly ? d->tjclaim : d->tclaim;
		if (cl[it->tgt - 1] < 255)
			cl[it->tgt - 1]++;
		d->tseen[it->tgt - 1] = 1;
	}
	for (k = 0; k < d->nitems; k++) {
		struct item *it = &d->items[k];
		uint8_t *cl;
		uint32_t t;

		if (it->state != ST_JOIN)
			continue;
		cl = d->fs[it->flow].joinonly ? d->tjclaim : d->tclaim;
		if (cl[it->tgt - 1] < 2)
			continue;
		t = it->tgt - 1;
		snprintf(msg, sizeof msg, "the target object is claimed by %u "
		    "source objects", (unsigned)cl[t]);
		if (set_conflict(it, msg, &t, 1) == -1)
			return sync_errf(err, "out of memory");
		it->tgt = 0;
	}
	/* Two objects to be created with one anchor: neither is created. */
	if (mm_init(&d->addanchors, 1024, 0) == -1)
		return sync_errf(err, "out of memory");
	for (k = 0; k < d->nitems; k++) {
		struct item *it = &d->items[k];

		if (it->state == ST_ADD && mm_add(&d->addanchors, it->anchor,
		    strlen(it->anchor), (uint32_t)k) == -1)
			return sync_errf(err, "out of memory");
	}
	for (i = 0; i < d->addanchors.n; i++) {
		const struct mment *e = &d->addanchors.e[i];
		const struct mment *h = mm_get(&d->addanchors, e->k, e->klen);

		if (h->next == 0)
			continue;
		snprintf(msg, sizeof msg, "another source object has the same "
		    "anchor");
		if (set_conflict(&d->items[e->val], msg, NULL, 0) == -1)
			return sync_errf(err, "out of memory");
	}
	/* Orphans: ours (they carry an anchor) but no source has them. */
	if ((d->orphans = malloc((d->tgt->nobjs + 1) * sizeof *d->orphans)) ==
	    NULL)
		return sync_errf(err, "out of memory");
	for (i = 0; i < d->tgt->nobjs; i++) {
		const struct dobj *o = &d->tgt->objs[i];
		long fi;

		if (d->tseen[i] || (fi = orphan_flow(d, o->type)) < 0)
			continue;
		if (!owned(d, fi, o))
			continue;
		d->orphans[d->norphans++] = (uint32_t)i;
	}
	return 0;
}

/* ----------------------------------------------------------- the changes */

/* A value the diff compares and writes. */
struct val {
	const char *p;
	size_t len;
	int bin;
	const char *key;        /* comparison key (canonical DN), or p */
	size_t keylen;
	int pending;            /* an anchor of an object to be created */
};

struct valv {
	struct val *v;
	size_t n, cap;
};

static int
valv_add(struct valv *vv, const char *p, size_t len, int bin)
{
	if (vv->n == vv->cap) {
		size_t cap = vv->cap ? vv->cap * 2 : 16;
		struct val *nv = realloc(vv->v, cap * sizeof *nv);

		if (nv == NULL)
			return -1;
		vv->v = nv;
		vv->cap = cap;
	}
	vv->v[vv->n].p = p;
	vv->v[vv->n].len = len;
	vv->v[vv->n].bin = bin;
	vv->v[vv->n].key = p;
	vv->v[vv->n].keylen = len;
	vv->v[vv->n].pending = 0;
	vv->n++;
	return 0;
}

static int
val_cmp(const void *x, const void *y)
{
	const struct val *a = x, *b = y;
	size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
	int c;

	if (a->pending != b->pending)
		return a->pending - b->pending;
	if ((c = memcmp(a->key, b->key, n)) != 0)
		return c;
	return a->keylen < b->keylen ? -1 : a->keylen > b->keylen;
}

/* Sorts and removes duplicates. */
static void
valv_norm(struct valv *vv)
{
	size_t i, o = 0;

	if (vv->n < 2)
		return;
	qsort(vv->v, vv->n, sizeof *vv->v, val_cmp);
	for (i = 0; i < vv->n; i++)
		if (o == 0 || val_cmp(&vv->v[o - 1], &vv->v[i]) != 0)
			vv->v[o++] = vv->v[i];
	vv->n = o;
}

/* Scratch of one thread for one object. */
struct scratch {
	struct valv want, have;
	struct sync_expr_result *res;
	size_t nres, capres;
	struct sync_strv strs;          /* owned strings (canonical DNs) */
	struct sync_buf attrs;          /* the "attrs" object being built */
	struct sync_strv binary;        /* attribute names with base64 */
	size_t nattrs;
	struct achange {
		const char *name;
		size_t off, len;        /* in tmp */
	} *ac;
	size_t nac, capac;
	struct sync_buf tmp;
	struct sync_strv dropped;       /* resolve_refs: names, the first */
	size_t ndropped;                /* and how many */
};

#define DROPPED_NAMED 5

static void
scratch_reset(struct scratch *sc)
{
	size_t i;

	sync_strv_release(&sc->dropped);
	sc->ndropped = 0;
	for (i = 0; i < sc->nres; i++)
		sync_expr_result_release(&sc->res[i]);
	sc->nres = 0;
	sync_strv_release(&sc->strs);
	sync_strv_release(&sc->binary);
	sc->nac = 0;
	sync_buf_reset(&sc->tmp);
	sync_buf_reset(&sc->attrs);
}

static void
scratch_free(struct scratch *sc)
{
	scratch_reset(sc);
	free(sc->res);
	free(sc->want.v);
	free(sc->have.v);
	free(sc->ac);
	sync_buf_release(&sc->tmp);
	sync_buf_release(&sc->attrs);
}

/* Appends a JSON string; values that are binary or not UTF-8 go as base64
 * and mark the attribute binary. */
static int
add_value(struct scratch *sc, struct sync_buf *b, const struct val *v,
    const char *attr)
{
	char *enc;
	int rc;

	if (!v->bin && sync_utf8_valid(v->p, v->len))
		return sync_json_addstr(b, v->p, v->len);
	if (!sync_strv_contains(&sc->binary, attr) &&
	    sync_strv_add(&sc->binary, attr) == -1)
		return -1;
	if ((enc = sync_base64_encode(v->p, v->len)) == NULL)
		return -1;
	rc = sync_json_addstr(b, enc, strlen(enc));
	free(enc);
	return rc;
}

static int
add_vals(struct scratch *sc, struct sync_buf *b, const char *key,
    const struct val *v, size_t n, const char *attr, int *first, int pending)
{
	size_t i;
	int any = 0;

	for (i = 0; i < n; i++) {
		if (v[i].pending != pending)
			continue;
		if (!any) {
			if ((!*first && sync_buf_addc(b, ',') == -1) ||
			    sync_buf_addf(b, "\"%s\":[", key) == -1)
				return -1;
			*first = 0;
		} else if (sync_buf_addc(b, ',') == -1)
			return -1;
		any = 1;
		if (add_value(sc, b, &v[i], attr) == -1)
			return -1;
	}
	if (any && sync_buf_addc(b, ']') == -1)
		return -1;
	return 0;
}

static int
ac_push(struct scratch *sc, const char *name, size_t off)
{
	if (sc->nac == sc->capac) {
		size_t cap = sc->capac ? sc->capac * 2 : 16;
		struct achange *n = realloc(sc->ac, cap * sizeof *n);

		if (n == NULL)
			return -1;
		sc->ac = n;
		sc->capac = cap;
	}
	sc->ac[sc->nac].name = name;
	sc->ac[sc->nac].off = off;
	sc->ac[sc->nac].len = sc->tmp.len - off;
	sc->nac++;
	return 0;
}

static int add_names(struct dctx *d, struct sync_buf *b, const char *key,
    const struct val *v, size_t n, int *first);

/*
 * Compares want (sorted) with have (sorted) for attribute name and, when
 * they differ, records the attribute's change.  delta: write the values
 * added and removed rather than old and new.  refs: the values are
 * references, whose objects' names are written too (add_names,
 * remove_names), or NULL.  Returns 1 when changed.
 */
static int
attr_change(struct scratch *sc, const char *name, int delta, int adding,
    struct dctx *refs)
{
	struct valv *w = &sc->want, *h = &sc->have;
	size_t i = 0, j = 0, off = sc->tmp.len;
	int first = 1, c;
	struct valv add = { 0 }, rem = { 0 };
	int changed = 0, rc = -1;

	if (w->n == h->n) {
		for (i = 0; i < w->n && val_cmp(&w->v[i], &h->v[i]) == 0; i++)
			;
		if (i == w->n)
			return 0;
	}
	if (sync_buf_addc(&sc->tmp, '{') == -1)
		return -1;
	if (!delta) {
		if (sync_buf_adds(&sc->tmp, "\"new\":[") == -1)
			return -1;
		first = 1;
		for (i = 0; i < w->n; i++)
			if ((i && sync_buf_addc(&sc->tmp, ',') == -1) ||
			    add_value(sc, &sc->tmp, &w->v[i], name) == -1)
				return -1;
		if (sync_buf_addc(&sc->tmp, ']') == -1)
			return -1;
		if (!adding) {
			if (sync_buf_adds(&sc->tmp, ",\"old\":[") == -1)
				return -1;
			for (i = 0; i < h->n; i++)
				if ((i && sync_buf_addc(&sc->tmp, ',') == -1) ||
				    add_value(sc, &sc->tmp, &h->v[i], name) == -1)
					return -1;
			if (sync_buf_addc(&sc->tmp, ']') == -1)
				return -1;
		}
		changed = 1;
	} else {
		i = j = 0;
		while (i < w->n || j < h->n) {
			c = i == w->n ? 1 : j == h->n ? -1 :
			    val_cmp(&w->v[i], &h->v[j]);
			if (c == 0) {
				i++;
				j++;
			} else if (c < 0) {
				if (valv_add(&add, NULL, 0, 0) == -1)
					goto out;
				add.v[add.n - 1] = w->v[i++];
			} else {
				if (valv_add(&rem, NULL, 0, 0) == -1)
					goto out;
				rem.v[rem.n - 1] = h->v[j++];
			}
		}
		if (add_vals(sc, &sc->tmp, "add", add.v, add.n, name, &first,
		    0) == -1 ||
		    add_vals(sc, &sc->tmp, "add_anchors", add.v, add.n, name,
		    &first, 1) == -1 ||
		    (refs && add_names(refs, &sc->tmp, "add_names", add.v, add.n,
		    &first) == -1) ||
		    add_vals(sc, &sc->tmp, "remove", rem.v, rem.n, name, &first,
		    0) == -1 ||
		    (refs && add_names(refs, &sc->tmp, "remove_names", rem.v,
		    rem.n, &first) == -1))
			goto out;
		changed = add.n + rem.n > 0;
	}
	if (sync_buf_addc(&sc->tmp, '}') == -1)
		goto out;
	if (!changed) {
		sc->tmp.len = off;
		sc->tmp.p[off] = '\0';
	} else if (ac_push(sc, name, off) == -1)
		goto out;
	rc = changed;
out:
	free(add.v);
	free(rem.v);
	return rc;
}

/* The target's values of attribute idx into sc->have (sorted). */
static int
load_have(struct dctx *d, struct scratch *sc, const struct dobj *t, long idx,
    int refs)
{
	const struct snap *ts = d->tgt;
	const struct dattr *a;
	uint32_t v;

	sc->have.n = 0;
	if (t == NULL || (a = attr_idx(ts, t, idx)) == NULL)
		return 0;
	for (v = a->v; v < a->v + dattr_nv(a); v++) {
		if (valv_add(&sc->have, ts->buf + ts->vals[v].off,
		    ts->vals[v].len, (int)a->binary) == -1)
			return -1;
		if (refs && d->tgt_dns) {
			char *c = dn_canon_n(ts->buf + ts->vals[v].off,
			    ts->vals[v].len);

			if (c == NULL || sync_strv_take(&sc->strs, c) == -1)
				return -1;
			sc->have.v[sc->have.n - 1].key = c;
			sc->have.v[sc->have.n - 1].keylen = strlen(c);
		}
	}
	valv_norm(&sc->have);
	return 0;
}

/* What a target object is called in a reference attribute. */
static void
tref(struct dctx *d, uint32_t t, const char **p, size_t *len)
{
	const struct dobj *o = &d->tgt->objs[t];
	uint32_t off = d->tgt_dns && o->dn ? o->dn : o->id;

	*p = d->tgt->buf + off;
	*len = strlen(*p);
}

/* ----------------------------------------------------------------- names */

static const char *src_name(const struct snap *s, const struct dobj *o);

/* A name for people: len bytes at p, not NUL-terminated; p NULL: none. */
struct oname {
	const char *p;
	size_t len;
};

/* Takes p as the name unless one is chosen already or p is empty or not
 * text. */
static void
name_try(struct oname *n, const char *p, size_t len)
{
	if (n->p == NULL && p != NULL && len > 0 && sync_utf8_valid(p, len)) {
		n->p = p;
		n->len = len;
	}
}

/* The first value of attribute idx of o (in s), when it is text. */
static void
name_try_attr(struct oname *n, const struct snap *s, const struct dobj *o,
    long idx)
{
	const struct dattr *a;

	if (n->p != NULL || o == NULL || (a = attr_idx(s, o, idx)) == NULL ||
	    a->binary || dattr_nv(a) == 0)
		return;
	name_try(n, s->buf + s->vals[a->v].off, s->vals[a->v].len);
}

static void
name_try_str(struct oname *n, const char *s)
{
	if (s != NULL)
		name_try(n, s, strlen(s));
}

/* A target object's name: userPrincipalName (users), displayName, DN, id. */
static void
tgt_name(const struct dctx *d, const struct dobj *t, struct oname *n)
{
	if (t->type == SYNC_USER)
		name_try_attr(n, d->tgt, t, d->t_upn);
	name_try_attr(n, d->tgt, t, d->t_name);
	if (t->dn)
		name_try_str(n, d->tgt->buf + t->dn);
	name_try_str(n, d->tgt->buf + t->id);
}

/* A source object's attributes that name it (as tgt_name's). */
static void
src_attr_name(const struct dctx *d, size_t si, const struct dobj *o, int user,
    struct oname *n)
{
	if (user)
		name_try_attr(n, d->src[si], o, d->s_upn[si]);
	name_try_attr(n, d->src[si], o, d->s_name[si]);
}

/* The name of the object a reference value refers to; the value itself
 * when it is not known. */
static void
ref_name(struct dctx *d, const struct val *v, struct oname *n)
{
	const struct mment *e;

	if (v->pending) {
		if ((e = mm_get(&d->addanchors, v->p, v->len)) != NULL) {
			const struct item *it = &d->items[e->val];
			const struct dobj *o = &d->src[it->snap]->objs[it->obj];

			/* the name its add record has, written in pass 1 (an
			 * object with references is written in pass 2, maybe
			 * now by another thread: named from its source) */
			if (!d->fs[it->flow].has_refs && it->rec) {
				const struct tout *to = &d->outs[it->recout - 1];

				name_try(n, to->buf.p + to->recs[it->rec - 1].noff,
				    to->recs[it->rec - 1].nlen);
			}
			src_attr_name(d, it->snap, o, o->type == SYNC_USER, n);
			name_try_str(n, src_name(d->src[it->snap], o));
		}
	} else if (d->trefs.slot != NULL &&
	    (e = mm_get(&d->trefs, v->key, v->keylen)) != NULL)
		tgt_name(d, &d->tgt->objs[e->val], n);
	if (!v->bin)
		name_try(n, v->p, v->len);
}

/* ,"key":[names of the objects v refers to: not pending, then pending] */
static int
add_names(struct dctx *d, struct sync_buf *b, const char *key,
    const struct val *v, size_t n, int *first)
{
	size_t i;
	int pend, any = 0;

	for (pend = 0; pend < 2; pend++)
		for (i = 0; i < n; i++) {
			struct oname nm = { 0 };

			if (v[i].pending != pend)
				continue;
			ref_name(d, &v[i], &nm);
			if (!any && ((!*first && sync_buf_addc(b, ',') == -1) ||
			    sync_buf_addf(b, "\"%s\":[", key) == -1))
				return -1;
			if ((any && sync_buf_addc(b, ',') == -1) ||
			    sync_json_addstr(b, nm.p ? nm.p : "", nm.p ? nm.len :
			    0) == -1)
				return -1;
			any = 1;
			*first = 0;
		}
	if (any && sync_buf_addc(b, ']') == -1)
		return -1;
	return 0;
}

/*
 * Resolves source references (in res: DNs, or ids on a source without
 * DNs) to target references, into sc->want.  The references that have
 * no object in the target and never will in this plan (an id not in the
 * snapshot, which holds the whole tenant: a device, a service
 * principal; or a join flow's object that found none) are counted in
 * sc->ndropped and the first few named in sc->dropped, for a warning.
 */
static int
resolve_refs(struct dctx *d, struct scratch *sc, size_t si,
    const struct sync_expr_item *v, size_t n)
{
	int ids = !snap_dns(d->src[si]);
	size_t i;

	for (i = 0; i < n; i++) {
		const struct mment *e;
		const struct item *it;
		char *c = NULL;

		if (v[i].binary)
			continue;
		if (ids)
			e = mm_get(&d->dnidx[si], v[i].p, v[i].len);
		else if ((c = dn_canon(v[i].p)) == NULL)
			return -1;
		else
			e = mm_get(&d->dnidx[si], c, strlen(c));
		free(c);
		it = e ? &d->items[d->snapbase[si] + e->val] : NULL;
		/* a DN outside an LDAP snapshot is outside the scope its
		 * connector reads, on purpose: dropped without a word */
		if (it == NULL && !ids)
			continue;
		if (it == NULL || it->state == ST_NOMATCH) {
			struct oname nm = { 0 };

			if (it != NULL) {
				const struct dobj *o =
				    &d->src[si]->objs[it->obj];

				src_attr_name(d, si, o, o->type == SYNC_USER,
				    &nm);
			}
			name_try(&nm, v[i].p, v[i].len);
			if (sc->ndropped++ < DROPPED_NAMED &&
			    sync_strv_addn(&sc->dropped, nm.p ? nm.p : "",
			    nm.p ? nm.len : 0) == -1)
				return -1;
			continue;
		}
		/*
		 * A joined object whose rename is a conflict stays where it
		 * is (the only conflict that keeps its target object): its
		 * references name it there, and are not dropped.
		 */
		if (it->state == ST_JOIN || (it->state == ST_CONFLICT &&
		    it->tgt != 0)) {
			const char *p;
			size_t len;

			tref(d, it->tgt - 1, &p, &len);
			if (valv_add(&sc->want, p, len, 0) == -1)
				return -1;
			if (d->tgt_dns) {
				if ((c = dn_canon(p)) == NULL ||
				    sync_strv_take(&sc->strs, c) == -1)
					return -1;
				sc->want.v[sc->want.n - 1].key = c;
				sc->want.v[sc->want.n - 1].keylen = strlen(c);
			}
		} else if (it->state == ST_ADD) {
			if (valv_add(&sc->want, it->anchor, strlen(it->anchor),
			    0) == -1)
				return -1;
			sc->want.v[sc->want.n - 1].pending = 1;
		}
		/* out of scope, in conflict, in error: dropped */
	}
	valv_norm(&sc->want);
	return 0;
}

static int
push_res(struct scratch *sc, struct sync_expr_result **res)
{
	if (sc->nres == sc->capres) {
		size_t cap = sc->capres ? sc->capres * 2 : 16;
		struct sync_expr_result *n = realloc(sc->res, cap * sizeof *n);

		if (n == NULL)
			return -1;
		sc->res = n;
		sc->capres = cap;
	}
	*res = &sc->res[sc->nres++];
	memset(*res, 0, sizeof **res);
	return 0;
}

/*
 * The values flow fa wants for source object o into sc->want; returns 1
 * for IgnoreThisFlow, 0 otherwise, -1 with err set.
 */
static int
want_values(struct dctx *d, struct job *j, struct scratch *sc, size_t fi,
    size_t ai, size_t si, const struct dobj *o, struct sync_err *err)
{
	const struct flowattr *fa = &d->r->flows[fi].attrs[ai];
	const struct snap *s = d->src[si];
	struct sync_expr_result *res;
	size_t i;

	sc->want.n = 0;
	if (fa->kind == FA_CONST) {
		for (i = 0; i < fa->konst.n; i++)
			if (valv_add(&sc->want, fa->konst.v[i],
			    strlen(fa->konst.v[i]), 0) == -1)
				return sync_errf(err, "out of memory");
	} else if (fa->kind == FA_DIRECT && !fa->reference) {
		struct sync_bytes ps;
		const struct dattr *a;
		uint32_t v;
		long idx = d->fs[fi].sattr[si][ai];

		if (idx <= PSEUDO_ANCHOR) {
			if (pseudo_value(s, o, idx, &ps) &&
			    valv_add(&sc->want, ps.p, ps.len, 0) == -1)
				return sync_errf(err, "out of memory");
		} else if ((a = attr_idx(s, o, idx)) != NULL) {
			for (v = a->v; v < a->v + dattr_nv(a); v++)
				if (valv_add(&sc->want, s->buf + s->vals[v].off,
				    s->vals[v].len, (int)a->binary) == -1)
					return sync_errf(err, "out of memory");
		}
	} else {
		if (push_res(sc, &res) == -1)
			return sync_errf(err, "out of memory");
		if (eval(&j->ec, fa->e, res, err) == -1) {
			sc->nres--;
			return -1;
		}
		if (res->status == SYNC_EXPR_IGNORE)
			return 1;
		if (res->status == SYNC_EXPR_VALUES) {
			if (fa->reference)
				return resolve_refs(d, sc, si, res->v, res->n) ==
				    -1 ? sync_errf(err, "out of memory") : 0;
			for (i = 0; i < res->n; i++)
				if (valv_add(&sc->want, res->v[i].p, res->v[i].len,
				    res->v[i].binary) == -1)
					return sync_errf(err, "out of memory");
		}
	}
	valv_norm(&sc->want);
	return 0;
}

static int
ac_cmp(const void *x, const void *y)
{
	const struct achange *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* Appends ,"attrs":{...} built from sc->ac, then ,"binary":[...] */
static int
emit_attrs(struct scratch *sc, struct sync_buf *b)
{
	size_t i;

	/* qsort's array must not be NULL, even for no elements (UBSan) */
	if (sc->nac > 1)
		qsort(sc->ac, sc->nac, sizeof *sc->ac, ac_cmp);
	if (sync_buf_adds(b, ",\"attrs\":{") == -1)
		return -1;
	for (i = 0; i < sc->nac; i++)
		if ((i && sync_buf_addc(b, ',') == -1) ||
		    sync_json_addstr(b, sc->ac[i].name,
		    strlen(sc->ac[i].name)) == -1 ||
		    sync_buf_addc(b, ':') == -1 ||
		    sync_buf_add(b, sc->tmp.p + sc->ac[i].off, sc->ac[i].len) == -1)
			return -1;
	if (sync_buf_addc(b, '}') == -1)
		return -1;
	if (sc->binary.n) {
		sync_strv_sort(&sc->binary);
		if (sync_buf_adds(b, ",\"binary\":[") == -1)
			return -1;
		for (i = 0; i < sc->binary.n; i++)
			if ((i && sync_buf_addc(b, ',') == -1) ||
			    sync_json_addstr(b, sc->binary.v[i],
			    strlen(sc->binary.v[i])) == -1)
				return -1;
		if (sync_buf_addc(b, ']') == -1)
			return -1;
	}
	return 0;
}

static int
addkv(struct sync_buf *b, const char *key, const char *s)
{
	if (sync_buf_addf(b, ",\"%s\":", key) == -1)
		return -1;
	return sync_json_addstr(b, s, strlen(s));
}

/*
 * Emits one change line.  anchor, type: the sort key.  The caller has
 * built the attribute changes in sc.
 */
struct line {
	enum op op;
	const char *anchor;
	enum sync_objtype type;
	const uint32_t *cands;
	size_t ncands;
	const char *dn, *new_dn;
	const char *flow, *id, *join, *reason, *source;
	struct oname name;      /* NULL p: the anchor */
	uint32_t item;          /* the item + 1, or 0 */
	int attrs;              /* write "attrs" */
	int disable;
};

static int
emit(struct dctx *d, struct job *j, struct scratch *sc, const struct line *l)
{
	struct tout *out = j->out;
	struct sync_buf *b = &out->buf;
	struct oname nm = l->name;
	size_t aoff, loff, noff, i;

	if (nm.p == NULL) {
		nm.p = l->anchor;
		nm.len = strlen(l->anchor);
	}
	aoff = b->len;
	if (sync_buf_adds(b, l->anchor) == -1)
		return -1;
	noff = b->len;
	if (sync_buf_add(b, nm.p, nm.len) == -1)
		return -1;
	loff = b->len;
	if (sync_buf_adds(b, "{\"anchor\":") == -1 ||
	    sync_json_addstr(b, l->anchor, strlen(l->anchor)) == -1)
		return -1;
	if (l->attrs && emit_attrs(sc, b) == -1)
		return -1;
	if (l->ncands) {
		if (sync_buf_adds(b, ",\"candidates\":[") == -1)
			return -1;
		for (i = 0; i < l->ncands; i++) {
			const char *p = d->tgt->buf + d->tgt->objs[l->cands[i]].id;

			if ((i && sync_buf_addc(b, ',') == -1) ||
			    sync_json_addstr(b, p, strlen(p)) == -1)
				return -1;
		}
		if (sync_buf_addc(b, ']') == -1)
			return -1;
	}
	if ((l->disable && sync_buf_adds(b, ",\"disable\":true") == -1) ||
	    (l->dn && addkv(b, "dn", l->dn) == -1) ||
	    (l->flow && addkv(b, "flow", l->flow) == -1) ||
	    (l->id && addkv(b, "id", l->id) == -1) ||
	    (l->join && addkv(b, "join", l->join) == -1) ||
	    sync_buf_adds(b, ",\"name\":") == -1 ||
	    sync_json_addstr(b, nm.p, nm.len) == -1 ||
	    (l->new_dn && addkv(b, "new_dn", l->new_dn) == -1) ||
	    addkv(b, "op", opnames[l->op]) == -1 ||
	    (l->reason && addkv(b, "reason", l->reason) == -1) ||
	    (l->source && addkv(b, "source", l->source) == -1) ||
	    addkv(b, "type", sync_objtype_name(l->type)) == -1 ||
	    sync_buf_addc(b, '}') == -1)
		return -1;
	if (out->nrecs == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 256;
		void *n = realloc(out->recs, cap * sizeof *out->recs);

		if (n == NULL)
			return -1;
		out->recs = n;
		out->cap = cap;
	}
	out->recs[out->nrecs].aoff = aoff;
	out->recs[out->nrecs].alen = noff - aoff;
	out->recs[out->nrecs].noff = noff;
	out->recs[out->nrecs].nlen = loff - noff;
	out->recs[out->nrecs].loff = loff;
	out->recs[out->nrecs].llen = b->len - loff;
	out->recs[out->nrecs].type = (uint8_t)l->type;
	out->recs[out->nrecs].item = l->item;
	out->recs[out->nrecs].op = (uint8_t)l->op;
	out->recs[out->nrecs].dropped = 0;
	out->nrecs++;
	out->counts[l->op]++;
	out->disables += l->disable;
	return 0;
}

static const char *
src_name(const struct snap *s, const struct dobj *o)
{
	return s->buf + (o->dn ? o->dn : o->id);
}

static const char *
tdn(struct dctx *d, const struct dobj *t)
{
	return t && t->dn ? d->tgt->buf + t->dn : NULL;
}

/* The parent of a canonical DN (after the first unescaped comma). */
static const char *
dn_parent(const char *dn)
{
	for (; *dn; dn++) {
		if (*dn == '\\' && dn[1]) {
			dn++;
			continue;
		}
		if (*dn == ',')
			return dn + 1;
	}
	return dn;
}

/* The disable attributes of a flow, for an object going out of scope. */
static int
emit_disable(struct dctx *d, struct job *j, struct scratch *sc, size_t fi,
    uint32_t t, const char *anchor, const char *reason, const char *source)
{
	const struct flow *f = &d->r->flows[fi];
	const struct dobj *to = &d->tgt->objs[t];
	struct line l = { 0 };
	size_t i;
	int r, any = 0;

	for (i = 0; i < f->disable_names.n; i++) {
		sc->want.n = 0;
		if (valv_add(&sc->want, f->disable_vals.v[i],
		    strlen(f->disable_vals.v[i]), 0) == -1 ||
		    load_have(d, sc, to, name_index(d->tgt,
		    f->disable_names.v[i]), 0) == -1)
			return -1;
		if ((r = attr_change(sc, f->disable_names.v[i], 0, 0,
		    NULL)) == -1)
			return -1;
		any |= r;
	}
	if (!any)
		return 0;
	tgt_name(d, to, &l.name);
	l.op = OP_UPDATE;
	l.anchor = anchor;
	l.type = f->totype;
	l.disable = 1;
	l.attrs = 1;
	l.dn = tdn(d, to);
	l.flow = f->name;
	l.id = d->tgt->buf + to->id;
	l.join = "anchor";
	l.reason = reason;
	l.source = source;
	return emit(d, j, sc, &l);
}

static int
emit_delete(struct dctx *d, struct job *j, struct scratch *sc, size_t fi,
    uint32_t t, const char *anchor, const char *reason, const char *source)
{
	const struct flow *f = &d->r->flows[fi];
	const struct dobj *to = &d->tgt->objs[t];
	struct line l = { 0 };

	if (load_have(d, sc, to, d->fs[fi].tanchor, 0) == -1)
		return -1;
	/* written as old values: what sync-export checks before deleting */
	{
		size_t off = sc->tmp.len, i;

		if (sync_buf_adds(&sc->tmp, "{\"old\":[") == -1)
			return -1;
		for (i = 0; i < sc->have.n; i++)
			if ((i && sync_buf_addc(&sc->tmp, ',') == -1) ||
			    add_value(sc, &sc->tmp, &sc->have.v[i],
			    f->anchor_attr) == -1)
				return -1;
		if (sync_buf_adds(&sc->tmp, "]}") == -1 ||
		    ac_push(sc, f->anchor_attr, off) == -1)
			return -1;
	}
	tgt_name(d, to, &l.name);
	l.op = OP_DELETE;
	l.anchor = anchor;
	l.type = f->totype;
	l.attrs = 1;
	l.dn = tdn(d, to);
	l.flow = f->name;
	l.id = d->tgt->buf + to->id;
	l.join = "anchor";
	l.reason = reason;
	l.source = source;
	return emit(d, j, sc, &l);
}

/*
 * Why Microsoft Graph refuses value p as the mailNickname of an object of
 * type t, or NULL: at most 64 ASCII characters, none of @ ( ) \ [ ] " ; :
 * < > , or space, and for groups no period either (the rule Graph
 * documents for groups; users' aliases such as first.last are common).
 */
static const char *
mailnick_bad(const char *p, size_t len, enum sync_objtype t)
{
	size_t i;

	if (len > 64)
		return "more than 64 characters";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c > 127)
			return "a character that is not ASCII";
		if (c == ' ')
			return "a space";
		if (c != '\0' && (strchr("@()\\[]\";:<>,", c) != NULL ||
		    (c == '.' && t != SYNC_USER)))
			return "a character Graph does not allow there";
	}
	return NULL;
}

/*
 * Records the values of w as what the plan gives to unique attribute u
 * of the object owner (item k), for predict_conflicts.
 */
static int
claim_values(struct tout *out, uint32_t k, uint32_t owner, int u,
    const struct valv *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		const char *p = w->v[i].p;
		size_t len = w->v[i].len;
		struct claim *c;

		if (w->v[i].bin || len == 0)
			continue;
		/* smtp:a@x and SMTP:a@x are the address a@x */
		if (u == U_PROXY && len > 5 && strncasecmp(p, "smtp:", 5) == 0) {
			p += 5;
			len -= 5;
		}
		if (out->nclaims == out->capclaims) {
			size_t cap = out->capclaims ? out->capclaims * 2 : 64;
			struct claim *nc = realloc(out->claims, cap * sizeof *nc);

			if (nc == NULL)
				return -1;
			out->claims = nc;
			out->capclaims = cap;
		}
		c = &out->claims[out->nclaims];
		c->item = k;
		c->owner = owner;
		c->off = out->ckeys.len;
		c->len = (uint32_t)len;
		c->u = (uint8_t)u;
		if (sync_buf_add(&out->ckeys, p, len) == -1)
			return -1;
		out->nclaims++;
	}
	return 0;
}

/*
 * An attribute of a graph target changed to sc->want: checks it
 * (mailNickname) and records unique values.  Returns 0, 1 when a value
 * is refused (err set), -1 when out of memory.
 */
static int
graph_attr(struct dctx *d, struct job *j, struct scratch *sc,
    const struct item *it, int u, int mailnick, struct sync_err *err)
{
	const struct flow *f = &d->r->flows[it->flow];
	uint32_t k = (uint32_t)(it - d->items);
	size_t i;

	if (mailnick)
		for (i = 0; i < sc->want.n; i++) {
			const struct val *v = &sc->want.v[i];
			const char *why = mailnick_bad(v->p, v->len, f->totype);

			if (why == NULL)
				continue;
			sync_errf(err, "mailNickname '%.*s' would be refused by "
			    "Microsoft Graph: it has %s (at most 64 ASCII "
			    "characters, none of @ ( ) \\ [ ] \" ; : < > , or a "
			    "space%s)", (int)(v->len < 200 ? v->len : 200),
			    v->bin ? "" : v->p, why, f->totype == SYNC_USER ?
			    "" : ", no period in a group's");
			return 1;
		}
	if (u < 0 || j->pass != 1)
		return 0;
	if (it->state == ST_JOIN)
		__atomic_or_fetch(&d->tover[it->tgt - 1], 1u << u,
		    __ATOMIC_RELAXED);
	return claim_values(j->out, k, it->state == ST_JOIN ? it->tgt - 1 :
	    (uint32_t)d->tgt->nobjs + k, u, &sc->want);
}

/* The name of item it's object, with the planned values (may be NULL). */
static void
item_name(const struct dctx *d, const struct item *it, const struct dobj *to,
    const struct oname *pupn, const struct oname *pname, const char *pdn,
    struct oname *n)
{
	const struct snap *s = d->src[it->snap];
	const struct dobj *o = &s->objs[it->obj];
	int user = d->r->flows[it->flow].totype == SYNC_USER;

	if (user) {
		if (pupn)
			name_try(n, pupn->p, pupn->len);
		if (to)
			name_try_attr(n, d->tgt, to, d->t_upn);
	}
	if (pname)
		name_try(n, pname->p, pname->len);
	if (to)
		name_try_attr(n, d->tgt, to, d->t_name);
	src_attr_name(d, it->snap, o, user, n);
	if (to && to->dn)
		name_try_str(n, d->tgt->buf + to->dn);
	name_try_str(n, pdn);
	name_try_str(n, src_name(s, o));
}

/* The first value of sc->want as a name, checked for text only when the
 * name is used (item_name): most objects have no change to name. */
static void
want_name(const struct scratch *sc, struct oname *n)
{
	if (sc->want.n > 0 && !sc->want.v[0].bin) {
		n->p = sc->want.v[0].p;
		n->len = sc->want.v[0].len;
	}
}

/*
 * The warning for the references of attribute fa of item it that
 * resolve_refs left out (sc->dropped), added to the thread's; resets
 * them.  Returns -1 when out of memory.
 */
static int
dropped_warning(struct dctx *d, struct job *j, struct scratch *sc,
    const struct flowattr *fa, const struct item *it)
{
	const struct snap *s = d->src[it->snap];
	const struct dobj *o = &s->objs[it->obj];
	struct sync_buf b = { 0 };
	struct oname nm = { 0 };
	size_t i;
	int rc = 0;

	src_attr_name(d, it->snap, o, o->type == SYNC_USER, &nm);
	name_try_str(&nm, src_name(s, o));
	if (sync_buf_addf(&b, "%s: warning: flow '%s', %s '%.*s': %zu "
	    "value%s of '%s' left out, with no object in connector '%s': ",
	    fa->pos.p ? fa->pos.p : "?", d->r->flows[it->flow].name,
	    sync_objtype_name((enum sync_objtype)o->type), (int)nm.len, nm.p,
	    sc->ndropped, sc->ndropped == 1 ? "" : "s", fa->name,
	    d->tgt->connector) == -1)
		rc = -1;
	for (i = 0; rc == 0 && i < sc->dropped.n; i++)
		if (sync_buf_addf(&b, "%s'%s'", i ? ", " : "",
		    sc->dropped.v[i]) == -1)
			rc = -1;
	if (rc == 0 && sc->ndropped > sc->dropped.n &&
	    sync_buf_addf(&b, " and %zu more", sc->ndropped -
	    sc->dropped.n) == -1)
		rc = -1;
	if (rc == 0 && sync_strv_add(&j->out->warnings, b.p) == -1)
		rc = -1;
	sync_buf_release(&b);
	sync_strv_release(&sc->dropped);
	sc->ndropped = 0;
	return rc;
}

/*
 * The change for one item.  dry: only evaluate the flows that are not
 * references, and mark the item failed if one fails; run over every item
 * before the references are resolved, so that no reference points to an
 * object that will not be created.
 */
static int
do_item(struct dctx *d, struct job *j, struct scratch *sc, struct item *it,
    int dry, struct sync_err *err)
{
	const struct snap *s = d->src[it->snap];
	const struct dobj *o = &s->objs[it->obj];
	const struct flow *f;
	const struct dobj *to = NULL;
	struct line l = { 0 };
	struct sync_expr_result *dnres = NULL;
	struct oname pupn = { 0 }, pname = { 0 };
	size_t ai, fi;
	int adding, r, stamp;

	if (it->flow < 0 || it->state == ST_NONE || it->state == ST_NOMATCH)
		return 0;
	fi = (size_t)it->flow;
	f = &d->r->flows[fi];
	l.anchor = it->anchor ? it->anchor : s->buf + o->anchor;
	l.type = f->totype;
	l.flow = f->name;
	l.source = src_name(s, o);
	l.item = (uint32_t)(it - d->items) + 1;
	/*
	 * An object with references is done in pass 2: the records that
	 * need no evaluation are written then, not also in the dry pass 1.
	 */
	if (dry && (it->state == ST_ERROR || it->state == ST_CONFLICT ||
	    it->state == ST_OUT))
		return 0;
	/* named as its own target object, when it has one: a candidate may
	 * be another object */
	if (it->state == ST_ERROR || it->state == ST_CONFLICT)
		item_name(d, it, it->tgt ? &d->tgt->objs[it->tgt - 1] : NULL,
		    NULL, NULL, NULL, &l.name);
	switch (it->state) {
	case ST_ERROR:
		l.op = OP_ERROR;
		l.reason = it->msg ? it->msg : "out of memory";
		return emit(d, j, sc, &l);
	case ST_CONFLICT:
		l.op = OP_CONFLICT;
		l.reason = it->msg ? it->msg : "out of memory";
		l.cands = it->cands;
		l.ncands = it->ncands;
		l.join = it->join == JOIN_NONE ? NULL : it->join < 0 ? "anchor" :
		    f->joins[it->join].name;
		return emit(d, j, sc, &l);
	case ST_OUT:
		/* a source object in scope of a flow holds this target */
		if (it->tgt == 0 || d->tclaim[it->tgt - 1] > 0)
			return 0;
		if (f->oos == OOS_DELETE)
			return emit_delete(d, j, sc, fi, it->tgt - 1, l.anchor,
			    "out of scope", l.source);
		if (f->oos == OOS_DISABLE)
			return emit_disable(d, j, sc, fi, it->tgt - 1, l.anchor,
			    "out of scope", l.source);
		return 0;
	default:
		break;
	}
	if (dry && it->state != ST_ADD && it->state != ST_JOIN)
		return 0;
	adding = it->state == ST_ADD;
	if (!adding)
		to = &d->tgt->objs[it->tgt - 1];
	if (ectx_set(&j->ec, s, o) == -1)
		return sync_errf(err, "out of memory");
	/* a join flow's join is found again by its rules at each run: it
	 * writes only its attributes */
	stamp = (adding || it->join >= 0) && f->link != LINK_JOIN &&
	    !(adding ? d->fs[fi].anchor_add : d->fs[fi].anchor_upd);
	for (ai = 0; ai < f->nattrs; ai++) {
		const struct flowattr *fa = &f->attrs[ai];

		if ((fa->create_only && !adding) || (dry && fa->reference))
			continue;
		if ((r = want_values(d, j, sc, fi, ai, it->snap, o, err)) == -1)
			goto fail;
		if (sc->ndropped > 0 && dropped_warning(d, j, sc, fa, it) == -1)
			return sync_errf(err, "out of memory");
		if (r == 1)
			continue;       /* IgnoreThisFlow */
		if ((long)ai == d->fs[fi].upn_ai)
			want_name(sc, &pupn);
		else if ((long)ai == d->fs[fi].name_ai)
			want_name(sc, &pname);
		if (adding) {
			sc->have.n = 0;
		} else if (load_have(d, sc, to, d->fs[fi].tattr[ai],
		    fa->reference) == -1)
			return sync_errf(err, "out of memory");
		if ((r = attr_change(sc, fa->name, fa->reference ||
		    sc->want.n > (size_t)d->r->large ||
		    sc->have.n > (size_t)d->r->large, adding, fa->reference ?
		    d : NULL)) == -1)
			return sync_errf(err, "out of memory");
		if (r == 1 && d->graph && (r = graph_attr(d, j, sc, it,
		    d->fs[fi].uniq[ai], (int)ai == d->fs[fi].mailnick_ai,
		    err)) != 0) {
			if (r == -1)
				return sync_errf(err, "out of memory");
			goto fail;
		}
	}
	if (stamp) {
		sc->want.n = 0;
		if (valv_add(&sc->want, l.anchor, strlen(l.anchor), 0) == -1 ||
		    load_have(d, sc, to, d->fs[fi].tanchor, 0) == -1 ||
		    (r = attr_change(sc, f->anchor_attr, 0, adding, NULL)) == -1)
			return sync_errf(err, "out of memory");
		if (r == 1 && d->graph && graph_attr(d, j, sc, it,
		    d->fs[fi].anchor_uniq, 0, err) == -1)
			return sync_errf(err, "out of memory");
	}

	l.attrs = 1;
	if (f->dn && (adding || (to && to->dn))) {
		if (push_res(sc, &dnres) == -1)
			return sync_errf(err, "out of memory");
		if (eval(&j->ec, f->dn, dnres, err) == -1) {
			sc->nres--;
			goto fail;
		}
		if (dnres->status != SYNC_EXPR_VALUES || dnres->n != 1 ||
		    dnres->v[0].binary) {
			sync_errf(err, "the dn expression did not give one text "
			    "value");
			goto fail;
		}
	}
	/*
	 * A DN that another target object holds: the add, or the modrdn of a
	 * rename or move, would fail at export, or worse, an add be taken for
	 * done.  That object is not ours (it would have been joined by its
	 * anchor): a conflict naming it.  Decided in pass 1, so that every
	 * thread of pass 2 sees it.
	 */
	if (dnres && (adding || to->dn) && d->tgt_dns &&
	    d->trefs.slot != NULL) {
		const struct mment *e;
		char *c = dn_canon(dnres->v[0].p);
		uint32_t t;

		if (c == NULL)
			return sync_errf(err, "out of memory");
		e = mm_get(&d->trefs, c, strlen(c));
		free(c);
		if (e != NULL && (adding || e->val != it->tgt - 1)) {
			t = e->val;
			if (adding)
				it->join = JOIN_NONE;
			if (set_conflict(it, "the DN is taken by a target object "
			    "that is not this one's", &t, 1) == -1)
				return sync_errf(err, "out of memory");
			if (dry)
				return 0;
			scratch_reset(sc);
			return do_item(d, j, sc, it, 0, err);
		}
	}
	if (dry)
		return 0;
	if (!adding && sc->nac == 0 && (dnres == NULL || to->dn == 0))
		return 0;       /* in sync (a DN is compared below) */
	item_name(d, it, to, &pupn, &pname, dnres ? dnres->v[0].p : NULL,
	    &l.name);
	if (adding) {
		l.op = OP_ADD;
		if (dnres)
			l.dn = dnres->v[0].p;
		if (emit(d, j, sc, &l) == -1)
			return -1;
		it->recout = (uint8_t)(j->out - d->outs + 1);
		it->rec = (uint32_t)j->out->nrecs;
		return 0;
	}
	l.id = d->tgt->buf + to->id;
	l.dn = tdn(d, to);
	l.join = it->join < 0 ? "anchor" : f->joins[it->join].name;
	l.op = OP_UPDATE;
	if (dnres && to->dn) {
		char *a = dn_canon(d->tgt->buf + to->dn);
		char *b = dn_canon(dnres->v[0].p);

		if (a == NULL || b == NULL) {
			free(a);
			free(b);
			return sync_errf(err, "out of memory");
		}
		if (strcmp(a, b) != 0) {
			l.new_dn = dnres->v[0].p;
			l.op = strcmp(dn_parent(a), dn_parent(b)) == 0 ?
			    OP_RENAME : OP_MOVE;
		}
		free(a);
		free(b);
	}
	if (sc->nac == 0 && l.new_dn == NULL)
		return 0;
	return emit(d, j, sc, &l);
fail:
	/* an evaluation error is a record of its own, not a failed run */
	/* references resolved later see the failure */
	it->state = ST_ERROR;
	if (dry) {
		item_fail(it, NULL, err->msg);
		return 0;
	}
	{
		struct line e = { 0 };
		char msg[SYNC_ERRMAX + 64];

		snprintf(msg, sizeof msg, "%s", err->msg);
		scratch_reset(sc);
		item_name(d, it, to, NULL, NULL, NULL, &e.name);
		e.item = l.item;
		e.op = OP_ERROR;
		e.anchor = l.anchor;
		e.type = l.type;
		e.flow = l.flow;
		e.source = l.source;
		e.reason = msg;
		return emit(d, j, sc, &e);
	}
}

/*
 * The joined target objects are all over memory, and comparing with
 * their values was a cache miss at each step (object, attributes, value
 * offsets, the values): fetch each for an item some items ahead (48,
 * 32, 16 and 8: at 16, 8, 4 and 2 the loads still missed), each step
 * reading what the one before fetched.  The source object's values are
 * fetched 8 items ahead too: they are read in file order, but a few
 * hundred bytes apart, which the hardware does not predict.
 */
static void
prefetch_target(const struct dctx *d, size_t k, size_t hi)
{
	const struct snap *t = d->tgt;
	const struct dobj *po;
	const struct dattr *a, *z;
	uint32_t tg;
	size_t off, end;

	if (k + 48 < hi && (tg = d->items[k + 48].tgt) != 0)
		__builtin_prefetch(&t->objs[tg - 1]);
	if (k + 32 < hi && (tg = d->items[k + 32].tgt) != 0) {
		po = &t->objs[tg - 1];
		__builtin_prefetch(&t->attrs[po->a]);
		__builtin_prefetch(&t->attrs[po->a] + 4);
		__builtin_prefetch(&t->attrs[po->a] + 8);
	}
	if (k + 16 < hi && (tg = d->items[k + 16].tgt) != 0) {
		po = &t->objs[tg - 1];
		if (po->na > 0) {
			__builtin_prefetch(&t->vals[t->attrs[po->a].v]);
			__builtin_prefetch(&t->vals[t->attrs[po->a].v] + 8);
		}
	}
	if (k + 8 < hi) {
		const struct item *si = &d->items[k + 8];
		const struct snap *ss = d->src[si->snap];
		const struct dobj *so = &ss->objs[si->obj];

		if (so->na > 0 && ss->attrs[so->a + so->na].v >
		    ss->attrs[so->a].v) {
			off = ss->vals[ss->attrs[so->a].v].off;
			end = ss->vals[ss->attrs[so->a + so->na].v - 1].off;
			if (end < off || end - off > 1024)
				end = off + 1024;
			for (; off <= end + 63; off += 64)
				__builtin_prefetch(ss->buf + off);
		}
	}
	if (k + 8 < hi && (tg = d->items[k + 8].tgt) != 0) {
		po = &t->objs[tg - 1];
		if (po->na == 0 || dattr_nv(&t->attrs[po->a]) == 0)
			return;
		a = &t->attrs[po->a];
		z = &t->attrs[po->a + po->na - 1];
		if (dattr_nv(z) == 0)
			z = a;
		off = t->vals[a->v].off;
		end = dattr_nv(z) ? t->vals[z->v + dattr_nv(z) - 1].off : off;
		if (end < off || end - off > 1024)
			end = off + 1024;
		for (; off <= end + 63; off += 64)
			__builtin_prefetch(t->buf + off);
	}
}

static void *
phase_flows(void *arg)
{
	struct job *j = arg;
	struct dctx *d = j->d;
	struct scratch sc = { 0 };
	size_t k;

	for (k = j->lo; k < j->hi && !j->out->failed; k++) {
		struct item *it = &d->items[k];
		int refs = it->flow >= 0 && d->fs[it->flow].has_refs;

		/* pass 1: objects without references, checks of the others;
		 * pass 2: the objects with references */
		if (j->pass == 2 && !refs)
			continue;
		prefetch_target(d, k, j->hi);
		if (do_item(d, j, &sc, it, j->pass == 1 && refs,
		    &j->out->err) == -1)
			j->out->failed = 1;
		scratch_reset(&sc);
	}
	for (k = j->pass == 1 ? j->ohi : j->olo; k < j->ohi &&
	    !j->out->failed; k++) {
		uint32_t t = d->orphans[k];
		const struct dobj *to = &d->tgt->objs[t];
		const struct dattr *a;
		size_t fi = (size_t)orphan_flow(d, to->type);
		int r = 0;

		a = attr_idx(d->tgt, to, d->fs[fi].tanchor);
		/* the anchor value as a C string, freed by scratch_reset; a
		 * binary one (objectGUID) as its base64 */
		if (a->binary) {
			char *enc = sync_base64_encode(d->tgt->buf +
			    d->tgt->vals[a->v].off, d->tgt->vals[a->v].len);

			if (enc == NULL || sync_strv_take(&sc.strs, enc) == -1)
				r = -1;
		} else if (sync_strv_addn(&sc.strs, d->tgt->buf +
		    d->tgt->vals[a->v].off, d->tgt->vals[a->v].len) == -1)
			r = -1;
		if (r == 0 && d->r->flows[fi].oos == OOS_DELETE)
			r = emit_delete(d, j, &sc, fi, t,
			    sc.strs.v[sc.strs.n - 1], "deleted at the source",
			    NULL);
		else if (r == 0 && d->r->flows[fi].oos == OOS_DISABLE)
			r = emit_disable(d, j, &sc, fi, t,
			    sc.strs.v[sc.strs.n - 1], "deleted at the source",
			    NULL);
		if (r == -1) {
			sync_errf(&j->out->err, "out of memory");
			j->out->failed = 1;
		}
		scratch_reset(&sc);
	}
	scratch_free(&sc);
	return NULL;
}

/* ------------------------------------------------- predicted conflicts */

struct pclaim {
	const char *k;
	uint32_t len, item, owner;
	uint8_t u;
};

/* Makes item c->item a conflict with reason msg, unless it is one. */
static int
collide(struct dctx *d, uint8_t *hit, const struct pclaim *c, const char *msg,
    const uint32_t *cand)
{
	struct item *it = &d->items[c->item];

	if (hit[c->item])
		return 0;
	hit[c->item] = 1;
	if (it->state == ST_ADD)
		it->join = JOIN_NONE;
	return set_conflict(it, msg, cand, cand ? 1 : 0);
}

/*
 * A cheap fingerprint of a key (its length, first and last 8 bytes):
 * most values of the target match no claim, and a bit set of the claims'
 * fingerprints turns them away before the full hash.
 */
#define FP_BITS 16
static inline uint32_t
fingerprint(const char *p, size_t n, int icase)
{
	uint64_t a = 0, b = 0;

	if (n >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + n - 8, 8);
	} else
		memcpy(&a, p, n);
	if (icase) {
		a = lower8(a);
		b = lower8(b);
	}
	a = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ n) * 0xff51afd7ed558ccdull;
	return (uint32_t)(a >> (64 - FP_BITS));
}

#define FP_SET(bits, f) ((bits)[(f) >> 6] |= 1ull << ((f) & 63))
#define FP_HAS(bits, f) ((bits)[(f) >> 6] >> ((f) & 63) & 1)

struct scanjob {
	const struct dctx *d;
	const struct mmap *m;           /* the claims, per name space */
	const uint64_t *fp;             /* their fingerprints, per space */
	const signed char *nameu;       /* target attribute name -> U_*, -1 */
	const struct pclaim *all;
	size_t lo, hi;                  /* target objects */
	struct { uint32_t c, t; uint8_t u; } *hits;
	size_t nhits, cap;
	int nomem;
};

/* The claims that values of target objects lo..hi collide with. */
static void *
scan_targets(void *arg)
{
	struct scanjob *sj = arg;
	const struct dctx *d = sj->d;
	const struct snap *tg = d->tgt;
	size_t t;
	int u;

	for (t = sj->lo; t < sj->hi && !sj->nomem; t++) {
		const struct dobj *to = &tg->objs[t];
		uint32_t ai;

		if ((d->tover[t] & TOVER_DEL) || to->type == SYNC_CONTACT)
			continue;
		/* one pass over the object's attributes */
		for (ai = to->a; ai < to->a + to->na; ai++) {
			const struct dattr *a = &tg->attrs[ai];
			const struct mmap *m;
			const uint64_t *fp;
			uint32_t v;

			if ((u = sj->nameu[a->name]) < 0 ||
			    (d->tover[t] & (1u << u)) ||
			    (to->type == SYNC_GROUP && u != U_MAIL &&
			    u != U_PROXY))
				continue;
			m = &sj->m[uniq_ns[u]];
			fp = sj->fp + ((size_t)uniq_ns[u] << (FP_BITS - 6));
			for (v = a->v; v < a->v + dattr_nv(a); v++) {
				const char *p = tg->buf + tg->vals[v].off;
				size_t len = tg->vals[v].len;
				const struct mment *e;

				if (u == U_PROXY && len > 5 &&
				    strncasecmp(p, "smtp:", 5) == 0) {
					p += 5;
					len -= 5;
				}
				if (len == 0 || !FP_HAS(fp, fingerprint(p, len,
				    m->icase)))
					continue;
				for (e = mm_get(m, p, len); e; e = e->next ?
				    &m->e[e->next - 1] : NULL) {
					if (sj->all[e->val].owner == t)
						continue;
					if (sj->nhits == sj->cap) {
						size_t cap = sj->cap ? sj->cap * 2 : 16;
						void *nh = realloc(sj->hits, cap *
						    sizeof *sj->hits);

						if (nh == NULL) {
							sj->nomem = 1;
							return NULL;
						}
						sj->hits = nh;
						sj->cap = cap;
					}
					sj->hits[sj->nhits].c = e->val;
					sj->hits[sj->nhits].t = (uint32_t)t;
					sj->hits[sj->nhits].u = (uint8_t)u;
					sj->nhits++;
				}
			}
		}
	}
	return NULL;
}

/*
 * Predicted conflicts on Graph's unique values (uniq_names): a value the
 * plan gives to an object that another object holds, or is given too;
 * Graph would refuse the second at export.  Runs between the passes, so
 * that the objects stopped become conflicts before any reference to them
 * is resolved; the records pass 1 wrote for them are replaced.  Costs a
 * look-up per unique value of the target only when the plan sets one.
 */
static int
predict_conflicts(struct dctx *d, struct sync_changeset *cs,
    struct sync_err *err)
{
	const struct snap *tg = d->tgt;
	struct mmap m[NUNIQNS];
	struct pclaim *all = NULL;
	uint64_t *fp = NULL;
	signed char *nameu = NULL;
	uint8_t *hit = NULL;
	char msg[1024];
	size_t n = 0, t, i, k, nhit = 0;
	int u, rc = -1;

	memset(m, 0, sizeof m);
	for (t = 0; t < cs->nouts; t++)
		n += cs->outs[t].nclaims;
	if (n == 0)
		return 0;
	/* the objects the plan deletes free their values (as orphans are
	 * found in phase_flows and do_item) */
	for (i = 0; i < d->norphans; i++) {
		const struct dobj *to = &tg->objs[d->orphans[i]];
		size_t fi;

		for (fi = 0; fi < d->r->nflows; fi++)
			if (d->fs[fi].active && d->r->flows[fi].totype == to->type)
				break;
		if (d->r->flows[fi].oos == OOS_DELETE)
			d->tover[d->orphans[i]] |= TOVER_DEL;
	}
	for (k = 0; k < d->nitems; k++) {
		const struct item *it = &d->items[k];

		if (it->state == ST_OUT && it->tgt != 0 &&
		    d->tclaim[it->tgt - 1] == 0 &&
		    d->r->flows[it->flow].oos == OOS_DELETE)
			d->tover[it->tgt - 1] |= TOVER_DEL;
	}
	if ((all = malloc(n * sizeof *all)) == NULL ||
	    (hit = calloc(d->nitems + 1, 1)) == NULL ||
	    (fp = calloc((size_t)NUNIQNS << (FP_BITS - 6), sizeof *fp)) == NULL ||
	    (nameu = malloc(tg->names.n + 1)) == NULL)
		goto nomem;
	memset(nameu, -1, tg->names.n + 1);
	for (u = 0; u < NUNIQ; u++)
		if (d->tuniq[u] >= 0)
			nameu[d->tuniq[u]] = (signed char)u;
	for (u = 0; u < NUNIQNS; u++)
		if (mm_init(&m[u], 64, u != uniq_ns[U_IMMUTABLE]) == -1)
			goto nomem;
	for (t = 0, n = 0; t < cs->nouts; t++) {
		const struct tout *o = &cs->outs[t];

		for (i = 0; i < o->nclaims; i++) {
			const struct claim *c = &o->claims[i];
			struct pclaim *p = &all[n];

			/* an object that failed in pass 1 is not written */
			if (d->items[c->item].state != ST_ADD &&
			    d->items[c->item].state != ST_JOIN)
				continue;
			p->k = o->ckeys.p + c->off;
			p->len = c->len;
			p->item = c->item;
			p->owner = c->owner;
			p->u = c->u;
			if (mm_add(&m[uniq_ns[c->u]], p->k, p->len,
			    (uint32_t)n) == -1)
				goto nomem;
			FP_SET(fp + ((size_t)uniq_ns[c->u] << (FP_BITS - 6)),
			    fingerprint(p->k, p->len, m[uniq_ns[c->u]].icase));
			n++;
		}
	}
	/* two objects of the plan given one value */
	for (i = 0; i < n; i++) {
		const struct pclaim *c = &all[i];
		const struct mment *e;

		for (e = mm_get(&m[uniq_ns[c->u]], c->k, c->len); e; e = e->next ?
		    &m[uniq_ns[c->u]].e[e->next - 1] : NULL) {
			const struct pclaim *o = &all[e->val];
			const struct item *oi = &d->items[o->item];
			const struct dobj *so = &d->src[oi->snap]->objs[oi->obj];
			struct oname nm = { 0 };

			if (o->owner == c->owner)
				continue;
			src_attr_name(d, oi->snap, so, so->type == SYNC_USER, &nm);
			name_try_str(&nm, src_name(d->src[oi->snap], so));
			snprintf(msg, sizeof msg, "%s '%.*s' would also be given "
			    "to %s '%.*s' (anchor '%s'%s%s)", uniq_names[c->u],
			    (int)(c->len < 200 ? c->len : 200), c->k,
			    sync_objtype_name(d->r->flows[oi->flow].totype),
			    (int)(nm.len < 200 ? nm.len : 200), nm.p ? nm.p : "",
			    oi->anchor ? oi->anchor : "", o->u != c->u ? ", in " :
			    "", o->u != c->u ? uniq_names[o->u] : "");
			if (collide(d, hit, c, msg, o->owner < tg->nobjs ?
			    &o->owner : NULL) == -1)
				goto nomem;
			break;
		}
	}
	/* a value an object of the target holds and keeps: looked for by
	 * the threads, each in a part of the target, found in target order */
	{
		struct scanjob sj[64];
		pthread_t tid[64];
		int nj = d->nthreads, q, started[64];
		size_t per = (tg->nobjs + (size_t)nj - 1) / (size_t)nj;

		memset(sj, 0, sizeof sj);
		for (q = 0; q < nj; q++) {
			sj[q].d = d;
			sj[q].m = m;
			sj[q].fp = fp;
			sj[q].nameu = nameu;
			sj[q].all = all;
			sj[q].lo = (size_t)q * per < tg->nobjs ? (size_t)q * per :
			    tg->nobjs;
			sj[q].hi = sj[q].lo + per < tg->nobjs ? sj[q].lo + per :
			    tg->nobjs;
			started[q] = q > 0 && pthread_create(&tid[q], NULL,
			    scan_targets, &sj[q]) == 0;
		}
		for (q = 0; q < nj; q++)
			if (!started[q])
				scan_targets(&sj[q]);
		for (q = 1; q < nj; q++)
			if (started[q])
				pthread_join(tid[q], NULL);
		for (q = 0; q < nj && rc == -1; q++) {
			for (i = 0; i < sj[q].nhits && !sj[q].nomem; i++) {
				const struct pclaim *c = &all[sj[q].hits[i].c];
				const struct dobj *to = &tg->objs[sj[q].hits[i].t];
				int hu = sj[q].hits[i].u;
				struct oname nm = { 0 };

				if (hit[c->item])
					continue;
				tgt_name(d, to, &nm);
				snprintf(msg, sizeof msg, "%s '%.*s' is already "
				    "used by %s '%.*s' (id '%s'%s%s)",
				    uniq_names[c->u], (int)(c->len < 200 ? c->len :
				    200), c->k, sync_objtype_name(to->type),
				    (int)(nm.len < 200 ? nm.len : 200), nm.p,
				    tg->buf + to->id, hu != c->u ? ", in " : "",
				    hu != c->u ? uniq_names[hu] : "");
				if (collide(d, hit, c, msg, &sj[q].hits[i].t) == -1)
					sj[q].nomem = 1;
			}
			if (sj[q].nomem)
				rc = -2;
		}
		for (q = 0; q < nj; q++)
			free(sj[q].hits);
		if (rc == -2)
			goto nomem;
	}
	for (k = 0; k < d->nitems; k++)
		nhit += hit[k];
	if (nhit > 0) {
		struct job j;
		struct scratch sc = { 0 };

		/* pass 1 wrote the objects without references: replaced */
		for (t = 0; t < cs->nouts; t++) {
			struct tout *o = &cs->outs[t];

			for (i = 0; i < o->nrecs; i++) {
				uint32_t it = o->recs[i].item;

				if (it == 0 || !hit[it - 1] || o->recs[i].dropped)
					continue;
				o->recs[i].dropped = 1;
				o->counts[o->recs[i].op]--;
			}
		}
		memset(&j, 0, sizeof j);
		j.d = d;
		j.out = &cs->outs[0];
		for (k = 0; k < d->nitems; k++) {
			if (!hit[k] || d->fs[d->items[k].flow].has_refs)
				continue;
			if (do_item(d, &j, &sc, &d->items[k], 0, err) == -1) {
				scratch_free(&sc);
				goto nomem;
			}
			scratch_reset(&sc);
		}
		scratch_free(&sc);
		if (j.out->failed) {
			*err = j.out->err;
			goto out;
		}
	}
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "out of memory");
out:
	for (u = 0; u < NUNIQNS; u++)
		mm_free(&m[u]);
	free(all);
	free(fp);
	free(nameu);
	free(hit);
	return rc;
}

/* --------------------------------------------------------------- driver */

/* Runs fn over nthreads jobs (the caller's thread runs the first). */
static int
run_jobs(struct job *jobs, int n, void *(*fn)(void *))
{
	pthread_t tid[64];
	int i, started = 0;

	for (i = 1; i < n; i++) {
		if (pthread_create(&tid[i], NULL, fn, &jobs[i]) != 0)
			break;
		started = i;
	}
	fn(&jobs[0]);
	for (i = started + 1; i < n; i++)
		fn(&jobs[i]);   /* threads that could not start */
	for (i = 1; i <= started; i++)
		pthread_join(tid[i], NULL);
	return 0;
}

static int
rec_cmp(const void *x, const void *y)
{
	const struct rec *a = x, *b = y;
	size_t n;
	int c;

	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	n = a->anchorlen < b->anchorlen ? a->anchorlen : b->anchorlen;
	if ((c = memcmp(a->anchor, b->anchor, n)) != 0)
		return c;
	if (a->anchorlen != b->anchorlen)
		return a->anchorlen < b->anchorlen ? -1 : 1;
	n = a->len < b->len ? a->len : b->len;
	if ((c = memcmp(a->line, b->line, n)) != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* 1 when a flow needs the sources' canonical DNs (references, member_of,
 * scope by OU). */
static int
need_dns(const struct rules *r)
{
	size_t fi, ai;

	for (fi = 0; fi < r->nflows; fi++) {
		if (r->flows[fi].member_of || r->flows[fi].inc_ous.n ||
		    r->flows[fi].exc_ous.n)
			return 1;
		for (ai = 0; ai < r->flows[fi].nattrs; ai++)
			if (r->flows[fi].attrs[ai].reference)
				return 1;
	}
	return 0;
}

/*
 * The U_* of target attribute name of flow f, or -1: on Graph, every
 * kind for users, the addresses for groups (a security group's
 * mailNickname need not be unique).
 */
static int
uniq_of(const struct dctx *d, const struct flow *f, const char *name)
{
	int u;

	if (!d->graph || name == NULL || f->totype == SYNC_CONTACT)
		return -1;
	for (u = 0; u < NUNIQ; u++)
		if (strcasecmp(name, uniq_names[u]) == 0)
			break;
	if (u == NUNIQ || (f->totype == SYNC_GROUP && u != U_MAIL &&
	    u != U_PROXY))
		return -1;
	return u;
}

/*
 * The index of the target's objects by what references call them (ids;
 * canonical DNs on LDAP), to name the members of a group in a plan.
 */
static int
index_trefs(struct dctx *d)
{
	const struct snap *t = d->tgt;
	struct mmbatch b = { 0 };
	size_t i, off = 0;

	if (mm_init(&d->trefs, t->nobjs, 0) == -1)
		return -1;
	if (d->tgt_dns && (d->trefarena = malloc(t->aoff - t->arena + 1)) ==
	    NULL)
		return -1;
	b.m = &d->trefs;
	for (i = 0; i < t->nobjs; i++) {
		const struct dobj *o = &t->objs[i];
		size_t n;

		if (d->tgt_dns && o->dn) {
			n = dn_canon_into(t->buf + o->dn, d->trefarena + off);
			if (mmb_add(&b, d->trefarena + off, n, (uint32_t)i) == -1)
				return -1;
			off += n + 1;
		} else if (!d->tgt_dns && mmb_add(&b, t->buf + o->id,
		    strlen(t->buf + o->id), (uint32_t)i) == -1)
			return -1;
	}
	return mmb_flush(&b);
}

/*
 * The target's side of the preparation: which flows are active, and the
 * hard- and soft-match indexes.  Runs in the thread that parsed the
 * target, as soon as it has, while the sources may still be parsed;
 * touches only d->fs.  Soft-match indexes are built here rather than at
 * the first object that needs one, which would build it alone in the
 * sequential join.
 */
static int
prepare_target(struct dctx *d)
{
	const struct rules *r = d->r;
	size_t fi, ai, j;

	int refs = 0, u;

	if ((d->fs = calloc(r->nflows, sizeof *d->fs)) == NULL)
		return -1;
	d->tgt_dns = snap_dns(d->tgt);
	d->graph = d->tgt->conntype && strcmp(d->tgt->conntype, "graph") == 0;
	d->t_upn = name_index(d->tgt, "userPrincipalName");
	d->t_name = name_index(d->tgt, "displayName");
	for (u = 0; u < NUNIQ; u++)
		d->tuniq[u] = name_index(d->tgt, uniq_names[u]);
	if ((d->tover = calloc(d->tgt->nobjs + 1, 1)) == NULL)
		return -1;
	for (fi = 0; fi < r->nflows; fi++) {
		const struct flow *f = &r->flows[fi];
		struct fstate *fs = &d->fs[fi];

		fs->active = strcmp(f->to, d->tgt->connector) == 0;
		if (!fs->active)
			continue;
		fs->joinonly = f->link == LINK_JOIN && f->nattrs == 0 &&
		    f->dn == NULL;
		fs->upn_ai = fs->name_ai = -1;
		fs->mailnick_ai = -1;
		fs->anchor_uniq = (signed char)uniq_of(d, f, f->anchor_attr);
		fs->tanchor = name_index(d->tgt, f->anchor_attr);
		for (j = 0; j < fi; j++)
			if (d->fs[j].active && d->fs[j].hard &&
			    r->flows[j].totype == f->totype &&
			    strcasecmp(r->flows[j].anchor_attr,
			    f->anchor_attr) == 0)
				break;
		if (j < fi) {
			fs->hard = d->fs[j].hard;
		} else {
			if ((fs->hard = calloc(1, sizeof *fs->hard)) == NULL)
				return -1;
			fs->own_hard = 1;
			if (build_index(d, fs->hard, f->totype, f->anchor_attr,
			    0) == -1)
				return -1;
		}
		if ((fs->soft = calloc(f->njoins + 1, sizeof *fs->soft)) == NULL ||
		    (fs->tattr = calloc(f->nattrs + 1, sizeof *fs->tattr)) ==
		    NULL || (fs->uniq = calloc(f->nattrs + 1, 1)) == NULL)
			return -1;
		for (j = 0; j < f->njoins; j++)
			if (build_index(d, &fs->soft[j], f->totype,
			    f->joins[j].target, 1) == -1)
				return -1;
		for (ai = 0; ai < f->nattrs; ai++) {
			const char *an = f->attrs[ai].name;

			fs->tattr[ai] = name_index(d->tgt, an);
			fs->uniq[ai] = (signed char)uniq_of(d, f, an);
			if (strcasecmp(an, "userPrincipalName") == 0)
				fs->upn_ai = (long)ai;
			else if (strcasecmp(an, "displayName") == 0)
				fs->name_ai = (long)ai;
			else if (d->graph && strcasecmp(an, "mailNickname") == 0)
				fs->mailnick_ai = (int)ai;
			if (f->attrs[ai].reference)
				fs->has_refs = refs = 1;
			if (strcasecmp(f->attrs[ai].name, f->anchor_attr) == 0) {
				fs->anchor_add = 1;
				if (!f->attrs[ai].create_only)
					fs->anchor_upd = 1;
			}
		}
	}
	/* the target's DNs name the members of a plan's groups, and find
	 * the DNs an add would take */
	for (fi = 0; !refs && d->tgt_dns && fi < r->nflows; fi++)
		refs = d->fs[fi].active && r->flows[fi].dn != NULL;
	return refs ? index_trefs(d) : 0;
}

/*
 * A source's side: the canonical DN -> object index, for references and
 * member_of; on a source without DNs, the id -> object index.  Runs in the thread that parsed source si; touches only
 * d->dnidx[si] and d->dnarena[si].
 */
static int
prepare_source(struct dctx *d, size_t si, const struct snap *s)
{
	size_t i, off = 0;
	struct mmbatch b = { 0 };
	uint32_t *canon;
	char *arena;

	if (!need_dns(d->r))
		return mm_init(&d->dnidx[si], 1, 0);
	/* Microsoft Graph's references (members) are object ids */
	if (!snap_dns(s)) {
		if (mm_init(&d->dnidx[si], s->nobjs, 0) == -1)
			return -1;
		b.m = &d->dnidx[si];
		for (i = 0; i < s->nobjs; i++)
			if (mmb_add(&b, s->buf + s->objs[i].id,
			    strlen(s->buf + s->objs[i].id), (uint32_t)i) == -1)
				return -1;
		return mmb_flush(&b);
	}
	/*
	 * One arena: a canonical DN is never longer than the DN, and every
	 * DN is in the snapshot's arena (with its NUL), so what that arena
	 * holds is enough; pages past what is used are never touched.
	 */
	if ((arena = d->dnarena[si] = malloc(s->aoff - s->arena + 1)) == NULL ||
	    (canon = d->dncanon[si] = calloc(s->nobjs + 1, sizeof *canon)) ==
	    NULL || mm_init(&d->dnidx[si], s->nobjs, 0) == -1)
		return -1;
	b.m = &d->dnidx[si];
	for (i = 0; i < s->nobjs; i++) {
		size_t n;

		if (s->objs[i].dn == 0)
			continue;
		n = dn_canon_into(s->buf + s->objs[i].dn, arena + off);
		if (mmb_add(&b, arena + off, n, (uint32_t)i) == -1)
			return -1;
		canon[i] = (uint32_t)off + 1;
		off += n + 1;
	}
	return mmb_flush(&b);
}

/* 1 when s has an object of type t. */
static int
has_type(const struct snap *s, enum sync_objtype t)
{
	size_t i;

	for (i = 0; i < s->nobjs; i++)
		if (s->objs[i].type == t)
			return 1;
	return 0;
}

/* 1 when flow f reads connector conn. */
static int
flow_reads(const struct flow *f, const char *conn)
{
	size_t j;

	for (j = 0; j < f->nfrom; j++)
		if (strcmp(f->from[j].conn, conn) == 0)
			return 1;
	return 0;
}

/*
 * Warnings for the source attributes a flow reads that no object of its
 * source snapshots has: a typo ([givenNme]) would otherwise give empty
 * values without a word.  Only a warning: in a small directory an
 * attribute may be empty everywhere.  Once per flow attribute and name.
 */
static int
missing_attrs(struct dctx *d)
{
	const struct rules *r = d->r;
	struct sync_strv names = { 0 }, files = { 0 };
	struct sync_buf msg = { 0 };
	struct sync_err e2;
	size_t fi, ai, i, j, si;
	int rc = 0;

	for (fi = 0; fi < r->nflows && rc == 0; fi++) {
		const struct flow *f = &r->flows[fi];

		if (!d->fs[fi].active)
			continue;
		for (ai = 0; ai < f->nattrs && rc == 0; ai++) {
			const struct flowattr *fa = &f->attrs[ai];

			if (fa->e == NULL || fa->kind == FA_CONST)
				continue;
			sync_strv_release(&names);
			if (sync_expr_attrs(fa->e, &names, &e2) == -1) {
				rc = -1;
				break;
			}
			for (i = 0; i < names.n && rc == 0; i++) {
				size_t objs = 0, found = 0;

				if (attr_ref(d->src[0], names.v[i]) <= PSEUDO_ANCHOR)
					continue;
				/* a flow from the target to itself that reads
				 * the attribute it fills (mS-DS-ConsistencyGuid
				 * when empty): empty everywhere at first */
				if (strcasecmp(names.v[i], fa->name) == 0 &&
				    flow_reads(f, f->to))
					continue;
				sync_strv_release(&files);
				for (j = 0; j < f->nfrom; j++)
					for (si = 0; si < d->nsrc; si++) {
						const struct snap *s = d->src[si];

						if (strcmp(s->connector, f->from[j].conn) != 0)
							continue;
						objs += has_type(s, f->from[j].type);
						if (sync_strv_contains(&files, s->path))
							continue;
						found |= name_index(s, names.v[i]) >= 0;
						if (sync_strv_add(&files, s->path) == -1)
							rc = -1;
					}
				if (found || objs == 0 || files.n == 0)
					continue;
				sync_buf_reset(&msg);
				sync_buf_addf(&msg, "%s: warning: flow '%s', attribute '%s': no "
				    "object in ", fa->pos.p ? fa->pos.p : "?",
				    f->name, fa->name);
				for (j = 0; j < files.n; j++)
					sync_buf_addf(&msg, "%s'%s'", j ? (j + 1 ==
					    files.n ? " or " : ", ") : "", files.v[j]);
				if (sync_buf_addf(&msg, " has the source attribute "
				    "'%s'", names.v[i]) == -1 ||
				    sync_strv_add(&d->warnings, msg.p) == -1)
					rc = -1;
			}
		}
	}
	sync_strv_release(&names);
	sync_strv_release(&files);
	sync_buf_release(&msg);
	return rc;
}

/* The rest, once every snapshot is parsed and prepared. */
static int
prepare(struct dctx *d, struct sync_err *err)
{
	const struct rules *r = d->r;
	size_t fi, si, ai, j, i;

	if (d->fs == NULL)
		return sync_errf(err, "out of memory");
	for (fi = 0; fi < r->nflows; fi++) {
		const struct flow *f = &r->flows[fi];
		struct fstate *fs = &d->fs[fi];

		if (!fs->active)
			continue;
		for (j = 0; j < f->nfrom; j++) {
			for (si = 0; si < d->nsrc; si++)
				if (strcmp(d->src[si]->connector,
				    f->from[j].conn) == 0)
					break;
			if (si == d->nsrc)
				return sync_errf(err, "flow '%s': no snapshot of "
				    "connector '%s' was given", f->name,
				    f->from[j].conn);
		}
		if ((fs->sattr = calloc(d->nsrc, sizeof *fs->sattr)) == NULL)
			return sync_errf(err, "out of memory");
		for (si = 0; si < d->nsrc; si++) {
			if ((fs->sattr[si] = calloc(f->nattrs + 1,
			    sizeof **fs->sattr)) == NULL)
				return sync_errf(err, "out of memory");
			for (ai = 0; ai < f->nattrs; ai++)
				fs->sattr[si][ai] = f->attrs[ai].direct ?
				    attr_ref(d->src[si], f->attrs[ai].direct) :
				    -1;
		}
	}
	for (fi = 0; fi < r->nflows && !d->fs[fi].active; fi++)
		;
	if (fi == r->nflows)
		return sync_errf(err, "no flow goes to connector '%s' (the "
		    "target snapshot's)", d->tgt->connector);
	if ((d->snapbase = calloc(d->nsrc + 1, sizeof *d->snapbase)) == NULL ||
	    (d->s_upn = calloc(d->nsrc + 1, sizeof *d->s_upn)) == NULL ||
	    (d->s_name = calloc(d->nsrc + 1, sizeof *d->s_name)) == NULL)
		return sync_errf(err, "out of memory");
	for (si = 0; si < d->nsrc; si++) {
		d->s_upn[si] = name_index(d->src[si], "userPrincipalName");
		d->s_name[si] = name_index(d->src[si], "displayName");
	}
	if (missing_attrs(d) == -1)
		return sync_errf(err, "out of memory");
	for (si = 0; si < d->nsrc; si++) {
		d->snapbase[si] = d->nitems;
		d->nitems += d->src[si]->nobjs;
	}
	d->snapbase[d->nsrc] = d->nitems;
	if ((d->items = calloc(d->nitems + 1, sizeof *d->items)) == NULL ||
	    (d->tclaim = calloc(d->tgt->nobjs + 1, 1)) == NULL ||
	    (d->tjclaim = calloc(d->tgt->nobjs + 1, 1)) == NULL ||
	    (d->tseen = calloc(d->tgt->nobjs + 1, 1)) == NULL)
		return sync_errf(err, "out of memory");
	for (si = 0; si < d->nsrc; si++)
		for (i = 0; i < d->src[si]->nobjs; i++) {
			struct item *it = &d->items[d->snapbase[si] + i];

			it->snap = (uint32_t)si;
			it->obj = (uint32_t)i;
			it->flow = -1;
		}
	return 0;
}

struct loadjob {
	const char *path;
	struct dctx *d;
	size_t si;              /* source index; d->nsrc for the target */
	struct snap *s;         /* borrowed: d owns it */
	int nomem;              /* the preparation ran out of memory */
	struct sync_err err;
};

/* Parses one snapshot into d and prepares its side of the diff. */
static void *
load_one(void *arg)
{
	struct loadjob *l = arg;
	struct dctx *d = l->d;

	if ((l->s = snap_load(l->path, &l->err)) == NULL)
		return NULL;
	if (l->s->delta) {
		/* What it lacks would be taken for deleted. */
		sync_errf(&l->err, "%s: a delta snapshot (kind \"delta\") "
		    "holds only what changed; sync-diff needs a full one",
		    l->path);
		snap_free(l->s);
		l->s = NULL;
		return NULL;
	}
	if (l->si == d->nsrc) {
		d->tgt = l->s;
		l->nomem = prepare_target(d) == -1;
	} else {
		d->src[l->si] = l->s;
		l->nomem = prepare_source(d, l->si, l->s) == -1;
	}
	return NULL;
}

static void
dctx_release(struct dctx *d)
{
	size_t i, j;

	if (d->fs)
		for (i = 0; i < d->r->nflows; i++) {
			if (d->fs[i].own_hard) {
				mm_free(d->fs[i].hard);
				free(d->fs[i].hard);
			}
			for (j = 0; d->fs[i].soft && j < d->r->flows[i].njoins; j++)
				mm_free(&d->fs[i].soft[j]);
			free(d->fs[i].soft);
			free(d->fs[i].tattr);
			free(d->fs[i].uniq);
			for (j = 0; d->fs[i].sattr && j < d->nsrc; j++)
				free(d->fs[i].sattr[j]);
			free(d->fs[i].sattr);
		}
	free(d->fs);
	for (i = 0; i < d->nitems; i++) {
		free(d->items[i].anchorbuf);
		free(d->items[i].msg);
		free(d->items[i].cands);
	}
	free(d->items);
	for (i = 0; d->dnidx && i < d->nsrc; i++) {
		mm_free(&d->dnidx[i]);
		free(d->dnarena[i]);
		free(d->dncanon[i]);
	}
	free(d->dnidx);
	free(d->dnarena);
	free(d->dncanon);
	free(d->snapbase);
	free(d->s_upn);
	free(d->s_name);
	mm_free(&d->trefs);
	free(d->trefarena);
	free(d->tover);
	sync_strv_release(&d->warnings);
	free(d->tclaim);
	free(d->tjclaim);
	free(d->tseen);
	free(d->orphans);
	mm_free(&d->addanchors);
	for (i = 0; i < d->nsrc; i++)
		snap_free(d->src[i]);
	free(d->src);
	snap_free(d->tgt);
}

static int
add_header(struct sync_changeset *cs, struct dctx *d,
    const struct sync_config *cfg, const char *const *srcpaths,
    const char *tgtpath, struct sync_err *err)
{
	struct sync_buf *b = &cs->header;
	size_t i;
	int k;

	if (sync_buf_adds(b, "{\"config\":\"") == -1 ||
	    sync_buf_adds(b, cfg->digest_hex) == -1 ||
	    sync_buf_adds(b, "\",\"counts\":{") == -1)
		goto nomem;
	/* the counts, their keys in sorted order */
	{
		static const enum op order[NOPS] = { OP_ADD, OP_CONFLICT,
		    OP_DELETE, OP_ERROR, OP_MOVE, OP_RENAME, OP_UPDATE };

		for (k = 0; k < NOPS; k++)
			if (sync_buf_addf(b, "%s\"%s\":%zu", k ? "," : "",
			    opnames[order[k]], cs->counts[order[k]]) == -1)
				goto nomem;
	}
	if (sync_buf_adds(b, "},\"format\":\"sync-changeset\",\"sources\":[") ==
	    -1)
		goto nomem;
	for (i = 0; i < d->nsrc; i++) {
		const struct snap *s = d->src[i];

		if ((i && sync_buf_addc(b, ',') == -1) ||
		    sync_buf_adds(b, "{\"connector\":") == -1 ||
		    sync_json_addstr(b, s->connector, strlen(s->connector)) == -1 ||
		    sync_buf_adds(b, ",\"file\":") == -1 ||
		    sync_json_addstr(b, srcpaths[i], strlen(srcpaths[i])) == -1 ||
		    sync_buf_addf(b, ",\"objects\":%zu", s->nobjs) == -1 ||
		    (s->time && (sync_buf_adds(b, ",\"time\":") == -1 ||
		    sync_json_addstr(b, s->time, strlen(s->time)) == -1)) ||
		    sync_buf_addc(b, '}') == -1)
			goto nomem;
	}
	if (sync_buf_adds(b, "],\"target\":{\"connector\":") == -1 ||
	    sync_json_addstr(b, d->tgt->connector, strlen(d->tgt->connector)) ==
	    -1 ||
	    sync_buf_adds(b, ",\"file\":") == -1 ||
	    sync_json_addstr(b, tgtpath, strlen(tgtpath)) == -1 ||
	    sync_buf_addf(b, ",\"objects\":%zu", d->tgt->nobjs) == -1 ||
	    (d->tgt->time && (sync_buf_adds(b, ",\"time\":") == -1 ||
	    sync_json_addstr(b, d->tgt->time, strlen(d->tgt->time)) == -1)) ||
	    sync_buf_addf(b, "},\"threshold\":{\"count\":%ld,\"deletes\":%zu,"
	    "\"exceeded\":%s,\"percent\":", cs->threshold_count,
	    cs->counts[OP_DELETE], cs->exceeded ? "true" : "false") == -1 ||
	    (cs->threshold_percent < 0 ? sync_buf_adds(b, "null") :
	    sync_buf_addf(b, "%ld", cs->threshold_percent)) == -1 ||
	    sync_buf_addf(b, "},\"version\":%d}", SYNC_CHANGESET_VERSION) == -1)
		goto nomem;
	return 0;
nomem:
	return sync_errf(err, "out of memory");
}

struct sync_changeset *
sync_diff_run(struct sync_config *cfg, const char *const *srcpaths,
    size_t nsrc, const char *tgtpath, int nthreads, struct sync_err *err)
{
	struct rules rules;
	struct dctx d = { 0 };
	struct sync_changeset *cs = NULL;
	struct loadjob *lj = NULL;
	struct job jobs[64];
	pthread_t tid[65];
	size_t i, k, n, per;
	int t;

	memset(jobs, 0, sizeof jobs);
	if (rules_load(&rules, cfg, err) == -1) {
		rules_release(&rules);
		return NULL;
	}
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 64)
		nthreads = 64;
	d.r = &rules;
	d.nthreads = nthreads;

	/*
	 * load: one thread per file, each of which then builds the indexes
	 * of its side (prepare_target, prepare_source) while the others
	 * may still be parsing.
	 */
	if ((lj = calloc(nsrc + 1, sizeof *lj)) == NULL ||
	    (d.src = calloc(nsrc + 1, sizeof *d.src)) == NULL ||
	    (d.dnidx = calloc(nsrc + 1, sizeof *d.dnidx)) == NULL ||
	    (d.dnarena = calloc(nsrc + 1, sizeof *d.dnarena)) == NULL ||
	    (d.dncanon = calloc(nsrc + 1, sizeof *d.dncanon)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	d.nsrc = nsrc;
	for (i = 0; i <= nsrc; i++) {
		lj[i].path = i < nsrc ? srcpaths[i] : tgtpath;
		lj[i].d = &d;
		lj[i].si = i;
	}
	for (i = 1; i <= nsrc; i++) {
		if (i <= 64 && pthread_create(&tid[i], NULL, load_one,
		    &lj[i]) == 0)
			continue;
		if (i <= 64)
			tid[i] = 0;
		load_one(&lj[i]);
	}
	load_one(&lj[0]);
	for (i = 1; i <= nsrc && i <= 64; i++)
		if (tid[i])
			pthread_join(tid[i], NULL);
	for (i = 0; i <= nsrc; i++)
		if (lj[i].s == NULL) {
			*err = lj[i].err;
			goto out;
		}
	for (i = 0; i <= nsrc; i++)
		if (lj[i].nomem) {
			sync_errf(err, "out of memory");
			goto out;
		}
	for (i = 0; i < nsrc; i++)
		for (k = 0; k < i; k++)
			if (strcmp(d.src[i]->connector, d.src[k]->connector) == 0) {
				sync_errf(err, "'%s' and '%s': two snapshots of "
				    "connector '%s'", srcpaths[k], srcpaths[i],
				    d.src[i]->connector);
				goto out;
			}
	for (i = 0; i <= nsrc; i++) {
		struct snap *s = i < nsrc ? d.src[i] : d.tgt;
		struct sync_err ignore;

		s->conn = s->connector ? sync_config_connector(cfg,
		    s->connector, &ignore) : NULL;
	}
	if (prepare(&d, err) == -1)
		goto out;

	/* scope */
	per = (d.nitems + (size_t)nthreads - 1) / (size_t)nthreads;
	for (t = 0; t < nthreads; t++) {
		jobs[t].d = &d;
		jobs[t].lo = (size_t)t * per < d.nitems ? (size_t)t * per : d.nitems;
		jobs[t].hi = jobs[t].lo + per < d.nitems ? jobs[t].lo + per :
		    d.nitems;
	}
	run_jobs(jobs, nthreads, phase_scope);

	/* join */
	if (phase_join(&d, &jobs[0].ec, err) == -1)
		goto out;

	/* flows */
	if ((cs = calloc(1, sizeof *cs)) == NULL ||
	    (cs->outs = calloc((size_t)nthreads, sizeof *cs->outs)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	cs->nouts = (size_t)nthreads;
	d.outs = cs->outs;
	k = (d.norphans + (size_t)nthreads - 1) / (size_t)nthreads;
	for (t = 0; t < nthreads; t++) {
		jobs[t].out = &cs->outs[t];
		jobs[t].olo = (size_t)t * k < d.norphans ? (size_t)t * k :
		    d.norphans;
		jobs[t].ohi = jobs[t].olo + k < d.norphans ? jobs[t].olo + k :
		    d.norphans;
	}
	for (t = 0; t < nthreads; t++)
		jobs[t].pass = 1;
	run_jobs(jobs, nthreads, phase_flows);
	for (t = 0; t < nthreads; t++)
		if (cs->outs[t].failed) {
			*err = cs->outs[t].err;
			goto fail;
		}
	if (d.graph && predict_conflicts(&d, cs, err) == -1)
		goto fail;
	for (t = 0; t < nthreads; t++)
		jobs[t].pass = 2;
	run_jobs(jobs, nthreads, phase_flows);
	for (t = 0; t < nthreads; t++)
		if (cs->outs[t].failed) {
			*err = cs->outs[t].err;
			goto fail;
		}

	/* sort */
	for (t = 0, n = 0; t < nthreads; t++)
		n += cs->outs[t].nrecs;
	if ((cs->recs = calloc(n + 1, sizeof *cs->recs)) == NULL) {
		sync_errf(err, "out of memory");
		goto fail;
	}
	for (t = 0; t < nthreads; t++) {
		struct tout *o = &cs->outs[t];

		for (i = 0; i < o->nrecs; i++) {
			struct rec *r;

			if (o->recs[i].dropped)
				continue;
			r = &cs->recs[cs->nrecs++];
			r->name = o->buf.p + o->recs[i].noff;
			r->namelen = o->recs[i].nlen;
			r->anchor = o->buf.p + o->recs[i].aoff;
			r->anchorlen = (uint32_t)o->recs[i].alen;
			r->line = o->buf.p + o->recs[i].loff;
			r->len = o->recs[i].llen;
			r->type = o->recs[i].type;
		}
		for (k = 0; k < NOPS; k++)
			cs->counts[k] += o->counts[k];
	}
	if (cs->nrecs > 1)       /* recs is NULL when there are none */
		qsort(cs->recs, cs->nrecs, sizeof *cs->recs, rec_cmp);

	/* policy */
	cs->threshold_count = rules.delete_count;
	cs->threshold_percent = rules.delete_percent;
	cs->target_objects = d.tgt->nobjs;
	if (rules.delete_count > 0 &&
	    cs->counts[OP_DELETE] > (size_t)rules.delete_count)
		cs->exceeded = 1;
	if (rules.delete_percent >= 0 && cs->counts[OP_DELETE] * 100 >
	    (size_t)rules.delete_percent * d.tgt->nobjs)
		cs->exceeded = 1;
	if (add_header(cs, &d, cfg, srcpaths, tgtpath, err) == -1)
		goto fail;
	cs->warnings = d.warnings;
	memset(&d.warnings, 0, sizeof d.warnings);
	/* the threads' warnings: their items are in order, thread by thread */
	for (t = 0; t < nthreads; t++)
		for (i = 0; i < cs->outs[t].warnings.n; i++)
			if (sync_strv_add(&cs->warnings,
			    cs->outs[t].warnings.v[i]) == -1) {
				sync_errf(err, "out of memory");
				goto fail;
			}
	goto out;
fail:
	sync_changeset_free(cs);
	cs = NULL;
out:
	for (t = 0; t < nthreads; t++)
		free(jobs[t].ec.bv);
	dctx_release(&d);
	free(lj);
	rules_release(&rules);
	return cs;
}

void
sync_changeset_free(struct sync_changeset *cs)
{
	size_t i;

	if (cs == NULL)
		return;
	for (i = 0; i < cs->nouts; i++) {
		sync_buf_release(&cs->outs[i].buf);
		free(cs->outs[i].recs);
		free(cs->outs[i].claims);
		sync_buf_release(&cs->outs[i].ckeys);
		sync_strv_release(&cs->outs[i].warnings);
	}
	sync_strv_release(&cs->warnings);
	free(cs->outs);
	free(cs->recs);
	sync_buf_release(&cs->header);
	free(cs);
}

size_t
sync_changeset_nchanges(const struct sync_changeset *cs)
{
	return cs->nrecs;
}

size_t
sync_changeset_errors(const struct sync_changeset *cs)
{
	return cs->counts[OP_ERROR];
}

const char *
sync_changeset_header(const struct sync_changeset *cs)
{
	return cs->header.p;
}

const char *
sync_changeset_line(const struct sync_changeset *cs, size_t i, size_t *len)
{
	*len = cs->recs[i].len;
	return cs->recs[i].line;
}

void
sync_changeset_summary(const struct sync_changeset *cs, struct sync_buf *b)
{
	sync_buf_addf(b, "%zu to add, %zu to update, %zu to delete, %zu to "
	    "move, %zu to rename, %zu conflicts, %zu errors; deletion "
	    "threshold %ld", cs->counts[OP_ADD], cs->counts[OP_UPDATE],
	    cs->counts[OP_DELETE], cs->counts[OP_MOVE], cs->counts[OP_RENAME],
	    cs->counts[OP_CONFLICT], cs->counts[OP_ERROR],
	    cs->threshold_count);
	if (cs->threshold_percent >= 0)
		sync_buf_addf(b, " or %ld%% of %zu", cs->threshold_percent,
		    cs->target_objects);
	sync_buf_adds(b, cs->exceeded ? " EXCEEDED" : " not exceeded");
}

const struct sync_strv *
sync_changeset_warnings(const struct sync_changeset *cs)
{
	return &cs->warnings;
}

static int
name_cmp(const void *x, const void *y)
{
	const struct rec *a = *(const struct rec *const *)x;
	const struct rec *b = *(const struct rec *const *)y;
	size_t n;
	int c;

	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	n = a->namelen < b->namelen ? a->namelen : b->namelen;
	if ((c = strncasecmp(a->name, b->name, n)) != 0)
		return c;
	if (a->namelen != b->namelen)
		return a->namelen < b->namelen ? -1 : 1;
	if ((c = memcmp(a->name, b->name, n)) != 0)
		return c;
	/* equal names: the change set's order (anchor, then line) */
	return a < b ? -1 : a > b;
}

size_t *
changeset_name_order(const struct sync_changeset *cs)
{
	const struct rec **p;
	size_t *order, i;

	if ((p = malloc((cs->nrecs + 1) * sizeof *p)) == NULL ||
	    (order = malloc((cs->nrecs + 1) * sizeof *order)) == NULL) {
		free(p);
		return NULL;
	}
	for (i = 0; i < cs->nrecs; i++)
		p[i] = &cs->recs[i];
	if (cs->nrecs > 1)
		qsort(p, cs->nrecs, sizeof *p, name_cmp);
	for (i = 0; i < cs->nrecs; i++)
		order[i] = (size_t)(p[i] - cs->recs);
	free(p);
	return order;
}
