/*
 * export.c: sync-export's driver: loads a plan, refuses what must be
 * refused (another config, the deletion threshold), opens the journal,
 * and hands the changes to the target's writer.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "conn.h"
#include "export.h"

#define MAXPLAN ((size_t)4 << 30)

int
xplan_record(struct xplan *p, struct xchange *x, const char *outcome,
    const char *id, json_t *error, struct sync_err *err)
{
	json_t *rec;
	int rc;

	rec = json_pack("{s:s, s:s, s:s, s:s}", "anchor", x->anchor, "op",
	    x->op, "type", x->type, "outcome", outcome);
	if (rec == NULL)
		return sync_errf(err, "out of memory");
	if (id)
		json_object_set_new(rec, "id", json_string(id));
	if (error)
		json_object_set(rec, "error", error);
	pthread_mutex_lock(&p->mu);
	rc = sync_journal_record(p->journal, x->idx, rec, err);
	if (strcmp(outcome, "applied") == 0)
		p->st->applied++;
	else if (strcmp(outcome, "skipped") == 0)
		p->st->skipped++;
	else {
		json_t *f = json_pack("{s:I, s:s, s:s, s:s}", "change",
		    (json_int_t)x->idx + 2, "anchor", x->anchor, "op", x->op,
		    "type", x->type);

		if (f && error)
			json_object_set(f, "error", error);
		if (f)
			json_array_append_new(p->st->failures, f);
		p->st->failed++;
	}
	pthread_mutex_unlock(&p->mu);
	json_decref(rec);
	return rc;
}

int
xplan_sync(struct xplan *p, struct sync_err *err)
{
	int rc;

	if (p->journal == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	rc = sync_journal_sync(p->journal, err);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
xplan_lease(struct xplan *p, struct sync_err *err)
{
	int rc;

	if (p->o->lease_check == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	rc = p->st->lease_lost ? 1 : p->o->lease_check(p->o->lease_ctx, err);
	if (rc == 1)
		p->st->lease_lost = 1;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void
xplan_progress(struct xplan *p, const struct sync_export_progress *pr)
{
	if (p->o->progress == NULL)
		return;
	pthread_mutex_lock(&p->pmu);
	p->o->progress(p->o->progress_ctx, pr);
	pthread_mutex_unlock(&p->pmu);
}

/* The flow's anchor attribute on the target, for change x. */
void
xplan_stale(const struct xchange *x, const char *stalewhy, size_t *nstale,
    struct sync_buf *why)
{
	if ((*nstale)++ >= 5)
		return;
	sync_buf_addf(why, "\n  line %zu: %s %s '", x->idx + 2, x->op,
	    x->type);
	sync_buf_addesc(why, x->anchor, strlen(x->anchor));
	sync_buf_adds(why, "': ");
	sync_buf_addesc(why, stalewhy, strlen(stalewhy));
}

int
xplan_stale_refuse(struct xplan *p, size_t nstale, const struct sync_buf *why,
    struct sync_err *err)
{
	sync_errf(err, "%s: the target changed since the plan was made "
	    "(%zu change%s no longer fit%s); nothing was changed. Import "
	    "the target and run sync-diff again.%s", p->target->name,
	    nstale, nstale == 1 ? "" : "s", nstale == 1 ? "s" : "", why->p);
	return -1;
}

const char *
xplan_phase_what(int phase)
{
	static const char *const what[] = { "reads", "users", "groups",
	    "members" };

	return what[phase];
}

int
xplan_outcome(struct xplan *p, struct xchange *x, int *recorded,
    int reported, int failed, int skipped, const char *tid, json_t *error,
    struct sync_err *err)
{
	if (*recorded || reported || x->done)
		return 0;
	*recorded = 1;
	if (failed)
		return xplan_record(p, x, "failed", tid, error, err);
	return xplan_record(p, x, skipped ? "skipped" : "applied", tid, NULL,
	    err);
}

int
xplan_is_write(const struct xchange *x)
{
	return strcmp(x->op, "add") == 0 || strcmp(x->op, "update") == 0 ||
	    strcmp(x->op, "delete") == 0;
}

char *
xplan_start_id(struct xplan *p, const struct xchange *x, json_t *anchors)
{
	const char *id = x->id;

	if (x->done) {
		const char *jid = sync_journal_id(p->journal, x->idx);

		if (jid) {
			id = jid;
			json_object_set_new(anchors, x->anchor,
			    json_string(jid));
		}
	}
	return id ? sync_strdup(id) : NULL;
}

double
xsettle_start(long seconds)
{
	return sync_mono_now() + (double)seconds;
}

int
xsettle_wait(double until, double *wait)
{
	double now = sync_mono_now();

	*wait = 0;
	if (now >= until)
		return 0;
	*wait = until - now < XSETTLE_STEP ? until - now : XSETTLE_STEP;
	return 1;
}

struct xworker {
	void (*fn)(void *, int);
	void *arg;
	int conn;
};

static void *
xworker_main(void *a)
{
	struct xworker *w = a;

	w->fn(w->arg, w->conn);
	return NULL;
}

void
xplan_workers(int nth, void (*fn)(void *arg, int conn), void *arg)
{
	pthread_t th[64];
	struct xworker w[64];
	int i;

	if (nth > 64)
		nth = 64;
	for (i = 0; i < nth; i++) {
		w[i].fn = fn;
		w[i].arg = arg;
		w[i].conn = i;
		if (pthread_create(&th[i], NULL, xworker_main, &w[i]) != 0) {
			nth = i;
			break;
		}
	}
	if (nth == 0)
		fn(arg, 0);
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
}

static const char *
anchor_attr(struct rules *r, const char *flow)
{
	size_t i;

	for (i = 0; flow && i < r->nflows; i++)
		if (strcmp(r->flows[i].name, flow) == 0)
			return r->flows[i].anchor_attr;
	return NULL;
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int
sync_export_run(struct sync_config *cfg, const char *path,
    const struct sync_export_opts *o, struct sync_export_stats *st,
    struct sync_err *err)
{
	struct sync_buf raw = { 0 }, jpath = { 0 };
	struct xplan p;
	struct rules rules;
	json_t *hdr = NULL, **lines = NULL;
	json_error_t jerr;
	unsigned char digest[32];
	char hex[65];
	const char *cfgdigest, *tname;
	char *s, *nl;
	size_t i, n = 0, lineno;
	long deletes;
	int rc = -1, have_rules = 0;

	memset(&p, 0, sizeof p);
	memset(st, 0, sizeof *st);
	if ((st->failures = json_array()) == NULL)
		return sync_errf(err, "out of memory");
	json_object_seed(0);
	pthread_mutex_init(&p.mu, NULL);
	pthread_mutex_init(&p.pmu, NULL);
	if (sync_file_read(path, MAXPLAN, &raw, err) == -1)
		goto out;
	if (sync_changeset_check(strcmp(path, "-") == 0 ? "<stdin>" : path,
	    raw.p ? raw.p : "", raw.len, err) == -1)
		goto out;
	sync_sha256(raw.p, raw.len, digest);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);

	/* The lines, parsed once; the checker has vouched for their shape. */
	for (s = raw.p, lineno = 1; s < raw.p + raw.len; s = nl + 1, lineno++) {
		json_t *v;

		nl = memchr(s, '\n', (size_t)(raw.p + raw.len - s));
		if (nl == NULL)
			nl = raw.p + raw.len;
		if ((v = json_loadb(s, (size_t)(nl - s), 0, &jerr)) == NULL) {
			sync_errf(err, "%s:%zu:%d: %s", path, lineno, jerr.column,
			    jerr.text);
			goto out;
		}
		if (lineno == 1) {
			hdr = v;
			continue;
		}
		json_t **nlines = realloc(lines, (n + 1) * sizeof *lines);

		if (nlines == NULL) {
			json_decref(v);
			sync_errf(err, "out of memory");
			goto out;
		}
		lines = nlines;
		lines[n++] = v;
	}

	/* A plan is applied only with the rules that made it. */
	cfgdigest = str(hdr, "config");
	if (cfgdigest == NULL || strcmp(cfgdigest, cfg->digest_hex) != 0) {
		sync_errf(err, "%s: the plan was computed with another "
		    "configuration (digest %.12s, '%s' is %.12s); run sync-diff "
		    "again", path, cfgdigest ? cfgdigest : "none", cfg->path,
		    cfg->digest_hex);
		goto out;
	}
	tname = str(json_object_get(hdr, "target"), "connector");
	if (tname == NULL ||
	    (p.target = sync_config_connector(cfg, tname, err)) == NULL)
		goto out;
	st->target = p.target->name;

	/* The deletion threshold: all or nothing. */
	deletes = (long)json_integer_value(json_object_get(
	    json_object_get(hdr, "threshold"), "deletes"));
	if (json_is_true(json_object_get(json_object_get(hdr, "threshold"),
	    "exceeded")) && (o->allow_deletes < 0 || o->allow_deletes < deletes)) {
		sync_errf(err, "%s: the plan deletes %ld objects, over the "
		    "deletion threshold; nothing was changed. Check the plan, "
		    "then allow that many deletes with -D %ld", path, deletes,
		    deletes);
		goto out;
	}

	if (rules_load(&rules, cfg, err) == -1)
		goto out;
	have_rules = 1;
	if ((p.ch = calloc(n ? n : 1, sizeof *p.ch)) == NULL) {
		sync_errf(err, "out of memory");
		goto out;
	}
	p.n = n;
	for (i = 0; i < n; i++) {
		struct xchange *x = &p.ch[i];

		x->idx = i;
		x->c = lines[i];
		x->op = str(lines[i], "op");
		x->type = str(lines[i], "type");
		x->anchor = str(lines[i], "anchor");
		x->id = str(lines[i], "id");
		x->flow = str(lines[i], "flow");
		x->anchorattr = anchor_attr(&rules, x->flow);
	}
	p.cfg = cfg;
	p.o = o;
	p.st = st;

	if (!o->dry_run) {
		if (o->journal == NULL) {
			sync_buf_addf(&jpath, "%s/journal", cfg->state_dir);
			if (sync_state_dir(jpath.p, 1, err) == -1)
				goto out;
			sync_buf_addf(&jpath, "/%s.jsonl", hex);
		} else
			sync_buf_adds(&jpath, o->journal);
		if ((p.journal = sync_journal_open(jpath.p, hex, n, err)) == NULL)
			goto out;
		for (i = 0; i < n; i++)
			if (sync_journal_done(p.journal, i)) {
				p.ch[i].done = 1;
				st->resumed++;
			}
	}

	if (p.target->ops->export != NULL)
		rc = p.target->ops->export(&p, err);
	else
		rc = sync_errf(err, "%s: export to %s connectors is not "
		    "written yet", p.target->name, p.target->typename);
	if (p.journal && sync_journal_sync(p.journal, rc == 0 ? err : NULL) == -1)
		rc = -1;
out:
	if (have_rules)
		rules_release(&rules);
	sync_journal_close(p.journal);
	for (i = 0; i < n; i++)
		json_decref(lines[i]);
	free(lines);
	free(p.ch);
	json_decref(hdr);
	sync_buf_release(&raw);
	sync_buf_release(&jpath);
	pthread_mutex_destroy(&p.mu);
	pthread_mutex_destroy(&p.pmu);
	return rc;
}
