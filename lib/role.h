/*
 * role.h: private interface of the role lease (lib/role.c) and its two
 * stores, a local file (lib/lease-file.c), an LDAP entry
 * (lib/lease-ldap.c) and keys in etcd (lib/lease-etcd.c).
 */
#ifndef SYNC_ROLE_H
#define SYNC_ROLE_H

#include "sync.h"

enum sync_lease_kind { SYNC_LEASE_FILE, SYNC_LEASE_LDAP, SYNC_LEASE_ETCD };

/* The role section of sync.conf(5). */
struct sync_role_conf {
	char *server;                   /* this server's name */
	long duration;                  /* seconds a take or renewal lasts */
	long margin;                    /* seconds of clock skew tolerated */
	enum sync_lease_kind kind;
	char *file;                     /* FILE: the lease file */
	struct sync_connector *conn;    /* LDAP: borrowed from the config */
	char *dn;                       /* LDAP: the lease entry */
	char *attribute;                /* LDAP: its attribute */
	int require_pdc;                /* LDAP on AD: only on the PDC emulator */
	struct sync_strv endpoints;     /* ETCD: client URLs, tried in order */
	char *prefix;                   /* ETCD: keys PREFIX/lease, PREFIX/fence */
	char *ca_file;                  /* ETCD: TLS */
	char *cert_file;
	char *key_file;
	char *user;                     /* ETCD: auth, with password_file */
	char *password_file;
	long timeout;                   /* ETCD: seconds per request */
};

/* Parses map (NULL: no role section) into cfg->role. */
int sync_role_conf_parse(struct sync_config *cfg, struct sync_node *map,
    struct sync_err *err);
void sync_role_conf_free(struct sync_role_conf *rc);

/*
 * A lease store holds one value, "holder=NAME;fence=N;expires=T".
 * read gives the value as stored (a new string the caller frees);
 * cas replaces the value old by new only if the store still holds old,
 * atomically: it returns 0 when it did, 1 when the store held something
 * else (nothing changed), -1 on an error (the outcome may be unknown).
 */
struct lease_store {
	int (*read)(struct lease_store *s, char **value, struct sync_err *err);
	int (*cas)(struct lease_store *s, const char *old, const char *new,
	    struct sync_err *err);
	void (*free)(struct lease_store *s);
	/* Set by read on AD: the DC it checked is the PDC emulator, or "". */
	char dc[SYNC_ROLE_DCMAX];
};

struct lease_store *lease_file_open(const struct sync_role_conf *rc,
    struct sync_err *err);
struct lease_store *lease_ldap_open(const struct sync_role_conf *rc,
    struct sync_err *err);
struct lease_store *lease_etcd_open(const struct sync_role_conf *rc,
    struct sync_err *err);

/* The value of a lease that was never taken. */
#define LEASE_INITIAL "holder=;fence=0;expires=0"

#endif
