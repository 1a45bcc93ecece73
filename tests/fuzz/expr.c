/*
 * Fuzz target for the expression parser and evaluator (sync-expr(7)):
 * parses the input and, when it parses, evaluates it against an object
 * whose every attribute has the values "a, b" and "&H10".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"
#include "sync-expr.h"
#include "main.h"

static int
lookup(void *ctx, const char *name, const struct sync_bytes **vals,
    size_t *n, int *binary, struct sync_err *err)
{
	static const struct sync_bytes v[] = { { "a, b", 4 }, { "&H10", 4 } };
	static const struct sync_bytes guid[] = {
	    { "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
	    "\x10", 16 } };

	(void)ctx;
	(void)err;
	if (strcasecmp(name, "objectGUID") == 0) {
		*vals = guid;
		*n = 1;
		*binary = 1;
		return 1;
	}
	if (strcasecmp(name, "absent") == 0)
		return 0;
	*vals = v;
	*n = 2;
	*binary = 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sync_expr_env env = { lookup, lookup, NULL };
	struct sync_expr_result res;
	struct sync_expr *e;
	struct sync_err err;
	char *src;

	if ((src = malloc(size + 1)) == NULL)
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	if ((e = sync_expr_parse(src, &err)) != NULL) {
		if (sync_expr_eval(e, &env, &res, &err) == 0)
			sync_expr_result_release(&res);
		sync_expr_free(e);
	}
	free(src);
	return 0;
}
