/*
 * snapread.c: reads a snapshot (sync-snapshot(5)) into the compact form
 * the diff works on.
 *
 * jansson would build a tree per object, many times the size of the text
 * and too slow for a million objects, so object lines are parsed by hand:
 * the grammar is small (an object of strings, an object of arrays of
 * strings, an array of strings).  Strings are checked for UTF-8 and left
 * in the read-only file unless they must be decoded or NUL-terminated
 * (see diff.h); every error names file:line:column.  The header line,
 * one per file, goes through jansson.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conn.h"
#include "diff.h"

/* What load and parse_buf read of a file. */
enum { LOAD_FULL, LOAD_SKEL, LOAD_HEAD };

struct pctx {
	struct snap *s;
	const char *name;
	char *line;             /* start of the current line */
	uint32_t lineno;
	/* attribute-name hash: slot -> index + 1 */
	uint32_t *ht;
	size_t htcap;
	/* the name index of the attribute at each position of the last
	 * object: objects of one snapshot list the same names in order */
	long pos[32];
	uint32_t poslen[32];    /* the length of that name */
	int skel;               /* objects without their attributes */
};

static int
perr(struct pctx *c, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The first byte at or after p that a string literal cannot hold as it
 * is: '"', '\\', a control character or a byte of 0x80 and above (the
 * caller checks UTF-8 there).  Eight bytes are tested at a time: the
 * scan may read up to seven bytes past the NUL that ends the text, which
 * is why the buffer is followed by readable memory (see snap_load and
 * snap_parse).  In each test a byte's borrow can only flag bytes above
 * it, so the lowest flagged byte is always a true stop.
 */
static const char *
plain_end(const char *p)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	uint64_t w, q, b, m;

	for (;; p += 8) {
		memcpy(&w, p, sizeof w);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		w = __builtin_bswap64(w);       /* the first byte lowest */
#endif
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		m = ((q - ones) & ~q) | ((b - ones) & ~b) |
		    ((w - ones * 0x20) & ~w) | w;
		m &= high;
		if (m != 0)
			break;
	}
	return p + (__builtin_ctzll(m) >> 3);
}

static int
perr(struct pctx *c, const char *at, const char *fmt, ...)
{
	struct sync_err *err = &c->s->err;
	va_list ap;
	int n;

	n = snprintf(err->msg, sizeof err->msg, "%s:%u:%ld: ", c->name,
	    c->lineno, (long)(at - c->line) + 1);
	if (n < 0 || (size_t)n >= sizeof err->msg)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
	va_end(ap);
	return -1;
}

static void
skipws(char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
hex4(const char *p)
{
	int i, v = 0, h;

	for (i = 0; i < 4; i++) {
		if ((h = hexval((unsigned char)p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static int
utf8_seq(const unsigned char *p)
{
	unsigned c = p[0];

	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0;       /* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0;       /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Room for n more bytes in the arena, or NULL.  The arena holds every
 * string that is copied: each is a literal of the file copied once, and
 * no longer decoded (with its NUL) than with its quotes, so an arena of
 * the file's size never overflows; offsets must still fit 32 bits.
 */
static char *
arena_at(struct pctx *c, size_t n)
{
	struct snap *s = c->s;

	if (s->aoff + n > s->aend || s->aoff + n > UINT32_MAX)
		return NULL;
	return s->buf + s->aoff;
}

/*
 * Parses the string literal at *pp; *off and *len locate its decoded
 * bytes.  Most literals have no escapes: they stay where they are in
 * the (read-only) file, not NUL-terminated.  A literal with escapes is
 * decoded into the arena, and so is every literal when nul is set,
 * followed by a NUL there.
 */
static int
pstring(struct pctx *c, char **pp, uint32_t *off, uint32_t *len, int nul)
{
	char *p = *pp, *start, *seg, *w = NULL, *w0 = NULL;
	unsigned char ch;
	int u, u2, n;

	if (*p != '"')
		return perr(c, p, *p == '\n' || *p == '\0' ?
		    "unexpected end of line, expected a string" :
		    "expected a string");
	start = seg = ++p;
	for (;;) {
		p = (char *)plain_end(p);
		ch = (unsigned char)*p;
		if (ch == '"')
			break;
		if (ch >= 0x80) {
			if ((n = utf8_seq((const unsigned char *)p)) == 0)
				return perr(c, p, "invalid UTF-8");
			p += n;
			continue;
		}
		if (ch == '\n' || ch == '\0')
			return perr(c, p, "unexpected end of line in a string");
		if (ch != '\\')
			return perr(c, p, "control character in a string");
		/* an escape: the literal is decoded into the arena */
		if (w == NULL) {
			if ((w0 = w = arena_at(c, 0)) == NULL)
				return perr(c, p, "file too large (4 GiB at most)");
		}
		memcpy(w, seg, (size_t)(p - seg));
		w += p - seg;
		p++;
		switch (*p) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '/': *w++ = '/'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			if ((u = hex4(p + 1)) < 0)
				return perr(c, p - 1, "invalid \\u escape");
			p += 4;
			if (u == 0)
				return perr(c, p - 5, "NUL character in a string");
			if (u >= 0xdc00 && u <= 0xdfff)
				return perr(c, p - 5, "lone low surrogate");
			if (u >= 0xd800 && u <= 0xdbff) {
				if (p[1] != '\\' || p[2] != 'u' ||
				    (u2 = hex4(p + 3)) < 0xdc00 || u2 > 0xdfff)
					return perr(c, p - 5, "lone high surrogate");
				p += 6;
				u = 0x10000 + ((u - 0xd800) << 10) + (u2 - 0xdc00);
			}
			if (u < 0x80) {
				*w++ = (char)u;
			} else if (u < 0x800) {
				*w++ = (char)(0xc0 | u >> 6);
				*w++ = (char)(0x80 | (u & 0x3f));
			} else if (u < 0x10000) {
				*w++ = (char)(0xe0 | u >> 12);
				*w++ = (char)(0x80 | (u >> 6 & 0x3f));
				*w++ = (char)(0x80 | (u & 0x3f));
			} else {
				*w++ = (char)(0xf0 | u >> 18);
				*w++ = (char)(0x80 | (u >> 12 & 0x3f));
				*w++ = (char)(0x80 | (u >> 6 & 0x3f));
				*w++ = (char)(0x80 | (u & 0x3f));
			}
			break;
		default:
			return perr(c, p - 1, "invalid escape in a string");
		}
		p++;
		seg = p;
	}
	*pp = p + 1;
	if (w == NULL && !nul) {
		*off = (uint32_t)(start - c->s->buf);
		*len = (uint32_t)(p - start);
		return 0;
	}
	if (w == NULL && (w0 = w = arena_at(c, (size_t)(p - start) + 1)) ==
	    NULL)
		return perr(c, start - 1, "file too large (4 GiB at most)");
	memcpy(w, seg, (size_t)(p - seg));
	w += p - seg;
	*w = '\0';
	*off = (uint32_t)(w0 - c->s->buf);
	*len = (uint32_t)(w - w0);
	c->s->aoff += *len + 1;
	return 0;
}

/*
 * The string at off (len bytes, from pstring) as a C string for the
 * object's anchor, id or DN: in the arena already when it had escapes;
 * the same offset as another of the three when they are equal (an id is
 * often the DN or the anchor); else copied into the arena.  Returns -1
 * with the error set (at names the literal).
 */
static int
cstring(struct pctx *c, const struct dobj *o, uint32_t *off, uint32_t len,
    const char *at)
{
	struct snap *s = c->s;
	const uint32_t other[3] = { o->anchor, o->dn, o->id };
	char *w;
	int i;

	if (*off >= s->arena)
		return 0;
	for (i = 0; i < 3; i++)
		if (other[i] != 0 && memcmp(s->buf + other[i], s->buf + *off,
		    len) == 0 && s->buf[other[i] + len] == '\0') {
			*off = other[i];
			return 0;
		}
	if ((w = arena_at(c, (size_t)len + 1)) == NULL)
		return perr(c, at, "file too large (4 GiB at most)");
	memcpy(w, s->buf + *off, len);
	w[len] = '\0';
	*off = (uint32_t)(w - s->buf);
	s->aoff += (size_t)len + 1;
	return 0;
}

static int
expect(struct pctx *c, char **pp, char ch)
{
	skipws(pp);
	if (**pp != ch) {
		if (**pp == '\n' || **pp == '\0')
			return perr(c, *pp, "unexpected end of line, expected "
			    "'%c'", ch);
		return perr(c, *pp, "expected '%c'", ch);
	}
	(*pp)++;
	skipws(pp);
	return 0;
}

static uint32_t
namehash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (; n > 0; s++, n--)
		h = (h ^ (unsigned char)(*s | 0x20)) * 16777619u;
	return h;
}

/* 1 when the interned name nm is the n bytes at p (case as given). */
static int
name_is(const char *nm, const char *p, size_t n, int icase)
{
	return (icase ? strncasecmp(nm, p, n) : strncmp(nm, p, n)) == 0 &&
	    nm[n] == '\0';
}

/* The index of name among the interned names, or -1 (if !add) . */
static long
intern(struct pctx *c, struct snap *s, const char *name, size_t len,
    int add)
{
	size_t i, mask;
	uint32_t *nt;

	if (c->htcap == 0 || (s->names.n + 1) * 2 > c->htcap) {
		size_t cap = c->htcap ? c->htcap * 2 : 256;

		if ((nt = calloc(cap, sizeof *nt)) == NULL)
			return -2;
		for (i = 0; i < s->names.n; i++) {
			size_t j = namehash(s->names.v[i],
			    strlen(s->names.v[i])) & (cap - 1);

			while (nt[j])
				j = (j + 1) & (cap - 1);
			nt[j] = (uint32_t)i + 1;
		}
		free(c->ht);
		c->ht = nt;
		c->htcap = cap;
	}
	mask = c->htcap - 1;
	for (i = namehash(name, len) & mask; c->ht[i]; i = (i + 1) & mask)
		if (name_is(s->names.v[c->ht[i] - 1], name, len, 1))
			return (long)c->ht[i] - 1;
	if (!add)
		return -1;
	if (sync_strv_addn(&s->names, name, len) == -1)
		return -2;
	c->ht[i] = (uint32_t)s->names.n;
	return (long)s->names.n - 1;
}

/*
 * Arrays grow to what the part of the file parsed so far predicts for the
 * whole file, an eighth more, rather than by doubling: each growth below
 * malloc's mmap threshold copies the array into fresh pages, and at a
 * million objects that copying and faulting cost more than the parsing.
 */
static size_t
grow_to(const struct pctx *c, size_t n, size_t min)
{
	size_t done = (size_t)(c->line - c->s->buf), nc = n ? n * 2 : min;

	if (n >= 1024 && done > 0 && c->s->size / done < 1024) {
		size_t want = n / done * c->s->size + n * (c->s->size % done) /
		    done;

		want += want / 8;
		if (want > nc)
			nc = want;
	}
	return nc;
}

#define GROW(arr, n, cap, min) do { \
	if ((n) == (cap)) { \
		if (c->s->reserved) \
			return perr(c, c->line, "internal error: more " \
			    "items than the file can hold"); \
		size_t nc_ = grow_to(c, (cap), (min)); \
		void *np_ = realloc((arr), nc_ * sizeof *(arr)); \
		if (np_ == NULL) \
			return perr(c, c->line, "out of memory"); \
		(arr) = np_; \
		(cap) = nc_; \
	} \
} while (0)

/* 1 when the quote at q delimits a string: an even run of backslashes
 * (none looking back no further than start) before it. */
static int
unescaped(const char *start, const char *q)
{
	const char *b = q;

	while (b > start && b[-1] == '\\')
		b--;
	return ((q - b) & 1) == 0;
}

/*
 * The opening quote of the string literal whose closing quote is at q,
 * looking no further back than start, or NULL.  Inside a literal a quote
 * is escaped, so the nearest unescaped one before q opens it.
 */
static char *
bstring(char *start, char *q)
{
	char *r = q;

	while (r > start) {
		if ((r = memrchr(start, '"', (size_t)(r - start))) == NULL)
			return NULL;
		if (unescaped(start, r))
			return r;
	}
	return NULL;
}

/* The object o just parsed, checked against the one before it. */
static int
obj_done(struct pctx *c, const struct dobj *o)
{
	struct snap *s = c->s;

	if (s->nobjs > 0) {
		const struct dobj *prev = &s->objs[s->nobjs - 1];
		int cmp = strcmp(s->buf + prev->anchor, s->buf + o->anchor);

		if (cmp == 0)
			return perr(c, c->line, "duplicate anchor '%s' (also "
			    "on line %u)", s->buf + o->anchor, prev->line);
		if (cmp > 0)
			return perr(c, c->line, "anchor '%s' is out of order "
			    "(snapshots are sorted by anchor)",
			    s->buf + o->anchor);
	}
	s->nobjs++;
	return 0;
}

/*
 * For snap_load_skel, the line p..nl as the writer writes it:
 * {"anchor":"A","attrs":{...}[,"binary":[...]][,"dn":"D"],"id":"I",
 * "type":"T"}.  The anchor is found from the front, the type, id and DN
 * from the back, and the attributes between them are not read at all.
 * 1 when parsed, 0 when the line is not in that form (parse_obj then
 * reads it, and says what is wrong if anything), -1 on error.
 */
static int
parse_skel(struct pctx *c, char *p, char *nl)
{
	static const char head[] = "{\"anchor\":\"";
	struct snap *s = c->s;
	struct dobj *o;
	char *q, *aq, *ae, *tq, *iq, *dq = NULL, *pp, tname[16];
	uint32_t off, len;
	int t;

	/* everything is looked at before anything is kept */
	q = nl - 1;
	if (nl - p < 48 || *q != '}' || q[-1] != '"' ||
	    strncmp(p, head, sizeof head - 1) != 0)
		return 0;
	if ((tq = bstring(p, q - 1)) == NULL || tq - p < 24 ||
	    memcmp(tq - 8, ",\"type\":", 8) != 0 || tq[-9] != '"' ||
	    (iq = bstring(p, tq - 9)) == NULL || iq - p < 24 ||
	    memcmp(iq - 6, ",\"id\":", 6) != 0)
		return 0;
	q = iq - 7;
	if (*q == '"') {
		if ((dq = bstring(p, q)) == NULL || dq - p < 24 ||
		    memcmp(dq - 6, ",\"dn\":", 6) != 0)
			return 0;
		q = dq - 7;
	}
	if (*q != '}' && *q != ']')
		return 0;
	aq = p + sizeof head - 2;
	for (ae = aq + 1;; ae++) {
		if ((ae = memchr(ae, '"', (size_t)(q - ae))) == NULL)
			return 0;
		if (unescaped(aq + 1, ae))
			break;
	}
	if (q - ae < 11 || strncmp(ae + 1, ",\"attrs\":{", 10) != 0)
		return 0;

	GROW(s->objs, s->nobjs, s->capobjs, 4096);
	o = &s->objs[s->nobjs];
	memset(o, 0, sizeof *o);
	o->line = c->lineno;
	o->off = (uint32_t)(p - s->buf);
	o->a = (uint32_t)s->nattrs;
	pp = aq;
	if (pstring(c, &pp, &off, &len, 0) == -1 ||
	    cstring(c, o, &off, len, aq) == -1)
		return -1;
	if (len == 0)
		return perr(c, aq, "empty anchor");
	o->anchor = off;
	pp = iq;
	if (pstring(c, &pp, &off, &len, 0) == -1 ||
	    cstring(c, o, &off, len, iq) == -1)
		return -1;
	o->id = off;
	pp = dq;
	if (dq != NULL && (pstring(c, &pp, &off, &len, 0) == -1 ||
	    cstring(c, o, &off, len, dq) == -1))
		return -1;
	if (dq != NULL)
		o->dn = off;
	pp = tq;
	if (pstring(c, &pp, &off, &len, 0) == -1)
		return -1;
	t = -1;
	if (len < sizeof tname) {
		memcpy(tname, s->buf + off, len);
		tname[len] = '\0';
		t = sync_objtype_parse(tname);
	}
	if (t < 0)
		return perr(c, tq - 7, "unknown object type '%.*s'", (int)len,
		    s->buf + off);
	o->type = (uint8_t)t;
	if (obj_done(c, o) == -1)
		return -1;
	return 1;
}

/*
 * Skips the "attrs" object at *pp ('{'), for snap_load_skel: its values
 * are only looked for where a string or the object ends, and are not
 * checked.  A string cannot hold a raw '"' or newline (the file is
 * compact JSON), so the first '}' outside strings closes it.
 */
static int
skip_attrs(struct pctx *c, char **pp)
{
	char *p = *pp + 1;

	for (;;) {
		p += strcspn(p, "\"}\n");
		if (*p == '}')
			break;
		if (*p != '"')
			return perr(c, p, "unexpected end of line in \"attrs\"");
		for (p++;;) {
			p += strcspn(p, "\"\\\n");
			if (*p == '\\' && p[1] != '\n' && p[1] != '\0') {
				p += 2;
				continue;
			}
			if (*p != '"')
				return perr(c, p, "unexpected end of line in a "
				    "string");
			p++;
			break;
		}
	}
	*pp = p + 1;
	return 0;
}

static int
parse_obj(struct pctx *c, char *p)
{
	struct snap *s = c->s;
	struct dobj *o;
	uint32_t koff, klen, off, len, first;
	uint32_t binoff[64], binlen[64];
	size_t nbin = 0, i, j;
	int seen = 0;
	char *bincol = NULL, *objstart = p;
	size_t k;
	long idx;

	GROW(s->objs, s->nobjs, s->capobjs, 4096);
	o = &s->objs[s->nobjs];
	memset(o, 0, sizeof *o);
	o->line = c->lineno;
	o->off = (uint32_t)(objstart - s->buf);
	o->a = (uint32_t)s->nattrs;
	if (expect(c, &p, '{') == -1)
		return -1;
#define KEYIS(k) (klen == sizeof k - 1 && memcmp(s->buf + koff, k, klen) == 0)
	for (;;) {
		char *kat = p;

		if (pstring(c, &p, &koff, &klen, 0) == -1)
			return -1;
		if (expect(c, &p, ':') == -1)
			return -1;
#define KEY(bit) do { \
			if (seen & (bit)) \
				return perr(c, kat, "duplicate key '%.*s'", \
				    (int)klen, s->buf + koff); \
			seen |= (bit); \
		} while (0)
		if (KEYIS("anchor")) {
			KEY(1);
			if (pstring(c, &p, &off, &len, 0) == -1 ||
			    cstring(c, o, &off, len, kat) == -1)
				return -1;
			o->anchor = off;
			if (len == 0)
				return perr(c, kat, "empty anchor");
		} else if (KEYIS("id")) {
			KEY(2);
			if (pstring(c, &p, &off, &len, 0) == -1 ||
			    cstring(c, o, &off, len, kat) == -1)
				return -1;
			o->id = off;
		} else if (KEYIS("dn")) {
			KEY(4);
			if (strncmp(p, "null", 4) == 0)
				p += 4;
			else if (pstring(c, &p, &off, &len, 0) == -1 ||
			    cstring(c, o, &off, len, kat) == -1)
				return -1;
			else
				o->dn = off;
		} else if (KEYIS("type")) {
			char tname[16];
			int t = -1;

			KEY(8);
			if (pstring(c, &p, &off, &len, 0) == -1)
				return -1;
			if (len < sizeof tname) {
				memcpy(tname, s->buf + off, len);
				tname[len] = '\0';
				t = sync_objtype_parse(tname);
			}
			if (t < 0)
				return perr(c, kat, "unknown object type '%.*s'",
				    (int)len, s->buf + off);
			o->type = (uint8_t)t;
		} else if (KEYIS("attrs") && c->skel) {
			KEY(16);
			skipws(&p);
			if (*p != '{')
				return perr(c, p, "expected '{'");
			if (skip_attrs(c, &p) == -1)
				return -1;
		} else if (KEYIS("attrs")) {
			KEY(16);
			if (expect(c, &p, '{') == -1)
				return -1;
			while (*p != '}') {
				struct dattr *a;
				char *nat = p;

				if (pstring(c, &p, &off, &len, 0) == -1)
					return -1;
				k = s->nattrs - o->a;
				if (k < 32 && c->pos[k] >= 0 && c->poslen[k] == len &&
				    memcmp(s->names.v[c->pos[k]], s->buf + off,
				    len) == 0)
					idx = c->pos[k];
				else if ((idx = intern(c, s, s->buf + off, len,
				    1)) < 0)
					return perr(c, nat, "out of memory");
				if (k < 32) {
					c->pos[k] = idx;
					c->poslen[k] = len;
				}
				for (i = o->a; i < s->nattrs; i++)
					if (s->attrs[i].name == (uint32_t)idx)
						return perr(c, nat, "attribute "
						    "'%.*s' appears twice",
						    (int)len, s->buf + off);
				GROW(s->attrs, s->nattrs, s->capattrs, 16384);
				a = &s->attrs[s->nattrs++];
				a->name = (uint32_t)idx;
				a->v = (uint32_t)s->nvals;
				a->binary = 0;
				if (expect(c, &p, ':') == -1 ||
				    expect(c, &p, '[') == -1)
					return -1;
				while (*p != ']') {
					GROW(s->vals, s->nvals, s->capvals,
					    16384);
					if (pstring(c, &p, &s->vals[s->nvals].off,
					    &s->vals[s->nvals].len, 0) == -1)
						return -1;
					s->nvals++;
					skipws(&p);
					if (*p == ',') {
						p++;
						skipws(&p);
						if (*p == ']')
							return perr(c, p,
							    "expected a string");
					} else if (*p != ']')
						return perr(c, p, "expected ',' "
						    "or ']'");
				}
				p++;
				skipws(&p);
				if (*p == ',') {
					p++;
					skipws(&p);
					if (*p == '}')
						return perr(c, p, "expected a "
						    "string");
				} else if (*p != '}')
					return perr(c, p, "expected ',' or '}'");
			}
			p++;
			o->na = (uint32_t)(s->nattrs - o->a);
			/* the sentinel ends the last attribute's values */
			GROW(s->attrs, s->nattrs, s->capattrs, 16384);
			s->attrs[s->nattrs].name = 0;
			s->attrs[s->nattrs].binary = 0;
			s->attrs[s->nattrs].v = (uint32_t)s->nvals;
		} else if (KEYIS("binary")) {
			KEY(32);
			bincol = p;
			if (expect(c, &p, '[') == -1)
				return -1;
			while (*p != ']') {
				if (nbin == sizeof binoff / sizeof *binoff)
					return perr(c, p, "too many binary "
					    "attributes");
				if (pstring(c, &p, &binoff[nbin], &binlen[nbin],
				    0) == -1)
					return -1;
				nbin++;
				skipws(&p);
				if (*p == ',') {
					p++;
					skipws(&p);
				} else if (*p != ']')
					return perr(c, p, "expected ',' or ']'");
			}
			p++;
		} else {
			return perr(c, kat, "unknown key '%.*s'", (int)klen,
			    s->buf + koff);
		}
		skipws(&p);
		if (*p == '}')
			break;
		if (*p != ',')
			return perr(c, p, *p == '\n' ? "unexpected end of "
			    "line, expected ',' or '}'" : "expected ',' or '}'");
		p++;
		skipws(&p);
	}
	p++;
	skipws(&p);
	if (*p != '\n')
		return perr(c, p, "unexpected text after the object");
	if ((seen & (1 | 2 | 8 | 16)) != (1 | 2 | 8 | 16))
		return perr(c, objstart, "object lacks %s",
		    !(seen & 1) ? "\"anchor\"" : !(seen & 2) ? "\"id\"" :
		    !(seen & 8) ? "\"type\"" : "\"attrs\"");
	/* without the attributes, their binary flags have nowhere to go */
	for (i = 0; !c->skel && i < nbin; i++) {
		idx = intern(c, s, s->buf + binoff[i], binlen[i], 0);
		for (j = o->a; idx >= 0 && j < o->a + o->na; j++)
			if (s->attrs[j].name == (uint32_t)idx)
				break;
		if (idx < 0 || j == o->a + o->na)
			return perr(c, bincol, "binary attribute '%.*s' is not "
			    "in \"attrs\"", (int)binlen[i], s->buf + binoff[i]);
		s->attrs[j].binary = 1;
		for (first = s->attrs[j].v; first < s->attrs[j].v +
		    dattr_nv(&s->attrs[j]); first++) {
			struct dval *dv = &s->vals[first];
			char *out = dv->off >= s->arena ? s->buf + dv->off :
			    arena_at(c, dv->len + 1);
			size_t bad;
			long n;

			if (out == NULL)
				return perr(c, bincol, "file too large (4 GiB "
				    "at most)");
			if ((n = sync_base64_decode_into(s->buf + dv->off,
			    dv->len, (unsigned char *)out, &bad)) < 0)
				return perr(c, bincol, "attribute '%.*s': "
				    "invalid base64", (int)binlen[i],
				    s->buf + binoff[i]);
			if (dv->off < s->arena) {
				dv->off = (uint32_t)(out - s->buf);
				s->aoff += (size_t)n + 1;
			}
			dv->len = (uint32_t)n;
		}
	}
	return obj_done(c, o);
}

/*
 * Where the top-level key named key starts in the header line (its
 * opening quote), for the column of an error about it; the line itself
 * when the key is not found as written (a key spelled with escapes).
 * The line is valid JSON here: jansson parsed it.
 */
static const char *
hkey_at(const char *line, size_t len, const char *key)
{
	const char *p = line, *end = line + len, *start;
	size_t klen = strlen(key);
	int depth = 0;

	for (; p < end; p++) {
		if (*p == '{' || *p == '[') {
			depth++;
			continue;
		}
		if (*p == '}' || *p == ']') {
			depth--;
			continue;
		}
		if (*p != '"')
			continue;
		start = p;
		for (p++; p < end && *p != '"'; p++)
			if (*p == '\\')
				p++;
		if (depth != 1 || (size_t)(p - start - 1) != klen ||
		    memcmp(start + 1, key, klen) != 0)
			continue;
		/* a key, not a value, is followed by ':' */
		while (p + 1 < end && (p[1] == ' ' || p[1] == '\t'))
			p++;
		if (p + 1 < end && p[1] == ':')
			return start;
	}
	return line;
}

/* The header's keys (sync-snapshot(5)); the first six are required. */
static const char *const hkeys[] = {
	"connector", "connector_type", "counts", "format", "kind", "version",
	"cookie", "source", "time",
};
#define NHKEYS_REQUIRED 6

static int
parse_header(struct pctx *c, char *line, size_t len)
{
	struct snap *s = c->s;
	json_error_t jerr;
	json_t *h, *v, *n;
	const char *fmt, *key, *str;
	size_t i;
	int t, rc = -1;

	if ((h = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return perr(c, line + (jerr.column > 0 ? jerr.column - 1 : 0),
		    "header: %s", jerr.text);
	fmt = json_string_value(json_object_get(h, "format"));
	if (!json_is_object(h) || fmt == NULL ||
	    strcmp(fmt, SYNC_SNAPSHOT_FORMAT) != 0) {
		perr(c, line, "not a snapshot (the header's format is not "
		    "\"%s\")", SYNC_SNAPSHOT_FORMAT);
		goto out;
	}
	v = json_object_get(h, "version");
	if (!json_is_integer(v) || json_integer_value(v) !=
	    SYNC_SNAPSHOT_VERSION) {
		perr(c, line, "unsupported snapshot version %s (expected %d)",
		    json_is_integer(v) ? "" : "(none)", SYNC_SNAPSHOT_VERSION);
		if (json_is_integer(v))
			snprintf(s->err.msg, sizeof s->err.msg, "%s:1:1: "
			    "unsupported snapshot version %lld (expected %d)",
			    c->name, (long long)json_integer_value(v),
			    SYNC_SNAPSHOT_VERSION);
		goto out;
	}
	/*
	 * Strict, like the object lines: a key this version does not
	 * define means a file this reader does not understand.
	 */
	json_object_foreach(h, key, v) {
		for (i = 0; i < sizeof hkeys / sizeof *hkeys; i++)
			if (strcmp(key, hkeys[i]) == 0)
				break;
		if (i == sizeof hkeys / sizeof *hkeys) {
			perr(c, hkey_at(line, len, key), "unknown header key "
			    "'%s'", key);
			goto out;
		}
	}
	for (i = 0; i < NHKEYS_REQUIRED; i++)
		if (json_object_get(h, hkeys[i]) == NULL) {
			perr(c, line, "the header has no \"%s\"", hkeys[i]);
			goto out;
		}
	v = json_object_get(h, "connector");
	if ((str = json_string_value(v)) == NULL || *str == '\0') {
		perr(c, hkey_at(line, len, "connector"), "header: "
		    "\"connector\" must be a connector's name");
		goto out;
	}
	if ((s->connector = sync_strdup(str)) == NULL)
		goto nomem;
	str = json_string_value(json_object_get(h, "connector_type"));
	if (str == NULL || sync_connops_find(str) == NULL) {
		struct sync_buf types = { 0 };

		sync_connops_types(&types);
		perr(c, hkey_at(line, len, "connector_type"), "header: "
		    "\"connector_type\" must be %s", types.p ? types.p : "");
		sync_buf_release(&types);
		goto out;
	}
	if ((s->conntype = sync_strdup(str)) == NULL)
		goto nomem;
	str = json_string_value(json_object_get(h, "kind"));
	if (str == NULL || (strcmp(str, "full") != 0 &&
	    strcmp(str, "delta") != 0)) {
		perr(c, hkey_at(line, len, "kind"), "header: \"kind\" must be "
		    "\"full\" or \"delta\"");
		goto out;
	}
	s->delta = strcmp(str, "delta") == 0;
	v = json_object_get(h, "counts");
	if (!json_is_object(v) || json_object_size(v) != SYNC_NOBJTYPES) {
		perr(c, hkey_at(line, len, "counts"), "header: \"counts\" must "
		    "be an object with the keys contact, group and user");
		goto out;
	}
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		n = json_object_get(v, sync_objtype_name(t));
		if (!json_is_integer(n) || json_integer_value(n) < 0 ||
		    json_integer_value(n) > UINT32_MAX) {
			perr(c, hkey_at(line, len, "counts"), "header: "
			    "\"counts\" must be an object with the keys "
			    "contact, group and user, each a number of objects");
			goto out;
		}
		s->counts[t] = (size_t)json_integer_value(n);
	}
	if ((v = json_object_get(h, "time")) && !json_is_string(v)) {
		perr(c, hkey_at(line, len, "time"), "header: \"time\" must be "
		    "a string");
		goto out;
	}
	if ((v = json_object_get(h, "source")) && !json_is_string(v) &&
	    !json_is_null(v)) {
		perr(c, hkey_at(line, len, "source"), "header: \"source\" must "
		    "be a string or null");
		goto out;
	}
	if ((v = json_object_get(h, "cookie")) && !json_is_string(v) &&
	    !json_is_null(v)) {
		perr(c, hkey_at(line, len, "cookie"), "header: \"cookie\" must "
		    "be a string or null");
		goto out;
	}
	if ((v = json_object_get(h, "time")) &&
	    (s->time = sync_strdup(json_string_value(v))) == NULL)
		goto nomem;
	if ((v = json_object_get(h, "cookie")) && json_is_string(v) &&
	    (s->cookie = sync_strdup(json_string_value(v))) == NULL)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	perr(c, line, "out of memory");
out:
	json_decref(h);
	return rc;
}

/*
 * The objects of each type must number what the header counts: a file
 * cut after a complete line (a full disk, a copy interrupted) parses
 * line by line, and taking its missing objects for deleted ones would
 * plan their deletion.  Reported at the line after the last.
 */
static int
check_counts(struct pctx *c)
{
	struct snap *s = c->s;
	size_t have[SYNC_NOBJTYPES] = { 0 }, i;
	int t;

	for (i = 0; i < s->nobjs; i++)
		have[s->objs[i].type]++;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if (have[t] != s->counts[t])
			break;
	if (t == SYNC_NOBJTYPES)
		return 0;
	snprintf(s->err.msg, sizeof s->err.msg, "%s:%u: the file ends with "
	    "%zu %s%s but its header counts %zu (a truncated or altered "
	    "snapshot)", c->name, c->lineno, have[t], sync_objtype_name(t),
	    have[t] == 1 ? "" : "s", s->counts[t]);
	return -1;
}

static struct snap *
snap_parse_mapped(const char *name, char *buf, size_t len, char *arena,
    size_t arenalen, void *map, size_t maplen, int skel,
    struct sync_err *err);

/*
 * Reserves address space for the arrays of a file of len bytes, as much
 * as the file could possibly need: a line of an object is at least 16
 * bytes, an attribute ("":[]) at least 5 and a value ("") 2.  Pages are
 * touched only as far as the arrays are filled, so the unused part costs
 * nothing, and the arrays are never copied, as growing them would (at a
 * million objects, copying and faulting in fresh pages cost as much as
 * parsing).  Where the address space is refused (a 32-bit system, a
 * ulimit -v), the arrays grow with realloc instead.
 */
static void
snap_reserve(struct snap *s, size_t len)
{
	size_t no = len / 16 + 2, na = len / 5 + 2, nv = len / 2 + 2;
	void *o, *a, *v;

	if (no > SIZE_MAX / sizeof *s->objs || na > SIZE_MAX / sizeof *s->attrs
	    || nv > SIZE_MAX / sizeof *s->vals)
		return;
	o = mmap(NULL, no * sizeof *s->objs, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	a = mmap(NULL, na * sizeof *s->attrs, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	v = mmap(NULL, nv * sizeof *s->vals, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (o == MAP_FAILED || a == MAP_FAILED || v == MAP_FAILED) {
		if (o != MAP_FAILED)
			munmap(o, no * sizeof *s->objs);
		if (a != MAP_FAILED)
			munmap(a, na * sizeof *s->attrs);
		if (v != MAP_FAILED)
			munmap(v, nv * sizeof *s->vals);
		return;
	}
	s->objs = o;
	s->attrs = a;
	s->vals = v;
	s->capobjs = no;
	s->capattrs = na;
	s->capvals = nv;
	s->reserved = 1;
}

static struct snap *
parse_buf(const char *name, char *buf, size_t len, int skel,
    struct sync_err *err)
{
	char *nb;

	/* the arena follows the text's final NUL in the same block (and
	 * lets plain_end read a few bytes past it) */
	if (len > SIZE_MAX / 2 - 64 ||
	    (nb = realloc(buf, 2 * len + 64)) == NULL) {
		free(buf);
		sync_errf(err, "%s: out of memory", name);
		return NULL;
	}
	return snap_parse_mapped(name, nb, len, nb + len + 2, len + 62, NULL,
	    0, skel, err);
}

struct snap *
snap_parse(const char *name, char *buf, size_t len, struct sync_err *err)
{
	return parse_buf(name, buf, len, LOAD_FULL, err);
}

struct snap *
snap_parse_skel(const char *name, char *buf, size_t len,
    struct sync_err *err)
{
	return parse_buf(name, buf, len, LOAD_SKEL, err);
}

static struct snap *
snap_parse_mapped(const char *name, char *buf, size_t len, char *arena,
    size_t arenalen, void *map, size_t maplen, int skel,
    struct sync_err *err)
{
	struct pctx c = { 0 };
	struct snap *s;
	char *p, *end, *nl;
	size_t k;
	int rc;

	if ((s = calloc(1, sizeof *s)) == NULL) {
		if (map)
			munmap(map, maplen);
		else
			free(buf);
		sync_errno(err, "%s", name);
		return NULL;
	}
	s->buf = buf;
	s->size = len;
	s->fd = -1;
	s->arena = s->aoff = (size_t)(arena - buf);
	s->aend = s->aoff + arenalen;
	s->map = map;
	s->maplen = maplen;
	/* the header alone needs no arrays for the objects */
	if (skel != LOAD_HEAD)
		snap_reserve(s, len);
	c.s = s;
	c.name = name;
	c.skel = skel != LOAD_FULL;
	for (k = 0; k < 32; k++)
		c.pos[k] = -1;
	if ((s->path = sync_strdup(name)) == NULL) {
		sync_errf(err, "out of memory");
		snap_free(s);
		return NULL;
	}
	/* buf[0] is NUL so that offset 0 means "absent"; buf[len + 1] too. */
	p = buf + 1;
	end = buf + 1 + len;
	c.lineno = 1;
	c.line = p;
	if (len == 0) {
		perr(&c, p, "empty file: not a snapshot");
		goto fail;
	}
	if (len > UINT32_MAX - 8) {
		perr(&c, p, "file too large (4 GiB at most)");
		goto fail;
	}
	for (; p < end; p = nl + 1, c.lineno++) {
		c.line = p;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			perr(&c, end, "truncated line (no newline at the end "
			    "of the file)");
			goto fail;
		}
		if (c.lineno == 1) {
			if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
				perr(&c, memchr(p, '\0', (size_t)(nl - p)),
				    "NUL byte");
				goto fail;
			}
			if (parse_header(&c, p, (size_t)(nl - p)) == -1)
				goto fail;
			s->body = (size_t)(nl + 1 - buf);
			if (skel == LOAD_HEAD) {
				/* what follows is looked at only where
				 * needed: it must at least end a line */
				if (end[-1] != '\n') {
					perr(&c, end, "truncated line (no "
					    "newline at the end of the file)");
					goto fail;
				}
				free(c.ht);
				return s;
			}
			continue;
		}
		if (nl == p) {
			perr(&c, p, "empty line");
			goto fail;
		}
		if (c.skel && (rc = parse_skel(&c, p, nl)) != 0) {
			if (rc == -1)
				goto fail;
		} else if (parse_obj(&c, p) == -1)
			goto fail;
	}
	if (check_counts(&c) == -1)
		goto fail;
	free(c.ht);
	return s;
fail:
	free(c.ht);
	*err = s->err;
	snap_free(s);
	return NULL;
}

static struct snap *
load(const char *path, int mode, struct sync_err *err)
{
	struct stat st;
	char *buf;
	size_t len = 0, cap;
	ssize_t n;
	int fd;

	if (strcmp(path, "-") == 0)
		fd = 0;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		sync_errno(err, "cannot open '%s'", path);
		return NULL;
	}
	/*
	 * A regular file is mapped read-only rather than read: the parser
	 * never writes to it, so the page cache's pages are used as they
	 * are, with nothing zeroed or copied.  One anonymous (zeroed) page
	 * before the file gives buf[0] == NUL, and the zeroed tail of the
	 * last page, or the guard page after it, ends it with a NUL (and
	 * lets plain_end read a few bytes past it).  The
	 * arena for the strings that are copied (anchors, ids, DNs, and
	 * values with escapes or in base64) follows, touched only as far
	 * as it is used.  For a delta (mode LOAD_SKEL or LOAD_HEAD) the
	 * file stays open, for the writer to copy its unchanged lines from
	 * (sync_lines).  The pages are mapped ahead (MAP_POPULATE) even
	 * when only the writer's binary searches will look at the file
	 * (LOAD_HEAD): a page fault each for the pages they touch costs
	 * more (measured on a paravirtualised VM).
	 */
	if (fd != 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > 0 && (uint64_t)st.st_size < UINT32_MAX - 8) {
		size_t pg = 4096, flen = (size_t)st.st_size;
		size_t fpages = ((flen + pg - 1) / pg) * pg;
		size_t alen = ((flen + 64 + pg - 1) / pg) * pg;
		size_t mlen = pg + fpages + pg + alen;
		char *region = mmap(NULL, mlen, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (region != MAP_FAILED &&
		    mmap(region + pg, flen, PROT_READ, MAP_PRIVATE |
		    MAP_FIXED | MAP_POPULATE, fd, 0) != MAP_FAILED) {
			char *arena = region + pg + fpages + pg;
			struct snap *s;

			s = snap_parse_mapped(path, region + pg - 1, flen,
			    arena, alen, region, mlen, mode, err);
			if (s != NULL && mode != LOAD_FULL)
				s->fd = fd;
			else
				close(fd);
			return s;
		}
		if (region != MAP_FAILED)
			munmap(region, mlen);
	}
	cap = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ?
	    (size_t)st.st_size + 1 : 1 << 16;
	if ((buf = malloc(cap + 2)) == NULL) {
		sync_errno(err, "cannot read '%s'", path);
		goto fail;
	}
	buf[0] = '\0';
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, cap * 2 + 2);

			if (nb == NULL) {
				sync_errno(err, "cannot read '%s'", path);
				goto fail;
			}
			buf = nb;
			cap *= 2;
		}
		if ((n = read(fd, buf + 1 + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			sync_errno(err, "cannot read '%s'", path);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len + 1] = '\0';
	if (fd != 0)
		close(fd);
	return parse_buf(path, buf, len, mode, err);
fail:
	free(buf);
	if (fd != 0)
		close(fd);
	return NULL;
}

struct snap *
snap_load(const char *path, struct sync_err *err)
{
	return load(path, LOAD_FULL, err);
}

int
snap_delta_base(const struct snap *s, const char *path,
    const char *connector, struct sync_err *err)
{
	if (s->delta)
		return sync_errf(err, "%s: a delta snapshot (kind \"delta\") "
		    "holds only what changed; a delta import needs a full one",
		    path);
	if (s->connector == NULL || strcmp(s->connector, connector) != 0)
		return sync_errf(err, "%s: the snapshot is of connector '%s', "
		    "not '%s'", path, s->connector ? s->connector : "",
		    connector);
	return 0;
}

struct snap *
snap_load_skel(const char *path, struct sync_err *err)
{
	return load(path, LOAD_SKEL, err);
}

struct snap *
snap_load_head(const char *path, struct sync_err *err)
{
	return load(path, LOAD_HEAD, err);
}

/*
 * The anchor of the line p..nl (its newline) against key, as strcmp
 * orders them: *cmp below, at or above 0.  0, or -1 when the line does
 * not start as the writer starts a line.  An anchor without escapes (an
 * entryUUID, a GUID in base64) is compared where it is; one with
 * escapes is decoded first.
 */
static int
anchor_cmp(const char *p, const char *nl, const char *key, int *cmp)
{
	static const char head[] = "{\"anchor\":\"";
	const char *q, *v;
	size_t n, klen = strlen(key);
	json_t *j;
	int c;

	if (nl - p < (ptrdiff_t)sizeof head ||
	    memcmp(p, head, sizeof head - 1) != 0)
		return -1;
	v = p + sizeof head - 1;
	for (q = v; q < nl && *q != '"' && *q != '\\'; q++)
		;
	if (q == nl)
		return -1;
	if (*q == '\\') {
		for (; q < nl && *q != '"'; q++)
			if (*q == '\\')
				q++;
		if (q >= nl || (j = json_loadb(v - 1, (size_t)(q + 1 - v + 1),
		    JSON_DECODE_ANY, NULL)) == NULL)
			return -1;
		if (!json_is_string(j)) {
			json_decref(j);
			return -1;
		}
		n = json_string_length(j);
		c = memcmp(json_string_value(j), key, n < klen ? n : klen);
		json_decref(j);
	} else {
		n = (size_t)(q - v);
		c = memcmp(v, key, n < klen ? n : klen);
	}
	*cmp = c != 0 ? c : n < klen ? -1 : n > klen;
	return 0;
}

/*
 * The line of s that holds byte mid (of buf), between lo (a line start)
 * and end: its start in *ls and its newline in *nl; 0, or -1 when the
 * file does not end with a newline.  A probe that lands in a long line
 * (a group of thousands of members) scans to both of its ends, and the
 * probes of many look-ups land in the same few long lines (those at the
 * end of the file, for every new anchor): the long lines found are kept
 * in s->longl, sorted, and found there first.
 */
static int
line_at(struct snap *s, size_t lo, size_t mid, size_t end, size_t *ls,
    const char **nl)
{
	const char *q;
	size_t a = 0, b = s->nlong, m;

	while (a < b) {
		m = a + (b - a) / 2;
		if (s->longl[m].start <= mid)
			a = m + 1;
		else
			b = m;
	}
	if (a > 0 && s->longl[a - 1].start >= lo &&
	    s->longl[a - 1].end > mid) {
		*ls = s->longl[a - 1].start;
		*nl = s->buf + s->longl[a - 1].end - 1;
		return 0;
	}
	q = memrchr(s->buf + lo, '\n', mid - lo);
	*ls = q ? (size_t)(q + 1 - s->buf) : lo;
	if ((*nl = memchr(s->buf + mid, '\n', end - mid)) == NULL)
		return -1;
	if ((size_t)(*nl + 1 - s->buf) - *ls >= 4096) {
		if (s->nlong == s->caplong) {
			size_t cap = s->caplong ? s->caplong * 2 : 16;
			struct snap_long *nlg = realloc(s->longl,
			    cap * sizeof *nlg);

			if (nlg == NULL)
				return 0;       /* only slower */
			s->longl = nlg;
			s->caplong = cap;
		}
		memmove(&s->longl[a + 1], &s->longl[a],
		    (s->nlong - a) * sizeof *s->longl);
		s->longl[a].start = *ls;
		s->longl[a].end = (size_t)(*nl + 1 - s->buf);
		s->nlong++;
	}
	return 0;
}

int
snap_find(struct snap *s, const char *anchor, size_t *off, size_t *len,
    struct sync_err *err)
{
	size_t lo, hi, mid, ls, end = s->size + 1;
	const char *nl;
	int c = 1;

	if (s->nobjs > 0) {
		lo = 0;
		hi = s->nobjs;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (strcmp(s->buf + s->objs[mid].anchor, anchor) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == s->nobjs) {
			*off = s->size;
			*len = 0;
			return 0;
		}
		*off = s->objs[lo].off - 1;
		*len = (lo + 1 < s->nobjs ? s->objs[lo + 1].off : end) -
		    s->objs[lo].off;
		return strcmp(s->buf + s->objs[lo].anchor, anchor) == 0;
	}
	/*
	 * The file itself, by byte offsets: lo is always the start of a
	 * line, every line before it has a lower anchor and none from hi
	 * on does.  A probe looks at the line that holds mid.
	 */
	lo = s->body;
	hi = end;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (line_at(s, lo, mid, end, &ls, &nl) == -1 ||
		    anchor_cmp(s->buf + ls, nl, anchor, &c) == -1) {
			mid = ls;
			goto bad;
		}
		if (c < 0)
			lo = (size_t)(nl + 1 - s->buf);
		else
			hi = ls;
	}
	*off = lo - 1;
	*len = 0;
	if (lo == end)
		return 0;
	if (line_at(s, lo, lo, end, &ls, &nl) == -1 ||
	    anchor_cmp(s->buf + lo, nl, anchor, &c) == -1) {
		mid = lo;
		goto bad;
	}
	*len = (size_t)(nl + 1 - (s->buf + lo));
	return c == 0;
bad:
	return sync_errf(err, "%s: byte %zu: not an object's line as "
	    "sync-import writes it", s->path, mid - 1);
}

/*
 * Some objects of a snapshot as lines for the writer (struct sync_lines):
 * the snapshot, which holds the file they are in, and the ranges of its
 * bytes kept, in increasing offsets, which is anchor order.  Where the
 * writer's output is a file, the ranges go to it by copy_file_range(2):
 * the kernel copies them from page cache to page cache, with no copy
 * through user space and no page faults on the mapping.
 */
struct range {
	size_t off, len;        /* in the file */
};

/* Where a line of anchor goes, known beforehand (snap_lines_hint). */
struct hint {
	char *anchor;
	size_t pos, len;        /* len: of the kept line there, or 0 */
};

struct kept {
	struct snap *s;         /* once taken */
	struct range *r;
	size_t n, cap;
	struct hint *h;         /* in anchor order */
	size_t nh, caph;
	size_t at;              /* the range the next copy starts in */
	size_t pos;             /* and the offset */
	int nocopy;             /* copy_file_range refused: write(2) */
};

static int
kept_seek(void *ctx, const char *anchor, size_t *pos, const char **line,
    size_t *len, struct sync_err *err)
{
	struct kept *k = ctx;
	size_t off, n, lo = 0, hi = k->n, mid;
	int rc;

	*line = NULL;
	*len = 0;
	/* a hint spares the search, and the pages it would touch */
	if (k->nh > 0) {
		hi = k->nh;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (strcmp(k->h[mid].anchor, anchor) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < k->nh && strcmp(k->h[lo].anchor, anchor) == 0) {
			*pos = k->h[lo].pos;
			if (k->h[lo].len > 0) {
				*line = k->s->buf + 1 + *pos;
				*len = k->h[lo].len;
			}
			return 0;
		}
		lo = 0;
		hi = k->n;
	}
	if ((rc = snap_find(k->s, anchor, &off, &n, err)) == -1)
		return -1;
	*pos = off;
	if (rc == 0)
		return 0;
	/* the line of that anchor, if it is kept: the range that holds it */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (k->r[mid].off + k->r[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < k->n && k->r[lo].off <= off) {
		*line = k->s->buf + 1 + off;
		*len = n;
	}
	return 0;
}

/* The bytes off..off+len of the file to fp. */
static int
kept_write(struct kept *k, FILE *fp, size_t off, size_t len,
    struct sync_err *err)
{
	loff_t in = (loff_t)off;
	ssize_t n;

	/*
	 * A few lines are not worth the flush and the system call; a pipe
	 * or a file on another kind of file system may refuse the copy.
	 */
	if (!k->nocopy && k->s->fd != -1 && len >= 16384) {
		if (fflush(fp) == EOF)
			return sync_errno(err, "cannot write the snapshot");
		while (len > 0) {
			n = copy_file_range(k->s->fd, &in, fileno(fp), NULL,
			    len, 0);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (loff_t)off == in && (errno == EINVAL ||
			    errno == EXDEV || errno == ENOSYS ||
			    errno == EOPNOTSUPP || errno == EBADF ||
			    errno == ETXTBSY)) {
				k->nocopy = 1;
				break;
			}
			if (n == -1)
				return sync_errno(err, "cannot write the "
				    "snapshot");
			if (n == 0)
				return sync_errf(err, "%s: the file became "
				    "shorter while it was copied", k->s->path);
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
	}
	if (fwrite(k->s->buf + 1 + off, 1, len, fp) != len)
		return sync_errno(err, "cannot write the snapshot");
	return 0;
}

static int
kept_copy(void *ctx, FILE *fp, size_t pos, struct sync_err *err)
{
	struct kept *k = ctx;
	const struct range *r;
	size_t a, b;

	for (; k->at < k->n; k->at++) {
		r = &k->r[k->at];
		if (r->off >= pos)
			break;
		a = r->off > k->pos ? r->off : k->pos;
		b = r->off + r->len < pos ? r->off + r->len : pos;
		if (a < b && kept_write(k, fp, a, b - a, err) == -1)
			return -1;
		if (r->off + r->len > pos)
			break;
	}
	if (pos > k->pos)
		k->pos = pos;
	return 0;
}

static void
kept_rewind(void *ctx)
{
	struct kept *k = ctx;

	k->at = 0;
	k->pos = 0;
}

static void
kept_release(void *ctx)
{
	struct kept *k = ctx;

	size_t i;

	snap_free(k->s);
	free(k->r);
	for (i = 0; i < k->nh; i++)
		free(k->h[i].anchor);
	free(k->h);
	free(k);
}

struct sync_lines *
snap_lines_new(const struct snap *s)
{
	struct sync_lines *l;
	struct kept *k;

	if ((l = calloc(1, sizeof *l)) == NULL ||
	    (k = calloc(1, sizeof *k)) == NULL) {
		free(l);
		return NULL;
	}
	l->seek = kept_seek;
	l->copy = kept_copy;
	l->rewind = kept_rewind;
	l->release = kept_release;
	l->ctx = k;
	return l;
}

int
snap_lines_range(struct sync_lines *l, size_t off, size_t len)
{
	struct kept *k = l->ctx;
	struct range *r;

	if (len == 0)
		return 0;
	/* the next line of the file: one range grows */
	if (k->n > 0 && k->r[k->n - 1].off + k->r[k->n - 1].len == off) {
		k->r[k->n - 1].len += len;
		return 0;
	}
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;

		if ((r = realloc(k->r, cap * sizeof *r)) == NULL)
			return -1;
		k->r = r;
		k->cap = cap;
	}
	k->r[k->n].off = off;
	k->r[k->n].len = len;
	k->n++;
	return 0;
}

int
snap_lines_hint(struct sync_lines *l, const char *anchor, size_t pos,
    size_t len)
{
	struct kept *k = l->ctx;
	struct hint *h;

	if (k->nh > 0 && strcmp(k->h[k->nh - 1].anchor, anchor) >= 0)
		return 0;       /* out of order: not a hint to trust */
	if (k->nh == k->caph) {
		size_t cap = k->caph ? k->caph * 2 : 64;

		if ((h = realloc(k->h, cap * sizeof *h)) == NULL)
			return -1;
		k->h = h;
		k->caph = cap;
	}
	if ((k->h[k->nh].anchor = sync_strdup(anchor)) == NULL)
		return -1;
	k->h[k->nh].pos = pos;
	k->h[k->nh].len = len;
	k->nh++;
	return 0;
}

int
snap_lines_add(struct sync_lines *l, const struct snap *s, size_t i)
{
	const struct dobj *d = &s->objs[i];
	size_t end;

	/* a line ends where the next begins; the file is at buf + 1 */
	end = i + 1 < s->nobjs ? s->objs[i + 1].off : s->size + 1;
	if (snap_lines_range(l, d->off - 1, end - d->off) == -1)
		return -1;
	l->counts[d->type]++;
	return 0;
}

void
snap_lines_take(struct sync_lines *l, struct snap *s)
{
	((struct kept *)l->ctx)->s = s;
}

void
snap_free(struct snap *s)
{
	if (s == NULL)
		return;
	free(s->path);
	free(s->longl);
	if (s->fd != -1)
		close(s->fd);
	if (s->map)
		munmap(s->map, s->maplen);
	else
		free(s->buf);
	free(s->connector);
	free(s->conntype);
	free(s->time);
	free(s->cookie);
	if (s->reserved) {
		munmap(s->objs, s->capobjs * sizeof *s->objs);
		munmap(s->attrs, s->capattrs * sizeof *s->attrs);
		munmap(s->vals, s->capvals * sizeof *s->vals);
	} else {
		free(s->objs);
		free(s->attrs);
		free(s->vals);
	}
	sync_strv_release(&s->names);
	free(s);
}

const struct dattr *
snap_attr(const struct snap *s, const struct dobj *o, const char *name)
{
	size_t i;

	for (i = o->a; i < o->a + o->na; i++)
		if (strcasecmp(s->names.v[s->attrs[i].name], name) == 0)
			return &s->attrs[i];
	return NULL;
}

/* ------------------------------------------------------------------ DNs */

char *
dn_canon(const char *dn)
{
	char *out = malloc(strlen(dn) + 1);

	if (out != NULL)
		dn_canon_into(dn, out);
	return out;
}

char *
dn_canon_n(const char *dn, size_t len)
{
	char *out = malloc(len + 1);

	if (out != NULL) {
		memcpy(out, dn, len);
		out[len] = '\0';
		dn_canon_into(out, out);
	}
	return out;
}

size_t
dn_canon_into(const char *dn, char *out)
{
	size_t n = strlen(dn), i, o = 0;
	int esc = 0;

	for (i = 0; i < n; i++) {
		char ch = dn[i];

		if (esc) {
			esc = 0;
			out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch | 0x20) : ch;
			continue;
		}
		if (ch == '\\') {
			esc = 1;
			out[o++] = ch;
			continue;
		}
		if (ch == ',' || ch == '=' || ch == '+') {
			while (o > 0 && out[o - 1] == ' ' &&
			    !(o > 1 && out[o - 2] == '\\'))
				o--;
			out[o++] = ch;
			while (dn[i + 1] == ' ')
				i++;
			continue;
		}
		if (o == 0 && ch == ' ')
			continue;
		out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch | 0x20) : ch;
	}
	while (o > 0 && out[o - 1] == ' ' && !(o > 1 && out[o - 2] == '\\'))
		o--;
	out[o] = '\0';
	return o;
}

int
dn_canon_under(const char *dn, const char *base)
{
	size_t n = strlen(dn), m = strlen(base), k;

	if (m == 0)
		return 1;
	if (m > n || memcmp(dn + n - m, base, m) != 0)
		return 0;
	if (m == n)
		return 1;
	if (dn[n - m - 1] != ',')
		return 0;
	/* the comma must not be escaped: count the backslashes before it */
	for (k = n - m - 1; k > 0 && dn[k - 1] == '\\'; k--)
		;
	return (n - m - 1 - k) % 2 == 0;
}
