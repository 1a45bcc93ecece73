/*
 * graph-conf.c: the configuration of a Microsoft Graph connector.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "graph.h"

void
sync_graph_conf_free(struct sync_graph_conf *gc)
{
	int i;

	if (gc == NULL)
		return;
	free(gc->tenant);
	free(gc->client_id);
	free(gc->secret_file);
	free(gc->cert_file);
	free(gc->key_file);
	free(gc->token_url);
	free(gc->graph_url);
	free(gc->ca_file);
	for (i = 0; i < SYNC_NOBJTYPES; i++) {
		sync_strv_release(&gc->attrs[i]);
		sync_strv_release(&gc->extra[i]);
	}
	free(gc);
}

static int
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

int
sync_graph_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	struct sync_graph_conf *gc;
	struct sync_node *objs, *o, *n;
	struct sync_buf b = { 0 };
	long v;
	int i;

	if ((gc = calloc(1, sizeof *gc)) == NULL)
		return sync_node_errf(err, map, "out of memory");
	c->graph = gc;
	gc->tls_verify = 1;
	gc->timeout = 60;
	gc->connections = 4;
	gc->page_size = 999;
	gc->max_pages = 100000;
	gc->retry_budget = 300;
	/* The documented quota per app and tenant: 3,000 writes in 150 s. */
	gc->write_limit = 3000;
	gc->write_window = 150;
	/*
	 * A create whose answer was lost is looked up by its anchor before
	 * it is sent again; a new object may be missing from lists for a few
	 * seconds (eventual consistency), so "not found" counts only after
	 * this long.
	 */
	gc->create_settle = 10;
	if (sync_map_str(map, "tenant", 1, &gc->tenant, err) == -1 ||
	    sync_map_str(map, "client_id", 1, &gc->client_id, err) == -1 ||
	    sync_map_path(map, "client_secret_file", c->confdir, 0,
	    &gc->secret_file, err) == -1 ||
	    sync_map_path(map, "certificate_file", c->confdir, 0, &gc->cert_file,
	    err) == -1 ||
	    sync_map_path(map, "key_file", c->confdir, 0, &gc->key_file,
	    err) == -1 ||
	    sync_map_str(map, "token_url", 0, &gc->token_url, err) == -1 ||
	    sync_map_str(map, "graph_url", 0, &gc->graph_url, err) == -1 ||
	    sync_map_path(map, "ca_file", c->confdir, 0, &gc->ca_file, err) == -1 ||
	    sync_map_bool(map, "tls_verify", &gc->tls_verify, err) == -1 ||
	    sync_map_bool(map, "allow_http", &gc->allow_http, err) == -1)
		return -1;
	if (gc->secret_file == NULL && gc->cert_file == NULL)
		return sync_node_errf(err, map, "connector '%s' needs "
		    "'client_secret_file' or 'certificate_file'", c->name);
	if (gc->secret_file && gc->cert_file)
		return sync_node_errf(err, map, "connector '%s': "
		    "'client_secret_file' and 'certificate_file' exclude each "
		    "other", c->name);
	if (gc->cert_file && gc->key_file == NULL)
		return sync_node_errf(err, map, "connector '%s': "
		    "'certificate_file' needs 'key_file'", c->name);
	if (gc->key_file && gc->cert_file == NULL)
		return sync_node_errf(err, sync_map_get(map, "key_file"),
		    "connector '%s': 'key_file' needs 'certificate_file'",
		    c->name);
	v = gc->timeout;
	if (sync_map_int(map, "timeout", 1, 3600, &v, err) == -1)
		return -1;
	gc->timeout = v;
	v = gc->connections;
	if (sync_map_int(map, "connections", 1, 64, &v, err) == -1)
		return -1;
	gc->connections = v;
	v = gc->page_size;
	if (sync_map_int(map, "page_size", 1, 999, &v, err) == -1)
		return -1;
	gc->page_size = v;
	v = gc->max_pages;
	if (sync_map_int(map, "max_pages", 1, 1000000000, &v, err) == -1)
		return -1;
	gc->max_pages = v;
	v = gc->retry_budget;
	if (sync_map_int(map, "retry_budget", 0, 86400, &v, err) == -1)
		return -1;
	gc->retry_budget = v;
	v = gc->write_limit;
	if (sync_map_int(map, "write_limit", 1, 10000000, &v, err) == -1)
		return -1;
	gc->write_limit = v;
	v = gc->write_window;
	if (sync_map_int(map, "write_window", 0, 86400, &v, err) == -1)
		return -1;
	gc->write_window = v;
	v = gc->create_settle;
	if (sync_map_int(map, "create_settle", 0, 3600, &v, err) == -1)
		return -1;
	gc->create_settle = v;
	if (gc->graph_url == NULL &&
	    (gc->graph_url = sync_strdup("https://graph.microsoft.com/v1.0")) == NULL)
		return sync_node_errf(err, map, "out of memory");
	if (gc->token_url == NULL) {
		if (sync_buf_addf(&b, "https://login.microsoftonline.com/%s/"
		    "oauth2/v2.0/token", gc->tenant) == -1)
			return sync_node_errf(err, map, "out of memory");
		gc->token_url = sync_buf_detach(&b);
	}
	if (!gc->allow_http && (!has_prefix(gc->graph_url, "https://") ||
	    !has_prefix(gc->token_url, "https://"))) {
		n = sync_map_get(map, "graph_url");
		if (n == NULL || has_prefix(gc->graph_url, "https://"))
			n = sync_map_get(map, "token_url");
		return sync_node_errf(err, n ? n : map, "connector '%s': "
		    "plain http:// is refused unless 'allow_http: true' is set",
		    c->name);
	}
	if (sync_map_map(map, "objects", 0, &objs, err) == -1)
		return -1;
	for (i = 0; i < SYNC_NOBJTYPES; i++) {
		if (sync_map_map(objs, sync_objtype_name(i), 0, &o, err) == -1)
			return -1;
		/* A type listed with an empty value ("user:") is read with
		 * its defaults, as on LDAP connectors; o is NULL then. */
		if (sync_map_get(objs, sync_objtype_name(i)) == NULL)
			continue;
		gc->enabled[i] = 1;
		if (o == NULL)
			continue;
		if (sync_map_strv(o, "attributes", &gc->attrs[i], err) == -1 ||
		    sync_map_check_unused(o, err) == -1)
			return -1;
	}
	if (objs == NULL)
		gc->enabled[SYNC_USER] = gc->enabled[SYNC_GROUP] = 1;
	return sync_map_check_unused(objs, err);
}
