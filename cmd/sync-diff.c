/*
 * sync-diff: compute a change set from snapshots and the sync rules.
 *
 * sync-diff -c CONFIG SOURCE... TARGET computes the change set
 * (sync-changeset(5)) that would bring the target in line with the
 * sources under the config's flows; the work is in lib/diff.c.
 *
 * The expression mode: sync-diff -e EXPR evaluates a sync-rule
 * expression (sync-expr(7)) against one object's attributes, given as a
 * JSON object, and prints the values it produces.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sync.h"
#include "sync-expr.h"

#ifndef SYNC_BUILD_VERSION
#define SYNC_BUILD_VERSION SYNC_VERSION
#endif

static const char *prog = "sync-diff";

enum { OPT_HELP = 256, OPT_VERSION };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 }
};

/* The usage lines, the SYNOPSIS of the manual page word for word. */
static void
print_usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-c config] [-f json | text | csv] "
	    "[-j threads] [-o file] source ... target\n"
	    "       %s -e expression [-b attribute] ... [file]\n"
	    "       %s --help | --version\n", prog, prog, prog);
}

static void
usage(void)
{
	print_usage(stderr);
	exit(2);
}

/* --help: the usage and one line per option, on standard output. */
static void
help(void)
{
	print_usage(stdout);
	fputs("Computes a change set from snapshots; see sync-diff(1).\n"
	    "  -c config     the configuration (default $SYNC_CONFIG or "
	    "/etc/sync/sync.yaml)\n"
	    "  -f format     json (the change set, default), text (for people) "
	    "or csv\n"
	    "  -j threads    threads that evaluate the flows, 1 to 64\n"
	    "  -o file       write to file, atomically (default standard "
	    "output)\n"
	    "  -e expression evaluate a sync-rule expression against an object "
	    "in JSON\n"
	    "  -b attribute  with -e: an attribute whose values are base64\n"
	    "  --help        print this and exit\n"
	    "  --version     print the version and exit\n", stdout);
	if (fclose(stdout) == EOF) {
		sync_msg(stderr, prog, "cannot write to standard output");
		exit(2);
	}
	exit(0);
}

static void
version(void)
{
	if (sync_version_print(stdout, prog, SYNC_BUILD_VERSION) == -1 ||
	    fclose(stdout) == EOF) {
		sync_msg(stderr, prog, "cannot write to standard output");
		exit(2);
	}
	exit(0);
}

/* The diff mode; returns the exit status. */
static int
diff(const char *conf, const char *fmt, const char *outpath, int nthreads,
    int argc, char *argv[])
{
	struct sync_config *cfg;
	struct sync_changeset *cs;
	struct sync_err err;
	struct sync_out out;
	struct sync_buf sum = { 0 };
	enum sync_csfmt f;
	int rc;

	if (strcmp(fmt, "json") == 0)
		f = SYNC_CS_JSON;
	else if (strcmp(fmt, "text") == 0)
		f = SYNC_CS_TEXT;
	else if (strcmp(fmt, "csv") == 0)
		f = SYNC_CS_CSV;
	else {
		sync_msg(stderr, prog, "unknown format '%s' (json, text or "
		    "csv)", fmt);
		return 2;
	}
	if ((cfg = sync_config_load(conf, &err)) == NULL) {
		sync_msg(stderr, prog, "%s", err.msg);
		return 2;
	}
	cs = sync_diff_run(cfg, (const char *const *)argv, (size_t)argc - 1,
	    argv[argc - 1], nthreads, &err);
	sync_config_free(cfg);
	if (cs == NULL) {
		sync_msg(stderr, prog, "%s", err.msg);
		return 2;
	}
	{
		const struct sync_strv *w = sync_changeset_warnings(cs);
		size_t i;

		for (i = 0; i < w->n; i++)
			sync_msg(stderr, prog, "%s", w->v[i]);
	}
	if (sync_out_open(&out, outpath, &err) == -1) {
		sync_msg(stderr, prog, "%s", err.msg);
		sync_changeset_free(cs);
		return 2;
	}
	if (sync_changeset_write(cs, out.fp, f, &err) == -1 ||
	    sync_out_commit(&out, &err) == -1) {
		sync_msg(stderr, prog, "%s", err.msg);
		sync_out_abort(&out);
		sync_changeset_free(cs);
		return 2;
	}
	sync_changeset_summary(cs, &sum);
	sync_msg(stderr, prog, "%s", sum.p ? sum.p : "out of memory");
	sync_buf_release(&sum);
	rc = sync_changeset_nchanges(cs) > 0;
	if (sync_changeset_errors(cs) > 0) {
		sync_msg(stderr, prog, "%zu objects could not be evaluated (see "
		    "the \"error\" changes)", sync_changeset_errors(cs));
		rc = 2;
	}
	sync_changeset_free(cs);
	return rc;
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
		sync_msg(stderr, prog, "expression: %s", err.msg);
		return 2;
	}
	if (strcmp(path, "-") != 0 && (fp = fopen(path, "r")) == NULL) {
		sync_msg(stderr, prog, "cannot open '%s': %s", path,
		    strerror(errno));
		sync_expr_free(e);
		return 2;
	}
	attrs = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	if (fp != stdin)
		fclose(fp);
	if (attrs == NULL) {
		sync_msg(stderr, prog, "%s:%d:%d: %s", path, jerr.line,
		    jerr.column, jerr.text);
		sync_expr_free(e);
		return 2;
	}
	if (!json_is_object(attrs)) {
		sync_msg(stderr, prog, "%s:1:1: attributes must be a JSON "
		    "object", path);
		rc = 2;
	} else if ((res = sync_expr_eval_json(e, attrs, binary, &err)) ==
	    NULL) {
		sync_msg(stderr, prog, "expression: %s", err.msg);
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
	const char *expr = NULL, *conf = NULL, *fmt = "json", *outpath = "-";
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	char *end;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "b:c:e:f:j:o:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'b':
			if (sync_strv_add(&binary, optarg) == -1) {
				sync_msg(stderr, prog, "out of memory");
				return 2;
			}
			break;
		case 'c':
			conf = optarg;
			break;
		case 'e':
			expr = optarg;
			break;
		case 'f':
			fmt = optarg;
			break;
		case 'j':
			nthreads = strtol(optarg, &end, 10);
			if (*end != '\0' || nthreads < 1 || nthreads > 64) {
				sync_msg(stderr, prog, "-j: expected 1 to 64 "
				    "threads");
				return 2;
			}
			break;
		case 'o':
			outpath = optarg;
			break;
		case OPT_HELP:
			help();
			break;
		case OPT_VERSION:
			version();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (expr == NULL) {
		/* As the other verbs: -c, else SYNC_CONFIG, else the default. */
		if (conf == NULL)
			conf = sync_config_default();
		if (argc < 2)
			usage();
		if (nthreads < 1)
			nthreads = 1;
		rc = diff(conf, fmt, outpath, (int)(nthreads > 8 ? 8 : nthreads),
		    argc, argv);
		sync_strv_release(&binary);
		return rc;
	}
	if (expr == NULL || argc > 1)
		usage();
	rc = eval(expr, &binary, argc ? argv[0] : "-");
	sync_strv_release(&binary);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF) {
		sync_msg(stderr, prog, "cannot write standard output: %s",
		    strerror(errno));
		return 2;
	}
	return rc;
}
