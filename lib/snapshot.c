/*
 * snapshot.c: directory objects, their JSON line, and the sorted writer.
 *
 * A snapshot is sorted by anchor.  Objects arrive in the directory's
 * order, so the writer keeps each line in an arena; past the memory limit
 * the arena is sorted and spilled to an unlinked temporary file (a run),
 * and the runs are merged at the end.  Memory is then bounded by the
 * limit, not by the number of objects.  The unchanged lines of a delta
 * import's previous snapshot (struct sync_lines) are not a run: each
 * object written is looked up in them, and the kept lines before it are
 * copied in one piece, so that their cost is that of a copy of the file
 * and not of a line-by-line merge.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sync.h"

/* -------------------------------------------------------------- objects */

struct sync_objattr *
sync_obj_attr(struct sync_obj *o, const char *name)
{
	size_t i;

	/*
	 * Called for every attribute of every object: the first letter,
	 * folded, rules out most names before strcasecmp (ORing in 0x20
	 * folds ASCII letters and never separates names that match).
	 */
	for (i = 0; i < o->n; i++)
		if ((o->a[i].name[0] | 0x20) == (name[0] | 0x20) &&
		    strcasecmp(o->a[i].name, name) == 0)
			return &o->a[i];
	return NULL;
}

int
sync_obj_addval(struct sync_obj *o, const char *name, const void *p,
    size_t len, int binary)
{
	struct sync_objattr *a;
	struct sync_bv *v;

	/*
	 * The values of an attribute arrive one after the other: try the
	 * last attribute before searching them all.
	 */
	if (o->n > 0 && strcasecmp(o->a[o->n - 1].name, name) == 0)
		a = &o->a[o->n - 1];
	else
		a = sync_obj_attr(o, name);
	if (a == NULL) {
		if (o->n == o->cap) {
			size_t cap = o->cap ? o->cap * 2 : 16;
			struct sync_objattr *na = realloc(o->a, cap * sizeof *na);

			if (na == NULL)
				return -1;
			o->a = na;
			o->cap = cap;
		}
		a = &o->a[o->n];
		memset(a, 0, sizeof *a);
		if ((a->name = sync_strdup(name)) == NULL)
			return -1;
		o->n++;
	}
	a->binary |= binary;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 4;

		if ((v = realloc(a->v, cap * sizeof *v)) == NULL)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	if ((a->v[a->n].p = sync_strndup(p, len)) == NULL)
		return -1;
	a->v[a->n].len = len;
	a->n++;
	return 0;
}

void
sync_obj_release(struct sync_obj *o)
{
	size_t i, j;

	for (i = 0; i < o->n; i++) {
		for (j = 0; j < o->a[i].n; j++)
			free(o->a[i].v[j].p);
		free(o->a[i].v);
		free(o->a[i].name);
	}
	free(o->a);
	free(o->anchor);
	free(o->id);
	free(o->dn);
	memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------------ JSON */

int
sync_json_addstr(struct sync_buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;
	unsigned char c;

	if (sync_buf_addc(b, '"') == -1)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (sync_buf_add(b, s + start, i - start) == -1)
			return -1;
		start = i + 1;
		switch (c) {
		case '"': if (sync_buf_add(b, "\\\"", 2) == -1) return -1; break;
		case '\\': if (sync_buf_add(b, "\\\\", 2) == -1) return -1; break;
		case '\b': if (sync_buf_add(b, "\\b", 2) == -1) return -1; break;
		case '\f': if (sync_buf_add(b, "\\f", 2) == -1) return -1; break;
		case '\n': if (sync_buf_add(b, "\\n", 2) == -1) return -1; break;
		case '\r': if (sync_buf_add(b, "\\r", 2) == -1) return -1; break;
		case '\t': if (sync_buf_add(b, "\\t", 2) == -1) return -1; break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

			if (sync_buf_add(b, u, 6) == -1)
				return -1;
		}
		}
	}
	if (sync_buf_add(b, s + start, len - start) == -1)
		return -1;
	return sync_buf_addc(b, '"');
}

static int
attr_cmp(const void *x, const void *y)
{
	const struct sync_objattr *a = x, *b = y;

	return strcmp(a->name, b->name);
}

static int
bv_cmp(const void *x, const void *y)
{
	const struct sync_bv *a = x, *b = y;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->p, b->p, n);

	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/*
 * An object has a dozen or two attributes: insertion sort beats qsort,
 * which glibc runs as a merge sort through a temporary buffer, and this
 * runs once per object.
 */
static void
sort_attrs(struct sync_objattr *a, size_t n)
{
	struct sync_objattr t;
	size_t i, j;

	if (n > 32) {
		qsort(a, n, sizeof *a, attr_cmp);
		return;
	}
	for (i = 1; i < n; i++) {
		t = a[i];
		for (j = i; j > 0 && strcmp(a[j - 1].name, t.name) > 0; j--)
			a[j] = a[j - 1];
		a[j] = t;
	}
}

int
sync_obj_json(struct sync_obj *o, struct sync_buf *b, struct sync_err *err)
{
	size_t i, j, nbin = 0;
	char *enc;
	int rc;

	sort_attrs(o->a, o->n);
	for (i = 0; i < o->n; i++) {
		struct sync_objattr *a = &o->a[i];

		if (i > 0 && strcmp(a->name, o->a[i - 1].name) == 0)
			return sync_errf(err, "object '%s': attribute '%s' "
			    "appears twice", o->dn ? o->dn : o->id, a->name);
		if (!a->binary)
			for (j = 0; j < a->n; j++)
				if (!sync_utf8_valid(a->v[j].p, a->v[j].len))
					a->binary = 1;
		if (a->n > 1)
			qsort(a->v, a->n, sizeof *a->v, bv_cmp);
		nbin += a->binary;
	}
	if (sync_buf_adds(b, "{\"anchor\":") == -1 ||
	    sync_json_addstr(b, o->anchor, strlen(o->anchor)) == -1 ||
	    sync_buf_adds(b, ",\"attrs\":{") == -1)
		goto nomem;
	for (i = 0; i < o->n; i++) {
		struct sync_objattr *a = &o->a[i];

		if ((i > 0 && sync_buf_addc(b, ',') == -1) ||
		    sync_json_addstr(b, a->name, strlen(a->name)) == -1 ||
		    sync_buf_adds(b, ":[") == -1)
			goto nomem;
		for (j = 0; j < a->n; j++) {
			if (j > 0 && sync_buf_addc(b, ',') == -1)
				goto nomem;
			if (!a->binary) {
				if (sync_json_addstr(b, a->v[j].p, a->v[j].len) == -1)
					goto nomem;
				continue;
			}
			if ((enc = sync_base64_encode(a->v[j].p, a->v[j].len)) == NULL)
				goto nomem;
			rc = sync_json_addstr(b, enc, strlen(enc));
			free(enc);
			if (rc == -1)
				goto nomem;
		}
		if (sync_buf_addc(b, ']') == -1)
			goto nomem;
	}
	if (sync_buf_addc(b, '}') == -1)
		goto nomem;
	if (nbin) {
		if (sync_buf_adds(b, ",\"binary\":[") == -1)
			goto nomem;
		for (i = 0, j = 0; i < o->n; i++) {
			if (!o->a[i].binary)
				continue;
			if ((j++ > 0 && sync_buf_addc(b, ',') == -1) ||
			    sync_json_addstr(b, o->a[i].name,
			    strlen(o->a[i].name)) == -1)
				goto nomem;
		}
		if (sync_buf_addc(b, ']') == -1)
			goto nomem;
	}
	if (o->dn && (sync_buf_adds(b, ",\"dn\":") == -1 ||
	    sync_json_addstr(b, o->dn, strlen(o->dn)) == -1))
		goto nomem;
	if (sync_buf_adds(b, ",\"id\":") == -1 ||
	    sync_json_addstr(b, o->id, strlen(o->id)) == -1 ||
	    sync_buf_adds(b, ",\"type\":\"") == -1 ||
	    sync_buf_adds(b, sync_objtype_name(o->type)) == -1 ||
	    sync_buf_adds(b, "\"}") == -1)
		goto nomem;
	return 0;
nomem:
	return sync_errf(err, "out of memory");
}

/* ---------------------------------------------------------------- writer */

/*
 * A record in the arena: the anchor, a NUL, the line, a newline.  Runs on
 * disk hold the same bytes, one record after the other.
 */
struct rec {
	size_t off;
	size_t anchorlen;
	size_t len;             /* whole record */
};

/* A sorted run: a temporary file. */
struct run {
	FILE *fp;
	char *abuf, *lbuf;      /* fp's current record */
	size_t acap, lcap;
	const char *anchor;     /* current record, NULL at the end */
	const char *line;       /* with its newline */
	size_t llen;
};

struct sync_snapw {
	const struct sync_snaphdr *hdr;
	size_t memlimit;
	struct sync_buf arena;
	struct rec *recs;
	size_t nrecs, caprecs;
	struct run *runs;
	size_t nruns;
	struct sync_lines *kept;        /* a delta's unchanged lines, or NULL */
	size_t counts[SYNC_NOBJTYPES];
	struct sync_buf line;
};

struct sync_snapw *
sync_snapw_new(const struct sync_snaphdr *hdr, size_t memlimit,
    struct sync_err *err)
{
	struct sync_snapw *w;

	if ((w = calloc(1, sizeof *w)) == NULL) {
		sync_errno(err, "cannot start the snapshot");
		return NULL;
	}
	w->hdr = hdr;
	w->memlimit = memlimit ? memlimit : (size_t)256 << 20;
	return w;
}

size_t
sync_snapw_count(const struct sync_snapw *w, enum sync_objtype t)
{
	return w->counts[t];
}

static int
rec_cmp(const void *x, const void *y, void *base)
{
	const struct rec *a = x, *b = y;

	return strcmp((const char *)base + a->off, (const char *)base + b->off);
}

static void
sort_arena(struct sync_snapw *w)
{
	/*
	 * An empty import has no records and recs is NULL, which qsort_r
	 * must not be given even for no elements (UBSan reports it).
	 */
	if (w->nrecs > 1)
		qsort_r(w->recs, w->nrecs, sizeof *w->recs, rec_cmp,
		    w->arena.p);
}

static int
spill(struct sync_snapw *w, struct sync_err *err)
{
	struct run *runs;
	FILE *fp;
	size_t i;

	sort_arena(w);
	if ((fp = tmpfile()) == NULL)
		return sync_errno(err, "cannot create a temporary file for "
		    "sorting");
	for (i = 0; i < w->nrecs; i++)
		if (fwrite(w->arena.p + w->recs[i].off, 1, w->recs[i].len,
		    fp) != w->recs[i].len)
			break;
	if (i < w->nrecs || fflush(fp) == EOF || ferror(fp)) {
		sync_errno(err, "cannot write a temporary file for sorting");
		fclose(fp);
		return -1;
	}
	rewind(fp);
	if ((runs = realloc(w->runs, (w->nruns + 1) * sizeof *runs)) == NULL) {
		fclose(fp);
		return sync_errno(err, "cannot sort the snapshot");
	}
	w->runs = runs;
	memset(&runs[w->nruns], 0, sizeof *runs);
	runs[w->nruns++].fp = fp;
	sync_buf_reset(&w->arena);
	w->nrecs = 0;
	return 0;
}

int
sync_snapw_add(struct sync_snapw *w, struct sync_obj *o, struct sync_err *err)
{
	struct rec *r;
	size_t alen;

	if (o->anchor == NULL || o->anchor[0] == '\0')
		return sync_errf(err, "object '%s' has no anchor",
		    o->dn ? o->dn : o->id);
	if (!sync_utf8_valid(o->anchor, strlen(o->anchor)))
		return sync_errf(err, "object '%s': anchor is not UTF-8",
		    o->dn ? o->dn : o->id);
	sync_buf_reset(&w->line);
	if (sync_obj_json(o, &w->line, err) == -1)
		return -1;
	if (w->arena.len > 0 && w->arena.len + w->line.len > w->memlimit &&
	    spill(w, err) == -1)
		return -1;
	if (w->nrecs == w->caprecs) {
		size_t cap = w->caprecs ? w->caprecs * 2 : 1024;

		if ((r = realloc(w->recs, cap * sizeof *r)) == NULL)
			return sync_errf(err, "out of memory");
		w->recs = r;
		w->caprecs = cap;
	}
	alen = strlen(o->anchor);
	r = &w->recs[w->nrecs];
	r->off = w->arena.len;
	r->anchorlen = alen;
	if (sync_buf_add(&w->arena, o->anchor, alen + 1) == -1 ||
	    sync_buf_add(&w->arena, w->line.p, w->line.len) == -1 ||
	    sync_buf_addc(&w->arena, '\n') == -1)
		return sync_errf(err, "out of memory");
	r->len = w->arena.len - r->off;
	w->nrecs++;
	w->counts[o->type]++;
	return 0;
}

static int
write_header(struct sync_snapw *w, FILE *fp, struct sync_err *err)
{
	const struct sync_snaphdr *h = w->hdr;
	json_t *hdr, *counts;
	char now[32];
	int i, rc;

	sync_time_now(now);
	counts = json_object();
	for (i = 0; i < SYNC_NOBJTYPES; i++)
		json_object_set_new(counts, sync_objtype_name(i),
		    json_integer((json_int_t)w->counts[i]));
	hdr = json_pack("{s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:o?, s:s, s:o}",
	    "format", SYNC_SNAPSHOT_FORMAT,
	    "version", SYNC_SNAPSHOT_VERSION,
	    "connector", h->connector,
	    "connector_type", h->conntype,
	    "kind", h->kind,
	    "source", h->source,
	    "cookie", h->cookie ? json_string(h->cookie) : json_null(),
	    "time", now,
	    "counts", counts);
	if (hdr == NULL)
		return sync_errf(err, "cannot build the snapshot header");
	rc = json_dumpf(hdr, fp, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(hdr);
	if (rc == -1 || fputc('\n', fp) == EOF)
		return sync_errno(err, "cannot write the snapshot");
	return 0;
}

/* The object type of a line, which ends with ,"type":"NAME"}. */
static enum sync_objtype
type_of(const char *line)
{
	const char *p = strstr(line, ",\"type\":\"");
	int t;

	for (t = 0; p && t < SYNC_NOBJTYPES; t++)
		if (strncmp(p + 9, sync_objtype_name(t),
		    strlen(sync_objtype_name(t))) == 0)
			return t;
	return SYNC_USER;
}

static int
run_next(struct run *r, struct sync_err *err)
{
	ssize_t n;

	if ((n = getdelim(&r->abuf, &r->acap, '\0', r->fp)) == -1) {
		if (ferror(r->fp))
			return sync_errno(err, "cannot read a temporary file");
		free(r->abuf);
		free(r->lbuf);
		r->abuf = r->lbuf = NULL;
		r->acap = r->lcap = 0;
		r->anchor = r->line = NULL;
		return 0;
	}
	if ((n = getline(&r->lbuf, &r->lcap, r->fp)) == -1)
		return sync_errf(err, "temporary sort file is truncated");
	r->anchor = r->abuf;
	r->line = r->lbuf;
	r->llen = (size_t)n;
	return 0;
}

static void
run_rewind(struct run *r)
{
	rewind(r->fp);
}

/*
 * Two records with one anchor: the same entry found twice (overlapping
 * base DNs) gives identical lines and is written once; anything else is
 * two objects claiming one anchor, an error.
 */
static int
dup_anchor(const char *anchor, const char *line1, size_t len1,
    const char *line2, size_t len2, struct sync_err *err)
{
	if (len1 == len2 && memcmp(line1, line2, len1) == 0)
		return 0;
	return sync_errf(err, "two objects have the anchor '%s' (an entry "
	    "matched by two object types, or an anchor attribute that is not "
	    "unique)", anchor);
}

/*
 * Before the record anchor/line goes out, the kept lines before it; with
 * fp NULL nothing is written.  1 when a kept line is that record (the
 * record is then left out), 0 when it is not, -1 on error (two objects
 * with one anchor, or a write).
 */
static int
kept_before(struct sync_snapw *w, FILE *fp, const char *anchor,
    const char *line, size_t len, struct sync_err *err)
{
	struct sync_lines *k = w->kept;
	const char *kl;
	size_t pos, kll;

	if (k == NULL)
		return 0;
	if (k->seek(k->ctx, anchor, &pos, &kl, &kll, err) == -1 ||
	    (fp && k->copy(k->ctx, fp, pos, err) == -1))
		return -1;
	if (kl == NULL)
		return 0;
	if (dup_anchor(anchor, kl, kll, line, len, err) == -1)
		return -1;
	return 1;
}

/*
 * Merges the runs in anchor order.  With fp NULL it only checks for
 * duplicate anchors, so that an error is found before anything is written.
 */
static int
merge(struct sync_snapw *w, FILE *fp, struct sync_err *err)
{
	struct sync_buf prev = { 0 }, prevline = { 0 };
	const char *pa = NULL, *pl = NULL;
	size_t i, best, pll = 0;
	int rc = -1, k;

	if (w->kept)
		w->kept->rewind(w->kept->ctx);
	for (i = 0; i < w->nruns; i++) {
		run_rewind(&w->runs[i]);
		if (run_next(&w->runs[i], err) == -1)
			goto out;
	}
	for (;;) {
		struct run *r;

		best = w->nruns;
		/* Few runs in practice: a linear scan beats a heap here. */
		for (i = 0; i < w->nruns; i++)
			if (w->runs[i].anchor && (best == w->nruns ||
			    strcmp(w->runs[i].anchor, w->runs[best].anchor) < 0))
				best = i;
		if (best == w->nruns)
			break;
		r = &w->runs[best];
		if (pa && strcmp(pa, r->anchor) == 0) {
			if (dup_anchor(r->anchor, pl, pll, r->line, r->llen,
			    err) == -1)
				goto out;
			if (fp == NULL)
				w->counts[type_of(r->line)]--;
			if (run_next(r, err) == -1)
				goto out;
			continue;
		}
		/* kept for the duplicate check of the next record */
		sync_buf_reset(&prev);
		sync_buf_reset(&prevline);
		if (sync_buf_adds(&prev, r->anchor) == -1 ||
		    sync_buf_add(&prevline, r->line, r->llen) == -1) {
			sync_errf(err, "out of memory");
			goto out;
		}
		pa = prev.p;
		pl = prevline.p;
		pll = r->llen;
		if ((k = kept_before(w, fp, r->anchor, r->line, r->llen,
		    err)) == -1)
			goto out;
		if (k == 1 && fp == NULL)
			w->counts[type_of(r->line)]--;
		if (k == 0 && fp && fwrite(r->line, 1, r->llen, fp) != r->llen)
			goto fail;
		if (run_next(r, err) == -1)
			goto out;
	}
	if (fp && w->kept && w->kept->copy(w->kept->ctx, fp, SIZE_MAX,
	    err) == -1)
		goto out;
	rc = 0;
	goto out;
fail:
	sync_errno(err, "cannot write the snapshot");
out:
	sync_buf_release(&prev);
	sync_buf_release(&prevline);
	return rc;
}

int
sync_snapw_write(struct sync_snapw *w, FILE *fp, struct sync_err *err)
{
	size_t i, j;
	int k;

	/* Everything in memory: sorted there, no temporary file. */
	if (w->nruns == 0) {
		sort_arena(w);
		/* Duplicates first: nothing is written if there is one. */
		for (i = 1, j = 0; i < w->nrecs; i++) {
			const struct rec *a = &w->recs[j], *b = &w->recs[i];
			const char *pa = w->arena.p + a->off, *pb = w->arena.p + b->off;

			if (strcmp(pa, pb) != 0) {
				w->recs[++j] = *b;
				continue;
			}
			if (dup_anchor(pa, pa + a->anchorlen + 1,
			    a->len - a->anchorlen - 1, pb + b->anchorlen + 1,
			    b->len - b->anchorlen - 1, err) == -1)
				return -1;
			w->counts[type_of(pb + b->anchorlen + 1)]--;
		}
		if (w->nrecs)
			w->nrecs = j + 1;
		/* a record that is a kept line is left out (len 0) */
		if (w->kept)
			w->kept->rewind(w->kept->ctx);
		for (i = 0; w->kept && i < w->nrecs; i++) {
			struct rec *r = &w->recs[i];
			const char *pa = w->arena.p + r->off;

			if ((k = kept_before(w, NULL, pa, pa + r->anchorlen + 1,
			    r->len - r->anchorlen - 1, err)) == -1)
				return -1;
			if (k == 1) {
				w->counts[type_of(pa + r->anchorlen + 1)]--;
				r->len = 0;
			}
		}
		if (write_header(w, fp, err) == -1)
			return -1;
		if (w->kept)
			w->kept->rewind(w->kept->ctx);
		for (i = 0; i < w->nrecs; i++) {
			const struct rec *r = &w->recs[i];
			const char *line = w->arena.p + r->off + r->anchorlen + 1;
			size_t len = r->len - r->anchorlen - 1;

			if (r->len == 0)
				continue;
			if (kept_before(w, fp, w->arena.p + r->off, line, len,
			    err) == -1)
				return -1;
			if (fwrite(line, 1, len, fp) != len)
				return sync_errno(err, "cannot write the snapshot");
		}
		if (w->kept && w->kept->copy(w->kept->ctx, fp, SIZE_MAX,
		    err) == -1)
			return -1;
		return 0;
	}
	/* The arena becomes the last run; check, then write. */
	if (w->nrecs && spill(w, err) == -1)
		return -1;
	sync_buf_release(&w->arena);
	if (merge(w, NULL, err) == -1 || write_header(w, fp, err) == -1)
		return -1;
	return merge(w, fp, err);
}

void
sync_snapw_free(struct sync_snapw *w)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nruns; i++) {
		if (w->runs[i].fp)
			fclose(w->runs[i].fp);
		free(w->runs[i].abuf);
		free(w->runs[i].lbuf);
	}
	sync_lines_free(w->kept);
	free(w->runs);
	free(w->recs);
	sync_buf_release(&w->arena);
	sync_buf_release(&w->line);
	free(w);
}

int
sync_snapw_lines(struct sync_snapw *w, struct sync_lines *l,
    struct sync_err *err)
{
	int t;

	if (w->kept != NULL) {
		sync_lines_free(l);
		return sync_errf(err, "two sets of kept lines for one "
		    "snapshot");
	}
	w->kept = l;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		w->counts[t] += l->counts[t];
	return 0;
}

void
sync_lines_free(struct sync_lines *l)
{
	if (l == NULL)
		return;
	if (l->release)
		l->release(l->ctx);
	free(l);
}
