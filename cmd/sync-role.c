/*
 * sync-role: show and switch this server's role, staging or active.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync.h"


#ifndef SYNC_BUILD_VERSION
#define SYNC_BUILD_VERSION SYNC_VERSION
#endif

static const char *prog = "sync-role";

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
	fprintf(fp, "usage: %s [-c config]\n"
	    "       %s [-c config] check [-v]\n"
	    "       %s [-c config] promote [-f]\n"
	    "       %s [-c config] demote\n"
	    "       %s --help | --version\n", prog, prog, prog, prog, prog);
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
	fputs("Shows and changes this server's role, active or staging; see "
	    "sync-role(1).\n"
	    "  -c config     the configuration (default $SYNC_CONFIG or "
	    "/etc/sync/sync.yaml)\n"
	    "  (none)        print this server's role and the lease\n"
	    "  check [-v]    exit 0 when this server is the active one (-v: "
	    "say why)\n"
	    "  promote [-f]  make this server the active one (-f: force)\n"
	    "  demote        make this server staging, releasing the lease\n"
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

static const char *
timestr(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%" PRId64, t);
	return buf;
}

/* "b, fence 4, expires 2026-...Z (in 12 s)" and the like. */
static void
print_lease(FILE *fp, const struct sync_role_status *st)
{
	char tb[32];

	if (st->holder[0] == '\0') {
		fprintf(fp, "%s, fence %" PRIu64, st->fence ? "released" :
		    "free", st->fence);
		return;
	}
	/* The holder is read from the lease store: no escapes from there. */
	sync_fputs_esc(st->holder, fp);
	fprintf(fp, ", fence %" PRIu64 ", ", st->fence);
	if (st->now < st->expires)
		fprintf(fp, "expires %s (in %" PRId64 " s)",
		    timestr(st->expires, tb), st->expires - st->now);
	else
		fprintf(fp, "expired %s (%" PRId64 " s ago)",
		    timestr(st->expires, tb), st->now - st->expires);
}

static int
show(struct sync_role *role, struct sync_err *err)
{
	struct sync_role_status st;

	if (sync_role_status(role, &st, err) == -1)
		return 2;
	printf("server: %s\nrole: %s\nlocal: %s, fence %" PRIu64 "\n"
	    "lease: ", st.server, st.active ? "active" : "staging",
	    st.local_active ? "active" : "staging", st.local_fence);
	print_lease(stdout, &st);
	printf("\n");
	if (st.dc[0] != '\0') {
		/* Read from the directory: no escapes from there either. */
		printf("dc: ");
		sync_fputs_esc(st.dc, stdout);
		printf(", the PDC emulator\n");
	}
	if (fflush(stdout) == EOF || ferror(stdout)) {
		sync_errno(err, "cannot write to standard output");
		return 2;
	}
	return st.active ? 0 : 1;
}

static int
check(struct sync_role *role, int verbose, struct sync_err *err)
{
	uint64_t fence;
	int rc;

	if (sync_role_fence(role, &fence, err) == -1)
		return 2;
	rc = sync_lease_check(role, fence, err);
	if (rc == -1)
		return 2;
	if (verbose && rc == SYNC_LEASE_HELD)
		sync_msg(stderr, prog, "active, fence %" PRIu64, fence);
	else if (verbose)
		sync_msg(stderr, prog, "not active: %s", err->msg);
	return rc == SYNC_LEASE_HELD ? 0 : 1;
}

static int
promote(struct sync_role *role, int force, struct sync_err *err)
{
	struct sync_role_status st;
	char tb[32];
	int rc;

	if ((rc = sync_role_promote(role, force, &st, err)) == -1)
		return 2;
	if (rc == SYNC_LEASE_LOST) {
		sync_msg(stderr, prog, "%s is staging: %s", st.server,
		    err->msg);
		return 1;
	}
	if (st.forced)
		sync_msg(stderr, prog, "took the unexpired lease from '%s'; it "
		    "stops before its next export batch",
		    st.taken_from);
	sync_msg(stderr, prog, "%s is active, fence %" PRIu64 ", until %s",
	    st.server, st.fence, timestr(st.expires, tb));
	return 0;
}

static int
demote(struct sync_role *role, struct sync_err *err)
{
	struct sync_role_status st;

	if (sync_role_demote(role, &st, err) == -1)
		return 2;
	fprintf(stderr, "%s: %s is staging; lease ", prog, st.server);
	print_lease(stderr, &st);
	fprintf(stderr, "\n");
	return 0;
}

int
main(int argc, char *argv[])
{
	const char *config = sync_config_default();
	struct sync_err err;
	struct sync_config *cfg = NULL;
	struct sync_role *role = NULL;
	int ch, verbose = 0, force = 0, rc;

	/* "+": options end at the command, whose own options follow it. */
	while ((ch = getopt_long(argc, argv, "+c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
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
	if (argc > 0) {
		const char *opts = strcmp(argv[0], "check") == 0 ? "+v" :
		    strcmp(argv[0], "promote") == 0 ? "+f" :
		    strcmp(argv[0], "demote") == 0 ? "+" : NULL;

		if (opts == NULL)
			usage();
		optind = 1;
		opterr = 0;     /* usage says it all */
		while ((ch = getopt(argc, argv, opts)) != -1) {
			switch (ch) {
			case 'f':
				force = 1;
				break;
			case 'v':
				verbose = 1;
				break;
			default:
				usage();
			}
		}
		if (optind != argc)
			usage();
	}

	if ((cfg = sync_config_load(config, &err)) == NULL ||
	    sync_role_open(cfg, &role, &err) == -1) {
		rc = 2;
	} else if (argc == 0) {
		rc = show(role, &err);
	} else if (strcmp(argv[0], "check") == 0) {
		rc = check(role, verbose, &err);
	} else if (strcmp(argv[0], "promote") == 0) {
		rc = promote(role, force, &err);
	} else {
		rc = demote(role, &err);
	}
	if (rc == 2)
		sync_msg(stderr, prog, "%s", err.msg);
	sync_role_free(role);
	sync_config_free(cfg);
	if (fclose(stdout) == EOF && rc != 2) {
		sync_msg(stderr, prog, "cannot write to standard output");
		rc = 2;
	}
	return rc;
}
