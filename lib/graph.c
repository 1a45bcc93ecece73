/*
 * graph.c: the Microsoft Graph connector (Entra ID).
 */
#include "conn.h"
#include "graph.h"

int
sync_graph_import(struct sync_connector *c, sync_obj_fn fn, void *ctx,
    struct sync_err *err)
{
	return sync_errf(err, "%s: import from Microsoft Graph is not "
	    "written yet", c->name);
}
