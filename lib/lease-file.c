/*
 * lease-file.c: the role lease in a file shared by the servers of one
 * host.  A compare-and-swap holds an exclusive flock on PATH.lock (a
 * file that is never replaced, unlike PATH), compares PATH with the old
 * value, and writes the new one to a temporary file renamed over PATH,
 * so that readers, who take no lock, see the old value or the new one.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "role.h"

struct lease_file {
	struct lease_store s;           /* first: the store is the file */
	char *path;
	char *lockpath;
};

static int
file_read(struct lease_store *s, char **value, struct sync_err *err)
{
	struct lease_file *f = (struct lease_file *)s;
	struct sync_buf b = { 0 };

	if (access(f->path, F_OK) == -1 && errno == ENOENT) {
		/* Never taken: the file appears with the first take. */
		if ((*value = sync_strdup(LEASE_INITIAL)) == NULL)
			return sync_errno(err, "lease file '%s'", f->path);
		return 0;
	}
	if (sync_file_read(f->path, 4096, &b, err) == -1)
		return sync_errpre(err, "lease");
	while (b.len > 0 && b.p[b.len - 1] == '\n')
		b.p[--b.len] = '\0';
	if (b.p == NULL && sync_buf_adds(&b, "") == -1)
		return sync_errno(err, "lease file '%s'", f->path);
	*value = sync_buf_detach(&b);
	return 0;
}

static int
file_cas(struct lease_store *s, const char *old, const char *new,
    struct sync_err *err)
{
	struct lease_file *f = (struct lease_file *)s;
	struct sync_out out;
	char *cur = NULL;
	int fd, rc;

	/* Beside the lease, in a directory every server's account writes:
	 * a link there is not followed. */
	if ((fd = sync_open_nofollow(f->lockpath, O_RDWR | O_CREAT, 0660,
	    "lease lock", err)) == -1)
		return -1;
	/* Blocking: the lock is held only for a read and a rename. */
	while ((rc = flock(fd, LOCK_EX)) == -1 && errno == EINTR)
		;
	if (rc == -1) {
		sync_errno(err, "cannot lock '%s'", f->lockpath);
		close(fd);
		return -1;
	}
	/* A new lease file is 0666 less the umask: the other servers'
	 * accounts read it. */
	if (file_read(s, &cur, err) == -1) {
		rc = -1;
	} else if (strcmp(cur, old) != 0) {
		rc = 1;
	} else if (sync_out_open_mode(&out, f->path, 0666, err) == -1) {
		sync_errpre(err, "lease");
		rc = -1;
	} else if (fprintf(out.fp, "%s\n", new) < 0) {
		sync_errno(err, "cannot write lease file '%s'", f->path);
		sync_out_abort(&out);
		rc = -1;
	} else if (sync_out_commit(&out, err) == -1) {
		sync_errpre(err, "lease");
		rc = -1;
	} else {
		rc = 0;
	}
	free(cur);
	close(fd);              /* releases the lock */
	return rc;
}

static void
file_free(struct lease_store *s)
{
	struct lease_file *f = (struct lease_file *)s;

	free(f->path);
	free(f->lockpath);
	free(f);
}

struct lease_store *
lease_file_open(const struct sync_role_conf *rc, struct sync_err *err)
{
	struct lease_file *f;
	struct sync_buf b = { 0 };

	if ((f = calloc(1, sizeof *f)) == NULL ||
	    (f->path = sync_strdup(rc->file)) == NULL ||
	    sync_buf_addf(&b, "%s.lock", rc->file) == -1) {
		sync_errno(err, "lease file '%s'", rc->file);
		if (f)
			free(f->path);
		free(f);
		return NULL;
	}
	f->lockpath = sync_buf_detach(&b);
	f->s.read = file_read;
	f->s.cas = file_cas;
	f->s.free = file_free;
	return &f->s;
}
