/*
 * conn.c: the kinds of connector and what each can do.  The config
 * loader, the import and the export find a connector's code here, by its
 * type, rather than in switches of their own: a new kind of connector is
 * one more row.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "export.h"
#include "scim.h"

static int
ldap_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	return sync_ldap_conf_parse(c, map, err);
}

static void
ldap_free(struct sync_connector *c)
{
	sync_ldap_conf_free(c->ldap);
	c->ldap = NULL;
}

static int
graph_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	return sync_graph_conf_parse(c, map, err);
}

static void
graph_free(struct sync_connector *c)
{
	sync_graph_conf_free(c->graph);
	c->graph = NULL;
}

static int
scim_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	return sync_scim_conf_parse(c, map, err);
}

static void
scim_free(struct sync_connector *c)
{
	sync_scim_conf_free(c->scim);
	c->scim = NULL;
}

static const struct sync_connops ops[] = {
	{ "ldap", SYNC_CONN_LDAP, ldap_parse, ldap_free, sync_ldap_import,
	    sync_ldap_import_delta, sync_ldap_export, NULL },
	{ "ad", SYNC_CONN_AD, ldap_parse, ldap_free, sync_ldap_import,
	    sync_ad_import_delta, sync_ldap_export, NULL },
	{ "graph", SYNC_CONN_GRAPH, graph_parse, graph_free,
	    sync_graph_import, sync_graph_import_delta, sync_graph_export,
	    NULL },
	{ "scim", SYNC_CONN_SCIM, scim_parse, scim_free, sync_scim_import,
	    NULL, sync_scim_export, sync_scim_target_attr },
};

const struct sync_connops *
sync_connops_find(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strcmp(ops[i].type, type) == 0)
			return &ops[i];
	return NULL;
}

void
sync_connops_types(struct sync_buf *b)
{
	size_t i, n = sizeof ops / sizeof ops[0];

	for (i = 0; i < n; i++)
		sync_buf_addf(b, "%s%s", i == 0 ? "" : i + 1 == n ? " or " :
		    ", ", ops[i].type);
}
