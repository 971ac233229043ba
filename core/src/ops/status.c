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

static int put_str(json_t *o, const char *key, const char *v)
{
	if (!v)
		return 0;
	json_t *s = json_string(v);
	if (!s) { /* not UTF-8: a server in another encoding */
		char *copy = text_utf8_fix_dup(v);
		s = copy ? json_string(copy) : NULL;
		free(copy);
	}
	return json_object_set_new(o, key, s);
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
	if (j->run_started)
		return "running";
	if (j->paused)
		return "paused";
	if (j->run_retry_wait)
		return "retrying";
	if (j->run_cluster_wait)
		return "waiting_instance"; /* for its run on another instance (overlap) */
	if (j->has_run)
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
		rc |= put_time(o, "ended_at", x->end_us);
		rc |= put_int(o, "duration_ms", (x->end_us - x->start_us) / 1000);
		rc |= put_int(o, "attempt", x->attempt);
		if (x->runid > 0)
			rc |= put_int(o, "runid", x->runid);
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
	json_t *o = json_object(), *sub;
	size_t n_payloads = 0;
	int64_t deb_due = 0;
	bool debouncing = src->triggers && *src->triggers &&
	                  triggers_job_pending(*src->triggers, j->name, &n_payloads, &deb_due);
	int rc = 0;

	if (!o)
		return NULL;
	rc |= put_str(o, "name", j->name);
	rc |= put_str(o, "kind", job_kind_name(j->kind));
	rc |= put_str(o, "plugin", j->plugin);
	rc |= put_str(o, "database", j->database);
	rc |= put_str(o, "schedule", j->schedule);
	char once[64];
	if (c) /* (a removed job has no configuration left to tell) */
		job_kind_once(j->kind, c->command, once, sizeof(once));
	rc |= put_str(o, "once_under_faults", c ? once : NULL);
	json_t *after = json_array();
	for (size_t i = 0; after && c && i < c->n_after; i++)
		rc |= json_array_append_new(after, json_string(c->after[i]));
	rc |= json_object_set_new(o, "after", after);
	rc |= put_str(o, "listen", c ? c->listen : NULL);
	rc |= put_bool(o, "enabled", j->enabled);
	rc |= put_bool(o, "paused", j->paused);
	rc |= put_str(o, "state", job_state(j, debouncing));
	/* who runs it and how: a SQL job's owner (file jobs run as the daemon's role), and the
	 * settings an operator asks about first */
	if (c) {
		static const char *const overlaps[] = {"skip", "queue", "replace"};
		rc |= put_str(o, "owner", c->username);
		/* a SQL job: its jobid, and the name its owner gave it (any text; NULL: none) */
		if (c->username) {
			rc |= put_int(o, "jobid", c->jobid);
			rc |= put_str(o, "cron_name", c->cron_name);
		}
		rc |= put_int(o, "retries", c->retries);
		if (c->timeout_ms > 0)
			rc |= put_int(o, "timeout_ms", c->timeout_ms);
		rc |=
		    put_str(o, "overlap", (unsigned)c->overlap < 3 ? overlaps[c->overlap] : "skip");
	}

	int64_t next = INT64_MAX;
	if (j->run_started) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_time(sub, "since", j->run_start_us);
		rc |= json_object_set_new(sub, "elapsed_s",
		                          json_real((double)(now - j->run_start_us) / 1e6));
		rc |= put_str(sub, "database", j->database);
		if (j->run_backend_pid)
			rc |= put_int(sub, "backend_pid", j->run_backend_pid);
		rc |= put_str(sub, "trigger", j->run_trigger);
		rc |= put_int(sub, "attempt", j->run_attempt);
		rc |= json_object_set_new(o, "running", sub);
	}
	if (j->run_retry_wait) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_int(sub, "attempt", j->run_attempt);
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

	if (j->last_status[0]) {
		if (!(sub = json_object()))
			goto fail;
		rc |= put_str(sub, "status", j->last_status);
		rc |= put_str(sub, "message", j->last_message ? j->last_message : "");
		if (j->last_sqlstate[0])
			rc |= put_str(sub, "sqlstate", j->last_sqlstate);
		rc |= put_str(sub, "trigger", j->last_trigger);
		rc |= put_int(sub, "attempt", j->last_attempt);
		rc |= put_time(sub, "started_at", j->last_start_us);
		rc |= put_time(sub, "ended_at", j->last_end_us);
		rc |= put_int(sub, "duration_ms", (j->last_end_us - j->last_start_us) / 1000);
		if (j->last_runid > 0)
			rc |= put_int(sub, "runid", j->last_runid);
		rc |= json_object_set_new(o, "last_result", sub);
	}
	rc |= json_object_set_new(o, "recent_runs", recent_runs_json(j));
	if (j->last_success_us) {
		rc |= put_time(o, "last_success", j->last_success_us);
		rc |= json_object_set_new(o, "age_s",
		                          json_real((double)(now - j->last_success_us) / 1e6));
	}
	int64_t max_stale = c ? c->max_staleness_ms : 0;
	if (max_stale > 0) {
		rc |= put_int(o, "max_staleness_s", max_stale / 1000);
		/* never succeeded counts as stale only once the daemon has run that long */
		int64_t base = j->last_success_us ? j->last_success_us : src->started_us;
		if (fv.fresh_as_of_us > base)
			base = fv.fresh_as_of_us; /* sources seen unchanged since: still fresh */
		rc |= put_bool(o, "stale", now - base > max_stale * 1000);
	} else {
		rc |= put_bool(o, "stale", false);
	}
	if (fv.on)
		rc |= fresh_json(o, &fv);
	rc |= put_int(o, "consecutive_failures", j->consecutive);
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
		json_t *o = json_object();
		if (!o)
			goto fail;
		rc |= put_str(o, "name", st[i].name);
		rc |= put_int(o, "pool", st[i].pool);
		rc |= put_int(o, "open", (json_int_t)st[i].open);
		rc |= put_int(o, "idle", (json_int_t)st[i].idle);
		rc |= put_int(o, "busy", (json_int_t)st[i].busy);
		rc |= put_int(o, "connecting", (json_int_t)st[i].connecting);
		rc |= put_int(o, "waiting", (json_int_t)st[i].waiting);
		/* true, false, or null: not known yet (nothing connected to its server) */
		if (st[i].reachable < 0)
			rc |= json_object_set_new(o, "reachable", json_null());
		else
			rc |= put_bool(o, "reachable", st[i].reachable == 1);
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
	json_t *o = json_object();
	struct hist_stats hs = {0};
	char path[4096];
	struct stat sb;
	int rc = 0;

	if (!o)
		return NULL;
	if (src->hist)
		hist_get_stats(src->hist, &hs);
	rc |= put_str(o, "database", cfg ? cfg->history_database : NULL);
	rc |= put_bool(o, "connected", src->hist && hs.connected);
	rc |= put_int(o, "pending", (json_int_t)hs.pending);
	int n = cfg ? snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, HIST_SPOOL_FILE) : -1;
	bool have = n > 0 && (size_t)n < sizeof(path) && stat(path, &sb) == 0;
	rc |= put_int(o, "spool_bytes", have ? (json_int_t)sb.st_size : 0);
	rc |= put_int(o, "written", (json_int_t)hs.written);
	rc |= put_int(o, "dropped", (json_int_t)hs.dropped);
	rc |= put_bool(o, "backlogged", src->hist && hs.backlogged);
	rc |= put_int(o, "holds", (json_int_t)hs.holds);
	if (rc == 0)
		return o;
	json_decref(o);
	return NULL;
}

static json_t *plugins_json(const struct plugin_registry *reg)
{
	json_t *arr = json_array();
	int rc = 0;
	for (size_t i = 0; arr && reg && i < reg->n_plugins; i++) {
		const struct plugin *p = reg->plugins[i];
		json_t *o = json_object();
		if (!o) {
			rc = -1;
			break;
		}
		rc |= put_str(o, "name", p->name);
		rc |= put_str(o, "version", p->version);
		rc |= put_str(o, "path", p->path);
		rc |= put_int(o, "abi_minor", p->abi_minor);
		rc |= json_array_append_new(arr, o);
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
	rc |= put_bool(o, "draining", sv.draining);
	rc |= put_int(o, "running", (json_int_t)sv.running);
	rc |= put_int(o, "queued", (json_int_t)sv.queued);
	rc |= put_int(o, "max_running", sv.max_running);
	json_t *dbs = databases_json(src), *hist = history_json(src, cfg),
	       *plugins = plugins_json(sv.plugins);
	rc |= json_object_set_new(o, "databases", dbs);
	rc |= json_object_set_new(o, "history", hist);
	rc |= json_object_set_new(o, "plugins", plugins);
	if (!dbs || !hist || !plugins || rc != 0)
		goto fail;
	if (src->cluster) {
		/* which instance this is among those sharing the history database */
		struct cluster_stats cs;
		cluster_get_stats(src->cluster, &cs);
		json_t *cl = json_object();
		if (!cl || json_object_set_new(o, "cluster", cl) < 0)
			goto fail;
		rc |= put_bool(cl, "connected", cs.connected);
		rc |= put_bool(cl, "in_recovery", cs.in_recovery);
		rc |= put_int(cl, "peers_live", (json_int_t)cs.peers_live);
		rc |= put_str(cl, "peers", cluster_peers(src->cluster));
		/* no other instance is live, and this one claims nothing (cluster_lone) */
		rc |= put_bool(cl, "alone", cluster_lone(src->cluster));
		if (cs.clock_offset_known)
			rc |= put_int(cl, "clock_offset_ms", (json_int_t)cs.clock_offset_ms);
		if (rc != 0)
			goto fail;
	}
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
