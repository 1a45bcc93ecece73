/*
 * scim-conf.c: the configuration of a SCIM 2.0 connector.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "scim.h"

void
sync_scim_conf_free(struct sync_scim_conf *sc)
{
	int i;

	if (sc == NULL)
		return;
	free(sc->url);
	free(sc->token_file);
	free(sc->ca_file);
	free(sc->anchor);
	for (i = 0; i < SYNC_NOBJTYPES; i++) {
		free(sc->endpoint[i]);
		sync_strv_release(&sc->attrs[i]);
		sync_strv_release(&sc->extra[i]);
	}
	free(sc);
}

static int
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/*
 * An endpoint is a path under the base URL: "/" then letters, digits,
 * '-', '_' and '/', no "..": it is pasted into URLs as it is.
 */
static int
valid_endpoint(const char *s)
{
	const char *p;

	if (s[0] != '/' || s[1] == '\0' || strstr(s, "//") ||
	    strstr(s, ".."))
		return 0;
	for (p = s + 1; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		    ('0' <= *p && *p <= '9') || *p == '-' || *p == '_' ||
		    *p == '/' || *p == '.'))
			return 0;
	return s[strlen(s) - 1] != '/';
}

static int
parse_objects(struct sync_connector *c, struct sync_scim_conf *sc,
    struct sync_node *map, struct sync_err *err)
{
	static const char *const defendp[SYNC_NOBJTYPES] = {
		"/Users", "/Groups", NULL
	};
	struct sync_node *objs, *o;
	int i;

	if (sync_map_map(map, "objects", 0, &objs, err) == -1)
		return -1;
	for (i = 0; objs != NULL && (size_t)i < objs->n; i++)
		if (strcmp(objs->items[2 * i]->str, "contact") == 0)
			return sync_node_errf(err, objs->items[2 * i], "connector '%s': SCIM has no "
		    "contacts (objects: user and group)", c->name);
	for (i = 0; i < SYNC_NOBJTYPES; i++) {
		if (defendp[i] == NULL)
			continue;
		if (sync_map_map(objs, sync_objtype_name(i), 0, &o, err) == -1)
			return -1;
		/* A type listed with an empty value ("user:") is read with
		 * its defaults, as on the other connectors. */
		if (objs != NULL && sync_map_get(objs, sync_objtype_name(i)) ==
		    NULL)
			continue;
		sc->enabled[i] = 1;
		if (o != NULL && (sync_map_str(o, "endpoint", 0,
		    &sc->endpoint[i], err) == -1 ||
		    sync_map_strv(o, "attributes", &sc->attrs[i], err) == -1 ||
		    sync_map_check_unused(o, err) == -1))
			return -1;
		if (sc->endpoint[i] == NULL) {
			if ((sc->endpoint[i] = sync_strdup(defendp[i])) == NULL)
				return sync_node_errf(err, map, "out of memory");
		} else if (!valid_endpoint(sc->endpoint[i]))
			return sync_node_errf(err, sync_map_get(o, "endpoint"),
			    "connector '%s': invalid endpoint '%s' (a path "
			    "such as /Users)", c->name, sc->endpoint[i]);
	}
	return sync_map_check_unused(objs, err);
}

int
sync_scim_conf_parse(struct sync_connector *c, struct sync_node *map,
    struct sync_err *err)
{
	struct sync_scim_conf *sc;
	struct sync_node *n;
	const char *host;
	size_t len;
	long v;

	if ((sc = calloc(1, sizeof *sc)) == NULL)
		return sync_node_errf(err, map, "out of memory");
	c->scim = sc;
	sc->tls_verify = 1;
	sc->timeout = 60;
	sc->page_size = 100;
	sc->max_pages = 100000;
	sc->retry_budget = 300;
	sc->connections = 4;
	sc->create_settle = 10;
	if (sync_map_str(map, "url", 1, &sc->url, err) == -1 ||
	    sync_map_path(map, "token_file", c->confdir, 1, &sc->token_file,
	    err) == -1 ||
	    sync_map_path(map, "ca_file", c->confdir, 0, &sc->ca_file, err) == -1 ||
	    sync_map_bool(map, "tls_verify", &sc->tls_verify, err) == -1 ||
	    sync_map_bool(map, "allow_http", &sc->allow_http, err) == -1 ||
	    sync_map_str(map, "anchor", 0, &sc->anchor, err) == -1)
		return -1;
	n = sync_map_get(map, "url");
	if (!has_prefix(sc->url, "https://") && !has_prefix(sc->url, "http://"))
		return sync_node_errf(err, n, "connector '%s': url must be "
		    "an https:// URL", c->name);
	if (strpbrk(sc->url, "?# \t\r\n") != NULL)
		return sync_node_errf(err, n, "connector '%s': url must have "
		    "no query, fragment or spaces", c->name);
	if (!sc->allow_http && !has_prefix(sc->url, "https://"))
		return sync_node_errf(err, n, "connector '%s': plain http:// "
		    "is refused unless 'allow_http: true' is set", c->name);
	/* The endpoints are appended to it: "/Users" after the base. */
	len = strlen(sc->url);
	while (len > 0 && sc->url[len - 1] == '/')
		sc->url[--len] = '\0';
	host = sc->url + (has_prefix(sc->url, "https://") ? 8 : 7);
	if (*host == '\0' || *host == '/')
		return sync_node_errf(err, n, "connector '%s': url has no "
		    "host", c->name);
	if (sc->anchor == NULL && (sc->anchor = sync_strdup("externalId")) ==
	    NULL)
		return sync_node_errf(err, map, "out of memory");
	if (sc->anchor[0] == '\0' || strcasecmp(sc->anchor, "id") == 0)
		return sync_node_errf(err, sync_map_get(map, "anchor"),
		    "connector '%s': anchor must be an attribute the client "
		    "writes, such as externalId", c->name);
	c->anchor_attr = sc->anchor;
	v = sc->timeout;
	if (sync_map_int(map, "timeout", 1, 3600, &v, err) == -1)
		return -1;
	sc->timeout = v;
	v = sc->page_size;
	if (sync_map_int(map, "page_size", 1, 10000, &v, err) == -1)
		return -1;
	sc->page_size = v;
	v = sc->max_pages;
	if (sync_map_int(map, "max_pages", 1, 1000000000, &v, err) == -1)
		return -1;
	sc->max_pages = v;
	v = sc->retry_budget;
	if (sync_map_int(map, "retry_budget", 0, 86400, &v, err) == -1)
		return -1;
	sc->retry_budget = v;
	v = sc->connections;
	if (sync_map_int(map, "connections", 1, 64, &v, err) == -1)
		return -1;
	sc->connections = v;
	v = sc->create_settle;
	if (sync_map_int(map, "create_settle", 0, 3600, &v, err) == -1)
		return -1;
	sc->create_settle = v;
	return parse_objects(c, sc, map, err);
}

/*
 * The attributes a flow may write, from the core schemas (RFC 7643 4.1,
 * 4.2) and the enterprise extension (4.3).  kind: 's' simple, 'c'
 * complex (written by sub-attribute), 'm' multi-valued complex (written
 * by sub-attribute, all values or those of a type or the primary one),
 * 'r' read-only, 'g' group members (references).
 */
struct scimattr {
	const char *name;
	char kind;
	const char *subs;       /* space-separated, for 'c' and 'm' */
};

#define MV_SUBS "value display type primary"

static const struct scimattr user_attrs[] = {
	{ "userName", 's', NULL }, { "externalId", 's', NULL },
	{ "name", 'c', "formatted familyName givenName middleName "
	    "honorificPrefix honorificSuffix" },
	{ "displayName", 's', NULL }, { "nickName", 's', NULL },
	{ "profileUrl", 's', NULL }, { "title", 's', NULL },
	{ "userType", 's', NULL }, { "preferredLanguage", 's', NULL },
	{ "locale", 's', NULL }, { "timezone", 's', NULL },
	{ "active", 's', NULL }, { "password", 's', NULL },
	{ "emails", 'm', MV_SUBS }, { "phoneNumbers", 'm', MV_SUBS },
	{ "ims", 'm', MV_SUBS }, { "photos", 'm', MV_SUBS },
	{ "addresses", 'm', "formatted streetAddress locality region "
	    "postalCode country type primary" },
	{ "entitlements", 'm', MV_SUBS }, { "roles", 'm', MV_SUBS },
	{ "x509Certificates", 'm', MV_SUBS },
	{ "groups", 'r', NULL }, { "id", 'r', NULL }, { "meta", 'r', NULL },
	{ NULL, 0, NULL }
};

static const struct scimattr enterprise_attrs[] = {
	{ "employeeNumber", 's', NULL }, { "costCenter", 's', NULL },
	{ "organization", 's', NULL }, { "division", 's', NULL },
	{ "department", 's', NULL }, { "manager", 'c', "value" },
	{ NULL, 0, NULL }
};

static const struct scimattr group_attrs[] = {
	{ "displayName", 's', NULL }, { "externalId", 's', NULL },
	{ "members", 'g', NULL },
	{ "id", 'r', NULL }, { "meta", 'r', NULL },
	{ NULL, 0, NULL }
};

/* 1 when word is one of the space-separated words of list, ignoring
 * case (SCIM attribute names are case-insensitive, RFC 7643 2.1). */
static int
has_word(const char *list, const char *word, size_t len)
{
	const char *p = list, *e;

	while (*p) {
		e = p + strcspn(p, " ");
		if ((size_t)(e - p) == len && strncasecmp(p, word, len) == 0)
			return 1;
		p = *e ? e + 1 : e;
	}
	return 0;
}

/* 1 when s is a JSON string literal: "...", escapes allowed. */
static int
json_lit(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return 0;
	for (i = 1; i < len - 1; i++)
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return 0;
	return i == len - 1;
}

int
sync_scim_target_attr(enum sync_objtype t, const char *name,
    struct sync_buf *why)
{
	const struct scimattr *tab = t == SYNC_GROUP ? group_attrs :
	    user_attrs, *a;
	const char *p = name, *rest;
	size_t n;

	if (strncasecmp(name, "urn:", 4) == 0)
		return 0;       /* a custom extension: its own schema */
	if (t == SYNC_USER && strncasecmp(name, SYNC_SCIM_ENTERPRISE_PREFIX,
	    strlen(SYNC_SCIM_ENTERPRISE_PREFIX)) == 0) {
		tab = enterprise_attrs;
		p += strlen(SYNC_SCIM_ENTERPRISE_PREFIX);
	}
	n = strcspn(p, ".[");
	rest = p + n;
	for (a = tab; a->name; a++)
		if (strlen(a->name) == n && strncasecmp(a->name, p, n) == 0)
			break;
	if (a->name == NULL) {
		sync_buf_addf(why, "is not an attribute of the SCIM %s%s "
		    "(RFC 7643); extension attributes are written "
		    "urn:<schema>:<attribute>", tab == enterprise_attrs ?
		    "enterprise extension" : "core schema of ",
		    tab == enterprise_attrs ? "" : t == SYNC_GROUP ? "Group" :
		    "User");
		return -1;
	}
	switch (a->kind) {
	case 'r':
		sync_buf_addf(why, "is read-only (the service sets it)");
		return -1;
	case 's':
	case 'g':
		if (*rest == '\0')
			return 0;
		sync_buf_addf(why, "is not complex: write '%s' itself",
		    a->name);
		return -1;
	case 'c':
		if (*rest == '.' && has_word(a->subs, rest + 1,
		    strlen(rest + 1)))
			return 0;
		sync_buf_addf(why, "must name a sub-attribute of '%s' (%s)",
		    a->name, a->subs);
		return -1;
	}
	/* 'm': A.sub, A[type eq "T"].sub or A[primary eq true].sub */
	if (*rest == '[') {
		const char *close = strrchr(rest, ']');
		const char *in = rest + 1;

		if (close == NULL)
			goto bad;
		if (strncmp(in, "type eq ", 8) == 0 &&
		    json_lit(in + 8, (size_t)(close - in - 8)))
			rest = close + 1;
		else if ((size_t)(close - in) == 15 &&
		    strncmp(in, "primary eq true", 15) == 0)
			rest = close + 1;
		else
			goto bad;
	}
	if (*rest == '.' && has_word(a->subs, rest + 1, strlen(rest + 1)) &&
	    strcasecmp(rest + 1, "type") != 0 &&
	    strcasecmp(rest + 1, "primary") != 0)
		return 0;
bad:
	sync_buf_addf(why, "must be %s.<sub-attribute>, %s[type eq "
	    "\"<type>\"].<sub-attribute> or %s[primary eq true]."
	    "<sub-attribute>", a->name, a->name, a->name);
	return -1;
}
