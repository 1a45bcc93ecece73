/*
 * sync-export: apply a change set to its target, on the active server only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sync.h"


#ifndef SYNC_BUILD_VERSION
#define SYNC_BUILD_VERSION SYNC_VERSION
#endif

static const char *prog = "sync-export";

enum { OPT_HELP = 256, OPT_VERSION };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, OPT_HELP },
	{ "metrics", required_argument, NULL, 'M' },
	{ "summary", required_argument, NULL, 'S' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 }
};

struct lease {
	struct sync_role *role;
	uint64_t fence;
};

/*
 * Progress on standard error: on a terminal, one line rewritten in
 * place (\r) and cleared at the end; otherwise a line every
 * LINE_BATCHES batches or LINE_SECONDS seconds, whichever comes first,
 * so that a log shows the run moving without a line per batch.
 */
#define LINE_BATCHES 50
#define LINE_SECONDS 10.0
#define TTY_SECONDS 0.1

struct show {
	int quiet;
	int tty;
	int drawn;              /* a \r line is on the terminal */
	size_t last_batches;    /* at the last line */
	double last;            /* when the last line was printed */
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n with a comma between thousands, as people read counts. */
static const char *
thousands(size_t n, char out[32])
{
	char tmp[32];
	size_t len, i, j = 0;

	len = (size_t)snprintf(tmp, sizeof tmp, "%zu", n);
	for (i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			out[j++] = ',';
		out[j++] = tmp[i];
	}
	out[j] = '\0';
	return out;
}

static void
clear_line(struct show *sh)
{
	if (sh->drawn) {
		fputs("\r\033[K", stderr);
		sh->drawn = 0;
	}
}

static void
progress(void *ctx, const struct sync_export_progress *pr)
{
	struct show *sh = ctx;
	char done[32], total[32];
	double t = mono();

	if (sh->quiet)
		return;
	if (pr->notice) {
		/* A notice gets a line of its own, also on a terminal. */
		clear_line(sh);
		sync_msg(stderr, prog, "%s", pr->notice);
		return;
	}
	if (sh->tty) {
		if (!pr->end && pr->done > 0 && t - sh->last < TTY_SECONDS)
			return;
	} else if (pr->batches == sh->last_batches ||
	    (pr->batches - sh->last_batches < LINE_BATCHES &&
	    t - sh->last < LINE_SECONDS))
		return;
	sh->last = t;
	sh->last_batches = pr->batches;
	if (sh->tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "%s: phase %d/3 %s: %s/%s changes, %lu %s", prog,
	    pr->phase, pr->what, thousands(pr->done, done),
	    thousands(pr->total, total), pr->retries,
	    pr->retries == 1 ? "retry" : "retries");
	if (sh->tty)
		sh->drawn = 1;
	else
		fputc('\n', stderr);
	fflush(stderr);
}

/* The usage lines, the SYNOPSIS of the manual page word for word. */
static void
print_usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-nqv] [-c config] [-D deletes] "
	    "[-j journal] [-M metrics] [-S summary] plan\n"
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
	fputs("Applies a change set to its target directory; see "
	    "sync-export(1).\n"
	    "  -c config     the configuration (default $SYNC_CONFIG or "
	    "/etc/sync/sync.yaml)\n"
	    "  -D deletes    allow a plan over the delete threshold "
	    "(at most deletes)\n"
	    "  -j journal    the journal file (default "
	    "STATE_DIR/journal/SHA256.jsonl)\n"
	    "  -M metrics    write a Prometheus textfile of the run (also "
	    "--metrics)\n"
	    "  -n            dry run: print the writes, send nothing\n"
	    "  -q            quiet: say nothing unless something changed or "
	    "failed\n"
	    "  -S summary    write a JSON summary of the run (also --summary)\n"
	    "  -v            print the summary line even with -q\n"
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
lease_check(void *ctx, struct sync_err *err)
{
	struct lease *l = ctx;
	int rc = sync_lease_check(l->role, l->fence, err);

	return rc == SYNC_LEASE_HELD ? 0 : rc == SYNC_LEASE_LOST ? 1 : -1;
}

/*
 * One line per failed change.  The anchor and the service's message come
 * from the plan and the server: sync_msg escapes their control
 * characters.
 */
static void
print_failures(json_t *failures)
{
	struct sync_buf b = { 0 };
	const char *code, *msg, *rid;
	json_t *f, *e;
	size_t i;

	json_array_foreach(failures, i, f) {
		e = json_object_get(f, "error");
		sync_buf_reset(&b);
		sync_buf_addf(&b, "line %" JSON_INTEGER_FORMAT ": %s %s '%s' "
		    "failed: ", json_integer_value(json_object_get(f,
		    "change")), json_string_value(json_object_get(f, "op")),
		    json_string_value(json_object_get(f, "type")),
		    json_string_value(json_object_get(f, "anchor")));
		if (json_integer_value(json_object_get(e, "status"))) {
			code = json_string_value(json_object_get(e, "code"));
			sync_buf_addf(&b, "%" JSON_INTEGER_FORMAT "%s%s: ",
			    json_integer_value(json_object_get(e, "status")),
			    code && *code ? " " : "", code ? code : "");
		}
		msg = json_string_value(json_object_get(e, "message"));
		sync_buf_adds(&b, msg ? msg : "unknown error");
		rid = json_string_value(json_object_get(e, "request_id"));
		if (rid && *rid)
			sync_buf_addf(&b, " (request-id %s)", rid);
		sync_msg(stderr, prog, "%s", b.p ? b.p : "out of memory");
	}
	sync_buf_release(&b);
}

/* The summary and the metrics files, when asked for; -1 if one failed. */
static int
reports(const char *summary, const char *metrics,
    struct sync_export_report *r, struct sync_err *err)
{
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	r->ended = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (metrics && sync_export_metrics_write(r, metrics, err) == -1) {
		sync_msg(stderr, prog, "%s", err->msg);
		r->exit_status = 2;
		r->error = err->msg;
		rc = -1;
	}
	if (summary && sync_export_summary_write(r, summary, err) == -1) {
		sync_msg(stderr, prog, "%s", err->msg);
		rc = -1;
	}
	return rc;
}

int
main(int argc, char *argv[])
{
	const char *config = sync_config_default();
	const char *summary = NULL, *metrics = NULL;
	struct sync_export_opts o = { .allow_deletes = -1 };
	struct sync_export_stats st = { 0 };
	struct sync_export_report rep = { 0 };
	struct sync_config *cfg = NULL;
	struct sync_buf lockpath = { 0 };
	struct lease lease = { 0 };
	struct show sh = { 0 };
	struct sync_err err, rerr;
	struct timespec ts;
	int ch, quiet = 0, verbose = 0, lockfd = -1, rc = 2;
	char *end;

	clock_gettime(CLOCK_REALTIME, &ts);
	rep.started = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	while ((ch = getopt_long(argc, argv, "c:D:j:M:nqS:v", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'D':
			o.allow_deletes = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' ||
			    o.allow_deletes < 0) {
				sync_msg(stderr, prog, "-D: invalid number of "
				    "deletes '%s'", optarg);
				return 2;
			}
			break;
		case 'j':
			o.journal = optarg;
			break;
		case 'M':
			metrics = optarg;
			break;
		case 'n':
			o.dry_run = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'S':
			summary = optarg;
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
	if (o.dry_run && ((summary && strcmp(summary, "-") == 0) ||
	    (metrics && strcmp(metrics, "-") == 0))) {
		sync_msg(stderr, prog, "-n writes to standard output: give -M "
		    "and -S a file");
		return 2;
	}
	rep.prog = prog;
	rep.version = SYNC_BUILD_VERSION;
	rep.plan = argv[0];
	rep.st = &st;
	rep.dry_run = o.dry_run;

	if ((cfg = sync_config_load(config, &err)) == NULL)
		goto fail;
	if (o.dry_run) {
		/* Prints the writes; needs neither the lease nor the target. */
		o.dry_out = stdout;
		if (sync_export_run(cfg, argv[0], &o, &st, &err) == -1)
			goto fail;
		if (fclose(stdout) == EOF) {
			sync_errno(&err, "cannot write to standard output");
			goto fail;
		}
		rc = 0;
		goto out;
	}

	/* Only the active server writes: the lease first. */
	if (sync_role_open(cfg, &lease.role, &err) == -1 ||
	    sync_role_fence(lease.role, &lease.fence, &err) == -1)
		goto fail;
	switch (sync_lease_check(lease.role, lease.fence, &err)) {
	case SYNC_LEASE_HELD:
		break;
	case SYNC_LEASE_LOST:
		/* Normal on a staging server: -q keeps cron quiet there. */
		if (!quiet || verbose)
			sync_msg(stderr, prog, "not the active server (%s): "
			    "nothing was sent; the plan '%s' is kept for "
			    "review", err.msg, argv[0]);
		rep.staging = 1;
		rc = 1;
		goto out;
	default:
		goto fail;
	}
	o.lease_check = lease_check;
	o.lease_ctx = &lease;

	/* One export at a time on this server. */
	if (sync_state_dir(cfg->state_dir, 1, &err) == -1)
		goto fail;
	sync_buf_addf(&lockpath, "%s/export.lock", cfg->state_dir);
	if (sync_lock_take(lockpath.p, &lockfd, &err) == -1)
		goto fail;

	sh.quiet = quiet;
	sh.tty = isatty(STDERR_FILENO);
	sh.last = mono();
	o.progress = progress;
	o.progress_ctx = &sh;
	if (sync_export_run(cfg, argv[0], &o, &st, &err) == -1) {
		clear_line(&sh);
		print_failures(st.failures);
		goto fail;
	}
	clear_line(&sh);
	print_failures(st.failures);
	/* Quiet: a line only when something was done or is left to do. */
	if (!quiet || verbose || st.applied || st.failed || st.notapplied)
		sync_msg(stderr, prog, "%zu applied, %zu already in place, %zu "
		    "failed, %zu not applied (conflicts and errors)%s",
		    st.applied, st.skipped, st.failed, st.notapplied,
		    st.resumed ? " (resumed)" : "");
	rc = st.failed || st.notapplied ? 1 : 0;
	goto out;
fail:
	sync_msg(stderr, prog, "%s", err.msg);
	rep.error = err.msg;
	rc = 2;
out:
	rep.exit_status = rc;
	if ((summary || metrics) && reports(summary, metrics, &rep,
	    &rerr) == -1)
		rc = 2;
	json_decref(st.failures);
	sync_lock_release(lockfd);
	sync_buf_release(&lockpath);
	sync_role_free(lease.role);
	sync_config_free(cfg);
	return rc;
}
