/*
 * expr.c: the sync-rule expression language: parser, evaluator core and
 * the JSON convenience for the command line.  The functions themselves
 * are in expr-func.c.  See sync-expr(7) and sync-expr.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "sync.h"
#include "sync-expr.h"
#include "expr-int.h"

/* ------------------------------------------------------------- values */

void
val_release(struct val *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->it[i].p);
	free(v->it);
	v->it = NULL;
	v->n = v->cap = 0;
	v->kind = K_NULL;
}

void
val_null(struct val *v, enum vkind k)
{
	val_release(v);
	v->kind = k;
}

int
val_push(struct ectx *c, struct val *v, enum vtype t, const char *p,
    size_t len, int64_t num)
{
	struct item *it;

	if (v->n >= EXPR_MAXVALUES)
		return sync_errf(c->err, "more than %d values", EXPR_MAXVALUES);
	if (len > EXPR_MAXVALUE)
		return sync_errf(c->err, "value longer than %u bytes",
		    EXPR_MAXVALUE);
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		struct item *nit = realloc(v->it, cap * sizeof(*nit));

		if (nit == NULL)
			return sync_errf(c->err, "out of memory");
		v->it = nit;
		v->cap = cap;
	}
	it = &v->it[v->n];
	it->t = t;
	it->num = num;
	it->p = NULL;
	it->len = 0;
	if (t != V_NUM && t != V_BOOL) {
		if ((it->p = malloc(len + 1)) == NULL)
			return sync_errf(c->err, "out of memory");
		if (len)
			memcpy(it->p, p, len);
		it->p[len] = '\0';
		it->len = len;
	}
	v->n++;
	v->kind = K_VALUES;
	return 0;
}

int
val_pushitem(struct ectx *c, struct val *v, const struct item *it)
{
	return val_push(c, v, it->t, it->p, it->len, it->num);
}

int
val_copy(struct ectx *c, struct val *dst, const struct val *src)
{
	size_t i;

	val_null(dst, src->kind);
	for (i = 0; i < src->n; i++)
		if (val_pushitem(c, dst, &src->it[i]) == -1)
			return -1;
	dst->kind = src->kind;
	return 0;
}

/* 1 when v has a value that is not the empty string (IsPresent). */
int
val_present(const struct val *v)
{
	size_t i;

	if (v->kind != K_VALUES)
		return 0;
	for (i = 0; i < v->n; i++)
		if (v->it[i].t == V_NUM || v->it[i].t == V_BOOL ||
		    v->it[i].len > 0)
			return 1;
	return 0;
}

int
rterr(struct ectx *c, const struct node *n, const char *fmt, ...)
{
	char msg[SYNC_ERRMAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sync_errf(c->err, "column %d: %s", n->col, msg);
}

/* Parses a decimal integer (optional sign) or &Hhex, surrounding blanks
 * allowed.  Returns 0, or -1 when s is not such a number. */
int
parse_num(const char *s, size_t len, int64_t *out)
{
	const char *e = s + len;
	uint64_t v = 0, lim;
	int neg = 0, d, any = 0;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e - s >= 3 && s[0] == '&' && (s[1] == 'H' || s[1] == 'h')) {
		for (s += 2; s < e; s++) {
			if (!isxdigit((unsigned char)*s) || v >> 60)
				return -1;
			d = isdigit((unsigned char)*s) ? *s - '0' :
			    (tolower((unsigned char)*s) - 'a' + 10);
			v = v << 4 | (uint64_t)d;
		}
		*out = (int64_t)v;      /* &HFFFFFFFF... wraps as in VBA */
		return 0;
	}
	if (s < e && (*s == '-' || *s == '+'))
		neg = *s++ == '-';
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; s < e; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		d = *s - '0';
		if (v > (lim - (uint64_t)d) / 10)
			return -1;
		v = v * 10 + (uint64_t)d;
		any = 1;
	}
	if (!any)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int
item_num(struct ectx *c, const struct node *n, const struct item *it,
    const char *what, int64_t *out)
{
	switch (it->t) {
	case V_NUM:
		*out = it->num;
		return 0;
	case V_BOOL:
		*out = it->num ? 1 : 0;
		return 0;
	case V_STR:
	case V_REF:
		if (parse_num(it->p, it->len, out) == 0)
			return 0;
		return rterr(c, n, "%s: '%.*s' is not a number", what,
		    it->len > 64 ? 64 : (int)it->len, it->p);
	case V_DATE:
		return rterr(c, n, "%s: a date is not a number (use "
		    "NumFromDate)", what);
	case V_BIN:
		break;
	}
	return rterr(c, n, "%s: a binary value is not a number", what);
}

int
item_bool(struct ectx *c, const struct node *n, const struct item *it,
    int *out)
{
	switch (it->t) {
	case V_BOOL:
	case V_NUM:
		*out = it->num != 0;
		return 0;
	case V_STR:
	case V_REF:
		if (it->len == 4 && strncasecmp(it->p, "true", 4) == 0) {
			*out = 1;
			return 0;
		}
		if (it->len == 5 && strncasecmp(it->p, "false", 5) == 0) {
			*out = 0;
			return 0;
		}
		return rterr(c, n, "'%.*s' is not a Boolean",
		    it->len > 64 ? 64 : (int)it->len, it->p);
	case V_DATE:
		return rterr(c, n, "a date is not a Boolean");
	case V_BIN:
		break;
	}
	return rterr(c, n, "a binary value is not a Boolean");
}

/* Appends the text form of it to b. */
int
item_str(struct ectx *c, const struct node *n, const struct item *it,
    struct sync_buf *b)
{
	int r;

	switch (it->t) {
	case V_STR:
	case V_REF:
	case V_DATE:
		r = sync_buf_add(b, it->p, it->len);
		break;
	case V_NUM:
		r = sync_buf_addf(b, "%lld", (long long)it->num);
		break;
	case V_BOOL:
		r = sync_buf_adds(b, it->num ? "True" : "False");
		break;
	default:
		return rterr(c, n, "a binary value is not text (use "
		    "StringFromGuid, StringFromSid or ConvertToBase64)");
	}
	if (r == -1)
		return sync_errf(c->err, "out of memory");
	if (b->len > EXPR_MAXVALUE)
		return rterr(c, n, "value longer than %u bytes", EXPR_MAXVALUE);
	return 0;
}

/* ------------------------------------------------------------- parser */

struct scope {
	const char *name;
	size_t len;
	struct scope *next;
};

struct parser {
	const char *src;
	size_t pos;
	int depth;
	struct scope *scope;
	struct sync_err *err;
	size_t colpos;          /* the last position colof counted to */
	int col;                /* and its column */
};

/*
 * The column (in characters, from 1) of pos.  Counted from the last
 * position asked for, on or back: nodes are made at or just behind the
 * parser's position, and counting from the start each time made a
 * 60,000-term expression take seconds.
 */
static int
colof(struct parser *p, size_t pos)
{
	if (p->col == 0)
		p->col = 1;
	for (; p->colpos > pos; p->colpos--)
		if (((unsigned char)p->src[p->colpos - 1] & 0xc0) != 0x80)
			p->col--;
	for (; p->colpos < pos && p->src[p->colpos]; p->colpos++)
		if (((unsigned char)p->src[p->colpos] & 0xc0) != 0x80)
			p->col++;
	return p->col;
}

static void *
perr(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *
perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[SYNC_ERRMAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sync_errf(p->err, "column %d: %s", colof(p, pos), msg);
	return NULL;
}

static void
node_free(struct node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->nargs; i++)
		node_free(n->args[i]);
	free(n->args);
	free(n->s);
	free(n);
}

static struct node *
node_new(struct parser *p, enum nkind k, size_t pos)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n == NULL) {
		sync_errf(p->err, "out of memory");
		return NULL;
	}
	n->kind = k;
	n->col = colof(p, pos);
	return n;
}

/* Appends a to n's arguments (doubling the room); frees a on failure. */
static int
node_addarg(struct parser *p, struct node *n, struct node *a)
{
	struct node **na;
	size_t cap;

	if (n->nargs == n->argcap) {
		cap = n->argcap ? 2 * n->argcap : 2;
		if ((na = realloc(n->args, cap * sizeof(*na))) == NULL) {
			node_free(a);
			sync_errf(p->err, "out of memory");
			return -1;
		}
		n->args = na;
		n->argcap = cap;
	}
	n->args[n->nargs++] = a;
	return 0;
}

static void
skipws(struct parser *p)
{
	while (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
	    p->src[p->pos] == '\r' || p->src[p->pos] == '\n')
		p->pos++;
}

static int
isident(int ch, int first)
{
	if (isalpha(ch) || ch == '_')
		return 1;
	return !first && (isdigit(ch) || ch == '.');
}

/* A description of what is at pos, for "unexpected ..." messages. */
static const char *
what(struct parser *p, char *buf, size_t size)
{
	const unsigned char *s = (const unsigned char *)p->src + p->pos;
	size_t n = 1;

	if (*s == '\0')
		return "end of expression";
	if (*s >= 0xc0)
		while (n < 4 && (s[n] & 0xc0) == 0x80)
			n++;
	snprintf(buf, size, "'%.*s'", (int)n, (const char *)s);
	return buf;
}

static struct node *parse_expr(struct parser *p);

static struct node *
parse_string(struct parser *p)
{
	size_t start = p->pos;
	struct sync_buf b = { 0 };
	struct node *n;
	const char *s;

	p->pos++;
	for (;;) {
		s = p->src + p->pos;
		if (*s == '\0') {
			sync_buf_release(&b);
			return perr(p, start, "unterminated string");
		}
		if (*s == '"' && s[1] == '"') {         /* VBA: "" is " */
			sync_buf_addc(&b, '"');
			p->pos += 2;
		} else if (*s == '"') {
			p->pos++;
			break;
		} else if (*s == '\\' && (s[1] == '"' || s[1] == '\\')) {
			sync_buf_addc(&b, s[1]);        /* Cloud Sync escapes */
			p->pos += 2;
		} else {
			sync_buf_addc(&b, *s);
			p->pos++;
		}
	}
	if (b.p == NULL && sync_buf_grow(&b, 1) == -1) {
		sync_errf(p->err, "out of memory");
		return NULL;
	}
	if ((n = node_new(p, N_STR, start)) == NULL) {
		sync_buf_release(&b);
		return NULL;
	}
	n->slen = b.len;
	n->s = sync_buf_detach(&b);
	return n;
}

/* [name], %name%: text up to the closing character. */
static struct node *
parse_name(struct parser *p, enum nkind k, char close)
{
	size_t start = p->pos, end;
	struct node *n;
	const char *e;

	/*
	 * An attribute name may hold brackets of its own, balanced, with
	 * double-quoted strings inside them: SCIM's
	 * [emails[type eq "work"].value] (see sync-snapshot(5)).
	 */
	if (k == N_ATTR) {
		int depth = 0, quoted = 0;

		for (e = p->src + start + 1; *e; e++) {
			if (quoted) {
				if (*e == '\\' && e[1] != '\0')
					e++;
				else if (*e == '"')
					quoted = 0;
			} else if (*e == '"' && depth > 0)
				quoted = 1;
			else if (*e == '[')
				depth++;
			else if (*e == close && depth-- == 0)
				break;
		}
		if (*e == '\0')
			e = NULL;
	} else
		e = strchr(p->src + start + 1, close);
	if (e == NULL)
		return perr(p, start, "missing '%c'", close);
	end = (size_t)(e - p->src);
	if (end == start + 1)
		return perr(p, start, k == N_ATTR ? "empty attribute name" :
		    "empty parameter name");
	if ((n = node_new(p, k, start)) == NULL)
		return NULL;
	n->slen = end - start - 1;
	if ((n->s = sync_strndup(p->src + start + 1, n->slen)) == NULL) {
		node_free(n);
		sync_errf(p->err, "out of memory");
		return NULL;
	}
	p->pos = end + 1;
	return n;
}

static const char *const enums[] = {
	"vbTextCompare", "vbBinaryCompare", "UTF8", "ASCII", "Unicode",
	"CaseInsensitive", "CaseSensitive", "DC", NULL
};

static const char *
argcount(const struct func *f, char *buf, size_t size)
{
	if (f->max < 0)
		snprintf(buf, size, "at least %d argument%s", f->min,
		    f->min == 1 ? "" : "s");
	else if (f->min == f->max)
		snprintf(buf, size, "%d argument%s", f->min,
		    f->min == 1 ? "" : "s");
	else
		snprintf(buf, size, "%d to %d arguments", f->min, f->max);
	return buf;
}

static struct node *
parse_call(struct parser *p, size_t start, size_t len)
{
	const struct func *f;
	struct node *n, *a;
	struct scope sc;
	char buf[64];
	int bound = 0;

	if ((f = expr_func_find(p->src + start, len)) == NULL)
		return perr(p, start, "unknown function '%.*s'", (int)len,
		    p->src + start);
	if ((n = node_new(p, N_CALL, start)) == NULL)
		return NULL;
	n->fn = f;
	p->pos++;               /* ( */
	skipws(p);
	if (p->src[p->pos] != ')') {
		for (;;) {
			if ((f->flags & F_BINDS) && n->nargs == 0) {
				skipws(p);
				if (p->src[p->pos] != '$') {
					node_free(n);
					return perr(p, p->pos, "%s: the first "
					    "argument must be a $variable",
					    f->name);
				}
			}
			if ((f->flags & F_BINDS) && n->nargs == 2) {
				sc.name = n->args[0]->s;
				sc.len = n->args[0]->slen;
				sc.next = p->scope;
				p->scope = &sc;
				bound = 1;
			}
			if ((f->flags & F_BINDS) && n->nargs == 0) {
				/* the variable being declared, not a use */
				size_t vs = p->pos++;

				while (isident((unsigned char)p->src[p->pos],
				    0))
					p->pos++;
				if ((a = node_new(p, N_VAR, vs)) == NULL ||
				    (a->s = sync_strndup(p->src + vs,
				    p->pos - vs)) == NULL) {
					node_free(a);
					node_free(n);
					return NULL;
				}
				a->slen = p->pos - vs;
				if (a->slen == 1) {
					node_free(a);
					node_free(n);
					return perr(p, vs, "missing variable "
					    "name after '$'");
				}
			} else if ((f->flags & F_OMIT) && (skipws(p),
			    p->src[p->pos] == ',' || p->src[p->pos] == ')')) {
				/* an argument left empty, as the provisioning
				 * service writes them: NULL */
				if ((a = node_new(p, N_NULL, p->pos)) == NULL) {
					node_free(n);
					return NULL;
				}
			} else if ((a = parse_expr(p)) == NULL) {
				node_free(n);
				n = NULL;
				goto out;
			}
			if (node_addarg(p, n, a) == -1) {
				node_free(n);
				n = NULL;
				goto out;
			}
			skipws(p);
			if (p->src[p->pos] == ',') {
				p->pos++;
				continue;
			}
			if (p->src[p->pos] == ')')
				break;
			node_free(n);
			n = perr(p, p->pos, "expected ',' or ')' in the "
			    "arguments of %s, found %s", f->name,
			    what(p, buf, sizeof(buf)));
			goto out;
		}
	}
	p->pos++;               /* ) */
	if ((int)n->nargs < f->min || (f->max >= 0 && (int)n->nargs > f->max)) {
		char cnt[64];

		perr(p, start, "%s takes %s, not %zu", f->name,
		    argcount(f, cnt, sizeof(cnt)), n->nargs);
		node_free(n);
		n = NULL;
	} else if (strcmp(f->name, "Switch") == 0 && n->nargs % 2) {
		perr(p, start, "Switch takes pairs of condition and value, "
		    "not %zu arguments", n->nargs);
		node_free(n);
		n = NULL;
	}
out:
	if (bound)
		p->scope = sc.next;
	return n;
}

static struct node *
parse_ident(struct parser *p)
{
	static const struct { const char *name; enum nkind k; } kw[] = {
		{ "True", N_BOOL }, { "False", N_BOOL }, { "NULL", N_NULL },
		{ "Nothing", N_NULL }, { "AuthoritativeNull", N_AUTHNULL },
		{ "IgnoreThisFlow", N_IGNORE }, { "CRLF", N_STR },
	};
	size_t start = p->pos, len, i;
	struct node *n;

	while (isident((unsigned char)p->src[p->pos], p->pos == start))
		p->pos++;
	len = p->pos - start;
	skipws(p);
	if (p->src[p->pos] == '(')
		return parse_call(p, start, len);
	for (i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
		if (strlen(kw[i].name) != len ||
		    strncasecmp(kw[i].name, p->src + start, len) != 0)
			continue;
		if ((n = node_new(p, kw[i].k, start)) == NULL)
			return NULL;
		if (kw[i].k == N_BOOL)
			n->num = i == 0;
		if (kw[i].k == N_STR) {
			n->s = sync_strdup("\r\n");
			n->slen = 2;
			if (n->s == NULL) {
				node_free(n);
				sync_errf(p->err, "out of memory");
				return NULL;
			}
		}
		return n;
	}
	for (i = 0; enums[i]; i++) {
		if (strlen(enums[i]) != len ||
		    strncasecmp(enums[i], p->src + start, len) != 0)
			continue;
		if ((n = node_new(p, N_ENUM, start)) == NULL)
			return NULL;
		if ((n->s = sync_strdup(enums[i])) == NULL) {
			node_free(n);
			sync_errf(p->err, "out of memory");
			return NULL;
		}
		n->slen = len;
		return n;
	}
	if (expr_func_find(p->src + start, len))
		return perr(p, start, "missing '(' after function '%.*s'",
		    (int)len, p->src + start);
	return perr(p, start, "unknown name '%.*s'", (int)len, p->src + start);
}

static struct node *
parse_number(struct parser *p)
{
	size_t start = p->pos;
	struct node *n;
	int64_t v;

	if (p->src[p->pos] == '&')
		p->pos += 2;
	while (isalnum((unsigned char)p->src[p->pos]))
		p->pos++;
	if (p->src[p->pos] == '.' &&
	    isdigit((unsigned char)p->src[p->pos + 1]))
		return perr(p, start, "numbers are whole: '%.*s' has a "
		    "fraction", (int)(p->pos + 2 - start), p->src + start);
	if (parse_num(p->src + start, p->pos - start, &v) == -1)
		return perr(p, start, "bad number '%.*s'",
		    (int)(p->pos - start), p->src + start);
	if ((n = node_new(p, N_NUM, start)) == NULL)
		return NULL;
	n->num = v;
	return n;
}

static struct node *
parse_unary(struct parser *p)
{
	struct node *n = NULL, *a;
	size_t start;
	char c, buf[16];
	struct scope *sc;

	if (++p->depth > EXPR_MAXDEPTH)
		return perr(p, p->pos, "expression nested too deeply");
	skipws(p);
	start = p->pos;
	c = p->src[p->pos];
	if (c == '-') {
		p->pos++;
		if ((a = parse_unary(p)) == NULL)
			return NULL;
		if (a->kind == N_NUM) {
			a->num = (int64_t)(0 - (uint64_t)a->num);
			a->col = colof(p, start);
			n = a;
		} else if ((n = node_new(p, N_NEG, start)) == NULL ||
		    node_addarg(p, n, a) == -1) {
			node_free(n);
			return NULL;
		}
	} else if (c == '(') {
		p->pos++;
		if ((n = parse_expr(p)) == NULL)
			return NULL;
		skipws(p);
		if (p->src[p->pos] != ')') {
			node_free(n);
			return perr(p, p->pos, "expected ')', found %s",
			    what(p, buf, sizeof(buf)));
		}
		p->pos++;
	} else if (c == '"') {
		n = parse_string(p);
	} else if (c == '[') {
		n = parse_name(p, N_ATTR, ']');
	} else if (c == '%') {
		n = parse_name(p, N_PARAM, '%');
	} else if (c == '$') {
		p->pos++;
		while (isident((unsigned char)p->src[p->pos], 0))
			p->pos++;
		if (p->pos - start == 1)
			return perr(p, start, "missing variable name after '$'");
		for (sc = p->scope; sc; sc = sc->next)
			if (sc->len == p->pos - start && strncasecmp(sc->name,
			    p->src + start, sc->len) == 0)
				break;
		if (sc == NULL)
			return perr(p, start, "unknown variable '%.*s'",
			    (int)(p->pos - start), p->src + start);
		if ((n = node_new(p, N_VAR, start)) == NULL)
			return NULL;
		n->slen = p->pos - start;
		if ((n->s = sync_strndup(p->src + start, n->slen)) == NULL) {
			node_free(n);
			sync_errf(p->err, "out of memory");
			return NULL;
		}
	} else if (isdigit((unsigned char)c) || (c == '&' &&
	    (p->src[p->pos + 1] == 'H' || p->src[p->pos + 1] == 'h'))) {
		n = parse_number(p);
	} else if (isident((unsigned char)c, 1)) {
		n = parse_ident(p);
	} else if (c == '\0') {
		return perr(p, start, "unexpected end of expression");
	} else {
		return perr(p, start, "unexpected %s", what(p, buf,
		    sizeof(buf)));
	}
	p->depth--;
	return n;
}

static int
parse_op(struct parser *p, enum binop *op)
{
	static const struct { const char *s; enum binop op; } ops[] = {
		{ "&&", OP_AND }, { "||", OP_OR }, { "<>", OP_NE },
		{ "<=", OP_LE }, { ">=", OP_GE }, { "<", OP_LT },
		{ ">", OP_GT }, { "=", OP_EQ }, { "+", OP_ADD },
		{ "-", OP_SUB }, { "*", OP_MUL }, { "&", OP_CAT },
	};
	size_t i, l;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		l = strlen(ops[i].s);
		if (strncmp(p->src + p->pos, ops[i].s, l) == 0) {
			p->pos += l;
			*op = ops[i].op;
			return 1;
		}
	}
	return 0;
}

/* Operators have equal priority and group left to right, as Entra
 * Connect documents: 2 + 3 * 4 is 20. */
static struct node *
parse_expr(struct parser *p)
{
	struct node *l, *r, *n, *chain = NULL;
	size_t opos;
	enum binop op;

	if ((l = parse_unary(p)) == NULL)
		return NULL;
	for (;;) {
		skipws(p);
		opos = p->pos;
		if (!parse_op(p, &op))
			return chain ? chain : l;
		if (chain == NULL) {
			if ((chain = node_new(p, N_CHAIN, opos)) == NULL) {
				node_free(l);
				return NULL;
			}
			chain->col = l->col;
			if (node_addarg(p, chain, l) == -1) {
				node_free(chain);
				return NULL;
			}
		}
		if ((n = node_new(p, N_BINOP, opos)) == NULL) {
			node_free(chain);
			return NULL;
		}
		n->op = op;
		if (node_addarg(p, chain, n) == -1) {
			node_free(chain);
			return NULL;
		}
		if ((r = parse_unary(p)) == NULL) {
			node_free(chain);
			return NULL;
		}
		if (node_addarg(p, n, r) == -1) {
			node_free(chain);
			return NULL;
		}
	}
}

struct sync_expr *
sync_expr_parse(const char *src, struct sync_err *err)
{
	struct parser p = { src, 0, 0, NULL, err, 0, 0 };
	struct sync_expr *e;
	struct node *n;
	char buf[16];

	if ((n = parse_expr(&p)) == NULL)
		return NULL;
	skipws(&p);
	if (src[p.pos] != '\0') {
		node_free(n);
		return perr(&p, p.pos, src[p.pos] == ')' ? "unbalanced ')'" :
		    "unexpected %s after the expression",
		    what(&p, buf, sizeof(buf)));
	}
	if ((e = malloc(sizeof(*e))) == NULL) {
		node_free(n);
		sync_errf(err, "out of memory");
		return NULL;
	}
	e->root = n;
	return e;
}

void
sync_expr_free(struct sync_expr *e)
{
	if (e == NULL)
		return;
	node_free(e->root);
	free(e);
}

static int
attrs_walk(const struct node *n, struct sync_strv *names)
{
	size_t i;

	if (n->kind == N_ATTR && !sync_strv_casecontains(names, n->s) &&
	    sync_strv_add(names, n->s) == -1)
		return -1;
	if (n->kind == N_CALL && strcmp(n->fn->name, "ImportedValue") == 0 &&
	    n->args[0]->kind == N_STR &&
	    !sync_strv_casecontains(names, n->args[0]->s) &&
	    sync_strv_add(names, n->args[0]->s) == -1)
		return -1;
	for (i = 0; i < n->nargs; i++)
		if (attrs_walk(n->args[i], names) == -1)
			return -1;
	return 0;
}

int
sync_expr_attrs(const struct sync_expr *e, struct sync_strv *names,
    struct sync_err *err)
{
	if (attrs_walk(e->root, names) == -1)
		return sync_errf(err, "out of memory");
	return 0;
}

/* ---------------------------------------------------------- evaluator */

int
expr_lookup(struct ectx *c, const struct node *n, const char *name,
    int param, struct val *out)
{
	sync_expr_lookup_fn *fn = param ? c->env->param : c->env->attr;
	const struct sync_bytes *vals = NULL;
	size_t nv = 0, i;
	int bin = 0, r = 0;

	val_null(out, K_NULL);
	if (fn)
		r = fn(c->env->ctx, name, &vals, &nv, &bin, c->err);
	if (r == -1)
		return -1;
	if (r == 0 && param)
		return rterr(c, n, "unknown parameter '%%%s%%'", name);
	for (i = 0; i < nv; i++)
		if (val_push(c, out, bin ? V_BIN : V_STR, vals[i].p,
		    vals[i].len, 0) == -1)
			return -1;
	return 0;
}

static int
cmp_items(struct ectx *c, const struct node *n, const struct item *a,
    const struct item *b, int *out)
{
	int64_t x, y;
	int ba, bb;
	size_t l;

	if (a->t == V_DATE && b->t == V_DATE) {
		*out = a->num < b->num ? -1 : a->num > b->num;
		return 0;
	}
	if ((a->t == V_NUM || b->t == V_NUM ||
	    ((a->t == V_STR || a->t == V_REF) &&
	    (b->t == V_STR || b->t == V_REF))) &&
	    a->t != V_BOOL && b->t != V_BOOL && a->t != V_BIN &&
	    b->t != V_BIN && (a->t == V_NUM ||
	    parse_num(a->p, a->len, &x) == 0) && (b->t == V_NUM ||
	    parse_num(b->p, b->len, &y) == 0)) {
		if (a->t == V_NUM)
			x = a->num;
		if (b->t == V_NUM)
			y = b->num;
		*out = x < y ? -1 : x > y;
		return 0;
	}
	if (a->t == V_BOOL || b->t == V_BOOL) {
		if (item_bool(c, n, a, &ba) == -1 ||
		    item_bool(c, n, b, &bb) == -1)
			return -1;
		*out = ba - bb;
		return 0;
	}
	if (a->t == V_NUM || b->t == V_NUM)
		return rterr(c, n, "cannot compare a number with '%.*s'",
		    (int)(a->t == V_NUM ? (b->len > 64 ? 64 : b->len) :
		    (a->len > 64 ? 64 : a->len)),
		    a->t == V_NUM ? b->p : a->p);
	l = a->len < b->len ? a->len : b->len;
	*out = l ? memcmp(a->p, b->p, l) : 0;
	if (*out == 0)
		*out = a->len < b->len ? -1 : a->len > b->len;
	return 0;
}

static int
binop_items(struct ectx *c, const struct node *n, const struct item *a,
    const struct item *b, struct val *out)
{
	struct sync_buf buf = { 0 };
	int64_t x, y, r;
	int ba, bb, cmp = 0, t;

	switch (n->op) {
	case OP_CAT:
		if (item_str(c, n, a, &buf) == -1 ||
		    item_str(c, n, b, &buf) == -1 ||
		    val_push(c, out, V_STR, buf.p ? buf.p : "", buf.len,
		    0) == -1) {
			sync_buf_release(&buf);
			return -1;
		}
		sync_buf_release(&buf);
		return 0;
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
		if (item_num(c, n, a, "arithmetic", &x) == -1 ||
		    item_num(c, n, b, "arithmetic", &y) == -1)
			return -1;
		if (n->op == OP_ADD ? __builtin_add_overflow(x, y, &r) :
		    n->op == OP_SUB ? __builtin_sub_overflow(x, y, &r) :
		    __builtin_mul_overflow(x, y, &r))
			return rterr(c, n, "arithmetic overflow");
		return val_push(c, out, V_NUM, NULL, 0, r);
	case OP_AND:
	case OP_OR:
		if (item_bool(c, n, a, &ba) == -1 ||
		    item_bool(c, n, b, &bb) == -1)
			return -1;
		return val_push(c, out, V_BOOL, NULL, 0,
		    n->op == OP_AND ? (ba && bb) : (ba || bb));
	default:
		break;
	}
	if (cmp_items(c, n, a, b, &cmp) == -1)
		return -1;
	switch (n->op) {
	case OP_EQ: t = cmp == 0; break;
	case OP_NE: t = cmp != 0; break;
	case OP_LT: t = cmp < 0; break;
	case OP_LE: t = cmp <= 0; break;
	case OP_GT: t = cmp > 0; break;
	default: t = cmp >= 0; break;
	}
	return val_push(c, out, V_BOOL, NULL, 0, t);
}

/*
 * A binary operator on value lists.  Multi-valued operands apply value by
 * value (Entra Connect applies a function to every value); a single value
 * is paired with each value of the other side.  NULL (no value) is ""
 * for &, False for && and ||, equal only to NULL, and makes arithmetic
 * and ordering NULL resp. False.
 */
static int
binop_vals(struct ectx *c, const struct node *n, const struct val *a,
    const struct val *b, struct val *out)
{
	static const struct item empty = { V_STR, 0, (char *)"", 0 };
	static const struct item f = { V_BOOL, 0, NULL, 0 };
	const struct item *ia, *ib;
	size_t i, cnt;

	if (a->kind == K_IGNORE || b->kind == K_IGNORE) {
		val_null(out, K_IGNORE);
		return 0;
	}
	if (a->n == 0 || b->n == 0) {
		int both = a->n == 0 && b->n == 0;

		switch (n->op) {
		case OP_EQ:
		case OP_NE:
			return val_push(c, out, V_BOOL, NULL, 0,
			    (n->op == OP_EQ) == both);
		case OP_LT: case OP_LE: case OP_GT: case OP_GE:
			return val_push(c, out, V_BOOL, NULL, 0, 0);
		case OP_ADD: case OP_SUB: case OP_MUL:
			return 0;
		case OP_CAT:
			if (both)
				return 0;
			break;
		default:
			break;
		}
	}
	cnt = a->n > b->n ? a->n : b->n;
	if (a->n > 1 && b->n > 1 && a->n != b->n)
		return rterr(c, n, "operands have %zu and %zu values", a->n,
		    b->n);
	for (i = 0; i < cnt; i++) {
		ia = a->n == 0 ? (n->op == OP_CAT ? &empty : &f) :
		    &a->it[a->n == 1 ? 0 : i];
		ib = b->n == 0 ? (n->op == OP_CAT ? &empty : &f) :
		    &b->it[b->n == 1 ? 0 : i];
		if (binop_items(c, n, ia, ib, out) == -1)
			return -1;
	}
	return 0;
}

/*
 * Whether acc & b may append b's text to acc's string in place: acc is
 * one value, b at most one (none appends nothing, as binop_vals reads
 * it as ""), and neither is binary (binop_items says why that fails).
 * The result is the same one string binop_vals would give.
 */
static int
cat_in_place(const struct node *op, const struct val *acc,
    const struct val *b)
{
	return op->op == OP_CAT && acc->kind == K_VALUES && acc->n == 1 &&
	    acc->it[0].t != V_BIN && b->kind != K_IGNORE && b->n <= 1 &&
	    (b->n == 0 || b->it[0].t != V_BIN);
}

/* Puts the string grown in cat back into acc's one value. */
static int
cat_back(struct ectx *c, struct val *acc, struct sync_buf *cat, int *incat)
{
	acc->it[0].len = cat->len;
	if ((acc->it[0].p = sync_buf_detach(cat)) == NULL)
		return sync_errf(c->err, "out of memory");
	*incat = 0;
	return 0;
}

/*
 * A chain a op b op c ...: the value so far, then each operator with the
 * operand on its right, in a loop (see N_CHAIN in expr-int.h).
 *
 * A run of & on one string grows that string in cat, which doubles its
 * room as it goes: making a new string at every step would copy all of
 * it every time (quadratic for 60,000 terms wherever realloc cannot grow
 * in place, as under AddressSanitizer).  Between runs, and at the end,
 * the string goes back into acc.
 */
static int
eval_chain(struct ectx *c, const struct node *n, struct val *out)
{
	struct val acc = { K_NULL, NULL, 0, 0 }, b = { K_NULL, NULL, 0, 0 };
	struct val r = { K_NULL, NULL, 0, 0 };
	struct sync_buf cat = { 0 };
	const struct node *op;
	struct item *it;
	size_t i;
	int incat = 0;          /* acc's one string is in cat */

	if (expr_eval(c, n->args[0], &acc) == -1)
		return -1;
	for (i = 1; i < n->nargs; i++) {
		op = n->args[i];
		if (expr_eval(c, op->args[0], &b) == -1)
			goto fail;
		if (cat_in_place(op, &acc, &b)) {
			it = &acc.it[0];
			if (!incat && it->p != NULL) {
				/* Its allocation is len + 1 (val_push). */
				cat.p = it->p;
				cat.len = it->len;
				cat.cap = it->len + 1;
				it->p = NULL;
			} else if (!incat && item_str(c, op, it, &cat) == -1)
				goto fail;
			it->t = V_STR;
			it->num = 0;
			incat = 1;
			if (b.n == 1 && item_str(c, op, &b.it[0], &cat) == -1)
				goto fail;
			val_release(&b);
			continue;
		}
		if (incat && cat_back(c, &acc, &cat, &incat) == -1)
			goto fail;
		if (binop_vals(c, op, &acc, &b, &r) == -1)
			goto fail;
		val_release(&acc);
		val_release(&b);
		acc = r;
		r = (struct val){ K_NULL, NULL, 0, 0 };
	}
	if (incat && cat_back(c, &acc, &cat, &incat) == -1)
		goto fail;
	val_release(out);
	*out = acc;
	return 0;
fail:
	sync_buf_release(&cat);
	val_release(&acc);
	val_release(&b);
	val_release(&r);
	return -1;
}

int
expr_eval(struct ectx *c, const struct node *n, struct val *out)
{
	struct binding *b;
	struct val *args = NULL, argbuf[4];
	size_t i;
	int64_t v;
	int r = -1;

	val_null(out, K_NULL);
	if (++c->depth > EXPR_MAXDEPTH * 4)
		return rterr(c, n, "evaluation nested too deeply");
	switch (n->kind) {
	case N_STR:
	case N_ENUM:
		r = val_push(c, out, V_STR, n->s, n->slen, 0);
		break;
	case N_NUM:
		r = val_push(c, out, V_NUM, NULL, 0, n->num);
		break;
	case N_BOOL:
		r = val_push(c, out, V_BOOL, NULL, 0, n->num);
		break;
	case N_NULL:
		r = 0;
		break;
	case N_AUTHNULL:
		val_null(out, K_AUTHNULL);
		r = 0;
		break;
	case N_IGNORE:
		val_null(out, K_IGNORE);
		r = 0;
		break;
	case N_ATTR:
	case N_PARAM:
		r = expr_lookup(c, n, n->s, n->kind == N_PARAM, out);
		break;
	case N_VAR:
		for (b = c->vars; b; b = b->next)
			if (strcasecmp(b->name, n->s) == 0)
				break;
		r = b ? val_copy(c, out, b->v) :
		    rterr(c, n, "unknown variable '%s'", n->s);
		break;
	case N_CHAIN:
		r = eval_chain(c, n, out);
		break;
	case N_BINOP:
		/* only inside a chain, which evaluates it */
		r = rterr(c, n, "internal error: an operator outside a chain");
		break;
	case N_NEG:
		if (expr_eval(c, n->args[0], out) == -1)
			break;
		for (i = 0; i < out->n; i++) {
			if (item_num(c, n, &out->it[i], "-", &v) == -1)
				goto neg_done;
			free(out->it[i].p);
			out->it[i].p = NULL;
			out->it[i].len = 0;
			out->it[i].t = V_NUM;
			if (__builtin_sub_overflow((int64_t)0, v,
			    &out->it[i].num)) {
				rterr(c, n, "arithmetic overflow");
				goto neg_done;
			}
		}
		r = 0;
neg_done:
		break;
	case N_CALL:
		if (n->fn->call) {
			r = n->fn->call(c, n, out);
			break;
		}
		/* most functions take a few arguments: no allocation then */
		if (n->nargs <= sizeof argbuf / sizeof *argbuf) {
			args = argbuf;
			memset(args, 0, n->nargs * sizeof(*args));
		} else if ((args = calloc(n->nargs, sizeof(*args))) == NULL) {
			r = sync_errf(c->err, "out of memory");
			break;
		}
		for (i = 0; i < n->nargs; i++)
			args[i].kind = K_NULL;
		for (i = 0; i < n->nargs; i++)
			if (expr_eval(c, n->args[i], &args[i]) == -1)
				goto call_done;
		for (i = 0; i < n->nargs; i++)
			if (args[i].kind == K_IGNORE) {
				val_null(out, K_IGNORE);
				r = 0;
				goto call_done;
			}
		r = expr_map(c, n, args, n->nargs, out);
call_done:
		for (i = 0; i < n->nargs; i++)
			val_release(&args[i]);
		if (args != argbuf)
			free(args);
		args = NULL;
		break;
	}
	c->depth--;
	if (r == -1)
		val_release(out);
	return r;
}

int
sync_expr_eval(const struct sync_expr *e, const struct sync_expr_env *env,
    struct sync_expr_result *res, struct sync_err *err)
{
	static const struct sync_expr_env none = { NULL, NULL, NULL };
	struct ectx c = { env ? env : &none, err, NULL, 0 };
	struct val v = { K_NULL, NULL, 0, 0 };
	struct sync_buf b = { 0 };
	size_t i;

	memset(res, 0, sizeof(*res));
	res->status = SYNC_EXPR_NULL;
	if (expr_eval(&c, e->root, &v) == -1)
		return -1;
	switch (v.kind) {
	case K_AUTHNULL:
		res->status = SYNC_EXPR_AUTHNULL;
		return 0;
	case K_IGNORE:
		res->status = SYNC_EXPR_IGNORE;
		return 0;
	case K_NULL:
		return 0;
	case K_VALUES:
		break;
	}
	if ((res->v = calloc(v.n, sizeof(*res->v))) == NULL) {
		val_release(&v);
		return sync_errf(err, "out of memory");
	}
	for (i = 0; i < v.n; i++) {
		struct item *it = &v.it[i];

		if (it->t == V_NUM || it->t == V_BOOL) {
			sync_buf_reset(&b);
			if (item_str(&c, e->root, it, &b) == -1)
				goto fail;
			it->len = b.len;
			it->p = sync_buf_detach(&b);
		}
		res->v[i].p = it->p;            /* moved from v */
		res->v[i].len = it->len;
		res->v[i].binary = it->t == V_BIN;
		it->p = NULL;
		res->n++;
	}
	res->status = SYNC_EXPR_VALUES;
	val_release(&v);
	return 0;
fail:
	val_release(&v);
	sync_expr_result_release(res);
	return -1;
}

void
sync_expr_result_release(struct sync_expr_result *res)
{
	size_t i;

	for (i = 0; i < res->n; i++)
		free(res->v[i].p);
	free(res->v);
	res->v = NULL;
	res->n = 0;
	res->status = SYNC_EXPR_NULL;
}

/* ---------------------------------------------------- JSON convenience */

struct jctx {
	json_t *attrs;
	const struct sync_strv *binary;
	struct sync_bytes *vals;        /* the last lookup's values */
	size_t nvals;
	unsigned char **bufs;           /* decoded binary values, owned */
	size_t nbufs;
};

static void
jctx_clear(struct jctx *j)
{
	size_t i;

	for (i = 0; i < j->nbufs; i++)
		free(j->bufs[i]);
	free(j->bufs);
	j->bufs = NULL;
	j->nbufs = 0;
}

static int
jlookup(struct jctx *j, const char *name, int param,
    const struct sync_bytes **vals, size_t *n, int *binary,
    struct sync_err *err)
{
	const char *key;
	json_t *v, *e;
	size_t i, cnt, kl;
	struct sync_bytes *nv;
	int bin = 0;

	json_object_foreach(j->attrs, key, v) {
		kl = strlen(key);
		if (param) {
			if (kl < 2 || key[0] != '%' || key[kl - 1] != '%' ||
			    kl - 2 != strlen(name) ||
			    strncasecmp(key + 1, name, kl - 2) != 0)
				continue;
		} else if (strcasecmp(key, name) != 0) {
			continue;
		}
		break;
	}
	if (key == NULL)
		return 0;
	if (!param && j->binary)
		bin = sync_strv_casecontains(j->binary, key);
	cnt = json_is_array(v) ? json_array_size(v) : 1;
	/* The values of earlier lookups stay valid: they live in bufs. */
	if ((nv = calloc(cnt + 1, sizeof(*nv))) == NULL)
		return sync_errf(err, "out of memory");
	{
		unsigned char **nb = realloc(j->bufs,
		    (j->nbufs + cnt + 1) * sizeof(*nb));

		if (nb == NULL) {
			free(nv);
			return sync_errf(err, "out of memory");
		}
		j->bufs = nb;
		j->bufs[j->nbufs++] = (unsigned char *)nv;
	}
	for (i = 0; i < cnt; i++) {
		e = json_is_array(v) ? json_array_get(v, i) : v;
		if (!json_is_string(e))
			return sync_errf(err, "attribute '%s': values must be "
			    "strings", key);
		nv[i].p = json_string_value(e);
		nv[i].len = json_string_length(e);
		if (bin) {
			unsigned char *raw;
			size_t rl;

			if (sync_base64_decode(nv[i].p, nv[i].len, &raw, &rl,
			    err) == -1)
				return sync_errpre(err, "attribute '%s'", key);
			j->bufs[j->nbufs++] = raw;
			nv[i].p = (const char *)raw;
			nv[i].len = rl;
		}
	}
	*vals = nv;
	*n = cnt;
	*binary = bin;
	return 1;
}

static int
jattr(void *ctx, const char *name, const struct sync_bytes **vals,
    size_t *n, int *binary, struct sync_err *err)
{
	return jlookup(ctx, name, 0, vals, n, binary, err);
}

static int
jparam(void *ctx, const char *name, const struct sync_bytes **vals,
    size_t *n, int *binary, struct sync_err *err)
{
	return jlookup(ctx, name, 1, vals, n, binary, err);
}

json_t *
sync_expr_eval_json(const struct sync_expr *e, json_t *attrs,
    const struct sync_strv *binary, struct sync_err *err)
{
	struct jctx j = { attrs, binary, NULL, 0, NULL, 0 };
	struct sync_expr_env env = { jattr, jparam, &j };
	struct sync_expr_result res;
	json_t *out = NULL, *s;
	char *b64;
	size_t i;

	if (!json_is_object(attrs)) {
		sync_errf(err, "attributes must be a JSON object");
		return NULL;
	}
	if (sync_expr_eval(e, &env, &res, err) == -1) {
		jctx_clear(&j);
		return NULL;
	}
	jctx_clear(&j);
	if (res.status == SYNC_EXPR_IGNORE) {
		sync_expr_result_release(&res);
		return json_null();
	}
	if ((out = json_array()) == NULL)
		goto oom;
	for (i = 0; i < res.n; i++) {
		if (res.v[i].binary) {
			if ((b64 = sync_base64_encode(res.v[i].p,
			    res.v[i].len)) == NULL)
				goto oom;
			s = json_string(b64);
			free(b64);
		} else {
			if (!sync_utf8_valid(res.v[i].p, res.v[i].len)) {
				sync_errf(err, "result value %zu is not UTF-8 "
				    "text", i + 1);
				goto fail;
			}
			s = json_stringn(res.v[i].p, res.v[i].len);
		}
		if (s == NULL || json_array_append_new(out, s) == -1)
			goto oom;
	}
	sync_expr_result_release(&res);
	return out;
oom:
	sync_errf(err, "out of memory");
fail:
	json_decref(out);
	sync_expr_result_release(&res);
	return NULL;
}
