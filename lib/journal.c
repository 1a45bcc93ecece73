/*
 * journal.c: what sync-export did with each change of a plan
 * (sync-journal(5)).
 *
 * The journal is append-only JSON Lines beside the state: a header that
 * names the plan by its SHA-256, then one record per change outcome.  It
 * is flushed and fsync'd after every batch, so that after a crash a
 * re-run of the same plan knows what was done.  A crash can leave a torn
 * last line; reopening cuts it off, and the change it described is done
 * again (every write is guarded, so that is safe).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sync.h"

struct entry {
	int state;              /* 0 none, 1 done (applied/skipped), 2 failed */
	char *id;               /* id the target assigned, or NULL */
};

struct sync_journal {
	FILE *fp;
	char *path;
	size_t nchanges;
	struct entry *e;
	size_t ndone, nfailed_before;
};

/* Reads the whole file open on fd into b; -1 with err set. */
static int
read_fd(int fd, const char *path, struct sync_buf *b, struct sync_err *err)
{
	char chunk[8192];
	ssize_t n;

	for (;;) {
		if ((n = read(fd, chunk, sizeof chunk)) == -1) {
			if (errno == EINTR)
				continue;
			sync_buf_release(b);
			return sync_errno(err, "cannot read journal '%s'", path);
		}
		if (n == 0)
			return 0;
		if (sync_buf_add(b, chunk, (size_t)n) == -1) {
			sync_buf_release(b);
			return sync_errf(err, "%s: out of memory", path);
		}
	}
}

/*
 * Reads back the journal open on fd: 1 when it has a header, 0 when it
 * is (now) empty.  A torn last line is cut off through fd, never through
 * the path, which could have been replaced meanwhile.
 */
static int
load(struct sync_journal *j, int fd, const char *plan, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	json_t *rec, *hdr, *v;
	json_error_t jerr;
	char *p, *nl, *end;
	size_t lineno = 1, keep, total;
	json_int_t n;
	const char *outcome, *id;

	if (read_fd(fd, j->path, &b, err) == -1)
		return -1;
	if (b.len == 0) {
		sync_buf_release(&b);
		return 0;
	}
	p = b.p;
	end = b.p + b.len;
	total = b.len;
	/* A torn last line from a crash is dropped. */
	nl = memrchr(b.p, '\n', b.len);
	keep = nl ? (size_t)(nl - b.p) + 1 : 0;
	if (keep == 0) {
		/* Not even the header made it: start afresh. */
		sync_buf_release(&b);
		if (ftruncate(fd, 0) == -1)
			return sync_errno(err, "cannot repair journal '%s'",
			    j->path);
		return 0;
	}
	if ((hdr = json_loadb(p, (size_t)((char *)memchr(p, '\n', keep) - p),
	    0, &jerr)) == NULL) {
		sync_buf_release(&b);
		return sync_errf(err, "%s:1:%d: not a journal: %s", j->path,
		    jerr.column, jerr.text);
	}
	if (strcmp(json_string_value(json_object_get(hdr, "format")) ?
	    json_string_value(json_object_get(hdr, "format")) : "",
	    "sync-journal") != 0 ||
	    !json_is_integer(json_object_get(hdr, "version")) ||
	    json_integer_value(json_object_get(hdr, "version")) != 1) {
		json_decref(hdr);
		sync_buf_release(&b);
		return sync_errf(err, "%s:1: not a sync-journal version 1",
		    j->path);
	}
	if (strcmp(json_string_value(json_object_get(hdr, "plan")) ?
	    json_string_value(json_object_get(hdr, "plan")) : "", plan) != 0) {
		json_decref(hdr);
		sync_buf_release(&b);
		return sync_errf(err, "%s: the journal belongs to another plan",
		    j->path);
	}
	json_decref(hdr);
	p = (char *)memchr(p, '\n', keep) + 1;
	while (p < b.p + keep) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if ((rec = json_loadb(p, (size_t)(nl - p), 0, &jerr)) == NULL) {
			sync_buf_release(&b);
			return sync_errf(err, "%s:%zu:%d: %s", j->path, lineno,
			    jerr.column, jerr.text);
		}
		/*
		 * A record without a valid change must not be read as
		 * change 0 (json_integer_value's answer for anything else):
		 * it would mark a change done that was never applied.
		 */
		v = json_object_get(rec, "change");
		n = json_integer_value(v);
		outcome = json_string_value(json_object_get(rec, "outcome"));
		id = json_string_value(json_object_get(rec, "id"));
		if (!json_is_integer(v) || n < 0 || (size_t)n >= j->nchanges) {
			if (v == NULL)
				sync_errf(err, "%s:%zu: a record without "
				    "\"change\"", j->path, lineno);
			else if (!json_is_integer(v))
				sync_errf(err, "%s:%zu: \"change\" is not an "
				    "integer", j->path, lineno);
			else
				sync_errf(err, "%s:%zu: record for no change of "
				    "this plan (change %" JSON_INTEGER_FORMAT
				    ", the plan has %zu)", j->path, lineno, n,
				    j->nchanges);
			json_decref(rec);
			sync_buf_release(&b);
			return -1;
		}
		if (outcome == NULL || (strcmp(outcome, "applied") != 0 &&
		    strcmp(outcome, "skipped") != 0 &&
		    strcmp(outcome, "failed") != 0)) {
			json_decref(rec);
			sync_buf_release(&b);
			return sync_errf(err, "%s:%zu: \"outcome\" must be "
			    "applied, skipped or failed", j->path, lineno);
		}
		if (strcmp(outcome, "applied") == 0 ||
		    strcmp(outcome, "skipped") == 0) {
			if (j->e[n].state != 1)
				j->ndone++;
			j->e[n].state = 1;
		} else if (j->e[n].state != 1)
			j->e[n].state = 2;
		if (id && !j->e[n].id)
			j->e[n].id = sync_strdup(id);
		json_decref(rec);
		p = nl + 1;
	}
	sync_buf_release(&b);
	/* Cut a torn tail so that appends start on a line of their own. */
	if (keep < total && ftruncate(fd, (off_t)keep) == -1)
		return sync_errno(err, "cannot repair journal '%s'", j->path);
	return 1;
}

struct sync_journal *
sync_journal_open(const char *path, const char *plan, size_t nchanges,
    struct sync_err *err)
{
	struct sync_journal *j;
	json_t *hdr;
	char now[32];
	int rc, fd;

	if ((j = calloc(1, sizeof *j)) == NULL ||
	    (j->e = calloc(nchanges ? nchanges : 1, sizeof *j->e)) == NULL ||
	    (j->path = sync_strdup(path)) == NULL) {
		sync_errno(err, "cannot open journal '%s'", path);
		sync_journal_close(j);
		return NULL;
	}
	j->nchanges = nchanges;
	/*
	 * One descriptor for reading back, repairing and appending, opened
	 * without following a link: a link planted in its place would
	 * have the repair truncate, and the appends write, another file.
	 */
	if ((fd = sync_open_nofollow(path, O_RDWR | O_CREAT | O_APPEND, 0600,
	    "journal", err)) == -1) {
		sync_journal_close(j);
		return NULL;
	}
	if ((rc = load(j, fd, plan, err)) == -1) {
		close(fd);
		sync_journal_close(j);
		return NULL;
	}
	if ((j->fp = fdopen(fd, "a")) == NULL) {
		sync_errno(err, "cannot open journal '%s'", path);
		close(fd);
		sync_journal_close(j);
		return NULL;
	}
	if (rc == 0) {
		sync_time_now(now);
		hdr = json_pack("{s:s, s:i, s:s, s:s}", "format", "sync-journal",
		    "version", 1, "plan", plan, "started", now);
		if (hdr == NULL || json_dumpf(hdr, j->fp, JSON_COMPACT |
		    JSON_SORT_KEYS) == -1 || fputc('\n', j->fp) == EOF ||
		    sync_journal_sync(j, err) == -1) {
			json_decref(hdr);
			sync_errno(err, "cannot write journal '%s'", path);
			sync_journal_close(j);
			return NULL;
		}
		json_decref(hdr);
	}
	return j;
}

int
sync_journal_done(const struct sync_journal *j, size_t change)
{
	return change < j->nchanges && j->e[change].state == 1;
}

const char *
sync_journal_id(const struct sync_journal *j, size_t change)
{
	return change < j->nchanges ? j->e[change].id : NULL;
}

size_t
sync_journal_ndone(const struct sync_journal *j)
{
	return j->ndone;
}

int
sync_journal_record(struct sync_journal *j, size_t change, json_t *rec,
    struct sync_err *err)
{
	const char *outcome = json_string_value(json_object_get(rec, "outcome"));
	const char *id = json_string_value(json_object_get(rec, "id"));
	char now[32];

	if (change >= j->nchanges)
		return sync_errf(err, "journal: no change %zu", change);
	sync_time_now(now);
	json_object_set_new(rec, "change", json_integer((json_int_t)change));
	json_object_set_new(rec, "time", json_string(now));
	if (json_dumpf(rec, j->fp, JSON_COMPACT | JSON_SORT_KEYS) == -1 ||
	    fputc('\n', j->fp) == EOF)
		return sync_errno(err, "cannot write journal '%s'", j->path);
	if (outcome && (strcmp(outcome, "applied") == 0 ||
	    strcmp(outcome, "skipped") == 0)) {
		if (j->e[change].state != 1)
			j->ndone++;
		j->e[change].state = 1;
	} else if (j->e[change].state != 1)
		j->e[change].state = 2;
	if (id && !j->e[change].id)
		j->e[change].id = sync_strdup(id);
	return 0;
}

int
sync_journal_sync(struct sync_journal *j, struct sync_err *err)
{
	if (fflush(j->fp) == EOF || fsync(fileno(j->fp)) == -1)
		return sync_errno(err, "cannot write journal '%s'", j->path);
	return 0;
}

void
sync_journal_close(struct sync_journal *j)
{
	size_t i;

	if (j == NULL)
		return;
	if (j->fp)
		fclose(j->fp);
	for (i = 0; j->e && i < j->nchanges; i++)
		free(j->e[i].id);
	free(j->e);
	free(j->path);
	free(j);
}
