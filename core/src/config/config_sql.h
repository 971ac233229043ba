#ifndef PGCROND_CONFIG_SQL_H
#define PGCROND_CONFIG_SQL_H

/* The jobs made in SQL (cron.schedule, pgcrond.schedule), merged into a configuration loaded
 * from the files. Each SQL job arrives as the text of one libconfig job group, so it is checked
 * by the same code, with the same messages, as a job in a job file. Pure logic: no libpq. */

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* A database a SQL job runs in: a key of its own (database and role), and the conninfo that
 * logs in as the job's owner. */
struct config_sql_db {
	const char *name;
	const char *conninfo;
	int pool;
};

/* One SQL job: ORIGIN names it in messages ("cron.job jobid 42"); TEXT is its job group,
 * `job = { name = "..."; ... };`. */
struct config_sql_job {
	const char *origin;
	const char *text;
	const char *username;     /* the owner (conf_job.username) */
	const char *sql_database; /* its real database (conf_job.sql_database) */
	const char *cron_name;    /* the name given to cron.schedule (conf_job.cron_name) */
	int64_t jobid;            /* cron.job's jobid */
};

/* A new configuration: a copy of FILES plus DBS and the valid ones of JOBS. A job with a
 * problem (a bad setting, a name a file job already has) is left out and its problems are
 * added to DL; the others are merged. With nothing to add it is FILES itself, with one more
 * owner (config_ref): config_free it all the same, and change neither. 0, or -ENOMEM. */
int config_with_sql_jobs(const struct pgc_config *files, const struct config_sql_db *dbs,
                         size_t n_dbs, const struct config_sql_job *jobs, size_t n_jobs,
                         struct pgc_config **out, struct diag_list *dl)
    __attribute__((warn_unused_result));

/* A table calendar's dates as read from its table (daemon/caltables.h). */
struct config_table_dates {
	const char *calendar, *database, *table;
	const struct cron_dates *dates;
};

/* *CFG with each table calendar's dates taken from DATES (the entry of its name, database and
 * table; none: not read yet) and the jobs naming one pointed at them: a job whose table
 * calendar is not read yet does not fire (config_point_dates). *CFG is changed in place, or
 * first replaced by a copy when it has another owner (config_ref). Without a table calendar
 * nothing changes. 0, or -ENOMEM (*CFG as it was). */
int config_set_table_dates(struct pgc_config **cfg, const struct config_table_dates *dates,
                           size_t n) __attribute__((warn_unused_result));

/* S as a libconfig string literal, quotes included, into a new string; NULL on ENOMEM. */
char *config_sql_quote(const char *s);

#endif
