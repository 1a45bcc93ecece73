/*
 * sync-diff: compute a change set from snapshots and the sync rules.
 *
 * For now only the expression mode: sync-diff -e EXPR evaluates a sync-rule
 * expression (sync-expr(7)) against one object's attributes, given as a
 * JSON object, and prints the values it produces.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sync.h"
#include "sync-expr.h"

static const char *prog = "sync-diff";

static void
usage(void)
{
	fprintf(stderr, "usage: %s -e expression [-b attribute]... [file]\n",
	    prog);
	exit(2);
}

/* Evaluates expr against the JSON object in path; returns the exit
 * status. */
static int
eval(const char *expr, const struct sync_strv *binary, const char *path)
{
	struct sync_expr *e;
	struct sync_err err;
	json_error_t jerr;
	json_t *attrs, *res;
	FILE *fp = stdin;
	int rc = 0;

	if ((e = sync_expr_parse(expr, &err)) == NULL) {
		fprintf(stderr, "%s: expression: %s\n", prog, err.msg);
		return 2;
	}
	if (strcmp(path, "-") != 0 && (fp = fopen(path, "r")) == NULL) {
		fprintf(stderr, "%s: cannot open '%s': %s\n", prog, path,
		    strerror(errno));
		sync_expr_free(e);
		return 2;
	}
	attrs = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	if (fp != stdin)
		fclose(fp);
	if (attrs == NULL) {
		fprintf(stderr, "%s: %s:%d:%d: %s\n", prog, path, jerr.line,
		    jerr.column, jerr.text);
		sync_expr_free(e);
		return 2;
	}
	if (!json_is_object(attrs)) {
		fprintf(stderr, "%s: %s:1:1: attributes must be a JSON "
		    "object\n", prog, path);
		rc = 2;
	} else if ((res = sync_expr_eval_json(e, attrs, binary, &err)) ==
	    NULL) {
		fprintf(stderr, "%s: expression: %s\n", prog, err.msg);
		rc = 2;
	} else {
		if (json_dumpf(res, stdout, JSON_COMPACT | JSON_ENCODE_ANY) ==
		    -1 || putchar('\n') == EOF)
			rc = 2;
		json_decref(res);
	}
	json_decref(attrs);
	sync_expr_free(e);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct sync_strv binary = { 0 };
	const char *expr = NULL;
	int ch, rc;

	while ((ch = getopt(argc, argv, "b:e:")) != -1) {
		switch (ch) {
		case 'b':
			if (sync_strv_add(&binary, optarg) == -1) {
				fprintf(stderr, "%s: out of memory\n", prog);
				return 2;
			}
			break;
		case 'e':
			expr = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (expr == NULL || argc > 1)
		usage();
	rc = eval(expr, &binary, argc ? argv[0] : "-");
	sync_strv_release(&binary);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF) {
		fprintf(stderr, "%s: cannot write standard output: %s\n", prog,
		    strerror(errno));
		return 2;
	}
	return rc;
}
