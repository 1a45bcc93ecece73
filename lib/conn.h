/*
 * conn.h: private interface between the config loader and the
 * connectors.  Each connector parses its own section of the config.
 */
#ifndef SYNC_CONN_H
#define SYNC_CONN_H

#include "sync.h"

struct xplan;

/*
 * What a kind of connector can do (conn.c holds one row per kind).  A
 * connector's ops point at its row once its config is parsed.
 *  conf_parse  parses the connector's section (map) into c; -1 with err
 *              set, file:line:column.
 *  conf_free   releases what conf_parse set.
 *  import      a full import: hands every object in scope to fn; *cookie:
 *              NULL, or the cookie a delta import starts from, a new
 *              string the caller frees (see sync-snapshot(5)).
 *  import_delta  a delta import from the snapshot at prev: 0 when done
 *              (res filled), 1 when a full import is needed instead
 *              (res->why says why; nothing was handed to fn), -1 on
 *              error; NULL when the kind has no delta.
 *  export      applies the plan p to the connector (see export.h); NULL
 *              when the kind cannot be a target.
 *  target_attr checks the name of an attribute that a flow of type t
 *              writes to the connector: 0, or -1 with why (a phrase
 *              after the name) appended to why; NULL: any name.
 */
struct sync_connops {
	const char *type;               /* as the config spells it */
	enum sync_conn_kind kind;
	int (*conf_parse)(struct sync_connector *c, struct sync_node *map,
	    struct sync_err *err);
	void (*conf_free)(struct sync_connector *c);
	int (*import)(struct sync_connector *c, sync_obj_fn fn, void *ctx,
	    char **cookie, struct sync_err *err);
	int (*import_delta)(struct sync_connector *c, const char *prev,
	    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
	    struct sync_err *err);
	int (*export)(struct xplan *p, struct sync_err *err);
	int (*target_attr)(enum sync_objtype t, const char *name,
	    struct sync_buf *why);
};

/* The row of connector type type ("ldap", ...), or NULL (borrowed). */
const struct sync_connops *sync_connops_find(const char *type);
/* Appends the known types to b, for messages: "ldap, ad or graph". */
void sync_connops_types(struct sync_buf *b);

struct sync_ldap_objconf {
	int enabled;
	char *filter;                   /* RFC 4515 filter */
	struct sync_strv attrs;         /* attributes to read */
	struct sync_strv base_dns;      /* overrides the connector's */
	struct sync_strv exclude;       /* added to the connector's */
};

struct sync_ldap_conf {
	char *url;              /* one URL, or a list that libldap fails over */
	char *cleartext_url;    /* the first ldap:// URL of url, or NULL */
	int starttls;
	char *ca_file;
	int tls_verify;
	char *bind_dn;
	char *password_file;
	char *sasl_mech;
	int allow_cleartext_bind;
	long timeout;                   /* seconds */
	long page_size;
	long range_step;                /* 0: as the server sends */
	long write_window;              /* export: operations outstanding */
	struct sync_strv base_dns;
	struct sync_strv exclude;       /* subtrees left out */
	struct sync_strv anchor;        /* attributes tried in order */
	struct sync_strv binary;        /* attributes carried as base64 */
	struct sync_ldap_objconf obj[SYNC_NOBJTYPES];
};

/*
 * Connects and binds as LDAP/AD connector c says (TLS, CA file, SASL or
 * simple bind); *ld (an LDAP *) is new, released by ldap_unbind_ext_s.
 */
struct ldap;
int sync_ldap_connect(struct sync_connector *c, struct ldap **ld,
    struct sync_err *err);

int sync_ldap_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err);
void sync_ldap_conf_free(struct sync_ldap_conf *lc);

/*
 * "what: result (code): diagnostic; matched DN 'x'", the LDAP result and
 * what the server said about it (read from ld when not NULL).  -1.
 */
struct ldap;
int sync_ldap_errf(struct sync_err *err, struct ldap *ld, int rc,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An open LDAP connection of connector c (ldap.c). */
struct sync_ldap {
	struct ldap *ld;
	struct sync_connector *c;
	struct sync_ldap_conf *lc;
};

/* Connects and binds l (which it fills) as c says; -1 with err set. */
int sync_ldap_open(struct sync_ldap *l, struct sync_connector *c,
    struct sync_err *err);
void sync_ldap_close(struct sync_ldap *l);
/*
 * The search result entry e (an LDAPMessage) as object o of type type,
 * which the caller releases; -1 with err set.
 */
struct ldapmsg;
int sync_ldap_entry_obj(struct sync_ldap *l, struct ldapmsg *e,
    enum sync_objtype type, struct sync_obj *o, struct sync_err *err);
/*
 * Ranged retrieval (AD's MaxValRange, see sync.conf(5) range_step).
 * sync_ldap_attr_len: the length of attribute description name without
 * ";range=..." and ";binary".  sync_ldap_range: 1 when name has
 * ";range=LOW-HIGH", *high then HIGH (-1 for "*"), else 0.
 * sync_ldap_range_fetch reads the rest of attribute name (nlen bytes) of
 * entry dn from value next on, in windows ("name;range=NEXT-*", or of
 * range_step values), until the server marks the last window or has no
 * more: fn(ctx, vals, err) for the values of each (borrowed); 0, or -1
 * with err set (by fn, or the LDAP error).
 */
struct berval;
typedef int (*sync_ldap_vals_fn)(void *ctx, struct berval **vals,
    struct sync_err *err);
size_t sync_ldap_attr_len(const char *name);
int sync_ldap_range(const char *name, long *high);
int sync_ldap_range_fetch(struct sync_ldap *l, const char *dn,
    const char *name, size_t nlen, long next, sync_ldap_vals_fn fn,
    void *ctx, struct sync_err *err);
/* 1 when dn is in a subtree the connector or the type oc leaves out. */
int sync_ldap_excluded(struct sync_ldap_conf *lc, struct sync_ldap_objconf *oc,
    const char *dn);
/* Appends to out the attributes to ask for: the configured ones, the
 * anchors, the ids; -1 when out of memory. */
int sync_ldap_request_attrs(struct sync_ldap *l, struct sync_ldap_objconf *oc,
    struct sync_strv *out);

/* Imports, per kind of connector (see sync_import).  *cookie: NULL, or
 * for an ldap connector whose server offers content synchronization
 * (an ad connector whose account may use DirSync), the cookie a delta
 * import starts from (see sync-snapshot(5)); the caller frees it. */
int sync_ldap_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err);
/*
 * The LDAP content synchronization (RFC 4533) part of ldap-delta.c.
 * sync_ldap_sync_cookie asks the server for its current cookie at base:
 * 0 and *cookie (a new string, base64, the caller frees), 1 when the
 * server offers none, -1 on error.
 */
int sync_ldap_sync_cookie(struct sync_ldap *l, const char *base,
    char **cookie, struct sync_err *err);
/*
 * The DirSync part of ldap-delta.c, for ad connectors.
 * sync_ad_dirsync_cookie asks the server for its DirSync cookie of the
 * domain: 0 and *cookie (a new string, the whole snapshot cookie), 1
 * when it gives none, -1 on error.  sync_ad_import_delta is as
 * sync_graph_import_delta.
 */
int sync_ad_dirsync_cookie(struct sync_ldap *l, char **cookie,
    struct sync_err *err);
int sync_ad_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err);
/* The cookie of a full import from the server cookies of its searches
 * (in the order sync_ldap_import makes them), or NULL; new string. */
char *sync_ldap_cookie_make(struct sync_connector *c, char **cookies,
    size_t n, struct sync_err *err);
/* A delta import, as sync_graph_import_delta. */
int sync_ldap_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err);
/* *cookie: the deltaLinks of the types read, for sync_graph_import_delta
 * (see sync-snapshot(5)); the caller frees it. */
int sync_graph_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err);
/*
 * A delta import from the snapshot at prev: 0 when done (res filled), 1
 * when a full import is needed instead (res->why says why; nothing was
 * handed to fn), -1 on error.
 */
int sync_graph_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err);

int sync_graph_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err);
void sync_graph_conf_free(struct sync_graph_conf *gc);

#endif
