/*
 * export.h: private interface between the export driver (lib/export.c)
 * and the target writers (lib/graph-export.c, lib/scim-export.c).
 */
#ifndef SYNC_EXPORT_H
#define SYNC_EXPORT_H

#include <jansson.h>

#include "sync.h"

/* One change of the plan, as the writers see it. */
struct xchange {
	size_t idx;             /* line number - 2: index in the plan */
	json_t *c;              /* the change (borrowed from the plan) */
	const char *op, *type, *anchor, *id, *flow;
	const char *anchorattr; /* the flow's anchor attribute on the target */
	int done;               /* applied or skipped by an earlier run */
};

struct xplan {
	struct sync_config *cfg;
	struct sync_connector *target;
	const struct sync_export_opts *o;
	struct sync_journal *journal;
	struct xchange *ch;
	size_t n;
	struct sync_export_stats *st;
	pthread_mutex_t mu;     /* journal, stats, lease checks */
	pthread_mutex_t pmu;    /* progress calls, one at a time */
};

/* Records change x's outcome in the journal and the stats (locked). */
int xplan_record(struct xplan *p, struct xchange *x, const char *outcome,
    const char *id, json_t *error, struct sync_err *err);
/* Flushes the journal to the disk (locked). */
int xplan_sync(struct xplan *p, struct sync_err *err);
/* Checks the lease before a batch: 0 held, 1 lost, -1 error (locked). */
int xplan_lease(struct xplan *p, struct sync_err *err);
/* Hands pr to the caller's progress callback, if any (one at a time). */
void xplan_progress(struct xplan *p, const struct sync_export_progress *pr);
/*
 * Counts one change of the plan that no longer fits the target, and adds
 * it to why as one indented line "line N: op type 'anchor': stalewhy"
 * (the first five only; the anchor and the reason escaped, so that
 * neither can hold a newline nor add a line, see sync_msg).
 */
void xplan_stale(const struct xchange *x, const char *stalewhy,
    size_t *nstale, struct sync_buf *why);
/*
 * The refusal after phase 0 when nstale changes no longer fit (why: the
 * lines of xplan_stale): fills err and returns -1.
 */
int xplan_stale_refuse(struct xplan *p, size_t nstale,
    const struct sync_buf *why, struct sync_err *err);

/*
 * What phase (0 to 3) of the Graph and SCIM writers does, for progress:
 * reads, users, groups, members.
 */
const char *xplan_phase_what(int phase);
/*
 * Records the outcome of change x once: "failed" with error when failed,
 * else "skipped" when skipped, else "applied"; *recorded is set, and a
 * change already recorded, reported only (a conflict, an error) or done
 * by an earlier run is left alone.
 */
int xplan_outcome(struct xplan *p, struct xchange *x, int *recorded,
    int reported, int failed, int skipped, const char *tid, json_t *error,
    struct sync_err *err);
/*
 * 1 when x is an add, an update or a delete: a conflict or an error is
 * reported, never applied.
 */
int xplan_is_write(const struct xchange *x);
/*
 * The target id of x as a writer starts (a new string, or NULL): the
 * journal's for a change an earlier run did (then also noted in anchors
 * under x's anchor, for the members that name it), else the plan's.
 */
char *xplan_start_id(struct xplan *p, const struct xchange *x,
    json_t *anchors);
/*
 * Runs fn(arg, conn) on nth threads (at most 64), conn 0 to nth - 1, and
 * waits for them all; when none can be started (or nth is 0), runs
 * fn(arg, 0) once in the calling thread, so that the phase still ends.
 */
void xplan_workers(int nth, void (*fn)(void *arg, int conn), void *arg);

/*
 * Reading entries back, for the LDAP writer (ldap-read.c).
 * sync_ldap_entry_json: the search result entry msg (an LDAPMessage) as
 * a new object, lower-case attribute name (without ";range=" and
 * ";binary") -> array of values, in base64 for the attributes binary
 * names and for values that are not UTF-8; a ranged attribute with all
 * its values (sync_ldap_range_fetch).  NULL with err set.
 * sync_ldap_window: name, or in buf "member;range=0-N" when the
 * connector has a range step (so that a server that cuts long lists
 * only when asked, as Samba, cuts them), for the attributes to ask for.
 */
struct sync_ldap;
struct ldapmsg;
json_t *sync_ldap_entry_json(struct sync_ldap *l, struct ldapmsg *msg,
    json_t *binary, struct sync_err *err);
const char *sync_ldap_window(struct sync_ldap *l, const char *name,
    char *buf, size_t len);
/*
 * One entry for sync_ldap_read_many to read: the caller sets dn, attrs
 * and binary (borrowed) and zeroes the rest; done once read: entry (new,
 * as sync_ldap_entry_json; NULL when there is no such entry), or the
 * server's refusal in rc (an LDAP code), diag and matched (new strings,
 * or NULL).  sync_ldap_read_release frees what a read set.
 */
struct sync_ldap_read {
	const char *dn;
	char **attrs;
	json_t *binary;
	int done;
	json_t *entry;
	int rc;
	char *diag, *matched;
	int inflight, msgid;    /* (sync_ldap_read_many's) */
};
void sync_ldap_read_release(struct sync_ldap_read *r);
/*
 * Reads the entries of r[0..n) not yet done, up to window searches
 * outstanding on l: 0 when all are done, 1 when the connection was lost
 * (reconnect, and call again for the rest), -1 with err set.
 */
int sync_ldap_read_many(struct sync_ldap *l, struct sync_ldap_read *r,
    size_t n, size_t window, struct sync_err *err);

/*
 * The settle time of a create whose answer was lost (create_settle in
 * sync.conf(5)), for the Graph and SCIM writers.  Sending it again at
 * once could create the object twice; so could believing a look-up by
 * anchor that finds nothing, since a new object can be missing from the
 * service's lists for a while (eventual consistency).  So a look-up that
 * finds nothing is made again, at most XSETTLE_STEP seconds apart, until
 * the settle time has passed; only then is the create sent again (or a
 * conflict it met taken for what it says).
 */
#define XSETTLE_STEP 1.0        /* seconds between look-ups, at most */
/* When a settle time of seconds that starts now ends (sync_mono_now). */
double xsettle_start(long seconds);
/*
 * After a look-up that found nothing, in the settle time that ends at
 * until: 1 with *wait the seconds to wait before the next look-up, or 0
 * (*wait 0) when the time has passed and the create was not applied.
 */
int xsettle_wait(double until, double *wait);

int sync_graph_export(struct xplan *p, struct sync_err *err);
int sync_ldap_export(struct xplan *p, struct sync_err *err);
int sync_scim_export(struct xplan *p, struct sync_err *err);

#endif
