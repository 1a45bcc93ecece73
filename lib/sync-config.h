/*
 * sync-config.h: the configuration file (sync.conf(5)), part of the
 * public interface; included by sync.h.
 *
 * The YAML file is loaded into a small tree of nodes that remember their
 * file, line and column, so that every error can name its position.
 * Aliases and anchors are refused (a config needs none, and refusing
 * them makes "billion laughs" impossible); tags are refused too.
 * ${NAME} in a scalar is replaced by the environment variable NAME, and
 * an unset variable is an error; $$ is a literal dollar sign.
 */
#ifndef SYNC_CONFIG_H
#define SYNC_CONFIG_H

enum sync_node_kind { SYNC_NODE_SCALAR, SYNC_NODE_SEQ, SYNC_NODE_MAP };

struct sync_node {
	enum sync_node_kind kind;
	const char *file;       /* borrowed from the tree */
	int line, col;          /* 1-based */
	char *str;              /* SCALAR: the value after ${} expansion */
	int quoted;             /* SCALAR: written in quotes */
	size_t n;               /* SEQ: items; MAP: pairs */
	struct sync_node **items;  /* SEQ: n items; MAP: 2n, key then value */
	size_t cap;             /* room in items (yaml.c grows it) */
	int used;               /* MAP key: consumed by a reader */
};

/*
 * Parses a YAML file (or "-") into a tree.  Returns the root (a MAP), owned
 * by the caller, freed with sync_node_free.  Limits: 64 levels of nesting,
 * 1 MiB of input.
 */
struct sync_node *sync_yaml_load(const char *path, struct sync_err *err);
/* Same from a memory buffer; name is used in messages. */
struct sync_node *sync_yaml_loadb(const char *name, const char *buf,
    size_t len, struct sync_err *err);
void sync_node_free(struct sync_node *root);

/*
 * Readers for typed values.  Each marks the key as used; a missing
 * optional key leaves *out untouched and returns 0.  Errors name the
 * position of the offending node.  Strings returned are new copies the
 * caller owns.
 */
struct sync_node *sync_map_get(struct sync_node *map, const char *key);
int sync_map_str(struct sync_node *map, const char *key, int required,
    char **out, struct sync_err *err);
int sync_map_bool(struct sync_node *map, const char *key, int *out,
    struct sync_err *err);
int sync_map_int(struct sync_node *map, const char *key, long min, long max,
    long *out, struct sync_err *err);
/*
 * A file name: a relative one is taken from dir (the config file's
 * directory), so that a config means the same from any working directory.
 */
int sync_map_path(struct sync_node *map, const char *key, const char *dir,
    int required, char **out, struct sync_err *err);
/* A scalar or a sequence of scalars, appended to out. */
int sync_map_strv(struct sync_node *map, const char *key,
    struct sync_strv *out, struct sync_err *err);
/* A MAP node or an error naming key and position; NULL if absent. */
int sync_map_map(struct sync_node *map, const char *key, int required,
    struct sync_node **out, struct sync_err *err);
/* Fails on the first key of map that no reader used. */
int sync_map_check_unused(struct sync_node *map, struct sync_err *err);
/* "file:line:col: " prefix for a node, and an error at a node. */
int sync_node_errf(struct sync_err *err, const struct sync_node *node,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *sync_node_kindname(enum sync_node_kind k);

/* ------------------------------------------------------------ connectors */

enum sync_objtype { SYNC_USER, SYNC_GROUP, SYNC_CONTACT, SYNC_NOBJTYPES };

const char *sync_objtype_name(enum sync_objtype t);
/* Returns the type for "user", "group" or "contact", or -1. */
int sync_objtype_parse(const char *s);

enum sync_conn_kind {
	SYNC_CONN_LDAP,     /* a standards LDAP directory (OpenLDAP, 389-ds) */
	SYNC_CONN_AD,       /* Active Directory, Samba AD */
	SYNC_CONN_GRAPH,    /* Entra ID through Microsoft Graph */
	SYNC_CONN_SCIM,     /* a SCIM 2.0 service provider */
};

struct sync_ldap_conf;
struct sync_graph_conf;
struct sync_scim_conf;
struct sync_role_conf;
struct sync_connops;

struct sync_connector {
	char *name;
	enum sync_conn_kind kind;
	const char *typename;           /* "ldap", "ad", "graph", "scim" */
	const struct sync_connops *ops; /* what its kind can do (conn.h) */
	int line, col;                  /* where it is defined */
	const char *confdir;            /* the config file's directory */
	struct sync_ldap_conf *ldap;    /* LDAP and AD */
	struct sync_graph_conf *graph;  /* Graph */
	struct sync_scim_conf *scim;    /* SCIM */
	/* The attribute in which flows into this connector stamp their
	 * anchor unless they name one (borrowed from the connector's own
	 * config), or NULL: onPremisesImmutableId. */
	const char *anchor_attr;
	/* %Name% in expressions over this connector's objects: names[i]
	 * has the value values[i] (the parameters key, then the defaults
	 * derived from base_dn and the name) */
	struct sync_strv param_names, param_values;

	/*
	 * Set by a binary, not by the config, before the connector is
	 * used: called with a message when a request to the service keeps
	 * failing and is about to wait again before a retry (see struct
	 * sync_retry in lib/http.h), since the library never prints.  msg
	 * is borrowed for the call; calls may come from several threads.
	 * NULL: no notices.
	 */
	void (*notify)(void *ctx, const char *msg);
	void *notify_ctx;
};

struct sync_config {
	char *path;
	char *dir;                      /* the directory the file is in */
	char *state_dir;                /* default /var/lib/sync */
	struct sync_connector *conns;
	size_t nconns;
	unsigned char digest[32];       /* SHA-256 of the file's bytes */
	char digest_hex[65];
	struct sync_node *root;         /* kept for later sections */
	struct sync_role_conf *role;    /* the role section, NULL if none */
};

/*
 * Loads and checks a config file.  Returns a new config the caller frees
 * with sync_config_free, or NULL with err set ("file:line:col: ...").
 */
struct sync_config *sync_config_load(const char *path, struct sync_err *err);
/*
 * The config file a verb reads when -c is not given: SYNC_CONFIG, else
 * /etc/sync/sync.yaml (borrowed).
 */
const char *sync_config_default(void);

/* The same from a buffer; name is the file name used in messages. */
struct sync_config *sync_config_loadb(const char *name, const char *buf,
    size_t len, struct sync_err *err);
void sync_config_free(struct sync_config *cfg);
/* The connector called name, or NULL with err set. */
struct sync_connector *sync_config_connector(struct sync_config *cfg,
    const char *name, struct sync_err *err);

/*
 * The value of the expression parameter name (without the percent signs,
 * compared without regard to case) for objects of connector c, borrowed;
 * NULL when c has no such parameter.
 */
const char *sync_connector_param(const struct sync_connector *c,
    const char *name);

/* The URL of the connector's server (borrowed). */
const char *sync_connector_url(const struct sync_connector *c);

/*
 * The list of attributes connector c reads for type t, to which more may
 * be added before an import (borrowed; NULL when c does not read t).
 */
struct sync_strv *sync_connector_attrs(struct sync_connector *c,
    enum sync_objtype t);

/* SHA-256, for the config digest and change-set checks. */
void sync_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
