/* The daemon: config, plugins, history, executor and scheduler wired on one loop, signals. */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "caltables.h"
#include "clock.h"
#include "cluster.h"
#include "coord.h"
#include "config.h"
#include "config_diff.h"
#include "ctl.h"
#include "cron.h"
#include "exec.h"
#include "history.h"
#include "ownsess.h"
#include "http.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "reload.h"
#include "sched.h"
#include "sdnotify.h"
#include "status.h"
#include "text.h"
#include "pgnet.h"
#include "sqljobs.h"
#include "triggers.h"

static const int signals[] = {SIGHUP, SIGTERM, SIGINT}; /* the daemon's (signal_cb) */
#define N_SIGNALS (sizeof(signals) / sizeof(signals[0]))

/* A SIGHUP's reload, beside RELOAD_MERGE_*: the files read again (those unchanged are not
 * parsed again), merged with what the databases hold. */
#define RELOAD_FILES 4u

struct daemon {
	const char *config_path;
	struct event_base *base;
	struct pgc_config *cfg;   /* in force: the file jobs and the SQL jobs */
	struct pgc_config *files; /* as loaded from the files, for merging SQL jobs again */
	struct {
		struct sqljobs *sql;   /* the SQL jobs; NULL without a history database */
		struct caltables *cal; /* the table calendars' reads (caltables.h) */
		bool sql_started;      /* the SQL jobs' @reboot runs were started */
		json_t *refused;       /* the SQL jobs left out, and why (sqljobs_note_refused) */
	} db;                          /* what the databases merge onto the files */
	cron_tz *tz;
	struct plugin_registry *plugins;
	struct exec *ex;
	struct hist *hist;
	struct sched *sched;
	struct triggers *triggers;
	struct alerter *alerts;
	struct httpc *httpc; /* HTTP jobs' and webhooks' client (httpc.h) */
	struct pgnet *pgnet; /* pg_net's queue in the history database (pgnet.h) */
	struct cluster *cluster;
	struct coord *coord; /* pending work, overlap and pauses across instances (coord.h) */
	char instance[128];
	struct event sig[N_SIGNALS], watchdog; /* signals[]'s; systemd's watchdog */
	bool stopping;
	bool refused;      /* another live instance has our name: exit EX_CONFIG */
	bool cluster_held; /* cluster_busy held unlocks back: runs_drained wakes it */
	struct {           /* what operators see and ask (ops/) */
		struct status_src status; /* the live state's sources (status.h) */
		struct ctl *ctl;          /* the control socket (ctl.h); NULL if not open */
		struct metrics *metrics;
		struct http *http; /* NULL: no http group */
	} ops;
	struct { /* new configurations, built off the loop (reload.h), put in force */
		struct reloader *loader;
		unsigned merging; /* the build under way merges what the databases changed only
		                     (RELOAD_MERGE_*, its log lines' label); 0: a SIGHUP's reload */
		unsigned again;   /* what came during a build, for after it (rebuild's WHAT) */
		/* a configuration being put in force, the jobs a slice a turn (install_begin) */
		struct reload_result swap;
		bool swapping;
		int64_t swap_begin_us; /* how long its first turn held the loop */
	} reload;
};

/* http_client's settings for the client (httpc.h) */
static struct httpc_opts httpc_opts_of(const struct pgc_config *cfg)
{
	const struct conf_http_client *h = &cfg->http_client;
	return (struct httpc_opts){.ca_file = h->ca_file,
	                           .max_concurrent = h->max_concurrent,
	                           .timeout_ms = h->timeout_ms,
	                           .connect_timeout_ms = h->connect_timeout_ms,
	                           .max_request = h->max_request,
	                           .max_response = h->max_response,
	                           .max_redirects = h->max_redirects};
}

/* The jobs paused with `pgcrond pause` stay paused across a restart (ctl.h). */
static int load_paused(struct daemon *d)
{
	char **names = NULL;
	size_t n = 0;
	int rc = ctl_load_paused(d->cfg->state_dir, &names, &n);
	if (rc < 0) {
		log_error("cannot read the paused jobs from %s/%s: %s; no job is paused",
		          d->cfg->state_dir, CTL_PAUSED_FILE, strerror(-rc));
		return rc == -ENOMEM ? rc : 0;
	}
	rc = sched_set_paused(d->sched, (const char *const *)names, n);
	for (size_t i = 0; i < n && rc == 0; i++)
		log_notice("job %s is paused ('pgcrond resume %s' resumes it)", names[i], names[i]);
	text_free_list(names, n);
	return rc;
}

static void open_ctl(struct daemon *d)
{
	char err[512];
	if (ctl_open(d->base, d->cfg->state_dir, &d->ops.status, &d->ops.ctl, err, sizeof(err)) < 0)
		log_error(
		    "no control socket (pgcrond status, pause, resume and trigger --wait will "
		    "not reach this daemon): %s",
		    err);
}

/* Hand the databases of CFG to the executor (adds, updates, and forgets removed ones). */
static int apply_databases(struct exec *ex, const struct pgc_config *cfg)
{
	const char **names = calloc(cfg->n_databases ? cfg->n_databases : 1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	int rc = 0;
	exec_set_connection_check(ex, cfg->connection_check_ms);
	ownsess_set_check(cfg->connection_check_ms);
	for (size_t i = 0; i < cfg->n_databases && rc == 0; i++) {
		const struct conf_database *db = &cfg->databases[i];
		names[i] = db->name;
		rc = exec_set_database(ex, db->name, db->conninfo, db->pool, db->idle_timeout_ms);
	}
	if (rc == 0)
		exec_retain_databases(ex, names, cfg->n_databases);
	free(names);
	return rc;
}

/* Which code runs the plugin jobs: each plugin's version and file. */
static void log_plugins(const struct plugin_registry *reg)
{
	for (size_t i = 0; reg && i < reg->n_plugins; i++)
		log_info("plugin %s %s (%s)", reg->plugins[i]->name, reg->plugins[i]->version,
		         reg->plugins[i]->path);
}

static void apply_log_level(const struct pgc_config *cfg)
{
	enum log_level lvl;
	if (cfg->log_level && log_level_parse(cfg->log_level, &lvl))
		log_set_level(lvl);
}

/* How many of FILES' job files a reload parsed: the others' text had not changed, and their
 * jobs were taken as they were (config_load_again). */
static void log_files_parsed(const struct pgc_config *files)
{
	size_t taken = 0;
	for (size_t i = 0; i < files->n_job_files; i++)
		taken += files->job_files[i].taken;
	log_info("reload: %zu of %zu job file(s) parsed; the other %zu unchanged",
	         files->n_job_files - taken, files->n_job_files, taken);
}

static void rebuild(struct daemon *d, unsigned what);
static void installed(void *arg, int rc);

/* Out of memory half-way: the scheduler may already point into the new configuration, so it
 * is kept alive (leaked) rather than freed under it. */
static void swap_failed(struct daemon *d)
{
	log_error("reload failed: out of memory; restart pgcrond");
	d->reload.swap.cfg = NULL; /* leaked on purpose: possibly in use */
	d->reload.swap.plugins = NULL;
	d->reload.swap.tz = NULL;
	reload_result_clear(&d->reload.swap);
}

/* Put the built configuration R in force (its FILES too, after a reload), taking it out of
 * R: what applies to the whole configuration now, the jobs in slices of a loop turn
 * (sched_apply_start), then installed(). False if it ended here. */
static bool install_begin(struct daemon *d, struct reload_result *r)
{
	const char *old_h = d->cfg->history_database, *new_h = r->cfg->history_database;
	if ((old_h == NULL) != (new_h == NULL) || (old_h && strcmp(old_h, new_h) != 0))
		log_warning(
		    "history.database changed; the history keeps using \"%s\" until pgcrond "
		    "restarts",
		    old_h ? old_h : "(none)");
	const char *old_i = d->cfg->instance, *new_i = r->cfg->instance;
	if ((old_i == NULL) != (new_i == NULL) || (old_i && strcmp(old_i, new_i) != 0))
		log_warning("instance changed; this daemon stays instance \"%s\" until pgcrond "
		            "restarts",
		            d->instance);
	d->reload.swap = *r;
	memset(r, 0, sizeof(*r));
	r = &d->reload.swap;
	struct sched_apply_in in = {.cfg = r->cfg,
	                            .tz = r->tz,
	                            .plugins = r->plugins,
	                            .graph = &r->graph,
	                            .old = d->cfg,
	                            .gone = r->diff_rc == 0 ? r->diff.gone : NULL,
	                            .n_gone = r->diff.removed};
	if (apply_databases(d->ex, r->cfg) < 0 ||
	    sched_apply_start(d->sched, &in, installed, d) < 0) {
		swap_failed(d);
		return false;
	}
	d->reload.swapping = true;
	return true;
}

/* The configuration being put in force is (DONE after the slices of the jobs). */
static void install_end(struct daemon *d)
{
	struct reload_result *r = &d->reload.swap;
	struct pgc_config *files = r->files, *cfg = r->cfg;
	struct plugin_registry *plugins = r->plugins;
	cron_tz *tz = r->tz;

	if (!d->stopping && d->triggers && triggers_apply(d->triggers, cfg) < 0) {
		swap_failed(d);
		return;
	}
	r->files = r->cfg = NULL;
	r->plugins = NULL;
	r->tz = NULL;
	struct pgc_config *old_files = NULL, *old_cfg = d->cfg;
	if (files) {
		old_files = d->files;
		d->files = files;
		/* the registry follows the reload */
		sqljobs_record_files_made(d->db.sql, files, r->first_part, r->files_same);
		r->first_part = NULL;
		caltables_apply(d->db.cal, cfg); /* read again at a reload */
	}
	d->cfg = cfg;
	if (!d->stopping) {
		apply_log_level(cfg);
		log_plugins(plugins);
		struct httpc_opts ho = httpc_opts_of(cfg);
		if (httpc_configure(d->httpc, &ho) < 0)
			log_error("out of memory applying http_client; its old settings stay");
		if (d->pgnet)
			pgnet_configure(d->pgnet, cfg->http_client.pg_net_max_response);
		alert_reconfigure(d->alerts, cfg);
		/* the names sorted off the loop (config_diff.h) */
		if (cluster_set_jobs(d->cluster, cfg, &r->diff.by_name) < 0)
			log_warning("cluster: out of memory publishing the jobs");
		http_apply(d->ops.http, cfg);
		reload_log_diff(r, cfg, d->reload.merging);
		if (files)
			log_files_parsed(files);
	}
	/* Swap: the scheduler copied what running runs need, so the old config can go, freed
	 * off the loop with its pages given back (100,000 jobs: 26 MB) */
	reloader_dispose(d->reload.loader, &old_files);
	reloader_dispose(d->reload.loader, &old_cfg);
	plugin_registry_free(&d->plugins);
	cron_tz_free(&d->tz);
	d->plugins = plugins;
	d->tz = tz;
	reload_result_clear(r);
}

/* What follows a build put in force (or refused). PLUGINS_MS and SWAP: how long the loop
 * was held, for the debug line. */
static void after_install(struct daemon *d, double plugins_ms, const struct sched_apply_stats *swap,
                          int64_t first_us, int64_t last_us)
{
	if (d->reload.merging & RELOAD_MERGE_SQL) {
		/* The first read after the start: SQL jobs on @reboot (@restart) run now, as
		 * pg_cron runs them when it starts (file jobs' ran when the files were applied). */
		for (size_t i = 0; !d->db.sql_started && i < d->cfg->n_jobs; i++) {
			const struct conf_job *j = &d->cfg->jobs[i];
			if (j->more->sql.username && j->enabled && j->schedule &&
			    j->cron.kind == CRON_REBOOT &&
			    sched_trigger(d->sched, j->name, TRIGGER_REBOOT, false) < 0)
				log_warning("job \"%s\" (@reboot) could not be started", j->name);
		}
		d->db.sql_started = true;
	} else {
		sqljobs_refresh(d->db.sql);
		sdnotify_status("%zu job(s) scheduled", d->cfg->n_jobs);
		sdnotify_ready();
	}
	/* how long the loop was held: the plugins' checks, then this swap, a slice of the jobs
	 * a turn (bench_scale reads it; docs/scaling.md) */
	log_debug("%s: the loop spent %.2f ms on the plugins and %.2f ms on the swap, in %u "
	          "turn(s) of at most %.2f ms and %zu job(s); the first %.2f ms, the last %.2f ms",
	          reload_label(d->reload.merging), plugins_ms, swap->total_us / 1000.0, swap->turns,
	          swap->longest_us / 1000.0, swap->most_jobs, first_us / 1000.0, last_us / 1000.0);
	unsigned again = d->reload.again;
	d->reload.again = 0;
	if (again) /* a reload merges the databases' as they are then */
		rebuild(d, again & RELOAD_FILES ? RELOAD_FILES : again);
}

/* The turns that held the loop for a swap: the first (BEGIN_US), the scheduler's slices, the
 * last (END_US). */
static void swap_stats(const struct sched *s, int64_t begin_us, int64_t end_us,
                       struct sched_apply_stats *out)
{
	sched_apply_stats(s, out);
	out->turns += 2;
	out->total_us += begin_us + end_us;
	if (begin_us > out->longest_us)
		out->longest_us = begin_us;
	if (end_us > out->longest_us)
		out->longest_us = end_us;
}

/* The scheduler has every job on the new configuration (sched.h): the rest of the swap. */
static void installed(void *arg, int rc)
{
	struct daemon *d = arg;
	int64_t t0 = clock_mono_us();
	double plugins_ms = d->reload.swap.loop_ms;

	d->reload.swapping = false;
	if (rc < 0)
		swap_failed(d);
	else
		install_end(d);
	if (d->stopping)
		return;
	struct sched_apply_stats st;
	int64_t last_us = clock_mono_us() - t0;
	swap_stats(d->sched, d->reload.swap_begin_us, last_us, &st);
	after_install(d, plugins_ms, &st, d->reload.swap_begin_us, last_us);
}

/* A build is done (reload.h): put it in force, then start the build asked for meanwhile. */
static void built(void *arg, struct reload_result *r)
{
	struct daemon *d = arg;
	int64_t t0 = clock_mono_us();

	if (d->stopping)
		return;
	if (r->rc == 0) /* the jobs made in SQL it leaves out, and why */
		sqljobs_note_refused(d->db.sql, &r->sql_dl, &d->db.refused);
	if (r->rc < 0) {
		if (d->reload.merging)
			log_error("%s: cannot be applied; keeping what was in force",
			          reload_label(d->reload.merging));
		else
			log_error("reload failed; keeping the previous configuration");
		char line[8192];
		for (size_t i = 0; i < r->dl.n; i++) /* as pgcrond check says them */
			log_error("%s", diag_format(&r->dl.items[i], line, sizeof(line)));
	} else {
		double plugins_ms = r->loop_ms;
		if (install_begin(d, r)) {
			d->reload.swap_begin_us = clock_mono_us() - t0;
			return; /* installed() goes on */
		}
		r->loop_ms = plugins_ms;
	}
	struct sched_apply_stats st = {.turns = 1, .total_us = clock_mono_us() - t0};
	st.longest_us = st.total_us;
	after_install(d, r->loop_ms, &st, st.total_us, 0);
}

/* Build the configuration from PATH (NULL: FILES, the files in force; else FILES' unchanged
 * files are taken again) and the jobs made in SQL: in the background, or, without a
 * background job, here on the loop. */
static void build(struct daemon *d, const char *path, const struct pgc_config *files)
{
	if (d->reload.loader &&
	    reloader_start(d->reload.loader, path, files, d->db.sql, d->db.cal, d->cfg) == 0)
		return; /* built() comes through the loop */
	struct reload_result r;
	reload_build(path, files, d->db.sql, d->db.cal, d->cfg, &r);
	built(d, &r);
	reload_result_clear(&r);
}

/* Build the configuration again: WHAT is RELOAD_FILES, or what changed as the jobs made in
 * SQL (sqljobs.h) or a table calendar's dates (caltables.h) said (RELOAD_MERGE_*), merged with
 * the file jobs as they stand. During a build, after it (with the rows then). */
static void rebuild(struct daemon *d, unsigned what)
{
	bool files = what & RELOAD_FILES;
	if (d->stopping)
		return;
	if ((d->reload.loader && reloader_busy(d->reload.loader)) || d->reload.swapping) {
		if (files)
			log_notice("SIGHUP: a reload is in progress; reloading again after it");
		d->reload.again |= what;
		return;
	}
	if (files) {
		sdnotify_reloading();
		log_notice("SIGHUP: reloading %s", d->config_path);
	}
	d->reload.merging = files ? 0 : what;
	build(d, files ? d->config_path : NULL, d->files);
}
static void sql_changed(void *arg)
{
	rebuild(arg, RELOAD_MERGE_SQL);
}
static void cal_changed(void *arg)
{
	rebuild(arg, RELOAD_MERGE_CAL);
}

static void drained(void *arg)
{
	struct daemon *d = arg;
	log_notice("no run left; stopping");
	event_base_loopexit(d->base, NULL);
}

static void shutdown_begin(struct daemon *d, int sig)
{
	const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
	if (d->stopping) {
		/* A second signal: do not wait out the grace period. */
		log_notice("%s again: cancelling running runs now", name);
		sched_drain(d->sched, 0, drained, d);
		return;
	}
	d->stopping = true;
	sdnotify_stopping();
	log_notice("%s: shutting down; no new runs start", name);
	triggers_free(&d->triggers);
	http_set_stopping(d->ops.http);
	sched_drain(d->sched, d->cfg->shutdown_grace_ms, drained, d);
}

/* ---- several instances (cluster.h) ---- */

static void cluster_refused(void *arg, const char *message)
{
	struct daemon *d = arg;
	if (message)
		log_error("%s", message);
	d->refused = true;
	if (d->stopping)
		return;
	d->stopping = true;
	triggers_free(&d->triggers);
	/* nothing ran: every run waits for a claim, and none was granted */
	sched_drain(d->sched, 0, drained, d);
}

static void cluster_identity(void *arg)
{
	struct daemon *d = arg;
	hist_hold_orphans(d->hist, false);
	coord_identity(d->coord);
}

/* The history holds all an earlier process of this instance wrote (its records replayed
 * from the spill file, which the orphans' closing waits for, and which waits for
 * cluster_identity): its fires claimed without a row were never run. Not earlier: a process
 * killed with records still spooled would leave its last claimed fires unserved (it_cluster
 * "kills"). */
static void history_earlier_written(void *arg)
{
	cluster_serve_unserved(((struct daemon *)arg)->cluster);
}

static void cluster_reaped(void *arg, const char *name)
{
	coord_reaped(((struct daemon *)arg)->coord, name);
}

static void cluster_notified(void *arg, const char *payload)
{
	coord_notified(((struct daemon *)arg)->coord, payload);
}

static void cluster_paused_changed(void *arg)
{
	ctl_paused_changed(((struct daemon *)arg)->ops.ctl);
}

/* The executor has no run under way: what the history and the cluster held back for the
 * runs goes (asked for by history_held and cluster_busy when they held something back, so
 * a run's end wakes no one when nothing waits for it; the cluster only if it held). */
static void runs_drained(void *arg)
{
	struct daemon *d = arg;
	hist_wake(d->hist);
	if (d->cluster_held) {
		d->cluster_held = false;
		cluster_wake(d->cluster);
	}
}

/* Runs wait for connections: the cluster's unlocks may wait for them (cluster.h), until the
 * last has ended. */
static bool cluster_busy(void *arg)
{
	struct daemon *d = arg;
	if (exec_waiting_runs(d->ex) == 0)
		return false;
	d->cluster_held = true;
	exec_set_drained_cb(d->ex, runs_drained, d);
	return true;
}

static int open_cluster(struct daemon *d)
{
	const struct conf_database *db = config_database(d->cfg, d->cfg->history_database);
	if (!db || !d->hist)
		return 0;
	struct cluster_hooks hooks = {.refused = cluster_refused,
	                              .identity = cluster_identity,
	                              .orphan = sched_takeover,
	                              .reaped = cluster_reaped,
	                              .notified = cluster_notified,
	                              .busy = cluster_busy,
	                              /* fires go by the history database's clock
	                               * (docs/several-instances.md) */
	                              .clock_offset = sched_set_db_offset,
	                              .lone = hist_set_lone, /* said in its history's rows */
	                              .arg = d,
	                              .sched = d->sched,
	                              .hist = d->hist};
	hist_hold_orphans(d->hist, true);
	hist_set_earlier_fn(d->hist, history_earlier_written, d);
	int rc = cluster_open(d->base, db->name, db->conninfo, d->instance, hist_boot_id(d->hist),
	                      &hooks, &d->cluster);
	if (rc == 0)
		rc = cluster_set_jobs(d->cluster, d->cfg, NULL);
	if (rc < 0)
		log_error("cannot coordinate with other instances: %s", strerror(-rc));
	return rc;
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (sig == SIGHUP) {
		if (d->stopping)
			log_notice("SIGHUP ignored: shutting down");
		else
			rebuild(d, RELOAD_FILES);
		return;
	}
	shutdown_begin(d, (int)sig);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_watchdog();
}

static void notify_done(void *arg, const struct exec_outcome *o)
{
	if (!o->ok)
		log_warning("alert sink notify: pg_notify failed: %s", o->message);
}

/* The alerter's notify sink: pg_notify on one of the job databases, values as parameters. */
static void alert_notify(void *arg, const char *database, const char *channel, const char *json)
{
	struct daemon *d = arg;
	const char *params[2] = {channel, json};
	struct exec_stmt st = {
	    .sql = "SELECT pg_catalog.pg_notify($1, $2)", .params = params, .n_params = 2};
	struct exec_run_spec spec = {
	    .database = database ? database : d->cfg->history_database,
	    .stmts = &st,
	    .n_stmts = 1,
	    .timeout_ms = 10000,
	    .on_done = notify_done,
	};
	struct exec_run *run;
	if (!spec.database || exec_submit(d->ex, &spec, &run) < 0)
		log_warning("alert sink notify: database %s is not configured",
		            spec.database ? spec.database : "(none)");
}

/* The history holds its records back while runs are under way or waiting: woken once the
 * last has ended. */
static void history_held(void *arg)
{
	exec_set_drained_cb(((struct daemon *)arg)->ex, runs_drained, arg);
}

static int open_history(struct daemon *d)
{
	const struct conf_database *db = config_database(d->cfg, d->cfg->history_database);
	if (!db) {
		log_warning("no history database is configured (history.database); runs are only "
		            "logged");
		return 0;
	}
	int rc = hist_open(d->base, db->conninfo, d->cfg->state_dir, d->instance,
	                   d->cfg->history_retain_ms, &d->hist);
	if (rc < 0) {
		log_error("cannot open the run history (state_dir %s): %s", d->cfg->state_dir,
		          strerror(-rc));
		return rc;
	}
	hist_tune(d->hist, &(struct hist_tuning){.backlog_max = (uint64_t)d->cfg->history_backlog});
	hist_set_runs(d->hist, exec_runs_under_way(d->ex), history_held, d);
	return 0;
}

/* The HTTP listener, when pgcrond.conf has an http group; /health asks the history database. */
static int open_http(struct daemon *d)
{
	const char *hname = d->cfg->history_database;
	const struct conf_database *db = config_database(d->cfg, hname);
	struct http_sources src = {
	    .status = &d->ops.status,
	    .metrics = d->ops.metrics,
	    .history_conninfo = db && d->hist ? db->conninfo : NULL,
	    .history_database = db && d->hist ? hname : NULL,
	};
	return http_open(d->base, d->cfg, &src, &d->ops.http);
}

/* Two priorities: the executor's connections (EXEC_IO_PRIORITY) before everything else,
 * and the loop goes back to the sockets after every DISPATCH_MAX other callbacks (the
 * clock's timers, all behind one libevent timer, after 2 ms of them: clock.c's
 * CLOCK_PASS_US).
 * Without this, a thousand job timers due in the same second would all run before the results
 * of the first statements are read, and the pooled connections stand idle meanwhile. Timers
 * are precise (a timerfd): epoll's timeout in whole milliseconds, rounded up, and the kernel's
 * slack on a long wait (a thousandth of it: 1 ms on the way to the next second) would wake
 * the fires of a second 1 to 4 ms late. */
#define DISPATCH_MAX 16

static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base = NULL;

	if (!cfg)
		return NULL;
	if (event_config_set_max_dispatch_interval(cfg, NULL, DISPATCH_MAX, 1) == 0 &&
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
		base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base && event_base_priority_init(base, 2) != 0) {
		event_base_free(base);
		base = NULL;
	}
	return base;
}

/* The process's settings and the first configuration, before anything is opened. Returns
 * EX_OK, or the status to exit with (nothing is held then). */
static int set_up(struct daemon *d)
{
	/* any root identity: a real uid of root could regain effective root */
	if (geteuid() == 0 || getuid() == 0 || getegid() == 0 || getgid() == 0) {
		fprintf(stderr, "pgcrond must not run as root; run it as the pgcrond user (systemd "
		                "does this with User=pgcrond)\n");
		return DAEMON_EXIT_ROOT;
	}
	log_init(LOG_LVL_INFO);
	/* One malloc arena for the loop and the background jobs (a reload's configuration is
	 * built on the background thread and freed there: an arena per thread would keep a
	 * configuration's worth of pages in each), and a fixed mmap threshold (glibc's moving one
	 * puts the next few-MB buffers, the published backlog or a reload's arrays, in the heap
	 * once the first is freed, and keeps them there). */
	(void)(mallopt(M_ARENA_MAX, 1) && mallopt(M_MMAP_THRESHOLD, 128 * 1024));
	/* room for the jobs' connections, whatever HTTP clients do (http.h) */
	(void)http_raise_fd_limit();
	struct reload_result first;
	if (reload_build(d->config_path, NULL, NULL, NULL, NULL, &first) < 0) {
		diag_print(&first.dl, stderr);
		reload_result_clear(&first);
		return EX_CONFIG;
	}
	d->files = first.files;
	d->cfg = first.cfg;
	d->plugins = first.plugins;
	d->tz = first.tz;
	first.files = first.cfg = NULL;
	first.plugins = NULL;
	first.tz = NULL;
	reload_result_clear(&first);
	apply_log_level(d->cfg);
	/* A write to a closed socket must be an error return, not death. */
	signal(SIGPIPE, SIG_IGN);
	return EX_OK;
}

/* The instance's name: instance in pgcrond.conf, or the host name. Returns false (said) if the
 * host name cannot be one. */
static bool name_instance(struct daemon *d)
{
	if (d->cfg->instance)
		snprintf(d->instance, sizeof(d->instance), "%s", d->cfg->instance);
	else if (gethostname(d->instance, sizeof(d->instance)) != 0 || !d->instance[0])
		snprintf(d->instance, sizeof(d->instance), "pgcrond");
	d->instance[sizeof(d->instance) - 1] = '\0';
	if (!config_instance_name_ok(d->instance)) { /* the host name, as the default */
		log_error("%s: the host name \"%s\" cannot name this instance (1 to 63 characters, "
		          "letters, digits, '.', '_' or '-'); set instance = \"NAME\"; in it",
		          d->cfg->file, d->instance);
		return false;
	}
	return true;
}

/* The parts on one event loop, wired together: the executor, the history, the scheduler and
 * what it reports to, the cluster. Returns EX_OK, or the status to exit with (what was
 * opened is close_parts'). */
static int open_parts(struct daemon *d)
{
	d->base = new_base();
	if (!d->base) {
		log_error("cannot create the event loop");
		return EX_UNAVAILABLE;
	}
	if (exec_new(d->base, &d->ex) < 0 || apply_databases(d->ex, d->cfg) < 0) {
		log_error("out of memory");
		return EX_UNAVAILABLE;
	}
	if (!name_instance(d))
		return EX_CONFIG;
	if (open_history(d) < 0)
		return EX_UNAVAILABLE;
	struct httpc_opts ho = httpc_opts_of(d->cfg);
	if (httpc_new(d->base, &ho, &d->httpc) < 0 ||
	    alert_open(d->base, d->cfg, d->instance, alert_notify, d, d->httpc, &d->alerts) < 0 ||
	    sched_new(d->base, d->ex, d->hist, &d->sched) < 0) {
		log_error("cannot schedule the jobs: out of memory");
		return EX_UNAVAILABLE;
	}
	if (open_cluster(d) < 0) /* its hooks reach the scheduler */
		return EX_UNAVAILABLE;
	sched_set_http(d->sched, d->httpc);
	sched_set_context(d->sched, d->alerts, d->instance);
	sched_set_cluster(d->sched, d->cluster);
	struct coord_hooks ch = {.take_work = sched_take_work,
	                         .ended = sched_cluster_ended,
	                         .graph = sched_cluster_graph,
	                         .cancel = sched_cluster_cancel,
	                         .follow_paused = sched_follow_paused,
	                         .sched = d->sched,
	                         .paused_changed = cluster_paused_changed,
	                         .arg = d};
	if ((d->cluster && coord_open(d->base, d->cluster, &ch, &d->coord) < 0) ||
	    metrics_new(&d->ops.metrics) < 0) {
		log_error("out of memory");
		return EX_UNAVAILABLE;
	}
	sched_set_coord(d->sched, d->coord);
	sched_set_metrics(d->sched, d->ops.metrics);
	d->ops.status = (struct status_src){.sched = d->sched,
	                                    .ex = d->ex,
	                                    .hist = d->hist,
	                                    .triggers = &d->triggers,
	                                    .refused = &d->db.refused,
	                                    .instance = d->instance,
	                                    .cluster = d->cluster,
	                                    .started_us = clock_wall_us(),
	                                    .metrics = d->ops.metrics};
	return EX_OK;
}

/* What brings work in, once the parts are open: the jobs (the files', those made in SQL,
 * pg_net's requests) and their triggers, the HTTP listener, the signals (reload, stop), the
 * control socket, systemd's watchdog. Returns EX_OK, or the status to exit with. */
static int open_inputs(struct daemon *d)
{
	const struct conf_database *hdb = config_database(d->cfg, d->cfg->history_database);
	if (hdb && sqljobs_new(d->base, hdb->name, hdb->conninfo, sql_changed, d, &d->db.sql) < 0) {
		log_error("cannot listen for jobs made in SQL: out of memory");
		return EX_UNAVAILABLE;
	}
	sqljobs_record_files_made(d->db.sql, d->files, NULL, false);
	if (caltables_new(d->base, d->cfg, cal_changed, d, &d->db.cal) < 0) {
		log_error("cannot read the table calendars: out of memory");
		return EX_UNAVAILABLE;
	}
	if (hdb && pgnet_new(d->base, hdb->name, hdb->conninfo, d->httpc,
	                     d->cfg->http_client.pg_net_max_response, &d->pgnet) < 0) {
		log_error("cannot listen for pg_net's requests: out of memory");
		return EX_UNAVAILABLE;
	}
	if (load_paused(d) < 0 || sched_apply(d->sched, d->cfg, d->tz, d->plugins, true) < 0 ||
	    triggers_new(d->base, d->sched, d->instance, &d->triggers) < 0 ||
	    triggers_apply(d->triggers, d->cfg) < 0) {
		log_error("cannot schedule the jobs: out of memory");
		return EX_UNAVAILABLE;
	}
	if (open_http(d) < 0)
		return EX_UNAVAILABLE;
	if (reloader_new(d->base, built, d, &d->reload.loader) < 0)
		log_warning(
		    "reloads will build the configuration on the event loop (out of memory)");
	for (size_t i = 0; i < N_SIGNALS; i++)
		if (evsignal_assign(&d->sig[i], d->base, signals[i], signal_cb, d) < 0 ||
		    evsignal_add(&d->sig[i], NULL) < 0) {
			log_error("cannot install the signal handlers");
			return EX_UNAVAILABLE;
		}
	open_ctl(d);
	ctl_sync_registry(d->ops.ctl);
	uint64_t wd = sdnotify_watchdog_usec();
	if (wd > 0) {
		struct timeval tv = {(time_t)(wd / 2 / 1000000), (suseconds_t)(wd / 2 % 1000000)};
		event_assign(&d->watchdog, d->base, -1, EV_PERSIST, watchdog_cb, NULL);
		event_add(&d->watchdog, &tv);
	}
	return EX_OK;
}

/* Started: said, then the loop until the stop. Returns the status to exit with. */
static int serve(struct daemon *d)
{
	malloc_trim(0); /* what the load freed (libconfig's tree, the parse) goes back */
	size_t enabled = 0;
	for (size_t i = 0; i < d->cfg->n_jobs; i++)
		enabled += d->cfg->jobs[i].enabled;
	log_notice("pgcrond %s started: %zu job(s), %zu enabled, max_running %d, instance %s",
	           PGCROND_VERSION, d->cfg->n_jobs, enabled, d->cfg->max_running, d->instance);
	/* the line `systemctl status pgcrond` shows */
	log_plugins(d->plugins);
	sdnotify_status("%zu job(s) scheduled, %zu enabled", d->cfg->n_jobs, enabled);
	sdnotify_ready();

	if (event_base_dispatch(d->base) < 0) {
		log_error("the event loop failed");
		return EX_UNAVAILABLE;
	}
	log_notice("pgcrond stopped");
	return d->refused ? EX_CONFIG : EX_OK;
}

/* Close what open_parts and open_inputs opened, as far as they came, in the order the parts
 * need. */
static void close_parts(struct daemon *d)
{
	if (d->base) {
		for (size_t i = 0; i < N_SIGNALS; i++)
			if (evsignal_initialized(&d->sig[i]))
				evsignal_del(&d->sig[i]);
		if (event_initialized(&d->watchdog))
			event_del(&d->watchdog);
	}
	reloader_free(&d->reload.loader);
	triggers_free(&d->triggers);
	if (d->sched)
		sched_set_cluster(d->sched, NULL); /* runs freed below touch no closed cluster */
	/* the stop's rows first: the others serve only the fires its row says stopped left
	 * without a row ("pgcrond was shutting down" is one) */
	hist_flush_stopping(d->hist);
	/* before sched_free: no claim answer may reach a freed run; the coord stays the
	 * scheduler's until then, for a reap's answer that hands a retry over (sched_takeover;
	 * nothing else is written while closing: coord_note needs cluster_ready) */
	cluster_close(&d->cluster);
	hist_set_lone(d->hist, 0, 0); /* no other instance's claim is known to be out of reach */
	if (d->sched)
		sched_set_coord(d->sched, NULL); /* runs freed below write no pending work */
	coord_free(&d->coord);
	http_free(&d->ops.http);
	sched_free(&d->sched); /* answers the runs waited for on the control socket */
	reload_result_clear(&d->reload.swap); /* the stop cut it short: nothing points into it */
	ctl_free(&d->ops.ctl);
	json_decref(d->db.refused);
	sqljobs_free(&d->db.sql);
	caltables_free(&d->db.cal);
	pgnet_free(&d->pgnet); /* before the client its requests are in */
	metrics_free(&d->ops.metrics);
	alert_close(&d->alerts);
	httpc_free(&d->httpc); /* after the runs and alerts that used it */
	hist_close(&d->hist);
	exec_free(&d->ex);
	/* a lookup cancelled as its connection closed is freed by a callback libevent defers */
	if (d->base) {
		event_base_loop(d->base, EVLOOP_NONBLOCK);
		event_base_free(d->base);
	}
	plugin_registry_free(&d->plugins);
	cron_tz_free(&d->tz);
	config_free(&d->cfg);
	config_free(&d->files);
}

int daemon_main(const char *config_path)
{
	struct daemon d = {.config_path = config_path};
	int status = set_up(&d);

	if (status != EX_OK)
		return status;
	status = open_parts(&d);
	if (status == EX_OK)
		status = open_inputs(&d);
	if (status == EX_OK)
		status = serve(&d);
	close_parts(&d);
	return status;
}
