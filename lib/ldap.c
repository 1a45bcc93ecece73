/*
 * ldap.c: the LDAP and Active Directory connector: connection, TLS,
 * binds, and the full import (paged search, ranged retrieval).
 */
#include <sys/time.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldap.h>

#include "conn.h"

/* ------------------------------------------------------------- messages */

int
sync_ldap_errf(struct sync_err *err, LDAP *ld, int rc, const char *fmt, ...)
{
	char what[SYNC_ERRMAX / 2];
	char *diag = NULL, *matched = NULL;
	struct sync_buf b = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (ld) {
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
		ldap_get_option(ld, LDAP_OPT_MATCHED_DN, &matched);
	}
	sync_buf_addf(&b, "%s: %s (%d)", what, ldap_err2string(rc), rc);
	if (diag && *diag)
		sync_buf_addf(&b, ": %s", diag);
	if (matched && *matched)
		sync_buf_addf(&b, "; matched DN '%s'", matched);
	sync_errf(err, "%s", b.p ? b.p : what);
	sync_buf_release(&b);
	ldap_memfree(diag);
	ldap_memfree(matched);
	return -1;
}

/* ------------------------------------------------------------------- DNs */

static int
ava_equal(const LDAPAVA *a, const LDAPAVA *b)
{
	size_t i;

	if (a->la_attr.bv_len != b->la_attr.bv_len ||
	    strncasecmp(a->la_attr.bv_val, b->la_attr.bv_val,
	    a->la_attr.bv_len) != 0)
		return 0;
	if (a->la_value.bv_len != b->la_value.bv_len)
		return 0;
	/* Directory names match case-insensitively (ASCII folding). */
	for (i = 0; i < a->la_value.bv_len; i++)
		if (tolower((unsigned char)a->la_value.bv_val[i]) !=
		    tolower((unsigned char)b->la_value.bv_val[i]))
			return 0;
	return 1;
}

static int
rdn_equal(LDAPRDN a, LDAPRDN b)
{
	size_t i, j;
	int found;

	for (i = 0; a[i]; i++) {
		for (j = 0, found = 0; b[j]; j++)
			if (ava_equal(a[i], b[j]))
				found = 1;
		if (!found)
			return 0;
	}
	for (j = 0; b[j]; j++)
		;
	return i == j;
}

static int
dn_compare(const char *dn, const char *base, int exact)
{
	LDAPDN d = NULL, b = NULL;
	size_t nd, nb, i;
	int rc = 0;

	if (ldap_str2dn(dn, &d, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    ldap_str2dn(base, &b, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		goto out;
	for (nd = 0; d && d[nd]; nd++)
		;
	for (nb = 0; b && b[nb]; nb++)
		;
	if (nd < nb || (exact && nd != nb))
		goto out;
	for (i = 0; i < nb; i++)
		if (!rdn_equal(d[nd - nb + i], b[i]))
			goto out;
	rc = 1;
out:
	ldap_dnfree(d);
	ldap_dnfree(b);
	return rc;
}

int
sync_dn_under(const char *dn, const char *base)
{
	return dn_compare(dn, base, 0);
}

int
sync_dn_equal(const char *a, const char *b)
{
	return dn_compare(a, b, 1);
}

/* ------------------------------------------------------------ connection */

static int
sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
	/*
	 * EXTERNAL takes its identity from the transport (peer credentials
	 * on ldapi://, the client certificate over TLS) and asks nothing.
	 */
	return LDAP_SUCCESS;
}

/*
 * libldap built with GnuTLS reports a certificate that fails verification
 * as "Can't contact LDAP server" with no reason.  To say why, connect once
 * more without verification, sending nothing: if that works, the
 * certificate is what failed.
 */
static int
tls_untrusted(struct sync_ldap_conf *lc)
{
	struct timeval tv = { lc->timeout, 0 };
	LDAP *ld;
	int v, rc = 0;

	if (!lc->tls_verify || (strncmp(lc->url, "ldaps://", 8) != 0 &&
	    !lc->starttls))
		return 0;
	if (ldap_initialize(&ld, lc->url) != LDAP_SUCCESS)
		return 0;
	v = LDAP_VERSION3;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	v = LDAP_OPT_X_TLS_NEVER;
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &v);
	v = 0;
	ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &v);
	if (lc->starttls)
		rc = ldap_start_tls_s(ld, NULL, NULL) == LDAP_SUCCESS;
	else
		rc = ldap_connect(ld) == LDAP_SUCCESS;
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc;
}

/* An error from the first operation on a connection. */
static int
connect_errf(struct sync_err *err, struct sync_ldap *l, int rc,
    const char *what)
{
	if ((rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) &&
	    tls_untrusted(l->lc))
		return sync_errf(err, "%s: %s '%s' failed: %s (%d): TLS "
		    "certificate not trusted (%s)", l->c->name, what,
		    l->lc->url, ldap_err2string(rc), rc, l->lc->ca_file ?
		    "not signed by the CA in ca_file, or issued for another "
		    "name" : "set ca_file to the CA that signed it");
	return sync_ldap_errf(err, l->ld, rc, "%s: %s '%s' failed", l->c->name,
	    what, l->lc->url);
}

void
sync_ldap_close(struct sync_ldap *l)
{
	if (l->ld)
		ldap_unbind_ext_s(l->ld, NULL, NULL);
	l->ld = NULL;
}

int
sync_ldap_open(struct sync_ldap *l, struct sync_connector *c,
    struct sync_err *err)
{
	struct sync_ldap_conf *lc = c->ldap;
	struct timeval tv = { lc->timeout, 0 };
	struct berval cred;
	char *pw = NULL;
	int rc, v, cleartext;

	memset(l, 0, sizeof *l);
	l->c = c;
	l->lc = lc;
	if ((rc = ldap_initialize(&l->ld, lc->url)) != LDAP_SUCCESS)
		return sync_ldap_errf(err, NULL, rc, "%s: invalid url '%s'",
		    c->name, lc->url);
	v = LDAP_VERSION3;
	ldap_set_option(l->ld, LDAP_OPT_PROTOCOL_VERSION, &v);
	ldap_set_option(l->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(l->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(l->ld, LDAP_OPT_TIMEOUT, &tv);
	if (lc->ca_file && access(lc->ca_file, R_OK) == -1) {
		sync_errno(err, "%s: cannot read CA file '%s'", c->name,
		    lc->ca_file);
		goto fail;
	}
	if (lc->ca_file && (rc = ldap_set_option(l->ld,
	    LDAP_OPT_X_TLS_CACERTFILE, lc->ca_file)) != LDAP_OPT_SUCCESS) {
		sync_ldap_errf(err, l->ld, rc, "%s: cannot use CA file '%s'",
		    c->name, lc->ca_file);
		goto fail;
	}
	v = lc->tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
	ldap_set_option(l->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &v);
	/* TLS options take effect only in a new context. */
	v = 0;
	if ((rc = ldap_set_option(l->ld, LDAP_OPT_X_TLS_NEWCTX, &v)) !=
	    LDAP_OPT_SUCCESS) {
		sync_ldap_errf(err, l->ld, rc, "%s: cannot set up TLS", c->name);
		goto fail;
	}
	if (lc->starttls &&
	    (rc = ldap_start_tls_s(l->ld, NULL, NULL)) != LDAP_SUCCESS) {
		connect_errf(err, l, rc, "StartTLS with");
		goto fail;
	}
	if (lc->sasl_mech) {
		rc = ldap_sasl_interactive_bind_s(l->ld, NULL, lc->sasl_mech,
		    NULL, NULL, LDAP_SASL_QUIET, sasl_interact, NULL);
		if (rc != LDAP_SUCCESS) {
			sync_ldap_errf(err, l->ld, rc, "%s: SASL %s bind to '%s' "
			    "failed", c->name, lc->sasl_mech, lc->url);
			goto fail;
		}
		return 0;
	}
	if (lc->bind_dn == NULL) {
		/* Anonymous: no bind at all, but make sure the server answers. */
		rc = ldap_sasl_bind_s(l->ld, NULL, LDAP_SASL_SIMPLE, &(struct
		    berval){ 0, NULL }, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			connect_errf(err, l, rc, "anonymous bind to");
			goto fail;
		}
		return 0;
	}
	/* Any ldap:// URL of a list: libldap may fail over to it. */
	cleartext = lc->cleartext_url != NULL && !lc->starttls;
	if (cleartext && !lc->allow_cleartext_bind) {
		sync_errf(err, "%s: refusing a simple bind over clear text to "
		    "'%s'; use ldaps://, starttls: true, or set "
		    "allow_cleartext_bind: true", c->name, lc->cleartext_url);
		goto fail;
	}
	if ((pw = sync_secret_read(lc->password_file, err)) == NULL) {
		sync_errpre(err, "%s", c->name);
		goto fail;
	}
	cred.bv_val = pw;
	cred.bv_len = strlen(pw);
	rc = ldap_sasl_bind_s(l->ld, lc->bind_dn, LDAP_SASL_SIMPLE, &cred,
	    NULL, NULL, NULL);
	sync_secret_free(pw);
	if (rc != LDAP_SUCCESS) {
		char what[1024];

		snprintf(what, sizeof what, "bind as '%s' to", lc->bind_dn);
		connect_errf(err, l, rc, what);
		goto fail;
	}
	return 0;
fail:
	sync_ldap_close(l);
	return -1;
}

/*
 * The connection of sync_ldap_open for other parts of the library (the
 * role lease): *ld is a new bound handle the caller releases with
 * ldap_unbind_ext_s.
 */
int
sync_ldap_connect(struct sync_connector *c, LDAP **ld, struct sync_err *err)
{
	struct sync_ldap l;

	if (sync_ldap_open(&l, c, err) == -1)
		return -1;
	*ld = l.ld;
	return 0;
}

/* ----------------------------------------------------------------- import */

/*
 * The length of an attribute description without the options this
 * connector consumes (";range=..." and ";binary"); other options, such as
 * language tags (cn;lang-de), stay part of the name.
 */
size_t
sync_ldap_attr_len(const char *name)
{
	const char *p = strcasestr(name, ";range=");
	size_t len = p ? (size_t)(p - name) : strlen(name);

	if (len >= 7 && strncasecmp(name + len - 7, ";binary", 7) == 0)
		len -= 7;
	return len;
}

static int
is_binary(struct sync_ldap_conf *lc, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < lc->binary.n; i++)
		if (strlen(lc->binary.v[i]) == len &&
		    strncasecmp(lc->binary.v[i], name, len) == 0)
			return 1;
	return 0;
}

int
sync_ldap_range(const char *name, long *high)
{
	const char *p = strchr(name, ';');
	char *end;

	/* Most names have no options: skip the case-blind search then. */
	if (p != NULL)
		p = strcasestr(p, ";range=");
	if (p == NULL)
		return 0;
	p = strchr(p, '-');
	if (p == NULL)
		return 0;
	if (p[1] == '*') {
		*high = -1;
		return 1;
	}
	*high = strtol(p + 1, &end, 10);
	return 1;
}

int
sync_ldap_range_fetch(struct sync_ldap *l, const char *dn, const char *name,
    size_t nlen, long next, sync_ldap_vals_fn fn, void *ctx,
    struct sync_err *err)
{
	char req[300];
	char *attrs[2] = { req, NULL };
	LDAPMessage *res = NULL, *e;
	BerElement *ber;
	struct berval **vals;
	char *a;
	long high;
	int rc, found;

	if (nlen > 255)
		return sync_errf(err, "'%s': attribute name too long", dn);
	for (;;) {
		if (l->lc->range_step > 0)
			snprintf(req, sizeof req, "%.*s;range=%ld-%ld", (int)nlen,
			    name, next, next + l->lc->range_step - 1);
		else
			snprintf(req, sizeof req, "%.*s;range=%ld-*", (int)nlen,
			    name, next);
		rc = ldap_search_ext_s(l->ld, dn, LDAP_SCOPE_BASE,
		    "(objectClass=*)", attrs, 0, NULL, NULL, NULL, 0, &res);
		if (rc != LDAP_SUCCESS) {
			ldap_msgfree(res);
			return sync_ldap_errf(err, l->ld, rc, "%s: reading '%s' of "
			    "'%s'", l->c->name, req, dn);
		}
		found = 0;
		high = -1;
		e = ldap_first_entry(l->ld, res);
		for (a = e ? ldap_first_attribute(l->ld, e, &ber) : NULL; a;
		    a = ldap_next_attribute(l->ld, e, ber)) {
			if (sync_ldap_attr_len(a) == nlen &&
			    strncasecmp(a, name, nlen) == 0) {
				vals = ldap_get_values_len(l->ld, e, a);
				rc = fn(ctx, vals, err);
				ldap_value_free_len(vals);
				if (!sync_ldap_range(a, &high))
					high = -1;
				found = 1;
			}
			ldap_memfree(a);
			if (rc == -1)
				break;
		}
		if (e)
			ber_free(ber, 0);
		ldap_msgfree(res);
		if (rc == -1)
			return -1;
		/* Past the end, or the last window ("N-*"): done. */
		if (!found || high == -1)
			return 0;
		next = high + 1;
	}
}

/* Where fetch_values adds the values of a window. */
struct objvals {
	struct sync_obj *o;
	const char *name;
	size_t nlen;
	int binary;
};

static int
add_values(void *ctx, struct berval **vals, struct sync_err *err)
{
	struct objvals *ov = ctx;
	char attr[256];
	size_t i;

	if (ov->nlen >= sizeof attr)
		return sync_errf(err, "attribute name too long in '%s'",
		    ov->o->dn);
	memcpy(attr, ov->name, ov->nlen);
	attr[ov->nlen] = '\0';
	for (i = 0; vals && vals[i]; i++)
		if (sync_obj_addval(ov->o, attr, vals[i]->bv_val,
		    vals[i]->bv_len, ov->binary) == -1)
			return sync_errf(err, "out of memory");
	return 0;
}

/* Like add_values, for the in-place array ldap_get_attribute_ber gives. */
static int
add_bvals(struct sync_obj *o, const char *name, size_t nlen,
    const struct berval *vals, int binary, struct sync_err *err)
{
	char attr[256];
	size_t i;

	if (nlen >= sizeof attr)
		return sync_errf(err, "attribute name too long in '%s'", o->dn);
	memcpy(attr, name, nlen);
	attr[nlen] = '\0';
	for (i = 0; vals && vals[i].bv_val; i++)
		if (sync_obj_addval(o, attr, vals[i].bv_val, vals[i].bv_len,
		    binary) == -1)
			return sync_errf(err, "out of memory");
	return 0;
}

/*
 * Reads the entry in one pass: ldap_get_attribute_ber hands out each
 * attribute's values in place, where ldap_get_values_len would scan the
 * entry again from its start for every attribute (quadratic in the number
 * of attributes, and most of the import's CPU time).
 */
int
sync_ldap_entry_obj(struct sync_ldap *l, LDAPMessage *e, enum sync_objtype type,
    struct sync_obj *o, struct sync_err *err)
{
	struct sync_ldap_conf *lc = l->lc;
	struct berval dn, attr, *vals = NULL;
	BerElement *ber = NULL;
	struct sync_objattr *at;
	char a[256];
	size_t i, nlen;
	long high;
	int rc = 0, binary;
	struct {
		char name[256];
		size_t nlen;
		long next;
		int binary;
	} ranged[8];
	size_t nranged = 0;

	if (ldap_get_dn_ber(l->ld, e, &ber, &dn) != LDAP_SUCCESS ||
	    dn.bv_val == NULL) {
		ber_free(ber, 0);
		return sync_ldap_errf(err, l->ld, LDAP_DECODING_ERROR, "%s: entry "
		    "without a DN", l->c->name);
	}
	o->type = type;
	if ((o->dn = sync_strndup(dn.bv_val, dn.bv_len)) == NULL) {
		ber_free(ber, 0);
		return sync_errf(err, "out of memory");
	}
	for (;;) {
		if (ldap_get_attribute_ber(l->ld, e, ber, &attr, &vals) !=
		    LDAP_SUCCESS) {
			rc = sync_ldap_errf(err, l->ld, LDAP_DECODING_ERROR, "%s: "
			    "cannot decode '%s'", l->c->name, o->dn);
			break;
		}
		if (attr.bv_val == NULL)
			break;
		if (attr.bv_len >= sizeof a) {
			rc = sync_errf(err, "attribute name too long in '%s'",
			    o->dn);
			break;
		}
		memcpy(a, attr.bv_val, attr.bv_len);
		a[attr.bv_len] = '\0';
		nlen = sync_ldap_attr_len(a);
		binary = is_binary(lc, a, nlen);
		if (sync_ldap_range(a, &high)) {
			/* A ranged attribute replaces any plain copy of it. */
			if (high != -1 && nranged < 8) {
				memcpy(ranged[nranged].name, a, nlen < 255 ? nlen : 255);
				ranged[nranged].nlen = nlen < 255 ? nlen : 255;
				ranged[nranged].next = high + 1;
				ranged[nranged].binary = binary;
				nranged++;
			} else if (high != -1) {
				rc = sync_errf(err, "'%s': too many ranged "
				    "attributes", o->dn);
			}
		}
		if (rc == 0)
			rc = add_bvals(o, a, nlen, vals, binary, err);
		ber_memfree(vals);
		vals = NULL;
		if (rc == -1)
			break;
	}
	ber_memfree(vals);
	ber_free(ber, 0);
	if (rc == -1)
		return -1;
	for (i = 0; i < nranged; i++) {
		struct objvals ov = { o, ranged[i].name, ranged[i].nlen,
		    ranged[i].binary };

		if (sync_ldap_range_fetch(l, o->dn, ranged[i].name,
		    ranged[i].nlen, ranged[i].next, add_values, &ov, err) == -1)
			return -1;
	}

	/* The anchor: the first anchor attribute the entry has. */
	for (i = 0; i < lc->anchor.n && o->anchor == NULL; i++) {
		at = sync_obj_attr(o, lc->anchor.v[i]);
		if (at == NULL || at->n == 0)
			continue;
		if (at->n > 1)
			return sync_errf(err, "'%s': anchor attribute '%s' has "
			    "%zu values", o->dn, at->name, at->n);
		if (at->binary || !sync_utf8_valid(at->v[0].p, at->v[0].len))
			o->anchor = sync_base64_encode(at->v[0].p, at->v[0].len);
		else
			o->anchor = sync_strdup(at->v[0].p);
		if (o->anchor == NULL)
			return sync_errf(err, "out of memory");
	}
	if (o->anchor == NULL)
		return sync_errf(err, "'%s': none of the anchor attributes "
		    "(%s%s) is present", o->dn, lc->anchor.v[0],
		    lc->anchor.n > 1 ? ", ..." : "");
	/* The native id: objectGUID as text on AD, entryUUID elsewhere. */
	if ((at = sync_obj_attr(o, "objectGUID")) != NULL && at->n == 1 &&
	    at->v[0].len == 16) {
		char guid[37];

		sync_guid_string((const unsigned char *)at->v[0].p, guid);
		o->id = sync_strdup(guid);
	} else if ((at = sync_obj_attr(o, "entryUUID")) != NULL && at->n == 1) {
		o->id = sync_strdup(at->v[0].p);
	} else {
		o->id = sync_strdup(o->dn);
	}
	if (o->id == NULL)
		return sync_errf(err, "out of memory");
	return 0;
}

int
sync_ldap_excluded(struct sync_ldap_conf *lc, struct sync_ldap_objconf *oc,
    const char *dn)
{
	size_t i;

	for (i = 0; i < lc->exclude.n; i++)
		if (sync_dn_under(dn, lc->exclude.v[i]))
			return 1;
	for (i = 0; i < oc->exclude.n; i++)
		if (sync_dn_under(dn, oc->exclude.v[i]))
			return 1;
	return 0;
}

int
sync_ldap_request_attrs(struct sync_ldap *l, struct sync_ldap_objconf *oc,
    struct sync_strv *out)
{
	struct sync_ldap_conf *lc = l->lc;
	size_t i;

	for (i = 0; i < oc->attrs.n; i++)
		if (sync_strv_add(out, oc->attrs.v[i]) == -1)
			return -1;
	for (i = 0; i < lc->anchor.n; i++)
		if (!sync_strv_casecontains(out, lc->anchor.v[i]) &&
		    sync_strv_add(out, lc->anchor.v[i]) == -1)
			return -1;
	if (!sync_strv_casecontains(out, l->c->kind == SYNC_CONN_AD ?
	    "objectGUID" : "entryUUID") && sync_strv_add(out,
	    l->c->kind == SYNC_CONN_AD ? "objectGUID" : "entryUUID") == -1)
		return -1;
	/*
	 * With a range step, large multi-valued attributes are asked for
	 * in windows, as Windows AD would send them past MaxValRange.
	 */
	if (lc->range_step > 0) {
		for (i = 0; i < out->n; i++) {
			if (strcasecmp(out->v[i], "member") == 0 ||
			    strcasecmp(out->v[i], "*") == 0) {
				struct sync_buf b = { 0 };

				if (sync_buf_addf(&b, "member;range=0-%ld",
				    lc->range_step - 1) == -1)
					return -1;
				if (strcasecmp(out->v[i], "member") == 0) {
					free(out->v[i]);
					out->v[i] = sync_buf_detach(&b);
				} else if (sync_strv_take(out,
				    sync_buf_detach(&b)) == -1)
					return -1;
				break;
			}
		}
	}
	return 0;
}

/*
 * Converts the entries of one page (a chain of messages kept from
 * ldap_result) into objects and hands them to fn.
 */
static int
convert_page(struct sync_ldap *l, enum sync_objtype type,
    LDAPMessage **page, size_t n, sync_obj_fn fn, void *ctx,
    struct sync_err *err)
{
	struct sync_ldap_objconf *oc = &l->lc->obj[type];
	struct sync_obj o = { 0 };
	size_t i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		char *dn = ldap_get_dn(l->ld, page[i]);
		int skip = dn == NULL || sync_ldap_excluded(l->lc, oc, dn);

		ldap_memfree(dn);
		if (skip)
			continue;
		rc = sync_ldap_entry_obj(l, page[i], type, &o, err);
		if (rc == 0)
			rc = fn(ctx, &o, err);
		sync_obj_release(&o);
	}
	return rc;
}

static void
free_page(LDAPMessage **page, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		ldap_msgfree(page[i]);
	*n = 0;
}

/*
 * The result of a page: the cookie for the next one, or an error named
 * for what it is (no such base, a server limit, anything else).
 */
static int
page_result(struct sync_ldap *l, LDAPMessage *m, const char *base,
    struct berval *cookie, struct sync_err *err)
{
	LDAPControl **rctrls = NULL, *prc;
	char *diag = NULL, *matched = NULL;
	int rc, code = 0;

	rc = ldap_parse_result(l->ld, m, &code, &matched, &diag, NULL,
	    &rctrls, 0);
	if (rc == LDAP_SUCCESS && code != LDAP_SUCCESS) {
		/* Put the result's words on the handle. */
		ldap_set_option(l->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, diag);
		ldap_set_option(l->ld, LDAP_OPT_MATCHED_DN, matched);
		if (code == LDAP_NO_SUCH_OBJECT)
			sync_ldap_errf(err, l->ld, code, "%s: base DN '%s' does not "
			    "exist", l->c->name, base);
		else if (code == LDAP_SIZELIMIT_EXCEEDED ||
		    code == LDAP_ADMINLIMIT_EXCEEDED ||
		    code == LDAP_TIMELIMIT_EXCEEDED)
			sync_ldap_errf(err, l->ld, code, "%s: server limit reached "
			    "searching '%s'", l->c->name, base);
		else
			sync_ldap_errf(err, l->ld, code, "%s: search of '%s' failed",
			    l->c->name, base);
	} else if (rc != LDAP_SUCCESS) {
		sync_ldap_errf(err, l->ld, rc, "%s: bad search result", l->c->name);
	}
	ldap_memfree(diag);
	ldap_memfree(matched);
	if (rc == LDAP_SUCCESS && code == LDAP_SUCCESS &&
	    (prc = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls,
	    NULL)) != NULL)
		ldap_parse_pageresponse_control(l->ld, prc, NULL, cookie);
	ldap_controls_free(rctrls);
	return rc == LDAP_SUCCESS && code == LDAP_SUCCESS ? 0 : -1;
}

/*
 * A paged search of one base.  The entries of a page are kept until its
 * end and converted after the request for the next page has gone out,
 * so that the server builds the next page while this client converts
 * the last one: the two overlap instead of taking turns.
 */
static int
search_base(struct sync_ldap *l, enum sync_objtype type, const char *base,
    struct sync_strv *attrs, sync_obj_fn fn, void *ctx, struct sync_err *err)
{
	struct sync_ldap_conf *lc = l->lc;
	struct sync_ldap_objconf *oc = &lc->obj[type];
	struct berval cookie = { 0, NULL };
	struct timeval tv = { lc->timeout, 0 };
	LDAPMessage **page = NULL, **prev = NULL;
	size_t npage = 0, nprev = 0, cap = 0, pcap = 0;
	int rc = 0, ret = -1, msgid = -1, t, code, first = 1;

	while (first || (cookie.bv_val && cookie.bv_len > 0)) {
		LDAPControl *pc = NULL, *sctrls[2] = { NULL, NULL };
		LDAPMessage **tmp;

		first = 0;
		rc = ldap_create_page_control(l->ld, (ber_int_t)lc->page_size,
		    &cookie, 1, &pc);
		if (rc != LDAP_SUCCESS) {
			sync_ldap_errf(err, l->ld, rc, "%s: cannot create the paged "
			    "results control", l->c->name);
			goto out;
		}
		sctrls[0] = pc;
		rc = ldap_search_ext(l->ld, base, LDAP_SCOPE_SUBTREE, oc->filter,
		    attrs->v, 0, sctrls, NULL, NULL, 0, &msgid);
		ldap_control_free(pc);
		if (cookie.bv_val) {
			ldap_memfree(cookie.bv_val);
			cookie.bv_val = NULL;
			cookie.bv_len = 0;
		}
		if (rc != LDAP_SUCCESS) {
			msgid = -1;
			sync_ldap_errf(err, l->ld, rc, "%s: search of '%s' for %ss "
			    "failed", l->c->name, base, sync_objtype_name(type));
			goto out;
		}
		/* The previous page, while the server works on this one. */
		if (convert_page(l, type, prev, nprev, fn, ctx, err) == -1)
			goto out;
		free_page(prev, &nprev);
		for (;;) {
			LDAPMessage *m = NULL;

			t = ldap_result(l->ld, msgid, LDAP_MSG_ONE, &tv, &m);
			if (t <= 0) {
				ldap_msgfree(m);
				if (t == 0) {
					sync_errf(err, "%s: search of '%s' timed out "
					    "after %ld s", l->c->name, base,
					    lc->timeout);
				} else {
					msgid = -1;
					ldap_get_option(l->ld, LDAP_OPT_RESULT_CODE,
					    &code);
					sync_ldap_errf(err, l->ld, code, "%s: search of "
					    "'%s' failed", l->c->name, base);
				}
				goto out;
			}
			if (t == LDAP_RES_SEARCH_ENTRY) {
				if (npage == cap) {
					cap = cap ? cap * 2 : 256;
					if ((tmp = realloc(page, cap * sizeof *tmp)) ==
					    NULL) {
						ldap_msgfree(m);
						sync_errf(err, "out of memory");
						goto out;
					}
					page = tmp;
				}
				page[npage++] = m;
				continue;
			}
			if (t == LDAP_RES_SEARCH_RESULT) {
				msgid = -1;
				rc = page_result(l, m, base, &cookie, err);
				ldap_msgfree(m);
				if (rc == -1)
					goto out;
				break;
			}
			/* References and intermediate responses: ignored. */
			ldap_msgfree(m);
		}
		/* This page becomes the previous one. */
		tmp = prev;
		prev = page;
		nprev = npage;
		page = tmp;
		npage = 0;
		{
			size_t c = pcap;

			pcap = cap;
			cap = c;
		}
	}
	if (convert_page(l, type, prev, nprev, fn, ctx, err) == -1)
		goto out;
	ret = 0;
out:
	if (msgid != -1)
		ldap_abandon_ext(l->ld, msgid, NULL, NULL);
	free_page(page, &npage);
	free_page(prev, &nprev);
	free(page);
	free(prev);
	if (cookie.bv_val)
		ldap_memfree(cookie.bv_val);
	return ret;
}

int
sync_ldap_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err)
{
	struct sync_ldap l;
	struct sync_strv attrs = { 0 };
	struct sync_strv cookies = { 0 };
	struct sync_strv *bases;
	size_t i;
	char *adcookie = NULL;
	int t, rc = 0, sync = c->kind == SYNC_CONN_LDAP;

	*cookie = NULL;
	if (sync_ldap_open(&l, c, err) == -1)
		return -1;
	/*
	 * AD: the domain's DirSync cookie before the reads (one search that
	 * matches nothing); what changes after it, the next delta reads.
	 */
	if (c->kind == SYNC_CONN_AD &&
	    sync_ad_dirsync_cookie(&l, &adcookie, err) == -1) {
		sync_ldap_close(&l);
		return -1;
	}
	for (t = 0; t < SYNC_NOBJTYPES && rc == 0; t++) {
		struct sync_ldap_objconf *oc = &c->ldap->obj[t];

		if (!oc->enabled)
			continue;
		sync_strv_release(&attrs);
		if (sync_ldap_request_attrs(&l, oc, &attrs) == -1) {
			rc = sync_errf(err, "out of memory");
			break;
		}
		bases = oc->base_dns.n ? &oc->base_dns : &c->ldap->base_dns;
		for (i = 0; i < bases->n && rc == 0; i++) {
			/*
			 * The server's sync cookie before the read: what
			 * changes after it, the next delta import reads (again,
			 * if this read saw it already: that does no harm).
			 */
			if (sync) {
				char *ck = NULL;
				int s = sync_ldap_sync_cookie(&l, bases->v[i], &ck,
				    err);

				if (s == -1) {
					rc = -1;
					break;
				}
				/* (take frees ck when it fails) */
				if (s == 1 || sync_strv_take(&cookies, ck) == -1)
					sync = 0;
			}
			rc = search_base(&l, t, bases->v[i], &attrs, fn, ctx, err);
		}
	}
	if (rc == 0 && sync && cookies.n > 0 &&
	    (*cookie = sync_ldap_cookie_make(c, cookies.v, cookies.n, err)) ==
	    NULL)
		rc = -1;
	if (rc == 0 && adcookie != NULL) {
		*cookie = adcookie;
		adcookie = NULL;
	}
	free(adcookie);
	sync_strv_release(&cookies);
	sync_strv_release(&attrs);
	sync_ldap_close(&l);
	return rc;
}
