/*
 * import.c: the full import, dispatched to the connector's kind.
 */
#include "conn.h"

int
sync_import_full(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    struct sync_err *err)
{
	switch (c->kind) {
	case SYNC_CONN_LDAP:
	case SYNC_CONN_AD:
		return sync_ldap_import(c, fn, ctx, err);
	case SYNC_CONN_GRAPH:
		return sync_graph_import(c, fn, ctx, err);
	}
	return sync_errf(err, "%s: unknown connector kind", c->name);
}
