#ifndef PGCROND_SQLJOBS_H
#define PGCROND_SQLJOBS_H

/* The jobs made in SQL: cron.schedule and friends write cron.job, whose triggers mirror each
 * job into pgcrond.job (source 'sql') and NOTIFY pgcrond_jobs at commit. This module LISTENs
 * on the history database, reads the SQL jobs again after every notification and after every
 * (re)connect (so nothing sent while it did not listen is missed), and tells the daemon, which
 * merges them with the file jobs (sqljobs_merge) and applies the result as a reload does.
 *
 * A SQL job runs as its owner: its run connections log in as that role (pg_cron's model), in
 * a pool of their own keyed by database and role. The conninfo is the configured `databases`
 * entry named like the job's database, else the history database's, with dbname and user
 * replaced and any password dropped: the owner authenticates by the operator's .pgpass,
 * pg_hba.conf or certificates, never with the daemon's password. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

struct diag_list;
struct event_base;
struct pgc_config;
struct sqljobs;

/* CHANGED(ARG) is called from the loop when the set of SQL jobs differs from the last one
 * read. HISTORY_NAME is the databases key (for log lines); CONNINFO is copied. */
int sqljobs_new(struct event_base *base, const char *history_name, const char *conninfo,
                void (*changed)(void *arg), void *arg, struct sqljobs **out)
    __attribute__((warn_unused_result));
void sqljobs_free(struct sqljobs **sj);
/* Read the SQL jobs again (SIGHUP: an owner given LOGIN since, say); CHANGED follows if they
 * differ. */
void sqljobs_refresh(struct sqljobs *sj);

/* The first part of FILES' jobs as the registry is sent it, made on another thread (reload.h:
 * 2,000 jobs' JSON is milliseconds of the loop); NULL on ENOMEM. */
char *sqljobs_first_part(const struct pgc_config *files);
/* Record FILES' jobs in the registry (pgcrond.job, cron.job) as `pgcrond install` does, now
 * and after every reconnect until the next call: the registry follows every reload. FILES is
 * borrowed: it must live until the next call or sqljobs_free (the parts are made from it as
 * they are sent, pgcrond--8.sql). FIRST is NULL, or sqljobs_first_part(FILES) made already
 * (taken). SAME: FILES holds the jobs of the last call's files, unchanged (config_same_files):
 * nothing is sent if the registry has them already (100,000 jobs: 50 statements). */
void sqljobs_record_files_made(struct sqljobs *sj, const struct pgc_config *files, char *first,
                               bool same);

/* FILES (borrowed) plus the SQL jobs last read, as a new configuration in *OUT. A SQL job
 * with a problem is left out and its problem added to DL (as "cron.job jobid N: ..."). 0 or
 * -ENOMEM. SJ may be NULL (no history database): a plain copy. */
int sqljobs_merge(const struct sqljobs *sj, const struct pgc_config *files, struct pgc_config **out,
                  struct diag_list *dl) __attribute__((warn_unused_result));

/* The jobs made in SQL that DL (a build's, from sqljobs_merge) leaves out: each said in the log
 * once until why changes, recorded in pgcrond.job.refused (now and after every reconnect) for
 * list, next --job and history, and kept in *REFUSED (for the control socket) by jobid: {"42":
 * {"name", "cron_name" (or null), "role", "why", "said": "job \"x\" (jobid 42, role \"app\") is
 * not run: WHY"}}: status.h's "refused". Nothing when SJ is NULL. */
void sqljobs_note_refused(struct sqljobs *sj, const struct diag_list *dl, json_t **refused);

/* A copy of the SQL jobs last read, to merge on another thread (reload.h) while the loop
 * reads them again (it shares their rows, which a read replaces and never changes): *OUT
 * (NULL when SJ is NULL) goes to sqljobs_merge and sqljobs_free, on the loop. 0 or -ENOMEM. */
int sqljobs_copy(const struct sqljobs *sj, struct sqljobs **out)
    __attribute__((warn_unused_result));
/* sqljobs_merge() with the SQL jobs read now, blocking, on CONN (a CLI command's
 * connection to the history database); without schema version 3 there are none. */
int sqljobs_merge_from(PGconn *conn, const struct pgc_config *files, struct pgc_config **out,
                       struct diag_list *dl) __attribute__((warn_unused_result));

/* CONNINFO with dbname DBNAME and user USER (each when not NULL) and no password, as a new
 * key='value' string; NULL if CONNINFO does not parse or on ENOMEM. Exposed for unit tests. */
char *sqljobs_conninfo_as(const char *conninfo, const char *dbname, const char *user);

#endif
