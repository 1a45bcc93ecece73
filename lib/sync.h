/*
 * sync.h: the public interface of libsync, shared by sync-import,
 * sync-diff, sync-export and sync-role.
 *
 * Rules that hold for every function declared here:
 * - the library never prints and never exits; a function that can fail
 *   takes a struct sync_err * last and returns -1 or NULL after filling it;
 * - every function that returns memory says who owns it;
 * - there is no global state: what a call needs comes in its arguments.
 */
#ifndef SYNC_H
#define SYNC_H

#include <sys/types.h>

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define SYNC_VERSION "0.1.0"

/*
 * --version: "PROG VERSION" (version: the build's, see the Makefile),
 * then a line with the versions of libsync and of the libraries the
 * binary runs with.  Returns -1 when fp has a write error.
 */
int sync_version_print(FILE *fp, const char *prog, const char *version);

/*
 * The end of --help and --version: closes standard output and returns
 * the exit status, 0, or 2 after saying on stderr (as prog) that it
 * could not be written (a full disk, a closed pipe).
 */
int sync_stdout_done(const char *prog);

/* ---------------------------------------------------------------- errors */

#define SYNC_ERRMAX 2048

/*
 * An error: a message that names what failed first and the subject, e.g.
 * "cannot open 'x.yaml': No such file or directory", or with a position,
 * "sync.yaml:3:7: unknown key 'urll'".  The binaries prefix their name.
 */
struct sync_err {
	char msg[SYNC_ERRMAX];
};

/* Sets err (if not NULL) from a printf format; always returns -1. */
int sync_errf(struct sync_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like sync_errf, then appends ": " and strerror(errno). */
int sync_errno(struct sync_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the message already in err with a printf format and ": ". */
int sync_errpre(struct sync_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------- small utilities */

/*
 * A growable byte buffer, always NUL-terminated when p is not NULL.
 * The buffer owns p; sync_buf_release frees it and zeroes the struct.
 */
struct sync_buf {
	char *p;
	size_t len, cap;
};

int sync_buf_grow(struct sync_buf *b, size_t extra);
int sync_buf_add(struct sync_buf *b, const void *data, size_t n);
int sync_buf_adds(struct sync_buf *b, const char *s);
int sync_buf_addc(struct sync_buf *b, int c);
int sync_buf_addf(struct sync_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sync_buf_reset(struct sync_buf *b);
void sync_buf_release(struct sync_buf *b);
/* Hands p to the caller (who frees it) and zeroes b. */
char *sync_buf_detach(struct sync_buf *b);

/*
 * A vector of NUL-terminated strings, owned by the vector.
 * v[n] is always NULL when v is not NULL, so v passes as a char **.
 */
struct sync_strv {
	char **v;
	size_t n, cap;
};

int sync_strv_add(struct sync_strv *sv, const char *s);      /* copies s */
int sync_strv_addn(struct sync_strv *sv, const char *s, size_t len);
int sync_strv_take(struct sync_strv *sv, char *s);           /* owns s */
int sync_strv_contains(const struct sync_strv *sv, const char *s);
int sync_strv_casecontains(const struct sync_strv *sv, const char *s);
void sync_strv_sort(struct sync_strv *sv);
void sync_strv_release(struct sync_strv *sv);

/* strdup that returns NULL on failure; the caller frees. */
char *sync_strdup(const char *s);
char *sync_strndup(const char *s, size_t n);

/* 1 when s[0..len) is valid UTF-8 without NUL bytes, else 0. */
int sync_utf8_valid(const char *s, size_t len);
/*
 * Text from a directory, a snapshot, a plan or a server can hold
 * control characters; on a terminal, ESC and CSI sequences move the
 * cursor, recolour or retitle it, and a newline forges a line of output.
 * sync_buf_addesc appends s[0..len) to b with those made visible: \n,
 * \r and \t as such, other C0 bytes and DEL as \xHH, the C1 controls
 * U+0080 to U+009F as \u00HH, and each byte that is not UTF-8 as \xHH.
 * Other UTF-8 passes unchanged, and so do backslashes.  Returns -1 when
 * out of memory.
 */
int sync_buf_addesc(struct sync_buf *b, const char *s, size_t len);
/* fputs of s escaped as sync_buf_addesc does; -1 on failure. */
int sync_fputs_esc(const char *s, FILE *fp);
/*
 * The binaries' messages: writes "prog: MESSAGE\n" to fp, where MESSAGE
 * is the printf format and its arguments, escaped as sync_buf_addesc
 * does.  A newline followed by two spaces is kept: it starts one of the
 * indented lines that some messages list details on (whose text from
 * outside the library escapes with sync_buf_addesc when it builds them);
 * every other newline is shown as \n.  Returns -1 on a write error.
 */
int sync_msg(FILE *fp, const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Standard base64 (RFC 4648 section 4, with padding) of len bytes.
 * Returns a new string the caller frees, NULL when out of memory.
 */
char *sync_base64_encode(const void *data, size_t len);
/*
 * Decodes standard base64; *out is a new buffer of *outlen bytes (plus a
 * NUL) the caller frees.  Returns -1 on invalid input.
 */
int sync_base64_decode(const char *s, size_t len, unsigned char **out,
    size_t *outlen, struct sync_err *err);
/*
 * Decodes the len bytes of standard base64 at s into out, which has room
 * for len / 4 * 3 + 1 bytes and may be s itself, and ends it with a NUL.
 * Canonical form only: padding to a multiple of 4, and the bits the
 * padding drops are zero.  Returns the decoded length, or -1 with *bad
 * the offset of the first character in error (len when the length is
 * wrong).
 */
long sync_base64_decode_into(const char *s, size_t len, unsigned char *out,
    size_t *bad);
/* 16 raw objectGUID bytes -> "33221100-5544-7766-8899-aabbccddeeff" (37 bytes). */
void sync_guid_string(const unsigned char raw[16], char out[37]);
/* Parses a GUID string (with or without braces) back into raw bytes. */
int sync_guid_parse(const char *s, unsigned char raw[16]);
/* A binary objectSid -> "S-1-5-21-..."; a new string, or NULL if malformed. */
char *sync_sid_string(const unsigned char *raw, size_t len);

/* The current UTC time (or SOURCE_DATE_EPOCH when set) as RFC 3339. */
void sync_time_now(char out[32]);

/* Seconds on the monotonic clock, for deadlines and back-offs. */
double sync_mono_now(void);

/* Sleeps s seconds (nothing when s <= 0), resuming after a signal. */
void sync_sleep_for(double s);

/* --------------------------------------------------------- atomic output */

/*
 * An output file written atomically: a temporary file beside the target,
 * fsync, rename over the target, fsync of the directory.  The path "-"
 * means standard output, which is flushed and checked on commit.
 * On abort (or a failed commit) the temporary file is removed, so a
 * failed run never leaves a half-written output behind.
 *
 * A new file gets mode 0600 less the umask; a file replaced keeps its
 * mode (and, for root, its owner).  A character device or a FIFO
 * (/dev/null, /dev/stdout, a named pipe), reached through links or not,
 * is written into, not replaced, and cannot be taken back on abort.
 * Any other kind of file, and a symbolic link to anything else, is
 * refused.
 */
struct sync_out {
	FILE *fp;
	char *path;     /* target path, NULL for stdout */
	char *tmppath;  /* temporary file, NULL for stdout or direct */
	int direct;     /* writing into a device or FIFO at path */
};

int sync_out_open(struct sync_out *o, const char *path, struct sync_err *err);
/* The same, a new file getting mode (less the umask) rather than 0600. */
int sync_out_open_mode(struct sync_out *o, const char *path, mode_t mode,
    struct sync_err *err);
int sync_out_commit(struct sync_out *o, struct sync_err *err);
void sync_out_abort(struct sync_out *o);

/* ------------------------------------------------------- files of state */

/*
 * Opens path (flags as open(2), mode for O_CREAT) without following a
 * symbolic link, close-on-exec; only a regular file is accepted.  what
 * names the file in errors ("journal", "lock file").  Returns the
 * descriptor, the caller's to close, or -1 with err set.
 */
int sync_open_nofollow(const char *path, int flags, mode_t mode,
    const char *what, struct sync_err *err);

/*
 * Checks a state directory (state_dir in sync.conf(5), or one inside
 * it): a directory owned by this user or root, not writable by group or
 * others.  With create, it and its missing parents are made first (mode
 * 0700); without, a directory that does not exist is fine.
 */
int sync_state_dir(const char *dir, int create, struct sync_err *err);

/* ------------------------------------------------------------------ locks */

/*
 * An exclusive, non-blocking lock on a file (created if needed), held
 * until sync_lock_release.  A second holder gets an error naming the file.
 */
int sync_lock_take(const char *path, int *fd, struct sync_err *err);
void sync_lock_release(int fd);

/*
 * Appends the whole of a file (or "-", standard input) to b, failing past
 * max bytes.  On failure b is released.
 */
int sync_file_read(const char *path, size_t max, struct sync_buf *b,
    struct sync_err *err);

/*
 * Makes dir and its missing parents, mode 0700 (state directories hold
 * locks, journals and leases: nobody else's business).
 */
int sync_mkdirs(const char *dir, struct sync_err *err);

/* ---------------------------------------------------------------- secrets */

/*
 * Reads a secret from a file that only its owner may read (mode 0600 or
 * 0400, no group or other bits); a trailing newline is dropped.  The
 * result is a new string the caller wipes and frees (sync_secret_free).
 */
char *sync_secret_read(const char *path, struct sync_err *err);
void sync_secret_free(char *s);

#include "sync-config.h"
#include "sync-expr.h"

/* ------------------------------------------------------------------- JSON */

/*
 * Appends s[0..len) to b as a JSON string literal in the form jansson's
 * compact encoder writes it (UTF-8 kept, control characters escaped).
 * The input must be valid UTF-8.
 */
int sync_json_addstr(struct sync_buf *b, const char *s, size_t len);

/* -------------------------------------------------------------- snapshots */

#define SYNC_SNAPSHOT_FORMAT "sync-snapshot"
#define SYNC_SNAPSHOT_VERSION 1

/* A value: bytes that the owner frees. */
struct sync_bv {
	char *p;
	size_t len;
};

struct sync_objattr {
	char *name;
	int binary;             /* carried as base64 in the snapshot */
	struct sync_bv *v;
	size_t n, cap;
};

/*
 * One directory object as a connector read it.  The object owns all its
 * strings; sync_obj_release frees them and zeroes it for reuse.
 */
struct sync_obj {
	enum sync_objtype type;
	char *anchor;           /* stable id the diff joins on */
	char *id;               /* the connector's native id */
	char *dn;               /* LDAP DN, NULL elsewhere */
	struct sync_objattr *a;
	size_t n, cap;
};

/* Adds a value to attribute name (created on first use); copies p. */
int sync_obj_addval(struct sync_obj *o, const char *name, const void *p,
    size_t len, int binary);
/* The attribute called name (case-insensitive), or NULL. */
struct sync_objattr *sync_obj_attr(struct sync_obj *o, const char *name);
void sync_obj_release(struct sync_obj *o);
/*
 * Serialises o as one snapshot line (no newline) into b, attributes and
 * values sorted so that the same object always gives the same bytes.
 */
int sync_obj_json(struct sync_obj *o, struct sync_buf *b, struct sync_err *err);

/*
 * The snapshot writer: objects are added in any order; sync_snapw_write
 * sorts them by anchor (spilling sorted runs to temporary files past
 * memlimit bytes), refuses duplicate anchors, and writes the header and
 * the lines.  The header fields are borrowed until sync_snapw_free.
 */
struct sync_snaphdr {
	const char *connector;  /* name in the config */
	const char *conntype;   /* "ldap", "ad", "graph" */
	const char *kind;       /* "full" or "delta" */
	const char *cookie;     /* delta cookie, NULL for none */
	const char *source;     /* URL of the directory */
};

struct sync_snapw;

struct sync_snapw *sync_snapw_new(const struct sync_snaphdr *hdr,
    size_t memlimit, struct sync_err *err);
int sync_snapw_add(struct sync_snapw *w, struct sync_obj *o,
    struct sync_err *err);
/* Objects added so far, per type. */
size_t sync_snapw_count(const struct sync_snapw *w, enum sync_objtype t);
int sync_snapw_write(struct sync_snapw *w, FILE *fp, struct sync_err *err);
void sync_snapw_free(struct sync_snapw *w);

/*
 * Lines already in snapshot form and in anchor order: the objects of the
 * previous snapshot that a delta import left unchanged, pieces of its
 * file.  Parsing and serialising them again would cost what a full
 * import costs, so the writer copies them as they are, merged with the
 * objects added.  seek gives where a line of anchor goes (*pos, for
 * copy) and the kept line of that anchor (*line, *len, with its
 * newline, borrowed until release) or NULL; copy writes to fp the kept
 * lines from where the last copy ended up to pos (SIZE_MAX: all the
 * rest); both return 0, or -1 with err set.  rewind starts again from
 * the first; release frees ctx.  counts are the lines per type.
 */
struct sync_lines {
	int (*seek)(void *ctx, const char *anchor, size_t *pos,
	    const char **line, size_t *len, struct sync_err *err);
	int (*copy)(void *ctx, FILE *fp, size_t pos, struct sync_err *err);
	void (*rewind)(void *ctx);
	void (*release)(void *ctx);
	void *ctx;
	size_t counts[SYNC_NOBJTYPES];
};

/*
 * Makes l part of what sync_snapw_write writes; the writer owns l from
 * then on (released by sync_snapw_free), even when this fails.  One
 * source per writer.
 */
int sync_snapw_lines(struct sync_snapw *w, struct sync_lines *l,
    struct sync_err *err);
/* Releases l (NULL is allowed). */
void sync_lines_free(struct sync_lines *l);

/* ------------------------------------------------------------- connectors */

/*
 * Called for each object a connector reads.  The object is borrowed: the
 * callback copies what it keeps.  Returning -1 (with err set) stops the
 * import.
 */
typedef int (*sync_obj_fn)(void *ctx, struct sync_obj *o, struct sync_err *err);

/* What sync_import did. */
struct sync_import_res {
	char *cookie;           /* for the next delta import, or NULL */
	int delta;              /* 1: prev and the changes since, merged */
	size_t changed;         /* then: objects added, changed or removed */
	char why[512];          /* a delta asked for but a full import done */
	/* a delta: prev's unchanged objects, which were not handed to fn
	 * but are for sync_snapw_lines (which takes them); NULL when the
	 * connector hands every object to fn */
	struct sync_lines *kept;
};

/*
 * Reads the connector's objects and hands each to fn.  With prev (a
 * snapshot of this connector written by an earlier run), only what
 * changed since that snapshot's cookie is read from the directory and
 * merged into prev's objects: the objects handed to fn are those a full
 * import would give.  Where a delta cannot be done (the connector has
 * none, prev has no cookie, the service no longer honours it, the
 * attributes read have changed), a full import is done and res->why
 * says why.  A delta may leave prev's unchanged objects in res->kept
 * instead of handing them to fn.  Free res->cookie and res->kept with
 * sync_import_res_release.
 */
int sync_import(struct sync_connector *c, const char *prev, sync_obj_fn fn,
    void *ctx, struct sync_import_res *res, struct sync_err *err);
void sync_import_res_release(struct sync_import_res *res);

/*
 * The target attributes that the flows into connector conn write, join
 * on or stamp the anchor in, appended to out[type] once each: an import
 * of a target must read them, or every cycle would plan them again.
 * A config without flows adds nothing.
 */
int sync_flow_target_attrs(struct sync_config *cfg, const char *conn,
    struct sync_strv out[SYNC_NOBJTYPES], struct sync_err *err);

/* LDAP DNs: 1 when dn is base or inside its subtree (parsed comparison). */
int sync_dn_under(const char *dn, const char *base);
/* 1 when two DNs name the same entry (parsed comparison), 0 if not. */
int sync_dn_equal(const char *a, const char *b);

/* ------------------------------------------- sync-diff: the change set */
/* (section owned by the diff: lib/diff.c, lib/changeset.c) */

#define SYNC_CHANGESET_FORMAT "sync-changeset"
#define SYNC_CHANGESET_VERSION 1

/* A computed change set (sync-changeset(5)); opaque. */
struct sync_changeset;

/*
 * Computes the change set from snapshots of the sources (one per source
 * connector) and of the target, with the flows and policy of cfg.  The
 * snapshots are parsed in parallel and the flows evaluated by nthreads
 * threads.  Returns a new change set the caller frees with
 * sync_changeset_free, or NULL with err set ("file:line:col: ..." for a
 * malformed snapshot or config).  Evaluation errors of single objects are
 * "error" records in the change set, not a failure.
 */
struct sync_changeset *sync_diff_run(struct sync_config *cfg,
    const char *const *srcpaths, size_t nsrc, const char *tgtpath,
    int nthreads, struct sync_err *err);
void sync_changeset_free(struct sync_changeset *cs);
/* The header line and the change lines (no newline; borrowed). */
const char *sync_changeset_header(const struct sync_changeset *cs);
size_t sync_changeset_nchanges(const struct sync_changeset *cs);
size_t sync_changeset_errors(const struct sync_changeset *cs);
const char *sync_changeset_line(const struct sync_changeset *cs, size_t i,
    size_t *len);
/*
 * Warnings about the rules found while computing cs, one message a
 * string, "file:line:col: ..." (borrowed): source attributes that no
 * object has.
 */
const struct sync_strv *sync_changeset_warnings(const struct sync_changeset *cs);
/* "N to add, N to update, ...; deletion threshold ..." appended to b. */
void sync_changeset_summary(const struct sync_changeset *cs,
    struct sync_buf *b);

enum sync_csfmt { SYNC_CS_JSON, SYNC_CS_TEXT, SYNC_CS_CSV };

/*
 * Writes cs to fp as JSON Lines (the change set itself), as a text plan
 * for people, or as CSV (one row per attribute change).
 */
int sync_changeset_write(const struct sync_changeset *cs, FILE *fp,
    enum sync_csfmt fmt, struct sync_err *err);
/*
 * Checks a change set in memory (format, version, that every line is a
 * change with the keys sync-export needs); errors name name:line:col.
 */
int sync_changeset_check(const char *name, const char *buf, size_t len,
    struct sync_err *err);

/* ------------------------------------------------ sync-export: journal */

/*
 * The journal of one plan (sync-journal(5)): opened (created, or reopened
 * to resume) at path for the plan whose SHA-256 (hex) is plan, of
 * nchanges changes.  Returns a new journal the caller closes, or NULL
 * with err set (a journal of another plan is refused).
 */
struct sync_journal;
struct json_t;

struct sync_journal *sync_journal_open(const char *path, const char *plan,
    size_t nchanges, struct sync_err *err);
/* 1 when change was applied or found in place by an earlier run. */
int sync_journal_done(const struct sync_journal *j, size_t change);
/* The id the target assigned to change (borrowed), or NULL. */
const char *sync_journal_id(const struct sync_journal *j, size_t change);
size_t sync_journal_ndone(const struct sync_journal *j);
/*
 * Appends a record for change: rec (borrowed; "change" and "time" are set
 * in it) holds "outcome" (applied, skipped, failed, stale), and "id",
 * "error" where known.  Buffered until sync_journal_sync.
 */
int sync_journal_record(struct sync_journal *j, size_t change,
    struct json_t *rec, struct sync_err *err);
int sync_journal_sync(struct sync_journal *j, struct sync_err *err);
void sync_journal_close(struct sync_journal *j);

/* ----------------------------------------------- sync-role: the role lease */
/* (section owned by the role: lib/role.c, lib/lease-file.c, lib/lease-ldap.c) */

/*
 * This server's role and the lease that makes at most one server active
 * (sync-role(1), sync.conf(5) ROLE).  The lease is held in a shared store
 * with a holder, an expiry time and a fencing number that grows with
 * every new holder; the state directory remembers whether this server
 * means to be active and which fencing number it took.
 *
 * sync-export uses it so:
 *
 *	sync_role_open(cfg, &role, err);
 *	sync_role_fence(role, &fence, err);
 *	if (sync_lease_check(role, fence, err) != SYNC_LEASE_HELD)
 *		refuse;                         (staging, or lost)
 *	for each batch:
 *		if (sync_lease_check(role, fence, err) != SYNC_LEASE_HELD)
 *			stop before writing it;
 *	sync_role_free(role);
 */

#define SYNC_LEASE_HELD 0       /* this server holds the lease */
#define SYNC_LEASE_LOST 1       /* it does not; the message says why */
#define SYNC_ROLE_NAMEMAX 65    /* server names: 64 bytes and a NUL */
#define SYNC_ROLE_DCMAX 256     /* a DC's DNS name and a NUL */

struct sync_role;

/* This server's view and the lease, as one read found them. */
struct sync_role_status {
	char server[SYNC_ROLE_NAMEMAX];         /* this server */
	int local_active;       /* the state directory says active */
	uint64_t local_fence;   /* the fence it took (last took, if staging) */
	char holder[SYNC_ROLE_NAMEMAX];         /* "" when released or free */
	uint64_t fence;
	int64_t expires;        /* UNIX time */
	int64_t now;
	long margin;            /* seconds of clock skew allowed */
	int active;             /* local_active, holder and fence match, and
	                           now + margin < expires */
	int forced;             /* promote: taken from an unexpired holder */
	char taken_from[SYNC_ROLE_NAMEMAX];
	/* An LDAP lease on AD: the DC it was read from, found to be the
	   PDC emulator; "" for other stores and without require_pdc. */
	char dc[SYNC_ROLE_DCMAX];
};

/*
 * Opens the role of cfg (which must outlive it): *role is new, freed
 * with sync_role_free.  Fails when cfg has no role section.  An LDAP
 * lease connects on first use and keeps its connection.
 */
int sync_role_open(struct sync_config *cfg, struct sync_role **role,
    struct sync_err *err);
void sync_role_free(struct sync_role *role);
/* Reads this server's view and the lease into st; changes nothing. */
int sync_role_status(struct sync_role *role, struct sync_role_status *st,
    struct sync_err *err);
/* The fence this server holds by its state directory; 0 when staging. */
int sync_role_fence(struct sync_role *role, uint64_t *fence,
    struct sync_err *err);
/*
 * Takes the lease with a new fence (or renews it if this server holds it
 * already) and makes this server active.  Returns SYNC_LEASE_HELD, or
 * SYNC_LEASE_LOST with err saying who holds an unexpired lease, or -1.
 * force takes an unexpired lease too (st->forced, st->taken_from).
 * st is filled in every case but -1.
 */
int sync_role_promote(struct sync_role *role, int force,
    struct sync_role_status *st, struct sync_err *err);
/*
 * Makes this server staging and, if it holds the lease, releases it (no
 * holder, the fence kept, expired now), so another server may take it
 * at once.  0 or -1.
 */
int sync_role_demote(struct sync_role *role, struct sync_role_status *st,
    struct sync_err *err);
/*
 * Before each export batch: SYNC_LEASE_HELD when this server is active,
 * holds the lease with fencing number fence, and the lease has more than
 * the margin left, after renewing it when past half its duration (an
 * expired lease nobody took since is renewed too).  SYNC_LEASE_LOST
 * (err says why) when staging, when fence is not this server's, or when
 * the lease has another holder or fence; in the last case the state
 * directory is set to staging.  -1 when the store cannot be read or the
 * lease cannot be renewed before it is too close to expiry: stop too.
 */
int sync_lease_check(struct sync_role *role, uint64_t fence,
    struct sync_err *err);

/* --------------------------------------------------- sync-export: plans */

/*
 * Where a run of sync-export stands, for a progress display.  The phases
 * are 0 (the reads of the current state), 1 (users), 2 (groups) and 3
 * (memberships).  notice, when not NULL, says why the run seems to stand
 * still: a request to an unreachable or throttled service that has been
 * failing for a few seconds and waits again before a retry ("entra:
 * POST URL/$batch: Failed to connect ...; retrying in 8 s (attempt 6)").
 */
struct sync_export_progress {
	int phase;
	const char *what;       /* "reads", "users", "groups", "members" */
	size_t done, total;     /* changes of the phase finished, and all */
	size_t batches;         /* $batch requests answered in the run */
	unsigned long retries;  /* waits before a retry in the run */
	const char *notice;     /* a long wait, or NULL */
	int end;                /* the phase is over */
};

/*
 * What a run of sync-export may do.  lease_check, when set, is called
 * before every batch of writes: it returns 0 while this server holds the
 * lease, 1 when the lease is lost (the export stops before the batch),
 * -1 on an error.
 *
 * progress, when set, is called at the start and the end of each phase
 * that has something to do, after every batch, and with a notice; pr is
 * borrowed for the call.  Calls come from the export's threads, one at
 * a time; they must not call back into the export.
 */
struct sync_export_opts {
	const char *journal;    /* NULL: STATE_DIR/journal/PLAN-SHA256.jsonl */
	long allow_deletes;     /* deletes allowed past the threshold, or -1 */
	int dry_run;            /* print the writes to dry_out, send nothing */
	FILE *dry_out;
	int (*lease_check)(void *ctx, struct sync_err *err);
	void *lease_ctx;
	void (*progress)(void *ctx, const struct sync_export_progress *pr);
	void *progress_ctx;
};

/*
 * What a run did, also when it stopped with an error (the counts so
 * far).  failures lists failed changes (new reference).
 */
struct sync_export_stats {
	size_t applied, skipped, failed, notapplied, resumed;
	struct json_t *failures;        /* [{"change","anchor","op","error"}] */
	int lease_lost;
	const char *target;     /* the plan's target connector (borrowed
				   from the config), NULL before it is known */
	size_t batches;         /* $batch requests answered */
	unsigned long writes;   /* write requests answered */
	unsigned long retries;  /* waits before a retry */
	unsigned long throttled;        /* requests answered 429 or 503 */
};

/*
 * Applies the plan in path (a change set, sync-changeset(5)) to its
 * target connector in cfg, safely: the config must be the one the plan
 * was computed with; a plan over the deletion threshold is refused unless
 * o->allow_deletes covers it; every change is checked against the target
 * first (a plan whose target moved since is refused before anything is
 * written); outcomes go to the journal, so that a re-run of the same plan
 * resumes.  Returns 0 when the run went through (per-change failures are
 * in st), -1 with err set when it was refused or could not go on.
 */
int sync_export_run(struct sync_config *cfg, const char *path,
    const struct sync_export_opts *o, struct sync_export_stats *st,
    struct sync_err *err);

/* A run of sync-export as its reports tell it (all borrowed). */
struct sync_export_report {
	const char *prog, *version;     /* "sync-export", the build's */
	const char *plan;               /* the plan's path as given */
	const struct sync_export_stats *st;
	int dry_run;
	int staging;            /* not the active server: nothing was sent */
	double started, ended;  /* seconds since the epoch */
	int exit_status;
	const char *error;      /* the message of exit status 2, or NULL */
};

/*
 * The run summary, a JSON object (see sync-export(1)), written to path
 * atomically (sync_out_open; "-" is standard output).  0, or -1 with
 * err set.
 */
int sync_export_summary_write(const struct sync_export_report *r,
    const char *path, struct sync_err *err);
/*
 * The counts, duration and exit status as a Prometheus textfile (for
 * node_exporter's textfile collector: give path a .prom name), written
 * atomically, mode 0644 when new.  0, or -1 with err set.
 */
int sync_export_metrics_write(const struct sync_export_report *r,
    const char *path, struct sync_err *err);

#endif
