/*
 * sync-export: apply a change set to its target, on the active server only.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
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
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 }
};

struct lease {
	struct sync_role *role;
	uint64_t fence;
};

/* The usage lines, the SYNOPSIS of the manual page word for word. */
static void
print_usage(FILE *fp)
{
	fprintf(fp, "usage: %s [-nqv] [-c config] [-D deletes] "
	    "[-j journal] plan\n"
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
	    "  -n            dry run: print the writes, send nothing\n"
	    "  -q            quiet: say nothing unless something changed or "
	    "failed\n"
	    "  -v            print the summary line even with -q\n"
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

int
main(int argc, char *argv[])
{
	const char *config = sync_config_default();
	struct sync_export_opts o = { .allow_deletes = -1 };
	struct sync_export_stats st = { 0 };
	struct sync_config *cfg = NULL;
	struct sync_buf lockpath = { 0 };
	struct lease lease = { 0 };
	struct sync_err err;
	int ch, quiet = 0, verbose = 0, lockfd = -1, rc = 2;
	char *end;

	while ((ch = getopt_long(argc, argv, "c:D:j:nqv", longopts,
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
		case 'n':
			o.dry_run = 1;
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
		sync_msg(stderr, prog, "not the active server (%s): nothing was "
		    "sent; the plan '%s' is kept for review", err.msg,
		    argv[0]);
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

	if (sync_export_run(cfg, argv[0], &o, &st, &err) == -1) {
		print_failures(st.failures);
		goto fail;
	}
	print_failures(st.failures);
	if (!quiet || verbose)
		sync_msg(stderr, prog, "%zu applied, %zu already in place, %zu "
		    "failed, %zu not applied (conflicts and errors)%s",
		    st.applied, st.skipped, st.failed, st.notapplied,
		    st.resumed ? " (resumed)" : "");
	rc = st.failed || st.notapplied ? 1 : 0;
	goto out;
fail:
	sync_msg(stderr, prog, "%s", err.msg);
	rc = 2;
out:
	json_decref(st.failures);
	sync_lock_release(lockfd);
	sync_buf_release(&lockpath);
	sync_role_free(lease.role);
	sync_config_free(cfg);
	return rc;
}
