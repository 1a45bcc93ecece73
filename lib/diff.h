/*
 * diff.h: the private interface of sync-diff's engine (snapread.c,
 * rules.c, diff.c, changeset.c).  The public entry points are declared
 * at the end of sync.h.
 */
#ifndef SYNC_DIFF_H
#define SYNC_DIFF_H

#include <stdint.h>

#include "sync.h"
#include "sync-expr.h"

/* ------------------------------------------------------------ snapshots */

/*
 * A snapshot held compactly for the diff.  The file is mapped read-only
 * (or read into memory) and everything is 32-bit offsets into it: a
 * string without escapes is where its literal is, neither copied nor
 * NUL-terminated (values, dval: offset and length).  Strings with
 * escapes, base64 values decoded, and the anchor, id and DN of every
 * object (which the diff uses as C strings) are copied into an arena
 * after the file, each followed by a NUL.  A million directory objects
 * cost the file (shared with the page cache), its anchors, ids and DNs
 * again, 8 bytes per value and 8 per attribute.  An attribute's values
 * end where the next attribute's begin: attrs[nattrs] is a sentinel, so
 * that dattr_nv works on the last attribute too.
 */
struct dval {
	uint32_t off, len;
};

struct dattr {
	uint32_t name : 31;     /* index in snap->names */
	uint32_t binary : 1;    /* values are raw bytes (were base64) */
	uint32_t v;             /* values snap->vals[v .. v + dattr_nv()) */
};

struct dobj {
	uint32_t anchor, id, dn;        /* offsets; dn is 0 when absent */
	uint32_t a, na;                 /* attributes snap->attrs[a .. a+na) */
	uint32_t line;
	uint32_t off;                   /* where its line starts in buf */
	uint8_t type;                   /* enum sync_objtype */
};

struct snap {
	char *path;
	char *buf;              /* the file; buf[0] is NUL; then the arena */
	size_t size;
	size_t arena;           /* offset of the arena in buf */
	size_t aoff, aend;      /* its first free byte, its end (offsets) */
	void *map;              /* a private mapping holding buf, or NULL */
	size_t maplen;
	int fd;                 /* the file, open for a delta, or -1 */
	size_t body;            /* offset in buf of the first object's line */
	/* the long lines snap_find has seen: start and end in buf */
	struct snap_long {
		size_t start, end;
	} *longl;
	size_t nlong, caplong;
	char *connector, *conntype, *time;
	/* the config's connector of that name (borrowed), for the
	 * expression parameters; NULL when the config has none */
	const struct sync_connector *conn;
	char *cookie;           /* the header's delta cookie, or NULL */
	int delta;              /* kind "delta": only what changed */
	size_t counts[SYNC_NOBJTYPES];  /* the header's counts */
	struct dobj *objs;
	size_t nobjs, capobjs;
	struct dattr *attrs;
	size_t nattrs, capattrs;
	struct dval *vals;
	size_t nvals, capvals;
	int reserved;           /* objs, attrs, vals are mappings (snap_free) */
	struct sync_strv names; /* interned attribute names, first spelling */
	struct sync_err err;    /* for the parsing thread */
};

#define SNAP_STR(s, off) ((s)->buf + (off))

/* The number of values of attribute a. */
static inline uint32_t
dattr_nv(const struct dattr *a)
{
	return a[1].v - a[0].v;
}

/*
 * Reads and checks a snapshot file.  Returns a new snapshot (free with
 * snap_free), or NULL with err "file:line:col: message".
 */
struct snap *snap_load(const char *path, struct sync_err *err);
/*
 * The same without the attributes (every na is 0, their values are not
 * checked): the anchor, id, DN, type and line of each object, for a
 * delta import, which copies the lines of the objects it keeps.  A
 * fraction of the time and memory of snap_load.
 */
struct snap *snap_load_skel(const char *path, struct sync_err *err);
/*
 * The header of a snapshot, for a delta import: the file is mapped and
 * stays open (s->fd), its first line is parsed and checked, and of the
 * rest only that it ends a line; s->nobjs is 0.  snap_find looks
 * objects up in it.
 */
struct snap *snap_load_head(const char *path, struct sync_err *err);
/*
 * A binary search of s's lines by anchor (in s->objs when they were
 * parsed, else in the file, which is in anchor order): *off is the
 * offset in the file of the first line whose anchor is not below
 * anchor (the file's size when there is none) and *len that line's
 * length with its newline (0 at the end).  1 when that line's anchor is
 * anchor, 0 when not, -1 (err set) when a line looked at is not as the
 * writer writes it.
 */
int snap_find(struct snap *s, const char *anchor, size_t *off,
    size_t *len, struct sync_err *err);
/*
 * For a delta import, prev's unchanged objects as lines for
 * sync_snapw_lines, copied from the file as they are: snap_lines_new
 * starts an empty set (NULL when out of memory), snap_lines_add adds
 * object i (in increasing i) of a parsed snapshot, snap_lines_range
 * the bytes off..off+len of the file (lines, in increasing offsets,
 * the caller counting them in l->counts), snap_lines_take hands s over
 * to the lines (sync_lines_free frees it).  The lines are read only
 * after that.  -1 when out of memory.
 */
struct sync_lines *snap_lines_new(const struct snap *s);
int snap_lines_add(struct sync_lines *l, const struct snap *s, size_t i);
int snap_lines_range(struct sync_lines *l, size_t off, size_t len);
/*
 * Where a line of anchor goes in the output, when the caller knows it
 * (in increasing anchors): pos as snap_find gives it, and len, the
 * length of a kept line of that anchor at pos, or 0.  The writer then
 * does not search the file for it.  -1 when out of memory.
 */
int snap_lines_hint(struct sync_lines *l, const char *anchor, size_t pos,
    size_t len);
void snap_lines_take(struct sync_lines *l, struct snap *s);
/* Parses a snapshot from memory; buf is taken (freed by snap_free). */
struct snap *snap_parse(const char *name, char *buf, size_t len,
    struct sync_err *err);
/* The same as snap_load_skel (for the fuzz target). */
struct snap *snap_parse_skel(const char *name, char *buf, size_t len,
    struct sync_err *err);
void snap_free(struct snap *s);
/*
 * A previous snapshot a delta import of connector can start from: a full
 * one (a delta snapshot holds only what changed) of that connector.
 * -1 with err naming path otherwise.
 */
int snap_delta_base(const struct snap *s, const char *path,
    const char *connector, struct sync_err *err);
/* The attribute name of o (case-insensitive), or NULL. */
const struct dattr *snap_attr(const struct snap *s, const struct dobj *o,
    const char *name);

/*
 * A DN in a canonical form for hashing and comparing: attribute types and
 * ASCII values in lower case, spaces around separators removed.  Returns
 * a new string the caller frees, or NULL when out of memory.
 */
char *dn_canon(const char *dn);
/* The same of the len bytes at dn (no NUL needed there). */
char *dn_canon_n(const char *dn, size_t len);
/* The same into out, which has room for strlen(dn) + 1 bytes (out may be
 * dn); returns the canonical DN's length. */
size_t dn_canon_into(const char *dn, char *out);
/* 1 when canonical dn is base or below it. */
int dn_canon_under(const char *dn, const char *base);

/* ---------------------------------------------------------------- rules */

enum flowkind { FA_EXPR, FA_DIRECT, FA_CONST };
enum oos { OOS_DELETE, OOS_DISABLE, OOS_LEAVE };
/*
 * What a flow may do to the target (Entra Connect's link type):
 * provision creates, updates and deletes; join only updates the objects
 * it joins, and with no attributes and no dn only joins, for the
 * references of other flows.
 */
enum link { LINK_PROVISION, LINK_JOIN };

struct flowattr {
	char *name;             /* target attribute */
	enum flowkind kind;
	struct sync_expr *e;    /* FA_EXPR */
	char *direct;           /* FA_DIRECT: source attribute */
	struct sync_strv konst; /* FA_CONST: the values */
	int create_only;
	int reference;          /* values are source DNs to resolve */
	struct sync_buf pos;    /* "file:line:column" of its key */
};

struct joinrule {
	char *name;
	struct sync_expr *e;
	char *direct;           /* source attribute, when e is [name] */
	char *target;           /* target attribute compared, case-insensitive */
};

struct source {
	char *conn;
	enum sync_objtype type;
};

struct flow {
	char *name;
	struct source *from;
	size_t nfrom;
	char *to;
	enum sync_objtype totype;
	struct sync_strv inc_ous, exc_ous;      /* canonical DNs */
	char *member_of;                        /* canonical DN */
	struct sync_expr *filter;
	enum oos oos;
	enum link link;
	struct sync_strv disable_names, disable_vals;
	struct sync_expr *anchor_src;           /* NULL: the snapshot anchor */
	char *anchor_attr;                      /* on the target */
	char *anchor_prefix;    /* ours: an anchor value with it, or NULL */
	struct joinrule *joins;
	size_t njoins;
	struct flowattr *attrs;
	size_t nattrs;
	struct sync_expr *dn;                   /* target DN, LDAP targets */
};

struct rules {
	struct flow *flows;
	size_t nflows;
	long delete_count;      /* default 500; 0 turns the count off */
	long delete_percent;    /* -1 when not set */
	long large;             /* values past which add/remove is used */
};

/*
 * The indexes of cs's changes in the order of the text view: by object
 * type, then name (ignoring ASCII case), then as in the change set.
 * Returns a new array of sync_changeset_nchanges(cs) indexes the caller
 * frees, or NULL when out of memory.
 */
size_t *changeset_name_order(const struct sync_changeset *cs);

/* Parses the flows and policy sections of cfg->root into r. */
int rules_load(struct rules *r, struct sync_config *cfg, struct sync_err *err);
void rules_release(struct rules *r);

#endif
