/*
 * export-report.c: what a run of sync-export did, for machines: a JSON
 * summary, and a Prometheus textfile for node_exporter's textfile
 * collector.  Both are written atomically (a temporary file beside the
 * target, renamed over it), so a reader never sees half of one.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sync.h"

static void
rfc3339(double t, char out[32])
{
	time_t s = (time_t)t;
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Seconds, to the millisecond; never below 0 (the clock may be set back). */
static double
duration(const struct sync_export_report *r)
{
	double d = r->ended - r->started;

	return d > 0 ? (double)(long long)(d * 1000) / 1000 : 0.0;
}

int
sync_export_summary_write(const struct sync_export_report *r,
    const char *path, struct sync_err *err)
{
	const struct sync_export_stats *st = r->st;
	struct sync_out out;
	char started[32], ended[32];
	json_t *o;
	char *text;
	int rc;

	rfc3339(r->started, started);
	rfc3339(r->ended, ended);
	o = json_pack("{s:s, s:s, s:s, s:s?, s:b, s:s, s:s, s:f, s:i, s:s?, "
	    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
	    "program", r->prog, "version", r->version, "plan", r->plan,
	    "target", st->target, "dry_run", r->dry_run,
	    "started", started, "ended", ended,
	    "duration_seconds", duration(r),
	    "exit_status", r->exit_status, "error", r->error,
	    "applied", (json_int_t)st->applied,
	    "skipped", (json_int_t)st->skipped,
	    "failed", (json_int_t)st->failed,
	    "not_applied", (json_int_t)st->notapplied,
	    "resumed", (json_int_t)st->resumed,
	    "batches", (json_int_t)st->batches,
	    "writes", (json_int_t)st->writes,
	    "retries", (json_int_t)st->retries,
	    "throttled", (json_int_t)st->throttled,
	    "staging", r->staging);
	if (o == NULL)
		return sync_errf(err, "%s: out of memory", path);
	text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return sync_errf(err, "%s: out of memory", path);
	/* Error messages may name objects of the directory: mode 0600. */
	if (sync_out_open(&out, path, err) == -1) {
		free(text);
		return -1;
	}
	fputs(text, out.fp);
	fputc('\n', out.fp);
	free(text);
	if ((rc = sync_out_commit(&out, err)) == -1)
		sync_out_abort(&out);
	return rc;
}

/* A label value as the exposition format quotes it. */
static void
label(struct sync_buf *b, const char *name, const char *v)
{
	sync_buf_addf(b, "%s=\"", name);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sync_buf_addc(b, '\\');
		if (*v == '\n')
			sync_buf_adds(b, "\\n");
		else
			sync_buf_addc(b, *v);
	}
	sync_buf_addc(b, '"');
}

/* One metric: HELP and TYPE, then the sample with the target's label. */
static void
metric(struct sync_buf *b, const char *target, const char *name,
    const char *help, const char *outcome, double v, int first)
{
	if (first)
		sync_buf_addf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help,
		    name);
	sync_buf_adds(b, name);
	if (target || outcome) {
		sync_buf_addc(b, '{');
		if (target)
			label(b, "target", target);
		if (target && outcome)
			sync_buf_addc(b, ',');
		if (outcome)
			label(b, "outcome", outcome);
		sync_buf_addc(b, '}');
	}
	sync_buf_addf(b, " %.15g\n", v);
}

int
sync_export_metrics_write(const struct sync_export_report *r,
    const char *path, struct sync_err *err)
{
	const struct sync_export_stats *st = r->st;
	const char *t = st->target;
	struct sync_buf b = { 0 };
	struct sync_out out;
	int rc;

	/*
	 * Gauges of the last run: each run replaces the file, so these are
	 * not counters that only grow (hence no _total suffix).
	 */
	metric(&b, t, "sync_export_changes", "Changes of the plan by outcome "
	    "in the last run of sync-export.", "applied", (double)st->applied, 1);
	metric(&b, t, "sync_export_changes", NULL, "skipped",
	    (double)st->skipped, 0);
	metric(&b, t, "sync_export_changes", NULL, "failed",
	    (double)st->failed, 0);
	metric(&b, t, "sync_export_changes", NULL, "not_applied",
	    (double)st->notapplied, 0);
	metric(&b, t, "sync_export_changes", NULL, "resumed",
	    (double)st->resumed, 0);
	metric(&b, t, "sync_export_batches", "$batch requests answered in the "
	    "last run.", NULL, (double)st->batches, 1);
	metric(&b, t, "sync_export_writes", "Write requests answered in the "
	    "last run.", NULL, (double)st->writes, 1);
	metric(&b, t, "sync_export_retries", "Waits before a retry in the "
	    "last run.", NULL, (double)st->retries, 1);
	metric(&b, t, "sync_export_throttled", "Requests answered 429 or 503 "
	    "in the last run.", NULL, (double)st->throttled, 1);
	metric(&b, t, "sync_export_duration_seconds", "How long the last run "
	    "took.", NULL, duration(r), 1);
	metric(&b, t, "sync_export_last_run_timestamp_seconds", "When the "
	    "last run ended, in seconds since the epoch.", NULL,
	    (double)(long long)r->ended, 1);
	metric(&b, t, "sync_export_exit_status", "The exit status of the last "
	    "run: 0 done, 1 changes failed or not applied, or staging, "
	    "2 an error.", NULL, (double)r->exit_status, 1);
	metric(&b, t, "sync_export_staging", "1 when the last run found this "
	    "server staging and sent nothing.", NULL, r->staging ? 1 : 0, 1);
	if (b.p == NULL)
		return sync_errf(err, "%s: out of memory", path);
	/* Counts only, and the textfile collector must read it: 0644. */
	if (sync_out_open_mode(&out, path, 0644, err) == -1) {
		sync_buf_release(&b);
		return -1;
	}
	fputs(b.p, out.fp);
	sync_buf_release(&b);
	if ((rc = sync_out_commit(&out, err)) == -1)
		sync_out_abort(&out);
	return rc;
}
