/*
 * scim.h: private interface of the SCIM 2.0 connector (RFC 7643 schema,
 * RFC 7644 protocol): its config (scim-conf.c), the client and the import
 * (scim.c).  The export (scim-export.c) builds on the same client.
 */
#ifndef SYNC_SCIM_H
#define SYNC_SCIM_H

#include <jansson.h>

#include "sync.h"

#define SYNC_SCIM_USER_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:User"
#define SYNC_SCIM_GROUP_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SYNC_SCIM_ENTERPRISE \
	"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
/* The short prefix of the enterprise extension's attributes in
 * snapshots: "enterprise:employeeNumber" (sync-snapshot(5)). */
#define SYNC_SCIM_ENTERPRISE_PREFIX "enterprise:"

struct sync_scim_conf {
	char *url;              /* base URL, no trailing slash */
	char *token_file;       /* the bearer token, mode 0600 */
	char *ca_file;
	int tls_verify;
	int allow_http;         /* for a test server only */
	long timeout;           /* seconds per request */
	long page_size;         /* count= of each page */
	long max_pages;         /* pages of one listing, at most */
	long retry_budget;      /* seconds spent waiting on retries, at most */
	long connections;       /* parallel connections for export */
	long create_settle;     /* seconds a lost create is looked for */
	char *anchor;           /* the attribute that carries our anchor:
	                         * externalId by default */
	int enabled[SYNC_NOBJTYPES];
	char *endpoint[SYNC_NOBJTYPES];         /* "/Users", "/Groups" */
	/* snapshot attribute names to keep; empty: all that come */
	struct sync_strv attrs[SYNC_NOBJTYPES];
	/* and those the flows into the connector write (sync-import adds
	 * them), kept too when attrs is not empty */
	struct sync_strv extra[SYNC_NOBJTYPES];
};

int sync_scim_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err);
void sync_scim_conf_free(struct sync_scim_conf *sc);
/*
 * Checks a target attribute name of a flow of type t into a SCIM
 * connector (the names of sync-snapshot(5)): 0, or -1 with why (a
 * phrase that follows the name) appended to why.
 */
int sync_scim_target_attr(enum sync_objtype t, const char *name,
    struct sync_buf *why);

/* ---------------------------------------------------------- the client */

struct sync_scim;

/*
 * Opens a client for connector c (borrowed, must outlive it) with nconn
 * connections (at least 1) and reads the bearer token from its
 * token_file.  Nothing is sent yet.  Returns a new client
 * (sync_scim_close), or NULL with err set.
 */
struct sync_scim *sync_scim_open(struct sync_connector *c, int nconn,
    struct sync_err *err);
void sync_scim_close(struct sync_scim *s);
/* Retries made so far, and how many followed a 429 or a 503. */
unsigned long sync_scim_retries(struct sync_scim *s, unsigned long *throttled);
/*
 * The retry budget that s's connections share (borrowed: it lives as
 * long as s), for a caller that waits between requests of its own (the
 * export's backoff between tries of a change) and takes those waits from
 * the same budget.  Its notify may be set before the first request.
 */
struct sync_retry *sync_scim_retry(struct sync_scim *s);

/* Flags of sync_scim_call, besides SYNC_HTTP_IDEMPOTENT (http.h). */
#define SYNC_SCIM_ANYSTATUS 0x100       /* the caller judges the answer: a
					   status >= 400 is not an error,
					   nor a body that is not JSON */

struct sync_scim_resp {
	long status;
	json_t *json;           /* the parsed body (new reference), or NULL */
	char *etag;             /* the ETag header (owned), or NULL */
	char *location;         /* the Location header (owned), or NULL */
	int attempts;           /* 1 + retries */
	int budget_spent;       /* a retry was due, the budget said no */
};

void sync_scim_resp_release(struct sync_scim_resp *r);

/*
 * One SCIM request on connection conn: path is relative to the base URL
 * ("/Users?startIndex=1&count=100"), already percent-encoded.  body is
 * JSON text or NULL (sent as application/scim+json); headers more
 * "Name: value" lines, NULL-ended, or NULL (e.g. "If-Match: W/\"3\"").
 * Throttling and transient failures are retried as sync_http_send says
 * (flags: SYNC_HTTP_IDEMPOTENT for GET, PUT, DELETE and PATCHes that are
 * safe to repeat; a request without it goes over a fresh connection).
 * After a 429 or a 503 on any connection of s, every connection holds
 * back until its Retry-After has passed, so that the others do not add
 * to the storm.  A body that is not JSON is an error for a status below
 * 300 and ignored otherwise.
 *
 * Returns 0 with r filled (released first); a status >= 400 is an error
 * (-1, err in the house style: "name: METHOD URL failed: 409 uniqueness:
 * detail") unless SYNC_SCIM_ANYSTATUS is set.
 */
int sync_scim_call(struct sync_scim *s, int conn, const char *method,
    const char *path, const char *body, const char *const *headers,
    int flags, struct sync_scim_resp *r, struct sync_err *err);

/* The house-style message for a SCIM error response r; -1. */
int sync_scim_errf(struct sync_err *err, struct sync_scim *s,
    const char *method, const char *path, const struct sync_scim_resp *r);

/*
 * Appends to b the query value of a filter "attr eq value" for the
 * string value, the literal a JSON string (RFC 7644 3.4.2.2) and the
 * whole percent-encoded: attr%20eq%20%22...%22.  -1 when out of memory.
 */
int sync_scim_filter_eq(struct sync_buf *b, const char *attr,
    const char *value);

/*
 * Where the attribute of name starts after the schema URN that name
 * begins with, if it does ("urn:...:2.0:User:manager.value": at
 * "manager", past the last ':' before any value filter): a pointer into
 * name, which is name itself when it does not begin with "urn:".
 */
const char *sync_scim_urn_end(const char *name);

/*
 * Flattens the SCIM resource res (borrowed) of type t into object o's
 * attributes, as sync-snapshot(5) says: id and anchor aside, complex
 * attributes as "name.givenName", multi-valued complex ones as
 * "emails.value" and "emails[type eq \"work\"].value", the enterprise
 * extension under "enterprise:", group members as "members" (SCIM ids).
 * Keeps only the names of keep when keep has any.  -1 with err set.
 */
int sync_scim_flatten(json_t *res, enum sync_objtype t,
    const struct sync_strv *keep, struct sync_obj *o, struct sync_err *err);

/* The full import (conn.c's import slot for kind scim). */
int sync_scim_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err);

#endif
