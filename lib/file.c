/*
 * file.c: atomic output files, locks and secret files.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sync.h"

/* --------------------------------------------------------- atomic output */

/*
 * A character device or a FIFO (/dev/null, /dev/stdout on a pipe or a
 * terminal, a named pipe a reader waits on) is written into: renaming a
 * file over it would replace the node itself.  path is opened following
 * links (/dev/stdout is one) and checked again once open, so that what
 * is written into is what was checked.
 */
static int
out_open_direct(struct sync_out *o, const char *path, struct sync_err *err)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return sync_errno(err, "cannot open '%s'", path);
	if (fstat(fd, &st) == -1 || !(S_ISCHR(st.st_mode) ||
	    S_ISFIFO(st.st_mode))) {
		close(fd);
		return sync_errf(err, "cannot write '%s': it changed while "
		    "being opened", path);
	}
	if ((o->path = sync_strdup(path)) == NULL ||
	    (o->fp = fdopen(fd, "w")) == NULL) {
		sync_errno(err, "cannot open '%s'", path);
		close(fd);
		free(o->path);
		memset(o, 0, sizeof *o);
		return -1;
	}
	o->direct = 1;
	return 0;
}

int
sync_out_open(struct sync_out *o, const char *path, struct sync_err *err)
{
	return sync_out_open_mode(o, path, 0600, err);
}

int
sync_out_open_mode(struct sync_out *o, const char *path, mode_t mode,
    struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct stat st, lst;
	int fd, exists;

	memset(o, 0, sizeof *o);
	if (strcmp(path, "-") == 0) {
		o->fp = stdout;
		return 0;
	}
	if (stat(path, &st) == 0 && (S_ISCHR(st.st_mode) ||
	    S_ISFIFO(st.st_mode)))
		return out_open_direct(o, path, err);
	if ((exists = lstat(path, &lst) == 0)) {
		/*
		 * A link is not followed to a file to replace: in a
		 * directory others can write, it would let them aim the
		 * output of a root cron job at any file.
		 */
		if (S_ISLNK(lst.st_mode))
			return sync_errf(err, "cannot write '%s': it is a "
			    "symbolic link (give the path of the file it "
			    "points to)", path);
		if (!S_ISREG(lst.st_mode))
			return sync_errf(err, "cannot write '%s': it is %s, "
			    "not a regular file, a character device or a "
			    "FIFO", path, S_ISDIR(lst.st_mode) ? "a directory" :
			    S_ISSOCK(lst.st_mode) ? "a socket" :
			    S_ISBLK(lst.st_mode) ? "a block device" :
			    "a special file");
	} else if (errno != ENOENT)
		return sync_errno(err, "cannot write '%s'", path);
	if ((o->path = sync_strdup(path)) == NULL ||
	    sync_buf_addf(&b, "%s.tmp.XXXXXX", path) == -1) {
		sync_buf_release(&b);
		free(o->path);
		o->path = NULL;
		return sync_errno(err, "cannot create '%s'", path);
	}
	o->tmppath = sync_buf_detach(&b);
	/* mkostemp makes the file 0600 (less the umask). */
	if ((fd = mkostemp(o->tmppath, O_CLOEXEC)) == -1) {
		sync_errno(err, "cannot create '%s'", o->tmppath);
		free(o->tmppath);
		free(o->path);
		memset(o, 0, sizeof *o);
		return -1;
	}
	/*
	 * Outputs hold personal data: a new file gets mode (less the
	 * umask), a file replaced keeps its mode, and its owner when root
	 * can give it, so that a rewrite never widens who can read it.
	 */
	if (exists) {
		if (geteuid() == 0 && fchown(fd, lst.st_uid, lst.st_gid) == -1)
			goto chmodfail;
		if (fchmod(fd, lst.st_mode & 07777) == -1)
			goto chmodfail;
	} else if (mode != 0600) {
		mode_t um = umask(077);

		umask(um);
		if (fchmod(fd, mode & ~um) == -1)
			goto chmodfail;
	}
	if ((o->fp = fdopen(fd, "w")) == NULL) {
		sync_errno(err, "cannot open '%s'", o->tmppath);
		close(fd);
		sync_out_abort(o);
		return -1;
	}
	return 0;
chmodfail:
	sync_errno(err, "cannot set the mode of '%s'", o->tmppath);
	close(fd);
	sync_out_abort(o);
	return -1;
}

static int
fsync_dir(const char *path)
{
	char *copy = sync_strdup(path);
	int fd, rc = 0;

	if (copy == NULL)
		return -1;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	free(copy);
	return rc;
}

int
sync_out_commit(struct sync_out *o, struct sync_err *err)
{
	int rc;

	if (o->path == NULL) {
		if (fflush(o->fp) == EOF || ferror(o->fp))
			return sync_errno(err, "cannot write to standard output");
		return 0;
	}
	if (o->direct) {
		/* A device or a FIFO: written as it went, nothing to rename. */
		rc = fflush(o->fp) == EOF || ferror(o->fp) ? EOF : 0;
		if (fclose(o->fp) == EOF)
			rc = EOF;
		o->fp = NULL;
		if (rc == EOF)
			sync_errno(err, "cannot write '%s'", o->path);
		free(o->path);
		memset(o, 0, sizeof *o);
		return rc == EOF ? -1 : 0;
	}
	if (fflush(o->fp) == EOF || ferror(o->fp) || fsync(fileno(o->fp)) == -1) {
		sync_errno(err, "cannot write '%s'", o->path);
		sync_out_abort(o);
		return -1;
	}
	rc = fclose(o->fp);
	o->fp = NULL;
	if (rc == EOF) {
		sync_errno(err, "cannot write '%s'", o->path);
		sync_out_abort(o);
		return -1;
	}
	if (rename(o->tmppath, o->path) == -1) {
		sync_errno(err, "cannot rename '%s' to '%s'", o->tmppath, o->path);
		sync_out_abort(o);
		return -1;
	}
	(void)fsync_dir(o->path);
	free(o->tmppath);
	free(o->path);
	memset(o, 0, sizeof *o);
	return 0;
}

void
sync_out_abort(struct sync_out *o)
{
	if (o->path == NULL) {
		/* Standard output: nothing can be taken back. */
		memset(o, 0, sizeof *o);
		return;
	}
	/* A device or a FIFO has had what was written: only closed. */
	if (o->fp)
		fclose(o->fp);
	if (o->tmppath)
		unlink(o->tmppath);
	free(o->tmppath);
	free(o->path);
	memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------- files of state */

int
sync_open_nofollow(const char *path, int flags, mode_t mode,
    const char *what, struct sync_err *err)
{
	struct stat st;
	int fd;

	if ((fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	    mode)) == -1) {
		if (errno == ELOOP && lstat(path, &st) == 0 &&
		    S_ISLNK(st.st_mode))
			return sync_errf(err, "cannot open %s '%s': it is a "
			    "symbolic link", what, path);
		return sync_errno(err, "cannot open %s '%s'", what, path);
	}
	if (fstat(fd, &st) == -1) {
		sync_errno(err, "cannot open %s '%s'", what, path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return sync_errf(err, "cannot open %s '%s': not a regular "
		    "file", what, path);
	}
	return fd;
}

int
sync_state_dir(const char *dir, int create, struct sync_err *err)
{
	struct stat st;
	uid_t uid = geteuid();

	if (create && sync_mkdirs(dir, err) == -1)
		return -1;
	if (stat(dir, &st) == -1) {
		if (errno == ENOENT && !create)
			return 0;
		return sync_errno(err, "state directory '%s'", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return sync_errf(err, "state directory '%s' is not a directory",
		    dir);
	/*
	 * Whoever can write in it can swap a journal, a lock or the role
	 * state for a link or a file of their own.
	 */
	if (st.st_uid != uid && st.st_uid != 0)
		return sync_errf(err, "state directory '%s' is owned by uid "
		    "%u, not by this user (uid %u) or root", dir,
		    (unsigned int)st.st_uid, (unsigned int)uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return sync_errf(err, "state directory '%s' is writable by "
		    "group or others (mode %04o); chmod 700 it", dir,
		    (unsigned int)(st.st_mode & 07777));
	return 0;
}

/* ------------------------------------------------------------------ locks */

int
sync_lock_take(const char *path, int *fdp, struct sync_err *err)
{
	int fd;

	if ((fd = sync_open_nofollow(path, O_RDWR | O_CREAT, 0600,
	    "lock file", err)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int saved = errno;

		close(fd);
		if (saved == EWOULDBLOCK)
			return sync_errf(err, "'%s' is locked: another run is "
			    "in progress", path);
		errno = saved;
		return sync_errno(err, "cannot lock '%s'", path);
	}
	*fdp = fd;
	return 0;
}

void
sync_lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* ---------------------------------------------------------------- secrets */

/* Releases b, its bytes wiped first, NULs or not. */
static void
wipe(struct sync_buf *b)
{
	if (b->p)
		explicit_bzero(b->p, b->len);
	sync_buf_release(b);
}

char *
sync_secret_read(const char *path, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct stat st;
	char chunk[512];
	ssize_t n;
	int fd, flags;

	/*
	 * Non-blocking: opening a FIFO for reading would wait for a writer.
	 * The descriptor is checked, not the path, so that what is read is
	 * what was checked; links are followed (/run/secrets and the like).
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		sync_errno(err, "cannot open secret file '%s'", path);
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		sync_errno(err, "cannot stat secret file '%s'", path);
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		sync_errf(err, "secret file '%s' is not a regular file", path);
		close(fd);
		return NULL;
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
		sync_errno(err, "cannot read secret file '%s'", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		sync_errf(err, "secret file '%s' is accessible by group or "
		    "others (mode %04o); chmod 600 it", path,
		    (unsigned int)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0) {
		if (b.len + (size_t)n > 65536 ||
		    sync_buf_add(&b, chunk, (size_t)n) == -1) {
			sync_errf(err, "secret file '%s' is too large", path);
			explicit_bzero(chunk, sizeof chunk);
			close(fd);
			wipe(&b);
			return NULL;
		}
	}
	explicit_bzero(chunk, sizeof chunk);
	if (n == -1) {
		sync_errno(err, "cannot read secret file '%s'", path);
		close(fd);
		wipe(&b);
		return NULL;
	}
	close(fd);
	/* A C string would end at the NUL: the secret used, cut short. */
	if (b.len > 0 && memchr(b.p, '\0', b.len) != NULL) {
		sync_errf(err, "secret file '%s' contains a NUL byte", path);
		wipe(&b);
		return NULL;
	}
	while (b.len > 0 && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == '\r'))
		b.p[--b.len] = '\0';
	if (b.len == 0) {
		sync_errf(err, "secret file '%s' is empty", path);
		sync_buf_release(&b);
		return NULL;
	}
	return sync_buf_detach(&b);
}

void
sync_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ------------------------------------------------------------ whole files */

int
sync_file_read(const char *path, size_t max, struct sync_buf *b,
    struct sync_err *err)
{
	char chunk[8192];
	size_t n;
	FILE *fp;

	if (strcmp(path, "-") == 0)
		fp = stdin;
	else if ((fp = fopen(path, "re")) == NULL)
		return sync_errno(err, "cannot open '%s'", path);
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
		if (b->len + n > max) {
			sync_errf(err, "%s: larger than %zu bytes", path, max);
			goto fail;
		}
		if (sync_buf_add(b, chunk, n) == -1) {
			sync_errf(err, "%s: out of memory", path);
			goto fail;
		}
	}
	if (ferror(fp)) {
		sync_errno(err, "cannot read '%s'", path);
		goto fail;
	}
	if (fp != stdin)
		fclose(fp);
	return 0;
fail:
	if (fp != stdin)
		fclose(fp);
	sync_buf_release(b);
	return -1;
}

/* ------------------------------------------------------------ directories */

int
sync_mkdirs(const char *dir, struct sync_err *err)
{
	char *copy = sync_strdup(dir), *p;
	char c;

	if (copy == NULL)
		return sync_errno(err, "cannot create '%s'", dir);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(copy, 0700) == -1 && errno != EEXIST) {
			sync_errno(err, "cannot create directory '%s'", copy);
			free(copy);
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	free(copy);
	return 0;
}
