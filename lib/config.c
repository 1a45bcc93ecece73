/*
 * config.c: sync.conf(5), the top level and the connectors section.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "scim.h"
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
	sync_strv_release(&c->param_names);
	sync_strv_release(&c->param_values);
	if (c->ops)
		c->ops->conf_free(c);
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

const char *
sync_connector_param(const struct sync_connector *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->param_names.n; i++)
		if (strcasecmp(c->param_names.v[i], name) == 0)
			return c->param_values.v[i];
	return NULL;
}

static int
add_param(struct sync_connector *c, const char *name, const char *value)
{
	if (sync_connector_param(c, name))
		return 0;       /* set by the parameters key */
	if (sync_strv_add(&c->param_names, name) == -1 ||
	    sync_strv_add(&c->param_values, value) == -1)
		return -1;
	return 0;
}

/*
 * The parameters key: a mapping of names to strings.  Names are what
 * goes between the percent signs: letters, digits, '.', '_' and '-'.
 */
static int
parse_params(struct sync_connector *c, struct sync_node *val,
    struct sync_err *err)
{
	struct sync_node *m, *k, *v;
	size_t i;

	if (sync_map_map(val, "parameters", 0, &m, err) == -1)
		return -1;
	for (i = 0; m && i < m->n; i++) {
		k = m->items[2 * i];
		v = m->items[2 * i + 1];
		k->used = 1;
		if (k->str[0] == '\0' || strspn(k->str, "abcdefghijklmnopqrstuv"
		    "wxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		    strlen(k->str))
			return sync_node_errf(err, k, "invalid parameter name "
			    "'%s' (letters, digits, '.', '_' and '-' only)",
			    k->str);
		if (v->kind != SYNC_NODE_SCALAR)
			return sync_node_errf(err, v, "parameter '%s' must be "
			    "a string, not %s", k->str,
			    sync_node_kindname(v->kind));
		if (sync_connector_param(c, k->str))
			return sync_node_errf(err, k, "parameter '%s' given "
			    "twice", k->str);
		if (sync_strv_add(&c->param_names, k->str) == -1 ||
		    sync_strv_add(&c->param_values, v->str) == -1)
			return sync_node_errf(err, k, "out of memory");
	}
	return 0;
}

/*
 * The defaults Entra Connect provides: %Domain.LDAP% and %Domain.FQDN%
 * from the dc= components that end the first base_dn (DC=contoso,DC=com
 * and contoso.com), the same for %Forest.LDAP% and %Forest.FQDN% (right
 * for a forest of one domain; a child domain sets them), Cloud Sync's
 * %DomainFQDN%, and %Connector.ID%, here the connector's name.  NetBIOS
 * names cannot be derived and come only from the parameters key.
 */
static int
derive_params(struct sync_connector *c)
{
	struct sync_buf fqdn = { NULL, 0, 0 };
	const char *dn, *p, *e, *suffix = NULL;
	int r = -1;

	if (add_param(c, "Connector.ID", c->name) == -1)
		return -1;
	if (c->ldap == NULL || c->ldap->base_dns.n == 0)
		return 0;
	dn = c->ldap->base_dns.v[0];
	if (strchr(dn, '\\'))
		return 0;       /* escaped values: no guessing */
	/* the last run of dc= components */
	for (p = dn; *p; p = *e ? e + 1 : e) {
		while (*p == ' ')
			p++;
		e = p + strcspn(p, ",");
		if (strncasecmp(p, "dc=", 3) == 0 && e > p + 3) {
			if (suffix == NULL)
				suffix = p;
		} else
			suffix = NULL;
	}
	if (suffix == NULL)
		return 0;
	for (p = suffix; *p; p = *e ? e + 1 : e) {
		while (*p == ' ')
			p++;
		e = p + strcspn(p, ",");
		p += 3;
		while (*p == ' ')
			p++;
		if ((fqdn.len && sync_buf_add(&fqdn, ".", 1) == -1) ||
		    sync_buf_add(&fqdn, p, (size_t)(e - p)) == -1 ||
		    sync_buf_add(&fqdn, "", 1) == -1)
			goto done;
		fqdn.len--;
		while (fqdn.len && fqdn.p[fqdn.len - 1] == ' ')
			fqdn.p[--fqdn.len] = '\0';
	}
	if (add_param(c, "Domain.LDAP", suffix) == -1 ||
	    add_param(c, "Domain.FQDN", fqdn.p) == -1 ||
	    add_param(c, "Forest.LDAP", suffix) == -1 ||
	    add_param(c, "Forest.FQDN", fqdn.p) == -1 ||
	    add_param(c, "DomainFQDN", fqdn.p) == -1)
		goto done;
	r = 0;
done:
	sync_buf_release(&fqdn);
	return r;
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
	if (parse_params(c, val, err) == -1)
		return -1;
	if (sync_map_str(val, "type", 1, &type, err) == -1)
		return -1;
	if ((c->ops = sync_connops_find(type)) != NULL) {
		c->kind = c->ops->kind;
		c->typename = c->ops->type;
		rc = c->ops->conf_parse(c, val, err);
	} else {
		struct sync_buf b = { 0 };

		sync_connops_types(&b);
		rc = sync_node_errf(err, sync_map_get(val, "type"), "unknown "
		    "connector type '%s' (expected %s)", type, b.p ? b.p : "");
		sync_buf_release(&b);
	}
	free(type);
	if (rc == -1)
		return -1;
	if (derive_params(c) == -1)
		return sync_node_errf(err, key, "out of memory");
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
	if (c->scim)
		return c->scim->url;
	return NULL;
}

struct sync_strv *
sync_connector_attrs(struct sync_connector *c, enum sync_objtype t)
{
	if (c->ldap)
		return c->ldap->obj[t].enabled ? &c->ldap->obj[t].attrs : NULL;
	if (c->graph)
		return &c->graph->extra[t];
	if (c->scim)
		return c->scim->enabled[t] ? &c->scim->extra[t] : NULL;
	return NULL;
}

const char *
sync_config_default(void)
{
	const char *env = getenv("SYNC_CONFIG");

	return env && *env ? env : "/etc/sync/sync.yaml";
}
