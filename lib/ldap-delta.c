/*
 * ldap-delta.c: the delta import of an LDAP connector, by LDAP content
 * synchronization (RFC 4533) in refreshOnly mode, as OpenLDAP's syncprov
 * overlay offers it.
 *
 * A full import asks the server for its sync cookie before each of its
 * searches (a refreshOnly search of the base entry alone, attributes
 * "1.1") and leaves the cookies in its snapshot, after a digest of what
 * it read (see sync-snapshot(5)).  A delta run makes the same searches
 * (base, filter, attributes) with the Sync Request control and the
 * cookie: the server sends the entries changed since (state add or
 * modify, every requested attribute), and either the entries deleted
 * (state delete, or syncIdSet messages with refreshDeletes) or, when it
 * no longer knows them (syncprov without a session log, or past it), a
 * present phase: the entryUUID of every unchanged entry, and every entry
 * not named was deleted.  The changes are kept by entryUUID (the id of
 * an LDAP snapshot's objects), then the previous snapshot is walked in
 * order: the changed and new entries are handed on, and the lines of
 * the others (neither changed nor deleted) are left for the writer to
 * copy as they are (res->kept), which costs a fraction of parsing and
 * serialising them again.
 *
 * A rename is a modify of the same entryUUID with its new DN; the member
 * values of groups that name the old DN stay as they are unless the
 * server changed those groups too (the refint overlay does, and then it
 * sends them): what a full read would find either way.
 *
 * Debian's libldap has no ldap_sync.h, so the controls and the Sync Info
 * message are encoded and decoded here with lber.  Nothing is handed on
 * until every search is complete, so that when the server cannot bring
 * a cookie up to date (e-syncRefreshRequired), or has no syncprov, the
 * caller can still do a full import instead.
 *
 * The delta import of an ad connector, by DirSync, is at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <lber.h>
#include <ldap.h>

#include "conn.h"
#include "diff.h"
#include "sync-config.h"

/* One search of an import: a type and one of its bases. */
struct search {
	enum sync_objtype t;
	const char *base;
};

/*
 * entryUUIDs as their 16 bytes, sorted once all are in: a present phase
 * names every unchanged entry, and 100,000 of them cost a tenth of a
 * second in a hash of strings (the text, a key, a value each).
 */
struct uuids {
	unsigned char (*v)[16];
	size_t n, cap;
};

/* What the delta searches of one type found. */
struct tdelta {
	struct sync_obj *objs;  /* entries changed or added */
	size_t nobjs, cap;
	json_t *chg;            /* entryUUID -> index in objs */
	json_t *del;            /* entryUUID -> true: deleted */
	struct uuids pres;      /* entryUUIDs named present: unchanged */
	struct uuids chgk, delk;        /* chg's and del's keys, for a scan */
	struct sync_strv pbases;        /* bases refreshed with presents */
};

/* The searches a full import of c makes, in order; *n of them. */
static struct search *
searches(struct sync_connector *c, size_t *n)
{
	struct search *s = NULL, *tmp;
	struct sync_strv *bases;
	size_t i, cap = 0;
	int t;

	*n = 0;
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		struct sync_ldap_objconf *oc = &c->ldap->obj[t];

		if (!oc->enabled)
			continue;
		bases = oc->base_dns.n ? &oc->base_dns : &c->ldap->base_dns;
		for (i = 0; i < bases->n; i++) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				if ((tmp = realloc(s, cap * sizeof *s)) == NULL) {
					free(s);
					return NULL;
				}
				s = tmp;
			}
			s[*n].t = (enum sync_objtype)t;
			s[(*n)++].base = bases->v[i];
		}
	}
	if (s == NULL)
		s = calloc(1, sizeof *s);
	return s;
}

static int
hex_digest(struct sync_buf *out, const char *p, size_t len)
{
	unsigned char md[32];
	int k;

	sync_sha256(p ? p : "", len, md);
	for (k = 0; k < 32; k++)
		if (sync_buf_addf(out, "%02x", md[k]) == -1)
			return -1;
	return 0;
}

/*
 * kind ("rfc4533", "dirsync"), a space, and the digest of what the
 * searches of c select: the URL, and per type its filter, bases,
 * attributes, excluded subtrees, with the anchors, binary attributes and
 * range step.  Another value of any of them needs a full import.  (The
 * bind DN is not in it: another account reads the same objects, and a
 * DirSync the account may not make says so itself.)
 */
static int
config_digest(struct sync_connector *c, const char *kind,
    struct sync_buf *out)
{
	struct sync_ldap_conf *lc = c->ldap;
	struct sync_ldap l = { NULL, c, lc };
	struct sync_buf b = { 0 };
	struct sync_strv attrs = { 0 };
	struct sync_strv *bases;
	size_t i;
	int t, rc = -1;

	if (sync_buf_addf(&b, "%s\n", lc->url) == -1)
		goto out;
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		struct sync_ldap_objconf *oc = &lc->obj[t];

		if (!oc->enabled)
			continue;
		sync_strv_release(&attrs);
		if (sync_ldap_request_attrs(&l, oc, &attrs) == -1 ||
		    sync_buf_addf(&b, "type %s\nfilter %s\n",
		    sync_objtype_name(t), oc->filter) == -1)
			goto out;
		bases = oc->base_dns.n ? &oc->base_dns : &lc->base_dns;
		for (i = 0; i < bases->n; i++)
			if (sync_buf_addf(&b, "base %s\n", bases->v[i]) == -1)
				goto out;
		for (i = 0; i < attrs.n; i++)
			if (sync_buf_addf(&b, "attr %s\n", attrs.v[i]) == -1)
				goto out;
		for (i = 0; i < lc->exclude.n; i++)
			if (sync_buf_addf(&b, "exclude %s\n", lc->exclude.v[i]) ==
			    -1)
				goto out;
		for (i = 0; i < oc->exclude.n; i++)
			if (sync_buf_addf(&b, "exclude %s\n", oc->exclude.v[i]) ==
			    -1)
				goto out;
	}
	for (i = 0; i < lc->anchor.n; i++)
		if (sync_buf_addf(&b, "anchor %s\n", lc->anchor.v[i]) == -1)
			goto out;
	for (i = 0; i < lc->binary.n; i++)
		if (sync_buf_addf(&b, "binary %s\n", lc->binary.v[i]) == -1)
			goto out;
	if (sync_buf_addf(&b, "range %ld\n", lc->range_step) == -1 ||
	    sync_buf_addf(out, "%s ", kind) == -1 ||
	    hex_digest(out, b.p, b.len) == -1)
		goto out;
	rc = 0;
out:
	sync_strv_release(&attrs);
	sync_buf_release(&b);
	return rc;
}

char *
sync_ldap_cookie_make(struct sync_connector *c, char **cookies, size_t n,
    struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct search *s;
	size_t ns, i;

	if ((s = searches(c, &ns)) == NULL)
		goto nomem;
	if (ns != n) {
		/* cannot happen: one cookie per search */
		free(s);
		return NULL;
	}
	if (config_digest(c, "rfc4533", &b) == -1)
		goto nomem;
	for (i = 0; i < n; i++)
		if (sync_buf_addf(&b, "\n%s %s", sync_objtype_name(s[i].t),
		    cookies[i]) == -1)
			goto nomem;
	/* the check: a cookie edited by hand is not sent to the server */
	if (sync_buf_adds(&b, "\ncheck ") == -1 ||
	    hex_digest(&b, b.p, b.len - 7) == -1)
		goto nomem;
	free(s);
	return sync_buf_detach(&b);
nomem:
	free(s);
	sync_buf_release(&b);
	sync_errf(err, "%s: out of memory", c->name);
	return NULL;
}

/* ------------------------------------------------------------ protocol */

/* The Sync Request control: refreshOnly, with the cookie if any. */
static int
sync_request(struct sync_ldap *l, const struct berval *cookie,
    LDAPControl **ctrl, struct sync_err *err)
{
	BerElement *ber;
	struct berval bv;
	int rc;

	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL)
		return sync_errf(err, "%s: out of memory", l->c->name);
	if (cookie != NULL)
		rc = ber_printf(ber, "{eO}", (ber_int_t)LDAP_SYNC_REFRESH_ONLY,
		    cookie);
	else
		rc = ber_printf(ber, "{e}", (ber_int_t)LDAP_SYNC_REFRESH_ONLY);
	if (rc == -1 || ber_flatten2(ber, &bv, 0) == -1) {
		ber_free(ber, 1);
		return sync_errf(err, "%s: cannot encode the sync request "
		    "control", l->c->name);
	}
	rc = ldap_control_create(LDAP_CONTROL_SYNC, 1, &bv, 1, ctrl);
	ber_free(ber, 1);
	if (rc != LDAP_SUCCESS)
		return sync_ldap_errf(err, l->ld, rc, "%s: cannot create the "
		    "sync request control", l->c->name);
	return 0;
}

/* Replaces *to with a copy of the cookie v (an empty one is none). */
static int
keep_cookie(struct berval *to, const struct berval *v)
{
	if (v->bv_len == 0)
		return 0;
	ber_memfree(to->bv_val);
	to->bv_val = NULL;
	to->bv_len = 0;
	return ber_dupbv(to, (struct berval *)v) == NULL ? -1 : 0;
}

/*
 * The Sync Done control of a search result: its cookie into *cookie (if
 * it has one) and *deletes, its refreshDeletes.  0, or -1 when the
 * result has none or it does not decode.
 */
static int
parse_done(LDAPControl **ctrls, struct berval *cookie, int *deletes)
{
	LDAPControl *c = ldap_control_find(LDAP_CONTROL_SYNC_DONE, ctrls, NULL);
	BerElement *ber;
	struct berval ck = { 0, NULL };
	ber_len_t len;
	ber_tag_t tag;
	ber_int_t b = 0;
	int rc = -1;

	if (c == NULL || c->ldctl_value.bv_val == NULL ||
	    (ber = ber_init(&c->ldctl_value)) == NULL)
		return -1;
	if (ber_scanf(ber, "{") == LBER_ERROR)
		goto out;
	tag = ber_peek_tag(ber, &len);
	if (tag == LDAP_TAG_SYNC_COOKIE) {
		if (ber_scanf(ber, "m", &ck) == LBER_ERROR ||
		    keep_cookie(cookie, &ck) == -1)
			goto out;
		tag = ber_peek_tag(ber, &len);
	}
	if (tag == LBER_BOOLEAN && ber_scanf(ber, "b", &b) == LBER_ERROR)
		goto out;
	*deletes = b != 0;
	rc = 0;
out:
	ber_free(ber, 1);
	return rc;
}

/* 16 bytes of a syncUUID as an entryUUID's text; -1 when not 16. */
static int
uuid_text(const struct berval *u, char out[37])
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)u->bv_val;
	int i, j = 0;

	if (u->bv_len != 16)
		return -1;
	/* by hand: a present phase has one per unchanged entry, and
	 * snprintf was a tenth of such a run */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[p[i] >> 4];
		out[j++] = hex[p[i] & 15];
	}
	out[j] = '\0';
	return 0;
}

static int
uuids_add(struct uuids *u, const void *p)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 1024;
		unsigned char (*v)[16] = realloc(u->v, cap * sizeof *v);

		if (v == NULL)
			return -1;
		u->v = v;
		u->cap = cap;
	}
	memcpy(u->v[u->n++], p, 16);
	return 0;
}

static int
uuid16_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

/* Sorted (the server may well have sent them in order already). */
static void
uuids_sort(struct uuids *u)
{
	size_t i;

	for (i = 1; i < u->n; i++)
		if (memcmp(u->v[i - 1], u->v[i], 16) > 0)
			break;
	if (i < u->n)
		qsort(u->v, u->n, sizeof *u->v, uuid16_cmp);
}

static int
uuids_has(const struct uuids *u, const unsigned char k[16])
{
	size_t lo = 0, hi = u->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = memcmp(u->v[mid], k, 16)) == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The 16 bytes of an entryUUID written as uuid_text writes it, or -1. */
static int
uuid_bytes(const char *p, size_t len, unsigned char out[16])
{
	size_t i, j = 0;
	int hi, lo;

	if (len != 36)
		return -1;
	for (i = 0; i < 36; i += 2) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (p[i] != '-')
				return -1;
			i++;
		}
		hi = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' :
		    p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 : -1;
		lo = p[i + 1] >= '0' && p[i + 1] <= '9' ? p[i + 1] - '0' :
		    p[i + 1] >= 'a' && p[i + 1] <= 'f' ? p[i + 1] - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[j++] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int
set_true(json_t *set, const char *uuid)
{
	return json_object_set_new(set, uuid, json_true());
}

/* Entry uuid is gone: deleted, or out of scope now. */
static int
gone(struct tdelta *td, const char *uuid)
{
	json_t *at = json_object_get(td->chg, uuid);

	if (at != NULL) {
		/* released: its NULL anchor marks it as not handed on */
		sync_obj_release(&td->objs[json_integer_value(at)]);
		json_object_del(td->chg, uuid);
	}
	return set_true(td->del, uuid);
}

struct run {
	struct sync_ldap *l;
	struct tdelta *td;
	const struct search *s;
	struct berval cookie;   /* the latest the server sent */
	int presents;           /* a present phase was seen */
};

/*
 * A Sync Info message: a new cookie, the end of a phase, or a set of
 * entryUUIDs present or deleted.
 */
static int
sync_info(struct run *r, LDAPMessage *m, struct sync_err *err)
{
	struct sync_ldap *l = r->l;
	struct berval *data = NULL, ck = { 0, NULL }, uv;
	BerElement *ber = NULL;
	char *oid = NULL, *last, u[37];
	ber_len_t len;
	ber_tag_t tag;
	ber_int_t b;
	int rc = -1;

	if (ldap_parse_intermediate(l->ld, m, &oid, &data, NULL, 0) !=
	    LDAP_SUCCESS)
		return sync_ldap_errf(err, l->ld, LDAP_DECODING_ERROR, "%s: bad "
		    "intermediate response in the sync of '%s'", l->c->name,
		    r->s->base);
	if (oid == NULL || strcmp(oid, LDAP_SYNC_INFO) != 0 || data == NULL) {
		rc = 0;         /* not ours: ignored */
		goto out;
	}
	if ((ber = ber_init(data)) == NULL)
		goto bad;
	tag = ber_peek_tag(ber, &len);
	switch (tag) {
	case LDAP_TAG_SYNC_NEW_COOKIE:
		if (ber_scanf(ber, "m", &ck) == LBER_ERROR)
			goto bad;
		break;
	case LDAP_TAG_SYNC_REFRESH_DELETE:
	case LDAP_TAG_SYNC_REFRESH_PRESENT:
		if (tag == LDAP_TAG_SYNC_REFRESH_PRESENT)
			r->presents = 1;
		if (ber_scanf(ber, "{") == LBER_ERROR)
			goto bad;
		if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE &&
		    ber_scanf(ber, "m", &ck) == LBER_ERROR)
			goto bad;
		break;
	case LDAP_TAG_SYNC_ID_SET:
		b = 0;
		if (ber_scanf(ber, "{") == LBER_ERROR)
			goto bad;
		tag = ber_peek_tag(ber, &len);
		if (tag == LDAP_TAG_SYNC_COOKIE) {
			if (ber_scanf(ber, "m", &ck) == LBER_ERROR)
				goto bad;
			tag = ber_peek_tag(ber, &len);
		}
		if (tag == LBER_BOOLEAN && ber_scanf(ber, "b", &b) ==
		    LBER_ERROR)
			goto bad;
		/*
		 * The set is walked where it is ("[W]" would copy each of
		 * a present phase's 100,000 values into an array first).
		 */
		for (tag = ber_first_element(ber, &len, &last);
		    tag != LBER_DEFAULT; tag = ber_next_element(ber, &len,
		    last)) {
			if (ber_scanf(ber, "m", &uv) == LBER_ERROR ||
			    uv.bv_len != 16)
				goto bad;
			if (b) {
				if (uuid_text(&uv, u) == -1)
					goto bad;
				if (gone(r->td, u) == -1)
					goto nomem;
			} else if (uuids_add(&r->td->pres, uv.bv_val) == -1)
				goto nomem;
		}
		break;
	default:
		goto bad;
	}
	if (keep_cookie(&r->cookie, &ck) == -1)
		goto nomem;
	rc = 0;
	goto out;
bad:
	sync_errf(err, "%s: cannot decode a sync info message in the sync of "
	    "'%s'", l->c->name, r->s->base);
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", l->c->name);
out:
	if (ber)
		ber_free(ber, 1);
	ber_bvfree(data);
	ldap_memfree(oid);
	return rc;
}

/* An entry with its Sync State control. */
static int
sync_entry(struct run *r, LDAPMessage *m, struct sync_err *err)
{
	struct sync_ldap *l = r->l;
	struct tdelta *td = r->td;
	LDAPControl **ctrls = NULL, *c;
	BerElement *ber = NULL;
	struct berval uuid, ck = { 0, NULL };
	struct sync_obj *o;
	ber_int_t state;
	ber_len_t len;
	json_t *at;
	char u[37], *dn = NULL;
	int rc = -1;

	if (ldap_get_entry_controls(l->ld, m, &ctrls) != LDAP_SUCCESS ||
	    (c = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL)) ==
	    NULL || c->ldctl_value.bv_val == NULL ||
	    (ber = ber_init(&c->ldctl_value)) == NULL ||
	    ber_scanf(ber, "{em", &state, &uuid) == LBER_ERROR ||
	    uuid_text(&uuid, u) == -1 ||
	    (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE &&
	    ber_scanf(ber, "m", &ck) == LBER_ERROR)) {
		sync_errf(err, "%s: an entry without a valid sync state control "
		    "in the sync of '%s'", l->c->name, r->s->base);
		goto out;
	}
	if (keep_cookie(&r->cookie, &ck) == -1)
		goto nomem;
	switch (state) {
	case LDAP_SYNC_PRESENT:
		if (uuids_add(&td->pres, uuid.bv_val) == -1)
			goto nomem;
		break;
	case LDAP_SYNC_DELETE:
		if (gone(td, u) == -1)
			goto nomem;
		break;
	case LDAP_SYNC_ADD:
	case LDAP_SYNC_MODIFY:
		/* an entry now left out is one gone from the snapshot */
		if ((dn = ldap_get_dn(l->ld, m)) == NULL ||
		    sync_ldap_excluded(l->lc, &l->lc->obj[r->s->t], dn)) {
			if (gone(td, u) == -1)
				goto nomem;
			break;
		}
		if ((at = json_object_get(td->chg, u)) != NULL) {
			o = &td->objs[json_integer_value(at)];
			sync_obj_release(o);
		} else {
			if (td->nobjs == td->cap) {
				size_t cap = td->cap ? td->cap * 2 : 64;
				struct sync_obj *tmp = realloc(td->objs,
				    cap * sizeof *tmp);

				if (tmp == NULL)
					goto nomem;
				td->objs = tmp;
				td->cap = cap;
			}
			o = &td->objs[td->nobjs];
			memset(o, 0, sizeof *o);
			if (json_object_set_new(td->chg, u,
			    json_integer((json_int_t)td->nobjs)) == -1)
				goto nomem;
			td->nobjs++;
		}
		if (sync_ldap_entry_obj(l, (struct ldapmsg *)m, r->s->t, o,
		    err) == -1)
			goto out;
		break;
	default:
		sync_errf(err, "%s: unknown sync state %d in the sync of '%s'",
		    l->c->name, (int)state, r->s->base);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", l->c->name);
out:
	ldap_memfree(dn);
	if (ber)
		ber_free(ber, 1);
	ldap_controls_free(ctrls);
	return rc;
}

/*
 * One refreshOnly search from the cookie ck.  Returns 0 (the server's
 * new cookie in r->cookie), 1 when a full import is needed (why set),
 * -1 on error.
 */
static int
sync_search(struct run *r, struct sync_strv *attrs, const struct berval *ck,
    char *why, size_t whylen, struct sync_err *err)
{
	struct sync_ldap *l = r->l;
	struct sync_ldap_objconf *oc = &l->lc->obj[r->s->t];
	struct timeval tv = { l->lc->timeout, 0 };
	LDAPControl *sc[2] = { NULL, NULL }, **rctrls = NULL;
	LDAPMessage *m;
	char *diag = NULL, *matched = NULL;
	int rc, t, code, msgid, deletes = 0;

	if (sync_request(l, ck, &sc[0], err) == -1)
		return -1;
	rc = ldap_search_ext(l->ld, r->s->base, LDAP_SCOPE_SUBTREE, oc->filter,
	    attrs->v, 0, sc, NULL, NULL, 0, &msgid);
	ldap_control_free(sc[0]);
	if (rc != LDAP_SUCCESS)
		return sync_ldap_errf(err, l->ld, rc, "%s: sync of '%s' for %ss "
		    "failed", l->c->name, r->s->base, sync_objtype_name(r->s->t));
	for (;;) {
		m = NULL;
		t = ldap_result(l->ld, msgid, LDAP_MSG_ONE, &tv, &m);
		if (t <= 0) {
			ldap_msgfree(m);
			if (t == 0) {
				ldap_abandon_ext(l->ld, msgid, NULL, NULL);
				return sync_errf(err, "%s: sync of '%s' timed out "
				    "after %ld s", l->c->name, r->s->base,
				    l->lc->timeout);
			}
			ldap_get_option(l->ld, LDAP_OPT_RESULT_CODE, &code);
			return sync_ldap_errf(err, l->ld, code, "%s: sync of '%s' "
			    "failed", l->c->name, r->s->base);
		}
		if (t == LDAP_RES_SEARCH_RESULT)
			break;
		rc = 0;
		if (t == LDAP_RES_SEARCH_ENTRY)
			rc = sync_entry(r, m, err);
		else if (t == LDAP_RES_INTERMEDIATE)
			rc = sync_info(r, m, err);
		ldap_msgfree(m);
		if (rc == -1) {
			ldap_abandon_ext(l->ld, msgid, NULL, NULL);
			return -1;
		}
	}
	rc = ldap_parse_result(l->ld, m, &code, &matched, &diag, NULL, &rctrls,
	    1);
	if (rc != LDAP_SUCCESS) {
		rc = sync_ldap_errf(err, l->ld, rc, "%s: bad sync result",
		    l->c->name);
		goto out;
	}
	if (code == LDAP_SYNC_REFRESH_REQUIRED) {
		snprintf(why, whylen, "the server cannot bring the cookie for "
		    "'%s' up to date (e-syncRefreshRequired%s%.100s)",
		    r->s->base, diag && *diag ? ": " : "", diag ? diag : "");
		rc = 1;
		goto out;
	}
	if (code == LDAP_UNAVAILABLE_CRITICAL_EXTENSION) {
		snprintf(why, whylen, "the server offers no content "
		    "synchronization (RFC 4533) for '%s' (is the syncprov "
		    "overlay loaded?)", r->s->base);
		rc = 1;
		goto out;
	}
	if (code != LDAP_SUCCESS) {
		ldap_set_option(l->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, diag);
		ldap_set_option(l->ld, LDAP_OPT_MATCHED_DN, matched);
		rc = sync_ldap_errf(err, l->ld, code, "%s: sync of '%s' failed",
		    l->c->name, r->s->base);
		goto out;
	}
	if (parse_done(rctrls, &r->cookie, &deletes) == -1) {
		rc = sync_errf(err, "%s: the sync of '%s' ended without a valid "
		    "sync done control", l->c->name, r->s->base);
		goto out;
	}
	/* a present phase: every entry not named (nor changed) is gone */
	if ((!deletes || r->presents) &&
	    sync_strv_add(&r->td->pbases, r->s->base) == -1) {
		rc = sync_errf(err, "%s: out of memory", l->c->name);
		goto out;
	}
	rc = 0;
out:
	ldap_memfree(diag);
	ldap_memfree(matched);
	ldap_controls_free(rctrls);
	return rc;
}

int
sync_ldap_sync_cookie(struct sync_ldap *l, const char *base, char **cookie,
    struct sync_err *err)
{
	char noattrs[] = "1.1";
	char *attrs[2] = { noattrs, NULL };
	LDAPControl *sc[2] = { NULL, NULL }, **rctrls = NULL;
	LDAPMessage *res = NULL;
	struct berval ck = { 0, NULL };
	struct timeval tv = { l->lc->timeout, 0 };
	int rc, code = 0, deletes;

	*cookie = NULL;
	if (sync_request(l, NULL, &sc[0], err) == -1)
		return -1;
	rc = ldap_search_ext_s(l->ld, base, LDAP_SCOPE_BASE, "(objectClass=*)",
	    attrs, 0, sc, NULL, &tv, 0, &res);
	ldap_control_free(sc[0]);
	/* No sync (no syncprov, no such base, ...): the full read says
	 * what is wrong, if anything. */
	if (rc != LDAP_SUCCESS || res == NULL ||
	    ldap_parse_result(l->ld, res, &code, NULL, NULL, NULL, &rctrls,
	    0) != LDAP_SUCCESS || code != LDAP_SUCCESS ||
	    parse_done(rctrls, &ck, &deletes) == -1 || ck.bv_len == 0) {
		rc = 1;
		goto out;
	}
	if ((*cookie = sync_base64_encode(ck.bv_val, ck.bv_len)) == NULL) {
		rc = sync_errf(err, "%s: out of memory", l->c->name);
		goto out;
	}
	rc = 0;
out:
	ber_memfree(ck.bv_val);
	ldap_controls_free(rctrls);
	ldap_msgfree(res);
	return rc;
}

/* ---------------------------------------------------------------- merge */

/* 1 when the object d was not named by a present phase that covers it. */
static int
not_present(const struct tdelta *td, const struct snap *s,
    const struct dobj *d)
{
	unsigned char k[16];
	size_t i;

	if (uuid_bytes(s->buf + d->id, strlen(s->buf + d->id), k) == 0 &&
	    uuids_has(&td->pres, k))
		return 0;
	for (i = 0; i < td->pbases.n; i++)
		if (d->dn && sync_dn_under(s->buf + d->dn, td->pbases.v[i]))
			return 1;
	return 0;
}

/*
 * The frame both cookies share: a first line "KIND <digest of c>", the
 * lines of the server's cookies, and a last line "check <digest of the
 * lines before>".  0 with *body at the second line and *last at the
 * newline before the check line; 1 with why set when the cookie is
 * missing, damaged or from another configuration; -1 with err set.
 */
static int
cookie_frame(struct sync_connector *c, const char *kind, const struct snap *s,
    const char *prev, const char **body, const char **last, char *why,
    size_t whylen, struct sync_err *err)
{
	struct sync_buf digest = { 0 }, check = { 0 };
	const char *q;
	int rc = 1;

	if (s->cookie == NULL) {
		snprintf(why, whylen, "%s has no delta cookie", prev);
		return 1;
	}
	if (config_digest(c, kind, &digest) == -1)
		return sync_errf(err, "%s: out of memory", c->name);
	/* the check line covers the lines before it */
	*last = strrchr(s->cookie, '\n');
	if (*last == NULL || strncmp(*last + 1, "check ", 6) != 0 ||
	    hex_digest(&check, s->cookie, (size_t)(*last - s->cookie)) == -1 ||
	    strcmp(*last + 7, check.p) != 0) {
		snprintf(why, whylen, "the cookie of %s is damaged", prev);
		goto out;
	}
	q = strchr(s->cookie, '\n');
	if ((size_t)(q - s->cookie) != digest.len ||
	    memcmp(s->cookie, digest.p, digest.len)) {
		snprintf(why, whylen, "the server or the objects read have "
		    "changed since %s was written", prev);
		goto out;
	}
	*body = q + 1;
	rc = 0;
out:
	sync_buf_release(&digest);
	sync_buf_release(&check);
	return rc;
}

/*
 * The cookie of prev checked against c; 1 with why set when it cannot be
 * used.  On 0, ck[i] is the server cookie of search i (decoded, new).
 */
static int
check_cookie(struct sync_connector *c, const struct snap *s, const char *prev,
    const struct search *srch, size_t nsrch, struct berval *ck, char *why,
    size_t whylen, struct sync_err *err)
{
	const char *p, *end, *last;
	unsigned char *dec;
	size_t i, n, declen;
	int rc;

	if ((rc = cookie_frame(c, "rfc4533", s, prev, &p, &last, why, whylen,
	    err)) != 0)
		return rc;
	for (i = 0; p < last + 1 && i < nsrch; i++, p = end + 1) {
		const char *tn = sync_objtype_name(srch[i].t);

		end = strchr(p, '\n');
		n = strlen(tn);
		if ((size_t)(end - p) <= n + 1 || strncmp(p, tn, n) != 0 ||
		    p[n] != ' ' || sync_base64_decode(p + n + 1,
		    (size_t)(end - p) - n - 1, &dec, &declen, err) == -1) {
			snprintf(why, whylen, "the cookie of %s is damaged", prev);
			return 1;
		}
		ck[i].bv_val = (char *)dec;
		ck[i].bv_len = declen;
	}
	if (i != nsrch || p != last + 1) {
		snprintf(why, whylen, "the cookie of %s is damaged", prev);
		return 1;
	}
	return 0;
}

/*
 * The type of the line (with its newline) when it ends with the id
 * uuid, as the writer ends a line; -1 when it does not.
 */
static int
line_type(const char *line, size_t len, const char *uuid)
{
	static const char id[] = ",\"id\":\"", type[] = "\",\"type\":\"";
	const char *name, *q;
	size_t n, need;
	int t;

	if (strlen(uuid) != 36)
		return -1;
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		name = sync_objtype_name(t);
		n = strlen(name);
		need = sizeof id - 1 + 36 + sizeof type - 1 + n + 3;
		if (len <= need)
			continue;
		q = line + len - need;
		if (memcmp(q, id, sizeof id - 1) == 0 &&
		    memcmp(q + sizeof id - 1, uuid, 36) == 0 &&
		    memcmp(q + sizeof id - 1 + 36, type, sizeof type - 1) == 0 &&
		    memcmp(q + need - n - 3, name, n) == 0 &&
		    memcmp(q + need - 3, "\"}\n", 3) == 0)
			return t;
	}
	return -1;
}

/* The keys of set (entryUUIDs as uuid_text writes them) into u, sorted. */
static int
set_uuids(json_t *set, struct uuids *u)
{
	unsigned char k[16];
	const char *key;
	json_t *v;

	json_object_foreach(set, key, v)
		if (uuid_bytes(key, strlen(key), k) == 0 && uuids_add(u, k) == -1)
			return -1;
	uuids_sort(u);
	return 0;
}

/* Whether k is in u, u walked in order: *at only goes forward. */
static int
uuids_next(const struct uuids *u, size_t *at, const unsigned char k[16])
{
	while (*at < u->n && memcmp(u->v[*at], k, 16) < 0)
		(*at)++;
	return *at < u->n && memcmp(u->v[*at], k, 16) == 0;
}

/*
 * 1 when the DN of the line p (len bytes, with its newline) is in one of
 * bases, 0 when not (or it has none), -1 when the line is not JSON.
 */
static int
line_dn_under(const char *p, size_t len, const struct sync_strv *bases)
{
	json_t *o = json_loadb(p, len - 1, 0, NULL), *dn;
	size_t i;
	int in = 0;

	if (o == NULL)
		return -1;
	dn = json_object_get(o, "dn");
	for (i = 0; json_is_string(dn) && i < bases->n && !in; i++)
		in = sync_dn_under(json_string_value(dn), bases->v[i]);
	json_decref(o);
	return in;
}

/* Where a changed entry goes in the output: see snap_lines_hint. */
struct place {
	size_t pos, len;
};

/*
 * One line of prev for kept_by_scan: 0 kept, 1 left out, 2 left out and
 * counted as a change, 3 not a line as expected, -1 out of memory.
 */
static int
scan_line(struct sync_connector *c, struct tdelta *td, const char *p,
    size_t len, size_t at[][3], unsigned char prev[16], int *type,
    size_t *nlines)
{
	static const char head[] = "{\"anchor\":\"";
	unsigned char k[16];
	char u[37];
	int t;

	if (len < sizeof head + 37 || memcmp(p, head, sizeof head - 1) != 0 ||
	    p[sizeof head - 1 + 36] != '"')
		return 3;
	memcpy(u, p + sizeof head - 1, 36);
	u[36] = '\0';
	/* the merges below need the lines in order, as the writer wrote
	 * them; one out of order is left to the parser to report */
	if ((t = line_type(p, len, u)) == -1 || uuid_bytes(u, 36, k) == -1 ||
	    memcmp(prev, k, 16) >= 0)
		return 3;
	memcpy(prev, k, 16);
	*type = t;
	nlines[t]++;
	if (!c->ldap->obj[t].enabled)
		return 1;
	/* at[t]: positions in td[t].pres, the changed, the deleted */
	if (uuids_next(&td[t].chgk, &at[t][1], k))
		return 1;
	if (uuids_next(&td[t].delk, &at[t][2], k))
		return 2;
	if (uuids_next(&td[t].pres, &at[t][0], k) || td[t].pbases.n == 0)
		return 0;
	/* not named: gone, if a present phase covered its DN */
	switch (line_dn_under(p, len, &td[t].pbases)) {
	case -1:
		return 3;
	case 1:
		return 2;
	default:
		return 0;
	}
}

/*
 * prev's unchanged lines without parsing prev (loaded by snap_load_head),
 * when the anchor is entryUUID, so that a line's anchor is the
 * entryUUID the server names it by.  Every line is looked at, but only
 * its anchor and its end (id, type), merged with the sorted entryUUIDs
 * changed, deleted and (after a present phase) present; the DN is read
 * only of a line a present phase did not name.  The file is read
 * through a buffer, not mapped: a first touch of each of the 20,000
 * pages of a mapping costs more than the read (a paravirtualised VM),
 * and a binary search for the lines of 1,000 changes, which touches
 * 5,000 pages, cost as much as this scan of all of them, which also
 * checks what the parser would: the order of the lines, their form at
 * both ends and their number against the header.  The same decisions
 * as kept_by_walk.  1 when a line is not as expected (then prev is
 * parsed, and the parser says what is wrong), -1 with err set.
 */
static int
kept_by_scan(struct sync_connector *c, struct snap *s, struct tdelta *td,
    struct sync_lines **kl, size_t *changed, struct sync_err *err)
{
	struct sync_ldap_conf *lc = c->ldap;
	size_t at[SYNC_NOBJTYPES][3], cap = (size_t)1 << 20, have = 0, used;
	size_t base, nchanged = 0, nlines[SYNC_NOBJTYPES] = { 0 }, j = 0;
	size_t off, llen;
	unsigned char prev[16] = { 0 };
	struct uuids all = { 0 };
	struct place *pl = NULL;
	struct berval bv;
	char u[37];
	char *buf = NULL, *nb, *p, *nl;
	ssize_t n;
	int t, rc = 1, r, type = 0;

	*kl = NULL;
	memset(at, 0, sizeof at);
	if (lc->anchor.n != 1 || strcasecmp(lc->anchor.v[0], "entryUUID") != 0 ||
	    s->fd == -1)
		return 1;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if (set_uuids(td[t].chg, &td[t].chgk) == -1 ||
		    set_uuids(td[t].del, &td[t].delk) == -1 ||
		    set_uuids(td[t].chg, &all) == -1)
			goto nomem;
	/* where each changed entry goes, found on the way (hints) */
	uuids_sort(&all);
	if ((*kl = snap_lines_new(s)) == NULL || (buf = malloc(cap)) == NULL ||
	    (all.n > 0 && (pl = calloc(all.n, sizeof *pl)) == NULL))
		goto nomem;
	for (base = s->body - 1; base + have < s->size || have > 0;) {
		if (base + have < s->size) {
			n = pread(s->fd, buf + have, cap - have,
			    (off_t)(base + have));
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0) {
				rc = n == 0 ? 1 : sync_errno(err, "cannot read "
				    "'%s'", s->path);
				goto out;
			}
			have += (size_t)n;
		}
		for (p = buf; (nl = memchr(p, '\n', have - (size_t)(p - buf))) !=
		    NULL; p = nl + 1) {
			off = base + (size_t)(p - buf);
			llen = (size_t)(nl + 1 - p);
			if ((r = scan_line(c, td, p, llen, at, prev, &type,
			    nlines)) == -1)
				goto nomem;
			if (r == 3)
				goto out;
			/* prev is this line's entryUUID now */
			for (; j < all.n && memcmp(all.v[j], prev, 16) <= 0; j++) {
				pl[j].pos = off;
				if (memcmp(all.v[j], prev, 16) == 0 && r == 0)
					pl[j].len = llen;
			}
			nchanged += r == 2;
			if (r == 0) {
				if (snap_lines_range(*kl, base +
				    (size_t)(p - buf), (size_t)(nl + 1 - p)) == -1)
					goto nomem;
				(*kl)->counts[type]++;
			}
		}
		used = (size_t)(p - buf);
		if (used == 0 && have == cap) {
			/* a line longer than the buffer */
			if ((nb = realloc(buf, cap * 2)) == NULL)
				goto nomem;
			buf = nb;
			cap *= 2;
			continue;
		}
		if (used == 0 && base + have >= s->size)
			goto out;       /* no newline at the end */
		memmove(buf, buf + used, have - used);
		have -= used;
		base += used;
	}
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if (nlines[t] != s->counts[t])
			goto out;       /* truncated or altered */
	for (; j < all.n; j++)
		pl[j].pos = s->size;
	for (j = 0; j < all.n; j++) {
		bv.bv_len = 16;
		bv.bv_val = (char *)all.v[j];
		if (uuid_text(&bv, u) == 0 && snap_lines_hint(*kl, u,
		    pl[j].pos, pl[j].len) == -1)
			goto nomem;
	}
	*changed += nchanged;
	rc = 0;
	goto out;
nomem:
	rc = sync_errf(err, "%s: out of memory", c->name);
out:
	free(buf);
	free(all.v);
	free(pl);
	if (rc != 0) {
		sync_lines_free(*kl);
		*kl = NULL;
	}
	return rc;
}

/*
 * prev's unchanged lines by a walk of all its objects (prev parsed by
 * snap_load_skel): for any other anchor than entryUUID, and where
 * kept_by_scan finds a line it does not expect.
 */
static int
kept_by_walk(struct sync_connector *c, const struct snap *s,
    struct tdelta *td, struct sync_lines **kl, size_t *changed)
{
	size_t k;

	if ((*kl = snap_lines_new(s)) == NULL)
		return -1;
	for (k = 0; k < s->nobjs; k++) {
		const struct dobj *d = &s->objs[k];
		struct tdelta *tt = &td[d->type];

		if (!c->ldap->obj[d->type].enabled)
			continue;
		/* a changed entry is handed on below, with the new ones */
		if (json_object_get(tt->chg, s->buf + d->id) != NULL)
			continue;
		if (json_object_get(tt->del, s->buf + d->id) != NULL ||
		    not_present(tt, s, d)) {
			(*changed)++;
			continue;
		}
		if (snap_lines_add(*kl, s, k) == -1)
			return -1;
	}
	return 0;
}

int
sync_ldap_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err)
{
	struct tdelta td[SYNC_NOBJTYPES];
	struct sync_ldap l = { 0 };
	struct sync_strv attrs[SYNC_NOBJTYPES];
	struct sync_lines *kl = NULL;
	struct sync_strv newck = { 0 };
	struct berval *ck = NULL;
	struct search *srch = NULL;
	struct snap *s;
	size_t nsrch = 0, i;
	int t, rc = -1, opened = 0;

	memset(td, 0, sizeof td);
	memset(attrs, 0, sizeof attrs);
	/* the header only: the rest is read where it is needed */
	if ((s = snap_load_head(prev, err)) == NULL)
		return -1;
	if (snap_delta_base(s, prev, c->name, err) == -1)
		goto out;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if ((td[t].chg = json_object()) == NULL ||
		    (td[t].del = json_object()) == NULL)
			goto nomem;
	if ((srch = searches(c, &nsrch)) == NULL ||
	    (ck = calloc(nsrch + 1, sizeof *ck)) == NULL)
		goto nomem;
	if ((rc = check_cookie(c, s, prev, srch, nsrch, ck, res->why,
	    sizeof res->why, err)) != 0)
		goto out;
	rc = -1;
	if (sync_ldap_open(&l, c, err) == -1)
		goto out;
	opened = 1;
	for (i = 0; i < nsrch; i++) {
		struct run r = { &l, &td[srch[i].t], &srch[i], { 0, NULL }, 0 };
		char *b64;

		t = srch[i].t;
		if (attrs[t].n == 0 && sync_ldap_request_attrs(&l,
		    &c->ldap->obj[t], &attrs[t]) == -1)
			goto nomem;
		rc = sync_search(&r, &attrs[t], &ck[i], res->why,
		    sizeof res->why, err);
		/* no new cookie: the one given still stands */
		b64 = sync_base64_encode(r.cookie.bv_len ? r.cookie.bv_val :
		    ck[i].bv_val, r.cookie.bv_len ? r.cookie.bv_len :
		    ck[i].bv_len);
		ber_memfree(r.cookie.bv_val);
		if (rc != 0) {
			free(b64);
			goto out;
		}
		rc = -1;
		if (sync_strv_take(&newck, b64) == -1)
			goto nomem;
	}

	/*
	 * prev's unchanged objects are left in its file, for the writer to
	 * copy (res->kept); the changed and new ones are handed to fn.
	 * Where they cannot be found by a look-up, prev is parsed (the
	 * same file: its cookie is checked to be the one used).
	 */
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		uuids_sort(&td[t].pres);
	if ((rc = kept_by_scan(c, s, td, &kl, &res->changed, err)) == -1)
		goto out;
	if (rc == 1) {
		struct snap *full;

		rc = -1;
		if ((full = snap_load_skel(prev, err)) == NULL)
			goto out;
		if (full->cookie == NULL || strcmp(full->cookie, s->cookie) != 0) {
			snap_free(full);
			sync_errf(err, "%s: the file changed during the import",
			    prev);
			goto out;
		}
		snap_free(s);
		s = full;
		if (kept_by_walk(c, s, td, &kl, &res->changed) == -1)
			goto nomem;
	}
	rc = -1;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		for (i = 0; i < td[t].nobjs; i++) {
			if (td[t].objs[i].anchor == NULL)
				continue;       /* deleted after its change */
			res->changed++;
			if (fn(ctx, &td[t].objs[i], err) == -1)
				goto out;
		}
	if ((res->cookie = sync_ldap_cookie_make(c, newck.v, newck.n, err)) ==
	    NULL)
		goto out;
	res->delta = 1;
	snap_lines_take(kl, s);
	s = NULL;
	res->kept = kl;
	kl = NULL;
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", c->name);
	rc = -1;
out:
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		for (i = 0; i < td[t].nobjs; i++)
			sync_obj_release(&td[t].objs[i]);
		free(td[t].objs);
		json_decref(td[t].chg);
		json_decref(td[t].del);
		free(td[t].pres.v);
		free(td[t].chgk.v);
		free(td[t].delk.v);
		sync_strv_release(&td[t].pbases);
		sync_strv_release(&attrs[t]);
	}
	for (i = 0; ck && i < nsrch; i++)
		free(ck[i].bv_val);
	free(ck);
	free(srch);
	sync_strv_release(&newck);
	sync_lines_free(kl);
	if (opened)
		sync_ldap_close(&l);
	snap_free(s);
	return rc;
}

/* ------------------------------------------------------- Active Directory */

/*
 * The delta import of an ad connector, by the DirSync control of Active
 * Directory (and Samba).  DirSync names the objects changed since its
 * cookie, anywhere in the domain, with only the attributes that changed;
 * with LDAP_DIRSYNC_INCREMENTAL_VALUES a group's member change comes as
 * the values added or removed.  That is not enough to write what a full
 * read gives: a rename reports "name" and "parentGUID" but not the new
 * cn, the backlinks (memberOf) of the members of a changed group are not
 * reported, nor the member values that AD rewrites in other groups when
 * an object is renamed, and the connector's filters (objectCategory=
 * person) cannot be evaluated locally on partial objects.  So DirSync
 * only says which objects changed, and those are read again, by
 * objectGUID, with each type's filter and attributes, as a full import
 * reads them; with them, their neighbours: the objects at the other end
 * of a link a changed object gained or lost (its old values, from its
 * line in prev, against its new ones: a member added or removed gains or
 * loses a memberOf), of every link of one renamed, moved or gone, and
 * the objects whose values name the old DN of one renamed, moved or gone
 * (a group holding a renamed user).  An object that no longer matches,
 * or is deleted, is dropped.  The lines of prev's other objects are
 * copied as they are (res->kept): prev is loaded without its values
 * (snap_load_skel), and only the lines of the changed objects are
 * parsed.
 *
 * A rename of a container (an OU, or an object with entries below it)
 * changes the DNs below it without DirSync reporting them: a full import
 * is done instead.
 */

#define DIRSYNC_OID "1.2.840.113556.1.4.841"

/* The domain's naming context (a new string) from the root DSE, or
 * NULL when the server names none (or memory ran out). */
static char *
default_nc(struct sync_ldap *l)
{
	char a[] = "defaultNamingContext";
	char *attrs[2] = { a, NULL };
	struct timeval tv = { l->lc->timeout, 0 };
	LDAPMessage *res = NULL, *e;
	struct berval **v = NULL;
	char *nc = NULL;

	if (ldap_search_ext_s(l->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)",
	    attrs, 0, NULL, NULL, &tv, 0, &res) == LDAP_SUCCESS &&
	    (e = ldap_first_entry(l->ld, res)) != NULL &&
	    (v = ldap_get_values_len(l->ld, e, a)) != NULL && v[0] != NULL)
		nc = sync_strndup(v[0]->bv_val, v[0]->bv_len);
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return nc;
}

/* 1 when every base of every enabled type is inside the naming context. */
static int
bases_in(struct sync_connector *c, const char *nc)
{
	struct search *s;
	size_t n, i;
	int in = 1;

	if ((s = searches(c, &n)) == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (!sync_dn_under(s[i].base, nc))
			in = 0;
	free(s);
	return in;
}

/*
 * One DirSync search of the naming context nc from the cookie *ck (empty
 * at first), which it replaces with the server's; *more is set when the
 * server has more to send.  The result's entries in *res (the caller
 * frees it).  LDAP errors come back as their code (with err set), 0 on
 * success, -1 for others.
 */
static int
dirsync_search(struct sync_ldap *l, const char *nc, const char *filter,
    char **attrs, struct berval *ck, int *more, LDAPMessage **res,
    struct sync_err *err)
{
	struct timeval tv = { l->lc->timeout, 0 };
	LDAPControl *sc[2] = { NULL, NULL }, **rctrls = NULL, *rc1;
	BerElement *ber;
	struct berval bv, nck = { 0, NULL };
	ber_int_t flag, size;
	int rc, code = 0;

	*res = NULL;
	*more = 0;
	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL)
		return sync_errf(err, "%s: out of memory", l->c->name);
	/*
	 * Flags 0: the account needs the right to replicate directory
	 * changes.  With LDAP_DIRSYNC_OBJECT_SECURITY (0x1) Samba lets any
	 * account search, but leaves the deleted objects out, which a delta
	 * cannot do without.
	 */
	if (ber_printf(ber, "{iio}", (ber_int_t)0, (ber_int_t)0,
	    ck->bv_val ? ck->bv_val : "", (ber_len_t)ck->bv_len) == -1 ||
	    ber_flatten2(ber, &bv, 0) == -1) {
		ber_free(ber, 1);
		return sync_errf(err, "%s: cannot encode the dirsync control",
		    l->c->name);
	}
	rc = ldap_control_create(DIRSYNC_OID, 1, &bv, 1, &sc[0]);
	ber_free(ber, 1);
	if (rc != LDAP_SUCCESS)
		return sync_ldap_errf(err, l->ld, rc, "%s: cannot create the "
		    "dirsync control", l->c->name);
	rc = ldap_search_ext_s(l->ld, nc, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
	    sc, NULL, &tv, 0, res);
	ldap_control_free(sc[0]);
	if (*res == NULL || ldap_parse_result(l->ld, *res, &code, NULL, NULL,
	    NULL, &rctrls, 0) != LDAP_SUCCESS) {
		sync_ldap_errf(err, l->ld, rc == LDAP_SUCCESS ? LDAP_OTHER : rc,
		    "%s: dirsync of '%s' failed", l->c->name, nc);
		return rc == LDAP_SUCCESS ? LDAP_OTHER : rc;
	}
	if (code != LDAP_SUCCESS) {
		ldap_controls_free(rctrls);
		sync_ldap_errf(err, l->ld, code, "%s: dirsync of '%s' failed",
		    l->c->name, nc);
		return code;
	}
	rc1 = ldap_control_find(DIRSYNC_OID, rctrls, NULL);
	if (rc1 == NULL || rc1->ldctl_value.bv_val == NULL ||
	    (ber = ber_init(&rc1->ldctl_value)) == NULL) {
		ldap_controls_free(rctrls);
		return sync_errf(err, "%s: the dirsync of '%s' ended without "
		    "its control", l->c->name, nc);
	}
	if (ber_scanf(ber, "{iim}", &flag, &size, &nck) == LBER_ERROR) {
		ber_free(ber, 1);
		ldap_controls_free(rctrls);
		return sync_errf(err, "%s: cannot decode the dirsync control of "
		    "'%s'", l->c->name, nc);
	}
	*more = flag != 0;
	rc = keep_cookie(ck, &nck);
	ber_free(ber, 1);
	ldap_controls_free(rctrls);
	if (rc == -1)
		return sync_errf(err, "%s: out of memory", l->c->name);
	return 0;
}

/* "dirsync <digest>\ncookie <base64>\ncheck <digest>": new string. */
static char *
ad_cookie_make(struct sync_connector *c, const struct berval *ck,
    struct sync_err *err)
{
	struct sync_buf b = { 0 };
	char *b64 = NULL;

	if (config_digest(c, "dirsync", &b) == -1 ||
	    (b64 = sync_base64_encode(ck->bv_val, ck->bv_len)) == NULL ||
	    sync_buf_addf(&b, "\ncookie %s", b64) == -1 ||
	    sync_buf_adds(&b, "\ncheck ") == -1 ||
	    hex_digest(&b, b.p, b.len - 7) == -1) {
		free(b64);
		sync_buf_release(&b);
		sync_errf(err, "%s: out of memory", c->name);
		return NULL;
	}
	free(b64);
	return sync_buf_detach(&b);
}

int
sync_ad_dirsync_cookie(struct sync_ldap *l, char **cookie,
    struct sync_err *err)
{
	char a[] = "objectGUID";
	char *attrs[2] = { a, NULL };
	struct berval ck = { 0, NULL };
	LDAPMessage *res = NULL;
	char *nc;
	int rc, more = 1;

	*cookie = NULL;
	if ((nc = default_nc(l)) == NULL || !bases_in(l->c, nc)) {
		free(nc);
		return 1;
	}
	/*
	 * A filter that matches nothing: the server still sends its cookie
	 * (its highest USN), without the whole domain that an empty cookie
	 * and a real filter would return.
	 */
	while (more) {
		rc = dirsync_search(l, nc, "(objectGUID=\\00)", attrs, &ck, &more,
		    &res, err);
		ldap_msgfree(res);
		if (rc != 0) {
			/* no DirSync (no right to replicate, ...): no cookie */
			free(nc);
			ber_memfree(ck.bv_val);
			return rc == -1 ? -1 : 1;
		}
	}
	free(nc);
	rc = 0;
	if (ck.bv_len == 0)
		rc = 1;
	else if ((*cookie = ad_cookie_make(l->c, &ck, err)) == NULL)
		rc = -1;
	ber_memfree(ck.bv_val);
	return rc;
}

/* The DirSync cookie of prev's cookie into *ck; 1 with why set when it
 * cannot be used. */
static int
ad_check_cookie(struct sync_connector *c, const struct snap *s,
    const char *prev, struct berval *ck, char *why, size_t whylen,
    struct sync_err *err)
{
	const char *p, *last;
	unsigned char *dec;
	size_t declen;
	int rc;

	if ((rc = cookie_frame(c, "dirsync", s, prev, &p, &last, why, whylen,
	    err)) != 0)
		return rc;
	if (p > last || strncmp(p, "cookie ", 7) != 0 ||
	    strchr(p, '\n') != last ||
	    sync_base64_decode(p + 7, (size_t)(last - p - 7), &dec, &declen,
	    err) == -1) {
		snprintf(why, whylen, "the cookie of %s is damaged", prev);
		return 1;
	}
	ck->bv_val = (char *)dec;
	ck->bv_len = declen;
	return 0;
}

/* A DN as a key: lower case (the server spells a DN the same way each
 * time; case is all that varies between a DN and a value naming it). */
/* Folds ASCII capitals to lower case, as DN keys are compared here
 * (never by the locale). */
static void
fold_ascii(char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] - 'A' + 'a');
}

static char *
dn_key(const char *p, size_t len)
{
	char *k = sync_strndup(p, len);

	if (k != NULL)
		fold_ascii(k, len);
	return k;
}

/* Whether the DN p (len bytes) is a key of set, folded into tmp as
 * dn_key folds it; -1 when out of memory. */
static int
dn_in(json_t *set, const char *p, size_t len, struct sync_buf *tmp)
{
	sync_buf_reset(tmp);
	if (sync_buf_add(tmp, p, len) == -1)
		return -1;
	fold_ascii(tmp->p, len);
	return json_object_getn(set, tmp->p, len) != NULL;
}

/* Adds to set the keys of the values of o that may be DNs.  Binary
 * values are left out: as raw bytes they name nothing, and they need
 * not be UTF-8, which a key must be. */
static int
add_names(json_t *set, const struct sync_obj *o)
{
	size_t i, j;
	char *k;

	for (i = 0; i < o->n; i++)
		for (j = 0; !o->a[i].binary && j < o->a[i].n; j++) {
			const struct sync_bv *v = &o->a[i].v[j];

			if (v->len < 3 || memchr(v->p, '=', v->len) == NULL)
				continue;
			if ((k = dn_key(v->p, v->len)) == NULL ||
			    json_object_set_new(set, k, json_true()) == -1) {
				free(k);
				return -1;
			}
			free(k);
		}
	return 0;
}

/* The line of object kk of s, without its newline, and its length. */
static const char *
snap_line(const struct snap *s, size_t kk, size_t *len)
{
	size_t end = kk + 1 < s->nobjs ? s->objs[kk + 1].off : s->size + 1;

	*len = end - s->objs[kk].off - 1;
	return s->buf + s->objs[kk].off;
}

/*
 * Adds to set the keys of the values that may be DNs of object kk of s
 * (loaded by snap_load_skel: its line is parsed here, the only lines of
 * prev that are).  Binary values are left out, as raw bytes they name
 * nothing.  0, 1 when the line is not JSON, -1 when out of memory.
 */
static int
line_names(const struct snap *s, size_t kk, json_t *set)
{
	json_t *o, *attrs, *bin, *vals, *v;
	const char *name, *p;
	size_t len, i, j;
	char *k;
	int rc = 0;

	p = snap_line(s, kk, &len);
	/* (a text value may hold a NUL, written as \u0000) */
	if ((o = json_loadb(p, len, JSON_ALLOW_NUL, NULL)) == NULL)
		return 1;
	attrs = json_object_get(o, "attrs");
	bin = json_object_get(o, "binary");
	json_object_foreach(attrs, name, vals) {
		int binary = 0;

		json_array_foreach(bin, i, v)
			if (json_is_string(v) &&
			    strcmp(json_string_value(v), name) == 0)
				binary = 1;
		if (binary)
			continue;
		json_array_foreach(vals, j, v) {
			const char *vp = json_string_value(v);
			size_t vl = json_string_length(v);

			if (vp == NULL || vl < 3 || memchr(vp, '=', vl) == NULL)
				continue;
			if ((k = dn_key(vp, vl)) == NULL ||
			    json_object_set_new(set, k, json_true()) == -1) {
				free(k);
				rc = -1;
				goto out;
			}
			free(k);
		}
	}
out:
	json_decref(o);
	return rc;
}

/*
 * The DNs a scan of prev's lines looks for (struct needles): each as
 * its line's "dn" holds it, JSON-escaped, folded to lower case, the keys
 * of set; lens marks their lengths (the lengths of 4,096 bytes and more
 * share the last bit).
 */
struct needles {
	json_t *set;
	unsigned char lens[512];
	size_t min, max;
};

static int
needles_add(struct needles *nd, const char *dn)
{
	struct sync_buf b = { 0 };
	size_t i, n;
	int rc = -1;

	if (sync_json_addstr(&b, dn, strlen(dn)) == -1)
		goto out;
	n = b.len - 2;
	fold_ascii(b.p + 1, n);
	if (json_object_setn_new(nd->set, b.p + 1, n, json_true()) == -1)
		goto out;
	i = n < 4095 ? n : 4095;
	nd->lens[i / 8] |= (unsigned char)(1u << (i % 8));
	if (nd->min == 0 || n < nd->min)
		nd->min = n;
	if (n > nd->max)
		nd->max = n;
	rc = 0;
out:
	sync_buf_release(&b);
	return rc;
}

/*
 * 1 when a string of the line p (len bytes) is one of the needles: a
 * value naming one of their DNs.  Only strings that start with an
 * attribute type and '=' are looked at: found by the '=', their text up
 * to the closing quote is folded and looked up when its length is one
 * of the needles'.  -1 when out of memory.
 */
static int
line_names_one(const struct needles *nd, const char *p, size_t len,
    struct sync_buf *tmp)
{
	const char *end = p + len, *q, *st, *e, *b;
	size_t n, i;

	for (q = p; (q = memchr(q, '=', (size_t)(end - q))) != NULL; q++) {
		for (st = q; st > p && ((st[-1] >= 'A' && st[-1] <= 'Z') ||
		    (st[-1] >= 'a' && st[-1] <= 'z') ||
		    (st[-1] >= '0' && st[-1] <= '9') || st[-1] == '-' ||
		    st[-1] == '.'); st--)
			;
		/* an opening quote: after '[', ',' or ':' */
		if (st == q || st - p < 2 || st[-1] != '"' ||
		    (st[-2] != '[' && st[-2] != ',' && st[-2] != ':'))
			continue;
		for (e = q; (e = memchr(e, '"', (size_t)(end - e))) != NULL;
		    e++) {
			for (b = e; b > st && b[-1] == '\\'; b--)
				;
			if ((e - b) % 2 == 0)
				break;
		}
		if (e == NULL)
			return 0;
		n = (size_t)(e - st);
		i = n < 4095 ? n : 4095;
		if (n >= nd->min && n <= nd->max &&
		    (nd->lens[i / 8] & (1u << (i % 8)))) {
			sync_buf_reset(tmp);
			if (sync_buf_add(tmp, st, n) == -1)
				return -1;
			fold_ascii(tmp->p, n);
			if (json_object_getn(nd->set, tmp->p, n) != NULL)
				return 1;
		}
		q = e;
	}
	return 0;
}

struct adrun {
	struct sync_ldap *l;
	struct sync_connector *c;
	struct sync_strv attrs[SYNC_NOBJTYPES];
	struct tdelta td[SYNC_NOBJTYPES];
};

/*
 * Reads object id again, as each enabled type's search would find it, into
 * r->td[type].chg (id -> its index in r->td[type].objs).
 */
static int
reread(struct adrun *r, const char *id, struct sync_err *err)
{
	struct sync_ldap *l = r->l;
	struct timeval tv = { l->lc->timeout, 0 };
	char base[64];
	int t, rc;

	snprintf(base, sizeof base, "<GUID=%s>", id);
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		struct sync_ldap_objconf *oc = &l->lc->obj[t];
		struct sync_strv *bases = oc->base_dns.n ? &oc->base_dns :
		    &l->lc->base_dns;
		struct tdelta *td = &r->td[t];
		LDAPMessage *res = NULL, *e;
		struct sync_obj *o;
		size_t i;
		char *dn;
		int in = 0;

		if (!oc->enabled)
			continue;
		if (r->attrs[t].n == 0 && sync_ldap_request_attrs(l, oc,
		    &r->attrs[t]) == -1)
			return sync_errf(err, "%s: out of memory", l->c->name);
		rc = ldap_search_ext_s(l->ld, base, LDAP_SCOPE_BASE, oc->filter,
		    r->attrs[t].v, 0, NULL, NULL, &tv, 0, &res);
		if (rc == LDAP_NO_SUCH_OBJECT) {
			ldap_msgfree(res);
			return 0;       /* deleted */
		}
		if (rc != LDAP_SUCCESS) {
			ldap_msgfree(res);
			return sync_ldap_errf(err, l->ld, rc, "%s: reading '%s' "
			    "again failed", l->c->name, base);
		}
		if ((e = ldap_first_entry(l->ld, res)) == NULL ||
		    (dn = ldap_get_dn(l->ld, e)) == NULL) {
			ldap_msgfree(res);
			continue;       /* not of this type */
		}
		for (i = 0; i < bases->n; i++)
			if (sync_dn_under(dn, bases->v[i]))
				in = 1;
		if (in && sync_ldap_excluded(l->lc, oc, dn))
			in = 0;
		ldap_memfree(dn);
		if (!in) {
			ldap_msgfree(res);
			continue;
		}
		if (td->nobjs == td->cap) {
			size_t cap = td->cap ? td->cap * 2 : 64;
			struct sync_obj *tmp = realloc(td->objs, cap * sizeof *tmp);

			if (tmp == NULL) {
				ldap_msgfree(res);
				return sync_errf(err, "%s: out of memory",
				    l->c->name);
			}
			td->objs = tmp;
			td->cap = cap;
		}
		o = &td->objs[td->nobjs++];
		memset(o, 0, sizeof *o);
		rc = sync_ldap_entry_obj(l, (struct ldapmsg *)e,
		    (enum sync_objtype)t, o, err);
		ldap_msgfree(res);
		if (rc == -1)
			return -1;
		if (json_object_set_new(td->chg, o->id, json_integer(
		    (json_int_t)(td->nobjs - 1))) == -1)
			return sync_errf(err, "%s: out of memory", l->c->name);
	}
	return 0;
}

/*
 * Reads the objects ids[0..n) again, as reread does one, but with one
 * subtree search per type and base for up to 100 of them, (&FILTER
 * (|(objectGUID=...)...)): a search through Samba's module stack costs
 * it about a millisecond whatever it returns, and reread makes one per
 * type for each object.  An id that is not a GUID is read by reread.
 */
static int
reread_many(struct adrun *r, const char **ids, size_t n, struct sync_err *err)
{
	struct sync_ldap *l = r->l;
	struct timeval tv = { l->lc->timeout, 0 };
	struct sync_buf f = { 0 };
	unsigned char raw[16];
	size_t at, i, b, k;
	int t, rc = -1;

	for (at = 0; at < n; at += 100) {
		size_t m = n - at < 100 ? n - at : 100, nguid = 0;

		for (t = 0; t < SYNC_NOBJTYPES; t++) {
			struct sync_ldap_objconf *oc = &l->lc->obj[t];
			struct sync_strv *bases = oc->base_dns.n ?
			    &oc->base_dns : &l->lc->base_dns;
			struct tdelta *td = &r->td[t];

			if (!oc->enabled)
				continue;
			if (r->attrs[t].n == 0 && sync_ldap_request_attrs(l, oc,
			    &r->attrs[t]) == -1)
				goto nomem;
			sync_buf_reset(&f);
			if (sync_buf_addf(&f, oc->filter[0] == '(' ? "(&%s(|" :
			    "(&(%s)(|", oc->filter) == -1)
				goto nomem;
			for (nguid = 0, i = at; i < at + m; i++) {
				if (sync_guid_parse(ids[i], raw) == -1)
					continue;
				nguid++;
				if (sync_buf_adds(&f, "(objectGUID=") == -1)
					goto nomem;
				for (k = 0; k < 16; k++)
					if (sync_buf_addf(&f, "\\%02x",
					    raw[k]) == -1)
						goto nomem;
				if (sync_buf_addc(&f, ')') == -1)
					goto nomem;
			}
			if (sync_buf_adds(&f, "))") == -1)
				goto nomem;
			for (b = 0; nguid > 0 && b < bases->n; b++) {
				LDAPMessage *res = NULL, *e;
				int lrc;

				lrc = ldap_search_ext_s(l->ld, bases->v[b],
				    LDAP_SCOPE_SUBTREE, f.p, r->attrs[t].v, 0,
				    NULL, NULL, &tv, 0, &res);
				if (lrc != LDAP_SUCCESS &&
				    lrc != LDAP_NO_SUCH_OBJECT) {
					ldap_msgfree(res);
					sync_ldap_errf(err, l->ld, lrc, "%s: reading "
					    "%zu objects of '%s' again failed",
					    l->c->name, nguid, bases->v[b]);
					goto out;
				}
				for (e = ldap_first_entry(l->ld, res); e != NULL;
				    e = ldap_next_entry(l->ld, e)) {
					struct sync_obj *o;
					char *dn = ldap_get_dn(l->ld, e);
					int ex = dn == NULL ||
					    sync_ldap_excluded(l->lc, oc, dn);

					ldap_memfree(dn);
					if (ex)
						continue;
					if (td->nobjs == td->cap) {
						size_t cap = td->cap ? td->cap * 2 :
						    64;
						struct sync_obj *tmp = realloc(
						    td->objs, cap * sizeof *tmp);

						if (tmp == NULL) {
							ldap_msgfree(res);
							goto nomem;
						}
						td->objs = tmp;
						td->cap = cap;
					}
					o = &td->objs[td->nobjs];
					memset(o, 0, sizeof *o);
					if (sync_ldap_entry_obj(l,
					    (struct ldapmsg *)e,
					    (enum sync_objtype)t, o, err) == -1) {
						sync_obj_release(o);
						ldap_msgfree(res);
						goto out;
					}
					/* found under two bases: once */
					if (json_object_get(td->chg, o->id)) {
						sync_obj_release(o);
						continue;
					}
					td->nobjs++;
					if (json_object_set_new(td->chg, o->id,
					    json_integer((json_int_t)
					    (td->nobjs - 1))) == -1) {
						ldap_msgfree(res);
						goto nomem;
					}
				}
				ldap_msgfree(res);
			}
		}
		for (i = at; i < at + m; i++)
			if (sync_guid_parse(ids[i], raw) == -1 &&
			    reread(r, ids[i], err) == -1)
				goto out;
	}
	rc = 0;
	goto out;
nomem:
	rc = sync_errf(err, "%s: out of memory", l->c->name);
out:
	sync_buf_release(&f);
	return rc;
}

/* 1 when dn is under a base DN of an enabled type, not left out. */
static int
in_scope(struct sync_ldap_conf *lc, const char *dn)
{
	size_t i;
	int t;

	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		struct sync_ldap_objconf *oc = &lc->obj[t];
		struct sync_strv *bases = oc->base_dns.n ? &oc->base_dns :
		    &lc->base_dns;

		if (!oc->enabled || sync_ldap_excluded(lc, oc, dn))
			continue;
		for (i = 0; i < bases->n; i++)
			if (sync_dn_under(dn, bases->v[i]))
				return 1;
	}
	return 0;
}

/* 1 when the entry at dn has entries below it. */
static int
has_children(struct sync_ldap *l, const char *dn)
{
	char a[] = "1.1";
	char *attrs[2] = { a, NULL };
	struct timeval tv = { l->lc->timeout, 0 };
	LDAPMessage *res = NULL;
	int rc, n;

	rc = ldap_search_ext_s(l->ld, dn, LDAP_SCOPE_ONELEVEL,
	    "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);
	n = res ? ldap_count_entries(l->ld, res) : 0;
	ldap_msgfree(res);
	return (rc == LDAP_SUCCESS || rc == LDAP_SIZELIMIT_EXCEEDED) && n > 0;
}


/*
 * The objects of prev whose values name the old DN of an object that
 * was renamed, moved or deleted (gone: old DN -> true) into later, by a
 * scan of the lines of prev that neither changed nor are in later
 * already: the server rewrote or dropped those values without DirSync
 * naming the objects that hold them.  Most are found the other way, by
 * the link's other end (a renamed user's memberOf names the groups
 * whose member values changed); a scan also finds the others (a
 * non-linked attribute of DN syntax, or a backlink the configuration
 * does not read).
 */
static int
names_gone(const struct snap *s, json_t *gone, json_t *changed, json_t *later)
{
	struct needles nd;
	struct sync_buf tmp = { 0 };
	const char *id, *p;
	json_t *v;
	size_t kk, len;
	int rc = -1, r;

	memset(&nd, 0, sizeof nd);
	if ((nd.set = json_object()) == NULL)
		return -1;
	json_object_foreach(gone, id, v)
		if (needles_add(&nd, id) == -1)
			goto out;
	if (json_object_size(nd.set) == 0) {
		rc = 0;
		goto out;
	}
	for (kk = 0; kk < s->nobjs; kk++) {
		id = s->buf + s->objs[kk].id;
		if (json_object_get(changed, id) || json_object_get(later, id))
			continue;
		p = snap_line(s, kk, &len);
		if ((r = line_names_one(&nd, p, len, &tmp)) == -1)
			goto out;
		if (r == 1 && json_object_set_new(later, id, json_true()) == -1)
			goto out;
	}
	rc = 0;
out:
	json_decref(nd.set);
	sync_buf_release(&tmp);
	return rc;
}

/* reread_many of the keys of set that are not keys of but (may be
 * NULL). */
static int
reread_set(struct adrun *r, json_t *set, json_t *but, struct sync_err *err)
{
	const char **ids, *id;
	size_t n = 0;
	json_t *v;
	int rc;

	if ((ids = calloc(json_object_size(set) + 1, sizeof *ids)) == NULL)
		return sync_errf(err, "%s: out of memory", r->c->name);
	json_object_foreach(set, id, v)
		if (but == NULL || json_object_get(but, id) == NULL)
			ids[n++] = id;
	rc = reread_many(r, ids, n, err);
	free(ids);
	return rc;
}

int
sync_ad_import_delta(struct sync_connector *c, const char *prev,
    sync_obj_fn fn, void *ctx, struct sync_import_res *res,
    struct sync_err *err)
{
	struct sync_ldap l = { 0 };
	struct adrun r;
	struct berval ck = { 0, NULL };
	struct snap *s;
	struct sync_lines *kl = NULL;
	json_t *changed = NULL, *later = NULL, *oldnames = NULL;
	json_t *newnames = NULL, *outside = NULL, *inprev = NULL;
	json_t *gone = NULL, *follow = NULL, *v;
	struct sync_buf ja = { 0 }, tmp = { 0 };
	LDAPMessage *dres = NULL, *e;
	const char *id;
	char *nc = NULL;
	char a1[] = "*", a2[] = "objectGUID", a3[] = "isDeleted";
	char *dattrs[4] = { a1, a2, a3, NULL };
	size_t kk, j;
	int t, rc = -1, opened = 0, more = 1, in;

	memset(&r, 0, sizeof r);
	/*
	 * prev's lines, their anchors, ids, DNs and types, not their values:
	 * the lines of the objects that did not change are copied as they
	 * are (res->kept), and only those of the changed objects parsed.
	 */
	if ((s = snap_load_skel(prev, err)) == NULL)
		return -1;
	if (snap_delta_base(s, prev, c->name, err) == -1)
		goto out;
	if ((rc = ad_check_cookie(c, s, prev, &ck, res->why, sizeof res->why,
	    err)) != 0)
		goto out;
	rc = -1;
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		if ((r.td[t].chg = json_object()) == NULL)
			goto nomem;
	if ((changed = json_object()) == NULL || (later = json_object()) ==
	    NULL || (oldnames = json_object()) == NULL ||
	    (newnames = json_object()) == NULL ||
	    (outside = json_object()) == NULL ||
	    (inprev = json_object()) == NULL || (gone = json_object()) == NULL ||
	    (follow = json_object()) == NULL)
		goto nomem;
	if (sync_ldap_open(&l, c, err) == -1)
		goto out;
	opened = 1;
	r.l = &l;
	r.c = c;
	if ((nc = default_nc(&l)) == NULL || !bases_in(c, nc)) {
		snprintf(res->why, sizeof res->why, "the server names no domain "
		    "holding the base DNs");
		rc = 1;
		goto out;
	}

	/* What changed: the objectGUIDs DirSync names. */
	while (more) {
		int code = dirsync_search(&l, nc, "(objectClass=*)", dattrs, &ck,
		    &more, &dres, err);

		if (code == -1)
			goto out;
		if (code != 0) {
			snprintf(res->why, sizeof res->why, "the server refused "
			    "the dirsync search%s (%.300s)", code ==
			    LDAP_INSUFFICIENT_ACCESS ? " (the account needs "
			    "the right to replicate directory changes)" : "",
			    err->msg);
			rc = 1;
			goto out;
		}
		for (e = ldap_first_entry(l.ld, dres); e != NULL;
		    e = ldap_next_entry(l.ld, e)) {
			struct berval **g = ldap_get_values_len(l.ld, e,
			    "objectGUID");
			struct berval **oc = ldap_get_values_len(l.ld, e,
			    "objectClass");
			struct berval **nm = ldap_get_values_len(l.ld, e, "name");
			struct berval **del = ldap_get_values_len(l.ld, e,
			    "isDeleted");
			char guid[37], *dn = NULL;
			int renamed = 0, bad = 0;

			if (g == NULL || g[0] == NULL || g[0]->bv_len != 16) {
				bad = 1;
			} else {
				sync_guid_string((const unsigned char *)
				    g[0]->bv_val, guid);
				/* a rename or a move, not a new object */
				renamed = del == NULL && oc == NULL && nm != NULL;
				if (json_object_set_new(changed, guid,
				    json_true()) == -1)
					bad = 2;
				/* (an object may come in more than one round) */
				if (!bad && (dn = ldap_get_dn(l.ld, e)) != NULL) {
					if (in_scope(c->ldap, dn))
						json_object_del(outside, guid);
					else if (json_object_set_new(outside, guid,
					    json_true()) == -1)
						bad = 2;
				}
				ldap_memfree(dn);
				dn = NULL;
			}
			if (renamed && (dn = ldap_get_dn(l.ld, e)) != NULL &&
			    has_children(&l, dn)) {
				snprintf(res->why, sizeof res->why, "'%.300s' was "
				    "renamed or moved: the DNs of the entries "
				    "below it changed, which dirsync does not "
				    "report", dn);
				bad = 3;
			}
			ldap_memfree(dn);
			ldap_value_free_len(g);
			ldap_value_free_len(oc);
			ldap_value_free_len(nm);
			ldap_value_free_len(del);
			if (bad == 1) {
				sync_errf(err, "%s: a dirsync entry without an "
				    "objectGUID", c->name);
				goto out;
			}
			if (bad == 2)
				goto nomem;
			if (bad == 3) {
				rc = 1;
				goto out;
			}
		}
		ldap_msgfree(dres);
		dres = NULL;
	}

	/*
	 * One walk of prev's objects: an object outside every type's scope
	 * that prev does not hold either (a change elsewhere in the domain)
	 * need not be read.
	 */
	for (kk = 0; kk < s->nobjs; kk++) {
		id = s->buf + s->objs[kk].id;
		if (json_object_get(changed, id) == NULL)
			continue;
		json_object_del(outside, id);
		if (json_object_set_new(inprev, id, json_integer(
		    (json_int_t)kk)) == -1)
			goto nomem;
	}
	json_object_foreach(outside, id, v)
		json_object_del(changed, id);

	/* The changed objects again. */
	if (reread_set(&r, changed, NULL, err) == -1)
		goto out;

	/*
	 * The names to follow: of a changed object under the same DN, the
	 * DNs its old values (its line in prev) or its new values name but
	 * not both, the links added or removed: the objects at their other
	 * end gain or lose a backlink (a member's memberOf), and those at
	 * both ends of a link that stays keep theirs.  Of an object gone,
	 * or under a new DN, every DN its old and new values name, since
	 * the backlinks that name it changed too, and its old DN, which
	 * values of other objects may have held.
	 */
	json_object_foreach(changed, id, v) {
		json_t *at = json_object_get(inprev, id), *k1;
		const struct dobj *d = at ? &s->objs[json_integer_value(at)] :
		    NULL;
		const char *odn = d && d->dn ? s->buf + d->dn : NULL, *key;
		int same = 0;

		json_object_clear(oldnames);
		json_object_clear(newnames);
		if (d && (rc = line_names(s, (size_t)json_integer_value(at),
		    oldnames)) != 0) {
			if (rc == -1)
				goto nomem;
			sync_errf(err, "%s: byte %zu: not an object's line as "
			    "sync-import writes it", prev, (size_t)d->off - 1);
			rc = -1;
			goto out;
		}
		for (t = 0; t < SYNC_NOBJTYPES; t++) {
			json_t *ix = json_object_get(r.td[t].chg, id);
			const struct sync_obj *no;

			if (ix == NULL)
				continue;
			no = &r.td[t].objs[json_integer_value(ix)];
			if (add_names(newnames, no) == -1)
				goto nomem;
			if (odn && no->dn && strcasecmp(no->dn, odn) == 0)
				same = 1;
		}
		if (odn && !same && json_object_set_new(gone, odn,
		    json_true()) == -1)
			goto nomem;
		json_object_foreach(oldnames, key, k1)
			if ((!same || !json_object_get(newnames, key)) &&
			    json_object_set_new(follow, key, json_true()) == -1)
				goto nomem;
		json_object_foreach(newnames, key, k1)
			if ((!same || !json_object_get(oldnames, key)) &&
			    json_object_set_new(follow, key, json_true()) == -1)
				goto nomem;
	}
	rc = -1;

	/*
	 * The neighbours in prev: the objects named by the names to follow
	 * (by their DN), and those whose values name the old DN of one gone
	 * or renamed.
	 */
	for (kk = 0; kk < s->nobjs; kk++) {
		const struct dobj *d = &s->objs[kk];
		const char *dn = d->dn ? s->buf + d->dn : NULL;

		if (dn == NULL)
			continue;
		in = dn_in(follow, dn, strlen(dn), &tmp);
		if (in == -1)
			goto nomem;
		if (in && json_object_get(changed, s->buf + d->id) == NULL &&
		    json_object_set_new(later, s->buf + d->id, json_true()) ==
		    -1)
			goto nomem;
	}
	if (names_gone(s, gone, changed, later) == -1)
		goto nomem;
	if (reread_set(&r, later, changed, err) == -1)
		goto out;
	json_object_foreach(later, id, v)
		if (json_object_set_new(changed, id, json_true()) == -1)
			goto nomem;

	/*
	 * prev's other objects stay in its file, for the writer to copy; of
	 * the changed ones, those not read again are gone.
	 */
	if ((kl = snap_lines_new(s)) == NULL)
		goto nomem;
	for (kk = 0; kk < s->nobjs; kk++) {
		const struct dobj *d = &s->objs[kk];

		if (!c->ldap->obj[d->type].enabled)
			continue;
		if (json_object_get(changed, s->buf + d->id) == NULL) {
			if (snap_lines_add(kl, s, kk) == -1)
				goto nomem;
			continue;
		}
		if (json_object_get(r.td[d->type].chg, s->buf + d->id) == NULL)
			res->changed++; /* gone */
		else if (json_object_set_new(inprev, s->buf + d->id,
		    json_integer((json_int_t)kk)) == -1)
			goto nomem;
	}
	/* an object read again counts when it differs from its line */
	for (t = 0; t < SYNC_NOBJTYPES; t++)
		for (j = 0; j < r.td[t].nobjs; j++) {
			struct sync_obj *no = &r.td[t].objs[j];
			const char *line = NULL;
			size_t len = 0;

			if ((v = json_object_get(inprev, no->id)) != NULL &&
			    s->objs[json_integer_value(v)].type == t)
				line = snap_line(s, (size_t)json_integer_value(v),
				    &len);
			ja.len = 0;
			if (sync_obj_json(no, &ja, err) == -1)
				goto out;
			if (line == NULL || ja.len != len ||
			    memcmp(ja.p, line, len) != 0)
				res->changed++;
			if (fn(ctx, no, err) == -1)
				goto out;
		}
	if ((res->cookie = ad_cookie_make(c, &ck, err)) == NULL)
		goto out;
	res->delta = 1;
	snap_lines_take(kl, s);
	s = NULL;
	res->kept = kl;
	kl = NULL;
	rc = 0;
	goto out;
nomem:
	sync_errf(err, "%s: out of memory", c->name);
	rc = -1;
out:
	for (t = 0; t < SYNC_NOBJTYPES; t++) {
		for (j = 0; j < r.td[t].nobjs; j++)
			sync_obj_release(&r.td[t].objs[j]);
		free(r.td[t].objs);
		json_decref(r.td[t].chg);
		sync_strv_release(&r.attrs[t]);
	}
	json_decref(changed);
	json_decref(later);
	json_decref(oldnames);
	json_decref(newnames);
	json_decref(outside);
	json_decref(inprev);
	json_decref(gone);
	json_decref(follow);
	sync_buf_release(&ja);
	sync_buf_release(&tmp);
	ldap_msgfree(dres);
	ber_memfree(ck.bv_val);
	free(nc);
	sync_lines_free(kl);
	if (opened)
		sync_ldap_close(&l);
	snap_free(s);
	return rc;
}
