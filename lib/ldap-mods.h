/*
 * ldap-mods.h: the values and modifications of the LDAP writer
 * (ldap-mods.c), apart from its logic (ldap-export.c): error records,
 * value keys and sets, LDAPMod arrays, LDIF, DNs.
 */
#ifndef SYNC_LDAP_MODS_H
#define SYNC_LDAP_MODS_H

#include <stdio.h>

#include <jansson.h>
#include <ldap.h>

#include "sync.h"

/* The LDAPMod array of one operation, and the bytes it points to. */
struct lx_mods {
	LDAPMod **m;
	size_t n, cap;
	struct sync_strv keep;  /* strings and buffers to free */
	int bad;                /* out of memory, or a bad base64 value */
	char *why;              /* what was bad */
};

/*
 * The journal's error for an LDAP refusal: a new object with message
 * ("OP 'DN': name (code): diagnostic; matched DN 'M'", then what, if
 * any), code (the result code's name), result, diagnostic, matched_dn.
 * diag loses its trailing white space.
 */
json_t *lx_error(const char *op, const char *dn, int rc, char *diag,
    const char *matched, const char *what);
/* {"message": msg}, a new object. */
json_t *lx_merror(const char *msg);
/* The value of name in attrs, the name compared without case (borrowed). */
json_t *lx_attr_get(json_t *attrs, const char *name);
/* s in lower case (a new string, or NULL). */
char *lx_lower(const char *s);
/*
 * The key a value is compared by (a new string): a DN normalised, other
 * text in lower case, binary (base64) as it is.
 */
char *lx_valkey(const char *v, int binary);
/* The values of vals (strings) as a set of keys (a new object). */
json_t *lx_keyset(json_t *vals, int binary);
/* 1 when set (of lx_keyset) holds v's key. */
int lx_has_key(json_t *set, const char *v, int binary);
/* 1 when the values a and b are the same set. */
int lx_same_set(json_t *a, json_t *b, int binary);
/* Frees what mv holds, and zeroes it. */
void lx_mods_free(struct lx_mods *mv);
/*
 * Appends a modification op of type with the values vals (an array of
 * strings, base64 when binary) and extra (more strings, or NULL); see
 * ldap-mods.c.  Failures set mv->bad (and mv->why).
 */
void lx_mods_add(struct lx_mods *mv, int op, const char *type, json_t *vals,
    const struct sync_strv *extra, int binary);
/* Values of vals not in set / in set (new arrays of borrowed values). */
json_t *lx_minus(json_t *vals, json_t *set, int binary);
json_t *lx_inter(json_t *vals, json_t *set, int binary);
/* One LDIF line "type: value" on fp, base64 where RFC 2849 asks for it. */
void lx_ldif_line(FILE *fp, const char *type, const char *v, size_t len);
/* The modifications of mv as LDIF: an add's lines, or a modify's parts. */
void lx_ldif_mods(FILE *fp, struct lx_mods *mv, int add);
/*
 * The RDN of dn (a new string) into *rdn, its parent into *parent (new,
 * or NULL), and the RDN's values by lower-case type into *vals (new
 * object).  -1 when dn is not a DN.
 */
int lx_split_dn(const char *dn, char **rdn, char **parent, json_t **vals);

#endif
