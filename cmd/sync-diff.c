/*
 * sync-diff: compute a change set from snapshots and the sync rules.
 *
 * sync-diff -c CONFIG SOURCE... TARGET computes the change set
 * (sync-changeset(5)) that would bring the target in line with the
 * sources under the config's flows; the work is in lib/diff.c.
 *
 * The expression mode: sync-diff -e EXPR evaluates a sync-rule
 * expression (sync-expr(7)) against objects' attributes, given as JSON
 * objects or as snapshot lines, and prints the values it produces.
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
	exit(sync_stdout_done(prog));
}

static void
version(void)
{
	sync_version_print(stdout, prog, SYNC_BUILD_VERSION);
	exit(sync_stdout_done(prog));
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

/* The line and column of byte off in buf (1-based). */
static void
position(const char *buf, size_t off, int *line, int *col)
{
	size_t k;

	*line = *col = 1;
	for (k = 0; k < off; k++) {
		if (buf[k] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

/*
 * Evaluates expr against each JSON object in path, one result line
 * each: an object of attributes, or a line of a snapshot (its "attrs";
 * a snapshot's header line is skipped), so that a whole snapshot can be
 * piped in.  Returns the exit status.
 */
static int
eval(const char *expr, const struct sync_strv *binary, const char *path)
{
	struct sync_expr *e;
	struct sync_err err;
	struct sync_buf in = { 0 };
	json_error_t jerr;
	json_t *v, *attrs, *res, *out;
	size_t off = 0, nobj = 0;
	int rc = 0, line, col, snap;

	if ((e = sync_expr_parse(expr, &err)) == NULL) {
		sync_msg(stderr, prog, "expression: %s", err.msg);
		return 2;
	}
	if (sync_file_read(path, (size_t)1 << 30, &in, &err) == -1) {
		sync_msg(stderr, prog, "%s", err.msg);
		sync_expr_free(e);
		return 2;
	}
	for (;;) {
		while (off < in.len && (in.p[off] == ' ' || in.p[off] == '\t' ||
		    in.p[off] == '\n' || in.p[off] == '\r'))
			off++;
		if (off == in.len)
			break;
		v = json_loadb(in.p + off, in.len - off, JSON_REJECT_DUPLICATES |
		    JSON_DISABLE_EOF_CHECK, &jerr);
		if (v == NULL) {
			/* jansson counts from where this value began. */
			position(in.p, off, &line, &col);
			if (jerr.line > 1) {
				line += jerr.line - 1;
				col = jerr.column;
			} else
				col += jerr.column - 1;
			sync_msg(stderr, prog, "%s:%d:%d: %s", path, line, col,
			    jerr.text);
			rc = 2;
			break;
		}
		position(in.p, off, &line, &col);
		off += (size_t)jerr.position;
		if (!json_is_object(v)) {
			sync_msg(stderr, prog, "%s:%d:%d: attributes must be a "
			    "JSON object", path, line, col);
			json_decref(v);
			rc = 2;
			break;
		}
		/* A snapshot's header, then its objects: their attrs. */
		if (json_is_string(json_object_get(v, "format"))) {
			json_decref(v);
			continue;
		}
		attrs = json_object_get(v, "attrs");
		snap = json_is_object(attrs) && json_object_get(v, "anchor");
		if (!snap)
			attrs = v;
		nobj++;
		if ((res = sync_expr_eval_json(e, attrs, binary, &err)) == NULL) {
			/* Which object, when there can be several. */
			if (snap || nobj > 1)
				sync_msg(stderr, prog, "%s:%d:%d: expression: %s",
				    path, line, col, err.msg);
			else
				sync_msg(stderr, prog, "expression: %s", err.msg);
			json_decref(v);
			rc = 2;
			break;
		}
		/* Several objects: say whose each result is. */
		out = snap ? json_pack("{s:O, s:O}", "anchor", json_object_get(v,
		    "anchor"), "value", res) : json_incref(res);
		if (out == NULL || json_dumpf(out, stdout, JSON_COMPACT |
		    JSON_ENCODE_ANY | JSON_SORT_KEYS) == -1 ||
		    putchar('\n') == EOF)
			rc = 2;
		json_decref(out);
		json_decref(res);
		json_decref(v);
		if (rc)
			break;
	}
	if (rc == 0 && nobj == 0) {
		sync_msg(stderr, prog, "%s: no object to evaluate the "
		    "expression against", path);
		rc = 2;
	}
	sync_buf_release(&in);
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
