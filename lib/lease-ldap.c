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
 *
 * On Active Directory the modify is atomic on one domain controller
 * only: every DC accepts writes and replicates them later, so two
 * servers connected to two DCs can both swap the same old value and
 * both win; replication then keeps one value, and both believe they
 * hold the lease.  So on an ad connector (unless require_pdc is false)
 * the lease is read and written only on the PDC emulator, one DC that
 * the whole domain agrees on: the domain head's fSMORoleOwner names its
 * NTDS Settings object, which must be the rootDSE's dsServiceName of
 * the DC this connection reached.  The check comes before every read,
 * and every compare-and-swap follows a read on the same connection, so
 * a role moved to another DC stops this server at its next check.
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
	/* AD, per connection: what the rootDSE says about the DC reached. */
	char *dsa;                      /* dsServiceName, its NTDS Settings */
	char *head;                     /* defaultNamingContext */
	char *host;                     /* dnsHostName, or NULL */
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
	/* A URL list may lead the next connection to another DC. */
	free(l->dsa);
	free(l->head);
	free(l->host);
	l->dsa = l->head = l->host = NULL;
	l->s.dc[0] = '\0';
}

/*
 * Reads the first value of each of names[0..n-1] of the entry dn into
 * vals[i] (new strings the caller frees; NULL where the entry has none).
 * 0, -1 on an error, -2 when the server went away (err says so).
 */
static int
read_entry(struct lease_ldap *l, const char *dn, const char *const names[],
    int n, char *vals[], struct sync_err *err)
{
	struct timeval tv = { l->rc->conn->ldap->timeout, 0 };
	struct berval **bv;
	LDAPMessage *res = NULL, *e;
	int i, code;

	for (i = 0; i < n; i++)
		vals[i] = NULL;
	code = ldap_search_ext_s(l->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
	    (char **)names, 0, NULL, NULL, &tv, 2, &res);
	if (code != LDAP_SUCCESS) {
		ldap_msgfree(res);
		sync_ldap_errf(err, l->ld, code, "%s: reading '%s'",
		    l->rc->conn->name, dn);
		return code == LDAP_SERVER_DOWN ? -2 : -1;
	}
	if ((e = ldap_first_entry(l->ld, res)) != NULL) {
		for (i = 0; i < n; i++) {
			bv = ldap_get_values_len(l->ld, e, (char *)names[i]);
			if (ldap_count_values_len(bv) > 0 && (vals[i] =
			    sync_strndup(bv[0]->bv_val, bv[0]->bv_len)) == NULL)
				code = LDAP_NO_MEMORY;
			ldap_value_free_len(bv);
		}
	}
	ldap_msgfree(res);
	if (code == LDAP_NO_MEMORY) {
		for (i = 0; i < n; i++)
			free(vals[i]);
		return sync_errf(err, "out of memory");
	}
	return 0;
}

/*
 * A DC's name for messages, from its NTDS Settings DN: the server
 * object's dNSHostName, else that object's name (the first RDN's
 * value), else the DN itself.  A new string the caller frees, or NULL
 * when out of memory.
 */
static char *
dc_name(struct lease_ldap *l, const char *ntds)
{
	const char *names[] = { "dNSHostName", NULL };
	char *host = NULL, *server;
	struct sync_err ignored;
	LDAPDN dn = NULL;
	char *s = NULL;

	if (ldap_str2dn(ntds, &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
	    dn == NULL || dn[0] == NULL || dn[1] == NULL) {
		ldap_dnfree(dn);
		return sync_strdup(ntds);
	}
	/* The server object is the parent of its NTDS Settings. */
	if (ldap_dn2str(dn + 1, &server, LDAP_DN_FORMAT_LDAPV3) ==
	    LDAP_SUCCESS) {
		if (read_entry(l, server, names, 1, &host, &ignored) == 0 &&
		    host != NULL)
			s = host;
		ldap_memfree(server);
	}
	if (s == NULL)
		s = sync_strndup(dn[1][0]->la_value.bv_val,
		    dn[1][0]->la_value.bv_len);
	ldap_dnfree(dn);
	return s;
}

/*
 * 0 when the DC of this connection is the PDC emulator of its domain,
 * -1 (err names both DCs) when it is not or the check cannot be made,
 * -2 when the server went away.
 */
static int
pdc_check(struct lease_ldap *l, struct sync_err *err)
{
	const char *rootdse[] = { "dsServiceName", "defaultNamingContext",
	    "dnsHostName", NULL };
	const char *fsmo[] = { "fSMORoleOwner", NULL };
	const char *name = l->rc->conn->name;
	char *vals[3], *owner, *pdc;
	int rc;

	l->s.dc[0] = '\0';
	if (l->dsa == NULL) {
		if ((rc = read_entry(l, "", rootdse, 3, vals, err)) != 0)
			return rc;
		l->dsa = vals[0];
		l->head = vals[1];
		l->host = vals[2];
		if (l->dsa == NULL || l->head == NULL) {
			ldap_disconnect(l);
			return sync_errf(err, "%s: the rootDSE names no "
			    "dsServiceName or defaultNamingContext: not an "
			    "Active Directory domain controller? (the lease "
			    "needs the PDC emulator; see require_pdc in "
			    "sync.conf(5))", name);
		}
	}
	if ((rc = read_entry(l, l->head, fsmo, 1, &owner, err)) != 0)
		return rc;
	if (owner == NULL)
		return sync_errf(err, "%s: cannot read fSMORoleOwner of '%s' "
		    "(no access?) to find the PDC emulator the lease needs",
		    name, l->head);
	if (sync_dn_equal(owner, l->dsa)) {
		free(owner);
		snprintf(l->s.dc, sizeof l->s.dc, "%s",
		    l->host ? l->host : l->dsa);
		return 0;
	}
	pdc = dc_name(l, owner);
	sync_errf(err, "%s: '%s' is not the PDC emulator of %s ('%s' is): "
	    "two servers taking the lease on different domain controllers "
	    "could both succeed before replication; connect to the PDC "
	    "emulator, or set require_pdc: false (see sync.conf(5))", name,
	    l->host ? l->host : l->dsa, l->head, pdc ? pdc : owner);
	free(pdc);
	free(owner);
	return -1;
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

/* 0, -1, or -2 when the server went away. */
static int
read_once(struct lease_ldap *l, char **value, struct sync_err *err)
{
	int rc;

	if (ldap_connect_lease(l, err) == -1)
		return -1;
	if (l->rc->require_pdc && (rc = pdc_check(l, err)) != 0)
		return rc;
	return search(l, value, err);
}

static int
ldap_lease_read(struct lease_store *s, char **value, struct sync_err *err)
{
	struct lease_ldap *l = (struct lease_ldap *)s;
	int rc;

	if ((rc = read_once(l, value, err)) != -2)
		return rc;
	/* A connection kept across checks may have been dropped: once more. */
	ldap_disconnect(l);
	return read_once(l, value, err) == 0 ? 0 : -1;
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

	/* A connection no read has checked yet: check it first. */
	if (l->ld == NULL && (ldap_connect_lease(l, err) == -1 ||
	    (rc->require_pdc && pdc_check(l, err) != 0)))
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
