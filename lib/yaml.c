/*
 * yaml.c: YAML files into a tree of positioned nodes, and typed readers.
 *
 * The event API of libyaml is used rather than its document loader so
 * that aliases can be refused as they are met: a config needs no
 * aliases, and a tree without them cannot grow past its text.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "sync.h"

#define MAXDEPTH 64
#define MAXINPUT (1024 * 1024)

struct loader {
	yaml_parser_t parser;
	const char *buf;        /* the input, for positions of reader errors */
	const char *name;       /* stored in the root's first node */
	struct sync_err *err;
};

/* The root node owns the file name: it is allocated right after it. */
struct root {
	struct sync_node node;
	char name[];
};

void
sync_node_free(struct sync_node *n)
{
	size_t i, count;

	if (n == NULL)
		return;
	count = n->kind == SYNC_NODE_MAP ? 2 * n->n : n->n;
	for (i = 0; i < count; i++)
		sync_node_free(n->items[i]);
	free(n->items);
	free(n->str);
	free(n);
}

const char *
sync_node_kindname(enum sync_node_kind k)
{
	switch (k) {
	case SYNC_NODE_SCALAR:
		return "a scalar";
	case SYNC_NODE_SEQ:
		return "a list";
	case SYNC_NODE_MAP:
		return "a mapping";
	}
	return "?";
}

int
sync_node_errf(struct sync_err *err, const struct sync_node *node,
    const char *fmt, ...)
{
	char msg[SYNC_ERRMAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return sync_errf(err, "%s:%d:%d: %s", node->file, node->line,
	    node->col, msg);
}

static int
load_errf(struct loader *l, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[SYNC_ERRMAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return sync_errf(l->err, "%s:%zu:%zu: %s", l->name, m->line + 1,
	    m->column + 1, msg);
}

static int
parser_error(struct loader *l)
{
	yaml_parser_t *p = &l->parser;
	const yaml_mark_t *m = p->problem ? &p->problem_mark : &p->mark;

	if (p->error == YAML_READER_ERROR) {
		/* The reader decodes ahead and reports only a byte offset. */
		size_t i, line = 1, col = 1;

		for (i = 0; i < p->problem_offset; i++) {
			if (l->buf[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)l->buf[i] & 0xc0) != 0x80)
				col++;
		}
		return sync_errf(l->err, "%s:%zu:%zu: %s", l->name, line, col,
		    p->problem ? p->problem : "invalid input");
	}
	if (p->context)
		return load_errf(l, m, "%s %s", p->problem ? p->problem : "error",
		    p->context);
	return load_errf(l, m, "%s", p->problem ? p->problem : "parse error");
}

/*
 * Replaces ${NAME} with the environment's value; $$ is a dollar sign.
 * Returns a new string, or NULL with the error set.
 */
static char *
expand(struct loader *l, const yaml_mark_t *m, const char *s)
{
	struct sync_buf b = { 0 };
	const char *p, *end, *val;
	char name[256];
	size_t len;

	for (p = s; *p; p++) {
		if (p[0] == '$' && p[1] == '$') {
			if (sync_buf_addc(&b, '$') == -1)
				goto nomem;
			p++;
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			if (sync_buf_addc(&b, *p) == -1)
				goto nomem;
			continue;
		}
		if ((end = strchr(p + 2, '}')) == NULL) {
			load_errf(l, m, "unterminated '${' in value");
			goto fail;
		}
		len = (size_t)(end - (p + 2));
		if (len == 0 || len >= sizeof name) {
			load_errf(l, m, "invalid variable name in '${...}'");
			goto fail;
		}
		memcpy(name, p + 2, len);
		name[len] = '\0';
		if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789_") != len) {
			load_errf(l, m, "invalid variable name '%s'", name);
			goto fail;
		}
		if ((val = getenv(name)) == NULL) {
			load_errf(l, m, "environment variable '%s' is not set",
			    name);
			goto fail;
		}
		if (sync_buf_adds(&b, val) == -1)
			goto nomem;
		p = end;
	}
	return sync_buf_detach(&b);
nomem:
	sync_errf(l->err, "%s: out of memory", l->name);
fail:
	sync_buf_release(&b);
	return NULL;
}

static struct sync_node *
newnode(struct loader *l, enum sync_node_kind kind, const yaml_mark_t *m,
    const char *file)
{
	struct sync_node *n;

	if ((n = calloc(1, sizeof *n)) == NULL) {
		sync_errf(l->err, "%s: out of memory", l->name);
		return NULL;
	}
	n->kind = kind;
	n->file = file;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

/*
 * Makes room for a pair (or an item) in parent; the room doubles, so
 * that a long list or mapping is not copied once per entry.
 */
static int
additem(struct loader *l, struct sync_node *parent, struct sync_node *child)
{
	struct sync_node **items;
	size_t count = parent->kind == SYNC_NODE_MAP ? 2 * parent->n : parent->n;
	size_t cap = parent->cap ? parent->cap : 8;

	if (count + 2 <= parent->cap)
		return 0;
	while (cap < count + 2)
		cap *= 2;
	if ((items = realloc(parent->items, cap * sizeof *items)) == NULL) {
		sync_errf(l->err, "%s: out of memory", l->name);
		return -1;
	}
	parent->items = items;
	parent->cap = cap;
	return 0;
}

/*
 * The keys of one mapping being read, hashed, so that finding a
 * duplicate costs the same at the 80,000th key as at the first (a scan
 * of the earlier keys made a large mapping take seconds).  slot holds a
 * pair's index + 1, or 0 when empty; nslot is 0 or a power of two.
 */
struct keyset {
	size_t *slot;
	size_t nslot;
};

static size_t
keyhash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;       /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3u;
	return (size_t)(h ^ h >> 32);
}

/* The slot of key in map: one that holds it, or the empty one to use. */
static size_t *
keyset_slot(const struct keyset *ks, const struct sync_node *map,
    const char *key)
{
	size_t i = keyhash(key) & (ks->nslot - 1);

	while (ks->slot[i] && strcmp(map->items[2 * (ks->slot[i] - 1)]->str,
	    key) != 0)
		i = (i + 1) & (ks->nslot - 1);
	return &ks->slot[i];
}

/*
 * The index of the pair of map whose key is key, or -1.  Keeps the
 * table at most half full, rebuilding it from map's pairs as it grows.
 */
static long
keyset_find(struct keyset *ks, const struct sync_node *map, const char *key,
    int *nomem)
{
	size_t *s, i, n;

	*nomem = 0;
	if (2 * (map->n + 1) > ks->nslot) {
		n = ks->nslot ? 2 * ks->nslot : 16;
		free(ks->slot);
		if ((ks->slot = calloc(n, sizeof *ks->slot)) == NULL) {
			ks->nslot = 0;
			*nomem = 1;
			return -1;
		}
		ks->nslot = n;
		for (i = 0; i < map->n; i++)
			*keyset_slot(ks, map, map->items[2 * i]->str) = i + 1;
	}
	s = keyset_slot(ks, map, key);
	return *s ? (long)(*s - 1) : -1;
}

/* Records the key of map's last pair. */
static void
keyset_add(struct keyset *ks, const struct sync_node *map)
{
	*keyset_slot(ks, map, map->items[2 * (map->n - 1)]->str) = map->n;
}

static int parse_node(struct loader *, yaml_event_t *, const char *, int,
    struct sync_node **);

static int
parse_children(struct loader *l, struct sync_node *n, const char *file,
    int depth)
{
	yaml_event_t ev;
	struct sync_node *child, *key = NULL;
	yaml_event_type_t end = n->kind == SYNC_NODE_MAP ?
	    YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
	struct keyset ks = { 0 };
	long dup;
	int nomem, rc = -1;

	for (;;) {
		if (!yaml_parser_parse(&l->parser, &ev)) {
			parser_error(l);
			break;
		}
		if (ev.type == end) {
			yaml_event_delete(&ev);
			rc = 0;
			break;
		}
		if (parse_node(l, &ev, file, depth + 1, &child) == -1) {
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
		if (n->kind == SYNC_NODE_SEQ) {
			if (additem(l, n, child) == -1) {
				sync_node_free(child);
				break;
			}
			n->items[n->n++] = child;
			continue;
		}
		if (key == NULL) {
			if (child->kind != SYNC_NODE_SCALAR) {
				sync_node_errf(l->err, child, "a key must be a "
				    "plain string, not %s",
				    sync_node_kindname(child->kind));
				sync_node_free(child);
				break;
			}
			if ((dup = keyset_find(&ks, n, child->str, &nomem)) >=
			    0 || nomem) {
				if (nomem)
					sync_errf(l->err, "%s: out of memory",
					    l->name);
				else
					sync_node_errf(l->err, child, "duplicate "
					    "key '%s' (first at line %d)",
					    child->str, n->items[2 * dup]->line);
				sync_node_free(child);
				break;
			}
			key = child;
			continue;
		}
		if (additem(l, n, child) == -1) {
			sync_node_free(child);
			break;
		}
		n->items[2 * n->n] = key;
		n->items[2 * n->n + 1] = child;
		n->n++;
		key = NULL;
		keyset_add(&ks, n);
	}
	sync_node_free(key);
	free(ks.slot);
	return rc;
}

static int
parse_node(struct loader *l, yaml_event_t *ev, const char *file, int depth,
    struct sync_node **out)
{
	struct sync_node *n;
	const yaml_mark_t *m = &ev->start_mark;
	const unsigned char *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return load_errf(l, m, "aliases (*%s) are not allowed in a "
		    "config file", (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		tag = ev->data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		break;
	default:
		return load_errf(l, m, "unexpected YAML event");
	}
	if (anchor)
		return load_errf(l, m, "anchors (&%s) are not allowed in a "
		    "config file", (const char *)anchor);
	if (tag)
		return load_errf(l, m, "tags (%s) are not allowed in a config "
		    "file", (const char *)tag);
	if (depth > MAXDEPTH)
		return load_errf(l, m, "nesting deeper than %d levels", MAXDEPTH);

	if (ev->type == YAML_SCALAR_EVENT) {
		if ((n = newnode(l, SYNC_NODE_SCALAR, m, file)) == NULL)
			return -1;
		n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
		if (strlen((const char *)ev->data.scalar.value) !=
		    ev->data.scalar.length) {
			sync_node_free(n);
			return load_errf(l, m, "NUL character in value");
		}
		n->str = expand(l, m, (const char *)ev->data.scalar.value);
		if (n->str == NULL) {
			sync_node_free(n);
			return -1;
		}
		*out = n;
		return 0;
	}
	n = newnode(l, ev->type == YAML_MAPPING_START_EVENT ? SYNC_NODE_MAP :
	    SYNC_NODE_SEQ, m, file);
	if (n == NULL)
		return -1;
	if (parse_children(l, n, file, depth) == -1) {
		sync_node_free(n);
		return -1;
	}
	*out = n;
	return 0;
}

struct sync_node *
sync_yaml_loadb(const char *name, const char *buf, size_t len,
    struct sync_err *err)
{
	struct loader l = { .name = name, .buf = buf, .err = err };
	struct sync_node *root = NULL, *doc = NULL;
	struct root *r;
	yaml_event_t ev;
	size_t nlen = strlen(name);
	int state = 0;  /* 0 before the document, 1 in it, 2 after it */

	if (len > MAXINPUT) {
		sync_errf(err, "%s: larger than %d bytes", name, MAXINPUT);
		return NULL;
	}
	/* The root is a placeholder MAP that owns the file name. */
	if ((r = calloc(1, sizeof *r + nlen + 1)) == NULL) {
		sync_errf(err, "%s: out of memory", name);
		return NULL;
	}
	memcpy(r->name, name, nlen + 1);
	root = &r->node;
	root->kind = SYNC_NODE_MAP;
	root->file = r->name;
	root->line = root->col = 1;
	if (!yaml_parser_initialize(&l.parser)) {
		sync_errf(err, "%s: cannot initialise the YAML parser", name);
		free(r);
		return NULL;
	}
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)buf, len);
	for (;;) {
		if (!yaml_parser_parse(&l.parser, &ev)) {
			parser_error(&l);
			goto fail;
		}
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type == YAML_STREAM_START_EVENT ||
		    ev.type == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT) {
			if (state != 0) {
				load_errf(&l, &ev.start_mark, "only one YAML "
				    "document is allowed");
				yaml_event_delete(&ev);
				goto fail;
			}
			state = 1;
			yaml_event_delete(&ev);
			continue;
		}
		if (parse_node(&l, &ev, root->file, 1, &doc) == -1) {
			yaml_event_delete(&ev);
			goto fail;
		}
		yaml_event_delete(&ev);
		state = 2;
	}
	yaml_parser_delete(&l.parser);
	if (doc == NULL) {
		/* An empty file is an empty mapping. */
		return root;
	}
	if (doc->kind != SYNC_NODE_MAP) {
		sync_node_errf(err, doc, "the file must hold a mapping, not %s",
		    sync_node_kindname(doc->kind));
		sync_node_free(doc);
		free(r);
		return NULL;
	}
	/* Move the document's pairs into the root. */
	root->n = doc->n;
	root->items = doc->items;
	root->cap = doc->cap;
	root->line = doc->line;
	root->col = doc->col;
	doc->items = NULL;
	doc->n = 0;
	sync_node_free(doc);
	return root;
fail:
	yaml_parser_delete(&l.parser);
	sync_node_free(doc);
	free(r);
	return NULL;
}

struct sync_node *
sync_yaml_load(const char *path, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct sync_node *root;

	if (sync_file_read(path, MAXINPUT, &b, err) == -1)
		return NULL;
	root = sync_yaml_loadb(strcmp(path, "-") == 0 ? "<stdin>" : path,
	    b.p ? b.p : "", b.len, err);
	sync_buf_release(&b);
	return root;
}

/* ---------------------------------------------------------------- readers */

struct sync_node *
sync_map_get(struct sync_node *map, const char *key)
{
	size_t i;

	if (map == NULL || map->kind != SYNC_NODE_MAP)
		return NULL;
	for (i = 0; i < map->n; i++) {
		if (strcmp(map->items[2 * i]->str, key) == 0) {
			map->items[2 * i]->used = 1;
			return map->items[2 * i + 1];
		}
	}
	return NULL;
}

static int
want_scalar(struct sync_node *v, const char *key, struct sync_err *err)
{
	if (v->kind != SYNC_NODE_SCALAR)
		return sync_node_errf(err, v, "'%s' must be a scalar, not %s",
		    key, sync_node_kindname(v->kind));
	return 0;
}

static int
missing(struct sync_node *map, const char *key, struct sync_err *err)
{
	return sync_node_errf(err, map, "missing required key '%s'", key);
}

int
sync_map_str(struct sync_node *map, const char *key, int required,
    char **out, struct sync_err *err)
{
	struct sync_node *v = sync_map_get(map, key);
	char *s;

	if (v == NULL)
		return required ? missing(map, key, err) : 0;
	if (want_scalar(v, key, err) == -1)
		return -1;
	if (required && v->str[0] == '\0')
		return sync_node_errf(err, v, "'%s' must not be empty", key);
	if ((s = sync_strdup(v->str)) == NULL)
		return sync_node_errf(err, v, "out of memory");
	free(*out);
	*out = s;
	return 0;
}

int
sync_map_path(struct sync_node *map, const char *key, const char *dir,
    int required, char **out, struct sync_err *err)
{
	struct sync_buf b = { 0 };

	if (sync_map_str(map, key, required, out, err) == -1)
		return -1;
	if (*out == NULL || (*out)[0] == '/' || dir == NULL)
		return 0;
	if (sync_buf_addf(&b, "%s/%s", dir, *out) == -1)
		return sync_node_errf(err, map, "out of memory");
	free(*out);
	*out = sync_buf_detach(&b);
	return 0;
}

int
sync_map_bool(struct sync_node *map, const char *key, int *out,
    struct sync_err *err)
{
	struct sync_node *v = sync_map_get(map, key);

	if (v == NULL)
		return 0;
	if (want_scalar(v, key, err) == -1)
		return -1;
	if (!v->quoted && (strcmp(v->str, "true") == 0 ||
	    strcmp(v->str, "yes") == 0))
		*out = 1;
	else if (!v->quoted && (strcmp(v->str, "false") == 0 ||
	    strcmp(v->str, "no") == 0))
		*out = 0;
	else
		return sync_node_errf(err, v, "'%s' must be true or false, "
		    "not '%s'", key, v->str);
	return 0;
}

int
sync_map_int(struct sync_node *map, const char *key, long min, long max,
    long *out, struct sync_err *err)
{
	struct sync_node *v = sync_map_get(map, key);
	char *end;
	long val;

	if (v == NULL)
		return 0;
	if (want_scalar(v, key, err) == -1)
		return -1;
	errno = 0;
	val = strtol(v->str, &end, 10);
	if (v->str[0] == '\0' || *end != '\0' || errno == ERANGE)
		return sync_node_errf(err, v, "'%s' must be an integer, not "
		    "'%s'", key, v->str);
	if (val < min || val > max)
		return sync_node_errf(err, v, "'%s' must be between %ld and "
		    "%ld, not %ld", key, min, max, val);
	*out = val;
	return 0;
}

int
sync_map_strv(struct sync_node *map, const char *key, struct sync_strv *out,
    struct sync_err *err)
{
	struct sync_node *v = sync_map_get(map, key);
	size_t i;

	if (v == NULL)
		return 0;
	if (v->kind == SYNC_NODE_SCALAR) {
		if (sync_strv_add(out, v->str) == -1)
			return sync_node_errf(err, v, "out of memory");
		return 0;
	}
	if (v->kind != SYNC_NODE_SEQ)
		return sync_node_errf(err, v, "'%s' must be a list of strings, "
		    "not %s", key, sync_node_kindname(v->kind));
	for (i = 0; i < v->n; i++) {
		if (v->items[i]->kind != SYNC_NODE_SCALAR)
			return sync_node_errf(err, v->items[i], "'%s' must be "
			    "a list of strings, not of %s", key,
			    sync_node_kindname(v->items[i]->kind));
		if (sync_strv_add(out, v->items[i]->str) == -1)
			return sync_node_errf(err, v->items[i], "out of memory");
	}
	return 0;
}

int
sync_map_map(struct sync_node *map, const char *key, int required,
    struct sync_node **out, struct sync_err *err)
{
	struct sync_node *v = sync_map_get(map, key);

	*out = NULL;
	if (v == NULL)
		return required ? missing(map, key, err) : 0;
	if (v->kind != SYNC_NODE_MAP) {
		/* An empty value ("key:") is an empty mapping. */
		if (v->kind == SYNC_NODE_SCALAR && !v->quoted &&
		    v->str[0] == '\0')
			return 0;
		return sync_node_errf(err, v, "'%s' must be a mapping, not %s",
		    key, sync_node_kindname(v->kind));
	}
	*out = v;
	return 0;
}

int
sync_map_check_unused(struct sync_node *map, struct sync_err *err)
{
	size_t i;

	if (map == NULL || map->kind != SYNC_NODE_MAP)
		return 0;
	for (i = 0; i < map->n; i++)
		if (!map->items[2 * i]->used)
			return sync_node_errf(err, map->items[2 * i],
			    "unknown key '%s'", map->items[2 * i]->str);
	return 0;
}
