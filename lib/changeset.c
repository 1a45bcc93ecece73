/*
 * changeset.c: writing a change set (sync-changeset(5)) as JSON Lines,
 * as a plan for people, or as CSV; and checking one read back.
 *
 * The change lines are built by diff.c already in their final JSON form.
 * Only the changed objects are rendered for the views, so parsing their
 * lines back with jansson here costs little.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "diff.h"

static const char *const ops[] = { "add", "update", "delete", "move",
    "rename", "conflict", "error", NULL };

static int
is_op(const char *s)
{
	size_t i;

	for (i = 0; ops[i]; i++)
		if (strcmp(ops[i], s) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------- text view */

/*
 * A value as a JSON string: quoted, and with the C0 controls escaped by
 * jansson; DEL and the C1 controls, which jansson leaves, are escaped
 * here, so that no value sends a terminal an escape sequence.
 */
static int
put_val(FILE *fp, json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);
	int rc;

	if (s == NULL)
		return -1;
	rc = sync_fputs_esc(s, fp);
	free(s);
	return rc;
}

/* A list of values: (none), "x", or ["a", "b"]. */
static int
put_list(FILE *fp, json_t *a)
{
	size_t i;
	json_t *v;

	if (a == NULL || json_array_size(a) == 0)
		return fputs("(none)", fp) == EOF ? -1 : 0;
	if (json_array_size(a) == 1)
		return put_val(fp, json_array_get(a, 0));
	if (fputc('[', fp) == EOF)
		return -1;
	json_array_foreach(a, i, v)
		if ((i && fputs(", ", fp) == EOF) || put_val(fp, v) == -1)
			return -1;
	return fputc(']', fp) == EOF ? -1 : 0;
}

/* The most values of one attribute the text view lists one by one. */
#define TEXT_MAXVALS 20

/* n with thousands separators: 1,234,567.  Into buf (32 bytes). */
static const char *
thousands(size_t n, char *buf)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof tmp, "%zu", n), i, o = 0;

	for (i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

/* A value added or removed as the view shows it: its object's name. */
struct shown {
	json_t *name;           /* borrowed */
	int pending;            /* an object the plan creates */
};

static int
shown_cmp(const void *x, const void *y)
{
	const struct shown *a = x, *b = y;

	return strcmp(json_string_value(a->name), json_string_value(b->name));
}

/*
 * The values of vals (and pend, objects to be created) with their names
 * (a parallel array of names, or NULL) into a new array of *n, sorted by
 * name; NULL when there are none or out of memory (*n is then 0 or not).
 */
static struct shown *
shown_list(json_t *vals, json_t *pend, json_t *names, size_t *n)
{
	size_t nv = json_array_size(vals), np = json_array_size(pend), i;
	struct shown *s;

	*n = nv + np;
	if (*n == 0 || (s = calloc(*n, sizeof *s)) == NULL)
		return NULL;
	for (i = 0; i < *n; i++) {
		json_t *nm = json_array_get(names, i);

		s[i].name = json_is_string(nm) && json_string_length(nm) > 0 ?
		    nm : i < nv ? json_array_get(vals, i) :
		    json_array_get(pend, i - nv);
		s[i].pending = i >= nv;
	}
	qsort(s, *n, sizeof *s, shown_cmp);
	return s;
}

/*
 * One direction of a large change: "+ 1,234: "Ada", "Alan", ... and
 * 1,214 more" on a line of its own.
 */
static int
put_summary(FILE *fp, char sign, const struct shown *s, size_t n)
{
	char b[32];
	size_t i;

	if (n == 0)
		return 0;
	if (fprintf(fp, "      %c %s:", sign, thousands(n, b)) < 0)
		return -1;
	for (i = 0; i < n && i < TEXT_MAXVALS; i++)
		if (fputs(i ? ", " : " ", fp) == EOF ||
		    (s[i].pending && fputs("new:", fp) == EOF) ||
		    put_val(fp, s[i].name) == -1)
			return -1;
	if (n > TEXT_MAXVALS && fprintf(fp, ", ... and %s more",
	    thousands(n - TEXT_MAXVALS, b)) < 0)
		return -1;
	return fputc('\n', fp) == EOF ? -1 : 0;
}

/*
 * The values added and removed, by name: inline when there are few,
 * else a count and the first names of each direction.
 */
static int
put_addrem(FILE *fp, json_t *a)
{
	size_t na, nr, i;
	struct shown *add = shown_list(json_object_get(a, "add"),
	    json_object_get(a, "add_anchors"), json_object_get(a, "add_names"),
	    &na);
	struct shown *rem = shown_list(json_object_get(a, "remove"), NULL,
	    json_object_get(a, "remove_names"), &nr);
	int rc = -1;

	if ((na && add == NULL) || (nr && rem == NULL))
		goto out;
	if (na + nr > TEXT_MAXVALS) {
		if (fputc('\n', fp) == EOF || put_summary(fp, '+', add, na) ==
		    -1 || put_summary(fp, '-', rem, nr) == -1)
			goto out;
		rc = 0;
		goto out;
	}
	for (i = 0; i < na; i++)
		if (fputs(add[i].pending ? " +new:" : " +", fp) == EOF ||
		    put_val(fp, add[i].name) == -1)
			goto out;
	for (i = 0; i < nr; i++)
		if (fputs(" -", fp) == EOF || put_val(fp, rem[i].name) == -1)
			goto out;
	rc = fputc('\n', fp) == EOF ? -1 : 0;
out:
	free(add);
	free(rem);
	return rc;
}

static int
text_line(FILE *fp, json_t *c)
{
	const char *op = json_string_value(json_object_get(c, "op"));
	const char *sym, *key;
	json_t *attrs = json_object_get(c, "attrs"), *a, *v;
	json_t *id = json_object_get(c, "id"), *x;
	size_t i;
	int first = 1;

	sym = strcmp(op, "add") == 0 ? "+" : strcmp(op, "update") == 0 ? "~" :
	    strcmp(op, "delete") == 0 ? "-" : strcmp(op, "conflict") == 0 ?
	    "!" : strcmp(op, "error") == 0 ? "x" : ">";
	/* Named for people; the anchor and id say which object exactly. */
	if ((x = json_object_get(c, "name")) == NULL)
		x = json_object_get(c, "anchor");
	if (fprintf(fp, "%s %s %s ", sym, op,
	    json_string_value(json_object_get(c, "type"))) < 0 ||
	    put_val(fp, x) == -1 || fputs(" (anchor ", fp) == EOF ||
	    put_val(fp, json_object_get(c, "anchor")) == -1)
		return -1;
	if (id && (fputs(", id ", fp) == EOF || put_val(fp, id) == -1))
		return -1;
	first = 0;
	{
		static const char *const meta[] = { "flow", "join", "reason",
		    "source", NULL };

		for (i = 0; meta[i]; i++) {
			if ((x = json_object_get(c, meta[i])) == NULL)
				continue;
			if (fprintf(fp, "%s%s ", first ? "" : ", ", meta[i]) < 0)
				return -1;
			/*
			 * The names of rules need no quotes; a DN does.  A
			 * reason can quote a value from the directory.
			 */
			if (strcmp(meta[i], "source") == 0 ? put_val(fp, x) == -1 :
			    sync_fputs_esc(json_string_value(x), fp) == -1)
				return -1;
			first = 0;
		}
		if (json_is_true(json_object_get(c, "disable")) &&
		    fputs(", disable", fp) == EOF)
			return -1;
	}
	if (fputs(")\n", fp) == EOF)
		return -1;
	if ((x = json_object_get(c, "candidates")) != NULL &&
	    (fputs("    candidates: ", fp) == EOF || put_list(fp, x) == -1 ||
	    fputc('\n', fp) == EOF))
		return -1;
	if ((x = json_object_get(c, "dn")) != NULL) {
		if (fputs("    dn: ", fp) == EOF || put_val(fp, x) == -1)
			return -1;
		if ((v = json_object_get(c, "new_dn")) != NULL &&
		    (fputs(" -> ", fp) == EOF || put_val(fp, v) == -1))
			return -1;
		if (fputc('\n', fp) == EOF)
			return -1;
	}
	json_object_foreach(attrs, key, a) {
		json_t *add = json_object_get(a, "add");
		json_t *pend = json_object_get(a, "add_anchors");
		json_t *rem = json_object_get(a, "remove");
		json_t *nw = json_object_get(a, "new");
		json_t *old = json_object_get(a, "old");

		if (fputs("    ", fp) == EOF || sync_fputs_esc(key, fp) == -1 ||
		    fputc(':', fp) == EOF)
			return -1;
		if (add || pend || rem) {
			if (put_addrem(fp, a) == -1)
				return -1;
			continue;
		} else {
			if (fputc(' ', fp) == EOF)
				return -1;
			if (old && (put_list(fp, old) == -1 ||
			    fputs(" -> ", fp) == EOF))
				return -1;
			if (nw ? put_list(fp, nw) == -1 :
			    fputs("(deleted)", fp) == EOF)
				return -1;
		}
		if (fputc('\n', fp) == EOF)
			return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- CSV view */

/*
 * A cell.  One that starts with = + - @, a tab or a carriage return is
 * taken for a formula by spreadsheets (formula injection: a displayName
 * of "=HYPERLINK(...)" runs when the plan is opened), so it gets a
 * leading single quote, as OWASP advises, and is always quoted.
 */
static int
csv_field(FILE *fp, const char *s)
{
	int formula = s && *s && strchr("=+-@\t\r", *s) != NULL;

	if (!formula && (s == NULL || strpbrk(s, ",\"\r\n") == NULL))
		return fputs(s ? s : "", fp) == EOF ? -1 : 0;
	if (fputc('"', fp) == EOF || (formula && fputc('\'', fp) == EOF))
		return -1;
	for (; *s; s++)
		if ((*s == '"' && fputc('"', fp) == EOF) || fputc(*s, fp) == EOF)
			return -1;
	return fputc('"', fp) == EOF ? -1 : 0;
}

/*
 * Values joined by newlines, those of b with bprefix (NULL: none).  With
 * names (a parallel array over a then b, or NULL), a value whose object
 * has a name is written "name (value)".  New memory.
 */
static char *
joinvals(json_t *a, json_t *b, const char *bprefix, json_t *names)
{
	struct sync_buf buf = { 0 };
	size_t i, na = json_array_size(a), n = na + json_array_size(b);

	sync_buf_adds(&buf, "");
	for (i = 0; i < n; i++) {
		const char *v = json_string_value(i < na ? json_array_get(a, i) :
		    json_array_get(b, i - na));
		const char *nm = json_string_value(json_array_get(names, i));

		if (buf.len)
			sync_buf_addc(&buf, '\n');
		if (nm && *nm && strcmp(nm, v) != 0) {
			sync_buf_adds(&buf, nm);
			sync_buf_adds(&buf, " (");
		} else
			nm = NULL;
		if (i >= na)
			sync_buf_adds(&buf, bprefix);
		sync_buf_adds(&buf, v);
		if (nm)
			sync_buf_addc(&buf, ')');
	}
	return sync_buf_detach(&buf);
}

static int
csv_row(FILE *fp, json_t *c, const char *attr, const char *old,
    const char *nw, const char *added, const char *removed)
{
	json_t *dn = json_object_get(c, "dn");
	const char *f[] = {
		json_string_value(json_object_get(c, "op")),
		json_string_value(json_object_get(c, "type")),
		json_string_value(json_object_get(c, "name")),
		/* the target's DN, else the source's: an LDAP DN either way */
		json_string_value(dn ? dn : json_object_get(c, "source")),
		json_string_value(json_object_get(c, "anchor")),
		json_string_value(json_object_get(c, "id")),
		json_string_value(json_object_get(c, "flow")),
		json_string_value(json_object_get(c, "join")),
		attr, old, nw, added, removed,
		json_string_value(json_object_get(c, "reason")),
	};
	size_t i;

	for (i = 0; i < sizeof f / sizeof *f; i++)
		if ((i && fputc(',', fp) == EOF) || csv_field(fp, f[i]) == -1)
			return -1;
	return fputs("\r\n", fp) == EOF ? -1 : 0;
}

static int
csv_line(FILE *fp, json_t *c)
{
	json_t *attrs = json_object_get(c, "attrs"), *a, *nd;
	const char *key;
	int rows = 0, rc = 0;

	if ((nd = json_object_get(c, "new_dn")) != NULL) {
		if (csv_row(fp, c, "dn", json_string_value(json_object_get(c,
		    "dn")), json_string_value(nd), NULL, NULL) == -1)
			return -1;
		rows++;
	}
	json_object_foreach(attrs, key, a) {
		char *o = joinvals(json_object_get(a, "old"), NULL, NULL, NULL);
		char *n = joinvals(json_object_get(a, "new"), NULL, NULL, NULL);
		char *ad = joinvals(json_object_get(a, "add"),
		    json_object_get(a, "add_anchors"), "anchor:",
		    json_object_get(a, "add_names"));
		char *rm = joinvals(json_object_get(a, "remove"), NULL, NULL,
		    json_object_get(a, "remove_names"));

		if (o == NULL || n == NULL || ad == NULL || rm == NULL)
			rc = -1;
		else
			rc = csv_row(fp, c, key, o, n, ad, rm);
		free(o);
		free(n);
		free(ad);
		free(rm);
		if (rc == -1)
			return -1;
		rows++;
	}
	if (rows == 0)
		return csv_row(fp, c, NULL, NULL, NULL, NULL, NULL);
	return 0;
}

/* ----------------------------------------------------------------- write */

int
sync_changeset_write(const struct sync_changeset *cs, FILE *fp,
    enum sync_csfmt fmt, struct sync_err *err)
{
	size_t i, n = sync_changeset_nchanges(cs), len, *order = NULL;
	const char *line;
	json_error_t jerr;
	json_t *c;
	int rc;

	if (fmt == SYNC_CS_JSON) {
		if (fputs(sync_changeset_header(cs), fp) == EOF ||
		    fputc('\n', fp) == EOF)
			return sync_errno(err, "cannot write the change set");
		for (i = 0; i < n; i++) {
			line = sync_changeset_line(cs, i, &len);
			if (fwrite(line, 1, len, fp) != len ||
			    fputc('\n', fp) == EOF)
				return sync_errno(err, "cannot write the change "
				    "set");
		}
		return 0;
	}
	if (fmt == SYNC_CS_CSV && fputs("op,type,name,dn,anchor,id,flow,join,"
	    "attribute,old,new,added,removed,reason\r\n", fp) == EOF)
		return sync_errno(err, "cannot write the change set");
	/* people read the plan by object type and name */
	if (fmt == SYNC_CS_TEXT && n > 0 &&
	    (order = changeset_name_order(cs)) == NULL)
		return sync_errf(err, "out of memory");
	for (i = 0; i < n; i++) {
		line = sync_changeset_line(cs, order ? order[i] : i, &len);
		if ((c = json_loadb(line, len, 0, &jerr)) == NULL) {
			free(order);
			return sync_errf(err, "change %zu: %s", i + 1, jerr.text);
		}
		if (fmt == SYNC_CS_TEXT && i > 0 && fputc('\n', fp) == EOF)
			rc = -1;
		else
			rc = fmt == SYNC_CS_TEXT ? text_line(fp, c) :
			    csv_line(fp, c);
		json_decref(c);
		if (rc == -1) {
			free(order);
			return sync_errno(err, "cannot write the change set");
		}
	}
	free(order);
	if (fmt == SYNC_CS_TEXT) {
		struct sync_buf b = { 0 };

		sync_changeset_summary(cs, &b);
		rc = fprintf(fp, "%sPlan: %s.\n", n ? "\n" : "",
		    b.p ? b.p : "out of memory");
		sync_buf_release(&b);
		if (rc < 0)
			return sync_errno(err, "cannot write the change set");
	}
	return 0;
}

/* ----------------------------------------------------------------- check */

static int
check_strings(json_t *a)
{
	size_t i;
	json_t *v;

	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, v)
		if (!json_is_string(v))
			return 0;
	return 1;
}

static const char *
check_change(json_t *c)
{
	static const char *const keys[] = { "anchor", "attrs", "binary",
	    "candidates", "disable", "dn", "flow", "id", "join", "name",
	    "new_dn", "op", "reason", "source", "type", NULL };
	static const char *const akeys[] = { "add", "add_anchors",
	    "add_names", "new", "old", "remove", "remove_names", NULL };
	const char *key, *op, *ak;
	json_t *v, *a, *x;
	size_t i;

	if (!json_is_object(c))
		return "a change must be a JSON object";
	json_object_foreach(c, key, v) {
		for (i = 0; keys[i] && strcmp(keys[i], key) != 0; i++)
			;
		if (keys[i] == NULL)
			return "unknown key in a change";
	}
	if (!json_is_string(json_object_get(c, "anchor")) ||
	    json_string_length(json_object_get(c, "anchor")) == 0)
		return "a change needs a non-empty \"anchor\"";
	op = json_string_value(json_object_get(c, "op"));
	if (op == NULL || !is_op(op))
		return "a change needs an \"op\" (add, update, delete, move, "
		    "rename, conflict or error)";
	if (!json_is_string(json_object_get(c, "type")) ||
	    sync_objtype_parse(json_string_value(json_object_get(c,
	    "type"))) < 0)
		return "a change needs a \"type\" (user, group or contact)";
	if (strcmp(op, "add") != 0 && strcmp(op, "conflict") != 0 &&
	    strcmp(op, "error") != 0 && !json_is_string(json_object_get(c,
	    "id")))
		return "this change needs the target's \"id\"";
	if ((strcmp(op, "move") == 0 || strcmp(op, "rename") == 0) &&
	    !json_is_string(json_object_get(c, "new_dn")))
		return "a move or rename needs \"new_dn\"";
	if ((x = json_object_get(c, "binary")) && !check_strings(x))
		return "\"binary\" must be an array of strings";
	if ((x = json_object_get(c, "candidates")) && !check_strings(x))
		return "\"candidates\" must be an array of strings";
	if ((x = json_object_get(c, "name")) && !json_is_string(x))
		return "\"name\" must be a string";
	if ((a = json_object_get(c, "attrs")) == NULL)
		return NULL;
	if (!json_is_object(a))
		return "\"attrs\" must be an object";
	json_object_foreach(a, key, v) {
		if (!json_is_object(v))
			return "an attribute change must be an object";
		json_object_foreach(v, ak, x) {
			for (i = 0; akeys[i] && strcmp(akeys[i], ak) != 0; i++)
				;
			if (akeys[i] == NULL)
				return "unknown key in an attribute change";
			if (!check_strings(x))
				return "attribute values must be arrays of "
				    "strings";
		}
	}
	return NULL;
}

int
sync_changeset_check(const char *name, const char *buf, size_t len,
    struct sync_err *err)
{
	const char *p = buf, *end = buf + len, *nl, *msg;
	json_error_t jerr;
	json_t *c, *v;
	size_t line;

	for (line = 1; p < end; line++, p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return sync_errf(err, "%s:%zu:%zu: truncated line (no "
			    "newline at the end of the file)", name, line,
			    (size_t)(end - p) + 1);
		if ((c = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES,
		    &jerr)) == NULL)
			return sync_errf(err, "%s:%zu:%d: %s", name, line,
			    jerr.column > 0 ? jerr.column : 1, jerr.text);
		if (line == 1) {
			v = json_object_get(c, "format");
			if (!json_is_string(v) || strcmp(json_string_value(v),
			    SYNC_CHANGESET_FORMAT) != 0) {
				json_decref(c);
				return sync_errf(err, "%s:1:1: not a change set",
				    name);
			}
			v = json_object_get(c, "version");
			if (!json_is_integer(v) || json_integer_value(v) !=
			    SYNC_CHANGESET_VERSION) {
				json_decref(c);
				return sync_errf(err, "%s:1:1: unsupported "
				    "change set version (expected %d)", name,
				    SYNC_CHANGESET_VERSION);
			}
			json_decref(c);
			continue;
		}
		msg = check_change(c);
		json_decref(c);
		if (msg)
			return sync_errf(err, "%s:%zu:1: %s", name, line, msg);
	}
	if (line == 1)
		return sync_errf(err, "%s:1:1: empty file: not a change set",
		    name);
	return 0;
}
