/*
 * import.c: the import, full or delta, done by the connector's kind (conn.c).
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

int
sync_import(struct sync_connector *c, const char *prev, sync_obj_fn fn,
    void *ctx, struct sync_import_res *res, struct sync_err *err)
{
	memset(res, 0, sizeof *res);
	if (prev != NULL && c->ops->import_delta != NULL) {
		int rc = c->ops->import_delta(c, prev, fn, ctx, res, err);

		if (rc != 1)
			return rc;
	}
	return c->ops->import(c, fn, ctx, &res->cookie, err);
}

void
sync_import_res_release(struct sync_import_res *res)
{
	free(res->cookie);
	res->cookie = NULL;
	sync_lines_free(res->kept);
	res->kept = NULL;
}
