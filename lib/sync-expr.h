/*
 * sync-expr.h: the sync-rule expression language (sync-expr(7)), part of
 * the public interface; included by sync.h.
 *
 * The language is the one Entra Connect Sync admins write attribute flows
 * in: [attribute] references, "string" literals, numbers, &HFF, True,
 * False, NULL, AuthoritativeNull, IgnoreThisFlow, CRLF, %Parameter%,
 * $variables, the operators & = <> < <= > >= + - * && || (all of equal
 * priority, left to right) and the functions listed in sync-expr(7).
 *
 * Values are byte strings: an attribute has 0..n values, and a value may
 * hold binary data (objectGUID, objectSid).  An expression evaluates to
 * 0..n values, or to one of the special results NULL (no contribution),
 * AuthoritativeNull (no value, and lower rules may not contribute) and
 * IgnoreThisFlow (leave the target attribute alone).  Error("msg") makes
 * the evaluation fail with msg.
 *
 * A parsed expression is immutable: one struct sync_expr may be evaluated
 * by several threads at once, each with its own env and result.
 */
#ifndef SYNC_EXPR_H
#define SYNC_EXPR_H

/* A parsed expression; opaque. */
struct sync_expr;

/* A value lent by the caller: len bytes at p, not NUL-terminated. */
struct sync_bytes {
	const char *p;
	size_t len;
};

/*
 * Looks up an attribute (for [name] and ImportedValue("name")) or a
 * parameter (for %name%, without the percent signs).  Attribute names
 * are compared without regard to case, as in Active Directory; the
 * callback does the comparison.
 *
 * Returns 1 when found, with *vals set to *n values (n may be 0) that the
 * callback owns and keeps valid until sync_expr_eval returns, and *binary
 * set to 1 when the values are raw bytes (objectGUID, objectSid) rather
 * than UTF-8 text; 0 when there is no such attribute or parameter (an
 * absent attribute is NULL; an unknown parameter is an error); -1 after
 * filling err.
 */
typedef int sync_expr_lookup_fn(void *ctx, const char *name,
    const struct sync_bytes **vals, size_t *n, int *binary,
    struct sync_err *err);

/* What an evaluation may ask its caller for.  Either callback may be NULL
 * (then every attribute is absent, every parameter unknown). */
struct sync_expr_env {
	sync_expr_lookup_fn *attr;
	sync_expr_lookup_fn *param;
	void *ctx;              /* passed to both callbacks */
};

enum sync_expr_status {
	SYNC_EXPR_VALUES,       /* n >= 1 values */
	SYNC_EXPR_NULL,         /* no value: NULL, an absent attribute */
	SYNC_EXPR_AUTHNULL,     /* AuthoritativeNull */
	SYNC_EXPR_IGNORE        /* IgnoreThisFlow */
};

/* One result value; p is NUL-terminated (the NUL not counted in len). */
struct sync_expr_item {
	char *p;
	size_t len;
	int binary;             /* raw bytes (CGuid, a binary attribute) */
};

/* The result of an evaluation; owns v and every v[i].p. */
struct sync_expr_result {
	enum sync_expr_status status;
	struct sync_expr_item *v;
	size_t n;
};

/*
 * Parses src (UTF-8, NUL-terminated).  Returns a new expression the caller
 * frees with sync_expr_free, or NULL with err->msg "column N: message"
 * (N counts characters from 1).  Unknown functions, a wrong number of
 * arguments and unknown $variables are parse errors.
 */
struct sync_expr *sync_expr_parse(const char *src, struct sync_err *err);
void sync_expr_free(struct sync_expr *e);

/*
 * Evaluates e.  On success fills *res (which the caller releases with
 * sync_expr_result_release) and returns 0.  On failure returns -1 with
 * err->msg set: the message of Error("..."), or "column N: message" for
 * a run-time error such as a type mismatch or Item() out of range; *res
 * is then empty and needs no release.
 */
int sync_expr_eval(const struct sync_expr *e, const struct sync_expr_env *env,
    struct sync_expr_result *res, struct sync_err *err);
void sync_expr_result_release(struct sync_expr_result *res);

/*
 * Adds to names every attribute name e refers to ([name] and
 * ImportedValue("name")), once each, as written; for building import
 * attribute lists.  Returns 0, or -1 when out of memory.
 */
int sync_expr_attrs(const struct sync_expr *e, struct sync_strv *names,
    struct sync_err *err);

/*
 * The command line's convenience (sync-diff -e): evaluates e against a
 * JSON object of attributes, {"givenName":["John"],"sn":["Doe"]} (a value
 * may also be a single string).  Attributes named in binary (may be NULL;
 * compared without regard to case) hold base64 in the JSON and are decoded
 * before use.  Keys written "%Name%" are parameters.
 *
 * Returns a new reference: an array of result strings ([] for NULL and
 * AuthoritativeNull; binary results base64-encoded), or the JSON null for
 * IgnoreThisFlow.  On error returns NULL with err set as sync_expr_eval
 * does, or naming the attribute whose JSON is not an array of strings.
 * attrs is borrowed.
 */
struct json_t *sync_expr_eval_json(const struct sync_expr *e,
    struct json_t *attrs, const struct sync_strv *binary,
    struct sync_err *err);

#endif
