/*
 * ldap-mods.c: the values and modifications of the LDAP writer, apart
 * from its logic (ldap-export.c): error records, value keys and sets,
 * LDAPMod arrays, LDIF, DNs.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ldap-mods.h"

/* The RFC 4511 name of result code rc, as people look it up. */
static const char *
rcname(int rc)
{
	static const struct { int rc; const char *name; } t[] = {
		{ 0, "success" }, { 1, "operationsError" },
		{ 2, "protocolError" }, { 3, "timeLimitExceeded" },
		{ 4, "sizeLimitExceeded" }, { 7, "authMethodNotSupported" },
		{ 8, "strongerAuthRequired" }, { 10, "referral" },
		{ 11, "adminLimitExceeded" },
		{ 12, "unavailableCriticalExtension" },
		{ 13, "confidentialityRequired" }, { 16, "noSuchAttribute" },
		{ 17, "undefinedAttributeType" }, { 18, "inappropriateMatching" },
		{ 19, "constraintViolation" }, { 20, "attributeOrValueExists" },
		{ 21, "invalidAttributeSyntax" }, { 32, "noSuchObject" },
		{ 33, "aliasProblem" }, { 34, "invalidDNSyntax" },
		{ 48, "inappropriateAuthentication" },
		{ 49, "invalidCredentials" }, { 50, "insufficientAccessRights" },
		{ 51, "busy" }, { 52, "unavailable" }, { 53, "unwillingToPerform" },
		{ 54, "loopDetect" }, { 64, "namingViolation" },
		{ 65, "objectClassViolation" }, { 66, "notAllowedOnNonLeaf" },
		{ 67, "notAllowedOnRDN" }, { 68, "entryAlreadyExists" },
		{ 69, "objectClassModsProhibited" }, { 71, "affectsMultipleDSAs" },
		{ 80, "other" }, { 122, "assertionFailed" },
	};
	size_t i;

	for (i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].rc == rc)
			return t[i].name;
	return rc < 0 ? "clientError" : "unknown";
}

/*
 * The journal's error for an LDAP refusal: a new object with message
 * ("OP 'DN': name (code): diagnostic; matched DN 'M'", then what, if
 * any), code (the result code's name), result, diagnostic, matched_dn.
 */
json_t *
lx_error(const char *op, const char *dn, int rc, char *diag,
    const char *matched, const char *what)
{
	struct sync_buf b = { 0 };
	json_t *e;

	/* Samba ends its diagnostics with a newline. */
	while (diag && *diag && strchr(" \t\r\n", diag[strlen(diag) - 1]))
		diag[strlen(diag) - 1] = '\0';
	sync_buf_addf(&b, "%s '%s': %s (%d)", op, dn, rcname(rc), rc);
	if (diag && *diag)
		sync_buf_addf(&b, ": %s", diag);
	if (matched && *matched)
		sync_buf_addf(&b, "; matched DN '%s'", matched);
	if (what && *what)
		sync_buf_addf(&b, "; %s", what);
	e = json_pack("{s:s?, s:s, s:i}", "message", b.p, "code", rcname(rc),
	    "result", rc);
	if (e && diag && *diag)
		json_object_set_new(e, "diagnostic", json_string(diag));
	if (e && matched && *matched)
		json_object_set_new(e, "matched_dn", json_string(matched));
	sync_buf_release(&b);
	return e;
}

json_t *
lx_merror(const char *msg)
{
	return json_pack("{s:s}", "message", msg);
}

json_t *
lx_attr_get(json_t *attrs, const char *name)
{
	const char *k;
	json_t *v;

	if ((v = json_object_get(attrs, name)) != NULL)
		return v;
	json_object_foreach(attrs, k, v)
		if (strcasecmp(k, name) == 0)
			return v;
	return NULL;
}

char *
lx_lower(const char *s)
{
	char *d = sync_strdup(s), *p;

	for (p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/*
 * The key a value is compared by: a DN normalised (so that escapes and
 * spaces do not matter), other text in lower case, binary (base64) as
 * it is.  Directory matching rules are mostly case-blind; where one is
 * not, a value that differs only in case is taken as in place, which
 * errs towards not writing.  A new string.
 */
char *
lx_valkey(const char *v, int binary)
{
	char *out = NULL, *k;

	if (binary)
		return sync_strdup(v);
	if (strchr(v, '=') && ldap_dn_normalize(v, LDAP_DN_FORMAT_LDAPV3, &out,
	    LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS && out && *out) {
		k = lx_lower(out);
		ldap_memfree(out);
		return k;
	}
	ldap_memfree(out);
	return lx_lower(v);
}

/* The values of vals (strings) as a set of keys (a new object). */
json_t *
lx_keyset(json_t *vals, int binary)
{
	json_t *s = json_object(), *v;
	size_t i;
	char *k;

	json_array_foreach(vals, i, v) {
		if (!json_is_string(v) || (k = lx_valkey(json_string_value(v),
		    binary)) == NULL)
			continue;
		json_object_set_new(s, k, json_true());
		free(k);
	}
	return s;
}

int
lx_has_key(json_t *set, const char *v, int binary)
{
	char *k = lx_valkey(v, binary);
	int rc = k && json_object_get(set, k) != NULL;

	free(k);
	return rc;
}

/* 1 when the values a and b are the same set. */
int
lx_same_set(json_t *a, json_t *b, int binary)
{
	json_t *sa = lx_keyset(a, binary), *sb = lx_keyset(b, binary);
	const char *k;
	json_t *v;
	int rc = json_object_size(sa) == json_object_size(sb);

	json_object_foreach(sa, k, v)
		if (rc && json_object_get(sb, k) == NULL)
			rc = 0;
	json_decref(sa);
	json_decref(sb);
	return rc;
}


void
lx_mods_free(struct lx_mods *mv)
{
	size_t i;

	for (i = 0; i < mv->n; i++) {
		free(mv->m[i]->mod_bvalues);
		free(mv->m[i]);
	}
	free(mv->m);
	sync_strv_release(&mv->keep);
	free(mv->why);
	memset(mv, 0, sizeof *mv);
}

static char *
mods_keep(struct lx_mods *mv, char *s)
{
	if (s == NULL || sync_strv_take(&mv->keep, s) == -1) {
		free(s);
		mv->bad = 1;
		return NULL;
	}
	return s;
}

/*
 * Appends a modification op of type with the values vals (an array of
 * strings, base64 when binary) and extra (more strings, or NULL).
 * Nothing is appended for no values, except for a delete of the whole
 * attribute (LDAP_MOD_DELETE with vals NULL).
 */
void
lx_mods_add(struct lx_mods *mv, int op, const char *type, json_t *vals,
    const struct sync_strv *extra, int binary)
{
	size_t nv = json_array_size(vals) + (extra ? extra->n : 0), i, k = 0;
	struct berval **bv, *b;
	LDAPMod *m;
	json_t *v;

	if (mv->bad || (nv == 0 && (op != LDAP_MOD_DELETE || vals != NULL)))
		return;
	if (mv->n + 2 > mv->cap) {
		size_t cap = mv->cap ? mv->cap * 2 : 8;
		LDAPMod **nm = realloc(mv->m, cap * sizeof *nm);

		if (nm == NULL) {
			mv->bad = 1;
			return;
		}
		mv->m = nm;
		mv->cap = cap;
	}
	m = calloc(1, sizeof *m);
	/* The bervals live right after the pointer array. */
	bv = calloc(1, (nv + 1) * sizeof *bv + nv * sizeof *b);
	if (m == NULL || bv == NULL) {
		free(m);
		free(bv);
		mv->bad = 1;
		return;
	}
	b = (struct berval *)(bv + nv + 1);
	json_array_foreach(vals, i, v) {
		const char *s = json_string_value(v);
		unsigned char *raw;
		size_t len;

		if (s == NULL)
			continue;
		if (binary) {
			if (sync_base64_decode(s, strlen(s), &raw, &len,
			    NULL) == -1) {
				struct sync_buf w = { 0 };

				sync_buf_addf(&w, "a value of %s is not base64, "
				    "though the plan says it is binary", type);
				free(mv->why);
				mv->why = sync_buf_detach(&w);
				mv->bad = 1;
				free(m);
				free(bv);
				return;
			}
			if (mods_keep(mv, (char *)raw) == NULL) {
				free(m);
				free(bv);
				return;
			}
			b[k].bv_val = (char *)raw;
			b[k].bv_len = len;
		} else {
			b[k].bv_val = (char *)s;
			b[k].bv_len = strlen(s);
		}
		bv[k] = &b[k];
		k++;
	}
	for (i = 0; extra && i < extra->n; i++) {
		/* extra is the caller's, and may go before the send. */
		if ((b[k].bv_val = mods_keep(mv, sync_strdup(extra->v[i]))) ==
		    NULL) {
			free(m);
			free(bv);
			return;
		}
		b[k].bv_len = strlen(extra->v[i]);
		bv[k] = &b[k];
		k++;
	}
	bv[k] = NULL;
	m->mod_op = op | LDAP_MOD_BVALUES;
	m->mod_type = (char *)type;
	m->mod_bvalues = k || vals ? bv : NULL;
	if (m->mod_bvalues == NULL)
		free(bv);
	mv->m[mv->n++] = m;
	mv->m[mv->n] = NULL;
}

/* Values of vals that are not in set (a new array). */
json_t *
lx_minus(json_t *vals, json_t *set, int binary)
{
	json_t *out = json_array(), *v;
	size_t i;

	json_array_foreach(vals, i, v)
		if (json_is_string(v) && !lx_has_key(set, json_string_value(v),
		    binary))
			json_array_append(out, v);
	return out;
}

/* Values of vals that are in set (a new array). */
json_t *
lx_inter(json_t *vals, json_t *set, int binary)
{
	json_t *out = json_array(), *v;
	size_t i;

	json_array_foreach(vals, i, v)
		if (json_is_string(v) && lx_has_key(set, json_string_value(v),
		    binary))
			json_array_append(out, v);
	return out;
}

/* One LDIF line "type: value", base64 where RFC 2849 asks for it. */
void
lx_ldif_line(FILE *fp, const char *type, const char *v, size_t len)
{
	size_t i;
	int safe = len == 0 || (v[0] != ' ' && v[0] != ':' && v[0] != '<' &&
	    v[len - 1] != ' ');
	char *b;

	for (i = 0; safe && i < len; i++)
		if (v[i] == '\0' || v[i] == '\n' || v[i] == '\r' ||
		    (unsigned char)v[i] >= 0x80)
			safe = 0;
	if (safe) {
		fprintf(fp, "%s: %.*s\n", type, (int)len, v);
		return;
	}
	b = sync_base64_encode(v, len);
	fprintf(fp, "%s:: %s\n", type, b ? b : "");
	free(b);
}

void
lx_ldif_mods(FILE *fp, struct lx_mods *mv, int add)
{
	size_t i, j;

	for (i = 0; i < mv->n; i++) {
		LDAPMod *m = mv->m[i];
		struct berval **bv = m->mod_bvalues;

		if (!add)
			fprintf(fp, "%s: %s\n", (m->mod_op & ~LDAP_MOD_BVALUES) ==
			    LDAP_MOD_DELETE ? "delete" : "add", m->mod_type);
		for (j = 0; bv && bv[j]; j++)
			lx_ldif_line(fp, m->mod_type, bv[j]->bv_val, bv[j]->bv_len);
		if (!add)
			fputs("-\n", fp);
	}
}

/*
 * The RDN of dn (a new string) into *rdn, its parent into *parent (new,
 * or NULL), and the RDN's values by lower-case type into *vals (new
 * object).  -1 when dn is not a DN.
 */
int
lx_split_dn(const char *dn, char **rdn, char **parent, json_t **vals)
{
	LDAPDN d = NULL;
	LDAPRDN r;
	int i;

	*rdn = *parent = NULL;
	*vals = NULL;
	if (ldap_str2dn(dn, &d, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    d == NULL || d[0] == NULL) {
		ldap_dnfree(d);
		return -1;
	}
	r = d[0];
	*vals = json_object();
	for (i = 0; r[i]; i++) {
		char *t = sync_strndup(r[i]->la_attr.bv_val, r[i]->la_attr.bv_len);
		char *k = t ? lx_lower(t) : NULL;
		json_t *a;

		if (k) {
			if ((a = json_object_get(*vals, k)) == NULL) {
				a = json_array();
				json_object_set_new(*vals, k, a);
			}
			json_array_append_new(a, json_stringn(
			    r[i]->la_value.bv_val, r[i]->la_value.bv_len));
		}
		free(t);
		free(k);
	}
	if (ldap_rdn2str(r, rdn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		*rdn = NULL;
	if (d[1] && ldap_dn2str(&d[1], parent, LDAP_DN_FORMAT_LDAPV3) !=
	    LDAP_SUCCESS)
		*parent = NULL;
	ldap_dnfree(d);
	return *rdn ? 0 : -1;
}

