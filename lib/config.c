/*
 * config.c: sync.conf(5), the top level and the connectors section.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "graph.h"
#include "role.h"

static const char *const objtypes[SYNC_NOBJTYPES] = { "user", "group",
    "contact" };

const char *
sync_objtype_name(enum sync_objtype t)
{
	return (unsigned)t < SYNC_NOBJTYPES ? objtypes[t] : "?";
}

int
sync_objtype_parse(const char *s)
{
	int i;

	for (i = 0; i < SYNC_NOBJTYPES; i++)
		if (strcmp(s, objtypes[i]) == 0)
			return i;
	return -1;
}

static void
connector_release(struct sync_connector *c)
{
	free(c->name);
	sync_ldap_conf_free(c->ldap);
	sync_graph_conf_free(c->graph);
}

void
sync_config_free(struct sync_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nconns; i++)
		connector_release(&cfg->conns[i]);
	free(cfg->conns);
	free(cfg->path);
	free(cfg->dir);
	free(cfg->state_dir);
	sync_role_conf_free(cfg->role);
	sync_node_free(cfg->root);
	free(cfg);
}

static int
valid_name(const char *s)
{
	return s[0] != '\0' && s[0] != '-' &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-") == strlen(s);
}

static int
parse_connector(struct sync_config *cfg, struct sync_connector *c,
    struct sync_node *key, struct sync_node *val, struct sync_err *err)
{
	char *type = NULL;
	int rc;

	if (!valid_name(key->str))
		return sync_node_errf(err, key, "invalid connector name '%s' "
		    "(letters, digits, '_' and '-' only)", key->str);
	if ((c->name = sync_strdup(key->str)) == NULL)
		return sync_node_errf(err, key, "out of memory");
	c->line = key->line;
	c->col = key->col;
	c->confdir = cfg->dir;
	if (val->kind != SYNC_NODE_MAP)
		return sync_node_errf(err, val, "connector '%s' must be a "
		    "mapping, not %s", key->str, sync_node_kindname(val->kind));
	if (sync_map_str(val, "type", 1, &type, err) == -1)
		return -1;
	if (strcmp(type, "ldap") == 0) {
		c->kind = SYNC_CONN_LDAP;
		c->typename = "ldap";
		rc = sync_ldap_conf_parse(c, val, err);
	} else if (strcmp(type, "ad") == 0) {
		c->kind = SYNC_CONN_AD;
		c->typename = "ad";
		rc = sync_ldap_conf_parse(c, val, err);
	} else if (strcmp(type, "graph") == 0) {
		c->kind = SYNC_CONN_GRAPH;
		c->typename = "graph";
		rc = sync_graph_conf_parse(c, val, err);
	} else {
		rc = sync_node_errf(err, sync_map_get(val, "type"), "unknown "
		    "connector type '%s' (expected ldap, ad or graph)", type);
	}
	free(type);
	if (rc == -1)
		return -1;
	return sync_map_check_unused(val, err);
}

struct sync_config *
sync_config_loadb(const char *name, const char *buf, size_t len,
    struct sync_err *err)
{
	struct sync_config *cfg;
	struct sync_node *conns;
	size_t i;

	if ((cfg = calloc(1, sizeof *cfg)) == NULL) {
		sync_errno(err, "cannot load '%s'", name);
		return NULL;
	}
	if ((cfg->path = sync_strdup(name)) == NULL)
		goto nomem;
	/* Relative paths in the file are taken from its directory. */
	if (strchr(name, '/')) {
		cfg->dir = sync_strndup(name, (size_t)(strrchr(name, '/') - name));
		if (cfg->dir == NULL)
			goto nomem;
		if (cfg->dir[0] == '\0') {
			free(cfg->dir);
			if ((cfg->dir = sync_strdup("/")) == NULL)
				goto nomem;
		}
	}
	sync_sha256(buf, len, cfg->digest);
	for (i = 0; i < 32; i++)
		snprintf(cfg->digest_hex + 2 * i, 3, "%02x", cfg->digest[i]);
	if ((cfg->root = sync_yaml_loadb(name, buf, len, err)) == NULL)
		goto fail;
	if (sync_map_path(cfg->root, "state_dir", cfg->dir, 0, &cfg->state_dir,
	    err) == -1)
		goto fail;
	if (cfg->state_dir == NULL &&
	    (cfg->state_dir = sync_strdup("/var/lib/sync")) == NULL)
		goto nomem;
	if (sync_map_map(cfg->root, "connectors", 1, &conns, err) == -1)
		goto fail;
	if (conns == NULL || conns->n == 0) {
		sync_node_errf(err, cfg->root, "'connectors' must not be empty");
		goto fail;
	}
	if ((cfg->conns = calloc(conns->n, sizeof *cfg->conns)) == NULL)
		goto nomem;
	for (i = 0; i < conns->n; i++) {
		conns->items[2 * i]->used = 1;
		cfg->nconns++;
		if (parse_connector(cfg, &cfg->conns[i], conns->items[2 * i],
		    conns->items[2 * i + 1], err) == -1)
			goto fail;
	}
	/*
	 * Sections that later parts of the toolkit read are recognised here
	 * so that every verb rejects the same unknown keys.
	 */
	(void)sync_map_get(cfg->root, "flows");
	(void)sync_map_get(cfg->root, "policy");
	if (sync_role_conf_parse(cfg, sync_map_get(cfg->root, "role"),
	    err) == -1)
		goto fail;
	if (sync_map_check_unused(cfg->root, err) == -1)
		goto fail;
	return cfg;
nomem:
	sync_errf(err, "%s: out of memory", name);
fail:
	sync_config_free(cfg);
	return NULL;
}

struct sync_config *
sync_config_load(const char *path, struct sync_err *err)
{
	struct sync_buf b = { 0 };
	struct sync_config *cfg;

	/* The digest covers exactly the bytes that were parsed. */
	if (sync_file_read(path, 1024 * 1024, &b, err) == -1)
		return NULL;
	cfg = sync_config_loadb(strcmp(path, "-") == 0 ? "<stdin>" : path,
	    b.p ? b.p : "", b.len, err);
	sync_buf_release(&b);
	return cfg;
}

struct sync_connector *
sync_config_connector(struct sync_config *cfg, const char *name,
    struct sync_err *err)
{
	size_t i;

	for (i = 0; i < cfg->nconns; i++)
		if (strcmp(cfg->conns[i].name, name) == 0)
			return &cfg->conns[i];
	sync_errf(err, "%s: no connector named '%s'", cfg->path, name);
	return NULL;
}

const char *
sync_connector_url(const struct sync_connector *c)
{
	if (c->ldap)
		return c->ldap->url;
	if (c->graph)
		return c->graph->graph_url;
	return NULL;
}

struct sync_strv *
sync_connector_attrs(struct sync_connector *c, enum sync_objtype t)
{
	if (c->ldap)
		return c->ldap->obj[t].enabled ? &c->ldap->obj[t].attrs : NULL;
	if (c->graph)
		return &c->graph->extra[t];
	return NULL;
}

const char *
sync_config_default(void)
{
	const char *env = getenv("SYNC_CONFIG");

	return env && *env ? env : "/etc/sync/sync.yaml";
}
