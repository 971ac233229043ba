#ifndef PGCROND_RELOAD_H
#define PGCROND_RELOAD_H

/* A new configuration is built off the event loop, so fires due meanwhile are not held up:
 * at a SIGHUP (the files parsed again, the jobs made in SQL merged in) and when the jobs made
 * in SQL or a table calendar's dates change (merged again with the files in force). The parse, the
 * merge, the job graph, the zone and the diff against the configuration in force run on a
 * background job (bgwork.h); the loop only swaps the result in. One step stays on the loop, between
 * the two background parts: loading the plugins and their checks of the jobs' settings, because the
 * core calls a plugin from one thread only (plugin.h).
 *
 * What a build reads (the files in force, the configuration in force, the SQL jobs, copied at
 * the start) must not change or be freed on the loop until its result is delivered: the daemon
 * installs a configuration only from a delivered result, and starts one build at a time. */

#include "config.h"
#include "config_diff.h"
#include "jobgraph.h"

struct event_base;
struct plugin_registry;
struct caltables;
struct sqljobs;
struct reloader;

/* What a build made. The receiver takes what it keeps (and sets it to NULL); the rest is
 * freed by reload_result_clear. */
struct reload_result {
	int rc;                          /* 0, or negative: the build failed, the reasons in DL */
	struct pgc_config *files;        /* the files read (a reload; NULL for a merge only) */
	struct pgc_config *cfg;          /* the configuration to put in force */
	struct plugin_registry *plugins; /* its plugins, loaded */
	cron_tz *tz;                     /* its zone, open */
	struct diag_list dl;             /* why the build failed */
	struct diag_list sql_dl;         /* the jobs made in SQL left out (failed or not) */
	struct jobgraph graph;           /* CFG's job graph (for sched_apply_start) */
	struct config_diff diff;         /* the jobs changed from the old configuration to CFG */
	int diff_rc;                     /* 0, or -ENOMEM: DIFF is incomplete */
	char *first_part;                /* FILES' first registry part (sqljobs_first_part) */
	bool files_same;                 /* FILES are the files in force, unchanged
	                                  * (config_same_files): no first part made */
	double loop_ms;                  /* how long the build held the loop (the plugins) */
};

/* Called on the loop when a build ends; the result as described above. */
typedef void (*reload_done_fn)(void *arg, struct reload_result *res);

int reloader_new(struct event_base *base, reload_done_fn fn, void *arg, struct reloader **out)
    __attribute__((warn_unused_result));
/* Start a build: the files read from PATH (a file whose text FILES read is not parsed again:
 * config_load_again), or FILES when PATH is NULL (FILES borrowed, may be NULL), merged with
 * the jobs made in SQL as SQL holds them now (SQL may be NULL) and the table calendars' dates
 * as CAL has them now (CAL may be NULL: none read), compared with OLD (borrowed;
 * NULL: no diff). PATH, FILES and OLD must stay as they are until FN is called. -EBUSY while a
 * build is under way, -ENOMEM; when no background job can be started, the build runs here
 * and FN is called before this returns. */
int reloader_start(struct reloader *l, const char *path, const struct pgc_config *files,
                   const struct sqljobs *sql, const struct caltables *cal,
                   const struct pgc_config *old) __attribute__((warn_unused_result));
bool reloader_busy(const struct reloader *l);
/* Waits for a build under way (its result is dropped, FN is not called), then frees. */
void reloader_free(struct reloader **l);

/* Drop *CFG (one owner of it; set to NULL): when it is the last, it is freed; either way the
 * free pages are given back (malloc_trim), on the background job, so that a configuration of
 * 100,000 jobs does not hold the loop for that (about 12 ms). With no background job, here.
 * L may be NULL. */
void reloader_dispose(struct reloader *l, struct pgc_config **cfg);

/* The same build, all on the calling thread (the daemon's start). Returns RES->rc. */
int reload_build(const char *path, const struct pgc_config *files, const struct sqljobs *sql,
                 const struct caltables *cal, const struct pgc_config *old,
                 struct reload_result *res);
void reload_result_clear(struct reload_result *res);

/* What a build merges onto the files in force (bits): the jobs made in SQL, a table
 * calendar's dates; 0: a SIGHUP's reload, the files read again. */
enum { RELOAD_MERGE_SQL = 1, RELOAD_MERGE_CAL = 2 };
/* How the log lines of a build of MERGING begin: "reload", "sql jobs", "table calendars". */
const char *reload_label(unsigned merging);
/* On the loop: what changed to CFG, as R's diff lists it, a line per job added, changed (and
 * in what) or removed, so the operator sees that the edit they meant arrived, cut after a
 * limit, then the complete counts; the lines of a build of MERGING. */
void reload_log_diff(const struct reload_result *r, const struct pgc_config *cfg, unsigned merging);

#endif
