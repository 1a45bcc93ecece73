/*
 * sync-import: read a directory into a snapshot.
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sync.h"


#ifndef SYNC_BUILD_VERSION
#define SYNC_BUILD_VERSION SYNC_VERSION
#endif

static const char *prog = "sync-import";

enum { OPT_HELP = 256, OPT_VERSION };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 }
};

struct run {
	struct sync_snapw *w;
	const char *name;
	int progress;
	size_t n;
};

/* The usage lines, the SYNOPSIS of the manual page word for word. */
static void
print_usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-qv] [-c config] [-d previous] "
	    "[-m megabytes] [-o file] connector\n"
	    "       %s --help | --version\n", prog, prog);
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
	fputs("Reads the directory of a connector into a snapshot; see "
	    "sync-import(1).\n"
	    "  -c config     the configuration (default $SYNC_CONFIG or "
	    "/etc/sync/sync.yaml)\n"
	    "  -d previous   a delta import from the snapshot previous\n"
	    "  -m megabytes  memory for sorting the snapshot (default 256)\n"
	    "  -o file       write the snapshot to file, atomically, not "
	    "to stdout\n"
	    "  -q            quiet: errors only\n"
	    "  -v            progress even when standard error is not a "
	    "terminal\n"
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

static int
add(void *ctx, struct sync_obj *o, struct sync_err *err)
{
	struct run *r = ctx;

	if (sync_snapw_add(r->w, o, err) == -1)
		return -1;
	if (r->progress && ++r->n % 1000 == 0)
		fprintf(stderr, "%s: %s: %zu objects\r", prog, r->name, r->n);
	return 0;
}

/*
 * The library's notices of a service that keeps failing (it waits, then
 * retries): said on a line of its own, so that a long wait is not
 * silence.
 */
static void
notify(void *ctx, const char *msg)
{
	/* On a terminal it overwrites the progress line, longer than it. */
	sync_msg(stderr, prog, "%s", msg);
}

/*
 * When the connector is a target of flows, the attributes they write
 * are read too, whatever its attribute lists say.
 */
static int
add_flow_attrs(struct sync_config *cfg, struct sync_connector *c,
    struct sync_err *err)
{
	struct sync_strv extra[SYNC_NOBJTYPES] = { { 0 } };
	struct sync_strv *attrs;
	size_t i;
	int t, rc = 0;

	if (sync_flow_target_attrs(cfg, c->name, extra, err) == -1)
		return -1;
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		attrs = sync_connector_attrs(c, t);
		for (i = 0; attrs && i < extra[t].n && rc == 0; i++)
			if (!sync_strv_casecontains(attrs, "*") &&
			    !sync_strv_casecontains(attrs, extra[t].v[i]))
				rc = sync_strv_add(attrs, extra[t].v[i]);
		sync_strv_release(&extra[t]);
	}
	if (rc == -1)
		return sync_errf(err, "out of memory");
	return 0;
}

int
main(int argc, char *argv[])
{
	const char *config = sync_config_default(), *output = "-";
	const char *prev = NULL;
	struct sync_import_res res = { 0 };
	struct sync_err err;
	struct sync_config *cfg;
	struct sync_connector *c;
	struct sync_snaphdr hdr = { 0 };
	struct sync_out out;
	struct sync_buf lockpath = { 0 };
	struct run r = { 0 };
	long mem = 256;
	int ch, quiet = 0, verbose = 0, lockfd = -1, t;
	char *end;

	while ((ch = getopt_long(argc, argv, "c:d:m:o:qv", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'd':
			prev = optarg;
			break;
		case 'm':
			mem = strtol(optarg, &end, 10);
			if (*end != '\0' || mem < 1 || mem > 1 << 20) {
				sync_msg(stderr, prog, "-m: invalid size '%s' "
				    "(megabytes)", optarg);
				return 2;
			}
			break;
		case 'o':
			output = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			verbose = 1;
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
	if (argc != 1)
		usage();

	if ((cfg = sync_config_load(config, &err)) == NULL)
		goto fail;
	if ((c = sync_config_connector(cfg, argv[0], &err)) == NULL)
		goto fail;
	if (add_flow_attrs(cfg, c, &err) == -1)
		goto fail;
	if (sync_state_dir(cfg->state_dir, 1, &err) == -1)
		goto fail;
	sync_buf_addf(&lockpath, "%s/import.%s.lock", cfg->state_dir, c->name);
	if (sync_lock_take(lockpath.p, &lockfd, &err) == -1)
		goto fail;

	hdr.connector = c->name;
	hdr.conntype = c->typename;
	hdr.kind = "full";
	hdr.source = sync_connector_url(c);
	if ((r.w = sync_snapw_new(&hdr, (size_t)mem << 20, &err)) == NULL)
		goto fail;
	r.name = c->name;
	r.progress = !quiet && (verbose || isatty(STDERR_FILENO));
	if (!quiet) {
		c->notify = notify;
		c->notify_ctx = NULL;
	}
	if (sync_import(c, prev, add, &r, &res, &err) == -1)
		goto fail;
	if (r.progress)
		fprintf(stderr, "\n");
	hdr.cookie = res.cookie;
	/* a delta's unchanged objects, copied as they are into the output */
	if (res.kept != NULL) {
		struct sync_lines *kept = res.kept;

		res.kept = NULL;
		if (sync_snapw_lines(r.w, kept, &err) == -1)
			goto fail;
	}
	if (res.why[0] && !quiet)
		sync_msg(stderr, prog, "%s: a full import: %s", c->name,
		    res.why);

	/* Nothing is written until the whole directory has been read. */
	if (sync_out_open(&out, output, &err) == -1)
		goto fail;
	if (sync_snapw_write(r.w, out.fp, &err) == -1 ||
	    sync_out_commit(&out, &err) == -1) {
		sync_out_abort(&out);
		goto fail;
	}
	if (strcmp(output, "-") == 0 && fclose(stdout) == EOF) {
		sync_errno(&err, "cannot write to standard output");
		goto fail;
	}
	if (!quiet) {
		fprintf(stderr, "%s: %s:", prog, c->name);
		for (t = 0; t < SYNC_NOBJTYPES; t++)
			fprintf(stderr, "%s %zu %s%s", t ? "," : "",
			    sync_snapw_count(r.w, t), sync_objtype_name(t),
			    sync_snapw_count(r.w, t) == 1 ? "" : "s");
		if (res.delta)
			fprintf(stderr, " (delta: %zu changed)", res.changed);
		fprintf(stderr, "\n");
	}
	sync_snapw_free(r.w);
	sync_import_res_release(&res);
	sync_lock_release(lockfd);
	sync_buf_release(&lockpath);
	sync_config_free(cfg);
	return 0;
fail:
	if (r.progress && r.n >= 1000)
		fprintf(stderr, "\n");
	sync_msg(stderr, prog, "%s", err.msg);
	sync_snapw_free(r.w);
	sync_import_res_release(&res);
	sync_lock_release(lockfd);
	sync_buf_release(&lockpath);
	sync_config_free(cfg);
	return 2;
}
