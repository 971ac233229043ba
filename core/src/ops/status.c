/* The daemon's live state as JSON (status.h). It reads the scheduler through sched.h's view API
 * without changing anything, so a snapshot costs a walk over the jobs and nothing else. */
#include "status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "config.h"
#include "cron.h"
#include "exec.h"
#include "history.h"
#include "hist_spool.h"
#include "metrics.h"
#include "plugin.h"
#include "sched.h"
#include "job_kind.h"
#include "text.h"
#include "triggers.h"

/* Databases shown at most (a configuration has a handful). */
#define MAX_DATABASES 256

/* KEY = "2026-11-22T10:00:01Z" and KEY_unix = seconds (with the fraction). */
static int put_time(json_t *o, const char *key, int64_t us)
{
	char iso[CRON_TIME_BUFSZ], k[64];
	int64_t s = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	if (cron_time_format(s, iso, sizeof(iso)) < 0)
		return 0; /* out of the calendar's range: left out */
	int n = snprintf(k, sizeof(k), "%s_unix", key);
	if (n < 0 || (size_t)n >= sizeof(k))
		return -ENOMEM;
	if (json_object_set_new(o, key, json_string(iso)) < 0 ||
	    json_object_set_new(o, k, json_real((double)us / 1e6)) < 0)
		return -ENOMEM;
	return 0;
}

/* V as a JSON string, for a text a server sent: one in another encoding may send bytes that
 * are not UTF-8, which are replaced (json_pack's "s" would fail the whole object). NULL when V
 * is NULL. */
static json_t *text_json(const char *v)
{
	json_t *s = v ? json_string(v) : NULL;
	if (v && !s) {
		char *copy = text_utf8_fix_dup(v);
		s = copy ? json_string(copy) : NULL;
		free(copy);
	}
	return s;
}

static int put_str(json_t *o, const char *key, const char *v)
{
	return v ? json_object_set_new(o, key, text_json(v)) : 0;
}

static int put_int(json_t *o, const char *key, json_int_t v)
{
	return json_object_set_new(o, key, json_integer(v));
}

static int put_bool(json_t *o, const char *key, bool v)
{
	return json_object_set_new(o, key, json_boolean(v));
}

/* The one word for what the job is doing now. */
static const char *job_state(const struct sched_job_view *j, bool debouncing)
{
	if (j->run.started)
		return "running";
	if (j->paused)
		return "paused";
	if (j->run.retry_wait)
		return "retrying";
	if (j->run.cluster_wait)
		return "waiting_instance"; /* for its run on another instance (overlap) */
	if (j->run.has)
		return "queued";
	if (j->parked)
		return "waiting_upstream";
	if (debouncing || j->notify_pending)
		return "debouncing";
	if (!j->enabled)
		return "disabled";
	return "idle";
}

/* freshness (sched.h struct fresh_view): the SLA, the lag against it, the next run it plans, or why
 * it runs every period instead. */
static int fresh_json(json_t *o, const struct fresh_view *fv)
{
	json_t *sub = json_object();
	int rc = 0;
	if (!sub)
		return -1;
	rc |= put_int(sub, "sla_s", fv->sla_ms / 1000);
	rc |= json_object_set_new(sub, "lag_s", json_real((double)fv->lag_us / 1e6));
	rc |= put_bool(sub, "over_sla", fv->lag_us > fv->sla_ms * 1000);
	if (fv->changed_since_us)
		rc |= put_time(sub, "changed_since", fv->changed_since_us);
	if (fv->unchanged_since_us)
		rc |= put_time(sub, "unchanged_since", fv->unchanged_since_us);
	if (fv->next_run_us)
		rc |= put_time(sub, "next_run", fv->next_run_us);
	if (fv->fallback)
		rc |= put_str(sub, "fallback", fv->fallback);
	rc |= json_object_set_new(o, "freshness", sub);
	return rc;
}

/* The job's last runs, newest first (sched.h): the page's strip. */
static json_t *recent_runs_json(const struct sched_job_view *j)
{
	json_t *arr = json_array();
	const struct sched_recent *r = j->recent;
	int rc = 0;
	for (uint32_t i = 0; arr && r && i < r->n; i++) {
		const struct sched_recent_run *x = &r->runs[i];
		json_t *o = json_object();
		if (!o || json_array_append_new(arr, o) < 0) {
			rc = -1;
			break;
		}
		rc |= put_str(o, "status", sched_recent_statuses[x->status]);
		rc |= put_time(o, "started_at", x->start_us);
		rc |= put_time(o, "ended_at", x->start_us + (int64_t)x->dur_us);
		rc |= put_int(o, "duration_ms", (int64_t)x->dur_us / 1000);
		rc |= put_int(o, "attempt", x->attempt);
		if (x->written)
			rc |= put_int(o, "runid", (int64_t)x->id);
	}
	if (arr && rc == 0)
		return arr;
	json_decref(arr);
	return NULL;
}

static json_t *job_json(const struct status_src *src, const struct sched_job_view *j, int64_t now)
{
	const struct conf_job *c = j->conf;
	const struct fresh_view fv = j->fresh;
	json_t *sub;
	size_t n_payloads = 0;
	int64_t deb_due = 0;
	bool debouncing = src->triggers && *src->triggers &&
	                  triggers_job_pending(*src->triggers, j->name, &n_payloads, &deb_due);
	char once[64];
	int rc = 0;

	if (c) /* (a removed job has no configuration left to tell) */
		job_kind_once(j->kind, c->command, once, sizeof(once));
	json_t *after = json_array();
	for (size_t i = 0; after && c && i < c->n_after; i++)
		rc |= json_array_append_new(after, json_string(c->after[i]));
	/* a job made in SQL names the database its owner gave (the server's text); HTTP: none */
	const char *db = j->kind == JOB_KIND_HTTP ? NULL : j->database;
	json_t *o =
	    json_pack("{s:s, s:s, s:s*, s:o*, s:s*, s:s*, s:o, s:s*, s:b, s:b, s:s}", "name",
	              j->name, "kind", job_kind_name(j->kind), "plugin", j->plugin, "database",
	              text_json(db), "schedule", j->schedule, "once_under_faults", c ? once : NULL,
	              "after", after, "listen", c ? c->more->notify.listen : NULL, "enabled",
	              j->enabled, "paused", j->paused, "state", job_state(j, debouncing));
	if (!o)
		return NULL;
	/* who runs it and how: a SQL job's owner (file jobs run as the daemon's role), and the
	 * settings an operator asks about first */
	if (c) {
		const struct conf_job_sql *sql = &c->more->sql;
		const struct conf_job_cal *cal = &c->more->cal;
		rc |= put_str(o, "owner", sql->username);
		/* a SQL job: its jobid, and the name its owner gave it (any text; NULL: none) */
		if (sql->username) {
			rc |= put_int(o, "jobid", sql->jobid);
			rc |= put_str(o, "cron_name", sql->cron_name);
		}
		rc |= put_int(o, "retries", c->retries);
		if (c->timeout_ms > 0)
			rc |= put_int(o, "timeout_ms", c->timeout_ms);
		if (cal->spread_ms > 0) { /* the window, and this job's move within it */
			rc |= put_int(o, "spread_ms", cal->spread_ms);
			rc |= put_int(o, "spread_offset_s", c->cron.offset);
		}
		rc |= put_str(o, "skip_dates", cal->skip_dates); /* its calendar's name */
		rc |= put_str(o, "only_dates", cal->only_dates);
		rc |= put_str(o, "overlap", config_overlap_names[c->overlap]);
	}

	int64_t next = INT64_MAX;
	if (j->run.started) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_time(sub, "since", j->run.start_us);
		rc |= json_object_set_new(sub, "elapsed_s",
		                          json_real((double)(now - j->run.start_us) / 1e6));
		rc |= put_str(sub, "database", db);
		if (j->run.backend_pid)
			rc |= put_int(sub, "backend_pid", j->run.backend_pid);
		rc |= put_str(sub, "trigger", j->run.trigger);
		rc |= put_int(sub, "attempt", j->run.attempt);
		rc |= json_object_set_new(o, "running", sub);
	}
	if (j->run.retry_wait) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_int(sub, "attempt", j->run.attempt);
		if (j->retry_armed) {
			rc |= put_time(sub, "next_try", j->retry_at_us);
			next = j->retry_at_us;
		}
		rc |= json_object_set_new(o, "retry", sub);
	}
	if (debouncing) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_int(sub, "payloads", (json_int_t)n_payloads);
		rc |= put_time(sub, "due", deb_due);
		rc |= json_object_set_new(o, "debounce", sub);
		if (deb_due < next)
			next = deb_due;
	}
	if (j->enabled && !j->removed && j->schedule && j->next_fire != CRON_NEVER) {
		int64_t at = j->next_fire * 1000000;
		rc |= put_time(o, "next_scheduled", at);
		/* paused: the instant stays, but nothing fires until resume */
		if (!j->paused && at < next)
			next = at;
	}
	if (next != INT64_MAX)
		rc |= put_time(o, "next_fire", next);

	if (j->last.status[0]) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_str(sub, "status", j->last.status);
		rc |= put_str(sub, "message", j->last.message ? j->last.message : "");
		if (j->last.sqlstate[0])
			rc |= put_str(sub, "sqlstate", j->last.sqlstate);
		rc |= put_str(sub, "trigger", j->last.trigger);
		rc |= put_int(sub, "attempt", j->last.attempt);
		rc |= put_time(sub, "started_at", j->last.start_us);
		rc |= put_time(sub, "ended_at", j->last.end_us);
		rc |= put_int(sub, "duration_ms", (j->last.end_us - j->last.start_us) / 1000);
		if (j->last.runid > 0)
			rc |= put_int(sub, "runid", j->last.runid);
		rc |= json_object_set_new(o, "last_result", sub);
	}
	rc |= json_object_set_new(o, "recent_runs", recent_runs_json(j));
	if (j->last_success_us) {
		rc |= put_time(o, "last_success", j->last_success_us);
		rc |= json_object_set_new(o, "age_s",
		                          json_real((double)(now - j->last_success_us) / 1e6));
	}
	int64_t max_stale = c ? c->more->alerts.max_staleness_ms : 0;
	bool stale = false;
	if (max_stale > 0) {
		rc |= put_int(o, "max_staleness_s", max_stale / 1000);
		/* never succeeded counts as stale only once the daemon has run that long */
		int64_t base = j->last_success_us ? j->last_success_us : src->started_us;
		if (fv.fresh_as_of_us > base)
			base = fv.fresh_as_of_us; /* sources seen unchanged since: still fresh */
		stale = now - base > max_stale * 1000;
	}
	rc |= put_bool(o, "stale", stale);
	if (fv.on)
		rc |= fresh_json(o, &fv);
	rc |= put_int(o, "consecutive_failures", j->consecutive);
	json_t *waiting = json_array();
	for (size_t i = 0; waiting && i < j->n_waiting; i++) {
		const struct sched_waiting *w = &j->waiting[i];
		sub = json_pack("{s:s, s:s, s:i}", "for", sched_wait_names[w->why], "trigger",
		                w->trigger, "attempt", w->attempt);
		if (!sub || json_array_append_new(waiting, sub) < 0) {
			rc = -1;
			break;
		}
		if (w->scheduled_us)
			rc |= put_time(sub, "scheduled_for", w->scheduled_us);
		rc |= put_time(sub, "since", w->since_us);
	}
	rc |= json_object_set_new(o, "waiting", waiting);
	if (rc == 0)
		return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *databases_json(const struct status_src *src)
{
	static struct exec_db_stats st[MAX_DATABASES];
	size_t n = exec_database_stats(src->ex, st, MAX_DATABASES);
	json_t *arr = json_array();
	int rc = 0;
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n && i < MAX_DATABASES; i++) {
		/* reachable: true, false, or null: not known yet (nothing connected to its server)
		 */
		json_t *o = json_pack(
		    "{s:o, s:i, s:I, s:I, s:I, s:I, s:I, s:o}", "name", text_json(st[i].name),
		    "pool", st[i].pool, "open", (json_int_t)st[i].open, "idle",
		    (json_int_t)st[i].idle, "busy", (json_int_t)st[i].busy, "connecting",
		    (json_int_t)st[i].connecting, "waiting", (json_int_t)st[i].waiting, "reachable",
		    st[i].reachable < 0 ? json_null() : json_boolean(st[i].reachable == 1));
		if (!o)
			goto fail;
		if (st[i].reachable == 0 && st[i].last_error)
			rc |= put_str(o, "last_error", st[i].last_error);
		rc |= json_array_append_new(arr, o);
	}
	if (rc == 0)
		return arr;
fail:
	json_decref(arr);
	return NULL;
}

static json_t *history_json(const struct status_src *src, const struct pgc_config *cfg)
{
	struct hist_stats hs = {0};
	char path[4096];
	struct stat sb;

	if (src->hist)
		hist_get_stats(src->hist, &hs);
	int n = cfg ? snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, HIST_SPOOL_FILE) : -1;
	bool have = n > 0 && (size_t)n < sizeof(path) && stat(path, &sb) == 0;
	return json_pack("{s:s*, s:b, s:I, s:I, s:I, s:I, s:b, s:I}", "database",
	                 cfg ? cfg->history_database : NULL, "connected", src->hist && hs.connected,
	                 "pending", (json_int_t)hs.pending, "spool_bytes",
	                 have ? (json_int_t)sb.st_size : 0, "written", (json_int_t)hs.written,
	                 "dropped", (json_int_t)hs.dropped, "backlogged",
	                 src->hist && hs.backlogged, "holds", (json_int_t)hs.holds);
}

static json_t *plugins_json(const struct plugin_registry *reg)
{
	json_t *arr = json_array();
	int rc = 0;
	for (size_t i = 0; arr && reg && i < reg->n_plugins; i++) {
		const struct plugin *p = reg->plugins[i];
		/* the version is the plugin's own text */
		rc |= json_array_append_new(arr, json_pack("{s:s, s:o*, s:s*, s:I}", "name",
		                                           p->name, "version",
		                                           text_json(p->version), "path", p->path,
		                                           "abi_minor", (json_int_t)p->abi_minor));
	}
	if (arr && rc == 0)
		return arr;
	json_decref(arr);
	return NULL;
}

/* The last failures (metrics.h's ring: this process's, and those read back from the history
 * at start), newest first; with ONLY, that job's. */
struct failures_arg {
	json_t *arr;
	const char *only;
	int rc;
};

static void add_failure(void *arg, const char *job, int64_t end_us, int64_t runid,
                        const char *message, const char *sqlstate)
{
	struct failures_arg *fa = arg;
	if (fa->only && strcmp(job, fa->only) != 0)
		return;
	json_t *o = json_object();
	if (!o || json_array_append_new(fa->arr, o) < 0) {
		fa->rc = -1;
		return;
	}
	fa->rc |= put_str(o, "job", job);
	fa->rc |= put_time(o, "ended_at", end_us);
	fa->rc |= put_str(o, "message", message);
	if (sqlstate)
		fa->rc |= put_str(o, "sqlstate", sqlstate);
	if (runid > 0)
		fa->rc |= put_int(o, "runid", runid);
}

static json_t *failures_json(const struct status_src *src, const char *only)
{
	struct failures_arg fa = {.arr = json_array(), .only = only};
	if (fa.arr && src->metrics)
		metrics_each_failure(src->metrics, add_failure, &fa);
	if (fa.arr && fa.rc == 0)
		return fa.arr;
	json_decref(fa.arr);
	return NULL;
}

/* Jobs in configuration order (the scheduler's list is newest first). */
static int jobs_json(const struct status_src *src, json_t *arr, const char *only, int64_t now)
{
	const struct pgc_config *cfg = sched_config(src->sched);
	size_t n = cfg ? cfg->n_jobs : 0;
	for (size_t i = 0; i < n; i++) {
		if (only && strcmp(cfg->jobs[i].name, only) != 0)
			continue;
		struct sched_job_view j;
		if (sched_job_view(src->sched, cfg->jobs[i].name, now, &j) < 0)
			continue;
		json_t *o = job_json(src, &j, now);
		if (!o || json_array_append_new(arr, o) < 0)
			return -ENOMEM;
	}
	return 0;
}

json_t *status_snapshot(const struct status_src *src, const char *job_or_null)
{
	struct sched_view sv;
	sched_view(src->sched, &sv);
	const struct pgc_config *cfg = sv.cfg;
	int64_t now = sv.now_us;
	int rc = 0;

	if (job_or_null) {
		struct sched_job_view j;
		if (sched_job_view(src->sched, job_or_null, now, &j) < 0 || j.removed) {
			errno = ENOENT;
			return NULL;
		}
	}
	json_t *o = json_object(), *jobs = json_array();
	if (!o || !jobs)
		goto fail;
	rc |= put_str(o, "version", PGCROND_VERSION);
	rc |= put_str(o, "instance", src->instance);
	rc |= put_int(o, "pid", (json_int_t)getpid());
	rc |= put_time(o, "started_at", src->started_us);
	rc |= json_object_set_new(o, "uptime_s", json_real((double)(now - src->started_us) / 1e6));
	rc |= put_time(o, "now", now);
	rc |= json_object_update_new(
	    o, json_pack("{s:b, s:I, s:I, s:i, s:o, s:o, s:o}", "draining", sv.draining, "running",
	                 (json_int_t)sv.running, "queued", (json_int_t)sv.queued, "max_running",
	                 sv.max_running, "databases", databases_json(src), "history",
	                 history_json(src, cfg), "plugins", plugins_json(sv.plugins)));
	if (rc != 0)
		goto fail;
	if (src->cluster) {
		/* which instance this is among those sharing the history database */
		struct cluster_stats cs;
		cluster_get_stats(src->cluster, &cs);
		/* peers: the instances' names as the server holds them; alone: no other
		 * instance is live, and this one claims nothing (cluster_lone) */
		json_t *cl = json_pack(
		    "{s:b, s:b, s:I, s:o*, s:b, s:o*}", "connected", cs.connected, "in_recovery",
		    cs.in_recovery, "peers_live", (json_int_t)cs.peers_live, "peers",
		    text_json(cluster_peers(src->cluster)), "alone", cluster_lone(src->cluster),
		    "clock_offset_ms",
		    cs.clock_offset_known ? json_integer(cs.clock_offset_ms) : NULL);
		if (!cl || json_object_set_new(o, "cluster", cl) < 0)
			goto fail;
	}
	json_t *refused = src->refused && *src->refused ? *src->refused : NULL;
	if (!job_or_null &&
	    json_object_set_new(o, "refused", refused ? json_deep_copy(refused) : json_object()) <
	        0)
		goto fail;
	json_t *fails = failures_json(src, job_or_null);
	if (!fails || json_object_set_new(o, "recent_failures", fails) < 0)
		goto fail;
	if (jobs_json(src, jobs, job_or_null, now) < 0)
		goto fail;
	if (json_object_set_new(o, "jobs", jobs) < 0) {
		jobs = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(jobs);
	json_decref(o);
	errno = ENOMEM;
	return NULL;
}

/* ---- the metrics drawn from the status document ---------------------------------------- */

/* OBJ's KEY, a number, or a boolean as 1 or 0 */
static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_boolean(v) ? json_is_true(v) : json_number_value(v);
}

/* The history's samples: NAME (TYPE, with HELP) is its object's FIELD. */
static const struct {
	const char *name, *type, *help, *field;
} hist_gauges[] = {
    {"pgcrond_history_connected", "gauge", "1 while the history database's connection is up.",
     "connected"},
    {"pgcrond_history_spool_records", "gauge",
     "History records waiting to be written (in memory and in the spill file).", "pending"},
    {"pgcrond_history_records_written_total", "counter",
     "History records the database acknowledged.", "written"},
    {"pgcrond_history_records_dropped_total", "counter",
     "History records given up (spill file full, data the database refused).", "dropped"},
    {"pgcrond_history_backlogged", "gauge",
     "1 while new runs are held back: more history records wait than the database takes.",
     "backlogged"},
    {"pgcrond_history_backlog_holds_total", "counter",
     "Times new runs were held back for the history to catch up.", "holds"},
};

/* The gauges of each job, in the order served: NAME with HELP is the job's FIELD (of its
 * object OBJ when not NULL; a boolean is 1 or 0; with STATE, 1 while FIELD is STATE), or with
 * FIELD NULL when its last failure ended (the counters keep it). A job's sample is left out
 * when POSITIVE and it is not > 0, or when the field WHEN (of OBJ) is not > 0. */
static const struct job_gauge {
	const char *name, *help, *obj, *field, *state, *when;
	bool positive;
} job_gauges[] = {
    {"pgcrond_job_last_success_timestamp_seconds",
     "When the job's last successful run ended (also one before this daemon started).", NULL,
     "last_success_unix", NULL, NULL, true},
    {"pgcrond_job_last_failure_timestamp_seconds",
     "When the job's last failed run ended, since this daemon started.", NULL, NULL, NULL, NULL,
     true},
    {"pgcrond_job_next_fire_timestamp_seconds",
     "The job's next scheduled instant; absent when it has none.", NULL, "next_fire_unix", NULL,
     NULL, true},
    {"pgcrond_job_running", "1 while a run of the job is in progress.", NULL, "state", "running",
     NULL, false},
    {"pgcrond_job_queued", "1 while a fire of the job waits for a run slot.", NULL, "state",
     "queued", NULL, false},
    {"pgcrond_job_paused", "1 while the job is paused (pgcrond pause).", NULL, "paused", NULL, NULL,
     false},
    {"pgcrond_job_max_staleness_seconds",
     "The job's max_staleness setting; absent when it has none.", NULL, "max_staleness_s", NULL,
     NULL, true},
    {"pgcrond_job_stale", "1 when the job's last success is older than its max_staleness.", NULL,
     "stale", NULL, "max_staleness_s", false},
    {"pgcrond_job_freshness_seconds", "The job's freshness SLA; absent when it has none.",
     "freshness", "sla_s", NULL, NULL, true},
    {"pgcrond_job_freshness_lag_seconds",
     "Age of the oldest change to the job's sources its relation does not reflect yet (0: up "
     "to date); absent without freshness.",
     "freshness", "lag_s", NULL, "sla_s", false},
};

static void job_gauge(FILE *f, const struct metrics *m, const struct job_gauge *g, const json_t *j,
                      const char *name)
{
	const json_t *o = g->obj ? json_object_get(j, g->obj) : j;
	double x = g->field ? num(o, g->field) : (double)metrics_last_failure_us(m, name) / 1e6;
	const char *state = g->state ? json_string_value(json_object_get(o, g->field)) : NULL;

	if (g->state)
		x = state && strcmp(state, g->state) == 0;
	if ((g->positive && x <= 0) || (g->when && num(o, g->when) <= 0))
		return;
	metrics_sample(f, g->name, "job", name, x);
}

int status_metrics(const struct metrics *m, const json_t *st, FILE *f)
{
	const json_t *jobs = json_object_get(st, "jobs"), *hist = json_object_get(st, "history");
	const json_t *dbs = json_object_get(st, "databases"), *j, *d;
	size_t i, nj = json_array_size(jobs);
	const char **names = calloc(nj + 1, sizeof(*names));

	if (!names)
		return -ENOMEM;
	json_array_foreach(jobs, i, j)
	{
		const char *name = json_string_value(json_object_get(j, "name"));
		names[i] = name ? name : "";
	}
	metrics_head(f, "pgcrond_build_info", "gauge",
	             "The pgcrond version, as a label; always 1.");
	metrics_sample(f, "pgcrond_build_info", "version",
	               json_string_value(json_object_get(st, "version")), 1);
	metrics_head(f, "pgcrond_start_time_seconds", "gauge",
	             "When this daemon started, in seconds since the epoch.");
	metrics_sample(f, "pgcrond_start_time_seconds", NULL, NULL, num(st, "started_at_unix"));
	metrics_head(f, "pgcrond_max_running", "gauge", "The max_running setting: runs at once.");
	metrics_sample(f, "pgcrond_max_running", NULL, NULL, num(st, "max_running"));

	/* the `job` label is pgcrond's name; a SQL job's own name is any text, here once */
	metrics_head(f, "pgcrond_job_info", "gauge",
	             "1 per job: its kind (sql, plugin, http); for a job made in SQL also its "
	             "owner, jobid and the name given to cron.schedule.");
	json_array_foreach(jobs, i, j)
	{
		const char *kind = json_string_value(json_object_get(j, "kind"));
		const char *owner = json_string_value(json_object_get(j, "owner"));
		const char *cron_name = json_string_value(json_object_get(j, "cron_name"));
		fputs("pgcrond_job_info{job=\"", f);
		metrics_label(f, names[i]);
		fputs("\",kind=\"", f);
		metrics_label(f, kind ? kind : "");
		if (owner) {
			fputs("\",owner=\"", f);
			metrics_label(f, owner);
			fprintf(f, "\",jobid=\"%lld\",cron_name=\"",
			        (long long)json_integer_value(json_object_get(j, "jobid")));
			metrics_label(f, cron_name ? cron_name : "");
		}
		fputs("\"} 1\n", f);
	}
	metrics_render_counters(m, names, nj, f);
	for (size_t g = 0; g < sizeof(job_gauges) / sizeof(job_gauges[0]); g++) {
		metrics_head(f, job_gauges[g].name, "gauge", job_gauges[g].help);
		json_array_foreach(jobs, i, j) job_gauge(f, m, &job_gauges[g], j, names[i]);
	}

	metrics_head(f, "pgcrond_database_connections", "gauge",
	             "Open connections of each database's pool, by state.");
	json_array_foreach(dbs, i, d)
	{
		double open = num(d, "open"), idle = num(d, "idle"), busy = num(d, "busy");
		const struct {
			const char *state;
			double n;
		} by[] = {{"connecting", num(d, "connecting")},
		          {"idle", idle},
		          {"busy", busy},
		          /* open and neither idle nor busy: its session is being reset */
		          {"resetting", open - (open < idle + busy ? open : idle + busy)}};
		for (size_t s = 0; s < sizeof(by) / sizeof(by[0]); s++) {
			fputs("pgcrond_database_connections{database=\"", f);
			metrics_label(f, json_string_value(json_object_get(d, "name")));
			fprintf(f, "\",state=\"%s\"} %.17g\n", by[s].state, by[s].n);
		}
	}
	metrics_head(f, "pgcrond_database_pool_size", "gauge",
	             "The pool setting of each database.");
	json_array_foreach(dbs, i, d)
	    metrics_sample(f, "pgcrond_database_pool_size", "database",
	                   json_string_value(json_object_get(d, "name")), num(d, "pool"));
	metrics_head(f, "pgcrond_database_waiting_runs", "gauge",
	             "Runs waiting for a connection of each database.");
	json_array_foreach(dbs, i, d)
	    metrics_sample(f, "pgcrond_database_waiting_runs", "database",
	                   json_string_value(json_object_get(d, "name")), num(d, "waiting"));

	metrics_head(f, "pgcrond_jobs_refused", "gauge",
	             "Jobs made in SQL that the daemon does not run (pgcrond status says why).");
	metrics_sample(f, "pgcrond_jobs_refused", NULL, NULL,
	               (double)json_object_size(json_object_get(st, "refused")));
	bool with_hist = json_string_value(json_object_get(hist, "database")) != NULL;
	for (size_t g = 0; with_hist && g < sizeof(hist_gauges) / sizeof(hist_gauges[0]); g++) {
		metrics_head(f, hist_gauges[g].name, hist_gauges[g].type, hist_gauges[g].help);
		metrics_sample(f, hist_gauges[g].name, NULL, NULL, num(hist, hist_gauges[g].field));
	}
	free(names);
	return ferror(f) ? -EIO : 0;
}
