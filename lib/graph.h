/*
 * graph.h: private interface of the Microsoft Graph connector.
 */
#ifndef SYNC_GRAPH_H
#define SYNC_GRAPH_H

#include <jansson.h>

#include "sync.h"

struct sync_graph_conf {
	char *tenant;
	char *client_id;
	char *secret_file;      /* client secret, mode 0600 */
	char *cert_file;        /* or a certificate and its key */
	char *key_file;
	char *token_url;        /* default: login.microsoftonline.com */
	char *graph_url;        /* default: https://graph.microsoft.com/v1.0 */
	char *ca_file;
	int tls_verify;
	int allow_http;         /* for the emulator only */
	long timeout;           /* seconds per request */
	long connections;       /* parallel connections for export */
	long page_size;         /* $top, at most 999 */
	long max_pages;         /* pages of one listing or delta round */
	long retry_budget;      /* seconds spent waiting on retries, at most */
	long write_limit;       /* writes the service allows per window */
	long write_window;      /* seconds; 0: no client-side limit */
	long create_settle;     /* seconds an unknown create is looked for */
	int enabled[SYNC_NOBJTYPES];
	struct sync_strv attrs[SYNC_NOBJTYPES]; /* properties to $select */
	struct sync_strv extra[SYNC_NOBJTYPES]; /* and those the flows need */
};

/* ---------------------------------------------------------- the client */

/*
 * A Graph client: the token, the retry budget and nconn connections.
 * Connection i is used by one thread at a time; the token and the
 * budget are shared (with locks), so nconn threads can each drive one
 * connection (the export's parallel writers).
 */
struct sync_graph;
struct sync_http;

/*
 * Opens a client for connector c (borrowed, must outlive it) with nconn
 * connections (at least 1).  Nothing is sent yet: the first request gets
 * the token.  Returns a new client (sync_graph_close), or NULL.
 */
struct sync_graph *sync_graph_open(struct sync_connector *c, int nconn,
    struct sync_err *err);
void sync_graph_close(struct sync_graph *g);
/*
 * Retries made so far, the retry budget left in seconds, and how many
 * of the HTTP layer's retries followed a 429 or a 503 (left and
 * throttled may be NULL).
 */
unsigned long sync_graph_retries(struct sync_graph *g, double *left,
    unsigned long *throttled);

/*
 * Replaces the notices of connector c's notify (see struct
 * sync_connector) with fn and ctx, before the client is used.
 */
void sync_graph_set_notify(struct sync_graph *g,
    void (*fn)(void *, const char *), void *ctx);
/* Hands msg to the notify, rate-limited as the HTTP layer's notices. */
void sync_graph_notice(struct sync_graph *g, const char *msg);

/*
 * Takes seconds of waiting from the run's retry budget, shared with the
 * HTTP retries, without sleeping: for the export, which reschedules a
 * throttled request inside a $batch rather than block its connection.
 * 0, or -1 with err set when the budget cannot pay for it.
 */
int sync_graph_budget_take(struct sync_graph *g, double seconds,
    struct sync_err *err);

/* Flags of sync_graph_call, besides SYNC_HTTP_IDEMPOTENT (http.h). */
#define SYNC_GRAPH_ANYSTATUS 0x100      /* a status >= 400 is not an error */

struct sync_graph_resp {
	long status;
	json_t *json;           /* the parsed body (new reference), or NULL */
	char request_id[80];
	double retry_after;     /* -1: absent */
	char *location;         /* owned, or NULL */
	int attempts;           /* 1 + retries */
	int budget_spent;       /* retries stopped by the retry budget */
};

void sync_graph_resp_release(struct sync_graph_resp *r);

/*
 * One Graph request on connection conn: path is relative to graph_url
 * ("/users?$select=id") or an absolute URL used verbatim (a nextLink).
 * body is JSON text or NULL; headers more "Name: value" lines, NULL-ended,
 * or NULL.  The token is added, fetched or renewed as needed; a 401 gets
 * one renewal and one more try.  Throttling and transient failures are
 * retried as sync_http_send says (flags: SYNC_HTTP_IDEMPOTENT for GET,
 * PATCH, DELETE and batches of those).
 *
 * Returns 0 with r filled (released first); a status >= 400 is an error
 * (-1, err in the house style: "name: METHOD URL failed: 403 code:
 * message (request-id ...)") unless SYNC_GRAPH_ANYSTATUS is set.
 */
int sync_graph_call(struct sync_graph *g, int conn, const char *method,
    const char *path, const char *body, const char *const *headers,
    int flags, struct sync_graph_resp *r, struct sync_err *err);

/*
 * Whether link (an absolute URL from the service, or from a snapshot's
 * cookie) may be followed with the token: 0 when it has the scheme, host
 * (in any case) and port (the scheme's by default) of graph_url, and a
 * path under graph_url's; else -1 with err naming what (e.g. "a
 * nextLink") and where it leads, the query never.
 */
int sync_graph_link_check(struct sync_connector *c, const char *what,
    const char *link, struct sync_err *err);

/* The house-style message for a Graph error response r. */
int sync_graph_errf(struct sync_err *err, struct sync_graph *g,
    const char *method, const char *url, const struct sync_graph_resp *r);

/* graph-auth.c: the token of the client-credentials grant. */
struct sync_graph_auth;

struct sync_graph_auth *sync_graph_auth_new(struct sync_connector *c,
    struct sync_err *err);
void sync_graph_auth_free(struct sync_graph_auth *a);
/*
 * Sets *hdr to a new "Bearer ..." value (the caller wipes and frees it
 * with sync_secret_free) and *gen to the token's generation, fetching a
 * token over h when there is none, it is due for renewal, or force is
 * set and the current one is still generation *gen (so that threads that
 * all got a 401 with the same token renew it once).
 */
int sync_graph_auth_header(struct sync_graph_auth *a, struct sync_http *h,
    int force, long *gen, char **hdr, struct sync_err *err);
/* Token requests made so far. */
unsigned long sync_graph_auth_count(struct sync_graph_auth *a);

/* ------------------------------------------------------------- import */

/* The $select list of type t (comma-separated) appended to out. */
int sync_graph_select(struct sync_connector *c, enum sync_objtype t,
    struct sync_buf *out, struct sync_err *err);
/*
 * GETs every page from first on over connection conn (following each
 * @odata.nextLink as it is, when sync_graph_link_check allows it),
 * handing each item of "value" to item.  Bounded: at most max_pages
 * pages, and SYNC_GRAPH_SAME_MAX pages in a row whose nextLink is the
 * URL just read (Graph may send an empty page with a nextLink to the
 * same place, but not without end).  With deltalink, the pages are a
 * delta round: *deltalink gets the last page's @odata.deltaLink (checked
 * as a nextLink is; the caller frees it), and where the service refuses
 * the link (410 Gone, syncStateNotFound) the return is 1 with err
 * "STATUS CODE".  Returns 0, or -1 with err set.
 */
#define SYNC_GRAPH_SAME_MAX 100
int sync_graph_pages(struct sync_graph *g, int conn, const char *first,
    int (*item)(void *, json_t *, struct sync_err *), void *arg,
    char **deltalink, struct sync_err *err);
/* The properties of the Graph object e as attributes of o (name is
 * scratch), only those named in only when it is not NULL; -1 when out
 * of memory. */
int sync_graph_obj_props(struct sync_obj *o, json_t *e, struct sync_buf *name,
    const struct sync_strv *only);
/* "select <hex>": the digest of what an import of c reads (the service,
 * the $select lists), the first line of a Graph cookie; a delta from a
 * cookie with another digest is refused. */
int sync_graph_delta_digest(struct sync_connector *c, struct sync_buf *out,
    struct sync_err *err);

#endif
