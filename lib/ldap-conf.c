/*
 * ldap-conf.c: the configuration of an LDAP or Active Directory connector.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* Defaults per object type: { LDAP filter, AD filter }. */
static const char *const default_filter[SYNC_NOBJTYPES][2] = {
	{ "(objectClass=inetOrgPerson)",
	  "(&(objectCategory=person)(objectClass=user))" },
	{ "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
	  "(objectClass=group)" },
	{ NULL, "(objectClass=contact)" },
};

/* Attributes that hold bytes, not text, whatever their content. */
static const char *const ad_binary[] = { "objectGUID", "objectSid",
    "mS-DS-ConsistencyGuid", "jpegPhoto", "thumbnailPhoto", "userCertificate",
    "msExchMailboxGuid", "sIDHistory", "tokenGroups", "logonHours",
    "userSMIMECertificate", "msExchArchiveGUID", NULL };
static const char *const ldap_binary[] = { "jpegPhoto", "userCertificate",
    "cACertificate", "userSMIMECertificate", "userPKCS12", "photo",
    "audio", NULL };

static void
objconf_release(struct sync_ldap_objconf *o)
{
	free(o->filter);
	sync_strv_release(&o->attrs);
	sync_strv_release(&o->base_dns);
	sync_strv_release(&o->exclude);
}

void
sync_ldap_conf_free(struct sync_ldap_conf *lc)
{
	int i;

	if (lc == NULL)
		return;
	free(lc->url);
	free(lc->cleartext_url);
	free(lc->ca_file);
	free(lc->bind_dn);
	free(lc->password_file);
	free(lc->sasl_mech);
	sync_strv_release(&lc->base_dns);
	sync_strv_release(&lc->exclude);
	sync_strv_release(&lc->anchor);
	sync_strv_release(&lc->binary);
	for (i = 0; i < SYNC_NOBJTYPES; i++)
		objconf_release(&lc->obj[i]);
	free(lc);
}

static int
parse_objects(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	struct sync_ldap_conf *lc = c->ldap;
	struct sync_node *objs, *o;
	int i, ad = c->kind == SYNC_CONN_AD, rc;

	if (sync_map_map(map, "objects", 0, &objs, err) == -1)
		return -1;
	for (i = 0; i < SYNC_NOBJTYPES; i++) {
		struct sync_ldap_objconf *oc = &lc->obj[i];

		if (sync_map_map(objs, sync_objtype_name(i), 0, &o, err) == -1)
			return -1;
		/* Without an objects section, every type with a default. */
		if (objs == NULL)
			oc->enabled = default_filter[i][ad] != NULL;
		else
			oc->enabled = sync_map_get(objs,
			    sync_objtype_name(i)) != NULL;
		if (o != NULL) {
			if (sync_map_str(o, "filter", 0, &oc->filter, err) == -1 ||
			    sync_map_strv(o, "attributes", &oc->attrs, err) == -1 ||
			    sync_map_strv(o, "base_dn", &oc->base_dns, err) == -1 ||
			    sync_map_strv(o, "exclude", &oc->exclude, err) == -1 ||
			    sync_map_check_unused(o, err) == -1)
				return -1;
		}
		if (!oc->enabled || oc->filter)
			continue;
		if (default_filter[i][ad] == NULL)
			return sync_node_errf(err, o ? o : map, "connector '%s': "
			    "'%s' needs a 'filter' (there is no default for "
			    "type %s)", c->name, sync_objtype_name(i),
			    c->typename);
		if ((oc->filter = sync_strdup(default_filter[i][ad])) == NULL)
			return sync_node_errf(err, map, "out of memory");
	}
	if ((rc = sync_map_check_unused(objs, err)) == -1)
		return -1;
	for (i = 0; i < SYNC_NOBJTYPES; i++)
		if (lc->obj[i].enabled && lc->obj[i].attrs.n == 0 &&
		    sync_strv_add(&lc->obj[i].attrs, "*") == -1)
			return sync_node_errf(err, map, "out of memory");
	return 0;
}

/*
 * The url key: libldap takes a list of URLs separated by spaces or
 * commas and fails over from one to the next, so each of them is
 * checked, not only the first.  Splitting on tabs and line ends too
 * errs on the safe side: a URL libldap reads as one begins with one
 * checked here.  Notes the first ldap:// URL, over which a simple bind
 * would be clear text unless StartTLS is used.
 */
static int
check_urls(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	static const char sep[] = ", \t\r\n";
	struct sync_ldap_conf *lc = c->ldap;
	struct sync_node *n = sync_map_get(map, "url");
	const char *p;
	size_t len, nurl = 0;

	for (p = lc->url + strspn(lc->url, sep); *p; p += len,
	    p += strspn(p, sep), nurl++) {
		len = strcspn(p, sep);
		if (strncmp(p, "ldap://", 7) != 0 &&
		    strncmp(p, "ldaps://", 8) != 0 &&
		    strncmp(p, "ldapi://", 8) != 0) {
			if (nurl == 0)
				break;
			return sync_node_errf(err, n, "connector '%s': each url "
			    "of the list must start with ldap://, ldaps:// or "
			    "ldapi://, not '%.*s'", c->name, (int)len, p);
		}
		if (lc->starttls && strncmp(p, "ldap://", 7) != 0)
			return sync_node_errf(err, sync_map_get(map, "starttls"),
			    "connector '%s': starttls needs ldap:// urls, not "
			    "'%.*s'", c->name, (int)len, p);
		if (lc->cleartext_url == NULL && strncmp(p, "ldap://", 7) == 0 &&
		    (lc->cleartext_url = strndup(p, len)) == NULL)
			return sync_node_errf(err, n, "out of memory");
	}
	if (nurl == 0 || *p)
		return sync_node_errf(err, n, "connector '%s': url must start "
		    "with ldap://, ldaps:// or ldapi://", c->name);
	return 0;
}

int
sync_ldap_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	struct sync_ldap_conf *lc;
	const char *const *bin;
	long v;
	size_t i;

	if ((lc = calloc(1, sizeof *lc)) == NULL)
		return sync_node_errf(err, map, "out of memory");
	c->ldap = lc;
	lc->tls_verify = 1;
	lc->timeout = 30;
	lc->page_size = 1000;
	lc->write_window = 16;
	if (sync_map_str(map, "url", 1, &lc->url, err) == -1 ||
	    sync_map_bool(map, "starttls", &lc->starttls, err) == -1 ||
	    sync_map_path(map, "ca_file", c->confdir, 0, &lc->ca_file, err) == -1 ||
	    sync_map_bool(map, "tls_verify", &lc->tls_verify, err) == -1 ||
	    sync_map_str(map, "bind_dn", 0, &lc->bind_dn, err) == -1 ||
	    sync_map_path(map, "password_file", c->confdir, 0, &lc->password_file,
	    err) == -1 ||
	    sync_map_str(map, "sasl_mech", 0, &lc->sasl_mech, err) == -1 ||
	    sync_map_bool(map, "allow_cleartext_bind", &lc->allow_cleartext_bind,
	    err) == -1 ||
	    sync_map_strv(map, "base_dn", &lc->base_dns, err) == -1 ||
	    sync_map_strv(map, "exclude", &lc->exclude, err) == -1 ||
	    sync_map_strv(map, "anchor", &lc->anchor, err) == -1 ||
	    sync_map_strv(map, "binary_attributes", &lc->binary, err) == -1)
		return -1;
	if (check_urls(c, map, err) == -1)
		return -1;
	v = lc->timeout;
	if (sync_map_int(map, "timeout", 1, 86400, &v, err) == -1)
		return -1;
	lc->timeout = v;
	v = lc->page_size;
	if (sync_map_int(map, "page_size", 1, 100000, &v, err) == -1)
		return -1;
	lc->page_size = v;
	if (sync_map_int(map, "range_step", 0, 1000000, &lc->range_step,
	    err) == -1 ||
	    sync_map_int(map, "write_window", 1, 1000, &lc->write_window,
	    err) == -1)
		return -1;
	if (lc->sasl_mech && strcmp(lc->sasl_mech, "EXTERNAL") != 0)
		return sync_node_errf(err, sync_map_get(map, "sasl_mech"),
		    "connector '%s': unsupported SASL mechanism '%s' (only "
		    "EXTERNAL)", c->name, lc->sasl_mech);
	if (lc->sasl_mech && (lc->bind_dn || lc->password_file))
		return sync_node_errf(err, sync_map_get(map, "sasl_mech"),
		    "connector '%s': sasl_mech excludes bind_dn and "
		    "password_file", c->name);
	if (lc->bind_dn && lc->password_file == NULL)
		return sync_node_errf(err, sync_map_get(map, "bind_dn"),
		    "connector '%s': bind_dn needs password_file", c->name);
	if (lc->password_file && lc->bind_dn == NULL)
		return sync_node_errf(err, sync_map_get(map, "password_file"),
		    "connector '%s': password_file needs bind_dn", c->name);

	if (lc->anchor.n == 0) {
		if (c->kind == SYNC_CONN_AD) {
			if (sync_strv_add(&lc->anchor, "mS-DS-ConsistencyGuid") == -1 ||
			    sync_strv_add(&lc->anchor, "objectGUID") == -1)
				return sync_node_errf(err, map, "out of memory");
		} else if (sync_strv_add(&lc->anchor, "entryUUID") == -1)
			return sync_node_errf(err, map, "out of memory");
	}
	for (bin = c->kind == SYNC_CONN_AD ? ad_binary : ldap_binary; *bin; bin++)
		if (!sync_strv_casecontains(&lc->binary, *bin) &&
		    sync_strv_add(&lc->binary, *bin) == -1)
			return sync_node_errf(err, map, "out of memory");
	for (i = 0; i < lc->anchor.n; i++)
		if (lc->anchor.v[i][0] == '\0')
			return sync_node_errf(err, sync_map_get(map, "anchor"),
			    "connector '%s': empty anchor attribute", c->name);
	if (parse_objects(c, map, err) == -1)
		return -1;
	/* A base DN for the connector, or one for each type it reads. */
	for (i = 0; i < SYNC_NOBJTYPES; i++)
		if (lc->obj[i].enabled && lc->obj[i].base_dns.n == 0 &&
		    lc->base_dns.n == 0)
			return sync_node_errf(err, map, "connector '%s': missing "
			    "required key 'base_dn'", c->name);
	return 0;
}
