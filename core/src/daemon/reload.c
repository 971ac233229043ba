/* Configurations built off the event loop (reload.h), in three steps: the parse and the merge
 * with the SQL jobs on a background job, the plugins on the loop, then the job graph, the zone
 * and the diff on a background job again. Each background step touches only the build's own
 * data and what reload.h says stays put meanwhile; nothing is logged from it (the loop logs
 * the result: reload_log_diff). */
#include "reload.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "bgwork.h"
#include "caltables.h"
#include "clock.h"
#include "jobgraph.h"
#include "log.h"
#include "plugin.h"
#include "sqljobs.h"

struct reloader {
	struct bgwork_job job; /* first: the step under way */
	struct bgwork *bg;
	reload_done_fn fn;
	void *arg;
	bool busy, freeing;
	int step; /* the background step under way: 1 or 2 */
	/* the build's input, as reloader_start was given it (SQL is a copy) */
	const char *path;
	const struct pgc_config *files, *old;
	struct sqljobs *sql;
	struct config_table_dates *dates; /* the table calendars' (caltables_snapshot) */
	size_t n_dates;
	struct reload_result res;
};

/* Step 1 (background): read the files if asked (those FILES read with the same text are not
 * parsed again), merge the SQL jobs and the table calendars' DATES in. */
static void parse_merge(struct reload_result *res, const char *path, const struct pgc_config *files,
                        const struct sqljobs *sql, const struct config_table_dates *dates,
                        size_t n_dates)
{
	if (path) {
		res->rc = config_load_again(path, files, &res->files, &res->dl);
		if (res->rc < 0)
			return;
		res->files_same = config_same_files(files, res->files);
		files = res->files;
	}
	/* a merge without SQL jobs takes a reference on FILES: the build's own, or the files in
	 * force, which the loop neither refs nor frees until this build is delivered */
	res->rc = sqljobs_merge(sql, files, &res->cfg, &res->sql_dl);
	if (res->rc == 0)
		res->rc = config_set_table_dates(&res->cfg, dates, n_dates);
}

/* Step 2 (the loop): load the plugins and let them check their jobs. */
static void check_plugins(struct reload_result *res)
{
	int64_t t0 = clock_mono_us();
	res->rc = plugin_check_config(res->cfg, &res->plugins, &res->dl);
	res->loop_ms += (double)(clock_mono_us() - t0) / 1e3;
}

/* Step 3 (background): the job graph must be acyclic (the cycle is named in DL); open the
 * zone; list what changed from OLD; with a REGISTRY (a history database, so SQL jobs), make
 * its first part of the files read. */
static void graph_zone_diff(struct reload_result *res, const struct pgc_config *old, bool registry)
{
	char err[256];

	/* kept: the scheduler sets the jobs' edges from it (sched_apply_start) */
	res->rc = jobgraph_build(res->cfg, res->plugins, &res->graph, &res->dl);
	if (res->rc < 0)
		return;
	res->rc = cron_tz_open(res->cfg->timezone, &res->tz, err, sizeof(err));
	if (res->rc < 0) {
		diag_add(&res->dl, res->cfg->file, 0, "timezone: %s", err);
		return;
	}
	if (old)
		res->diff_rc = config_diff_jobs(old, res->cfg, &res->diff);
	if (res->files && registry && !res->files_same)
		res->first_part = sqljobs_first_part(res->files);
}

/* What a build made of the new configuration: dropped after a failed step (only the problems
 * are kept), and with the rest by reload_result_clear. */
static void drop_built(struct reload_result *res)
{
	plugin_registry_free(&res->plugins);
	cron_tz_free(&res->tz);
	config_free(&res->cfg);
	jobgraph_free(&res->graph);
	config_diff_free(&res->diff);
	free(res->first_part);
	res->first_part = NULL;
}

/* The three steps here. */
static void build_here(struct reload_result *res, const char *path, const struct pgc_config *files,
                       const struct sqljobs *sql, const struct config_table_dates *dates,
                       size_t n_dates, const struct pgc_config *old)
{
	memset(res, 0, sizeof(*res));
	parse_merge(res, path, files, sql, dates, n_dates);
	if (res->rc == 0)
		check_plugins(res);
	if (res->rc == 0)
		graph_zone_diff(res, old, sql != NULL);
}

int reload_build(const char *path, const struct pgc_config *files, const struct sqljobs *sql,
                 const struct caltables *cal, const struct pgc_config *old,
                 struct reload_result *res)
{
	struct config_table_dates *dates;
	size_t n_dates;

	memset(res, 0, sizeof(*res));
	res->rc = caltables_snapshot(cal, &dates, &n_dates);
	if (res->rc == 0)
		build_here(res, path, files, sql, dates, n_dates, old);
	free(dates);
	if (res->rc < 0)
		drop_built(res);
	return res->rc;
}

void reload_result_clear(struct reload_result *res)
{
	drop_built(res);
	config_free(&res->files);
	diag_clear(&res->dl);
	diag_clear(&res->sql_dl);
	memset(res, 0, sizeof(*res));
}

/* ---- the background steps ------------------------------------------------------------ */

static void step_work(struct bgwork_job *job)
{
	struct reloader *l = (struct reloader *)job;

	if (l->step == 1)
		parse_merge(&l->res, l->path, l->files, l->sql, l->dates, l->n_dates);
	else
		graph_zone_diff(&l->res, l->old, l->sql != NULL);
}

/* The build is over: hand the result over, and be ready for the next build (FN may start
 * it). */
static void deliver(struct reloader *l)
{
	struct reload_result res = l->res;

	if (res.rc < 0)
		drop_built(&res);
	memset(&l->res, 0, sizeof(l->res));
	sqljobs_free(&l->sql);
	free(l->dates);
	l->dates = NULL;
	l->busy = false;
	l->fn(l->arg, &res);
	reload_result_clear(&res);
}

static void step_done(struct bgwork_job *job, bool ran)
{
	struct reloader *l = (struct reloader *)job;

	if (l->freeing)
		return; /* reloader_free drops the result */
	if (!ran) {     /* only bgwork_free leaves a step unrun, and that is reloader_free's */
		l->res.rc = -ECANCELED;
		deliver(l);
		return;
	}
	if (l->step == 1 && l->res.rc == 0) {
		check_plugins(&l->res);
		if (l->res.rc == 0) {
			l->step = 2;
			if (bgwork_submit(l->bg, &l->job) == 0)
				return;
			graph_zone_diff(&l->res, l->old, l->sql != NULL); /* no worker: here */
		}
	}
	deliver(l);
}

int reloader_new(struct event_base *base, reload_done_fn fn, void *arg, struct reloader **out)
{
	struct reloader *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	int rc = bgwork_new(base, 1, &l->bg);
	if (rc < 0) {
		free(l);
		return rc;
	}
	l->fn = fn;
	l->arg = arg;
	l->job.work = step_work;
	l->job.done = step_done;
	*out = l;
	return 0;
}

bool reloader_busy(const struct reloader *l)
{
	return l->busy;
}

int reloader_start(struct reloader *l, const char *path, const struct pgc_config *files,
                   const struct sqljobs *sql, const struct caltables *cal,
                   const struct pgc_config *old)
{
	if (l->busy)
		return -EBUSY;
	int rc = sqljobs_copy(sql, &l->sql);
	if (rc == 0 && (rc = caltables_snapshot(cal, &l->dates, &l->n_dates)) < 0)
		sqljobs_free(&l->sql);
	if (rc < 0)
		return rc;
	memset(&l->res, 0, sizeof(l->res));
	l->path = path;
	l->files = files;
	l->old = old;
	l->step = 1;
	l->busy = true;
	if (bgwork_submit(l->bg, &l->job) == 0)
		return 0;
	/* no worker: the whole build here, on the loop */
	build_here(&l->res, path, files, l->sql, l->dates, l->n_dates, old);
	deliver(l);
	return 0;
}

/* A configuration to free off the loop. */
struct disposal {
	struct bgwork_job job; /* first */
	struct pgc_config *cfg;
};

static void dispose_work(struct bgwork_job *job)
{
	struct disposal *w = (struct disposal *)job;
	/* the last owner (or none: a trim only): nothing on the loop refers to it any more */
	config_free(&w->cfg);
	malloc_trim(0); /* its pages go back (100,000 jobs: 26 MB) */
}

static void dispose_done(struct bgwork_job *job, bool ran)
{
	struct disposal *w = (struct disposal *)job;
	config_free(&w->cfg); /* not run (reloader_free): here */
	free(w);
}

void reloader_dispose(struct reloader *l, struct pgc_config **cfg)
{
	if (!*cfg)
		return;
	if (!l || l->freeing) {
		config_free(cfg);
		return;
	}
	/* another owner keeps it: a count goes down, and the pages of what the swap freed on
	 * the loop still go back (the job graph, the diff: 3 MB at 100,000 jobs) */
	if ((*cfg)->extra_refs > 0)
		config_free(cfg);
	struct disposal *w = calloc(1, sizeof(*w));
	if (w) {
		w->job.work = dispose_work;
		w->job.done = dispose_done;
		w->cfg = *cfg;
		if (bgwork_submit(l->bg, &w->job) == 0) {
			*cfg = NULL;
			return;
		}
		free(w);
	}
	config_free(cfg);
	malloc_trim(0);
}

void reloader_free(struct reloader **lp)
{
	struct reloader *l = *lp;

	if (!l)
		return;
	*lp = NULL;
	l->freeing = true;
	bgwork_free(&l->bg); /* waits for a step under way */
	reload_result_clear(&l->res);
	sqljobs_free(&l->sql);
	free(l->dates);
	free(l);
}

static const char *const merge_label[] = {"reload", "sql jobs", "table calendars",
                                          "sql jobs and table calendars"};
static const char *const merge_what[] = {"configuration reloaded", "jobs made in SQL applied",
                                         "table calendars' dates applied",
                                         "jobs made in SQL and table calendars' dates applied"};

const char *reload_label(unsigned merging)
{
	return merge_label[merging];
}

void reload_log_diff(const struct reload_result *r, const struct pgc_config *cfg, unsigned merging)
{
	enum { MAX_LINES = 50 };
	const struct config_diff *diff = &r->diff;
	const char *what = merge_what[merging], *label = merge_label[merging];

	if (r->diff_rc < 0) {
		log_notice("%s: %zu job(s) (out of memory listing the changes)", what, cfg->n_jobs);
		return;
	}
	for (size_t i = 0; i < diff->n && i < MAX_LINES; i++)
		log_notice("%s: %s", label, diff->lines[i]);
	if (diff->n > MAX_LINES)
		log_notice("%s: ... and %zu more job change(s)", label, diff->n - MAX_LINES);
	if (merging && diff->n == 0)
		log_info("%s: %zu job(s); nothing changed", what, cfg->n_jobs);
	else
		log_notice("%s: %zu job(s); %zu added, %zu changed, %zu removed", what, cfg->n_jobs,
		           diff->added, diff->changed, diff->removed);
}
