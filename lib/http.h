/*
 * http.h: private interface of the HTTP client (libcurl) that the Graph
 * connector, and later SCIM, speak through.
 *
 * One struct sync_http is one connection (a libcurl easy handle, kept
 * alive between requests).  It is used by one thread at a time; several
 * connections used from several threads share one struct sync_retry,
 * the run's budget of seconds spent waiting before retries.
 */
#ifndef SYNC_HTTP_H
#define SYNC_HTTP_H

#include <pthread.h>

#include "sync.h"

/*
 * The retry budget: seconds of wall-clock time the run may spend with at
 * least one request waiting to be retried.
 */
struct sync_retry {
	pthread_mutex_t mu;
	double total;           /* as configured */
	double left;
	double until;           /* when the latest wait ends (CLOCK_MONOTONIC) */
	unsigned long retries;  /* retries made so far (for tests, stats) */
	unsigned long throttled;        /* of which after a 429 or a 503 */
	double throttled_until; /* when the latest such wait ends (SCIM's
				   connections hold back until then) */

	/*
	 * Optional, set before the connections are used: told of a
	 * request that has been failing for SYNC_RETRY_NOTICE seconds or
	 * more before each further wait, so that a binary can say why it
	 * seems to hang (an unreachable or throttled service).  msg is
	 * borrowed for the call; calls come from any thread, at most one
	 * per SYNC_RETRY_NOTICE seconds for the whole budget, and never
	 * with mu held.
	 */
	void (*notify)(void *ctx, const char *msg);
	void *notify_ctx;
	double notified;        /* when the last notice was given */
};

#define SYNC_RETRY_NOTICE 5.0   /* seconds */

void sync_retry_init(struct sync_retry *r, double seconds);
void sync_retry_release(struct sync_retry *r);
/*
 * A wait of delay seconds from now: takes from the budget what it adds
 * to the time already waited (nothing when it ends before a wait already
 * taken).  0, or -1 (nothing taken) when that does not fit.
 */
int sync_retry_take(struct sync_retry *r, double delay);
/*
 * Hands msg to r's notify when there is one and no notice was given in
 * the last SYNC_RETRY_NOTICE seconds (or force is set).
 */
void sync_retry_notice(struct sync_retry *r, int force, const char *msg);

struct sync_http_opts {
	const char *who;        /* the connector name, prefix of messages */
	const char *ca_file;    /* PEM CAs to trust; NULL: the system's */
	const char *cert_file;  /* PEM client certificate, or NULL */
	const char *key_file;   /* its PEM key (no passphrase), or NULL */
	int tls_verify;         /* 0 only when the config says so */
	long timeout;           /* seconds: connecting, and the whole request */
	struct sync_retry *retry;       /* borrowed, shared; NULL: no retries */
};

/* Request flags. */
#define SYNC_HTTP_IDEMPOTENT 1  /* safe to resend after a dropped connection,
				   a timeout or a 5xx (GET, PATCH, DELETE,
				   $batch of such requests) */

struct sync_http_req {
	const char *method;             /* "GET", "POST", "PATCH", ... */
	const char *url;
	const char *body;               /* NULL: none */
	size_t bodylen;
	const char *content_type;       /* of the body */
	const char *accept;             /* Accept; NULL: application/json */
	const char *authorization;      /* header value; never in messages */
	const char *const *headers;     /* more "Name: value", NULL-ended */
	int flags;
};

/*
 * A response.  The struct owns body and location; release it with
 * sync_http_resp_release (which zeroes it for reuse).
 */
struct sync_http_resp {
	long status;                    /* 0: no response */
	struct sync_buf body;
	char content_type[128];
	char request_id[80];            /* the service's request-id header */
	char etag[128];                 /* the ETag header (SCIM), or "" */
	char client_request_id[40];     /* the GUID sent with the request */
	double retry_after;             /* Retry-After in seconds, -1: absent */
	char *location;                 /* Location header, or NULL */
	int attempts;                   /* 1 + retries made */
	int budget_spent;               /* a retry was due, the budget said no */
};

void sync_http_resp_release(struct sync_http_resp *r);

/*
 * A new connection, or NULL with err set.  The options are copied,
 * except retry, which is borrowed and must outlive the connection.
 */
struct sync_http *sync_http_new(const struct sync_http_opts *o,
    struct sync_err *err);
void sync_http_free(struct sync_http *h);

/*
 * Sends q and reads the response into r (released first), retrying:
 * 429 and 503 always (the service refused to run the request: throttled,
 * or unavailable), and for SYNC_HTTP_IDEMPOTENT requests also 500, 502,
 * 504, timeouts and dropped connections; a connection that could not be made is retried
 * for any request.  The wait is Retry-After when the service sends one
 * (fractional seconds too), else an exponential backoff with jitter,
 * and is taken from the retry budget; when the budget cannot pay for
 * the next wait, the last response is returned with budget_spent set.
 *
 * Returns 0 when a response arrived, whatever its status (the caller
 * judges it), or -1 with err set ("who: METHOD URL failed: reason")
 * when none did.
 */
int sync_http_send(struct sync_http *h, const struct sync_http_req *q,
    struct sync_http_resp *r, struct sync_err *err);

/*
 * Retry-After as seconds: an integer or a fractional number ("2.128"),
 * or an HTTP date.  Returns -1 when v cannot be read.
 */
double sync_http_retry_after(const char *v);

/* A random (version 4) GUID, lower case. */
void sync_http_guid(char out[37]);

/*
 * The URL as it goes into a message: at most max bytes, cut with "..."
 * (a nextLink's opaque skiptoken says nothing to a reader).
 */
void sync_http_url_trim(const char *url, char *out, size_t max);

#endif
