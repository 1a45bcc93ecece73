/*
 * role.c: this server's role (staging or active) and the lease that
 * makes at most one server active (sync-role(1), sync.conf(5) ROLE).
 *
 * The lease is one value, "holder=NAME;fence=N;expires=T", in a shared
 * store (lease-file.c, lease-ldap.c, lease-etcd.c) that changes it only by
 * compare-and-swap.  Every new holder takes fence+1, so a server that
 * lost the lease (to a forced takeover, or after it expired and another
 * server took it) finds a fencing number that is not its own at its
 * next check.  The state directory keeps this server's view: whether it
 * means to be active and the fencing number it took.
 */
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "role.h"

#define NAMECHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" \
    "0123456789._-"
#define MAXTRIES 20

struct sync_role {
	const struct sync_role_conf *rc;
	char *statedir;
	char *statepath;
	struct lease_store *store;
	long pause_ms;                  /* SYNC_ROLE_TEST_PAUSE */
};

struct lease {
	char holder[SYNC_ROLE_NAMEMAX];
	uint64_t fence;
	int64_t expires;
};

/* ---------------------------------------------------------------- config */

void
sync_role_conf_free(struct sync_role_conf *rc)
{
	if (rc == NULL)
		return;
	free(rc->server);
	free(rc->file);
	free(rc->dn);
	free(rc->attribute);
	sync_strv_release(&rc->endpoints);
	free(rc->prefix);
	free(rc->ca_file);
	free(rc->cert_file);
	free(rc->key_file);
	free(rc->user);
	free(rc->password_file);
	free(rc);
}

static int
valid_server(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < SYNC_ROLE_NAMEMAX && strspn(s, NAMECHARS) == n;
}

/* The node of endpoint i: the scalar, or the sequence's item i. */
static struct sync_node *
endpoint_node(struct sync_node *n, size_t i)
{
	return n->kind == SYNC_NODE_SEQ && i < n->n ? n->items[i] : n;
}

/*
 * The etcd section: endpoints (one URL or a list), the key prefix, TLS
 * files, user and password_file, the timeout of one request.
 */
static int
parse_etcd(struct sync_config *cfg, struct sync_role_conf *rc,
    struct sync_node *lease, struct sync_err *err)
{
	struct sync_node *etcd, *n;
	size_t i, len;
	int https = 0;
	char *u;

	if (sync_map_map(lease, "etcd", 1, &etcd, err) == -1)
		return -1;
	if ((n = sync_map_get(etcd, "endpoints")) == NULL)
		return sync_node_errf(err, etcd, "missing key 'endpoints' (the "
		    "client URLs of the etcd members)");
	if (sync_map_strv(etcd, "endpoints", &rc->endpoints, err) == -1)
		return -1;
	if (rc->endpoints.n == 0)
		return sync_node_errf(err, n, "'endpoints' needs at least one "
		    "URL");
	for (i = 0; i < rc->endpoints.n; i++) {
		u = rc->endpoints.v[i];
		if (strncmp(u, "https://", 8) == 0)
			https = 1;
		else if (strncmp(u, "http://", 7) != 0)
			return sync_node_errf(err, endpoint_node(n, i),
			    "etcd endpoint '%s' must start with http:// or "
			    "https://", u);
		len = strlen(u);
		if (strcspn(u, " \t\r\n") != len ||
		    len == (size_t)(u[4] == 's' ? 8 : 7))
			return sync_node_errf(err, endpoint_node(n, i),
			    "invalid etcd endpoint '%s'", u);
		/* The API paths are appended: no trailing slash. */
		while (len > 8 && u[len - 1] == '/')
			u[--len] = '\0';
	}
	if (sync_map_str(etcd, "prefix", 0, &rc->prefix, err) == -1)
		return -1;
	if (rc->prefix == NULL) {
		if ((rc->prefix = sync_strdup("/sync")) == NULL)
			return sync_node_errf(err, etcd, "out of memory");
	} else if (rc->prefix[0] == '\0' ||
	    rc->prefix[strlen(rc->prefix) - 1] == '/') {
		return sync_node_errf(err, sync_map_get(etcd, "prefix"),
		    "'prefix' must be a non-empty key prefix not ending in "
		    "'/' (the keys are PREFIX/lease and PREFIX/fence)");
	}
	rc->timeout = 5;
	if (sync_map_path(etcd, "ca_file", cfg->dir, 0, &rc->ca_file,
	    err) == -1 ||
	    sync_map_path(etcd, "cert_file", cfg->dir, 0, &rc->cert_file,
	    err) == -1 ||
	    sync_map_path(etcd, "key_file", cfg->dir, 0, &rc->key_file,
	    err) == -1 ||
	    sync_map_str(etcd, "user", 0, &rc->user, err) == -1 ||
	    sync_map_path(etcd, "password_file", cfg->dir, 0,
	    &rc->password_file, err) == -1 ||
	    sync_map_int(etcd, "timeout", 1, 300, &rc->timeout, err) == -1)
		return -1;
	if ((rc->cert_file == NULL) != (rc->key_file == NULL))
		return sync_node_errf(err, sync_map_get(etcd, rc->cert_file ?
		    "cert_file" : "key_file"), "'cert_file' and 'key_file' "
		    "go together (a client certificate and its key)");
	if ((rc->ca_file || rc->cert_file) && !https)
		return sync_node_errf(err, sync_map_get(etcd, rc->ca_file ?
		    "ca_file" : "cert_file"), "'%s' needs https:// endpoints",
		    rc->ca_file ? "ca_file" : "cert_file");
	if ((rc->user == NULL) != (rc->password_file == NULL))
		return sync_node_errf(err, sync_map_get(etcd, rc->user ?
		    "user" : "password_file"), "'user' and 'password_file' go "
		    "together");
	if (rc->user && rc->user[0] == '\0')
		return sync_node_errf(err, sync_map_get(etcd, "user"),
		    "'user' must not be empty");
	if (sync_map_check_unused(etcd, err) == -1)
		return -1;
	return sync_map_check_unused(lease, err);
}

static int
parse_lease(struct sync_config *cfg, struct sync_role_conf *rc,
    struct sync_node *lease, struct sync_err *err)
{
	struct sync_node *file = sync_map_get(lease, "file");
	struct sync_node *ldap = sync_map_get(lease, "ldap");
	struct sync_node *etcd = sync_map_get(lease, "etcd");
	char *conn = NULL;
	int require_pdc = -1;

	if ((file != NULL) + (ldap != NULL) + (etcd != NULL) != 1)
		return sync_node_errf(err, lease, "'lease' must have one key, "
		    "'file', 'ldap' or 'etcd'");
	if (etcd) {
		rc->kind = SYNC_LEASE_ETCD;
		return parse_etcd(cfg, rc, lease, err);
	}
	if (file) {
		rc->kind = SYNC_LEASE_FILE;
		if (sync_map_path(lease, "file", cfg->dir, 1, &rc->file,
		    err) == -1)
			return -1;
		return sync_map_check_unused(lease, err);
	}
	rc->kind = SYNC_LEASE_LDAP;
	if (sync_map_map(lease, "ldap", 1, &ldap, err) == -1)
		return -1;
	if (sync_map_str(ldap, "connector", 1, &conn, err) == -1 ||
	    sync_map_str(ldap, "dn", 1, &rc->dn, err) == -1 ||
	    sync_map_str(ldap, "attribute", 0, &rc->attribute, err) == -1) {
		free(conn);
		return -1;
	}
	if (rc->attribute == NULL &&
	    (rc->attribute = sync_strdup("description")) == NULL) {
		free(conn);
		return sync_node_errf(err, ldap, "out of memory");
	}
	rc->conn = sync_config_connector(cfg, conn, err);
	free(conn);
	if (rc->conn == NULL)
		return sync_node_errf(err, sync_map_get(ldap, "connector"),
		    "no connector named '%s'",
		    sync_map_get(ldap, "connector")->str);
	if (rc->conn->kind != SYNC_CONN_LDAP && rc->conn->kind != SYNC_CONN_AD)
		return sync_node_errf(err, sync_map_get(ldap, "connector"),
		    "connector '%s' is of type %s; the lease needs an ldap or "
		    "ad connector", rc->conn->name, rc->conn->typename);
	if (sync_map_bool(ldap, "require_pdc", &require_pdc, err) == -1)
		return -1;
	/* Only AD has a PDC emulator to ask; OpenLDAP's providers do not. */
	if (require_pdc != -1 && rc->conn->kind != SYNC_CONN_AD)
		return sync_node_errf(err, sync_map_get(ldap, "require_pdc"),
		    "'require_pdc' applies to an ad connector; '%s' is of "
		    "type %s", rc->conn->name, rc->conn->typename);
	rc->require_pdc = rc->conn->kind == SYNC_CONN_AD && require_pdc != 0;
	if (sync_map_check_unused(ldap, err) == -1)
		return -1;
	return sync_map_check_unused(lease, err);
}

int
sync_role_conf_parse(struct sync_config *cfg, struct sync_node *map,
    struct sync_err *err)
{
	struct sync_role_conf *rc;
	struct sync_node *lease;
	char host[256];
	long margin = -1;

	if (map == NULL)
		return 0;
	if (map->kind != SYNC_NODE_MAP)
		return sync_node_errf(err, map, "'role' must be a mapping, not "
		    "%s", sync_node_kindname(map->kind));
	if ((rc = calloc(1, sizeof *rc)) == NULL)
		return sync_node_errf(err, map, "out of memory");
	cfg->role = rc;
	rc->duration = 300;
	if (sync_map_str(map, "server", 0, &rc->server, err) == -1)
		return -1;
	if (rc->server == NULL) {
		if (gethostname(host, sizeof host) == -1)
			return sync_errno(err, "cannot get the host name");
		host[sizeof host - 1] = '\0';
		if ((rc->server = sync_strdup(host)) == NULL)
			return sync_node_errf(err, map, "out of memory");
		if (!valid_server(rc->server))
			return sync_node_errf(err, map, "the host name '%s' is "
			    "not a valid server name; set 'server'",
			    rc->server);
	} else if (!valid_server(rc->server)) {
		return sync_node_errf(err, sync_map_get(map, "server"),
		    "invalid server name '%s' (letters, digits, '.', '_' "
		    "and '-', at most %d)", rc->server, SYNC_ROLE_NAMEMAX - 1);
	}
	if (sync_map_int(map, "duration", 1, 86400, &rc->duration, err) == -1)
		return -1;
	if (sync_map_int(map, "margin", 0, 3600, &margin, err) == -1)
		return -1;
	if (margin == -1) {
		rc->margin = rc->duration / 4 < 5 ? rc->duration / 4 : 5;
	} else if (margin * 2 >= rc->duration) {
		return sync_node_errf(err, sync_map_get(map, "margin"),
		    "'margin' must be less than half of 'duration' (%ld)",
		    rc->duration);
	} else {
		rc->margin = margin;
	}
	if (sync_map_map(map, "lease", 1, &lease, err) == -1)
		return -1;
	if (parse_lease(cfg, rc, lease, err) == -1)
		return -1;
	return sync_map_check_unused(map, err);
}

/* ------------------------------------------------------------ the value */

static int
lease_parse(const char *s, struct lease *l, struct sync_err *err)
{
	const char *p = s;
	size_t n;
	char *end;
	unsigned long long f;
	long long e;

	memset(l, 0, sizeof *l);
	if (strncmp(p, "holder=", 7) != 0)
		goto bad;
	p += 7;
	n = strcspn(p, ";");
	if (n >= sizeof l->holder || (n > 0 && strspn(p, NAMECHARS) < n))
		goto bad;
	memcpy(l->holder, p, n);
	p += n;
	if (strncmp(p, ";fence=", 7) != 0 || p[7] < '0' || p[7] > '9')
		goto bad;
	errno = 0;
	f = strtoull(p + 7, &end, 10);
	if (errno || strncmp(end, ";expires=", 9) != 0)
		goto bad;
	p = end + 9;
	if ((*p < '0' || *p > '9') && *p != '-')
		goto bad;
	e = strtoll(p, &end, 10);
	if (errno || *end != '\0')
		goto bad;
	l->fence = f;
	l->expires = e;
	return 0;
bad:
	return sync_errf(err, "malformed lease value '%.200s' (expected "
	    "holder=NAME;fence=N;expires=UNIXTIME)", s);
}

static char *
lease_format(const struct lease *l)
{
	struct sync_buf b = { 0 };

	if (sync_buf_addf(&b, "holder=%s;fence=%" PRIu64 ";expires=%" PRId64,
	    l->holder, l->fence, l->expires) == -1) {
		sync_buf_release(&b);
		return NULL;
	}
	return sync_buf_detach(&b);
}

/* ----------------------------------------------------- the local view */

/* Reads STATE_DIR/role: "role active|staging" and "fence N" lines. */
static int
local_read(struct sync_role *r, int *active, uint64_t *fence,
    struct sync_err *err)
{
	struct sync_buf b = { 0 };
	char role[16];
	unsigned long long f;
	int n;

	*active = 0;
	*fence = 0;
	if (sync_state_dir(r->statedir, 0, err) == -1)
		return -1;
	if (access(r->statepath, F_OK) == -1 && errno == ENOENT)
		return 0;               /* a new server is staging */
	if (sync_file_read(r->statepath, 4096, &b, err) == -1)
		return -1;
	n = b.p ? sscanf(b.p, "role %15s\nfence %llu\n", role, &f) : 0;
	sync_buf_release(&b);
	if (n != 2 || (strcmp(role, "active") != 0 &&
	    strcmp(role, "staging") != 0))
		return sync_errf(err, "%s: malformed role state (expected "
		    "'role active|staging' and 'fence N')", r->statepath);
	*active = strcmp(role, "active") == 0;
	*fence = f;
	return 0;
}

static int
local_write(struct sync_role *r, int active, uint64_t fence,
    struct sync_err *err)
{
	struct sync_out out;

	if (sync_state_dir(r->statedir, 1, err) == -1)
		return -1;
	if (sync_out_open(&out, r->statepath, err) == -1)
		return -1;
	if (fprintf(out.fp, "role %s\nfence %" PRIu64 "\n",
	    active ? "active" : "staging", fence) < 0) {
		sync_errno(err, "cannot write '%s'", r->statepath);
		sync_out_abort(&out);
		return -1;
	}
	return sync_out_commit(&out, err);
}

/* ------------------------------------------------------------ the lease */

static int
lease_get(struct sync_role *r, struct lease *l, char **raw,
    struct sync_err *err)
{
	*raw = NULL;
	if (r->store->read(r->store, raw, err) == -1)
		return -1;
	if (lease_parse(*raw, l, err) == -1) {
		sync_errpre(err, "%s", r->rc->kind == SYNC_LEASE_FILE ?
		    r->rc->file : r->rc->kind == SYNC_LEASE_LDAP ? r->rc->dn :
		    r->rc->prefix);
		free(*raw);
		*raw = NULL;
		return -1;
	}
	return 0;
}

/* Writes new over raw: 0 done, 1 changed meanwhile, -1 error. */
static int
lease_put(struct sync_role *r, const char *raw, const struct lease *l,
    struct sync_err *err)
{
	char *v = lease_format(l);
	int rc;

	if (v == NULL)
		return sync_errf(err, "out of memory");
	if (r->pause_ms > 0) {
		/* For the race tests: widen the window a rival can use. */
		struct timespec ts = { r->pause_ms / 1000,
		    (r->pause_ms % 1000) * 1000000 };

		nanosleep(&ts, NULL);
	}
	rc = strcmp(v, raw) == 0 ? 0 : r->store->cas(r->store, raw, v, err);
	free(v);
	return rc;
}

static void
fill_status(struct sync_role *r, const struct lease *l, int64_t now,
    int active, uint64_t fence, struct sync_role_status *st)
{
	memset(st, 0, sizeof *st);
	snprintf(st->server, sizeof st->server, "%s", r->rc->server);
	st->local_active = active;
	st->local_fence = fence;
	memcpy(st->holder, l->holder, sizeof st->holder);
	st->fence = l->fence;
	st->expires = l->expires;
	st->now = now;
	st->margin = r->rc->margin;
	memcpy(st->dc, r->store->dc, sizeof st->dc);
	st->active = active && fence == l->fence &&
	    strcmp(l->holder, r->rc->server) == 0 &&
	    now + r->rc->margin < l->expires;
}

/* ---------------------------------------------------------------- the API */

int
sync_role_open(struct sync_config *cfg, struct sync_role **rolep,
    struct sync_err *err)
{
	struct sync_role *r;
	struct sync_buf b = { 0 };
	const char *pause;

	*rolep = NULL;
	if (cfg->role == NULL)
		return sync_errf(err, "%s: no 'role' section: this server "
		    "cannot become active (see sync.conf(5), ROLE)", cfg->path);
	if ((r = calloc(1, sizeof *r)) == NULL)
		return sync_errno(err, "role");
	r->rc = cfg->role;
	if ((r->statedir = sync_strdup(cfg->state_dir)) == NULL ||
	    sync_buf_addf(&b, "%s/role", cfg->state_dir) == -1) {
		sync_buf_release(&b);
		sync_role_free(r);
		return sync_errno(err, "role");
	}
	r->statepath = sync_buf_detach(&b);
	if ((pause = getenv("SYNC_ROLE_TEST_PAUSE")) != NULL)
		r->pause_ms = strtol(pause, NULL, 10);
	r->store = r->rc->kind == SYNC_LEASE_FILE ? lease_file_open(r->rc, err) :
	    r->rc->kind == SYNC_LEASE_LDAP ? lease_ldap_open(r->rc, err) :
	    lease_etcd_open(r->rc, err);
	if (r->store == NULL) {
		sync_role_free(r);
		return -1;
	}
	*rolep = r;
	return 0;
}

void
sync_role_free(struct sync_role *r)
{
	if (r == NULL)
		return;
	if (r->store)
		r->store->free(r->store);
	free(r->statedir);
	free(r->statepath);
	free(r);
}

int
sync_role_status(struct sync_role *r, struct sync_role_status *st,
    struct sync_err *err)
{
	struct lease l;
	uint64_t fence;
	char *raw;
	int active;

	if (local_read(r, &active, &fence, err) == -1 ||
	    lease_get(r, &l, &raw, err) == -1)
		return -1;
	free(raw);
	fill_status(r, &l, (int64_t)time(NULL), active, fence, st);
	return 0;
}

int
sync_role_fence(struct sync_role *r, uint64_t *fence, struct sync_err *err)
{
	int active;

	if (local_read(r, &active, fence, err) == -1)
		return -1;
	if (!active)
		*fence = 0;
	return 0;
}

int
sync_role_promote(struct sync_role *r, int force,
    struct sync_role_status *st, struct sync_err *err)
{
	const char *me = r->rc->server;
	struct lease l, n;
	uint64_t fence;
	int64_t now;
	char *raw;
	int tries, active, mine, valid, rc;

	for (tries = 0; tries < MAXTRIES; tries++) {
		if (local_read(r, &active, &fence, err) == -1 ||
		    lease_get(r, &l, &raw, err) == -1)
			return -1;
		now = (int64_t)time(NULL);
		mine = strcmp(l.holder, me) == 0;
		valid = l.holder[0] != '\0' && now < l.expires;
		fill_status(r, &l, now, active, fence, st);
		n = l;
		snprintf(n.holder, sizeof n.holder, "%s", me);
		n.expires = now + r->rc->duration;
		if (mine && active && fence == l.fence) {
			/* Ours already: a renewal keeps the fence. */
		} else if (valid && !mine && !force) {
			free(raw);
			sync_errf(err, "the lease is held by '%s' (fence %"
			    PRIu64 ") for %" PRId64 " more seconds; "
			    "demote it first, or wait", l.holder, l.fence,
			    l.expires - now);
			return SYNC_LEASE_LOST;
		} else {
			n.fence = l.fence + 1;
			if (valid && !mine) {
				st->forced = 1;
				memcpy(st->taken_from, l.holder,
				    sizeof st->taken_from);
			}
		}
		rc = lease_put(r, raw, &n, err);
		free(raw);
		if (rc == -1)
			return -1;
		if (rc == 1)
			continue;       /* another server was first: look again */
		if (local_write(r, 1, n.fence, err) == -1)
			return -1;
		valid = st->forced;
		fill_status(r, &n, now, 1, n.fence, st);
		if ((st->forced = valid))
			memcpy(st->taken_from, l.holder, sizeof st->taken_from);
		return SYNC_LEASE_HELD;
	}
	return sync_errf(err, "the lease changed %d times while taking it; "
	    "is another server forcing takeovers?", MAXTRIES);
}

int
sync_role_demote(struct sync_role *r, struct sync_role_status *st,
    struct sync_err *err)
{
	struct lease l, n;
	uint64_t fence;
	int64_t now;
	char *raw;
	int tries, active, rc;

	/* Staging first, so that no check of this server renews meanwhile. */
	if (local_read(r, &active, &fence, err) == -1 ||
	    local_write(r, 0, fence, err) == -1)
		return -1;
	for (tries = 0; tries < MAXTRIES; tries++) {
		if (lease_get(r, &l, &raw, err) == -1)
			return -1;
		now = (int64_t)time(NULL);
		fill_status(r, &l, now, 0, fence, st);
		if (strcmp(l.holder, r->rc->server) != 0) {
			free(raw);
			return 0;       /* not ours: nothing to release */
		}
		/* Released: no holder, the fence kept, expired now. */
		n = l;
		n.holder[0] = '\0';
		n.expires = now < l.expires ? now : l.expires;
		rc = lease_put(r, raw, &n, err);
		free(raw);
		if (rc == -1)
			return -1;
		if (rc == 0) {
			fill_status(r, &n, now, 0, fence, st);
			return 0;
		}
	}
	return sync_errf(err, "the lease changed %d times while releasing "
	    "it", MAXTRIES);
}

int
sync_lease_check(struct sync_role *r, uint64_t want, struct sync_err *err)
{
	const struct sync_role_conf *rc = r->rc;
	struct lease l, n;
	uint64_t fence;
	int64_t now, left;
	char *raw;
	int tries, active, put;

	if (local_read(r, &active, &fence, err) == -1)
		return -1;
	if (!active)
		return sync_errf(err, "server '%s' is staging", rc->server),
		    SYNC_LEASE_LOST;
	if (want != fence)
		return sync_errf(err, "server '%s' holds fencing number %"
		    PRIu64 ", not %" PRIu64, rc->server, fence, want),
		    SYNC_LEASE_LOST;
	for (tries = 0; tries < MAXTRIES; tries++) {
		if (lease_get(r, &l, &raw, err) == -1)
			return -1;
		if (strcmp(l.holder, rc->server) != 0 || l.fence != fence) {
			free(raw);
			if (l.holder[0] == '\0')
				sync_errf(err, "lease lost: released with "
				    "fence %" PRIu64, l.fence);
			else
				sync_errf(err, "lease lost: held by '%s' "
				    "with fence %" PRIu64, l.holder, l.fence);
			/* Staging from now on; the lost fence is kept. */
			(void)local_write(r, 0, fence, NULL);
			return SYNC_LEASE_LOST;
		}
		now = (int64_t)time(NULL);
		left = l.expires - now;
		if (left * 2 >= rc->duration && left > rc->margin) {
			free(raw);
			return SYNC_LEASE_HELD;
		}
		/*
		 * Past half its life: renew.  An expired lease that is still
		 * exactly ours was taken by nobody since, so renewing it
		 * keeps the guarantee.
		 */
		n = l;
		n.expires = now + rc->duration;
		put = lease_put(r, raw, &n, err);
		free(raw);
		if (put == 0)
			return SYNC_LEASE_HELD;
		if (put == -1)
			return left > rc->margin ? SYNC_LEASE_HELD : -1;
	}
	return sync_errf(err, "the lease changed %d times while renewing it",
	    MAXTRIES);
}
