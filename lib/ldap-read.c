/*
 * ldap-read.c: reading entries back for the LDAP writer: an entry as
 * JSON (with the rest of its ranged attributes), and many entries read
 * at once over one connection (the stale-plan check of phase 0).
 */
#include <sys/time.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "conn.h"
#include "export.h"

static int
named(json_t *names, const char *a, size_t len)
{
	size_t i;
	json_t *v;

	json_array_foreach(names, i, v)
		if (json_string_value(v) && strlen(json_string_value(v)) ==
		    len && strncasecmp(json_string_value(v), a, len) == 0)
			return 1;
	return 0;
}

/* Where add_json adds the values of a window. */
struct jvals {
	json_t *arr;
	int binary;
};

static int
add_json(void *ctx, struct berval **v, struct sync_err *err)
{
	struct jvals *jv = ctx;
	size_t i;

	for (i = 0; v && v[i]; i++) {
		json_t *s;

		if (jv->binary || !sync_utf8_valid(v[i]->bv_val, v[i]->bv_len)) {
			char *b = sync_base64_encode(v[i]->bv_val, v[i]->bv_len);

			s = b ? json_string(b) : NULL;
			free(b);
		} else
			s = json_stringn(v[i]->bv_val, v[i]->bv_len);
		if (s == NULL || json_array_append_new(jv->arr, s) == -1)
			return sync_errf(err, "out of memory");
	}
	return 0;
}

json_t *
sync_ldap_entry_json(struct sync_ldap *l, struct ldapmsg *msg,
    json_t *binary, struct sync_err *err)
{
	LDAPMessage *m = (LDAPMessage *)msg;
	json_t *o = json_object();
	BerElement *ber = NULL;
	struct berval **v;
	char *a, *dn = NULL, *k;
	size_t len, i;
	long high;
	int rc = 0;

	if (o == NULL) {
		sync_errf(err, "out of memory");
		return NULL;
	}
	for (a = ldap_first_attribute(l->ld, m, &ber); a && rc == 0;
	    a = ldap_next_attribute(l->ld, m, ber)) {
		struct jvals jv;

		len = sync_ldap_attr_len(a);
		k = sync_strndup(a, len);
		for (i = 0; k && k[i]; i++)
			k[i] = (char)tolower((unsigned char)k[i]);
		/* "member;range=0-1499" and the like add to "member". */
		jv.arr = k ? json_object_get(o, k) : NULL;
		if (k && jv.arr == NULL) {
			jv.arr = json_array();
			if (json_object_set_new(o, k, jv.arr) == -1)
				jv.arr = NULL;
		}
		jv.binary = named(binary, a, len);
		if (jv.arr == NULL)
			rc = sync_errf(err, "out of memory");
		v = rc == 0 ? ldap_get_values_len(l->ld, m, a) : NULL;
		if (rc == 0)
			rc = add_json(&jv, v, err);
		ldap_value_free_len(v);
		/* A window short of the last: the rest, window by window. */
		if (rc == 0 && sync_ldap_range(a, &high) && high != -1) {
			if (dn == NULL && (dn = ldap_get_dn(l->ld, m)) == NULL)
				rc = sync_ldap_errf(err, l->ld, LDAP_DECODING_ERROR,
				    "%s: an entry without a DN", l->c->name);
			else
				rc = sync_ldap_range_fetch(l, dn, a, len, high + 1,
				    add_json, &jv, err);
		}
		free(k);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
	ldap_memfree(dn);
	if (rc == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

const char *
sync_ldap_window(struct sync_ldap *l, const char *name, char *buf,
    size_t len)
{
	if (l->lc->range_step <= 0 || strcasecmp(name, "member") != 0)
		return name;
	snprintf(buf, len, "%s;range=0-%ld", name, l->lc->range_step - 1);
	return buf;
}

void
sync_ldap_read_release(struct sync_ldap_read *r)
{
	json_decref(r->entry);
	free(r->diag);
	free(r->matched);
	r->entry = NULL;
	r->diag = r->matched = NULL;
	r->done = r->inflight = 0;
	r->rc = 0;
}

static int
is_lost(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT ||
	    rc == LDAP_CONNECT_ERROR;
}

/* The result of r's search: done, with its code and the server's words. */
static void
read_result(struct sync_ldap *l, struct sync_ldap_read *r, LDAPMessage *m)
{
	char *diag = NULL, *matched = NULL;
	int rc = LDAP_OTHER, pr;

	pr = ldap_parse_result(l->ld, m, &rc, &matched, &diag, NULL, NULL, 0);
	if (pr != LDAP_SUCCESS)
		rc = pr;
	r->done = 1;
	r->inflight = 0;
	if (rc == LDAP_NO_SUCH_OBJECT) {
		json_decref(r->entry);
		r->entry = NULL;
	} else if (rc != LDAP_SUCCESS) {
		json_decref(r->entry);
		r->entry = NULL;
		r->rc = rc;
		r->diag = diag && *diag ? sync_strdup(diag) : NULL;
		r->matched = matched && *matched ? sync_strdup(matched) : NULL;
	}
	ldap_memfree(diag);
	ldap_memfree(matched);
}

int
sync_ldap_read_many(struct sync_ldap *l, struct sync_ldap_read *r, size_t n,
    size_t window, struct sync_err *err)
{
	struct timeval tv = { l->lc->timeout, 0 };
	size_t next = 0, inflight = 0, i, *slot;
	int rc = 0, t;

	if (window == 0)
		window = 1;
	if ((slot = calloc(window, sizeof *slot)) == NULL)
		return sync_errf(err, "out of memory");
	/* What a lost connection left half read is read again. */
	for (i = 0; i < n; i++)
		if (!r[i].done) {
			json_decref(r[i].entry);
			r[i].entry = NULL;
			r[i].inflight = 0;
		}
	for (;;) {
		LDAPMessage *m = NULL;
		struct sync_ldap_read *c = NULL;
		size_t s = 0;

		while (inflight < window && next < n) {
			struct sync_ldap_read *q = &r[next++];

			if (q->done)
				continue;
			t = ldap_search_ext(l->ld, q->dn, LDAP_SCOPE_BASE,
			    "(objectClass=*)", q->attrs, 0, NULL, NULL, NULL, 0,
			    &q->msgid);
			if (is_lost(t)) {
				rc = 1;
				goto out;
			}
			if (t != LDAP_SUCCESS) {
				q->done = 1;
				q->rc = t;
				continue;
			}
			for (s = 0; s < window && slot[s]; s++)
				;
			slot[s] = (size_t)(q - r) + 1;
			q->inflight = 1;
			inflight++;
		}
		if (inflight == 0)
			break;
		t = ldap_result(l->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &m);
		if (t <= 0) {
			/* Lost, or silent for the timeout: read again. */
			ldap_msgfree(m);
			rc = 1;
			goto out;
		}
		for (s = 0; s < window; s++)
			if (slot[s] && r[slot[s] - 1].msgid == ldap_msgid(m)) {
				c = &r[slot[s] - 1];
				break;
			}
		if (c == NULL) {
			/* A notice of disconnection (message id 0), or a stray. */
			t = ldap_msgid(m);
			ldap_msgfree(m);
			if (t == 0) {
				rc = 1;
				goto out;
			}
			continue;
		}
		if (t == LDAP_RES_SEARCH_ENTRY && c->entry == NULL) {
			c->entry = sync_ldap_entry_json(l, (struct ldapmsg *)m,
			    c->binary, err);
			if (c->entry == NULL) {
				ldap_msgfree(m);
				rc = -1;
				goto out;
			}
		} else if (t == LDAP_RES_SEARCH_RESULT) {
			read_result(l, c, m);
			slot[s] = 0;
			inflight--;
		}
		ldap_msgfree(m);
	}
out:
	free(slot);
	return rc;
}
