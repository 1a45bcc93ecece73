/*
 * scim.c: the SCIM 2.0 connector's client and import.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "scim.h"

int
sync_scim_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    char **cookie, struct sync_err *err)
{
	return sync_errf(err, "%s: the SCIM import is not written yet",
	    c->name);
}
