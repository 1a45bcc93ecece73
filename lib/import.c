/*
 * import.c: the import, full or delta, dispatched to the connector's kind.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

int
sync_import(struct sync_connector *c, const char *prev, sync_obj_fn fn,
    void *ctx, struct sync_import_res *res, struct sync_err *err)
{
	memset(res, 0, sizeof *res);
	switch (c->kind) {
	case SYNC_CONN_LDAP:
		if (prev != NULL) {
			int rc = sync_ldap_import_delta(c, prev, fn, ctx, res,
			    err);

			if (rc != 1)
				return rc;
		}
		return sync_ldap_import(c, fn, ctx, &res->cookie, err);
	case SYNC_CONN_AD:
		if (prev != NULL) {
			int rc = sync_ad_import_delta(c, prev, fn, ctx, res,
			    err);

			if (rc != 1)
				return rc;
		}
		return sync_ldap_import(c, fn, ctx, &res->cookie, err);
	case SYNC_CONN_GRAPH:
		if (prev != NULL) {
			int rc = sync_graph_import_delta(c, prev, fn, ctx, res,
			    err);

			if (rc != 1)
				return rc;
		}
		return sync_graph_import(c, fn, ctx, &res->cookie, err);
	}
	return sync_errf(err, "%s: unknown connector kind", c->name);
}

void
sync_import_res_release(struct sync_import_res *res)
{
	free(res->cookie);
	res->cookie = NULL;
	sync_lines_free(res->kept);
	res->kept = NULL;
}
