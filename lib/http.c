/*
 * http.c: the HTTP client: one libcurl easy handle per connection, kept
 * alive, TLS verified, and retries within the run's budget.
 */
#include <sys/random.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"

#define BODY_MAX ((size_t)256 << 20)    /* a response larger is refused */
#define BACKOFF_BASE 0.25               /* seconds before the first retry */
#define BACKOFF_CAP 32.0
#define ATTEMPTS_MAX 40

struct sync_http {
	CURL *curl;
	char *who;
	char *ca_file;
	char *cert_file;
	char *key_file;
	int tls_verify;
	long timeout;
	struct sync_retry *retry;
	struct sync_http_resp *cur;     /* filled by the callbacks */
	int toobig;
	char errbuf[CURL_ERROR_SIZE];
	unsigned long long rng;         /* jitter */
};

/* ------------------------------------------------------------ the budget */

void
sync_retry_init(struct sync_retry *r, double seconds)
{
	pthread_mutex_init(&r->mu, NULL);
	r->total = r->left = seconds;
	r->until = 0;
	r->retries = 0;
	r->throttled = 0;
	r->throttled_until = 0;
	r->notify = NULL;
	r->notify_ctx = NULL;
	r->notified = -1e9;
}

void
sync_retry_release(struct sync_retry *r)
{
	pthread_mutex_destroy(&r->mu);
}

/*
 * The budget is wall-clock time during which some request is waiting:
 * waits that overlap (several connections behind one 429, several
 * changes waiting for the same object to show) are counted once.  Every
 * wait starts now and now only grows, so the union of the waits so far
 * is kept as its length plus the end of the latest one.
 */
int
sync_retry_take(struct sync_retry *r, double delay)
{
	double t = sync_mono_now(), end = t + (delay > 0 ? delay : 0), extra;
	int rc = -1;

	pthread_mutex_lock(&r->mu);
	extra = end - (r->until > t ? r->until : t);
	if (extra < 0)
		extra = 0;
	if (extra <= r->left) {
		r->left -= extra;
		if (end > r->until)
			r->until = end;
		r->retries++;
		rc = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void
sync_retry_notice(struct sync_retry *r, int force, const char *msg)
{
	double t = sync_mono_now();
	int tell = 0;

	if (r == NULL || r->notify == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	if (force || t - r->notified >= SYNC_RETRY_NOTICE) {
		r->notified = t;
		tell = 1;
	}
	pthread_mutex_unlock(&r->mu);
	if (tell)
		r->notify(r->notify_ctx, msg);
}

/* ------------------------------------------------------------- utilities */

static void
random_bytes(void *p, size_t n)
{
	unsigned char *b = p;
	ssize_t got;
	size_t i;

	while (n > 0) {
		got = getrandom(b, n, 0);
		if (got <= 0) {
			if (got == -1 && errno == EINTR)
				continue;
			/* No entropy source: still unique enough for an id. */
			for (i = 0; i < n; i++)
				b[i] = (unsigned char)(rand() ^ (int)time(NULL));
			return;
		}
		b += got;
		n -= (size_t)got;
	}
}

void
sync_http_guid(char out[37])
{
	unsigned char raw[16];
	static const char hex[] = "0123456789abcdef";
	size_t i, j = 0;

	random_bytes(raw, sizeof raw);
	raw[6] = (raw[6] & 0x0f) | 0x40;
	raw[8] = (raw[8] & 0x3f) | 0x80;
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[raw[i] >> 4];
		out[j++] = hex[raw[i] & 15];
	}
	out[j] = '\0';
}

void
sync_http_url_trim(const char *url, char *out, size_t max)
{
	size_t n = strlen(url);

	if (max < 8) {
		if (max)
			out[0] = '\0';
		return;
	}
	if (n < max) {
		memcpy(out, url, n + 1);
		return;
	}
	memcpy(out, url, max - 4);
	memcpy(out + max - 4, "...", 4);
}

double
sync_http_retry_after(const char *v)
{
	char *end;
	double d;
	time_t t;

	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		errno = 0;
		d = strtod(v, &end);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno == 0 && *end == '\0' && d >= 0 && isfinite(d))
			return d;
		return -1;
	}
	/* An HTTP date: libcurl parses the forms RFC 9110 allows. */
	if ((t = curl_getdate(v, NULL)) == -1)
		return -1;
	d = difftime(t, time(NULL));
	return d > 0 ? d : 0;
}

void
sync_http_resp_release(struct sync_http_resp *r)
{
	sync_buf_release(&r->body);
	free(r->location);
	memset(r, 0, sizeof *r);
	r->retry_after = -1;
}

/* ------------------------------------------------------------- callbacks */

static size_t
on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct sync_http *h = ctx;

	n *= size;
	if (h->cur->body.len + n > BODY_MAX) {
		h->toobig = 1;
		return 0;
	}
	if (sync_buf_add(&h->cur->body, p, n) == -1)
		return 0;
	return n;
}

/* Copies a header's value (trimmed) into out. */
static void
header_value(const char *p, size_t n, size_t namelen, char *out, size_t max)
{
	p += namelen;
	n -= namelen;
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' ||
	    p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= max)
		n = max - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static int
header_is(const char *p, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l && strncasecmp(p, name, l) == 0 && p[l] == ':';
}

static size_t
on_header(char *p, size_t size, size_t n, void *ctx)
{
	struct sync_http *h = ctx;
	struct sync_http_resp *r = h->cur;
	char v[512];

	n *= size;
	/* A new status line (a 100 Continue before, a retry): start over. */
	if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->request_id[0] = r->content_type[0] = r->etag[0] = '\0';
		r->retry_after = -1;
		free(r->location);
		r->location = NULL;
		return n;
	}
	if (header_is(p, n, "request-id")) {
		header_value(p, n, 11, r->request_id, sizeof r->request_id);
	} else if (header_is(p, n, "content-type")) {
		header_value(p, n, 13, r->content_type, sizeof r->content_type);
	} else if (header_is(p, n, "retry-after")) {
		/*
		 * Not CURLINFO_RETRY_AFTER: libcurl reads the integer part
		 * only, and Graph sends fractions ("2.128").
		 */
		header_value(p, n, 12, v, sizeof v);
		r->retry_after = sync_http_retry_after(v);
	} else if (header_is(p, n, "etag")) {
		header_value(p, n, 5, r->etag, sizeof r->etag);
	} else if (header_is(p, n, "location")) {
		header_value(p, n, 9, v, sizeof v);
		free(r->location);
		r->location = sync_strdup(v);
	}
	return n;
}

/* ------------------------------------------------------------ connection */

struct sync_http *
sync_http_new(const struct sync_http_opts *o, struct sync_err *err)
{
	struct sync_http *h;

	if ((h = calloc(1, sizeof *h)) == NULL ||
	    (h->who = sync_strdup(o->who ? o->who : "http")) == NULL ||
	    (o->ca_file && (h->ca_file = sync_strdup(o->ca_file)) == NULL) ||
	    (o->cert_file &&
	    (h->cert_file = sync_strdup(o->cert_file)) == NULL) ||
	    (o->key_file && (h->key_file = sync_strdup(o->key_file)) == NULL)) {
		sync_errno(err, "%s: cannot start an HTTP connection",
		    o->who ? o->who : "http");
		goto fail;
	}
	h->tls_verify = o->tls_verify;
	h->timeout = o->timeout > 0 ? o->timeout : 60;
	h->retry = o->retry;
	random_bytes(&h->rng, sizeof h->rng);
	h->rng |= 1;
	if ((h->curl = curl_easy_init()) == NULL) {
		sync_errf(err, "%s: cannot start libcurl", h->who);
		goto fail;
	}
	return h;
fail:
	sync_http_free(h);
	return NULL;
}

void
sync_http_free(struct sync_http *h)
{
	if (h == NULL)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	free(h->who);
	free(h->ca_file);
	free(h->cert_file);
	free(h->key_file);
	free(h);
}

/* Sets the options of one attempt; -1 when libcurl refuses one. */
static int
setup(struct sync_http *h, const struct sync_http_req *q,
    struct curl_slist **hdrs, struct sync_buf *tmp)
{
	CURL *c = h->curl;
	struct curl_slist *l = NULL, *nl;
	const char *const *e;
	long ct = h->timeout < 30 ? h->timeout : 30;
	int bad = 0;

#define ADDH(s) do { \
	if ((nl = curl_slist_append(l, (s))) == NULL) bad = 1; else l = nl; \
} while (0)
	sync_buf_reset(tmp);
	sync_buf_addf(tmp, "client-request-id: %s", h->cur->client_request_id);
	ADDH(tmp->p);
	sync_buf_reset(tmp);
	sync_buf_addf(tmp, "Accept: %s", q->accept ? q->accept :
	    "application/json");
	ADDH(tmp->p);
	/* Bulk sync traffic is the first to give way under load. */
	ADDH("x-ms-throttle-priority: low");
	ADDH("Expect:");
	if (q->body && q->content_type) {
		sync_buf_reset(tmp);
		sync_buf_addf(tmp, "Content-Type: %s", q->content_type);
		ADDH(tmp->p);
	}
	if (q->authorization) {
		sync_buf_reset(tmp);
		sync_buf_addf(tmp, "Authorization: %s", q->authorization);
		ADDH(tmp->p);
		explicit_bzero(tmp->p, tmp->len);
	}
	for (e = q->headers; e && *e; e++)
		ADDH(*e);
#undef ADDH
	*hdrs = l;
	if (bad || tmp->p == NULL)
		return -1;

	bad |= curl_easy_setopt(c, CURLOPT_URL, q->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "sync/" SYNC_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, l) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, h) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, h) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, ct) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT, h->timeout) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	/*
	 * libcurl sends a request again by itself, on a new connection, when
	 * a reused one closes before any byte of the answer ("Connection
	 * died, retrying a fresh connect").  The service may have run it
	 * already: for a request that must not run twice (a POST that
	 * creates), that would create twice.  On a connection of its own
	 * there is no such retry, and the caller learns that the outcome is
	 * unknown.
	 */
	bad |= curl_easy_setopt(c, CURLOPT_FRESH_CONNECT,
	    q->flags & SYNC_HTTP_IDEMPOTENT ? 0L : 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER,
	    h->tls_verify ? 1L : 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST,
	    h->tls_verify ? 2L : 0L) != CURLE_OK;
	if (h->ca_file)
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file) != CURLE_OK;
	if (h->cert_file) {
		bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file) != CURLE_OK;
	}

	/* Reset the method of the previous request, then set this one's. */
	bad |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL) != CURLE_OK;
	if (q->body) {
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)q->bodylen) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body) != CURLE_OK;
	}
	if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "POST") != 0)
		bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
		    q->method) != CURLE_OK;
	else if (strcmp(q->method, "POST") == 0 && q->body == NULL) {
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, "") != CURLE_OK;
	}
	return bad ? -1 : 0;
}

/* Transport failures after which the request may not have been sent. */
static int
never_sent(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST;
}

/* Transport failures worth a retry of an idempotent request. */
static int
transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static double
jitter(struct sync_http *h)
{
	/* xorshift64*: jitter needs spread, not secrecy. */
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return (double)((h->rng * 2685821657736338717ULL) >> 11) /
	    (double)(1ULL << 53);
}

/* The message of a transport failure, with a hint for TLS. */
static int
transport_errf(struct sync_http *h, const struct sync_http_req *q,
    CURLcode cc, struct sync_err *err)
{
	char url[512];
	const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc);
	const char *hint = "";

	sync_http_url_trim(q->url, url, sizeof url);
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		hint = h->ca_file ? " (TLS certificate not trusted: not "
		    "signed by the CA in ca_file, or issued for another name)" :
		    " (TLS certificate not trusted: set ca_file to the CA "
		    "that signed it)";
	return sync_errf(err, "%s: %s %s failed: %s%s", h->who, q->method,
	    url, why, hint);
}

/*
 * "who: METHOD URL: why; retrying in N s (attempt K)", why being the
 * transport failure or the status, to the retry budget's notify.
 */
static void
notice(struct sync_http *h, const struct sync_http_req *q, CURLcode cc,
    long status, double retry_after, double delay, int next)
{
	struct sync_buf b = { 0 };
	char url[512];

	sync_http_url_trim(q->url, url, sizeof url);
	sync_buf_addf(&b, "%s: %s %s: ", h->who, q->method, url);
	if (cc != CURLE_OK)
		sync_buf_adds(&b, h->errbuf[0] ? h->errbuf :
		    curl_easy_strerror(cc));
	else if (retry_after >= 0)
		sync_buf_addf(&b, "%ld%s (Retry-After %g s)", status,
		    status == 429 ? " throttled" : status == 503 ?
		    " service unavailable" : "", retry_after);
	else
		sync_buf_addf(&b, "%ld", status);
	sync_buf_addf(&b, "; retrying in %.*f s (attempt %d)",
	    delay < 2 ? 1 : 0, delay, next);
	if (b.p)
		sync_retry_notice(h->retry, 0, b.p);
	sync_buf_release(&b);
}

int
sync_http_send(struct sync_http *h, const struct sync_http_req *q,
    struct sync_http_resp *r, struct sync_err *err)
{
	struct curl_slist *hdrs = NULL;
	struct sync_buf tmp = { 0 };
	CURLcode cc;
	double delay, start = sync_mono_now();
	long status;
	int attempt, retry, idem = q->flags & SYNC_HTTP_IDEMPOTENT;

	sync_http_resp_release(r);
	for (attempt = 0; ; attempt++) {
		/* A fresh client-request-id per attempt, as Graph asks. */
		sync_buf_release(&r->body);
		free(r->location);
		r->location = NULL;
		r->status = 0;
		r->retry_after = -1;
		r->request_id[0] = r->content_type[0] = r->etag[0] = '\0';
		r->attempts = attempt + 1;
		sync_http_guid(r->client_request_id);
		h->cur = r;
		h->toobig = 0;
		h->errbuf[0] = '\0';
		if (setup(h, q, &hdrs, &tmp) == -1) {
			curl_slist_free_all(hdrs);
			sync_buf_release(&tmp);
			return sync_errf(err, "%s: %s: cannot set up the request: "
			    "out of memory", h->who, q->method);
		}
		cc = curl_easy_perform(h->curl);
		curl_slist_free_all(hdrs);
		hdrs = NULL;
		h->cur = NULL;
		status = 0;
		if (cc == CURLE_OK)
			curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
		r->status = status;
		if (cc == CURLE_WRITE_ERROR && h->toobig) {
			sync_buf_release(&tmp);
			return sync_errf(err, "%s: %s: the response is larger "
			    "than %zu MiB", h->who, q->method, BODY_MAX >> 20);
		}

		if (cc != CURLE_OK)
			retry = transient(cc) && (idem || never_sent(cc));
		else if (status == 429 || status == 503)
			retry = 1;      /* refused before it ran */
		else if (status == 500 || status == 502 || status == 504)
			retry = idem;
		else
			retry = 0;
		if (!retry || h->retry == NULL || attempt + 1 >= ATTEMPTS_MAX)
			break;

		if ((status == 429 || status == 503) && r->retry_after > 0)
			delay = r->retry_after;
		else {
			delay = BACKOFF_BASE * pow(2, attempt);
			if (delay > BACKOFF_CAP)
				delay = BACKOFF_CAP;
			delay *= 0.5 + 0.5 * jitter(h);
		}
		if (sync_retry_take(h->retry, delay) == -1) {
			r->budget_spent = 1;
			break;
		}
		if (status == 429 || status == 503) {
			pthread_mutex_lock(&h->retry->mu);
			h->retry->throttled++;
			if (sync_mono_now() + delay > h->retry->throttled_until)
				h->retry->throttled_until = sync_mono_now() + delay;
			pthread_mutex_unlock(&h->retry->mu);
		}
		/* A request failing for a while: say so before waiting more. */
		if (h->retry->notify && sync_mono_now() - start + delay >=
		    SYNC_RETRY_NOTICE)
			notice(h, q, cc, status, r->retry_after, delay,
			    attempt + 2);
		sync_sleep_for(delay);
	}
	sync_buf_release(&tmp);
	if (cc != CURLE_OK) {
		struct sync_err e;

		transport_errf(h, q, cc, &e);
		if (r->budget_spent)
			return sync_errf(err, "%s (gave up after %d attempts: "
			    "the retry budget of %.0f s is spent)", e.msg,
			    attempt + 1, h->retry->total);
		if (attempt + 1 >= ATTEMPTS_MAX)
			return sync_errf(err, "%s (gave up after %d attempts)",
			    e.msg, attempt + 1);
		return sync_errf(err, "%s", e.msg);
	}
	if (r->body.p == NULL && sync_buf_adds(&r->body, "") == -1)
		return sync_errf(err, "%s: out of memory", h->who);
	return 0;
}
