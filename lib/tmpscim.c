/* TEMPORARY stand-in until the scim-import branch is merged. */
#include <stdlib.h>
#include "conn.h"
#include "scim.h"
int
tmpscim_parse(struct sync_connector *c, struct sync_node *map, struct sync_err *err)
{
	struct sync_scim_conf *sc = calloc(1, sizeof *sc);
	long v;
	c->scim = sc;
	sc->tls_verify = 1; sc->timeout = 60; sc->connections = 4; sc->retry_budget = 300;
	if (sync_map_str(map, "url", 1, &sc->url, err) == -1 ||
	    sync_map_path(map, "token_file", c->confdir, 1, &sc->token_file, err) == -1 ||
	    sync_map_bool(map, "allow_http", &sc->allow_http, err) == -1)
		return -1;
	v = 4; if (sync_map_int(map, "connections", 1, 64, &v, err) == -1) return -1; sc->connections = v;
	v = 300; if (sync_map_int(map, "retry_budget", 0, 86400, &v, err) == -1) return -1; sc->retry_budget = v;
	return sync_map_check_unused(map, err);
}
void
tmpscim_free(struct sync_connector *c)
{
	if (c->scim) { free(c->scim->url); free(c->scim->token_file); free(c->scim); }
	c->scim = NULL;
}
