/*
 * rules.c: the flows and policy sections of sync.conf(5), read strictly:
 * unknown keys, wrong types and expressions that do not parse are errors
 * that name file:line:column.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "diff.h"

/*
 * Parses the expression in a scalar node.  The expression parser reports
 * "column N: ..."; the position is moved into the file.
 */
static struct sync_expr *
node_expr(struct sync_node *n, const char *what, struct sync_err *err)
{
	struct sync_expr *e;
	struct sync_err perr;
	long col = 1;
	const char *msg;

	if (n->kind != SYNC_NODE_SCALAR) {
		sync_node_errf(err, n, "%s must be an expression (a string), "
		    "not %s", what, sync_node_kindname(n->kind));
		return NULL;
	}
	if ((e = sync_expr_parse(n->str, &perr)) != NULL)
		return e;
	msg = perr.msg;
	if (strncmp(msg, "column ", 7) == 0) {
		char *end;

		col = strtol(msg + 7, &end, 10);
		if (*end == ':') {
			msg = end + 1;
			while (*msg == ' ')
				msg++;
		} else {
			col = 1;
			msg = perr.msg;
		}
	}
	sync_errf(err, "%s:%d:%ld: %s: %s", n->file, n->line,
	    n->col + (n->quoted ? 1 : 0) + col - 1, what, msg);
	return NULL;
}

/* The attribute name when src is just "[name]", else NULL. */
static char *
direct_name(const char *src)
{
	size_t n;

	while (*src == ' ')
		src++;
	n = strlen(src);
	while (n > 0 && src[n - 1] == ' ')
		n--;
	if (n < 3 || src[0] != '[' || src[n - 1] != ']' ||
	    memchr(src + 1, '[', n - 2) || memchr(src + 1, ']', n - 2))
		return NULL;
	return sync_strndup(src + 1, n - 2);
}

/*
 * An expression that names no attribute and evaluates without error to
 * values is a constant: its values are computed once.
 */
static int
try_const(struct flowattr *fa, struct sync_err *err)
{
	struct sync_strv names = { 0 };
	struct sync_expr_result res;
	struct sync_err e2;
	size_t i;
	int rc = 0;

	if (sync_expr_attrs(fa->e, &names, err) == -1)
		return -1;
	if (names.n == 0 && sync_expr_eval(fa->e, NULL, &res, &e2) == 0) {
		if (res.status == SYNC_EXPR_VALUES) {
			for (i = 0; i < res.n && rc == 0; i++)
				if (res.v[i].binary || sync_strv_addn(&fa->konst,
				    res.v[i].p, res.v[i].len) == -1)
					rc = 1;
			if (rc == 0)
				fa->kind = FA_CONST;
			else
				sync_strv_release(&fa->konst);
			rc = 0;
		}
		sync_expr_result_release(&res);
	}
	sync_strv_release(&names);
	return rc;
}

static int
parse_source(struct sync_node *n, char **conn, enum sync_objtype *type,
    struct sync_err *err)
{
	const char *dot;
	int t;

	if (n->kind != SYNC_NODE_SCALAR)
		return sync_node_errf(err, n, "expected 'connector.type', not "
		    "%s", sync_node_kindname(n->kind));
	if ((dot = strrchr(n->str, '.')) == NULL || dot == n->str ||
	    (t = sync_objtype_parse(dot + 1)) < 0)
		return sync_node_errf(err, n, "'%s': expected 'connector.type' "
		    "with type user, group or contact", n->str);
	if ((*conn = sync_strndup(n->str, (size_t)(dot - n->str))) == NULL)
		return sync_node_errf(err, n, "out of memory");
	*type = (enum sync_objtype)t;
	return 0;
}

static int
check_conn(struct sync_config *cfg, struct sync_node *n, const char *conn,
    struct sync_err *err)
{
	size_t i;

	for (i = 0; i < cfg->nconns; i++)
		if (strcmp(cfg->conns[i].name, conn) == 0)
			return 0;
	return sync_node_errf(err, n, "no connector named '%s'", conn);
}

static int
parse_dns(struct sync_node *map, const char *key, struct sync_strv *out,
    struct sync_err *err)
{
	struct sync_strv raw = { 0 };
	size_t i;
	char *c;

	if (sync_map_strv(map, key, &raw, err) == -1)
		return -1;
	for (i = 0; i < raw.n; i++) {
		if ((c = dn_canon(raw.v[i])) == NULL ||
		    sync_strv_take(out, c) == -1) {
			sync_strv_release(&raw);
			return sync_errf(err, "out of memory");
		}
	}
	sync_strv_release(&raw);
	return 0;
}

static int
parse_scope(struct flow *f, struct sync_node *scope, struct sync_err *err)
{
	struct sync_node *n;
	char *s = NULL;

	if (scope == NULL)
		return 0;
	if (parse_dns(scope, "include", &f->inc_ous, err) == -1 ||
	    parse_dns(scope, "exclude", &f->exc_ous, err) == -1 ||
	    sync_map_str(scope, "member_of", 0, &s, err) == -1)
		return -1;
	if (s != NULL) {
		f->member_of = dn_canon(s);
		free(s);
		if (f->member_of == NULL)
			return sync_errf(err, "out of memory");
	}
	if ((n = sync_map_get(scope, "filter")) != NULL &&
	    (f->filter = node_expr(n, "scope filter", err)) == NULL)
		return -1;
	return sync_map_check_unused(scope, err);
}

static int
parse_anchor(struct flow *f, struct sync_node *a, struct sync_err *err)
{
	struct sync_node *n;

	if (a == NULL)
		return 0;
	if ((n = sync_map_get(a, "source")) != NULL &&
	    (f->anchor_src = node_expr(n, "anchor source", err)) == NULL)
		return -1;
	if (f->anchor_src != NULL) {
		char *d = direct_name(n->str);

		/* [anchor] is the snapshot's anchor: no evaluation needed */
		if (d != NULL && strcasecmp(d, "anchor") == 0) {
			sync_expr_free(f->anchor_src);
			f->anchor_src = NULL;
		}
		free(d);
	}
	/* Without a target the default stays (the connector's anchor
	 * attribute, or onPremisesImmutableId). */
	if ((n = sync_map_get(a, "target")) != NULL) {
		free(f->anchor_attr);
		f->anchor_attr = NULL;
		if (sync_map_str(a, "target", 1, &f->anchor_attr, err) == -1)
			return -1;
	}
	return sync_map_check_unused(a, err);
}

static int
parse_joins(struct flow *f, struct sync_node *seq, struct sync_err *err)
{
	size_t i, j;

	if (seq == NULL)
		return 0;
	if (seq->kind != SYNC_NODE_SEQ)
		return sync_node_errf(err, seq, "'join' must be a list of "
		    "rules, not %s", sync_node_kindname(seq->kind));
	if ((f->joins = calloc(seq->n ? seq->n : 1, sizeof *f->joins)) == NULL)
		return sync_errf(err, "out of memory");
	for (i = 0; i < seq->n; i++) {
		struct sync_node *m = seq->items[i], *n;
		struct joinrule *jr = &f->joins[i];

		f->njoins++;
		if (m->kind != SYNC_NODE_MAP)
			return sync_node_errf(err, m, "a join rule must be a "
			    "mapping, not %s", sync_node_kindname(m->kind));
		if (sync_map_str(m, "name", 1, &jr->name, err) == -1 ||
		    sync_map_str(m, "target", 1, &jr->target, err) == -1)
			return -1;
		if (strcmp(jr->name, "anchor") == 0)
			return sync_node_errf(err, sync_map_get(m, "name"),
			    "join rule name 'anchor' is reserved for the hard "
			    "match");
		for (j = 0; j < i; j++)
			if (strcmp(f->joins[j].name, jr->name) == 0)
				return sync_node_errf(err, sync_map_get(m,
				    "name"), "duplicate join rule '%s'",
				    jr->name);
		if ((n = sync_map_get(m, "source")) == NULL)
			return sync_node_errf(err, m, "join rule '%s' lacks "
			    "'source'", jr->name);
		if ((jr->e = node_expr(n, "join source", err)) == NULL)
			return -1;
		jr->direct = direct_name(n->str);
		if (sync_map_check_unused(m, err) == -1)
			return -1;
	}
	return 0;
}

struct namei {
	const char *name;
	size_t i;
};

static int
namei_cmp(const void *a, const void *b)
{
	const struct namei *x = a, *y = b;
	int c = strcasecmp(x->name, y->name);

	return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/*
 * The first attribute (in file order) whose name, ignoring case, an
 * earlier one has; -1 when none.  Sorted rather than compared pairwise:
 * a flow of 80,000 attributes took seconds.
 */
static long
dup_attr(const struct flow *f, int *nomem)
{
	struct namei *v;
	long first = -1;
	size_t i;

	*nomem = 0;
	if (f->nattrs < 2)
		return -1;
	if ((v = malloc(f->nattrs * sizeof *v)) == NULL) {
		*nomem = 1;
		return -1;
	}
	for (i = 0; i < f->nattrs; i++) {
		v[i].name = f->attrs[i].name;
		v[i].i = i;
	}
	qsort(v, f->nattrs, sizeof *v, namei_cmp);
	for (i = 1; i < f->nattrs; i++)
		if (strcasecmp(v[i - 1].name, v[i].name) == 0 &&
		    (first == -1 || v[i].i < (size_t)first))
			first = (long)v[i].i;
	free(v);
	return first;
}

/*
 * The properties of Microsoft Graph's user and group resources (v1.0),
 * sorted ignoring case.  A flow that writes another name to a Graph
 * target would fail every object at export ("Property 'x' does not exist
 * as a declared property or extension property"), so it is refused when
 * the config is read.  Directory extensions (extension_<app>_<name>) are
 * the tenant's own and always allowed.
 */
static const char *const graph_props[] = {
	"aboutMe", "accountEnabled", "ageGroup", "assignedLicenses",
	"birthday", "businessPhones", "city", "classification",
	"companyName", "consentProvidedForMinor", "country",
	"createdDateTime", "creationOptions", "creationType",
	"deletedDateTime", "department", "description", "directReports",
	"displayName", "employeeHireDate", "employeeId",
	"employeeLeaveDateTime", "employeeOrgData", "employeeType",
	"expirationDateTime", "externalUserState", "faxNumber", "givenName",
	"groupTypes", "identities", "imAddresses", "interests",
	"isAssignableToRole", "isResourceAccount", "jobTitle",
	"lastPasswordChangeDateTime", "licenseAssignmentStates", "mail",
	"mailEnabled", "mailNickname", "manager", "memberOf", "members",
	"membershipRule", "membershipRuleProcessingState", "mobilePhone",
	"mySite", "officeLocation", "onPremisesDistinguishedName",
	"onPremisesDomainName", "onPremisesExtensionAttributes",
	"onPremisesImmutableId", "onPremisesLastSyncDateTime",
	"onPremisesNetBiosName", "onPremisesProvisioningErrors",
	"onPremisesSamAccountName", "onPremisesSecurityIdentifier",
	"onPremisesSipInfo", "onPremisesSyncEnabled",
	"onPremisesUserPrincipalName", "otherMails", "owners",
	"passwordPolicies", "passwordProfile", "pastProjects", "postalCode",
	"preferredDataLocation", "preferredLanguage", "preferredName",
	"proxyAddresses", "renewedDateTime", "resourceBehaviorOptions",
	"resourceProvisioningOptions", "responsibilities", "schools",
	"securityEnabled", "securityIdentifier", "serviceProvisioningErrors",
	"showInAddressList", "signInActivity",
	"signInSessionsValidFromDateTime", "skills", "state",
	"streetAddress", "surname", "theme", "uniqueName", "usageLocation",
	"userPrincipalName", "userType", "visibility",
	"writebackConfiguration", NULL
};

/*
 * Checks a target attribute name of a flow to a Graph connector; a.b
 * names a property of a nested object (onPremisesExtensionAttributes).
 * Returns 0, or -1 with err at the attribute's key.
 */
static int
check_graph_prop(const struct sync_node *k, const char *name,
    struct sync_err *err)
{
	size_t i, n = strcspn(name, ".");
	const char *near = NULL;

	if (strncmp(name, "extension_", 10) == 0)
		return 0;
	for (i = 0; graph_props[i]; i++) {
		if (strlen(graph_props[i]) != n)
			continue;
		if (strncmp(graph_props[i], name, n) == 0)
			return 0;
		if (strncasecmp(graph_props[i], name, n) == 0)
			near = graph_props[i];
	}
	if (near)
		return sync_node_errf(err, k, "'%.*s' is not a Microsoft Graph "
		    "property (did you mean '%s'?)", (int)n, name, near);
	return sync_node_errf(err, k, "'%.*s' is not a Microsoft Graph user "
	    "or group property (see sync.conf(5), FLOWS; directory "
	    "extensions are written extension_<app id>_<name>)", (int)n, name);
}

/*
 * graph: the flow goes to a Graph connector (property names checked);
 * tops: the target connector's kind, whose target_attr checks the names.
 */
static int
parse_attrs(struct flow *f, struct sync_node *map, int graph,
    const struct sync_connops *tops, struct sync_err *err)
{
	size_t i;
	long dup;
	int nomem;

	if (map == NULL)
		return 0;
	if ((f->attrs = calloc(map->n ? map->n : 1, sizeof *f->attrs)) == NULL)
		return sync_errf(err, "out of memory");
	for (i = 0; i < map->n; i++) {
		struct sync_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
		struct sync_node *src = v;
		struct flowattr *fa = &f->attrs[i];
		char *when = NULL;

		k->used = 1;
		f->nattrs++;
		if ((fa->name = sync_strdup(k->str)) == NULL ||
		    sync_buf_addf(&fa->pos, "%s:%d:%d", k->file, k->line,
		    k->col) == -1)
			return sync_errf(err, "out of memory");
		if (graph && check_graph_prop(k, fa->name, err) == -1)
			return -1;
		if (tops && tops->target_attr) {
			struct sync_buf why = { 0 };
			int bad = tops->target_attr(f->totype, fa->name,
			    &why) == -1;

			if (bad)
				sync_node_errf(err, k, "'%s' %s", fa->name,
				    why.p ? why.p : "is not an attribute of "
				    "the target");
			sync_buf_release(&why);
			if (bad)
				return -1;
		}
		if (v->kind == SYNC_NODE_MAP) {
			if ((src = sync_map_get(v, "value")) == NULL)
				return sync_node_errf(err, v, "attribute '%s' "
				    "lacks 'value'", fa->name);
			if (sync_map_str(v, "when", 0, &when, err) == -1 ||
			    sync_map_bool(v, "reference", &fa->reference,
			    err) == -1)
				return -1;
			if (when != NULL && strcmp(when, "create") == 0)
				fa->create_only = 1;
			else if (when != NULL && strcmp(when, "always") != 0) {
				free(when);
				return sync_node_errf(err, sync_map_get(v, "when"),
				    "'when' must be 'always' or 'create'");
			}
			free(when);
			if (sync_map_check_unused(v, err) == -1)
				return -1;
		}
		if ((fa->e = node_expr(src, "attribute flow", err)) == NULL)
			return -1;
		if ((fa->direct = direct_name(src->str)) != NULL)
			fa->kind = FA_DIRECT;
		else if (!fa->reference && try_const(fa, err) == -1)
			return -1;
	}
	if ((dup = dup_attr(f, &nomem)) >= 0)
		return sync_node_errf(err, map->items[2 * dup], "attribute "
		    "'%s' has two flows", f->attrs[dup].name);
	return nomem ? sync_errf(err, "out of memory") : 0;
}

static int
parse_disable(struct flow *f, struct sync_node *map, struct sync_err *err)
{
	size_t i;

	if (map == NULL)
		return 0;
	for (i = 0; i < map->n; i++) {
		struct sync_node *k = map->items[2 * i], *v = map->items[2 * i + 1];

		k->used = 1;
		if (v->kind != SYNC_NODE_SCALAR)
			return sync_node_errf(err, v, "'disable' values must be "
			    "strings");
		if (sync_strv_add(&f->disable_names, k->str) == -1 ||
		    sync_strv_add(&f->disable_vals, v->str) == -1)
			return sync_errf(err, "out of memory");
	}
	return 0;
}

static int
parse_flow(struct flow *f, struct sync_config *cfg, struct sync_node *m,
    struct sync_err *err)
{
	struct sync_node *n, *sub;
	char *oos = NULL;
	size_t i;
	const struct sync_connops *tops = NULL;
	const char *tanchor = NULL;
	int graph = 0, scim = 0;

	if (m->kind != SYNC_NODE_MAP)
		return sync_node_errf(err, m, "a flow must be a mapping, not %s",
		    sync_node_kindname(m->kind));
	if (sync_map_str(m, "name", 1, &f->name, err) == -1)
		return -1;
	if ((n = sync_map_get(m, "from")) == NULL)
		return sync_node_errf(err, m, "flow '%s' lacks 'from'", f->name);
	if (n->kind == SYNC_NODE_SCALAR) {
		if ((f->from = calloc(1, sizeof *f->from)) == NULL)
			return sync_errf(err, "out of memory");
		f->nfrom = 1;
		if (parse_source(n, &f->from[0].conn, &f->from[0].type,
		    err) == -1 || check_conn(cfg, n, f->from[0].conn, err) == -1)
			return -1;
	} else if (n->kind == SYNC_NODE_SEQ && n->n > 0) {
		if ((f->from = calloc(n->n, sizeof *f->from)) == NULL)
			return sync_errf(err, "out of memory");
		for (i = 0; i < n->n; i++) {
			f->nfrom++;
			if (parse_source(n->items[i], &f->from[i].conn,
			    &f->from[i].type, err) == -1 ||
			    check_conn(cfg, n->items[i], f->from[i].conn,
			    err) == -1)
				return -1;
		}
	} else
		return sync_node_errf(err, n, "'from' must be 'connector.type' "
		    "or a list of them");
	if ((n = sync_map_get(m, "to")) == NULL)
		return sync_node_errf(err, m, "flow '%s' lacks 'to'", f->name);
	if (parse_source(n, &f->to, &f->totype, err) == -1 ||
	    check_conn(cfg, n, f->to, err) == -1)
		return -1;
	for (i = 0; i < cfg->nconns; i++)
		if (strcmp(cfg->conns[i].name, f->to) == 0) {
			graph = strcmp(cfg->conns[i].typename, "graph") == 0;
			scim = strcmp(cfg->conns[i].typename, "scim") == 0;
			tanchor = cfg->conns[i].anchor_attr;
			tops = cfg->conns[i].ops;
		}
	/* Graph has no write for organizational contacts (orgContact is
	 * read-only there): sync-export would fail every one. */
	if (graph && f->totype == SYNC_CONTACT)
		return sync_node_errf(err, n, "flow '%s': contacts cannot be "
		    "written to connector '%s': Microsoft Graph cannot create "
		    "or change organizational contacts", f->name, f->to);
	if (scim && f->totype == SYNC_CONTACT)
		return sync_node_errf(err, n, "flow '%s': contacts cannot be "
		    "written to connector '%s': SCIM has no contacts (user and "
		    "group only)", f->name, f->to);
	if (sync_map_map(m, "scope", 0, &sub, err) == -1 ||
	    parse_scope(f, sub, err) == -1)
		return -1;
	if (sync_map_str(m, "out_of_scope", 0, &oos, err) == -1)
		return -1;
	if (oos == NULL || strcmp(oos, "delete") == 0)
		f->oos = OOS_DELETE;
	else if (strcmp(oos, "disable") == 0)
		f->oos = OOS_DISABLE;
	else if (strcmp(oos, "leave") == 0)
		f->oos = OOS_LEAVE;
	else {
		free(oos);
		return sync_node_errf(err, sync_map_get(m, "out_of_scope"),
		    "'out_of_scope' must be delete, disable or leave");
	}
	free(oos);
	if (sync_map_map(m, "disable", 0, &sub, err) == -1 ||
	    parse_disable(f, sub, err) == -1)
		return -1;
	if (f->oos == OOS_DISABLE && f->disable_names.n == 0)
		return sync_node_errf(err, sync_map_get(m, "out_of_scope"),
		    "'out_of_scope: disable' needs a 'disable' mapping of the "
		    "attributes to set");
	if ((f->anchor_attr = sync_strdup(tanchor ? tanchor :
	    "onPremisesImmutableId")) == NULL)
		return sync_errf(err, "out of memory");
	if (sync_map_map(m, "anchor", 0, &sub, err) == -1 ||
	    parse_anchor(f, sub, err) == -1)
		return -1;
	if ((n = sync_map_get(m, "join")) != NULL && parse_joins(f, n, err) == -1)
		return -1;
	if ((n = sync_map_get(m, "dn")) != NULL &&
	    (f->dn = node_expr(n, "dn", err)) == NULL)
		return -1;
	if (sync_map_map(m, "attributes", 0, &sub, err) == -1 ||
	    parse_attrs(f, sub, graph, tops, err) == -1)
		return -1;
	return sync_map_check_unused(m, err);
}

int
rules_load(struct rules *r, struct sync_config *cfg, struct sync_err *err)
{
	struct sync_node *flows, *policy;
	size_t i, j;

	memset(r, 0, sizeof *r);
	r->delete_count = 500;
	r->delete_percent = -1;
	r->large = 10;
	if (sync_map_map(cfg->root, "policy", 0, &policy, err) == -1)
		return -1;
	if (policy != NULL) {
		if (sync_map_int(policy, "delete_threshold", 0, 100000000,
		    &r->delete_count, err) == -1 ||
		    sync_map_int(policy, "delete_threshold_percent", 0, 100,
		    &r->delete_percent, err) == -1 ||
		    sync_map_int(policy, "delta_values", 1, 1000000,
		    &r->large, err) == -1)
			return -1;
		if (sync_map_check_unused(policy, err) == -1)
			return -1;
	}
	if ((flows = sync_map_get(cfg->root, "flows")) == NULL)
		return sync_node_errf(err, cfg->root, "no 'flows' section: "
		    "sync-diff needs at least one flow");
	if (flows->kind != SYNC_NODE_SEQ || flows->n == 0)
		return sync_node_errf(err, flows, "'flows' must be a non-empty "
		    "list");
	if ((r->flows = calloc(flows->n, sizeof *r->flows)) == NULL)
		return sync_errf(err, "out of memory");
	for (i = 0; i < flows->n; i++) {
		r->nflows++;
		if (parse_flow(&r->flows[i], cfg, flows->items[i], err) == -1)
			return -1;
		for (j = 0; j < i; j++)
			if (strcmp(r->flows[j].name, r->flows[i].name) == 0)
				return sync_node_errf(err, flows->items[i],
				    "duplicate flow name '%s'",
				    r->flows[i].name);
	}
	return 0;
}

void
rules_release(struct rules *r)
{
	size_t i, j;

	for (i = 0; i < r->nflows; i++) {
		struct flow *f = &r->flows[i];

		free(f->name);
		for (j = 0; j < f->nfrom; j++)
			free(f->from[j].conn);
		free(f->from);
		free(f->to);
		sync_strv_release(&f->inc_ous);
		sync_strv_release(&f->exc_ous);
		free(f->member_of);
		sync_expr_free(f->filter);
		sync_strv_release(&f->disable_names);
		sync_strv_release(&f->disable_vals);
		sync_expr_free(f->anchor_src);
		free(f->anchor_attr);
		for (j = 0; j < f->njoins; j++) {
			free(f->joins[j].name);
			sync_expr_free(f->joins[j].e);
			free(f->joins[j].direct);
			free(f->joins[j].target);
		}
		free(f->joins);
		for (j = 0; j < f->nattrs; j++) {
			free(f->attrs[j].name);
			sync_buf_release(&f->attrs[j].pos);
			sync_expr_free(f->attrs[j].e);
			free(f->attrs[j].direct);
			sync_strv_release(&f->attrs[j].konst);
		}
		free(f->attrs);
		sync_expr_free(f->dn);
	}
	free(r->flows);
	memset(r, 0, sizeof *r);
}

int
sync_flow_target_attrs(struct sync_config *cfg, const char *conn,
    struct sync_strv out[SYNC_NOBJTYPES], struct sync_err *err)
{
	struct rules r;
	size_t i, j;

	/* A config with no flows (an import-only one) asks for nothing. */
	if (sync_map_get(cfg->root, "flows") == NULL)
		return 0;
	if (rules_load(&r, cfg, err) == -1) {
		rules_release(&r);
		return -1;
	}
	for (i = 0; i < r.nflows; i++) {
		struct flow *f = &r.flows[i];
		struct sync_strv *o = &out[f->totype];

		if (strcmp(f->to, conn) != 0)
			continue;
		if (f->anchor_attr && !sync_strv_casecontains(o, f->anchor_attr) &&
		    sync_strv_add(o, f->anchor_attr) == -1)
			goto nomem;
		for (j = 0; j < f->nattrs; j++)
			if (!sync_strv_casecontains(o, f->attrs[j].name) &&
			    sync_strv_add(o, f->attrs[j].name) == -1)
				goto nomem;
		for (j = 0; j < f->njoins; j++)
			if (!sync_strv_casecontains(o, f->joins[j].target) &&
			    sync_strv_add(o, f->joins[j].target) == -1)
				goto nomem;
		for (j = 0; j < f->disable_names.n; j++)
			if (!sync_strv_casecontains(o, f->disable_names.v[j]) &&
			    sync_strv_add(o, f->disable_names.v[j]) == -1)
				goto nomem;
	}
	rules_release(&r);
	return 0;
nomem:
	rules_release(&r);
	return sync_errf(err, "out of memory");
}
