/*
 * expr-func.c: the functions of the expression language (sync-expr(7)).
 *
 * Most functions work on one value at a time; expr_map applies them to
 * every value of a multi-valued argument, as Entra Connect does.  The
 * others (IIF, Switch, Count, Join, Where...) see whole value lists.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "sync.h"
#include "sync-expr.h"
#include "expr-int.h"

#define MAXCHARS (1 << 20)      /* PadLeft/PadRight length limit */
#define UNUSED __attribute__((unused))

/* ----------------------------------------------------------- UTF-8 */

/*
 * Decodes the character at s[*i], advancing *i.  A byte that does not
 * start a valid sequence decodes to 0x110000 + byte, so that it survives
 * a decode/encode round trip unchanged.
 */
static uint32_t
u8dec(const char *s, size_t len, size_t *i)
{
	const unsigned char *p = (const unsigned char *)s + *i;
	size_t left = len - *i, n, k;
	uint32_t c;

	if (p[0] < 0x80) {
		(*i)++;
		return p[0];
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		goto bad;
	if (n > left)
		goto bad;
	for (k = 1; k < n; k++) {
		if ((p[k] & 0xc0) != 0x80)
			goto bad;
		c = c << 6 | (p[k] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		goto bad;
	*i += n;
	return c;
bad:
	(*i)++;
	return 0x110000 + p[0];
}

static int
u8enc(struct sync_buf *b, uint32_t c)
{
	char t[4];

	if (c >= 0x110000)
		return sync_buf_addc(b, (int)(c - 0x110000));
	if (c < 0x80)
		return sync_buf_addc(b, (int)c);
	if (c < 0x800) {
		t[0] = (char)(0xc0 | c >> 6);
		t[1] = (char)(0x80 | (c & 0x3f));
		return sync_buf_add(b, t, 2);
	}
	if (c < 0x10000) {
		t[0] = (char)(0xe0 | c >> 12);
		t[1] = (char)(0x80 | (c >> 6 & 0x3f));
		t[2] = (char)(0x80 | (c & 0x3f));
		return sync_buf_add(b, t, 3);
	}
	t[0] = (char)(0xf0 | c >> 18);
	t[1] = (char)(0x80 | (c >> 12 & 0x3f));
	t[2] = (char)(0x80 | (c >> 6 & 0x3f));
	t[3] = (char)(0x80 | (c & 0x3f));
	return sync_buf_add(b, t, 4);
}

static size_t
u8len(const char *s, size_t len)
{
	size_t i = 0, n = 0;

	while (i < len) {
		u8dec(s, len, &i);
		n++;
	}
	return n;
}

/* Byte offset of character k (0-based), or len when past the end. */
static size_t
u8off(const char *s, size_t len, size_t k)
{
	size_t i = 0;

	while (k-- > 0 && i < len)
		u8dec(s, len, &i);
	return i;
}

/* The characters of s as a new array (*n of them); NULL if out of memory. */
static uint32_t *
u8cps(const char *s, size_t len, size_t *n)
{
	uint32_t *v = malloc((len + 1) * sizeof(*v));
	size_t i = 0;

	*n = 0;
	if (v == NULL)
		return NULL;
	while (i < len)
		v[(*n)++] = u8dec(s, len, &i);
	return v;
}

/* White space as .NET's Char.IsWhiteSpace sees it. */
static int
u_space(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0x85 ||
	    c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
	    c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
	    c == 0x3000;
}

/* Case mapping for Latin, Greek and Cyrillic; other scripts unchanged. */
static uint32_t
u_lower(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0xc0)
		return c;
	if (c <= 0xde)
		return c == 0xd7 ? c : c + 32;
	if (c == 0x130)
		return 'i';
	if (c == 0x178)
		return 0xff;
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177) ||
	    (c >= 0x200 && c <= 0x21f) || (c >= 0x222 && c <= 0x233) ||
	    (c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf))
		return c & 1 ? c : c + 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
		return c & 1 ? c + 1 : c;
	if (c == 0x386)
		return 0x3ac;
	if (c >= 0x388 && c <= 0x38a)
		return c + 37;
	if (c == 0x38c)
		return 0x3cc;
	if (c == 0x38e || c == 0x38f)
		return c + 63;
	if ((c >= 0x391 && c <= 0x3a9 && c != 0x3a2) ||
	    (c >= 0x410 && c <= 0x42f))
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	return c;
}

static uint32_t
u_upper(uint32_t c)
{
	if (c >= 'a' && c <= 'z')
		return c - 32;
	if (c < 0xe0)
		return c;
	if (c <= 0xfe)
		return c == 0xf7 ? c : c - 32;
	if (c == 0xff)
		return 0x178;
	if (c == 0x131)
		return 'I';
	if (c == 0x17f)
		return 'S';
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177) ||
	    (c >= 0x200 && c <= 0x21f) || (c >= 0x222 && c <= 0x233) ||
	    (c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf))
		return c & 1 ? c - 1 : c;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
		return c & 1 ? c : c - 1;
	if (c == 0x3ac)
		return 0x386;
	if (c >= 0x3ad && c <= 0x3af)
		return c - 37;
	if (c == 0x3cc)
		return 0x38c;
	if (c == 0x3cd || c == 0x3ce)
		return c - 63;
	if (c == 0x3c2)
		return 0x3a3;
	if ((c >= 0x3b1 && c <= 0x3c9) || (c >= 0x430 && c <= 0x44f))
		return c - 32;
	if (c >= 0x450 && c <= 0x45f)
		return c - 80;
	return c;
}

/* --------------------------------------------------------- helpers */

/* The text of an argument: borrowed from the item, or formatted into
 * tmp (which the caller releases). */
static int
text(struct ectx *c, const struct node *n, const struct item *it,
    struct sync_buf *tmp, const char **p, size_t *len)
{
	if (it->t == V_STR || it->t == V_REF) {
		*p = it->p;
		*len = it->len;
		return 0;
	}
	sync_buf_reset(tmp);
	if (item_str(c, n, it, tmp) == -1)
		return -1;
	*p = tmp->p ? tmp->p : "";
	*len = tmp->len;
	return 0;
}

static int
oom(struct ectx *c)
{
	return sync_errf(c->err, "out of memory");
}

static int
push_buf(struct ectx *c, struct val *out, enum vtype t, struct sync_buf *b)
{
	int r = val_push(c, out, t, b->p ? b->p : "", b->len, 0);

	sync_buf_release(b);
	return r;
}

static int
push_str(struct ectx *c, struct val *out, const char *p, size_t len)
{
	return val_push(c, out, V_STR, p, len, 0);
}

static int
push_num(struct ectx *c, struct val *out, int64_t v)
{
	return val_push(c, out, V_NUM, NULL, 0, v);
}

static int
push_bool(struct ectx *c, struct val *out, int v)
{
	return val_push(c, out, V_BOOL, NULL, 0, v != 0);
}

static int
argnum(struct ectx *c, const struct node *n, const struct item *it,
    int64_t *v)
{
	return item_num(c, n, it, n->fn->name, v);
}

/* Evaluates argument i; IgnoreThisFlow in it is returned through *ign. */
static int
arg(struct ectx *c, const struct node *n, size_t i, struct val *v)
{
	return expr_eval(c, n->args[i], v);
}

/* The one value of a whole-list argument that must be single-valued. */
static const struct item *
single(struct ectx *c, const struct node *n, const struct val *v,
    const char *what)
{
	if (v->n == 1)
		return &v->it[0];
	if (v->n == 0)
		rterr(c, n, "%s: %s has no value", n->fn->name, what);
	else
		rterr(c, n, "%s: %s has %zu values, not 1", n->fn->name, what,
		    v->n);
	return NULL;
}

/*
 * Applies a per-value function.  A NULL argument makes the result NULL,
 * except a NULL first argument of a F_NULLEMPTY function, which is ""
 * (Left, Mid, Word...: "if string is null, return empty string").
 */
int
expr_map(struct ectx *c, const struct node *n, struct val *args,
    size_t nargs, struct val *out)
{
	static const struct item empty = { V_STR, 0, (char *)"", 0 };
	struct item *a[8];
	size_t i, k, cnt = 1;

	for (i = 0; i < nargs; i++) {
		if (args[i].n == 0 && !(i == 0 &&
		    (n->fn->flags & F_NULLEMPTY)))
			return 0;
		if (args[i].n > 1) {
			if (cnt > 1 && args[i].n != cnt)
				return rterr(c, n, "%s: arguments have %zu "
				    "and %zu values", n->fn->name, cnt,
				    args[i].n);
			cnt = args[i].n;
		}
	}
	for (k = 0; k < cnt; k++) {
		for (i = 0; i < nargs; i++)
			a[i] = args[i].n == 0 ? (struct item *)&empty :
			    &args[i].it[args[i].n == 1 ? 0 : k];
		if (n->fn->scalar(c, n, a, nargs, out) == -1)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ text */

static int
f_len(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 };
	const char *p;
	size_t l;
	int r;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	r = push_num(c, out, (int64_t)u8len(p, l));
	sync_buf_release(&t);
	return r;
}

/* Left, Right and Mid: "NumChars < 0 returns the input". */
static int
f_left(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 };
	int right = n->fn->name[0] == 'R';
	const char *p;
	size_t l, cl, off;
	int64_t k;
	int r;

	if (argnum(c, n, a[1], &k) == -1 || text(c, n, a[0], &t, &p, &l) ==
	    -1)
		return -1;
	cl = u8len(p, l);
	if (k < 0 || (uint64_t)k >= cl)
		r = push_str(c, out, p, l);
	else if (right) {
		off = u8off(p, l, cl - (size_t)k);
		r = push_str(c, out, p + off, l - off);
	} else
		r = push_str(c, out, p, u8off(p, l, (size_t)k));
	sync_buf_release(&t);
	return r;
}

static int
f_mid(struct ectx *c, const struct node *n, struct item **a, size_t na,
    struct val *out)
{
	struct sync_buf t = { 0 };
	const char *p;
	size_t l, cl, s, e;
	int64_t start, cnt = INT64_MAX;
	int r;

	if (argnum(c, n, a[1], &start) == -1 ||
	    (na > 2 && argnum(c, n, a[2], &cnt) == -1) ||
	    text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	cl = u8len(p, l);
	if (cnt == 0)
		r = push_str(c, out, "", 0);
	else if (cnt < 0 || start <= 0 || (uint64_t)start > cl)
		r = push_str(c, out, p, l);
	else {
		s = u8off(p, l, (size_t)start - 1);
		e = (uint64_t)cnt >= cl ? l : u8off(p, l, (size_t)start - 1 +
		    (size_t)cnt);
		r = push_str(c, out, p + s, e - s);
	}
	sync_buf_release(&t);
	return r;
}

/* Trim, LTrim, RTrim, StripSpaces. */
static int
f_trim(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p, *name = n->fn->name;
	size_t l, i = 0, j, s = 0, e;
	uint32_t ch;
	int r;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	if (name[0] == 'S') {                   /* StripSpaces */
		for (i = 0; i < l; i++)
			if (p[i] != ' ' && sync_buf_addc(&b, p[i]) == -1) {
				sync_buf_release(&t);
				sync_buf_release(&b);
				return oom(c);
			}
		sync_buf_release(&t);
		return push_buf(c, out, V_STR, &b);
	}
	e = l;
	if (name[0] != 'R') {
		while (i < l) {
			j = i;
			if (!u_space(u8dec(p, l, &i))) {
				i = j;
				break;
			}
		}
		s = i;
	}
	if (name[0] != 'L') {
		/* the last non-space character ends the value */
		e = s;
		for (i = s; i < l;) {
			ch = u8dec(p, l, &i);
			if (!u_space(ch))
				e = i;
		}
	}
	r = push_str(c, out, p + s, e - s);
	sync_buf_release(&t);
	return r;
}

/* LCase, UCase, ToLower, ToUpper (the culture is ignored), PCase. */
static int
f_case(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p, *name = n->fn->name;
	int up = name[0] == 'U' || (name[0] == 'T' && name[2] == 'U');
	size_t l, i = 0, j, w, k;
	uint32_t ch;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	if (name[0] == 'P') {
		/* Words are separated by white space; a word that is all
		 * upper case (an acronym) is left alone, as documented. */
		while (i < l) {
			size_t ws = i;
			int haslower = 0, first = 1;

			for (j = i; j < l;) {
				k = j;
				ch = u8dec(p, l, &j);
				if (u_space(ch)) {
					j = k;
					break;
				}
				if (u_upper(ch) != ch)
					haslower = 1;
			}
			w = j;
			for (i = ws; i < w;) {
				ch = u8dec(p, l, &i);
				if (haslower)
					ch = first ? u_upper(ch) : u_lower(ch);
				first = 0;
				if (u8enc(&b, ch) == -1)
					goto nomem;
			}
			while (i < l) {
				k = i;
				ch = u8dec(p, l, &i);
				if (!u_space(ch)) {
					i = k;
					break;
				}
				if (u8enc(&b, ch) == -1)
					goto nomem;
			}
		}
	} else {
		while (i < l) {
			ch = u8dec(p, l, &i);
			if (u8enc(&b, up ? u_upper(ch) : u_lower(ch)) == -1)
				goto nomem;
		}
	}
	sync_buf_release(&t);
	return push_buf(c, out, V_STR, &b);
nomem:
	sync_buf_release(&t);
	sync_buf_release(&b);
	return oom(c);
}

/* The ASCII forms of U+00C0..U+017F (NULL: unchanged), following the
 * table of Microsoft's NormalizeDiacritics (ø -> oe, ß -> ss). */
static const char *const latin[192] = {
	/* C0 */ "A", "A", "A", "A", "A", "A", "AE", "C",
	"E", "E", "E", "E", "I", "I", "I", "I",
	/* D0 */ "D", "N", "O", "O", "O", "O", "O", NULL,
	"OE", "U", "U", "U", "U", "Y", "TH", "ss",
	/* E0 */ "a", "a", "a", "a", "a", "a", "ae", "c",
	"e", "e", "e", "e", "i", "i", "i", "i",
	/* F0 */ "d", "n", "o", "o", "o", "o", "o", NULL,
	"oe", "u", "u", "u", "u", "y", "th", "y",
	/* 100 */ "A", "a", "A", "a", "A", "a", "C", "c",
	"C", "c", "C", "c", "C", "c", "D", "d",
	/* 110 */ "D", "d", "E", "e", "E", "e", "E", "e",
	"E", "e", "E", "e", "G", "g", "G", "g",
	/* 120 */ "G", "g", "G", "g", "H", "h", "H", "h",
	"I", "i", "I", "i", "I", "i", "I", "i",
	/* 130 */ "I", "i", "IJ", "ij", "J", "j", "K", "k",
	"k", "L", "l", "L", "l", "L", "l", "L",
	/* 140 */ "l", "L", "l", "N", "n", "N", "n", "N",
	"n", "n", "N", "n", "O", "o", "O", "o",
	/* 150 */ "O", "o", "OE", "oe", "R", "r", "R", "r",
	"R", "r", "S", "s", "S", "s", "S", "s",
	/* 160 */ "S", "s", "T", "t", "T", "t", "T", "t",
	"U", "u", "U", "u", "U", "u", "U", "u",
	/* 170 */ "U", "u", "U", "u", "W", "w", "Y", "y",
	"Y", "Z", "z", "Z", "z", "Z", "z", "s",
};

static int
f_diacritics(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	static const char *const ext[] = { "S", "s", "T", "t" }; /* 218.. */
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p, *rep;
	size_t l, i = 0;
	uint32_t ch;
	int r;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	while (i < l) {
		ch = u8dec(p, l, &i);
		rep = NULL;
		if (ch >= 0x300 && ch <= 0x36f)
			continue;       /* combining marks of decomposed text */
		if (ch >= 0xc0 && ch <= 0x17f)
			rep = latin[ch - 0xc0];
		else if (ch >= 0x218 && ch <= 0x21b)
			rep = ext[ch - 0x218];
		r = rep ? sync_buf_adds(&b, rep) : u8enc(&b, ch);
		if (r == -1) {
			sync_buf_release(&t);
			sync_buf_release(&b);
			return oom(c);
		}
	}
	sync_buf_release(&t);
	return push_buf(c, out, V_STR, &b);
}

/* Copies s with the monikers \n, \r and \t of Replace turned into the
 * characters. */
static int
monikers(const char *s, size_t l, struct sync_buf *b)
{
	size_t i;

	for (i = 0; i < l; i++) {
		if (s[i] == '\\' && i + 1 < l &&
		    (s[i + 1] == 'n' || s[i + 1] == 'r' || s[i + 1] == 't')) {
			i++;
			if (sync_buf_addc(b, s[i] == 'n' ? '\n' :
			    s[i] == 'r' ? '\r' : '\t') == -1)
				return -1;
		} else if (sync_buf_addc(b, s[i]) == -1)
			return -1;
	}
	return sync_buf_grow(b, 1);
}

static int
f_replace(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t0 = { 0 }, t1 = { 0 }, t2 = { 0 }, o = { 0 },
	    nw = { 0 }, b = { 0 };
	const char *s, *old, *new, *hit;
	size_t sl, ol, nl, i = 0;
	int r = -1;

	if (text(c, n, a[0], &t0, &s, &sl) == -1 ||
	    text(c, n, a[1], &t1, &old, &ol) == -1 ||
	    text(c, n, a[2], &t2, &new, &nl) == -1)
		goto done;
	if (monikers(old, ol, &o) == -1 || monikers(new, nl, &nw) == -1) {
		oom(c);
		goto done;
	}
	if (o.len == 0) {
		r = push_str(c, out, s, sl);
		goto done;
	}
	while (i < sl && (hit = memmem(s + i, sl - i, o.p, o.len)) != NULL) {
		if (sync_buf_add(&b, s + i, (size_t)(hit - (s + i))) == -1 ||
		    sync_buf_add(&b, nw.p, nw.len) == -1) {
			oom(c);
			goto done;
		}
		if (b.len > EXPR_MAXVALUE) {
			rterr(c, n, "Replace: value longer than %u bytes",
			    EXPR_MAXVALUE);
			goto done;
		}
		i = (size_t)(hit - s) + o.len;
	}
	if (sync_buf_add(&b, s + i, sl - i) == -1) {
		oom(c);
		goto done;
	}
	r = push_buf(c, out, V_STR, &b);
done:
	sync_buf_release(&t0);
	sync_buf_release(&t1);
	sync_buf_release(&t2);
	sync_buf_release(&o);
	sync_buf_release(&nw);
	sync_buf_release(&b);
	return r;
}

/* ReplaceChars(string, "src:target,src:target"): white space in the
 * pattern is ignored, each source is one character, a target may be
 * empty (the character is removed). */
static int
f_replacechars(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t0 = { 0 }, t1 = { 0 }, b = { 0 };
	uint32_t *pat = NULL, src[256], *s = NULL;
	size_t tgt[256][2];             /* start and end in pat */
	size_t sl, pl, np, ns, i, j, k, nmap = 0;
	const char *sp, *pp;
	int r = -1;

	if (text(c, n, a[0], &t0, &sp, &sl) == -1 ||
	    text(c, n, a[1], &t1, &pp, &pl) == -1)
		goto done;
	if ((pat = u8cps(pp, pl, &np)) == NULL || (s = u8cps(sp, sl, &ns)) ==
	    NULL) {
		oom(c);
		goto done;
	}
	for (i = j = 0; i < np; i++)
		if (!u_space(pat[i]))
			pat[j++] = pat[i];
	np = j;
	for (i = 0; i < np; i = j + 1) {
		for (j = i; j < np && pat[j] != ','; j++)
			;
		if (j == i)
			continue;
		if (j - i < 2 || pat[i + 1] != ':') {
			struct sync_buf e = { 0 };

			for (k = i; k < j; k++)
				u8enc(&e, pat[k]);
			rterr(c, n, "ReplaceChars: pattern entry '%s' is not "
			    "one character, ':' and a replacement",
			    e.p ? e.p : "");
			sync_buf_release(&e);
			goto done;
		}
		if (nmap == 256) {
			rterr(c, n, "ReplaceChars: more than 256 entries");
			goto done;
		}
		src[nmap] = pat[i];
		tgt[nmap][0] = i + 2;
		tgt[nmap][1] = j;
		nmap++;
	}
	for (i = 0; i < ns; i++) {
		for (k = 0; k < nmap && src[k] != s[i]; k++)
			;
		if (k == nmap) {
			if (u8enc(&b, s[i]) == -1)
				goto nomem;
			continue;
		}
		for (j = tgt[k][0]; j < tgt[k][1]; j++)
			if (u8enc(&b, pat[j]) == -1)
				goto nomem;
	}
	r = push_buf(c, out, V_STR, &b);
	goto done;
nomem:
	oom(c);
done:
	free(pat);
	free(s);
	sync_buf_release(&t0);
	sync_buf_release(&t1);
	sync_buf_release(&b);
	return r;
}

/* Word(string, n, delimiters): every character of delimiters separates
 * words; runs of delimiters count as one. */
static int
f_word(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t0 = { 0 }, t2 = { 0 };
	uint32_t *d = NULL;
	const char *s, *dp;
	size_t sl, dl, nd, i = 0, j, k, ws = 0, we = 0;
	int64_t want, w = 0;
	int r = -1, isdelim, in = 0;
	uint32_t ch;

	if (argnum(c, n, a[1], &want) == -1 ||
	    text(c, n, a[0], &t0, &s, &sl) == -1 ||
	    text(c, n, a[2], &t2, &dp, &dl) == -1)
		goto done;
	if ((d = u8cps(dp, dl, &nd)) == NULL) {
		oom(c);
		goto done;
	}
	while (i <= sl) {
		j = i;
		if (i < sl) {
			ch = u8dec(s, sl, &i);
			for (isdelim = 0, k = 0; k < nd; k++)
				if (d[k] == ch)
					isdelim = 1;
		} else {
			isdelim = 1;
			i++;
		}
		if (!isdelim && !in) {
			in = 1;
			ws = j;
		} else if (isdelim && in) {
			in = 0;
			we = j;
			if (++w == want)
				break;
		}
	}
	if (want >= 1 && w == want)
		r = push_str(c, out, s + ws, we - ws);
	else
		r = push_str(c, out, "", 0);
done:
	free(d);
	sync_buf_release(&t0);
	sync_buf_release(&t2);
	return r;
}

static int
f_pad(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t0 = { 0 }, t2 = { 0 }, b = { 0 };
	int left = n->fn->name[3] == 'L';
	const char *s, *pc;
	size_t sl, pl, cl;
	int64_t len, k;
	int r = -1;

	if (argnum(c, n, a[1], &len) == -1 ||
	    text(c, n, a[0], &t0, &s, &sl) == -1 ||
	    text(c, n, a[2], &t2, &pc, &pl) == -1)
		goto done;
	if (u8len(pc, pl) != 1) {
		rterr(c, n, "%s: the padding must be one character",
		    n->fn->name);
		goto done;
	}
	if (len > MAXCHARS) {
		rterr(c, n, "%s: length %lld is more than %d", n->fn->name,
		    (long long)len, MAXCHARS);
		goto done;
	}
	cl = u8len(s, sl);
	if (!left && sync_buf_add(&b, s, sl) == -1)
		goto nomem;
	for (k = (int64_t)cl; k < len; k++)
		if (sync_buf_add(&b, pc, pl) == -1)
			goto nomem;
	if (left && sync_buf_add(&b, s, sl) == -1)
		goto nomem;
	r = push_buf(c, out, V_STR, &b);
	goto done;
nomem:
	oom(c);
done:
	sync_buf_release(&t0);
	sync_buf_release(&t2);
	sync_buf_release(&b);
	return r;
}

static int
textcompare(struct ectx *c, const struct node *n, const struct item *it,
    int *ci)
{
	struct sync_buf t = { 0 };
	const char *p;
	size_t l;

	if (text(c, n, it, &t, &p, &l) == -1)
		return -1;
	if (l == 13 && strncasecmp(p, "vbTextCompare", l) == 0)
		*ci = 1;
	else if (l == 15 && strncasecmp(p, "vbBinaryCompare", l) == 0)
		*ci = 0;
	else {
		rterr(c, n, "%s: compare must be vbTextCompare or "
		    "vbBinaryCompare, not '%.*s'", n->fn->name, (int)l, p);
		sync_buf_release(&t);
		return -1;
	}
	sync_buf_release(&t);
	return 0;
}

/* InStr(check, match[, start[, compare]]), InStrRev likewise: 1-based
 * character positions, 0 when not found. */
static int
f_instr(struct ectx *c, const struct node *n, struct item **a, size_t na,
    struct val *out)
{
	struct sync_buf t0 = { 0 }, t1 = { 0 };
	int rev = strcasecmp(n->fn->name, "InStrRev") == 0, ci = 0, r = -1;
	uint32_t *h = NULL, *m = NULL;
	size_t hl, ml, nh, nm, i, k;
	const char *hp, *mp;
	int64_t start = rev ? -1 : 1, found = 0;

	if ((na > 2 && argnum(c, n, a[2], &start) == -1) ||
	    (na > 3 && textcompare(c, n, a[3], &ci) == -1) ||
	    text(c, n, a[0], &t0, &hp, &hl) == -1 ||
	    text(c, n, a[1], &t1, &mp, &ml) == -1)
		goto done;
	if ((h = u8cps(hp, hl, &nh)) == NULL || (m = u8cps(mp, ml, &nm)) ==
	    NULL) {
		oom(c);
		goto done;
	}
	if (ci) {
		for (i = 0; i < nh; i++)
			h[i] = u_lower(h[i]);
		for (i = 0; i < nm; i++)
			m[i] = u_lower(m[i]);
	}
	if (!rev && start < 1) {
		rterr(c, n, "InStr: start must be 1 or more");
		goto done;
	}
	if (rev && (start == -1 || start > (int64_t)nh))
		start = (int64_t)nh;
	if (nm <= nh && nm > 0) {
		if (!rev) {
			for (i = (size_t)start - 1; i + nm <= nh; i++) {
				for (k = 0; k < nm && h[i + k] == m[k]; k++)
					;
				if (k == nm) {
					found = (int64_t)i + 1;
					break;
				}
			}
		} else if (start >= (int64_t)nm) {
			/* the match lies within the first start characters */
			for (i = (size_t)start - nm + 1; i-- > 0;) {
				for (k = 0; k < nm && h[i + k] == m[k]; k++)
					;
				if (k == nm) {
					found = (int64_t)i + 1;
					break;
				}
			}
		}
	}
	r = push_num(c, out, found);
done:
	free(h);
	free(m);
	sync_buf_release(&t0);
	sync_buf_release(&t1);
	return r;
}

/* Split(value, delimiter[, limit]): the delimiter is one character; with
 * a limit, the last value holds the rest of the string. */
static int
f_split(struct ectx *c, const struct node *n, struct item **a, size_t na,
    struct val *out)
{
	struct sync_buf t0 = { 0 }, t1 = { 0 };
	const char *s, *d, *hit;
	size_t sl, dl, i = 0;
	int64_t limit = 0, cnt = 0;
	int r = -1;

	if ((na > 2 && argnum(c, n, a[2], &limit) == -1) ||
	    text(c, n, a[0], &t0, &s, &sl) == -1 ||
	    text(c, n, a[1], &t1, &d, &dl) == -1)
		goto done;
	if (u8len(d, dl) != 1) {
		rterr(c, n, "Split: the delimiter must be one character");
		goto done;
	}
	for (;;) {
		hit = (limit <= 0 || cnt + 1 < limit) ?
		    memmem(s + i, sl - i, d, dl) : NULL;
		if (hit == NULL) {
			if (push_str(c, out, s + i, sl - i) == -1)
				goto done;
			break;
		}
		if (push_str(c, out, s + i, (size_t)(hit - (s + i))) == -1)
			goto done;
		cnt++;
		i = (size_t)(hit - s) + dl;
	}
	r = 0;
done:
	sync_buf_release(&t0);
	sync_buf_release(&t1);
	return r;
}

static int
f_append(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf b = { 0 };

	if (item_str(c, n, a[0], &b) == -1 || item_str(c, n, a[1], &b) == -1) {
		sync_buf_release(&b);
		return -1;
	}
	return push_buf(c, out, V_STR, &b);
}

/* ------------------------------------------------------ conversion */

static int
f_tobase64(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, u = { 0 };
	const char *p;
	char *b64;
	size_t l, i = 0;
	uint32_t ch;
	int r;

	if (a[0]->t == V_BIN) {         /* raw bytes: objectGUID -> immutableId */
		p = a[0]->p;
		l = a[0]->len;
	} else {
		/* a string: base64 of its UTF-16LE ("Unicode") form */
		if (text(c, n, a[0], &t, &p, &l) == -1)
			return -1;
		while (i < l) {
			unsigned char w[4];

			ch = u8dec(p, l, &i);
			if (ch >= 0x110000)
				ch = 0xfffd;
			if (ch >= 0x10000) {
				uint32_t v = ch - 0x10000, hi = 0xd800 | v >> 10,
				    lo = 0xdc00 | (v & 0x3ff);

				w[0] = hi & 0xff, w[1] = (unsigned char)(hi >> 8);
				w[2] = lo & 0xff, w[3] = (unsigned char)(lo >> 8);
				r = sync_buf_add(&u, w, 4);
			} else {
				w[0] = ch & 0xff, w[1] = (unsigned char)(ch >> 8);
				r = sync_buf_add(&u, w, 2);
			}
			if (r == -1) {
				sync_buf_release(&t);
				sync_buf_release(&u);
				return oom(c);
			}
		}
		p = u.p ? u.p : "";
		l = u.len;
	}
	b64 = sync_base64_encode(p, l);
	sync_buf_release(&t);
	sync_buf_release(&u);
	if (b64 == NULL)
		return oom(c);
	r = push_str(c, out, b64, strlen(b64));
	free(b64);
	return r;
}

static int
f_frombase64(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	struct sync_buf t = { 0 }, t1 = { 0 }, b = { 0 };
	unsigned char *raw = NULL;
	const char *p, *enc = "Unicode";
	size_t l, rl, el = 7, i;
	int r = -1;

	if (text(c, n, a[0], &t, &p, &l) == -1 ||
	    (na > 1 && text(c, n, a[1], &t1, &enc, &el) == -1))
		goto done;
	if (sync_base64_decode(p, l, &raw, &rl, c->err) == -1) {
		char msg[SYNC_ERRMAX];

		snprintf(msg, sizeof(msg), "%s", c->err->msg);
		rterr(c, n, "ConvertFromBase64: %s", msg);
		goto done;
	}
	if (el == 7 && strncasecmp(enc, "Unicode", 7) == 0) {
		if (rl % 2) {
			rterr(c, n, "ConvertFromBase64: odd number of bytes "
			    "for Unicode");
			goto done;
		}
		for (i = 0; i < rl; i += 2) {
			uint32_t w = raw[i] | (uint32_t)raw[i + 1] << 8, w2;

			if (w >= 0xd800 && w <= 0xdbff && i + 3 < rl &&
			    (w2 = raw[i + 2] | (uint32_t)raw[i + 3] << 8) >=
			    0xdc00 && w2 <= 0xdfff) {
				w = 0x10000 + ((w - 0xd800) << 10) +
				    (w2 - 0xdc00);
				i += 2;
			} else if (w >= 0xd800 && w <= 0xdfff)
				w = 0xfffd;
			if (u8enc(&b, w) == -1)
				goto nomem;
		}
	} else if (el == 4 && strncasecmp(enc, "UTF8", 4) == 0) {
		if (!sync_utf8_valid((char *)raw, rl)) {
			rterr(c, n, "ConvertFromBase64: not UTF-8 text");
			goto done;
		}
		if (sync_buf_add(&b, raw, rl) == -1)
			goto nomem;
	} else if (el == 5 && strncasecmp(enc, "ASCII", 5) == 0) {
		for (i = 0; i < rl; i++)
			if (sync_buf_addc(&b, raw[i] < 0x80 && raw[i] ?
			    raw[i] : '?') == -1)
				goto nomem;
	} else {
		rterr(c, n, "ConvertFromBase64: encoding must be Unicode, "
		    "UTF8 or ASCII, not '%.*s'", (int)el, enc);
		goto done;
	}
	r = push_buf(c, out, V_STR, &b);
	goto done;
nomem:
	oom(c);
done:
	free(raw);
	sync_buf_release(&t);
	sync_buf_release(&t1);
	sync_buf_release(&b);
	return r;
}

static int
f_toutf8hex(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p;
	size_t l, i;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	for (i = 0; i < l; i++)
		if (sync_buf_addf(&b, "%02X", (unsigned char)p[i]) == -1) {
			sync_buf_release(&t);
			sync_buf_release(&b);
			return oom(c);
		}
	sync_buf_release(&t);
	return push_buf(c, out, V_STR, &b);
}

static int
hexdig(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int
f_fromutf8hex(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p;
	size_t l, i;
	int hi, lo;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	if (l % 2)
		goto bad;
	for (i = 0; i < l; i += 2) {
		if ((hi = hexdig((unsigned char)p[i])) < 0 ||
		    (lo = hexdig((unsigned char)p[i + 1])) < 0)
			goto bad;
		if (sync_buf_addc(&b, hi << 4 | lo) == -1) {
			sync_buf_release(&t);
			sync_buf_release(&b);
			return oom(c);
		}
	}
	if (!sync_utf8_valid(b.p ? b.p : "", b.len))
		goto bad;
	sync_buf_release(&t);
	return push_buf(c, out, V_STR, &b);
bad:
	rterr(c, n, "ConvertFromUTF8Hex: '%.*s' is not hex-encoded UTF-8",
	    l > 64 ? 64 : (int)l, p);
	sync_buf_release(&t);
	sync_buf_release(&b);
	return -1;
}

static int
f_cguid(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	unsigned char raw[16];

	if ((a[0]->t != V_STR && a[0]->t != V_REF) ||
	    memchr(a[0]->p, '\0', a[0]->len) ||
	    sync_guid_parse(a[0]->p, raw) == -1)
		return rterr(c, n, "CGuid: '%.*s' is not a GUID",
		    a[0]->t == V_STR && a[0]->len < 64 ? (int)a[0]->len : 0,
		    a[0]->t == V_STR ? a[0]->p : "");
	return val_push(c, out, V_BIN, (char *)raw, 16, 0);
}

static int
f_stringfromguid(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	char s[37];

	if (a[0]->t != V_BIN || a[0]->len != 16)
		return rterr(c, n, "StringFromGuid: needs a binary GUID of "
		    "16 bytes (is the attribute marked binary?)");
	sync_guid_string((const unsigned char *)a[0]->p, s);
	return push_str(c, out, s, 36);
}

static int
f_stringfromsid(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	char *s;
	int r;

	if (a[0]->t != V_BIN)
		return rterr(c, n, "StringFromSid: needs a binary SID (is the "
		    "attribute marked binary?)");
	if ((s = sync_sid_string((const unsigned char *)a[0]->p,
	    a[0]->len)) == NULL)
		return rterr(c, n, "StringFromSid: not a valid SID");
	r = push_str(c, out, s, strlen(s));
	free(s);
	return r;
}

static int
f_cnum(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	int64_t v;

	if (argnum(c, n, a[0], &v) == -1)
		return -1;
	return push_num(c, out, v);
}

static int
f_cstr(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf b = { 0 };

	if (item_str(c, n, a[0], &b) == -1) {
		sync_buf_release(&b);
		return -1;
	}
	return push_buf(c, out, V_STR, &b);
}

static int
f_cref(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf b = { 0 };

	if (item_str(c, n, a[0], &b) == -1) {
		sync_buf_release(&b);
		return -1;
	}
	return push_buf(c, out, V_REF, &b);
}

static int
f_cbool(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	int v;

	if (item_bool(c, n, a[0], &v) == -1)
		return -1;
	return push_bool(c, out, n->fn->name[0] == 'N' ? !v : v);
}

/* BitAnd, BitOr, IsBitSet (flag is a mask: IsBitSet(&HF, 4) is True). */
static int
f_bit(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	int64_t x, y;

	if (argnum(c, n, a[0], &x) == -1 || argnum(c, n, a[1], &y) == -1)
		return -1;
	if (n->fn->name[0] == 'I')
		return push_bool(c, out, (x & y) != 0);
	return push_num(c, out, n->fn->name[3] == 'A' ? (x & y) : (x | y));
}

/* ------------------------------------------------------- directory */

/* The components of a DN: starts and ends of "type=value" texts. */
struct rdn {
	size_t s, e;
};

static size_t
dn_split(const char *p, size_t l, struct rdn *v, size_t max)
{
	size_t i = 0, n = 0, s = 0;
	int quoted = 0;

	for (i = 0; i <= l; i++) {
		if (i < l && p[i] == '\\' && i + 1 < l) {
			i++;
			continue;
		}
		if (i < l && p[i] == '"')
			quoted = !quoted;
		if (i == l || (!quoted && (p[i] == ',' || p[i] == ';'))) {
			size_t a = s, b = i;

			while (a < b && p[a] == ' ')
				a++;
			while (b > a && p[b - 1] == ' ' &&
			    !(b - 2 > a && p[b - 2] == '\\'))
				b--;
			if (n < max && b > a) {
				v[n].s = a;
				v[n].e = b;
				n++;
			}
			s = i + 1;
		}
	}
	return n;
}

/* Appends the value of one component, unescaped (RFC 4514). */
static int
rdn_value(const char *p, const struct rdn *r, struct sync_buf *b)
{
	const char *eq = memchr(p + r->s, '=', r->e - r->s);
	size_t i = eq ? (size_t)(eq - p) + 1 : r->s;
	int hi, lo;

	while (i < r->e && p[i] == ' ')
		i++;
	if (i < r->e && p[i] == '"' && r->e - i >= 2 && p[r->e - 1] == '"')
		return sync_buf_add(b, p + i + 1, r->e - i - 2);
	for (; i < r->e; i++) {
		if (p[i] == '\\' && i + 1 < r->e) {
			if (i + 2 < r->e &&
			    (hi = hexdig((unsigned char)p[i + 1])) >= 0 &&
			    (lo = hexdig((unsigned char)p[i + 2])) >= 0) {
				if (sync_buf_addc(b, hi << 4 | lo) == -1)
					return -1;
				i += 2;
				continue;
			}
			i++;
		}
		if (sync_buf_addc(b, p[i]) == -1)
			return -1;
	}
	return sync_buf_grow(b, 1);
}

/* DNComponent(dn, n), DNComponentRev(dn, n[, "DC"]).  Out of range
 * gives NULL. */
static int
f_dncomponent(struct ectx *c, const struct node *n, struct item **a,
    size_t na, struct val *out)
{
	struct sync_buf t = { 0 }, t2 = { 0 }, b = { 0 };
	int rev = strlen(n->fn->name) > 11, skipdc = 0, r = -1;
	struct rdn v[256], *pick = NULL;
	const char *p, *opt;
	size_t l, ol, cnt, i;
	int64_t k, seen = 0;

	if (argnum(c, n, a[1], &k) == -1 || text(c, n, a[0], &t, &p, &l) ==
	    -1)
		goto done;
	if (na > 2) {
		if (text(c, n, a[2], &t2, &opt, &ol) == -1)
			goto done;
		if (ol != 2 || strncasecmp(opt, "DC", 2) != 0) {
			rterr(c, n, "DNComponentRev: the option must be "
			    "\"DC\"");
			goto done;
		}
		skipdc = 1;
	}
	cnt = dn_split(p, l, v, 256);
	for (i = 0; i < cnt && k >= 1; i++) {
		struct rdn *x = &v[rev ? cnt - 1 - i : i];

		if (skipdc && x->e - x->s >= 3 &&
		    strncasecmp(p + x->s, "dc", 2) == 0 &&
		    (p[x->s + 2] == '=' || p[x->s + 2] == ' '))
			continue;
		if (++seen == k) {
			pick = x;
			break;
		}
	}
	if (pick == NULL) {
		r = 0;
		goto done;
	}
	if (rdn_value(p, pick, &b) == -1) {
		oom(c);
		goto done;
	}
	r = push_buf(c, out, V_STR, &b);
done:
	sync_buf_release(&t);
	sync_buf_release(&t2);
	sync_buf_release(&b);
	return r;
}

/* EscapeDNComponent("cn=" & value): escapes the value after the first
 * '=' as RFC 4514 asks. */
static int
f_escapedn(struct ectx *c, const struct node *n, struct item **a,
    size_t na UNUSED, struct val *out)
{
	struct sync_buf t = { 0 }, b = { 0 };
	const char *p, *eq;
	size_t l, s, i;
	int r = 0;

	if (text(c, n, a[0], &t, &p, &l) == -1)
		return -1;
	eq = memchr(p, '=', l);
	s = eq ? (size_t)(eq - p) + 1 : 0;
	r = sync_buf_add(&b, p, s);
	for (i = s; i < l && r == 0; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == 0)
			r = sync_buf_adds(&b, "\\00");
		else if (strchr("\"+,;<>\\", ch) ||
		    (i == s && (ch == '#' || ch == ' ')) ||
		    (i == l - 1 && ch == ' ')) {
			if ((r = sync_buf_addc(&b, '\\')) == 0)
				r = sync_buf_addc(&b, ch);
		} else
			r = sync_buf_addc(&b, ch);
	}
	sync_buf_release(&t);
	if (r == -1) {
		sync_buf_release(&b);
		return oom(c);
	}
	return push_buf(c, out, V_STR, &b);
}

/* ------------------------------------------- whole-list functions */

/* Evaluates all arguments of n into v (n->nargs of them).  Returns 1 when
 * one is IgnoreThisFlow (out is set to it), 0, or -1. */
static int
evalall(struct ectx *c, const struct node *n, struct val *v,
    struct val *out)
{
	size_t i;

	for (i = 0; i < n->nargs; i++)
		v[i].kind = K_NULL, v[i].it = NULL, v[i].n = v[i].cap = 0;
	for (i = 0; i < n->nargs; i++) {
		if (arg(c, n, i, &v[i]) == -1)
			return -1;
		if (v[i].kind == K_IGNORE) {
			val_null(out, K_IGNORE);
			return 1;
		}
	}
	return 0;
}

static void
releaseall(const struct node *n, struct val *v)
{
	size_t i;

	for (i = 0; i < n->nargs; i++)
		val_release(&v[i]);
}

/* True when a condition holds: it has values and all are True. */
static int
truth(struct ectx *c, const struct node *n, const struct val *v, int *t)
{
	size_t i;
	int b;

	*t = v->n > 0;
	for (i = 0; i < v->n; i++) {
		if (item_bool(c, n, &v->it[i], &b) == -1)
			return -1;
		if (!b)
			*t = 0;
	}
	return 0;
}

/*
 * IIF(condition, valueIfTrue, valueIfFalse).  Only the chosen value is
 * evaluated, so IIF(IsPresent([a]), [a], Error("...")) works.  A
 * multi-valued condition chooses value by value:
 * IIF(InStr([proxyAddresses], "SIP:") = 1, NULL, [proxyAddresses]).
 */
static int
c_iif(struct ectx *c, const struct node *n, struct val *out)
{
	struct val cond = { K_NULL, NULL, 0, 0 }, br[2] = {
	    { K_NULL, NULL, 0, 0 }, { K_NULL, NULL, 0, 0 } };
	int have[2] = { 0, 0 }, b, r = -1;
	size_t i, w;
	const struct val *v;

	if (arg(c, n, 0, &cond) == -1)
		return -1;
	if (cond.kind == K_IGNORE) {
		val_null(out, K_IGNORE);
		return 0;
	}
	if (cond.n <= 1) {
		b = 0;
		if (cond.n == 1 && item_bool(c, n, &cond.it[0], &b) == -1)
			goto done;
		r = arg(c, n, b ? 1 : 2, out);
		goto done;
	}
	for (i = 0; i < cond.n; i++) {
		if (item_bool(c, n, &cond.it[i], &b) == -1)
			goto done;
		w = b ? 0 : 1;
		if (!have[w]) {
			if (arg(c, n, w + 1, &br[w]) == -1)
				goto done;
			have[w] = 1;
		}
		v = &br[w];
		if (v->n == 0)
			continue;
		if (v->n != 1 && v->n != cond.n) {
			rterr(c, n, "IIF: the condition has %zu values, the "
			    "value %zu", cond.n, v->n);
			goto done;
		}
		if (val_pushitem(c, out, &v->it[v->n == 1 ? 0 : i]) == -1)
			goto done;
	}
	r = 0;
done:
	val_release(&cond);
	val_release(&br[0]);
	val_release(&br[1]);
	return r;
}

/* Switch(cond1, value1, ...): every condition is evaluated, as
 * documented; the value of the first True one is the result, NULL if
 * none is True. */
static int
c_switch(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	size_t i, pick = 0;
	int t, found = 0;

	for (i = 0; i < n->nargs; i += 2) {
		if (arg(c, n, i, &v) == -1)
			return -1;
		if (v.kind == K_IGNORE) {
			val_null(out, K_IGNORE);
			return 0;
		}
		if (truth(c, n->args[i], &v, &t) == -1) {
			val_release(&v);
			return -1;
		}
		val_release(&v);
		if (t && !found) {
			found = 1;
			pick = i + 1;
		}
	}
	if (!found)
		return 0;
	return arg(c, n, pick, out);
}

static int
c_coalesce(struct ectx *c, const struct node *n, struct val *out)
{
	size_t i;

	for (i = 0; i < n->nargs; i++) {
		if (arg(c, n, i, out) == -1)
			return -1;
		if (out->kind == K_IGNORE || val_present(out))
			return 0;
	}
	val_null(out, K_NULL);
	return 0;
}

/* IsNull, IsEmpty, IsNullOrEmpty, IsPresent, IgnoreFlowIfNullOrEmpty. */
static int
c_isnull(struct ectx *c, const struct node *n, struct val *out)
{
	const char *name = n->fn->name;
	struct val v = { K_NULL, NULL, 0, 0 };
	int r, present;

	if (arg(c, n, 0, &v) == -1)
		return -1;
	if (v.kind == K_IGNORE) {
		val_null(out, K_IGNORE);
		return 0;
	}
	present = val_present(&v);
	if (strcmp(name, "IgnoreFlowIfNullOrEmpty") == 0) {
		if (!present) {
			val_release(&v);
			val_null(out, K_IGNORE);
			return 0;
		}
		*out = v;
		return 0;
	}
	if (strcmp(name, "IsNull") == 0)
		r = push_bool(c, out, v.n == 0);
	else if (strcmp(name, "IsEmpty") == 0)
		r = push_bool(c, out, v.n > 0 && !present);
	else if (strcmp(name, "IsPresent") == 0)
		r = push_bool(c, out, present);
	else
		r = push_bool(c, out, !present);
	val_release(&v);
	return r;
}

/* IsString, IsNumeric, IsGuid: True when there is a value and every
 * value converts. */
static int
c_istype(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	unsigned char raw[16];
	int64_t x;
	size_t i;
	int ok, r;
	char kind = n->fn->name[2];     /* S, N, G */

	if (arg(c, n, 0, &v) == -1)
		return -1;
	ok = v.n > 0;
	for (i = 0; i < v.n; i++) {
		const struct item *it = &v.it[i];

		if (kind == 'S')
			ok &= it->t != V_BIN;
		else if (kind == 'N')
			ok &= it->t == V_NUM || ((it->t == V_STR ||
			    it->t == V_REF) && parse_num(it->p, it->len,
			    &x) == 0);
		else
			ok &= it->t == V_STR && !memchr(it->p, 0, it->len) &&
			    sync_guid_parse(it->p, raw) == 0;
	}
	val_release(&v);
	r = push_bool(c, out, ok);
	return r;
}

static int
c_count(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	int r;

	if (arg(c, n, 0, &v) == -1)
		return -1;
	r = push_num(c, out, (int64_t)v.n);
	val_release(&v);
	return r;
}

/* Item(attribute, index) and ItemOrNull: 1-based. */
static int
c_item(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v[2];
	const struct item *ix;
	int64_t k;
	int r = -1;

	if ((r = evalall(c, n, v, out)) != 0)
		goto done;
	r = -1;
	if (v[1].n == 0) {
		r = 0;          /* Item(x, Contains(...)) with x NULL */
		goto done;
	}
	if ((ix = single(c, n, &v[1], "the index")) == NULL ||
	    argnum(c, n, ix, &k) == -1)
		goto done;
	if (k < 1 || (uint64_t)k > v[0].n) {
		if (n->fn->name[4] == 'O')
			r = 0;
		else
			rterr(c, n, "Item: index %lld is out of range (the "
			    "attribute has %zu values)", (long long)k, v[0].n);
		goto done;
	}
	r = val_pushitem(c, out, &v[0].it[k - 1]);
done:
	releaseall(n, v);
	return r;
}

/* Join(attribute[, delimiter]): the default delimiter is a space. */
static int
c_join(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v[2];
	struct sync_buf b = { 0 }, d = { 0 };
	size_t i;
	int r;

	if ((r = evalall(c, n, v, out)) != 0)
		goto done;
	r = -1;
	if (v[0].n == 0) {
		r = 0;
		goto done;
	}
	if (n->nargs < 2) {
		if (sync_buf_addc(&d, ' ') == -1)
			goto nomem;
	} else if (v[1].n > 0) {
		if (single(c, n, &v[1], "the delimiter") == NULL ||
		    item_str(c, n, &v[1].it[0], &d) == -1)
			goto done;
	}
	for (i = 0; i < v[0].n; i++) {
		if (i && sync_buf_add(&b, d.p, d.len) == -1)
			goto nomem;
		if (item_str(c, n, &v[0].it[i], &b) == -1)
			goto done;
	}
	r = push_buf(c, out, V_STR, &b);
	goto done;
nomem:
	oom(c);
done:
	sync_buf_release(&b);
	sync_buf_release(&d);
	if (n->nargs > 1)
		releaseall(n, v);
	else
		val_release(&v[0]);
	return r;
}

/* Contains(attribute, search[, CaseInsensitive|CaseSensitive]): the
 * 1-based index of the first value that contains search (that equals it,
 * for references), 0 if none. */
static int
c_contains(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v[3];
	struct sync_buf s = { 0 }, h = { 0 }, o = { 0 };
	const struct item *it;
	int ci = 0, r;
	size_t i, k;
	int64_t found = 0;

	if ((r = evalall(c, n, v, out)) != 0)
		goto done;
	r = -1;
	if (n->nargs > 2) {
		if ((it = single(c, n, &v[2], "the case type")) == NULL ||
		    item_str(c, n, it, &o) == -1)
			goto done;
		if (o.len == 15 && strncasecmp(o.p, "CaseInsensitive", 15) ==
		    0)
			ci = 1;
		else if (!(o.len == 13 && strncasecmp(o.p, "CaseSensitive",
		    13) == 0)) {
			rterr(c, n, "Contains: the case type must be "
			    "CaseInsensitive or CaseSensitive");
			goto done;
		}
	}
	if (v[1].n == 0) {
		r = push_num(c, out, 0);
		goto done;
	}
	if ((it = single(c, n, &v[1], "the search string")) == NULL ||
	    item_str(c, n, it, &s) == -1)
		goto done;
	if (ci)
		for (k = 0; k < s.len; k++)
			s.p[k] = (char)tolower((unsigned char)s.p[k]);
	for (i = 0; i < v[0].n && !found; i++) {
		it = &v[0].it[i];
		if (it->t == V_BIN)
			continue;
		sync_buf_reset(&h);
		if (item_str(c, n, it, &h) == -1)
			goto done;
		if (ci)
			for (k = 0; k < h.len; k++)
				h.p[k] = (char)tolower((unsigned char)h.p[k]);
		if (it->t == V_REF ? (h.len == s.len && (s.len == 0 ||
		    memcmp(h.p, s.p, s.len) == 0)) :
		    (s.len == 0 || (h.len && memmem(h.p, h.len, s.p, s.len))))
			found = (int64_t)i + 1;
	}
	r = push_num(c, out, found);
done:
	sync_buf_release(&s);
	sync_buf_release(&h);
	sync_buf_release(&o);
	releaseall(n, v);
	return r;
}

/* RemoveDuplicates: the first of equal values stays, case matters
 * (SMTP: and smtp: are different proxyAddresses). */
static int
c_removedup(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	size_t i, k;

	if (arg(c, n, 0, &v) == -1)
		return -1;
	if (v.kind != K_VALUES) {
		*out = v;
		return 0;
	}
	for (i = 0; i < v.n; i++) {
		for (k = 0; k < out->n; k++)
			if (out->it[k].t == v.it[i].t &&
			    out->it[k].len == v.it[i].len &&
			    out->it[k].num == v.it[i].num &&
			    (v.it[i].len == 0 || memcmp(out->it[k].p,
			    v.it[i].p, v.it[i].len) == 0))
				break;
		if (k == out->n && val_pushitem(c, out, &v.it[i]) == -1) {
			val_release(&v);
			return -1;
		}
	}
	val_release(&v);
	return 0;
}

/* Error("message"): evaluation fails with exactly the message. */
static int
c_error(struct ectx *c, const struct node *n, struct val *out UNUSED)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	struct sync_buf b = { 0 };
	size_t i;

	if (arg(c, n, 0, &v) == -1)
		return -1;
	for (i = 0; i < v.n; i++)
		if (item_str(c, n, &v.it[i], &b) == -1) {
			val_release(&v);
			sync_buf_release(&b);
			return -1;
		}
	val_release(&v);
	sync_errf(c->err, "%s", b.p ? b.p : "Error()");
	sync_buf_release(&b);
	return -1;
}

/* Where($item, values, condition), Select($item, values, function),
 * With($var, subexpression, expression). */
static int
c_bind(struct ectx *c, const struct node *n, struct val *out)
{
	struct val src = { K_NULL, NULL, 0, 0 }, one = { K_NULL, NULL, 0, 0 },
	    res = { K_NULL, NULL, 0, 0 };
	struct binding b;
	char kind = n->fn->name[0];     /* W(here), S(elect), W(ith) */
	size_t i, k;
	int t, r = -1;

	if (arg(c, n, 1, &src) == -1)
		return -1;
	b.name = n->args[0]->s;
	b.next = c->vars;
	if (strcmp(n->fn->name, "With") == 0) {
		b.v = &src;
		c->vars = &b;
		r = arg(c, n, 2, out);
		c->vars = b.next;
		val_release(&src);
		return r;
	}
	if (src.kind == K_IGNORE) {
		val_null(out, K_IGNORE);
		return 0;
	}
	b.v = &one;
	c->vars = &b;
	for (i = 0; i < src.n; i++) {
		val_null(&one, K_NULL);
		if (val_pushitem(c, &one, &src.it[i]) == -1 ||
		    arg(c, n, 2, &res) == -1)
			goto done;
		if (kind == 'W') {
			if (truth(c, n->args[2], &res, &t) == -1)
				goto done;
			if (t && val_pushitem(c, out, &src.it[i]) == -1)
				goto done;
		} else {
			for (k = 0; k < res.n; k++)
				if (val_pushitem(c, out, &res.it[k]) == -1)
					goto done;
		}
		val_release(&res);
	}
	r = 0;
done:
	c->vars = b.next;
	val_release(&src);
	val_release(&one);
	val_release(&res);
	return r;
}

/* ImportedValue("attr"): the attribute as imported.  A snapshot holds
 * only imported values, so this is [attr]. */
static int
c_imported(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v = { K_NULL, NULL, 0, 0 };
	struct sync_buf b = { 0 };
	const struct item *it;
	int r = -1;

	if (arg(c, n, 0, &v) == -1)
		return -1;
	if ((it = single(c, n, &v, "the attribute name")) != NULL &&
	    item_str(c, n, it, &b) == 0)
		r = expr_lookup(c, n, b.p ? b.p : "", 0, out);
	val_release(&v);
	sync_buf_release(&b);
	return r;
}

static int
c_guid(struct ectx *c, const struct node *n, struct val *out)
{
	unsigned char raw[16];
	char s[37];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return rterr(c, n, "Guid: no random numbers");
	raw[7] = (raw[7] & 0x0f) | 0x40;        /* version 4 */
	raw[8] = (raw[8] & 0x3f) | 0x80;
	sync_guid_string(raw, s);
	return push_str(c, out, s, 36);
}

static int
c_randomnum(struct ectx *c, const struct node *n, struct val *out)
{
	struct val v[2];
	const struct item *a, *b;
	int64_t lo, hi;
	uint64_t rnd;
	int r;

	if ((r = evalall(c, n, v, out)) != 0)
		goto done;
	r = -1;
	if ((a = single(c, n, &v[0], "start")) == NULL ||
	    (b = single(c, n, &v[1], "end")) == NULL ||
	    argnum(c, n, a, &lo) == -1 || argnum(c, n, b, &hi) == -1)
		goto done;
	if (hi < lo) {
		rterr(c, n, "RandomNum: end is less than start");
		goto done;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		rterr(c, n, "RandomNum: no random numbers");
		goto done;
	}
	r = push_num(c, out, lo + (int64_t)(rnd % ((uint64_t)(hi - lo) + 1)));
done:
	releaseall(n, v);
	return r;
}

/* ----------------------------------------------------------- table */

static const struct func funcs[] = {
	{ "Append", 2, 2, F_NULLEMPTY, f_append, NULL },
	{ "BitAnd", 2, 2, 0, f_bit, NULL },
	{ "BitOr", 2, 2, 0, f_bit, NULL },
	{ "CBool", 1, 1, 0, f_cbool, NULL },
	{ "CDate", 1, 1, 0, f_cdate, NULL },
	{ "CGuid", 1, 1, 0, f_cguid, NULL },
	{ "CNum", 1, 1, 0, f_cnum, NULL },
	{ "Coalesce", 1, -1, 0, NULL, c_coalesce },
	{ "Contains", 2, 3, 0, NULL, c_contains },
	{ "ConvertFromBase64", 1, 2, 0, f_frombase64, NULL },
	{ "ConvertFromUTF8Hex", 1, 1, 0, f_fromutf8hex, NULL },
	{ "ConvertToBase64", 1, 1, 0, f_tobase64, NULL },
	{ "ConvertToUTF8Hex", 1, 1, 0, f_toutf8hex, NULL },
	{ "Count", 1, 1, 0, NULL, c_count },
	{ "CRef", 1, 1, 0, f_cref, NULL },
	{ "CStr", 1, 1, 0, f_cstr, NULL },
	{ "DateAdd", 3, 3, 0, f_dateadd, NULL },
	{ "DateDiff", 3, 3, 0, f_datediff, NULL },
	{ "DateFromNum", 1, 1, 0, f_datefromnum, NULL },
	{ "DNComponent", 2, 2, 0, f_dncomponent, NULL },
	{ "DNComponentRev", 2, 3, 0, f_dncomponent, NULL },
	{ "Error", 1, 1, 0, NULL, c_error },
	{ "EscapeDNComponent", 1, 1, 0, f_escapedn, NULL },
	{ "FormatDateTime", 2, 4, F_OMIT, f_formatdatetime,
	    c_formatdatetime },
	{ "Guid", 0, 0, 0, NULL, c_guid },
	{ "IgnoreFlowIfNullOrEmpty", 1, 1, 0, NULL, c_isnull },
	{ "IIF", 3, 3, 0, NULL, c_iif },
	{ "ImportedValue", 1, 1, 0, NULL, c_imported },
	{ "InStr", 2, 4, 0, f_instr, NULL },
	{ "InStrRev", 2, 4, 0, f_instr, NULL },
	{ "IsBitSet", 2, 2, 0, f_bit, NULL },
	{ "IsDate", 1, 1, 0, NULL, c_isdate },
	{ "IsEmpty", 1, 1, 0, NULL, c_isnull },
	{ "IsGuid", 1, 1, 0, NULL, c_istype },
	{ "IsNull", 1, 1, 0, NULL, c_isnull },
	{ "IsNullOrEmpty", 1, 1, 0, NULL, c_isnull },
	{ "IsNumeric", 1, 1, 0, NULL, c_istype },
	{ "IsPresent", 1, 1, 0, NULL, c_isnull },
	{ "IsString", 1, 1, 0, NULL, c_istype },
	{ "Item", 2, 2, 0, NULL, c_item },
	{ "ItemOrNull", 2, 2, 0, NULL, c_item },
	{ "Join", 1, 2, 0, NULL, c_join },
	{ "LCase", 1, 1, 0, f_case, NULL },
	{ "Left", 2, 2, F_NULLEMPTY, f_left, NULL },
	{ "Len", 1, 1, 0, f_len, NULL },
	{ "LTrim", 1, 1, 0, f_trim, NULL },
	{ "Mid", 2, 3, F_NULLEMPTY, f_mid, NULL },
	{ "NormalizeDiacritics", 1, 1, 0, f_diacritics, NULL },
	{ "Not", 1, 1, 0, f_cbool, NULL },
	{ "Now", 0, 0, 0, NULL, c_now },
	{ "NumFromDate", 1, 1, 0, f_numfromdate, NULL },
	{ "PadLeft", 3, 3, F_NULLEMPTY, f_pad, NULL },
	{ "PadRight", 3, 3, F_NULLEMPTY, f_pad, NULL },
	{ "PCase", 1, 1, 0, f_case, NULL },
	{ "RandomNum", 2, 2, 0, NULL, c_randomnum },
	{ "RemoveDuplicates", 1, 1, 0, NULL, c_removedup },
	{ "Replace", 3, 3, 0, f_replace, NULL },
	{ "ReplaceChars", 2, 2, 0, f_replacechars, NULL },
	{ "Right", 2, 2, F_NULLEMPTY, f_left, NULL },
	{ "RTrim", 1, 1, 0, f_trim, NULL },
	{ "Select", 3, 3, F_BINDS, NULL, c_bind },
	{ "Split", 2, 3, 0, f_split, NULL },
	{ "StringFromGuid", 1, 1, 0, f_stringfromguid, NULL },
	{ "StringFromSid", 1, 1, 0, f_stringfromsid, NULL },
	{ "StripSpaces", 1, 1, 0, f_trim, NULL },
	{ "Switch", 2, -1, 0, NULL, c_switch },
	{ "ToLower", 1, 2, 0, f_case, NULL },
	{ "ToUpper", 1, 2, 0, f_case, NULL },
	{ "Trim", 1, 1, 0, f_trim, NULL },
	{ "UCase", 1, 1, 0, f_case, NULL },
	{ "Where", 3, 3, F_BINDS, NULL, c_bind },
	{ "With", 3, 3, F_BINDS, NULL, c_bind },
	{ "Word", 3, 3, F_NULLEMPTY, f_word, NULL },
};

/* Function names are matched without regard to case: Microsoft's own
 * pages write Guid and GUID, InStrRev and InstrRev, StringFromSid and
 * StringFromSID. */
const struct func *
expr_func_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strlen(funcs[i].name) == len &&
		    strncasecmp(funcs[i].name, name, len) == 0)
			return &funcs[i];
	return NULL;
}
