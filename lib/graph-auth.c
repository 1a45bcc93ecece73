/*
 * graph-auth.c: the access token of a Graph connector, by the OAuth 2.0
 * client-credentials grant, with a client secret or a certificate (a
 * client assertion: a JWT signed PS256 with the certificate's key).
 *
 * The token is cached in memory and renewed before it expires: five
 * minutes before, or at half its life when it lives less than ten.  The
 * secret is read from its file for each token request and wiped at once;
 * the private key is loaded once, when the client opens.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "conn.h"
#include "graph.h"
#include "http.h"

#define ASSERTION_LIFE 600      /* seconds a client assertion is valid */

struct sync_graph_auth {
	pthread_mutex_t mu;
	struct sync_connector *c;
	struct sync_graph_conf *gc;
	char *token;            /* "Bearer ..." */
	long gen;               /* bumped at each new token */
	double renew_at;        /* monotonic seconds */
	unsigned long count;    /* token requests */
	char *scope;            /* URL-encoded */
	EVP_PKEY *key;          /* certificate credential */
	char thumb[64];         /* x5t#S256: base64url SHA-256 of the DER */
};

/* base64url without padding (RFC 7515, section 2); a new string. */
static char *
b64url(const void *p, size_t n)
{
	char *s = sync_base64_encode(p, n), *q;
	size_t l;

	if (s == NULL)
		return NULL;
	for (q = s; *q; q++) {
		if (*q == '+')
			*q = '-';
		else if (*q == '/')
			*q = '_';
	}
	l = strlen(s);
	while (l > 0 && s[l - 1] == '=')
		s[--l] = '\0';
	return s;
}

/* The first OpenSSL error as text, for messages. */
static const char *
ossl_reason(char *buf, size_t n)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, n);
	return buf;
}

/*
 * The scope: the Graph resource of graph_url's cloud, "/.default".
 * National clouds have their own host; anything else (an emulator)
 * means the global service.
 */
static char *
make_scope(const char *graph_url)
{
	static const char *const hosts[] = { "graph.microsoft.us",
	    "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn", NULL };
	char res[128] = "https://graph.microsoft.com/.default";
	const char *h;
	size_t i, n;
	char *e, *out;

	if (strncmp(graph_url, "https://", 8) == 0) {
		h = graph_url + 8;
		n = strcspn(h, "/:");
		for (i = 0; hosts[i]; i++)
			if (n == strlen(hosts[i]) && strncmp(h, hosts[i], n) == 0)
				snprintf(res, sizeof res, "https://%s/.default",
				    hosts[i]);
	}
	if ((e = curl_easy_escape(NULL, res, 0)) == NULL)
		return NULL;
	out = sync_strdup(e);
	curl_free(e);
	return out;
}

/* Loads the certificate (its thumbprint) and the key, and checks the pair. */
static int
load_cert(struct sync_graph_auth *a, struct sync_err *err)
{
	struct sync_graph_conf *gc = a->gc;
	struct sync_buf pem = { 0 };
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	char reason[256], *keytext = NULL, *t = NULL;
	X509 *x = NULL;
	BIO *bio = NULL;
	int derlen, rc = -1;

	if (sync_file_read(gc->cert_file, 1 << 20, &pem, err) == -1)
		return sync_errpre(err, "%s", a->c->name);
	if ((bio = BIO_new_mem_buf(pem.p, (int)pem.len)) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		sync_errf(err, "%s: certificate_file '%s': not a PEM "
		    "certificate: %s", a->c->name, gc->cert_file,
		    ossl_reason(reason, sizeof reason));
		goto out;
	}
	BIO_free(bio);
	bio = NULL;
	if ((derlen = i2d_X509(x, &der)) <= 0 ||
	    !EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL) ||
	    (t = b64url(md, mdlen)) == NULL || strlen(t) >= sizeof a->thumb) {
		sync_errf(err, "%s: certificate_file '%s': cannot compute its "
		    "thumbprint", a->c->name, gc->cert_file);
		goto out;
	}
	strcpy(a->thumb, t);

	/* The key is a secret: the same file checks as a client secret. */
	if ((keytext = sync_secret_read(gc->key_file, err)) == NULL) {
		sync_errpre(err, "%s", a->c->name);
		goto out;
	}
	if ((bio = BIO_new_mem_buf(keytext, (int)strlen(keytext))) == NULL ||
	    (a->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		sync_errf(err, "%s: key_file '%s': not a PEM private key (or "
		    "one with a passphrase): %s", a->c->name, gc->key_file,
		    ossl_reason(reason, sizeof reason));
		goto out;
	}
	if (!EVP_PKEY_is_a(a->key, "RSA")) {
		sync_errf(err, "%s: key_file '%s': not an RSA key (Entra ID "
		    "takes RSA certificates)", a->c->name, gc->key_file);
		goto out;
	}
	if (X509_check_private_key(x, a->key) != 1) {
		ERR_clear_error();
		sync_errf(err, "%s: key_file '%s' is not the key of "
		    "certificate_file '%s'", a->c->name, gc->key_file,
		    gc->cert_file);
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	X509_free(x);
	OPENSSL_free(der);
	free(t);
	sync_secret_free(keytext);
	sync_buf_release(&pem);
	return rc;
}

struct sync_graph_auth *
sync_graph_auth_new(struct sync_connector *c, struct sync_err *err)
{
	struct sync_graph_auth *a;

	if ((a = calloc(1, sizeof *a)) == NULL) {
		sync_errno(err, "%s: cannot start", c->name);
		return NULL;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->c = c;
	a->gc = c->graph;
	if ((a->scope = make_scope(a->gc->graph_url)) == NULL) {
		sync_errf(err, "%s: out of memory", c->name);
		goto fail;
	}
	if (a->gc->cert_file && load_cert(a, err) == -1)
		goto fail;
	return a;
fail:
	sync_graph_auth_free(a);
	return NULL;
}

void
sync_graph_auth_free(struct sync_graph_auth *a)
{
	if (a == NULL)
		return;
	sync_secret_free(a->token);
	free(a->scope);
	EVP_PKEY_free(a->key);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

unsigned long
sync_graph_auth_count(struct sync_graph_auth *a)
{
	unsigned long n;

	pthread_mutex_lock(&a->mu);
	n = a->count;
	pthread_mutex_unlock(&a->mu);
	return n;
}

/* The signed client assertion; a new string, or NULL with err set. */
static char *
make_assertion(struct sync_graph_auth *a, struct sync_err *err)
{
	struct sync_graph_conf *gc = a->gc;
	json_t *hdr = NULL, *claims = NULL;
	char *h = NULL, *cl = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL;
	char guid[37], reason[256];
	unsigned char *sig = NULL;
	size_t siglen = 0;
	struct sync_buf b = { 0 };
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	json_int_t now = (json_int_t)time(NULL);
	char *out = NULL;

	sync_http_guid(guid);
	hdr = json_pack("{s:s, s:s, s:s}", "alg", "PS256", "typ", "JWT",
	    "x5t#S256", a->thumb);
	claims = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:s}",
	    "aud", gc->token_url, "exp", now + ASSERTION_LIFE, "iat", now,
	    "iss", gc->client_id, "jti", guid, "nbf", now,
	    "sub", gc->client_id);
	if (hdr == NULL || claims == NULL ||
	    (h = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (cl = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS)) == NULL ||
	    (h64 = b64url(h, strlen(h))) == NULL ||
	    (c64 = b64url(cl, strlen(cl))) == NULL ||
	    sync_buf_addf(&b, "%s.%s", h64, c64) == -1) {
		sync_errf(err, "%s: out of memory", a->c->name);
		goto out;
	}
	/* PS256: RSASSA-PSS, SHA-256, salt as long as the digest (RFC 7518). */
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, a->key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)b.p, b.len) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (unsigned char *)b.p, b.len) != 1) {
		sync_errf(err, "%s: cannot sign the client assertion with "
		    "key_file '%s': %s", a->c->name, gc->key_file,
		    ossl_reason(reason, sizeof reason));
		goto out;
	}
	if ((s64 = b64url(sig, siglen)) == NULL ||
	    sync_buf_addf(&b, ".%s", s64) == -1) {
		sync_errf(err, "%s: out of memory", a->c->name);
		goto out;
	}
	out = sync_buf_detach(&b);
out:
	EVP_MD_CTX_free(md);
	json_decref(hdr);
	json_decref(claims);
	free(h);
	free(cl);
	free(h64);
	free(c64);
	free(s64);
	free(sig);
	sync_buf_release(&b);
	return out;
}

/* The form body of the token request; a new string the caller wipes. */
static char *
token_form(struct sync_graph_auth *a, struct sync_err *err)
{
	struct sync_graph_conf *gc = a->gc;
	struct sync_buf b = { 0 };
	char *cid, *cred = NULL, *enc;

	if ((cid = curl_easy_escape(NULL, gc->client_id, 0)) == NULL) {
		sync_errf(err, "%s: out of memory", a->c->name);
		return NULL;
	}
	if (gc->cert_file)
		cred = make_assertion(a, err);
	else if ((cred = sync_secret_read(gc->secret_file, err)) == NULL)
		sync_errpre(err, "%s", a->c->name);
	if (cred == NULL) {
		curl_free(cid);
		return NULL;
	}
	/* The secret must be URL-encoded: one with "+" or "&" is common. */
	enc = curl_easy_escape(NULL, cred, 0);
	if (enc == NULL || sync_buf_addf(&b, "client_id=%s&scope=%s&"
	    "grant_type=client_credentials&%s%s", cid, a->scope, gc->cert_file ?
	    "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
	    "client-assertion-type%3Ajwt-bearer&client_assertion=" :
	    "client_secret=", enc) == -1) {
		sync_errf(err, "%s: out of memory", a->c->name);
		sync_secret_free(sync_buf_detach(&b));
	}
	if (enc) {
		explicit_bzero(enc, strlen(enc));
		curl_free(enc);
	}
	curl_free(cid);
	sync_secret_free(cred);
	return b.p ? sync_buf_detach(&b) : NULL;
}

/*
 * The message of a failed token request, in the OAuth shape: error,
 * the first line of error_description (it starts with the AADSTS code;
 * the trace and correlation ids follow, which the request-id covers).
 */
static int
oauth_errf(struct sync_err *err, struct sync_graph_auth *a,
    struct sync_http_resp *r)
{
	json_t *j, *e, *d;
	char desc[1024] = "";
	const char *code = NULL, *p;
	size_t n;
	int rc;

	j = json_loadb(r->body.p, r->body.len, 0, NULL);
	e = json_object_get(j, "error");
	d = json_object_get(j, "error_description");
	if (json_is_string(e))
		code = json_string_value(e);
	if (json_is_string(d)) {
		p = json_string_value(d);
		n = strcspn(p, "\r\n");
		/* Some forms carry the trace on the first line. */
		if (strstr(p, " Trace ID:") && (size_t)(strstr(p, " Trace ID:") - p) < n)
			n = (size_t)(strstr(p, " Trace ID:") - p);
		if (n >= sizeof desc)
			n = sizeof desc - 1;
		memcpy(desc, p, n);
		desc[n] = '\0';
	}
	rc = sync_errf(err, "%s: POST %s failed: %ld%s%s%s%s%s%s%s", a->c->name,
	    a->gc->token_url, r->status, code ? " " : "", code ? code : "",
	    desc[0] ? ": " : "", desc, r->request_id[0] ? " (request-id " : "",
	    r->request_id, r->request_id[0] ? ")" : "");
	json_decref(j);
	return rc;
}

/* Requests a new token; a->mu is held. */
static int
fetch(struct sync_graph_auth *a, struct sync_http *h, struct sync_err *err)
{
	struct sync_http_req q = { 0 };
	struct sync_http_resp r = { 0 };
	struct sync_buf b = { 0 };
	json_t *j = NULL, *tok, *life;
	char *form;
	double secs = 3599;
	int rc = -1;

	if ((form = token_form(a, err)) == NULL)
		return -1;
	q.method = "POST";
	q.url = a->gc->token_url;
	q.body = form;
	q.bodylen = strlen(form);
	q.content_type = "application/x-www-form-urlencoded";
	/* Asking twice for a token does no harm. */
	q.flags = SYNC_HTTP_IDEMPOTENT;
	a->count++;
	rc = sync_http_send(h, &q, &r, err);
	sync_secret_free(form);
	if (rc == -1)
		goto out;
	rc = -1;
	if (r.status != 200) {
		struct sync_err e;

		oauth_errf(&e, a, &r);
		if (r.budget_spent)
			sync_errf(err, "%s (gave up after %d attempts: the retry "
			    "budget of %ld s is spent)", e.msg, r.attempts,
			    a->gc->retry_budget);
		else
			sync_errf(err, "%s", e.msg);
		goto out;
	}
	j = json_loadb(r.body.p, r.body.len, 0, NULL);
	tok = json_object_get(j, "access_token");
	life = json_object_get(j, "expires_in");
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		sync_errf(err, "%s: POST %s: the answer has no access_token "
		    "(request-id %s)", a->c->name, a->gc->token_url,
		    r.request_id[0] ? r.request_id : "none");
		goto out;
	}
	/* expires_in is a number, or in older answers a string. */
	if (json_is_number(life))
		secs = json_number_value(life);
	else if (json_is_string(life))
		secs = strtod(json_string_value(life), NULL);
	if (sync_buf_addf(&b, "Bearer %s", json_string_value(tok)) == -1) {
		sync_errf(err, "%s: out of memory", a->c->name);
		goto out;
	}
	sync_secret_free(a->token);
	a->token = sync_buf_detach(&b);
	a->gen++;
	a->renew_at = sync_mono_now() + (secs >= 600 ? secs - 300 : secs / 2);
	rc = 0;
out:
	if (j) {
		/* The token is a credential: do not leave it in freed memory. */
		if (json_is_string(json_object_get(j, "access_token")))
			explicit_bzero((char *)json_string_value(json_object_get(j,
			    "access_token")), json_string_length(json_object_get(j,
			    "access_token")));
		json_decref(j);
	}
	if (r.body.p)
		explicit_bzero(r.body.p, r.body.len);
	sync_http_resp_release(&r);
	return rc;
}

int
sync_graph_auth_header(struct sync_graph_auth *a, struct sync_http *h,
    int force, long *gen, char **hdr, struct sync_err *err)
{
	int rc = 0;

	*hdr = NULL;
	pthread_mutex_lock(&a->mu);
	if (a->token == NULL || sync_mono_now() >= a->renew_at ||
	    (force && *gen == a->gen))
		rc = fetch(a, h, err);
	if (rc == 0) {
		if ((*hdr = sync_strdup(a->token)) == NULL)
			rc = sync_errf(err, "%s: out of memory", a->c->name);
		*gen = a->gen;
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}
