/*
 * lease-ldap.c: the role lease as one value of one attribute of one
 * LDAP entry, on the connection of one of the config's LDAP or AD
 * connectors.  A compare-and-swap is one modify that deletes the old
 * value and adds the new one (RFC 4511 section 4.6: the changes of one
 * modify are applied in order and atomically), so when another server
 * changed the value first, the delete fails with noSuchAttribute and
 * nothing changes.  The value is never added to an attribute without
 * one: the administrator creates the entry with the initial value, so
 * no two servers can both add a first value.
 */
#include <sys/time.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "conn.h"
#include "role.h"

struct lease_ldap {
	struct lease_store s;           /* first: the store is the entry */
	const struct sync_role_conf *rc;
	LDAP *ld;
};

static int
ldap_connect_lease(struct lease_ldap *l, struct sync_err *err)
{
	if (l->ld)
		return 0;
	if (sync_ldap_connect(l->rc->conn, &l->ld, err) == -1)
		return sync_errpre(err, "lease");
	return 0;
}

static void
ldap_disconnect(struct lease_ldap *l)
{
	if (l->ld)
		ldap_unbind_ext_s(l->ld, NULL, NULL);
	l->ld = NULL;
}

static int
search(struct lease_ldap *l, char **value, struct sync_err *err)
{
	const struct sync_role_conf *rc = l->rc;
	struct timeval tv = { rc->conn->ldap->timeout, 0 };
	char *attrs[] = { rc->attribute, NULL };
	struct berval **vals = NULL;
	LDAPMessage *res = NULL, *e;
	int n, code;

	code = ldap_search_ext_s(l->ld, rc->dn, LDAP_SCOPE_BASE,
	    "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 2, &res);
	if (code != LDAP_SUCCESS) {
		ldap_msgfree(res);
		if (code == LDAP_NO_SUCH_OBJECT)
			return sync_ldap_errf(err, l->ld, code, "%s: lease entry '%s' "
			    "does not exist (create it with %s: %s, see "
			    "sync-role(1))", rc->conn->name, rc->dn,
			    rc->attribute, LEASE_INITIAL);
		sync_ldap_errf(err, l->ld, code, "%s: reading lease entry '%s'",
		    rc->conn->name, rc->dn);
		return code == LDAP_SERVER_DOWN ? -2 : -1;
	}
	if ((e = ldap_first_entry(l->ld, res)) == NULL) {
		ldap_msgfree(res);
		return sync_errf(err, "%s: lease entry '%s' cannot be read "
		    "(no access?)", rc->conn->name, rc->dn);
	}
	vals = ldap_get_values_len(l->ld, e, rc->attribute);
	n = ldap_count_values_len(vals);
	if (n != 1) {
		sync_errf(err, "%s: lease entry '%s' has %d values of '%s', "
		    "not one (initialise it with %s: %s, and grant this "
		    "server's account read and write access to it)",
		    rc->conn->name, rc->dn, n, rc->attribute, rc->attribute,
		    LEASE_INITIAL);
	} else if ((*value = sync_strndup(vals[0]->bv_val,
	    vals[0]->bv_len)) == NULL) {
		sync_errf(err, "out of memory");
		n = 0;
	}
	ldap_value_free_len(vals);
	ldap_msgfree(res);
	return n == 1 ? 0 : -1;
}

static int
ldap_lease_read(struct lease_store *s, char **value, struct sync_err *err)
{
	struct lease_ldap *l = (struct lease_ldap *)s;
	int rc;

	if (ldap_connect_lease(l, err) == -1)
		return -1;
	if ((rc = search(l, value, err)) != -2)
		return rc;
	/* A connection kept across checks may have been dropped: once more. */
	ldap_disconnect(l);
	if (ldap_connect_lease(l, err) == -1)
		return -1;
	return search(l, value, err) == 0 ? 0 : -1;
}

static int
ldap_lease_cas(struct lease_store *s, const char *old, const char *new,
    struct sync_err *err)
{
	struct lease_ldap *l = (struct lease_ldap *)s;
	const struct sync_role_conf *rc = l->rc;
	struct berval oldv = { strlen(old), (char *)old };
	struct berval newv = { strlen(new), (char *)new };
	struct berval *oldvals[] = { &oldv, NULL }, *newvals[] = { &newv, NULL };
	LDAPMod del = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES,
	    .mod_type = rc->attribute, .mod_vals.modv_bvals = oldvals };
	LDAPMod add = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES,
	    .mod_type = rc->attribute, .mod_vals.modv_bvals = newvals };
	LDAPMod *mods[] = { &del, &add, NULL };
	int code;

	if (ldap_connect_lease(l, err) == -1)
		return -1;
	code = ldap_modify_ext_s(l->ld, rc->dn, mods, NULL, NULL);
	if (code == LDAP_SUCCESS)
		return 0;
	/* Another server changed the value first: nothing was applied. */
	if (code == LDAP_NO_SUCH_ATTRIBUTE)
		return 1;
	sync_ldap_errf(err, l->ld, code, "%s: modifying lease entry '%s'",
	    rc->conn->name, rc->dn);
	if (code == LDAP_SERVER_DOWN)
		ldap_disconnect(l);
	return -1;
}

static void
ldap_lease_free(struct lease_store *s)
{
	struct lease_ldap *l = (struct lease_ldap *)s;

	ldap_disconnect(l);
	free(l);
}

struct lease_store *
lease_ldap_open(const struct sync_role_conf *rc, struct sync_err *err)
{
	struct lease_ldap *l;

	if ((l = calloc(1, sizeof *l)) == NULL) {
		sync_errno(err, "lease");
		return NULL;
	}
	l->rc = rc;
	l->s.read = ldap_lease_read;
	l->s.cas = ldap_lease_cas;
	l->s.free = ldap_lease_free;
	return &l->s;
}
